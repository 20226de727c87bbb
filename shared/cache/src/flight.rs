//! One loader per flight per process: concurrent misses of the same flight wait for the first one.
//! A flight is a key *read at one stamp* ([`crate::keys::Stamp::flight`]), so a reader that has
//! seen a newer generation than a loader started at never waits for, or is handed, that load.

use crate::Body;
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
    pub(crate) async fn run<F, Fut, E>(&self, key: &str, load: F) -> Result<Body, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Body, E>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Served;
    use bytes::Bytes;
    use std::sync::Arc;

    fn body(text: &'static str) -> Result<super::Body, std::convert::Infallible> {
        Ok(Some(Served {
            body: Bytes::from_static(text.as_bytes()),
            gzip: false,
            tag: Arc::from(text),
        }))
    }

    fn text(body: Option<Served>) -> Option<Bytes> {
        body.map(|served| served.body)
    }

    #[tokio::test]
    async fn a_flight_is_shared_by_its_key_only() {
        let flights = Arc::new(Flights::default());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run("k 1@a", || async move {
                        let _ = released.await;
                        body("first")
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let same = tokio::spawn({
            let flights = flights.clone();
            async move { flights.run("k 1@a", || async { body("own") }).await }
        });
        let newer = flights
            .run("k 2@a", || async { body("newer") })
            .await
            .unwrap();
        assert_eq!(
            text(newer).as_deref(),
            Some(&b"newer"[..]),
            "not made to wait"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).unwrap();
        assert_eq!(
            text(first.await.unwrap().unwrap()).as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(
            text(same.await.unwrap().unwrap()).as_deref(),
            Some(&b"first"[..]),
            "handed the load of its flight"
        );
    }
}
