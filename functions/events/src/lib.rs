//! The events function: the public, read-only side of the catalog. Upcoming events (keyset paged),
//! one event, and an event's seat map with each seat's status.
//! It also serves the seat-map page (`web/`) at `/`: see [`web`], and the API's OpenAPI document
//! at `/api/v1/openapi.json` (src/openapi.rs). And the waiting room of an on-sale: its queue
//! and the admission tokens' public keys ([`queue`]).

mod handlers;
mod openapi;
mod queue;
mod store;
mod views;
pub mod web;

pub use store::AVAILABILITY_SQL;
pub use views::{Availability, EventPage, SeatStatus};

use axum::routing::{get, post};
use axum::Router;
use seatbook_core::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(handlers::list))
        .route("/api/v1/events/{id}", get(handlers::show))
        .route(
            "/api/v1/events/{id}/availability",
            get(handlers::availability),
        )
        .route("/api/v1/events/{id}/queue", post(queue::join))
        .route("/api/v1/events/{id}/queue/me", get(queue::me))
        .route("/api/v1/.well-known/jwks.json", get(queue::jwks))
        .route("/api/v1/openapi.json", get(openapi::document))
        // The seat-map page at `/` (and its script and styles).
        .merge(web::routes())
}

/// This function's operations (those of [`routes`] but the page), for the API's OpenAPI
/// document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    handlers::list,
    handlers::show,
    handlers::availability,
    queue::join,
    queue::me,
    queue::jwks,
    openapi::document
))]
pub struct Api;
