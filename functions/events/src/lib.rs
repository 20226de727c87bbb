//! The events function: the public, read-only side of the catalog. Upcoming events (keyset paged),
//! one event, and an event's seat map with each seat's status.

mod handlers;
mod store;
mod views;

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
}
