//! The counters, kept in Redis so every process adds to the same ones: hits and misses with their
//! total time (`INCR` / `INCRBYFLOAT`), loads, bumps that could not be delivered in time, and any
//! counter of the user's ([`crate::Cache::tally`]).

use crate::keys::Keys;
use crate::link::{RedisLink, Unavailable};
use std::time::Duration;

const HITS: &str = "cache_hits";
const MISSES: &str = "cache_misses";
const HIT_MS: &str = "cache_hit_ms";
const MISS_MS: &str = "cache_miss_ms";
const LOADS: &str = "cache_loads";
/// Added when Redis can be reached again (a bump that failed could not be counted there).
pub(crate) const INVALIDATIONS_FAILED: &str = "invalidations_failed";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    /// Times a value was loaded (several misses may share one load).
    pub loads: u64,
    pub hit_ms_total: f64,
    pub miss_ms_total: f64,
    /// Bumps not delivered within their time budget; each was owed until delivered later.
    pub invalidations_failed: u64,
    /// The counters asked for, in the order asked.
    pub counters: Vec<u64>,
}

/// Counts made in this process until the next command to Redis carries them: a hit is one round
/// trip (its `MGET`), not two, and a tally costs no Redis write of its own. An environment that
/// ends before its next command loses its last few.
#[derive(Default)]
pub(crate) struct Pending(std::sync::Mutex<Counts>);

#[derive(Default)]
struct Counts {
    hits: u64,
    hit_ms: f64,
    tallies: Vec<(&'static str, u64)>,
}

impl Pending {
    pub(crate) fn hit(&self, took: Duration) {
        let mut pending = self.counts();
        pending.hits += 1;
        pending.hit_ms += took.as_secs_f64() * 1000.0;
    }

    pub(crate) fn tally(&self, counter: &'static str) {
        let tallies = &mut self.counts().tallies;
        match tallies.iter_mut().find(|(name, _)| *name == counter) {
            Some((_, n)) => *n += 1,
            None => tallies.push((counter, 1)),
        }
    }

    /// Adds what is pending to `pipe` (replies ignored), and forgets it.
    pub(crate) fn carry(&self, keys: &Keys, pipe: &mut redis::Pipeline) {
        let Counts {
            hits,
            hit_ms,
            tallies,
        } = std::mem::take(&mut *self.counts());
        for (counter, n) in tallies {
            pipe.cmd("INCRBY")
                .arg(keys.counter(counter))
                .arg(n)
                .ignore();
        }
        if hits > 0 {
            pipe.cmd("INCRBY")
                .arg(keys.counter(HITS))
                .arg(hits)
                .ignore()
                .cmd("INCRBYFLOAT")
                .arg(keys.counter(HIT_MS))
                .arg(hit_ms)
                .ignore();
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().expect("pending counts poisoned")
    }
}

/// A miss; `loaded`: this request's loader ran (rather than sharing another's load).
pub(crate) fn miss(keys: &Keys, took: Duration, loaded: bool) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("INCR")
        .arg(keys.counter(MISSES))
        .ignore()
        .cmd("INCRBYFLOAT")
        .arg(keys.counter(MISS_MS))
        .arg(took.as_secs_f64() * 1000.0)
        .ignore();
    if loaded {
        pipe.cmd("INCR").arg(keys.counter(LOADS)).ignore();
    }
    pipe
}

pub(crate) async fn read(
    link: &RedisLink,
    keys: &Keys,
    pending: &Pending,
    also: &[&str],
) -> Option<Stats> {
    let own = [HITS, MISSES, LOADS, HIT_MS, MISS_MS, INVALIDATIONS_FAILED];
    let mut pipe = redis::pipe();
    pending.carry(keys, &mut pipe);
    let mget = pipe.cmd("MGET");
    for name in own.iter().chain(also) {
        mget.arg(keys.counter(name));
    }
    let read: Result<(Vec<Option<String>>,), Unavailable> = link.query_pipe(&pipe).await;
    let (values,) = read.ok()?;
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
    Some(Stats {
        hits: int(0),
        misses: int(1),
        loads: int(2),
        hit_ms_total: float(3),
        miss_ms_total: float(4),
        invalidations_failed: int(5),
        counters: (own.len()..own.len() + also.len()).map(int).collect(),
    })
}
