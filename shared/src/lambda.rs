//! The cold-start sequence of every Lambda function: settings, logging, state, then the runtime.
//!
//! Everything here runs once per execution environment, before the first event. The pool opens its
//! first connection lazily; the only network I/O of a cold start is reading the database secret
//! when `DB_SECRET_ARN` is set (a failure there fails the init, with the reason in the log).

use crate::config::Settings;
use crate::http::finish;
use crate::state::AppState;
use axum::Router;

/// A Lambda environment handles one request at a time: one connection serves it, and a second
/// covers a connection that is being replaced. More would only hold idle connections open: every
/// concurrent request is its own environment with its own pool, so the database (or RDS Proxy) sees
/// up to `2 × concurrent environments` client connections, and a bigger pool multiplies that.
pub const LAMBDA_POOL_SIZE: usize = 2;

/// Runs the router `routes` builds over the state (a middleware may need it, as the booking
/// function's write limit does) as a Lambda function behind API Gateway until the runtime shuts it
/// down. `wrap` is applied to the finished router: it changes nothing in a deployed build, and
/// adds dev identity in a build for `cargo lambda watch` (see each function's `main`).
pub async fn serve(
    function: &'static str,
    routes: impl FnOnce(&AppState) -> Router<AppState>,
    wrap: impl FnOnce(Router) -> Router,
) -> Result<(), lambda_http::Error> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.json_logs);
    if std::env::var_os(crate::config::DEV_IDENTITY_VAR).is_some() {
        tracing::warn!(
            function,
            "{} is set and ignored: functions never read it (dev identity is a build feature \
             that deployed binaries do not have)",
            crate::config::DEV_IDENTITY_VAR
        );
    }
    if let Err(err) = crate::db::load_credentials(&settings.database).await {
        tracing::error!(function, error = %err, "cold start failed");
        return Err(err.into());
    }
    let state = AppState::from_settings(&settings, LAMBDA_POOL_SIZE)?;
    crate::metrics::publish(crate::metrics::COLD_STARTS, 1.0);
    tracing::info!(function, "cold start complete");
    lambda_http::run(wrap(finish(routes(&state), state))).await
}
