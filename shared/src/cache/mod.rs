//! The Redis read-through cache for event reads, and the service's live counters.
//!
//! Reads: `MGET value generation` is the whole hit path (one round trip, with the catalog's
//! generation pipelined alongside for reads that may find nothing); hits are counted in the
//! process and carried to Redis by its next command. Every value is stored twice, plain and gzipped ([`encoded`]), each with its entity tag,
//! so a poll answered 304 or gzip costs no serialising or compressing. Every cached value carries
//! a stamp ([`keys::Stamp`]) taken the moment its loader started: the generation of its event (or
//! of the catalog), and the run of the Redis server that generation was read from. Writers of that
//! event (a booking, a hold, a cancellation) bump the generation *before* their response is sent,
//! and the response names the generation they left (`Seatbook-Event-Version`).
//!
//! Bounded staleness: during an on-sale the generation moves with every booking, so a value is
//! nearly always behind it. A value that is behind is still served for [`MAX_STALE`] after its load
//! started, and once it is [`REFRESH_AFTER`] old one reader (per key, across processes) reloads it
//! while the others keep being served the old one: at most a few loads per key per second however
//! fast bookings come, and no reader waits on PostgreSQL but the one refreshing. The writer's own
//! reads are exact: a read naming a version ([`Accept::min_generation`]) is never served a value
//! loaded before it, and waits for (or makes) the refresh that shows the write. A value older than
//! [`MAX_STALE`] is never served behind, so without readers nothing stale lingers.
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
//!   seen the new generation never waits for, or is handed, that load; and it is not stored over
//!   a value loaded at a newer generation (the store is one Lua script that compares). A load that takes longer
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
mod encoded;
mod flight;
mod keys;
pub(crate) mod link;
mod marks;
mod near;

pub use counters::CacheStats;
pub use encoded::{Accept, Served};
pub use keys::{CacheKey, Keys};
pub use marks::MarkChange;
pub use near::NEAR_TTL;

use crate::config::CacheSettings;
use crate::error::ApiError;
use bytes::Bytes;
use debts::Debts;
use encoded::Fresh;
use flight::Flights;
use keys::{Current, Stamp};
use link::{RedisLink, Run};
use near::{Near, Vouched};
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

/// What a read produced: the body as served, or `None` for "no such thing".
pub type Body = Option<Served>;

/// How long a value that is behind (a write came after its load started) may still be served to
/// readers that did not make that write. The on-sale case: bookings bump an event's generation
/// many times a second, and without this nearly every read of its seat map would miss.
pub const MAX_STALE: Duration = Duration::from_millis(1000);
/// How old a value that is behind must be before one reader refreshes it (the others keep being
/// served it meanwhile): at most about one load per key per this, however fast the bookings come.
pub const REFRESH_AFTER: Duration = Duration::from_millis(200);
/// How long a refresh may hold its key's refresh lock at most (it is released when done).
const REFRESH_LOCK_TTL: Duration = Duration::from_millis(1000);

/// What a loader produced: the body, and how long it stays true at most when that is known (a
/// seat map whose first hold lapses in 40 s): past that it is behind, as after a write.
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
    hits: counters::PendingHits,
    near: Near,
}

/// Stores a loaded value's two encodings, unless what is there was loaded at a newer generation in
/// the same run of Redis: a load that finishes late (it started before a write, another reader's
/// load after it landed first) must not put an older seat map back.
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
            store: redis::Script::new(STORE),
            unlock: redis::Script::new(UNLOCK),
            hits: Default::default(),
            near: Near::default(),
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

    /// Serves `key` from Redis in an encoding `accept` allows, or loads it with `load` and stores
    /// it (plain and gzipped) for the TTL.
    ///
    /// A value that is behind its key's generation is still served within [`MAX_STALE`] of its
    /// load, unless the reader made a write it does not show (`accept.min_generation`); once it
    /// is [`REFRESH_AFTER`] old, one reader at a time reloads it. A reader that needs a newer value
    /// than the one there waits for that refresh (or makes it) rather than loading on its own.
    pub async fn read_through<F, Fut>(
        &self,
        key: &CacheKey,
        accept: Accept,
        load: F,
    ) -> Result<Body, ApiError>
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
                return load().await.map(|loaded| loaded.uncached(&accept));
            }
        }
        if let Some(served) = self.near.get(key, &accept) {
            self.hits.add(started.elapsed());
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
                    self.hits.add(started.elapsed());
                    let vouched = Vouched {
                        generation: stamp.generation,
                        loaded_at_ms: hit.meta.loaded_at_ms,
                        current: true,
                    };
                    return Ok(Some(self.copied(key, &accept, hit.into(), vouched)));
                }
                Current::Absent => {
                    self.hits.add(started.elapsed());
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
                self.hits.add(started.elapsed());
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
        self.link
            .pipe_quietly(&counters::miss(
                &self.keys,
                started.elapsed(),
                loaded.load(Ordering::Relaxed),
            ))
            .await;
        result
    }

    /// Keeps `served` as this process's copy of `key` ([`near`]) and hands it back.
    fn copied(&self, key: &CacheKey, accept: &Accept, served: Served, vouched: Vouched) -> Served {
        self.near.put(key, accept.gzip, &served, vouched);
        served
    }

    /// Redis cannot be reached: the last good copy within the staleness bound, or PostgreSQL, one
    /// load per key at a time in this process (the readers that come meanwhile share it).
    async fn without_redis<F, Fut>(
        &self,
        key: &CacheKey,
        accept: Accept,
        load: F,
    ) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
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
        let mut cmd = redis::cmd("SET");
        cmd.arg(lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        matches!(self.link.query::<Option<String>>(&cmd).await, Ok(Some(_))).then_some(token)
    }

    /// What Redis holds for `key` in the encoding asked for, and the stamp a value must carry to
    /// be current.
    async fn lookup(
        &self,
        key: &CacheKey,
        gzip: bool,
    ) -> Result<(Current, Stamp), link::Unavailable> {
        let mut pipe = redis::pipe();
        self.look(key, gzip, &mut pipe);
        let (replies, run): (Vec<redis::Value>, Run) = self.link.query_pipe_in_run(&pipe).await?;
        read_look(key, replies, run).ok_or(link::Unavailable)
    }

    /// Adds the commands of a look at `key` to `pipe`: `MGET value generation`, and for a key that
    /// may cache "not found", `GET` of the generation that decides whether that is current.
    /// The hits this process counted since its last command ride along (replies ignored).
    fn look(&self, key: &CacheKey, gzip: bool, pipe: &mut redis::Pipeline) {
        self.hits.carry(&self.keys, pipe);
        pipe.cmd("MGET").arg(key.encoded(gzip)).arg(&key.generation);
        if let Some(absent) = &key.absent_generation {
            pipe.cmd("GET").arg(absent);
        }
    }

    /// The miss path of one key in this process: take the cross-process lock and load, or wait
    /// briefly for whoever holds it.
    async fn fill<F, Fut>(
        &self,
        key: &CacheKey,
        stamp: &Stamp,
        accept: Accept,
        load: F,
    ) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        let lock = key.lock(stamp.generation);
        let token = uuid::Uuid::new_v4().simple().to_string();
        // Take the lock and look again in one round trip: a request that missed just before
        // another flight stored the value must not load it a second time.
        let mut take = redis::pipe();
        take.cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64);
        self.look(key, accept.gzip, &mut take);
        let taken: Result<(Vec<redis::Value>, Run), _> = self.link.query_pipe_in_run(&take).await;
        let mut locked: Result<bool, link::Unavailable> = Err(link::Unavailable);
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
    async fn load_and_store<F, Fut>(
        &self,
        key: &CacheKey,
        stamp: &Stamp,
        load: F,
    ) -> Result<Option<Fresh>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        let started = Instant::now();
        let loaded_at_ms = now_ms();
        let Loaded { body, max_age } = load().await?;
        // A value that stops being true at a known time (a hold lapses) is not dropped then:
        // from then on it is behind, as after a write, and refreshed within the same bound. So
        // lapsing holds cost a load per REFRESH_AFTER at most, not one each.
        let until_ms = max_age.map(|age| loaded_at_ms + age.as_millis() as u64);
        let fresh = body.map(|body| {
            let mut fresh = Fresh::new(body, loaded_at_ms, true);
            fresh.meta.until_ms = until_ms;
            fresh
        });
        // A load that outlived the lock is not written: a commit may have come and its
        // invalidation failed since, and a debt is kept only so long (see `Cache::new`).
        if started.elapsed() >= LOCK_TTL {
            return Ok(fresh);
        }
        let (plain, gzip, ttl) = match &fresh {
            Some(fresh) => {
                let ttl = self.ttl;
                let encoded = |gzip| {
                    let (compressed, bytes) = fresh.encoded(gzip);
                    keys::stamp(stamp, &fresh.meta, compressed, bytes)
                };
                (encoded(false), encoded(true), ttl)
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

    /// A booking of `event_id` committed: its cached reads are stale from now on, and `marks`
    /// changes its taken seats in the same round trip. Awaited before the booking's 201 is sent,
    /// so the booker's next read is fresh. Returns the event's version after it (`None` when Redis
    /// could not be told), which the booker's reads may name ([`Accept::min_generation`]) to be
    /// served nothing older.
    pub async fn booking_confirmed(&self, event_id: i64, marks: MarkChange<'_>) -> Option<u64> {
        self.invalidate(
            &self.keys.event_generation(event_id),
            Some(counters::BOOKINGS_CONFIRMED),
            (&self.keys.taken_seats(event_id), marks),
        )
        .await
    }

    /// Seats of `event_id` changed hands without a new confirmed booking (a hold, a cancellation,
    /// a hold confirmed): its cached reads are stale from now on, and `marks` changes its taken
    /// seats. Returns the event's version after it, as [`Cache::booking_confirmed`] does.
    pub async fn event_changed(&self, event_id: i64, marks: MarkChange<'_>) -> Option<u64> {
        self.invalidate(
            &self.keys.event_generation(event_id),
            None,
            (&self.keys.taken_seats(event_id), marks),
        )
        .await
    }

    /// Bumps `generation` (and counts `counter`), along with whatever this process owes; never
    /// skipped while the link backs off, retried, and owed when it still fails. Returns the new
    /// generation when it was delivered.
    async fn invalidate(
        &self,
        generation: &str,
        counter: Option<&str>,
        (set, marks): (&str, MarkChange<'_>),
    ) -> Option<u64> {
        self.near.forget(generation);
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(generation);
        if let Some(counter) = counter {
            pipe.cmd("INCR").arg(self.keys.counter(counter)).ignore();
        }
        marks.add_to(set, &mut pipe);
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
                crate::metrics::publish(crate::metrics::CACHE_INVALIDATION_FAILED, 1.0);
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

    /// A booking lost its race (409): counted in the process, carried to Redis by its next command.
    pub fn booking_conflicted(&self) {
        self.hits.add_conflict();
    }

    /// The catalog changed (an event was added): cached listings, and cached "not found"s, are
    /// stale.
    pub async fn catalog_changed(&self) {
        self.invalidate(
            &self.keys.catalog_generation(),
            None,
            ("", MarkChange::Keep),
        )
        .await;
    }

    /// The counters, or `None` when Redis cannot be reached. Failed invalidations this process has
    /// not been able to count in Redis yet are included.
    pub async fn stats(&self) -> Option<CacheStats> {
        let mut stats = counters::read(&self.link, &self.keys, &self.hits).await?;
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
