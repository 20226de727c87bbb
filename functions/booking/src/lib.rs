//! The booking function: `POST /api/v1/bookings` takes seats, `GET /api/v1/bookings[/{id}]` shows
//! the caller's bookings.
//!
//! Exactly-once seat sales rest on PostgreSQL alone: a booking is one transaction whose ticket
//! inserts race on the `tickets_event_seat_key` unique constraint. The loser's SQLSTATE 23505
//! becomes 409 with the seats that were taken. No lock is taken and no request waits for another
//! in this process.

mod handlers;
mod store;
mod views;

pub use store::{BOOK_SQL, TICKETS_ARBITER};
pub use views::{Booking, Ticket};

use axum::routing::get;
use axum::Router;
use seatbook_core::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/bookings",
            get(handlers::list).post(handlers::create),
        )
        .route("/api/v1/bookings/{id}", get(handlers::show))
}
