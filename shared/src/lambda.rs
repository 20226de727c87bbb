//! The cold-start sequence of every Lambda function: settings, logging, state, then the runtime.
//!
//! Everything here runs once per execution environment, before the first event; the pool opens its
//! first connection lazily, so initialisation does no network I/O.

use crate::config::Settings;
use crate::http::finish;
use crate::state::AppState;
use axum::Router;

/// A Lambda environment handles one request at a time: one connection serves it, and a second
/// covers a connection that is being replaced.
pub const LAMBDA_POOL_SIZE: usize = 2;

/// Runs `routes` as a Lambda function behind API Gateway until the runtime shuts it down.
pub async fn serve(
    function: &'static str,
    routes: Router<AppState>,
) -> Result<(), lambda_http::Error> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.json_logs);
    let state = AppState::from_settings(&settings, LAMBDA_POOL_SIZE)?;
    tracing::info!(function, "cold start complete");
    lambda_http::run(finish(routes, state)).await
}
