//! A Redis read-through cache whose values may lag their writes by a bounded time, and never lag
//! the writer's own.
//!
//! Why it is built this way (docs/cache.md has the whole story):
//!
//! - **Generations, not deletes.** A writer bumps a value's generation ([`Cache::bump`]) before it
//!   answers, and every stored value carries the generation (and the Redis run, see [`link`]) its
//!   load started at. A lost delete would leave a stale value current; a stale stamp cannot be.
//! - **Bounded staleness.** A value that is behind is still served for [`MAX_STALE`] after its
//!   load started, and one reader per key refreshes it once it is [`REFRESH_AFTER`] old, so a key
//!   written many times a second costs a few loads a second. A reader naming the generation its
//!   own write left ([`Accept::min_generation`]) is never served anything older.
//! - **One round trip per hit, none for hot keys.** `MGET value generation` is the hit path; the
//!   process keeps its own copy for [`NEAR_TTL`] ([`near`]); both encodings and the `ETag` are
//!   made once per load ([`encoded`]).
//! - **Redis trouble never fails a request.** Every command has a timeout, a failure backs off for
//!   a moment, a bump that cannot land is owed and delivered later ([`debts`]), and readers go to
//!   the loader meanwhile. Stampedes share one load per process ([`flight`]) and, across
//!   processes, a short `SET NX` lock.
//!
//! The crate knows keys, generations and bytes; what is cached under which key, and which writes
//! bump which generation, is its users' business. What it observes it reports through a
//! [`Signal`] hook rather than any metrics system.

mod conditional;
mod counters;
mod debts;
mod encoded;
mod flight;
mod keys;
mod link;
mod near;

pub use conditional::{accepts_gzip, respond, IfNoneMatch};
pub use counters::Stats;
pub use encoded::{Accept, Served};
pub use keys::{CacheKey, Keys};
pub use link::Unavailable;
pub use near::NEAR_TTL;
/// The Redis client, for the commands a user adds to a bump or sends on the cache's connection.
pub use redis;

use bytes::Bytes;
use debts::Debts;
use encoded::Fresh;
pub use flight::Flights;
use keys::{Current, Stamp};
use link::{RedisLink, Run};
use near::{Near, Vouched};
use secrecy::SecretString;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bumped whenever the shape of a cached value changes, so a deploy never reads an old shape.
/// (Generation keys, which every environment bumps, keep their names across a deploy.)
pub const SCHEMA_VERSION: u32 = 1;

/// How long a loader holds the cross-process lock at most (it is released as soon as it is done).
/// A load that took longer is served but not written (see [`Cache::fill`]).
const LOCK_TTL: Duration = Duration::from_secs(5);
/// How often, and how many times, a process that lost the lock looks for the winner's value.
const POLL_EVERY: Duration = Duration::from_millis(10);
const POLLS: u32 = 30;
/// How long "not found" is cached: a flood of reads of an unknown id costs one load per key per
/// this, and one that comes to exist is found at once (its absent generation is bumped).
pub const ABSENT_TTL: Duration = Duration::from_secs(5);

/// How long a value that is behind (a write came after its load started) may still be served to
/// readers that did not make that write.
pub const MAX_STALE: Duration = Duration::from_millis(1000);
/// How old a value that is behind must be before one reader refreshes it (the others keep being
/// served it meanwhile): at most about one load per key per this, however fast the writes come.
pub const REFRESH_AFTER: Duration = Duration::from_millis(200);
/// How long a refresh may hold its key's refresh lock at most (it is released when done).
const REFRESH_LOCK_TTL: Duration = Duration::from_millis(1000);

/// What a read produced: the body as served, or `None` for "no such thing".
pub type Body = Option<Served>;

/// Where Redis is and how values live there.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `redis://` or `rediss://` (TLS, which ElastiCache Serverless requires).
    pub url: SecretString,
    /// Namespace of every key, so several deployments (or tests) can share one Redis.
    pub prefix: String,
    /// How long a cached value lives: the bound on staleness when a bump is lost.
    pub ttl: Duration,
    /// The most a Redis command may take before the request goes on without the cache.
    pub timeout: Duration,
    /// A PEM file of roots to trust for `rediss://` instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// Why the cache could not be set up. Nothing else fails: at run time Redis trouble degrades.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the Redis CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// What the cache reports as it goes, for its user's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A read served from this process's copy or Redis.
    Hit,
    /// A read that loaded, or waited for another's load.
    Miss,
    /// A Redis command failed, or was skipped because one just failed.
    RedisUnavailable,
    /// A bump that could not be delivered: owed until Redis answers.
    InvalidationFailed,
}

/// What a loader produced: the body, and how long it stays true at most when that is known (a
/// hold in it lapses in 40 s): past that it is behind, as after a write.
pub struct Loaded {
    pub body: Option<Bytes>,
    pub max_age: Option<Duration>,
}

impl From<Option<Bytes>> for Loaded {
    fn from(body: Option<Bytes>) -> Self {
        Loaded {
            body,
            max_age: None,
        }
    }
}

impl Loaded {
    /// Served as loaded, without a cache: plain, with its tag.
    pub fn uncached(self, accept: &Accept) -> Body {
        self.body
            .map(|body| Fresh::new(body, now_ms(), false).serve(accept))
    }
}

pub struct Cache {
    link: Arc<RedisLink>,
    keys: Keys,
    ttl: Duration,
    flights: Flights,
    debts: Arc<Debts>,
    store: redis::Script,
    unlock: redis::Script,
    pending: counters::Pending,
    near: Near,
}

/// Stores a loaded value's two encodings, unless what is there was loaded at a newer generation in
/// the same run of Redis: a load that finishes late must not put an older value back.
/// KEYS: plain, gzip. ARGV: generation, run, TTL in ms, plain bytes, gzip bytes.
const STORE: &str = r"
local there = redis.call('GET', KEYS[1])
if there then
  local generation, run = string.match(there, '^(%d+)@([^ !\n]*)')
  if generation and run == ARGV[2] and tonumber(generation) > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[3])
return 1
";

/// Deletes a lock only while it holds the caller's token. KEYS: the lock. ARGV: the token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

impl Cache {
    /// Builds the cache without connecting: the first command connects, and a Redis that is down at
    /// cold start is simply retried later. `observe` hears every [`Signal`].
    pub fn new(settings: &Settings, observe: fn(Signal)) -> Result<Self, Error> {
        let keys = Keys::new(&settings.prefix);
        // Every value from before a failed bump is gone by then: it was written at most LOCK_TTL
        // after its load started (before the write), and lives at most the TTL.
        let horizon = settings.ttl + 2 * LOCK_TTL;
        let debts = Debts::new(horizon, keys.counter(counters::INVALIDATIONS_FAILED));
        Ok(Cache {
            link: Arc::new(RedisLink::new(settings, observe)?),
            keys,
            ttl: settings.ttl,
            flights: Flights::default(),
            debts: Arc::new(debts),
            store: redis::Script::new(STORE),
            unlock: redis::Script::new(UNLOCK),
            pending: Default::default(),
            near: Near::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Serves `key` from Redis in an encoding `accept` allows, or loads it with `load` and stores
    /// it (plain and gzipped) for the TTL. A loader's error is the caller's, handed back as it is.
    ///
    /// A value that is behind its key's generation is still served within [`MAX_STALE`] of its
    /// load, unless the reader made a write it does not show (`accept.min_generation`); once it
    /// is [`REFRESH_AFTER`] old, one reader at a time reloads it. A reader that needs a newer value
    /// than the one there waits for that refresh (or makes it) rather than loading on its own.
    pub async fn read_through<F, Fut, E>(
        &self,
        key: &CacheKey,
        accept: Accept,
        load: F,
    ) -> Result<Body, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
    {
        let started = Instant::now();
        if self.owed(key) {
            self.settle().await;
            if self.owed(key) {
                // This process could not bump the key's generation: what Redis holds may be from
                // before a write this process made. The loader answers, and nothing is stored.
                return load().await.map(|loaded| loaded.uncached(&accept));
            }
        }
        if let Some(served) = self.near.get(key, &accept) {
            self.hit(started);
            return Ok(Some(served));
        }
        let Ok((mut found, mut stamp)) = self.lookup(key, accept.gzip).await else {
            return self.without_redis(key, accept, load).await;
        };
        // Whether this request's own loader ran (it may have been served by another's instead).
        let loaded = AtomicBool::new(false);
        let load = || {
            loaded.store(true, Ordering::Relaxed);
            load()
        };
        // The miss path this reader takes: refresh a value that is behind (holding the refresh
        // lock under this token), or fill a missing one.
        let refresh = loop {
            let (hit, generation, since_ms) = match found {
                Current::Found(hit) => {
                    self.hit(started);
                    let vouched = Vouched {
                        generation: stamp.generation,
                        loaded_at_ms: hit.meta.loaded_at_ms,
                        current: true,
                    };
                    return Ok(Some(self.copied(key, &accept, hit.into(), vouched)));
                }
                Current::Absent => {
                    self.hit(started);
                    return Ok(None);
                }
                Current::Behind {
                    hit,
                    generation,
                    since_ms,
                } if key.may_lag && since(since_ms) < MAX_STALE => (hit, generation, since_ms),
                Current::Behind { .. } | Current::Stale => break None,
            };
            if since(since_ms) >= REFRESH_AFTER {
                if let Some(token) = self.take(&key.refresh_lock(), REFRESH_LOCK_TTL).await {
                    break Some(token);
                }
            }
            if accept.min_generation.is_none_or(|min| generation >= min) {
                self.hit(started);
                let vouched = Vouched {
                    generation,
                    loaded_at_ms: since_ms,
                    current: false,
                };
                return Ok(Some(self.copied(key, &accept, hit.into(), vouched)));
            }
            // The reader's own write is not in it yet: wait for the refresh that will show it.
            if started.elapsed() >= MAX_STALE {
                break None;
            }
            tokio::time::sleep(POLL_EVERY).await;
            match self.lookup(key, accept.gzip).await {
                Ok((now_found, now_stamp)) => (found, stamp) = (now_found, now_stamp),
                Err(_) => break None,
            }
        };
        let flight = format!("{} {}", stamp.flight(key), accept.gzip);
        let result = if let Some(token) = refresh {
            self.flights
                .run(&flight, || async {
                    let fresh = self.load_and_store(key, &stamp, load).await;
                    self.release(&key.refresh_lock(), &token).await;
                    fresh.map(|fresh| fresh.map(|fresh| fresh.serve(&accept)))
                })
                .await
        } else {
            self.flights
                .run(&flight, || self.fill(key, &stamp, accept, load))
                .await
        };
        (self.link.observe)(Signal::Miss);
        let miss = counters::miss(
            &self.keys,
            started.elapsed(),
            loaded.load(Ordering::Relaxed),
        );
        let _ = self.link.query_pipe::<()>(&miss).await;
        result
    }

    /// Bumps `generation`, along with whatever this process owes and the commands `also` adds
    /// (each `.ignore()`d: only the bump's reply is read), in one pipeline. Awaited before the
    /// writer answers, so its next read is fresh. Never skipped while the link backs off, retried,
    /// and owed when it still fails. Returns the generation after the bump, which the writer's
    /// reads may name ([`Accept::min_generation`]), or `None` when Redis could not be told.
    pub async fn bump(
        &self,
        generation: &str,
        also: impl FnOnce(&mut redis::Pipeline),
    ) -> Option<u64> {
        self.near.forget(generation);
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(generation);
        also(&mut pipe);
        let bill = self.debts.bill();
        if let Some(bill) = &bill {
            self.debts.charge(bill, &mut pipe);
        }
        match self.link.deliver::<(u64,)>(&pipe).await {
            Ok((bumped,)) => {
                if let Some(bill) = bill {
                    self.debts.paid(bill);
                }
                Some(bumped)
            }
            Err(_) => {
                if let Some(bill) = bill {
                    self.debts.unpaid(bill);
                }
                (self.link.observe)(Signal::InvalidationFailed);
                tracing::warn!(
                    generation,
                    "an invalidation could not be delivered to Redis; owed until it answers"
                );
                self.debts.owe(generation);
                self.debts.settle_in_background(&self.link);
                None
            }
        }
    }

    /// Counts one `counter` in the process; the next command to Redis carries it, so counting
    /// costs no round trip of its own.
    pub fn tally(&self, counter: &'static str) {
        self.pending.tally(counter);
    }

    /// The cache's counters and the values of `counters` (in that order), or `None` when Redis
    /// cannot be reached. Failed bumps not counted in Redis yet are included.
    pub async fn stats(&self, counters: &[&str]) -> Option<Stats> {
        let mut stats = counters::read(&self.link, &self.keys, &self.pending, counters).await?;
        stats.invalidations_failed += self.debts.uncounted();
        Some(stats)
    }

    /// Sends the commands `build` adds on the cache's connection (its timeout and back-off), with
    /// the counts this process has pending (their replies ignored).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        build: impl FnOnce(&mut redis::Pipeline),
    ) -> Result<T, Unavailable> {
        let mut pipe = redis::pipe();
        self.pending.carry(&self.keys, &mut pipe);
        build(&mut pipe);
        self.link.query_pipe(&pipe).await
    }

    /// Runs a Lua script on the cache's connection.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        self.link.invoke(script).await
    }

    fn hit(&self, started: Instant) {
        self.pending.hit(started.elapsed());
        (self.link.observe)(Signal::Hit);
    }

    /// Keeps `served` as this process's copy of `key` ([`near`]) and hands it back.
    fn copied(&self, key: &CacheKey, accept: &Accept, served: Served, vouched: Vouched) -> Served {
        self.near.put(key, accept.gzip, &served, vouched);
        served
    }

    /// Redis cannot be reached: the last good copy within the staleness bound, or the loader, one
    /// load per key at a time in this process (the readers that come meanwhile share it).
    async fn without_redis<F, Fut, E>(
        &self,
        key: &CacheKey,
        accept: Accept,
        load: F,
    ) -> Result<Body, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
    {
        if let Some(served) = self.near.last_good(key, &accept) {
            return Ok(Some(served));
        }
        let loaded_at_ms = now_ms();
        let flight = format!("{} without redis {}", key.value, accept.gzip);
        let body = self
            .flights
            .run(&flight, || async {
                load().await.map(|loaded| loaded.uncached(&accept))
            })
            .await?;
        if let Some(served) = &body {
            // Generation 0: never served to a reader naming a version (see `near`).
            let vouched = Vouched {
                generation: 0,
                loaded_at_ms,
                current: false,
            };
            self.near.put(key, accept.gzip, served, vouched);
        }
        Ok(body)
    }

    /// Releases a lock this reader took under `token`, only if it still holds it: a reader whose
    /// lock expired while it loaded must not delete the next holder's.
    async fn release(&self, lock: &str, token: &str) {
        let mut unlock = self.unlock.key(lock);
        unlock.arg(token);
        let _ = self.link.invoke::<i64>(&unlock).await;
    }

    /// Takes a short lock (`SET NX PX`) under a fresh token; `None` when someone holds it or
    /// Redis did not answer.
    async fn take(&self, lock: &str, ttl: Duration) -> Option<String> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let cmd = lock_command(lock, &token, ttl);
        matches!(self.link.query::<Option<String>>(&cmd).await, Ok(Some(_))).then_some(token)
    }

    /// What Redis holds for `key` in the encoding asked for, and the stamp a value must carry to
    /// be current.
    async fn lookup(&self, key: &CacheKey, gzip: bool) -> Result<(Current, Stamp), Unavailable> {
        let mut pipe = redis::pipe();
        self.look(key, gzip, &mut pipe);
        let (replies, run): (Vec<redis::Value>, Run) = self.link.query_pipe_in_run(&pipe).await?;
        read_look(key, replies, run).ok_or(Unavailable)
    }

    /// Adds the commands of a look at `key` to `pipe`: `MGET value generation`, and for a key that
    /// may cache "not found", `GET` of the generation that decides whether that is current.
    /// The counts this process has pending ride along (replies ignored).
    fn look(&self, key: &CacheKey, gzip: bool, pipe: &mut redis::Pipeline) {
        self.pending.carry(&self.keys, pipe);
        pipe.cmd("MGET").arg(key.encoded(gzip)).arg(&key.generation);
        if let Some(absent) = &key.absent_generation {
            pipe.cmd("GET").arg(absent);
        }
    }

    /// The miss path of one key in this process: take the cross-process lock and load, or wait
    /// briefly for whoever holds it.
    async fn fill<F, Fut, E>(
        &self,
        key: &CacheKey,
        stamp: &Stamp,
        accept: Accept,
        load: F,
    ) -> Result<Body, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
    {
        let lock = key.lock(stamp.generation);
        let token = uuid::Uuid::new_v4().simple().to_string();
        // Take the lock and look again in one round trip: a request that missed just before
        // another flight stored the value must not load it a second time.
        let mut take = redis::pipe();
        take.add_command(lock_command(&lock, &token, LOCK_TTL));
        self.look(key, accept.gzip, &mut take);
        let taken: Result<(Vec<redis::Value>, Run), _> = self.link.query_pipe_in_run(&take).await;
        let mut locked: Result<bool, Unavailable> = Err(Unavailable);
        if let Ok((mut replies, run)) = taken {
            if !replies.is_empty() {
                locked = Ok(replies.remove(0) != redis::Value::Nil);
            }
            let found = match read_look(key, replies, run) {
                Some((Current::Found(hit), _)) => Some(Some(hit.into())),
                Some((Current::Absent, _)) => Some(None),
                _ => None,
            };
            if let Some(body) = found {
                if let Ok(true) = locked {
                    self.release(&lock, &token).await;
                }
                return Ok(body);
            }
        }
        if let Ok(false) = locked {
            for _ in 0..POLLS {
                tokio::time::sleep(POLL_EVERY).await;
                match self.lookup(key, accept.gzip).await {
                    Ok((Current::Found(hit), _)) => return Ok(Some(hit.into())),
                    Ok((Current::Absent, _)) => return Ok(None),
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
        let fresh = self.load_and_store(key, stamp, load).await;
        if let Ok(true) = locked {
            self.release(&lock, &token).await;
        }
        fresh.map(|fresh| fresh.map(|fresh| fresh.serve(&accept)))
    }

    /// Loads `key` and stores it at `stamp`: both encodings, or "not found" where that is cached.
    async fn load_and_store<F, Fut, E>(
        &self,
        key: &CacheKey,
        stamp: &Stamp,
        load: F,
    ) -> Result<Option<Fresh>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, E>>,
    {
        let started = Instant::now();
        let loaded_at_ms = now_ms();
        let Loaded { body, max_age } = load().await?;
        // A value that stops being true at a known time is not dropped then: from then on it is
        // behind, as after a write, and refreshed within the same bound.
        let until_ms = max_age.map(|age| loaded_at_ms + age.as_millis() as u64);
        let fresh = body.map(|body| {
            let mut fresh = Fresh::new(body, loaded_at_ms, true);
            fresh.meta.until_ms = until_ms;
            fresh
        });
        // A load that outlived the lock is not written: a write may have come and its bump
        // failed since, and a debt is kept only so long (see `Cache::new`).
        if started.elapsed() >= LOCK_TTL {
            return Ok(fresh);
        }
        let (plain, gzip, ttl) = match &fresh {
            Some(fresh) => {
                let encoded = |gzip| {
                    let (compressed, bytes) = fresh.encoded(gzip);
                    keys::stamp(stamp, &fresh.meta, compressed, bytes)
                };
                (encoded(false), encoded(true), self.ttl)
            }
            None => match keys::stamp_absent(stamp) {
                Some(stored) => (stored.clone(), stored, ABSENT_TTL.min(self.ttl)),
                None => return Ok(fresh),
            },
        };
        let mut store = self.store.key(key.encoded(false));
        store
            .key(key.encoded(true))
            .arg(stamp.generation)
            .arg(&*stamp.run)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(plain)
            .arg(gzip);
        if self.link.invoke::<i64>(&store).await.is_err() {
            tracing::debug!(key = key.value, "a loaded value could not be stored");
        }
        Ok(fresh)
    }

    /// Whether this process owes a bump that `key`'s cached value depends on.
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
}

/// `SET lock token NX PX ttl`: the one way a lock is taken, alone ([`Cache::take`]) or in a
/// pipeline with a look ([`Cache::fill`]); [`Cache::release`] deletes it only under `token`.
fn lock_command(lock: &str, token: &str, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(lock)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64);
    cmd
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
    Some((keys::current(value, &stamp, now_ms()), stamp))
}

/// Milliseconds since the Unix epoch: when a load started, as every environment's clock reads it.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// How long ago `at_ms` was.
fn since(at_ms: u64) -> Duration {
    Duration::from_millis(now_ms().saturating_sub(at_ms))
}

/// Keys laid out as the service lays out its event reads, for the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{CacheKey, Keys};

    /// A key that may lag and may cache "not found" (an event's seat map).
    pub(crate) fn availability(keys: &Keys, id: i64) -> CacheKey {
        let slot = format!("e{id}");
        CacheKey {
            value: keys.key(&slot, "availability"),
            generation: keys.key(&slot, "gen"),
            absent_generation: Some(keys.key("events", "gen")),
            may_lag: true,
        }
    }

    /// A key that must never lag (the listing).
    pub(crate) fn listing(keys: &Keys) -> CacheKey {
        CacheKey {
            value: keys.key("events", "list:10:-"),
            generation: keys.key("events", "gen"),
            absent_generation: None,
            may_lag: false,
        }
    }
}
