//! The counters: cache hits and misses with their total time (`INCR` / `INCRBYFLOAT`, as the system
//! this replaces kept them), loads from PostgreSQL, booking outcomes, and invalidations that could
//! not be delivered in time.

use super::keys::Keys;
use super::link::RedisLink;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const HITS: &str = "cache_hits";
const MISSES: &str = "cache_misses";
const HIT_MS: &str = "cache_hit_ms";
const MISS_MS: &str = "cache_miss_ms";
const LOADS: &str = "cache_loads";
pub(crate) const BOOKINGS_CONFIRMED: &str = "bookings_confirmed";
pub(crate) const BOOKING_CONFLICTS: &str = "booking_conflicts";
/// Added when Redis can be reached again (an invalidation that failed could not be counted there).
pub(crate) const INVALIDATIONS_FAILED: &str = "invalidations_failed";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Times a value was loaded from PostgreSQL (several misses may share one load).
    pub loads: u64,
    pub hit_ms_total: f64,
    pub miss_ms_total: f64,
    pub bookings_confirmed: u64,
    pub booking_conflicts: u64,
    /// Invalidations (generation bumps) not delivered within their booking's time budget; each was
    /// owed until delivered later (see [`super::debts`]).
    pub invalidations_failed: u64,
}

/// Hits, counted in this process until the next command to Redis carries them: a hit is one
/// round trip (its `MGET`), not two. What is counted here reaches Redis with this process's next
/// lookup or stats read; an environment that ends before that loses its last few.
/// Booking conflicts are counted the same way: a herd's loser costs no Redis write of its own.
#[derive(Default)]
pub(crate) struct PendingHits(std::sync::Mutex<(u64, f64, u64)>);

impl PendingHits {
    pub(crate) fn add(&self, took: Duration) {
        {
            let mut pending = self.0.lock().expect("pending hits poisoned");
            pending.0 += 1;
            pending.1 += took.as_secs_f64() * 1000.0;
        }
        crate::metrics::count(crate::metrics::CACHE_HITS, 1.0);
    }

    /// A booking lost its race.
    pub(crate) fn add_conflict(&self) {
        self.0.lock().expect("pending hits poisoned").2 += 1;
    }

    /// Adds what is pending to `pipe` (replies ignored), and forgets it.
    pub(crate) fn carry(&self, keys: &Keys, pipe: &mut redis::Pipeline) {
        let (hits, ms, conflicts) =
            std::mem::take(&mut *self.0.lock().expect("pending hits poisoned"));
        if conflicts > 0 {
            pipe.cmd("INCRBY")
                .arg(keys.counter(BOOKING_CONFLICTS))
                .arg(conflicts)
                .ignore();
        }
        if hits > 0 {
            pipe.cmd("INCRBY")
                .arg(keys.counter(HITS))
                .arg(hits)
                .ignore()
                .cmd("INCRBYFLOAT")
                .arg(keys.counter(HIT_MS))
                .arg(ms)
                .ignore();
        }
    }
}

/// A miss; `loaded`: this request's loader queried PostgreSQL (rather than sharing another's load).
pub(crate) fn miss(keys: &Keys, took: Duration, loaded: bool) -> redis::Pipeline {
    crate::metrics::count(crate::metrics::CACHE_MISSES, 1.0);
    let mut pipe = timed(keys, MISSES, MISS_MS, took);
    if loaded {
        pipe.cmd("INCR").arg(keys.counter(LOADS)).ignore();
    }
    pipe
}

fn timed(keys: &Keys, count: &str, total: &str, took: Duration) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("INCR")
        .arg(keys.counter(count))
        .ignore()
        .cmd("INCRBYFLOAT")
        .arg(keys.counter(total))
        .arg(took.as_secs_f64() * 1000.0)
        .ignore();
    pipe
}

pub(crate) async fn read(
    link: &RedisLink,
    keys: &Keys,
    pending: &PendingHits,
) -> Option<CacheStats> {
    let names = [
        HITS,
        MISSES,
        LOADS,
        HIT_MS,
        MISS_MS,
        BOOKINGS_CONFIRMED,
        BOOKING_CONFLICTS,
        INVALIDATIONS_FAILED,
    ];
    let mut pipe = redis::pipe();
    pending.carry(keys, &mut pipe);
    let mget = pipe.cmd("MGET");
    for name in names {
        mget.arg(keys.counter(name));
    }
    let (values,): (Vec<Option<String>>,) = link.query_pipe(&pipe).await.ok()?;
    let int = |i: usize| {
        values[i]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let float = |i: usize| {
        values[i]
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Some(CacheStats {
        hits: int(0),
        misses: int(1),
        loads: int(2),
        hit_ms_total: float(3),
        miss_ms_total: float(4),
        bookings_confirmed: int(5),
        booking_conflicts: int(6),
        invalidations_failed: int(7),
    })
}
