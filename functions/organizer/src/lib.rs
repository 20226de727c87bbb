//! The organizer function: catalog writes. `POST /api/v1/venues` creates a venue with its seat map,
//! `POST /api/v1/events` puts an event on sale in a venue. Organizers only.

mod handlers;

use axum::routing::post;
use axum::Router;
use seatbook_core::AppState;

pub use handlers::Venue;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/venues", post(handlers::create_venue))
        .route("/api/v1/events", post(handlers::create_event))
}

/// This function's operations, for the API's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(handlers::create_venue, handlers::create_event))]
pub struct Api;
