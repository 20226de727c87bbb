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
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    /// When each pair was seen.
    seen: HashMap<(i64, i64), Instant>,
    /// When each pair was last forgotten: a read that began before then is not remembered.
    forgotten: HashMap<(i64, i64), Instant>,
}

impl Recent {
    /// Remembers each pair for `remember`.
    pub fn new(remember: Duration) -> Self {
        Recent {
            remember,
            memory: Mutex::default(),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `memory` has seen `(scope, id)` within the span, as of `now`.
    fn seen(&self, memory: &Memory, now: Instant, scope: i64, id: i64) -> bool {
        memory
            .seen
            .get(&(scope, id))
            .is_some_and(|at| now.duration_since(*at) < self.remember)
    }

    /// True when any of `ids` under `scope` was seen within the memory's span. Allocates
    /// nothing: it is asked on every booking.
    pub fn any(&self, scope: i64, ids: &[i64]) -> bool {
        let (now, memory) = (Instant::now(), self.memory());
        ids.iter().any(|id| self.seen(&memory, now, scope, *id))
    }

    /// Those of `ids` under `scope` seen within the memory's span, in the order given.
    pub fn which(&self, scope: i64, ids: &[i64]) -> Vec<i64> {
        let (now, memory) = (Instant::now(), self.memory());
        ids.iter()
            .copied()
            .filter(|id| self.seen(&memory, now, scope, *id))
            .collect()
    }

    /// Forgets `ids` under `scope`, and refuses what a read begun before now says of them.
    pub fn forget(&self, scope: i64, ids: &[i64]) {
        let now = Instant::now();
        let mut memory = self.memory();
        self.sweep(&mut memory, now);
        for id in ids {
            memory.seen.remove(&(scope, *id));
            memory.forgotten.insert((scope, *id), now);
        }
    }

    /// Remembers `ids` under `scope`, from now.
    pub fn note(&self, scope: i64, ids: &[i64]) {
        self.note_read(scope, ids, Instant::now());
    }

    /// Remembers `ids` under `scope` as a read begun at `read_at` found them, except those
    /// forgotten since (a reader must not put back what a write took away meanwhile).
    pub fn note_read(&self, scope: i64, ids: &[i64], read_at: Instant) {
        let mut memory = self.memory();
        self.sweep(&mut memory, Instant::now());
        for id in ids {
            let key = (scope, *id);
            if memory.forgotten.get(&key).is_some_and(|at| *at >= read_at) {
                continue;
            }
            memory.seen.insert(key, read_at);
        }
    }

    /// Past [`SWEEP_AT`] entries, drops those older than the span (both kinds: a forget older
    /// than the span fences no read still worth keeping).
    fn sweep(&self, memory: &mut Memory, now: Instant) {
        if memory.seen.len() + memory.forgotten.len() < SWEEP_AT {
            return;
        }
        let fresh = |at: &mut Instant| now.duration_since(*at) < self.remember;
        memory.seen.retain(|_, at| fresh(at));
        memory.forgotten.retain(|_, at| fresh(at));
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
        let read_at = Instant::now();
        recent.forget(7, &[2]);
        assert_eq!(recent.which(7, &[1, 2]), [1]);
        recent.note_read(7, &[2], read_at);
        assert!(
            !recent.any(7, &[2]),
            "a read from before the forget is not kept"
        );
        recent.note_read(7, &[2], Instant::now());
        assert!(recent.any(7, &[2]));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!recent.any(7, &[1]));
        assert!(recent.which(7, &[1]).is_empty());
    }
}
