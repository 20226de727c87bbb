//! The metrics function: `GET /api/v1/metrics`, live figures about the service.

mod handlers;

pub use handlers::Metrics;

use axum::routing::get;
use axum::Router;
use seatbook_core::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/metrics", get(handlers::metrics))
}

/// This function's operations, for the API's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(handlers::metrics))]
pub struct Api;
