//! What this process has read of things nothing changes after their creation, by id: events'
//! layouts and waiting rooms, venues' seats. A remembered value stays true, so it is read once per
//! process instead of once per request; only what was found is remembered (an id that is not an
//! event yet may become one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Remembered<V> {
    known: Mutex<HashMap<i64, Arc<V>>>,
    /// Past this many the memory starts over (a handful of events are on sale at once).
    most: usize,
}

impl<V> Remembered<V> {
    pub fn new(most: usize) -> Self {
        Remembered {
            known: Mutex::default(),
            most,
        }
    }

    pub fn get(&self, id: i64) -> Option<Arc<V>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(&id).cloned()
    }

    /// The value remembered for `id`, or the one `load` reads, remembered from then on (an error
    /// is not: the next call loads again).
    pub async fn get_or_load<E, Fut>(
        &self,
        id: i64,
        load: impl FnOnce() -> Fut,
    ) -> Result<Arc<V>, E>
    where
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        match self.get(id) {
            Some(known) => Ok(known),
            None => Ok(self.remember(id, load().await?)),
        }
    }

    pub fn remember(&self, id: i64, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= self.most {
            known.clear();
        }
        known.insert(id, value.clone());
        value
    }
}
