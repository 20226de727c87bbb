//! The Redis read-through cache for event reads, and the service's live counters.
//!
//! Reads: `MGET value generation` is the whole hit path (one round trip), plus one pipelined counter
//! write. Every cached value carries the generation of its event (or of the catalog) at the moment
//! its loader started; writers of that event (a confirmed booking) bump the generation *before*
//! their response is sent, so a value loaded before the write can never be served after it, even
//! when its `SET` lands late. Lost invalidations (Redis down) are bounded by the TTL.
//!
//! Stampedes: within a process, one loader per key and the rest wait for it ([`flight`]); across
//! processes (one Lambda environment per request), a short `SET NX` lock lets one environment load
//! while the others poll the key briefly before falling back to PostgreSQL themselves.
//!
//! Redis trouble never fails a request: every command has a hard timeout, and after a failure the
//! cache is bypassed for a moment ([`link`]) so a dead Redis costs one timeout, not one per request.

mod counters;
mod flight;
mod keys;
pub(crate) mod link;

pub use counters::CacheStats;
pub use keys::{CacheKey, Keys};

use crate::config::CacheSettings;
use crate::error::ApiError;
use bytes::Bytes;
use flight::Flights;
use link::RedisLink;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bumped whenever the shape of a cached value changes, so a deploy never reads an old shape.
pub const SCHEMA_VERSION: u32 = 1;

/// How long a loader holds the cross-process lock at most (it is released as soon as it is done).
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How often, and how many times, a process that lost the lock looks for the winner's value.
const POLL_EVERY: Duration = Duration::from_millis(10);
const POLLS: u32 = 30;

/// What `MGET value generation` returns.
type Stored = (Option<Vec<u8>>, Option<u64>);

/// A read the cache can serve: the JSON body, or `None` for "no such thing" (never cached).
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
    link: RedisLink,
    keys: Keys,
    ttl: Duration,
    flights: Flights,
}

impl Cache {
    /// Builds the cache without connecting: the first command connects, and a Redis that is down at
    /// cold start is simply retried later.
    pub fn new(settings: &CacheSettings) -> Result<Self, redis::RedisError> {
        Ok(Cache {
            link: RedisLink::new(settings)?,
            keys: Keys::new(&settings.prefix),
            ttl: settings.ttl,
            flights: Flights::default(),
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
        let Ok((value, generation)) = self.lookup(key).await else {
            // Redis is unavailable: PostgreSQL answers, and there is nothing to count into.
            return load().await.map(|loaded| loaded.body);
        };
        if let Some(body) = value {
            self.link
                .pipe_quietly(&counters::hit(&self.keys, started.elapsed()))
                .await;
            return Ok(Some(body));
        }
        // Whether this request's own loader ran (it may have been served by another's instead).
        let loaded = AtomicBool::new(false);
        let counted_load = || {
            loaded.store(true, Ordering::Relaxed);
            load()
        };
        let result = self
            .flights
            .run(&key.value, || self.fill(key, generation, counted_load))
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

    /// The value for `key` if it is current, and the generation it must carry to be current.
    async fn lookup(&self, key: &CacheKey) -> Result<(Option<Bytes>, u64), link::Unavailable> {
        let (value, generation): Stored = self
            .link
            .query(redis::cmd("MGET").arg(&key.value).arg(&key.generation))
            .await?;
        let generation = generation.unwrap_or(0);
        Ok((keys::current(value, generation), generation))
    }

    /// The miss path of one key in this process: take the cross-process lock and load, or wait
    /// briefly for whoever holds it.
    async fn fill<F, Fut>(&self, key: &CacheKey, generation: u64, load: F) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        let lock = key.lock();
        // Take the lock and look again in one round trip: a request that missed just before
        // another flight stored the value must not load it a second time.
        let mut take = redis::pipe();
        take.cmd("SET")
            .arg(&lock)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64)
            .cmd("MGET")
            .arg(&key.value)
            .arg(&key.generation);
        let taken: Result<(Option<String>, Stored), _> = self.link.query_pipe(&take).await;
        let locked: Result<bool, link::Unavailable> = match &taken {
            Ok((lock, _)) => Ok(lock.is_some()),
            Err(_) => Err(link::Unavailable),
        };
        if let Ok((_, (value, generation))) = taken {
            if let Some(body) = keys::current(value, generation.unwrap_or(0)) {
                if let Ok(true) = locked {
                    let mut release = redis::pipe();
                    release.cmd("DEL").arg(&lock).ignore();
                    self.link.pipe_quietly(&release).await;
                }
                return Ok(Some(body));
            }
        }
        if let Ok(false) = locked {
            for _ in 0..POLLS {
                tokio::time::sleep(POLL_EVERY).await;
                match self.lookup(key).await {
                    Ok((Some(body), _)) => return Ok(Some(body)),
                    Ok((None, _)) => continue,
                    Err(_) => break,
                }
            }
        }
        let Loaded { body, max_age } = load().await?;
        let mut pipe = redis::pipe();
        if let Some(body) = &body {
            let ttl = max_age.map_or(self.ttl, |age| age.min(self.ttl));
            pipe.cmd("SET")
                .arg(&key.value)
                .arg(keys::stamp(generation, body))
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
        let mut pipe = self.event_changed_pipe(event_id);
        pipe.cmd("INCR")
            .arg(self.keys.counter(counters::BOOKINGS_CONFIRMED))
            .ignore();
        self.link.pipe_quietly(&pipe).await;
    }

    /// Seats of `event_id` changed hands without a new confirmed booking (a hold, a cancellation,
    /// a hold confirmed): its cached reads are stale from now on.
    pub async fn event_changed(&self, event_id: i64) {
        self.link
            .pipe_quietly(&self.event_changed_pipe(event_id))
            .await;
    }

    fn event_changed_pipe(&self, event_id: i64) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(self.keys.event_generation(event_id))
            .ignore();
        pipe
    }

    /// A booking lost its race (409).
    pub async fn booking_conflicted(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(self.keys.counter(counters::BOOKING_CONFLICTS))
            .ignore();
        self.link.pipe_quietly(&pipe).await;
    }

    /// The catalog changed (an event was added): cached listings are stale.
    pub async fn catalog_changed(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(self.keys.catalog_generation())
            .ignore();
        self.link.pipe_quietly(&pipe).await;
    }

    /// The counters, or `None` when Redis cannot be reached.
    pub async fn stats(&self) -> Option<CacheStats> {
        counters::read(&self.link, &self.keys).await
    }
}
