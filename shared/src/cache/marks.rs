//! Marks on ids, each with its own expiry, per set: a hint that a thing is taken, kept where
//! every process can read it in one round trip. The booking function marks an event's seats when
//! a claim on them commits and reads the marks before a claim, so the losers of an on-sale herd
//! are answered without a database transaction each. A mark is only ever a hint: a missing one
//! lets a request through to whatever decides (the unique constraint on tickets), and one that
//! outlives what it says (an unmark that failed) refuses for at most its own lifetime.
//!
//! One Redis hash per set, `id → expiry in ms since the epoch`, in the set's own cluster slot;
//! the hash itself lives [`SET_TTL`] past its last write, so an idle set does not linger.

use super::{now_ms, Cache};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a set lives after its last change.
const SET_TTL: Duration = Duration::from_secs(3600);

/// A change to a set of marks, made with a write that must reach Redis anyway (see
/// [`Cache::event_changed`]).
#[derive(Debug, Clone, Copy)]
pub enum MarkChange<'a> {
    /// Leave the marks as they are.
    Keep,
    /// Mark `ids` until `until`.
    Set { ids: &'a [i64], until: SystemTime },
    /// Take the marks off `ids` (they are free again).
    Clear { ids: &'a [i64] },
}

impl MarkChange<'_> {
    /// Adds the change's commands, replies ignored, to `pipe`.
    pub(crate) fn add_to(&self, set: &str, pipe: &mut redis::Pipeline) {
        match *self {
            MarkChange::Keep => {}
            MarkChange::Set { ids, until } if !ids.is_empty() => {
                let until_ms = until
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let hset = pipe.cmd("HSET").arg(set);
                for id in ids {
                    hset.arg(*id).arg(until_ms);
                }
                hset.ignore();
                pipe.cmd("PEXPIRE")
                    .arg(set)
                    .arg(SET_TTL.as_millis() as u64)
                    .ignore();
            }
            MarkChange::Clear { ids } if !ids.is_empty() => {
                pipe.cmd("HDEL").arg(set).arg(ids).ignore();
            }
            MarkChange::Set { .. } | MarkChange::Clear { .. } => {}
        }
    }
}

impl Cache {
    /// Which of `ids` carry a mark in `set` that has not expired, in the order given; `None` when
    /// Redis cannot say (the caller goes on as if nothing were marked).
    pub async fn marked(&self, set: &str, ids: &[i64]) -> Option<Vec<i64>> {
        if ids.is_empty() {
            return Some(Vec::new());
        }
        // The counts this process has pending ride along (replies ignored).
        let mut pipe = redis::pipe();
        self.hits.carry(&self.keys, &mut pipe);
        pipe.cmd("HMGET").arg(set).arg(ids);
        let (marks,): (Vec<Option<u64>>,) = self.link.query_pipe(&pipe).await.ok()?;
        let now = now_ms();
        Some(
            ids.iter()
                .zip(marks)
                .filter(|(_, until)| until.is_some_and(|until| until > now))
                .map(|(id, _)| *id)
                .collect(),
        )
    }

    /// Applies `change` to `set` on its own, quietly (a hint that is lost costs nothing but a
    /// database round trip later).
    pub async fn mark(&self, set: &str, change: MarkChange<'_>) {
        let mut pipe = redis::pipe();
        change.add_to(set, &mut pipe);
        self.link.pipe_quietly(&pipe).await;
    }
}
