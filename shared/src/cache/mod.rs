//! The Redis read-through cache for event reads, and the service's live counters.
//!
//! Reads: `MGET value generation` is the whole hit path (one round trip, with the catalog's
//! generation pipelined alongside for reads that may find nothing), plus one pipelined counter
//! write. Every cached value carries a stamp ([`keys::Stamp`]) taken the moment its loader
//! started: the generation of its event (or of the catalog), and the run of the Redis server that
//! generation was read from. Writers of that event (a confirmed booking) bump the generation
//! *before* their response is sent, so a value loaded before the write can never be served after
//! it, even when its `SET` lands late.
//!
//! What can go wrong with that, and what is done about it:
//!
//! - **An invalidation fails** (Redis unreachable from this environment). It is sent even while
//!   requests leave Redis alone after a failure, and retried a few times within a small budget
//!   ([`link::RedisLink::deliver`]). If it still fails, this environment *owes* it ([`debts`]): its
//!   own readers of the event go to PostgreSQL until it is delivered, a background task delivers it
//!   as soon as Redis answers, and it is counted (`/metrics`, and the `CacheInvalidationFailed`
//!   metric). Other environments serve the old value only while this one cannot reach Redis (and at
//!   most for the TTL): there is nothing else they could be told through.
//! - **Redis restarts with its data** (from an RDB snapshot or AOF taken before the bump, or a
//!   replica that lagged is promoted): the generation and the value are both older than the booking
//!   and agree with each other. The run in the stamp fences them: the server's `run_id` is new after
//!   every restart, so nothing written in an earlier run is current. A restart costs one cold cache.
//! - **A late write**: a load that started before a commit may finish after it. Its stamp is older
//!   than the generation, and single flight is keyed by the stamp, so a reader that has already
//!   seen the new generation never waits for, or is handed, that load. A load that takes longer
//!   than the loading lock lives is not written at all, which bounds how long after a commit a value
//!   from before it can still be written (and so how long a debt has to be kept).
//! - **A flood of reads of an id that does not exist**: "not found" is cached briefly
//!   ([`ABSENT_TTL`]), stamped with the catalog's generation as well, which creating an event bumps.
//!
//! Stampedes: within a process, one loader per key and stamp and the rest wait for it ([`flight`]);
//! across processes (one Lambda environment per request), a short `SET NX` lock lets one
//! environment load while the others poll the key briefly before falling back to PostgreSQL.
//!
//! Redis trouble never fails a request: every command has a hard timeout, and after a failure the
//! cache is bypassed for a moment ([`link`]) so a dead Redis costs one timeout, not one per request.

mod counters;
mod debts;
mod flight;
mod keys;
pub(crate) mod link;

pub use counters::CacheStats;
pub use keys::{CacheKey, Keys};

use crate::config::CacheSettings;
use crate::error::ApiError;
use bytes::Bytes;
use debts::Debts;
use flight::Flights;
use keys::{Current, Stamp};
use link::{RedisLink, Run};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bumped whenever the shape of a cached value changes, so a deploy never reads an old shape.
/// (The stamp's `<generation>@<run>` shape did not need it: no earlier reader parses it as
/// current; and the generation keys, which every environment bumps, must keep their names across
/// a deploy.)
pub const SCHEMA_VERSION: u32 = 1;

/// How long a loader holds the cross-process lock at most (it is released as soon as it is done).
/// A load that took longer is served but not written (see [`Cache::fill`]).
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How often, and how many times, a process that lost the lock looks for the winner's value.
const POLL_EVERY: Duration = Duration::from_millis(10);
const POLLS: u32 = 30;
/// How long "no such event" is cached: a flood of reads of an unknown id costs one query per key
/// per this, and an id that comes to exist is found at once (creating an event bumps the catalog
/// generation that a cached "not found" carries).
pub const ABSENT_TTL: Duration = Duration::from_secs(5);

/// A read the cache can serve: the JSON body, or `None` for "no such thing".
/// `Bytes`: served as it came from Redis, without copying 27 KB seat maps around.
pub type Body = Option<Bytes>;

/// What a loader produced: the body, and how long it stays true at most when that is known to be
/// shorter than the TTL (a seat map with a hold that lapses in 40 s is cached for 40 s).
pub struct Loaded {
    pub body: Body,
    pub max_age: Option<Duration>,
}

impl From<Body> for Loaded {
    fn from(body: Body) -> Self {
        Loaded {
            body,
            max_age: None,
        }
    }
}

pub struct Cache {
    link: Arc<RedisLink>,
    keys: Keys,
    ttl: Duration,
    flights: Flights,
    debts: Arc<Debts>,
}

impl Cache {
    /// Builds the cache without connecting: the first command connects, and a Redis that is down at
    /// cold start is simply retried later.
    pub fn new(settings: &CacheSettings) -> Result<Self, redis::RedisError> {
        let keys = Keys::new(&settings.prefix);
        // Every value from before a failed invalidation is gone by then: it was written at most
        // LOCK_TTL after its load started (before the commit), and lives at most the TTL.
        let horizon = settings.ttl + 2 * LOCK_TTL;
        let debts = Debts::new(horizon, keys.counter(counters::INVALIDATIONS_FAILED));
        Ok(Cache {
            link: Arc::new(RedisLink::new(settings)?),
            keys,
            ttl: settings.ttl,
            flights: Flights::default(),
            debts: Arc::new(debts),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The cache's connection, which the write rate limiter ([`crate::ratelimit`]) shares: one
    /// Redis, one timeout, and one back-off when it is down.
    pub(crate) fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Serves `key` from Redis, or loads it with `load` and stores it for the TTL.
    pub async fn read_through<F, Fut>(&self, key: &CacheKey, load: F) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        let started = Instant::now();
        if self.owed(key) {
            self.settle().await;
            if self.owed(key) {
                // This process could not invalidate the key: what Redis holds may be from before
                // a booking this process confirmed. PostgreSQL answers, and nothing is stored.
                return load().await.map(|loaded| loaded.body);
            }
        }
        let Ok((found, stamp)) = self.lookup(key).await else {
            // Redis is unavailable: PostgreSQL answers, and there is nothing to count into.
            return load().await.map(|loaded| loaded.body);
        };
        let cached = match found {
            Current::Found(body) => Some(Some(body)),
            Current::Absent => Some(None),
            Current::Stale => None,
        };
        if let Some(body) = cached {
            self.link
                .pipe_quietly(&counters::hit(&self.keys, started.elapsed()))
                .await;
            return Ok(body);
        }
        // Whether this request's own loader ran (it may have been served by another's instead).
        let loaded = AtomicBool::new(false);
        let counted_load = || {
            loaded.store(true, Ordering::Relaxed);
            load()
        };
        let result = self
            .flights
            .run(&stamp.flight(key), || self.fill(key, &stamp, counted_load))
            .await;
        let took = started.elapsed();
        self.link
            .pipe_quietly(&counters::miss(
                &self.keys,
                took,
                loaded.load(Ordering::Relaxed),
            ))
            .await;
        result
    }

    /// What Redis holds for `key`, and the stamp a value must carry to be current.
    async fn lookup(&self, key: &CacheKey) -> Result<(Current, Stamp), link::Unavailable> {
        let mut pipe = redis::pipe();
        self.look(key, &mut pipe);
        let (replies, run): (Vec<redis::Value>, Run) = self.link.query_pipe_in_run(&pipe).await?;
        read_look(key, replies, run).ok_or(link::Unavailable)
    }

    /// Adds the commands of a look at `key` to `pipe`: `MGET value generation`, and for a key that
    /// may cache "not found", `GET` of the generation that decides whether that is current.
    fn look(&self, key: &CacheKey, pipe: &mut redis::Pipeline) {
        pipe.cmd("MGET").arg(&key.value).arg(&key.generation);
        if let Some(absent) = &key.absent_generation {
            pipe.cmd("GET").arg(absent);
        }
    }

    /// The miss path of one key in this process: take the cross-process lock and load, or wait
    /// briefly for whoever holds it.
    async fn fill<F, Fut>(&self, key: &CacheKey, stamp: &Stamp, load: F) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        let lock = key.lock(stamp.generation);
        // Take the lock and look again in one round trip: a request that missed just before
        // another flight stored the value must not load it a second time.
        let mut take = redis::pipe();
        take.cmd("SET")
            .arg(&lock)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64);
        self.look(key, &mut take);
        let taken: Result<(Vec<redis::Value>, Run), _> = self.link.query_pipe_in_run(&take).await;
        let mut locked: Result<bool, link::Unavailable> = Err(link::Unavailable);
        if let Ok((mut replies, run)) = taken {
            if !replies.is_empty() {
                locked = Ok(replies.remove(0) != redis::Value::Nil);
            }
            let found = match read_look(key, replies, run) {
                Some((Current::Found(body), _)) => Some(Some(body)),
                Some((Current::Absent, _)) => Some(None),
                _ => None,
            };
            if let Some(body) = found {
                if let Ok(true) = locked {
                    let mut release = redis::pipe();
                    release.cmd("DEL").arg(&lock).ignore();
                    self.link.pipe_quietly(&release).await;
                }
                return Ok(body);
            }
        }
        if let Ok(false) = locked {
            for _ in 0..POLLS {
                tokio::time::sleep(POLL_EVERY).await;
                match self.lookup(key).await {
                    Ok((Current::Found(body), _)) => return Ok(Some(body)),
                    Ok((Current::Absent, _)) => return Ok(None),
                    Ok((Current::Stale, _)) => continue,
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        let Loaded { body, max_age } = load().await?;
        let mut pipe = redis::pipe();
        // A load that outlived the lock is not written: a commit may have come and its
        // invalidation failed since, and a debt is kept only so long (see `Cache::new`).
        let stored = keys::stamp(stamp, body.as_deref()).filter(|_| started.elapsed() < LOCK_TTL);
        if let Some(stored) = stored {
            let ttl = match &body {
                Some(_) => max_age.map_or(self.ttl, |age| age.min(self.ttl)),
                None => ABSENT_TTL.min(self.ttl),
            };
            pipe.cmd("SET")
                .arg(&key.value)
                .arg(stored)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .ignore();
        }
        if let Ok(true) = locked {
            pipe.cmd("DEL").arg(&lock).ignore();
        }
        if pipe.cmd_iter().next().is_some() {
            self.link.pipe_quietly(&pipe).await;
        }
        Ok(body)
    }

    /// A booking of `event_id` committed: its cached reads are stale from now on. Awaited before
    /// the booking's 201 is sent, so the booker's next read is fresh.
    pub async fn booking_confirmed(&self, event_id: i64) {
        self.invalidate(
            &self.keys.event_generation(event_id),
            Some(counters::BOOKINGS_CONFIRMED),
        )
        .await;
    }

    /// Seats of `event_id` changed hands without a new confirmed booking (a hold, a cancellation,
    /// a hold confirmed): its cached reads are stale from now on.
    pub async fn event_changed(&self, event_id: i64) {
        self.invalidate(&self.keys.event_generation(event_id), None)
            .await;
    }

    /// Bumps `generation` (and counts `counter`), along with whatever this process owes; never
    /// skipped while the link backs off, retried, and owed when it still fails.
    async fn invalidate(&self, generation: &str, counter: Option<&str>) {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(generation).ignore();
        if let Some(counter) = counter {
            pipe.cmd("INCR").arg(self.keys.counter(counter)).ignore();
        }
        let bill = self.debts.bill();
        if let Some(bill) = &bill {
            self.debts.charge(bill, &mut pipe);
        }
        match self.link.deliver(&pipe).await {
            Ok(()) => {
                if let Some(bill) = bill {
                    self.debts.paid(bill);
                }
            }
            Err(_) => {
                if let Some(bill) = bill {
                    self.debts.unpaid(bill);
                }
                crate::metrics::publish(crate::metrics::CACHE_INVALIDATION_FAILED, 1.0);
                tracing::warn!(
                    generation,
                    "an invalidation could not be delivered to Redis; owed until it answers"
                );
                self.debts.owe(generation);
                self.debts.settle_in_background(&self.link);
            }
        }
    }

    /// Whether this process owes an invalidation that `key`'s cached value depends on.
    fn owed(&self, key: &CacheKey) -> bool {
        self.debts.owes(&key.generation)
            || key
                .absent_generation
                .as_ref()
                .is_some_and(|absent| self.debts.owes(absent))
    }

    /// Delivers what this process owes, within a request: one try, and none while the link backs
    /// off (the background task keeps trying meanwhile).
    async fn settle(&self) {
        let Some(bill) = self.debts.bill() else {
            return;
        };
        let mut pipe = redis::pipe();
        self.debts.charge(&bill, &mut pipe);
        match self.link.query_pipe::<()>(&pipe).await {
            Ok(()) => self.debts.paid(bill),
            Err(_) => self.debts.unpaid(bill),
        }
    }

    /// A booking lost its race (409).
    pub async fn booking_conflicted(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(self.keys.counter(counters::BOOKING_CONFLICTS))
            .ignore();
        self.link.pipe_quietly(&pipe).await;
    }

    /// The catalog changed (an event was added): cached listings, and cached "not found"s, are
    /// stale.
    pub async fn catalog_changed(&self) {
        self.invalidate(&self.keys.catalog_generation(), None).await;
    }

    /// The counters, or `None` when Redis cannot be reached. Failed invalidations this process has
    /// not been able to count in Redis yet are included.
    pub async fn stats(&self) -> Option<CacheStats> {
        let mut stats = counters::read(&self.link, &self.keys).await?;
        stats.invalidations_failed += self.debts.uncounted();
        Some(stats)
    }
}

/// What a look at `key` found ([`Cache::look`]'s replies, from a server in `run`).
fn read_look(key: &CacheKey, replies: Vec<redis::Value>, run: Run) -> Option<(Current, Stamp)> {
    use redis::FromRedisValue;
    let mut replies = replies.into_iter();
    let (value, generation) =
        <(Option<Vec<u8>>, Option<u64>)>::from_redis_value(replies.next()?).ok()?;
    let absent_generation = match &key.absent_generation {
        Some(_) => Some(
            Option::<u64>::from_redis_value(replies.next()?)
                .ok()?
                .unwrap_or(0),
        ),
        None => None,
    };
    let stamp = Stamp {
        generation: generation.unwrap_or(0),
        run,
        absent_generation,
    };
    Some((keys::current(value, &stamp), stamp))
}
