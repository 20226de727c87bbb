//! Turns: one holder at a time per key, within this process.
//!
//! Best-available picks of one event are made one at a time anyway, under the event's advisory
//! lock in PostgreSQL (decision 25). A process's picks of an event take turns here first, before
//! each takes a pool connection: a herd's waiters then wait without holding connections, and a
//! waiter whose turn comes after the event ran short is answered from a read beside the others
//! instead of after them. The advisory lock still orders picks across processes; in Lambda an
//! environment serves one request at a time, so there this never waits.

use crate::error::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Held while it is this request's turn; the next waiter's comes when it is dropped.
pub type Turn = tokio::sync::OwnedMutexGuard<()>;

#[derive(Default)]
pub struct Turns {
    queues: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    /// Past this many keys, those nobody waits on are forgotten.
    const REMEMBERED: usize = 1_000;

    /// Waits for `key`'s turn; 503 (with `Retry-After`) after `patience`.
    pub async fn wait(&self, key: i64, patience: Duration) -> Result<Turn, ApiError> {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            if queues.len() >= Self::REMEMBERED {
                queues.retain(|_, queue| Arc::strong_count(queue) > 1);
            }
            queues.entry(key).or_default().clone()
        };
        tokio::time::timeout(patience, queue.lock_owned())
            .await
            .map_err(|_| {
                ApiError::Unavailable(format!("still waiting for a turn after {patience:?}").into())
            })
    }
}
