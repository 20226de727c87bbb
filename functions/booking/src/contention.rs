//! Seats this process has recently seen fought over.
//!
//! In an on-sale herd, thousands of requests want a seat that one of them has already won. Each
//! loser that goes through the booking transaction costs PostgreSQL a BEGIN, the whole booking
//! statement, a unique-violation abort and a ROLLBACK. Once a seat has produced a conflict here,
//! requests for it first ask PostgreSQL (one indexed read, no transaction) whether it is still
//! taken, and a taken seat is refused with that answer. Nothing is decided from this memory: it
//! only chooses when to look first, and the unique constraint still arbitrates every write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a conflict makes a seat worth checking first.
const REMEMBER: Duration = Duration::from_secs(5);
/// Past this many entries, forgotten ones are swept out.
const SWEEP_AT: usize = 10_000;

static CONTESTED: Mutex<Option<HashMap<(i64, i64), Instant>>> = Mutex::new(None);

/// True when any of `seats` of `event_id` had a conflict here recently.
pub(crate) fn any(event_id: i64, seats: &[i64]) -> bool {
    let now = Instant::now();
    let guard = CONTESTED.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().is_some_and(|map| {
        seats.iter().any(|seat| {
            map.get(&(event_id, *seat))
                .is_some_and(|seen| now.duration_since(*seen) < REMEMBER)
        })
    })
}

/// Remembers that `seats` of `event_id` were just found taken.
pub(crate) fn mark(event_id: i64, seats: &[i64]) {
    let now = Instant::now();
    let mut guard = CONTESTED.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() >= SWEEP_AT {
        map.retain(|_, seen| now.duration_since(*seen) < REMEMBER);
    }
    for seat in seats {
        map.insert((event_id, *seat), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_remembered_for_its_seats_only() {
        mark(-7, &[1, 2]);
        assert!(any(-7, &[2, 3]));
        assert!(!any(-7, &[3]));
        assert!(!any(-8, &[1]));
    }
}
