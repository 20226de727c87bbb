//! This process's own copy of the values it serves most, so that most hits cost no network at
//! all: a hot key is read from Redis once per [`NEAR_TTL`] per process, not once per request.
//!
//! A copy stays within the bound Redis values are served under: at most [`NEAR_TTL`] after Redis
//! last vouched for it, never past [`MAX_STALE`] after its load when Redis knew it was behind,
//! never to a reader naming a version it does not show, and dropped at once when this process
//! bumps its generation. Only keys that may lag are copied. While Redis cannot be reached, the
//! copy is the last good value (within [`MAX_STALE`] of its load), so an outage does not send
//! every read to the loader.

use crate::{now_ms, Accept, CacheKey, Served, MAX_STALE};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a copy is served after Redis last said it was current (or behind, but young enough).
pub const NEAR_TTL: Duration = Duration::from_millis(100);
/// Copies kept at most; past that, stale ones are swept out (and all, if none is).
const CAPACITY: usize = 1024;

/// Per value key, the copy for plain readers and the one for gzip readers (indexed by `gzip`), so
/// a lookup borrows the key instead of building one.
#[derive(Default)]
pub(crate) struct Near {
    copies: Mutex<HashMap<String, [Option<Copy>; 2]>>,
}

struct Copy {
    served: Served,
    /// The generation key of the value, for dropping copies on a local bump.
    generation_key: String,
    /// The generation the value was loaded at (0 when unknown: never served to a reader that
    /// names a version).
    generation: u64,
    loaded_at_ms: u64,
    /// When Redis last vouched for it, and whether it was current then (else: behind).
    checked: Instant,
    current: bool,
}

impl Copy {
    /// Whether its load started within the staleness bound.
    fn young(&self) -> bool {
        now_ms().saturating_sub(self.loaded_at_ms) < MAX_STALE.as_millis() as u64
    }
}

/// What Redis said of a value as it was copied.
pub(crate) struct Vouched {
    pub(crate) generation: u64,
    pub(crate) loaded_at_ms: u64,
    pub(crate) current: bool,
}

impl Near {
    /// The copy of `key` for `accept`, if it may be served now.
    pub(crate) fn get(&self, key: &CacheKey, accept: &Accept) -> Option<Served> {
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let copy = copies.get(key.value.as_str())?[usize::from(accept.gzip)].as_ref()?;
        let fits = accept
            .min_generation
            .is_none_or(|min| copy.generation >= min);
        (copy.checked.elapsed() < NEAR_TTL && (copy.current || copy.young()) && fits)
            .then(|| copy.served.clone())
    }

    /// The last copy of `key` loaded within [`MAX_STALE`], whenever Redis last saw it: what is
    /// served while Redis cannot be reached. Not for a reader naming a version: nothing says
    /// whether the copy shows it.
    pub(crate) fn last_good(&self, key: &CacheKey, accept: &Accept) -> Option<Served> {
        if accept.min_generation.is_some() {
            return None;
        }
        let copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        let copy = copies.get(key.value.as_str())?[usize::from(accept.gzip)].as_ref()?;
        copy.young().then(|| copy.served.clone())
    }

    /// Keeps `served` as `key`'s copy for readers accepting what `gzip` says.
    pub(crate) fn put(&self, key: &CacheKey, gzip: bool, served: &Served, vouched: Vouched) {
        if !key.may_lag {
            return;
        }
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        if copies.len() >= CAPACITY {
            copies.retain(|_, both| both.iter().flatten().any(Copy::young));
            if copies.len() >= CAPACITY {
                copies.clear();
            }
        }
        copies.entry(key.value.clone()).or_default()[usize::from(gzip)] = Some(Copy {
            served: served.clone(),
            generation_key: key.generation.clone(),
            generation: vouched.generation,
            loaded_at_ms: vouched.loaded_at_ms,
            checked: Instant::now(),
            current: vouched.current,
        });
    }

    /// Drops every copy whose value depends on `generation_key`: this process just changed it.
    pub(crate) fn forget(&self, generation_key: &str) {
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.retain(|_, both| {
            both.iter()
                .flatten()
                .all(|copy| copy.generation_key != generation_key)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{availability, listing};
    use crate::Keys;
    use bytes::Bytes;

    fn served(body: &'static str) -> Served {
        Served {
            body: Bytes::from_static(body.as_bytes()),
            gzip: false,
            tag: "t".into(),
        }
    }

    #[test]
    fn a_copy_is_served_until_its_time_and_never_to_a_reader_naming_a_newer_version() {
        let near = Near::default();
        let key = availability(&Keys::new("p"), 1);
        let plain = Accept::default();
        assert_eq!(near.get(&key, &plain), None);
        let vouched = Vouched {
            generation: 7,
            loaded_at_ms: now_ms() - 60_000,
            current: true,
        };
        near.put(&key, false, &served("map"), vouched);
        assert_eq!(near.get(&key, &plain), Some(served("map")));
        let gzip = Accept {
            gzip: true,
            ..plain
        };
        assert_eq!(near.get(&key, &gzip), None, "kept per encoding");
        let writer = |min| Accept {
            min_generation: Some(min),
            ..plain
        };
        assert!(near.get(&key, &writer(7)).is_some());
        assert_eq!(near.get(&key, &writer(8)), None);
        std::thread::sleep(NEAR_TTL);
        assert_eq!(
            near.get(&key, &plain),
            None,
            "Redis must vouch for it again"
        );
    }

    #[test]
    fn a_copy_that_was_behind_is_not_served_past_the_staleness_bound() {
        let near = Near::default();
        let key = availability(&Keys::new("p"), 1);
        let old = Vouched {
            generation: 3,
            loaded_at_ms: now_ms() - MAX_STALE.as_millis() as u64,
            current: false,
        };
        near.put(&key, false, &served("old"), old);
        assert_eq!(near.get(&key, &Accept::default()), None);
        assert_eq!(near.last_good(&key, &Accept::default()), None);
    }

    #[test]
    fn a_local_write_drops_the_events_copies_and_the_listing_is_never_copied() {
        let near = Near::default();
        let keys = Keys::new("p");
        let vouched = || Vouched {
            generation: 1,
            loaded_at_ms: now_ms(),
            current: true,
        };
        near.put(&availability(&keys, 1), false, &served("a"), vouched());
        near.put(&availability(&keys, 2), false, &served("b"), vouched());
        near.put(&listing(&keys), false, &served("l"), vouched());
        near.forget(&availability(&keys, 1).generation);
        assert_eq!(near.get(&availability(&keys, 1), &Accept::default()), None);
        assert!(near
            .get(&availability(&keys, 2), &Accept::default())
            .is_some());
        assert_eq!(near.get(&listing(&keys), &Accept::default()), None);
        assert!(near
            .last_good(&availability(&keys, 2), &Accept::default())
            .is_some());
    }
}
