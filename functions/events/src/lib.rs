//! The events function: the public, read-only side of the catalog. Upcoming events (keyset paged),
//! one event, and an event's seat map with each seat's status.
//! It also serves the seat-map page (`web/`) at `/`: see [`web`], and the API's OpenAPI document
//! at `/api/v1/openapi.json` (src/openapi.rs).

mod handlers;
mod openapi;
mod store;
mod views;
pub mod web;

pub use store::AVAILABILITY_SQL;
pub use views::{Availability, EventPage, SeatStatus};

use axum::routing::get;
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
    openapi::document
))]
pub struct Api;
