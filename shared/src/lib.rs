//! The core every seat-booking function shares.
//!
//! Each AWS Lambda function in `functions/` is a thin binary: it reads [`config::Settings`] once at
//! cold start, sets up [`telemetry`], builds an [`state::AppState`] (the PostgreSQL pool and the
//! Redis cache) and hands its axum router to `lambda_http::run`. The local development server
//! serves the very same routers over plain HTTP, so one handler code path serves API Gateway,
//! `cargo lambda watch` and local runs.
//!
//! The cache is a crate of its own, `seatbook-cache` (`shared/cache`), which knows keys,
//! generations and bytes but nothing of events or bookings; this crate wires it to the settings,
//! the metrics and the API errors, and says what of the catalog is cached ([`cached`]).
//!
//! Modules:
//! - [`admission`]: the waiting room's admission tokens (Ed25519 JWTs): signed by the events
//!   function, verified by the booking function without a network call.
//! - [`cached`]: the catalog's cache keys and the generations writes bump; the shared counters.
//! - [`catalog`]: the event as every function shows it.
//! - [`conditional`]: conditional, compressed reads as the API serves them: the request's
//!   `Accept-Encoding`, `If-None-Match` and event version, and who may keep the response.
//! - [`config`]: typed settings read once from the environment; secrets never print.
//! - [`db`]: the connection pool (plain or rustls TLS; credentials from `DATABASE_URL`, or from
//!   Secrets Manager and re-read after a rotation), embedded migrations, and the mapping of
//!   database failures (unique violations by constraint name, pool exhaustion) onto API errors.
//! - [`domain`]: parsed domain values (seat selections, venue layouts, names, prices): if a value
//!   exists, it is valid.
//! - [`error`]: the one API error type and the one place that turns it into an RFC 9457
//!   `application/problem+json` response; internal causes are logged, never shown.
//! - [`extract`]: request extractors whose rejections are problem+json too.
//! - [`identity`]: who is calling: the JWT claims API Gateway's authorizer verified.
//! - `dev_identity` (feature `dev-identity`, never in a deployed binary): `x-dev-user` /
//!   `x-dev-groups` headers turned into such claims, for `local-api`, tests and `cargo lambda watch`.
//! - [`http`]: what every function's router gets: fallbacks, state, request tracing.
//! - [`lambda`]: the cold-start sequence a function's `main` runs.
//! - [`metrics`]: CloudWatch metrics as Embedded Metric Format lines, which the alarms watch (the
//!   cache's signals among them).
//! - [`openapi`]: what every function's part of the OpenAPI document shares: the problem
//!   responses (one per status, naming each problem `type`), the security scheme, the rate-limit
//!   headers.
//! - [`ratelimit`]: the per-user write rate limit, a middleware over a token bucket per user in
//!   Redis (one Lua script, Redis's clock); 429 with `Retry-After` and the draft `RateLimit`
//!   fields; fails open.
//! - [`recent`]: a process's short memory of id pairs it has just seen (contested seats).
//! - [`remembered`]: what the process has read of things that never change (layouts, seats).
//! - [`rooms`]: events' sales windows and waiting rooms, remembered by the process.
//! - [`state`]: what every handler can reach, built once per process.
//! - [`telemetry`]: tracing-subscriber set-up (JSON in Lambda).
//! - [`tls`]: rustls on `ring` (no OpenSSL, no aws-lc): the provider, and PostgreSQL's roots.
//! - [`turns`]: one request at a time per key within the process (best-available picks).

pub mod admission;
pub mod cached;
pub mod catalog;
pub mod conditional;
pub mod config;
pub mod db;
#[cfg(feature = "dev-identity")]
pub mod dev_identity;
pub mod domain;
pub mod error;
pub mod extract;
pub mod http;
pub mod identity;
pub mod lambda;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod recent;
pub mod remembered;
pub mod rooms;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod turns;

pub use error::ApiError;
pub use state::AppState;
