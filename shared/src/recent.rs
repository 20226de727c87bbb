//! A process's short memory of things it has just seen happen: pairs of ids (an event and a
//! seat), each remembered for a while. The booking function remembers the seats it has seen
//! fought over, to look before it books them, and for a moment the seats it has seen marked taken
//! (see `booking_fn::claim`). Nothing is decided from this memory that a hint could not decide.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many entries, forgotten ones are swept out.
const SWEEP_AT: usize = 10_000;

pub struct Recent {
    remember: Duration,
    seen: Mutex<HashMap<(i64, i64), Instant>>,
}

impl Recent {
    /// Remembers each pair for `remember`.
    pub fn new(remember: Duration) -> Self {
        Recent {
            remember,
            seen: Mutex::default(),
        }
    }

    /// True when any of `ids` under `scope` was seen within the memory's span.
    pub fn any(&self, scope: i64, ids: &[i64]) -> bool {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().any(|id| {
            seen.get(&(scope, *id))
                .is_some_and(|at| now.duration_since(*at) < self.remember)
        })
    }

    /// Those of `ids` under `scope` seen within the memory's span, in the order given.
    pub fn which(&self, scope: i64, ids: &[i64]) -> Vec<i64> {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .copied()
            .filter(|id| {
                seen.get(&(scope, *id))
                    .is_some_and(|at| now.duration_since(*at) < self.remember)
            })
            .collect()
    }

    /// Forgets `ids` under `scope`.
    pub fn forget(&self, scope: i64, ids: &[i64]) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            seen.remove(&(scope, *id));
        }
    }

    /// Remembers `ids` under `scope`, from now.
    pub fn note(&self, scope: i64, ids: &[i64]) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, at| now.duration_since(*at) < self.remember);
        }
        for id in ids {
            seen.insert((scope, *id), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_remembered_for_its_span_and_alone() {
        let recent = Recent::new(Duration::from_millis(50));
        recent.note(7, &[1, 2]);
        assert!(recent.any(7, &[2, 3]));
        assert!(!recent.any(7, &[3]));
        assert!(!recent.any(8, &[1]));
        assert_eq!(recent.which(7, &[3, 2, 1]), [2, 1]);
        recent.forget(7, &[2]);
        assert_eq!(recent.which(7, &[1, 2]), [1]);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!recent.any(7, &[1]));
        assert!(recent.which(7, &[1]).is_empty());
    }
}
