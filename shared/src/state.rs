//! What every handler can reach, built once per process (per Lambda execution environment).

use crate::admission::Admission;
use crate::catalog::{EventLayout, VenueSeats};
use crate::config::{CacheSettings, Settings};
use crate::db::{self, DbSetupError, Pool};
use crate::error::ApiError;
use crate::ratelimit::RateLimiter;
use crate::recent::Recent;
use crate::remembered::Remembered;
use crate::rooms::Rooms;
use crate::turns::Turns;
use seatbook_cache::{Accept, Body, Cache, CacheKey, Flights, Keys, Loaded};
use std::future::Future;
use std::sync::Arc;

/// The state, behind one reference count: the router clones it for every request (and drops the
/// clone after), and one count instead of one per field was 12 % of the server's CPU on cached
/// reads (`perf`: the clones' atomic counts bouncing between cores).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct Shared {
    pub db: Pool,
    /// `None` when no cache is configured.
    pub cache: Option<Arc<Cache>>,
    /// How long a hold lasts.
    pub hold_ttl: std::time::Duration,
    /// The per-user write rate limit; `None` when it is off (or there is no Redis to keep it in).
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Seats this process has seen fought over in the last few seconds, per event: a booking of
    /// one looks before it books (see `booking_fn::claim`).
    pub contested: Arc<Recent>,
    /// Seats this process has just seen marked taken in Redis, per event, for as long as the near
    /// copy of a read lives: a herd's losers after the first are refused without a round trip
    /// each (see `booking_fn::claim`).
    pub seen_taken: Arc<Recent>,
    /// The reads of taken-seat marks under way, by event and seats, with when each was sent:
    /// a herd's requests share one (see `booking_fn::claim`).
    pub mark_reads: Arc<MarkReads>,
    /// Events for which this process's best-available picks have just found too few free seats:
    /// the next pick reads them first without the event's pick lock, and a shortage is answered
    /// from that read (see `booking_fn::pick`).
    pub scarce: Arc<Recent>,
    /// The waiting room's admission keys: the events function signs with them, the booking
    /// function verifies.
    pub admission: Arc<Admission>,
    /// Events' sales windows and waiting rooms, as this process has read them.
    pub rooms: Arc<Rooms>,
    /// Events' venues, sections and price categories, as this process has read them.
    pub layouts: Arc<Remembered<EventLayout>>,
    /// Venues' seats, as this process has read them.
    pub venue_seats: Arc<Remembered<VenueSeats>>,
    /// Best-available picks of an event take turns in this process (see `booking_fn::pick`).
    pub pick_turns: Arc<Turns>,
}

/// Reads of taken-seat marks in flight, by (event, seats). A read Redis could not answer is not
/// shared.
pub type MarkReads = Flights<(i64, Vec<i64>), MarkRead>;

/// What one read of an event's taken-seat marks saw (see `booking_fn::marks`).
#[derive(Debug, Clone)]
pub struct MarkRead {
    /// The seats asked about that carry a live mark.
    pub taken: Vec<i64>,
    /// When the read was sent.
    pub sent: std::time::Instant,
    /// The event's count of freed seats at the read: a conflict's mark is only written while it
    /// has not moved, so that it never lands after a cancellation cleared the seat.
    pub freed: String,
}

/// How long a conflict makes a seat worth looking at before booking it.
const CONTESTED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Db(#[from] DbSetupError),
    #[error("could not set up the cache: {0}")]
    Cache(#[from] seatbook_cache::Error),
}

/// The cache over `settings`, reporting to CloudWatch ([`crate::metrics::cache_signal`]).
pub fn cache(settings: &CacheSettings) -> Result<Cache, seatbook_cache::Error> {
    Cache::new(settings, crate::metrics::cache_signal)
}

impl AppState {
    /// Builds the state from settings; `default_pool_size` applies when `DB_POOL_MAX_SIZE` is unset.
    /// Opens no connection: the pool and the cache connect on first use.
    pub fn from_settings(
        settings: &Settings,
        default_pool_size: usize,
    ) -> Result<Self, SetupError> {
        let cache = match &settings.cache {
            Some(settings) => Some(Arc::new(cache(settings)?)),
            None => None,
        };
        let rate_limit = match (settings.rate_limit, &cache) {
            (Some(limit), Some(cache)) => Some(Arc::new(RateLimiter::new(cache.clone(), limit))),
            (Some(_), None) => {
                tracing::warn!(
                    "RATE_LIMIT_PER_USER_PER_SECOND is set but REDIS_URL is empty: the write rate \
                     limit lives in Redis, so writes are not limited"
                );
                None
            }
            (None, _) => None,
        };
        Ok(AppState(Arc::new(Shared {
            db: db::pool(&settings.database, default_pool_size)?,
            cache,
            hold_ttl: settings.hold_ttl,
            rate_limit,
            contested: Arc::new(Recent::new(CONTESTED_FOR)),
            seen_taken: Arc::new(Recent::new(seatbook_cache::NEAR_TTL)),
            mark_reads: Arc::default(),
            scarce: Arc::new(Recent::new(CONTESTED_FOR)),
            admission: Arc::new(Admission::new(
                settings.admission.keys.clone(),
                settings.admission.test_ttl,
            )),
            rooms: Arc::default(),
            layouts: Arc::new(Remembered::new(10_000)),
            venue_seats: Arc::new(Remembered::new(100)),
            pick_turns: Arc::default(),
        })))
    }

    /// The same state with `cache` instead (tests reach Redis another way).
    pub fn with_cache(mut self, cache: Option<Arc<Cache>>) -> AppState {
        Arc::make_mut(&mut self.0).cache = cache;
        self
    }

    /// `load`, through the cache when there is one, in an encoding `accept` allows.
    pub async fn read_through<F, Fut>(
        &self,
        key: impl FnOnce(&Keys) -> CacheKey,
        accept: Accept,
        load: F,
    ) -> Result<Body, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, ApiError>>,
    {
        match &self.cache {
            Some(cache) => cache.read_through(&key(cache.keys()), accept, load).await,
            None => load().await.map(|loaded| loaded.uncached(&accept)),
        }
    }
}
