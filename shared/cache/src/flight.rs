//! One loader per flight per process: concurrent misses of the same flight wait for the first one.
//! The cache's flights are keys *read at one stamp* ([`crate::keys::Stamp::flight`]), so a reader
//! that has seen a newer generation than a loader started at never waits for, or is handed, that
//! load. The booking function shares its reads of taken-seat marks the same way (keyed by event
//! and seats), so a herd asks Redis once, not once per loser.

use crate::Body;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// Followers give up waiting after this and load for themselves.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads in flight, by key; a successful load is handed to every caller that asked meanwhile.
pub struct Flights<K = String, V = Body> {
    in_flight: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            in_flight: Mutex::default(),
        }
    }
}

enum Role<V> {
    Leader(watch::Sender<Option<V>>),
    Follower(watch::Receiver<Option<V>>),
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// `load`'s value, or the value of the load of `key` already under way. A load that fails (or
    /// whose caller gives up) is not shared: its followers load for themselves.
    pub async fn run<F, Fut, E>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let role = {
            let mut in_flight = self.in_flight.lock().expect("flight map poisoned");
            match in_flight.get(key) {
                Some(receiver) => Role::Follower(receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(key.clone(), receiver);
                    Role::Leader(sender)
                }
            }
        };
        match role {
            Role::Leader(sender) => {
                let _landing = Landing { flights: self, key };
                let result = load().await;
                if let Ok(value) = &result {
                    // Nobody listening is fine.
                    let _ = sender.send(Some(value.clone()));
                }
                result
            }
            Role::Follower(mut receiver) => {
                // Owned before any other await: the channel's read guard is not Send.
                let landed: Option<V> =
                    tokio::time::timeout(FOLLOW_TIMEOUT, receiver.wait_for(Option::is_some))
                        .await
                        .ok()
                        .and_then(|waited| waited.ok().map(|value| value.clone()))
                        .flatten();
                match landed {
                    Some(value) => Ok(value),
                    // The leader failed or is slow: this request loads for itself.
                    None => load().await,
                }
            }
        }
    }
}

/// Ends a flight when its leader finishes, even by error or cancellation.
struct Landing<'a, K: Eq + Hash, V> {
    flights: &'a Flights<K, V>,
    key: &'a K,
}

impl<K: Eq + Hash, V> Drop for Landing<'_, K, V> {
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
                    .run(&"k 1@a".to_owned(), || async move {
                        let _ = released.await;
                        body("first")
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let same = tokio::spawn({
            let flights = flights.clone();
            async move {
                flights
                    .run(&"k 1@a".to_owned(), || async { body("own") })
                    .await
            }
        });
        let newer = flights
            .run(&"k 2@a".to_owned(), || async { body("newer") })
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

    #[tokio::test]
    async fn callers_asking_during_a_load_share_it_and_later_callers_load_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let flights: Arc<Flights<(i64, Vec<i64>), usize>> = Arc::default();
        let loads = Arc::new(AtomicUsize::new(0));
        let load = |loads: Arc<AtomicUsize>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let key = (7, vec![1, 2]);
        let together: Vec<_> = (0..100)
            .map(|_| {
                let (flights, loads, key) = (flights.clone(), loads.clone(), key.clone());
                tokio::spawn(async move { flights.run(&key, || load(loads)).await })
            })
            .collect();
        for caller in together {
            assert_eq!(
                caller.await.unwrap(),
                Ok(1),
                "every caller got the one load"
            );
        }
        assert_eq!(flights.run(&key, || load(loads.clone())).await, Ok(2));
        assert!(
            flights.in_flight.lock().unwrap().is_empty(),
            "nothing left in flight"
        );
    }
}
