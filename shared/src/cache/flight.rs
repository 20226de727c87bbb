//! One loader per key per process: concurrent misses of the same key wait for the first one.

use super::Body;
use crate::error::ApiError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// Followers give up waiting after this and load for themselves.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Flights {
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Body>>>>,
}

enum Role {
    Leader(watch::Sender<Option<Body>>),
    Follower(watch::Receiver<Option<Body>>),
}

impl Flights {
    pub(crate) async fn run<F, Fut>(&self, key: &str, load: F) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, ApiError>>,
    {
        let role = {
            let mut in_flight = self.in_flight.lock().expect("flight map poisoned");
            match in_flight.get(key) {
                Some(receiver) => Role::Follower(receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(key.to_owned(), receiver);
                    Role::Leader(sender)
                }
            }
        };
        match role {
            Role::Leader(sender) => {
                let _landing = Landing { flights: self, key };
                let result = load().await;
                if let Ok(body) = &result {
                    // Nobody listening is fine.
                    let _ = sender.send(Some(body.clone()));
                }
                result
            }
            Role::Follower(mut receiver) => {
                // Owned before any other await: the channel's read guard is not Send.
                let landed: Option<Body> =
                    tokio::time::timeout(FOLLOW_TIMEOUT, receiver.wait_for(Option::is_some))
                        .await
                        .ok()
                        .and_then(|waited| waited.ok().map(|body| body.clone()))
                        .flatten();
                match landed {
                    Some(body) => Ok(body),
                    // The leader failed or is slow: this request loads for itself.
                    None => load().await,
                }
            }
        }
    }
}

/// Ends a flight when its leader finishes, even by error or cancellation.
struct Landing<'a> {
    flights: &'a Flights,
    key: &'a str,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.flights.in_flight.lock() {
            in_flight.remove(self.key);
        }
    }
}
