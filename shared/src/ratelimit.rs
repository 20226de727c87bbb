//! The per-user write rate limit: a token bucket per user, kept in Redis.
//!
//! Every write a user makes (a booking, a hold, a confirmation, a cancellation) takes one token
//! from that user's bucket of `RATE_LIMIT_BURST` tokens, which refills at
//! `RATE_LIMIT_PER_USER_PER_SECOND`. An empty bucket answers 429 with `Retry-After` and the
//! `RateLimit-Policy` / `RateLimit` fields of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers); every admitted write carries the same two fields.
//!
//! - **One round trip, atomic.** The bucket is GCRA (the generic cell rate algorithm): a single
//!   number per user, the moment its bucket will be full again, read and moved on by one Lua script
//!   (`EVALSHA`, loaded on first use). Concurrent writes of one user are serialised by Redis
//!   running the script, not by a lock of ours; other users' buckets are other keys, so one user's
//!   burst never throttles another.
//! - **Redis's clock.** The script reads `TIME` on the Redis server, so Lambda environments with
//!   drifting clocks all agree on one timeline.
//! - **Isolated per deployment.** The key lives under the cache prefix (`CACHE_PREFIX`), in the
//!   user's own Redis Cluster slot, and expires when the bucket is full again.
//! - **Fails open.** It shares the cache's connection ([`seatbook_cache`]): a command that fails or
//!   times out lets the write through, is counted as `RedisUnavailable` (the metric
//!   `RedisUnavailableAlarm` watches) and logged; for a moment after a failure Redis is not tried
//!   at all, so a dead Redis costs one timeout, not one per write. PostgreSQL's unique constraint
//!   still decides every seat: the limiter only decides who gets to ask.
//!
//! API Gateway's stage throttling stays the outer ring: it caps the whole API (all users, all
//! routes) before a function runs; this limit is the inner, per-user one, a middleware ([`limit`])
//! on the routes that write.

use crate::config::RateLimitSettings;
use crate::domain::UserId;
use crate::error::ApiError;
use crate::identity::Caller;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use seatbook_cache::{redis, Cache};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The draft's field naming the policy (quota `q` per window `w` seconds).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The draft's field with what is left of the quota now (`r`) and when it is whole again (`t`).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The policy's name in both fields.
pub const POLICY_NAME: &str = "writes";

/// While Redis stays down, the limiter says so in the log at most this often per process.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// GCRA in one step. KEYS[1]: the user's bucket, holding the theoretical arrival time (TAT): the
/// instant, in microseconds of Redis server time, at which the bucket is full again. ARGV[1]: the
/// microseconds one write costs (1 / rate); ARGV[2]: the burst.
///
/// Returns `{admitted (1 or 0), writes left, µs until the next write is admitted, µs until the
/// bucket is full}`. A refused write changes nothing.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local cost = tonumber(ARGV[1])
local capacity = cost * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local owed = tat + cost - now
if owed > capacity then
  return {0, 0, owed - capacity, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', now + owed), 'PX', math.ceil(owed / 1000))
return {1, math.floor((capacity - owed) / cost), 0, owed}
";

/// One user's allowance as one check left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The bucket's size: writes at once after a pause (`q` of the policy).
    pub burst: u32,
    /// Seconds an empty bucket takes to fill (`w` of the policy), at least 1.
    pub window_seconds: u64,
    /// Writes that would be admitted right now (`r`).
    pub remaining: u32,
    /// Until the bucket is full again.
    pub full_in: Duration,
    /// Until the next write is admitted; zero when this one was.
    pub retry_in: Duration,
}

impl Quota {
    /// `Retry-After`: whole seconds, rounded up and at least 1 (a client told 0 would retry at
    /// once and be refused again).
    pub fn retry_after_seconds(&self) -> u64 {
        whole_seconds(self.retry_in).max(1)
    }

    /// `RateLimit-Policy: "writes";q=<burst>;w=<seconds to refill>`.
    pub fn policy_field(&self) -> HeaderValue {
        let value = format!(
            "\"{POLICY_NAME}\";q={};w={}",
            self.burst, self.window_seconds
        );
        HeaderValue::from_str(&value).expect("digits and a token are a valid header value")
    }

    /// `RateLimit: "writes";r=<remaining>;t=<seconds until the bucket is full>`.
    pub fn state_field(&self) -> HeaderValue {
        let value = format!(
            "\"{POLICY_NAME}\";r={};t={}",
            self.remaining,
            whole_seconds(self.full_in)
        );
        HeaderValue::from_str(&value).expect("digits and a token are a valid header value")
    }

    /// Adds both draft fields to a response.
    pub fn write_fields(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY, self.policy_field());
        headers.insert(RATELIMIT, self.state_field());
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

/// The microseconds one write costs, and the whole seconds an empty bucket takes to fill (the
/// policy's window, at least 1).
fn cost_and_window(settings: RateLimitSettings) -> (u64, u64) {
    let cost_us = ((1_000_000.0 / settings.per_second).round() as u64).max(1);
    let window_us = cost_us.saturating_mul(u64::from(settings.burst));
    (
        cost_us,
        whole_seconds(Duration::from_micros(window_us)).max(1),
    )
}

/// What the limiter says about one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted(Quota),
    Refused(Quota),
    /// Not counted: Redis could not be asked (the write goes ahead: fail open), or the write has
    /// no identity (its handler answers 401).
    Unchecked,
}

pub struct RateLimiter {
    cache: Arc<Cache>,
    script: redis::Script,
    /// Microseconds one write costs.
    cost_us: u64,
    burst: u32,
    window_seconds: u64,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last fail-open warning (0: none yet).
    warned_at_ms: AtomicU64,
}

impl RateLimiter {
    /// A limiter over the cache's Redis connection and key prefix.
    pub fn new(cache: Arc<Cache>, settings: RateLimitSettings) -> Self {
        let (cost_us, window_seconds) = cost_and_window(settings);
        RateLimiter {
            cache,
            script: redis::Script::new(GCRA),
            cost_us,
            burst: settings.burst,
            window_seconds,
            epoch: Instant::now(),
            warned_at_ms: AtomicU64::new(0),
        }
    }

    /// Takes one write from `user`'s bucket, if there is one to take.
    pub async fn check(&self, user: &UserId) -> Verdict {
        // One key per user, in the user's own slot.
        let key = self
            .cache
            .keys()
            .key(&format!("u:{}", user.as_str()), "writes");
        let mut invocation = self.script.key(key);
        invocation.arg(self.cost_us).arg(self.burst);
        let reply: Result<(i64, i64, i64, i64), _> = self.cache.invoke(&invocation).await;
        let Ok((admitted, remaining, retry_us, full_us)) = reply else {
            self.warn_open();
            return Verdict::Unchecked;
        };
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        let quota = Quota {
            burst: self.burst,
            window_seconds: self.window_seconds,
            remaining: u32::try_from(remaining).unwrap_or(0),
            full_in: micros(full_us),
            retry_in: micros(retry_us),
        };
        if admitted == 1 {
            Verdict::Admitted(quota)
        } else {
            Verdict::Refused(quota)
        }
    }

    /// Logs that writes go unlimited, once per outage rather than once per write (each write is
    /// counted as `RedisUnavailable` by the connection).
    fn warn_open(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.warned_at_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        // One of several concurrent writes wins the right to say it.
        if due
            && self
                .warned_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!("Redis unavailable; the per-user write rate limit is not enforced");
        }
    }
}

/// The write rate limit, as a middleware on the routes that write
/// (`axum::middleware::from_fn_with_state`): the caller's write is counted before its handler
/// runs, and refused with 429 when the bucket is empty. Writes by nobody (no identity) are not
/// counted: the handler answers them 401. Without a limiter in the state, nothing is limited.
pub async fn limit(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = &state.rate_limit else {
        return next.run(request).await;
    };
    let verdict = match caller {
        Ok(caller) => limiter.check(&caller.user_id).await,
        Err(_) => Verdict::Unchecked,
    };
    let admitted = match verdict {
        Verdict::Refused(quota) => return ApiError::RateLimited(quota).into_response(),
        Verdict::Admitted(quota) => Some(quota),
        Verdict::Unchecked => None,
    };
    let mut response = next.run(request).await;
    if let Some(quota) = admitted {
        quota.write_fields(response.headers_mut());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(remaining: u32, full_in_ms: u64, retry_in_ms: u64) -> Quota {
        Quota {
            burst: 10,
            window_seconds: 5,
            remaining,
            full_in: Duration::from_millis(full_in_ms),
            retry_in: Duration::from_millis(retry_in_ms),
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(quota(0, 5000, 1).retry_after_seconds(), 1);
        assert_eq!(quota(0, 5000, 500).retry_after_seconds(), 1);
        assert_eq!(quota(0, 5000, 1000).retry_after_seconds(), 1);
        assert_eq!(quota(0, 5000, 1001).retry_after_seconds(), 2);
        assert_eq!(quota(3, 1000, 0).retry_after_seconds(), 1);
    }

    #[test]
    fn the_policy_window_is_the_time_an_empty_bucket_takes_to_fill() {
        let window = |per_second, burst| cost_and_window(RateLimitSettings { per_second, burst });
        assert_eq!(window(2.0, 10), (500_000, 5));
        assert_eq!(window(1.0, 2), (1_000_000, 2));
        assert_eq!(window(0.25, 1), (4_000_000, 4));
        assert_eq!(window(3.0, 4), (333_333, 2));
        assert_eq!(window(1000.0, 1), (1_000, 1));
    }

    #[test]
    fn the_fields_follow_the_ietf_draft_syntax() {
        let q = quota(0, 4500, 500);
        assert_eq!(q.policy_field(), "\"writes\";q=10;w=5");
        assert_eq!(q.state_field(), "\"writes\";r=0;t=5");
        let mut headers = HeaderMap::new();
        quota(7, 1500, 0).write_fields(&mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"writes\";q=10;w=5");
        assert_eq!(headers["ratelimit"], "\"writes\";r=7;t=2");
    }
}
