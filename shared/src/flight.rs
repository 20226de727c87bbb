//! One read in flight per key: callers that ask the same thing while it is being read share the
//! answer instead of each sending the same command. In an on-sale herd thousands of requests ask
//! Redis for the same seat's mark within a few milliseconds; one read answers them all, which keeps
//! Redis's replies (and the one multiplexed connection) from queueing past the command timeout.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

pub struct Flights<K, V> {
    in_flight: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            in_flight: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    /// `read`'s answer, or the answer of the read of `key` already under way. A read whose caller
    /// gives up is taken over by one of the callers waiting on it (`OnceCell::get_or_init`).
    pub async fn share<F, Fut>(&self, key: K, read: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let flight = self.lock().entry(key.clone()).or_default().clone();
        let value = flight.get_or_init(read).await.clone();
        // Landed: the next caller starts a read of its own. Only this flight is taken out, not
        // one a later caller started after another removed it.
        let mut in_flight = self.lock();
        if in_flight
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &flight))
        {
            in_flight.remove(&key);
        }
        value
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn callers_asking_during_a_read_share_it_and_later_callers_read_again() {
        let flights: Arc<Flights<i64, usize>> = Arc::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |reads: Arc<AtomicUsize>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            reads.fetch_add(1, Ordering::SeqCst) + 1
        };
        let together: Vec<_> = (0..100)
            .map(|_| {
                let (flights, reads) = (flights.clone(), reads.clone());
                tokio::spawn(async move { flights.share(7, || read(reads)).await })
            })
            .collect();
        for caller in together {
            assert_eq!(caller.await.unwrap(), 1, "every caller got the one read");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Another key, and the same key once the read has landed, read afresh.
        assert_eq!(flights.share(8, || read(reads.clone())).await, 2);
        assert_eq!(flights.share(7, || read(reads.clone())).await, 3);
        assert!(flights.lock().is_empty(), "nothing left in flight");
    }

    #[tokio::test]
    async fn a_read_whose_caller_gives_up_is_finished_by_another() {
        let flights: Arc<Flights<i64, u8>> = Arc::default();
        let first = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .share(1, || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        1
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.share(1, || async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert_eq!(
            answer
                .expect("not stuck behind the abandoned read")
                .unwrap(),
            2
        );
    }
}
