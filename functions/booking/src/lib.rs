//! The booking function: bookings and their lifecycle.
//!
//! - `POST /api/v1/bookings` takes seats (idempotent under an `Idempotency-Key`);
//!   `GET /api/v1/bookings[/{id}]` shows the caller's bookings; `DELETE /api/v1/bookings/{id}`
//!   cancels one and frees its seats.
//! - `POST /api/v1/holds` reserves seats for a while; `POST /api/v1/holds/{id}/confirm` makes the
//!   hold a booking. A lapsed hold needs no job to free it: whoever wants its seats releases it.
//!
//! Exactly-once seat sales rest on PostgreSQL alone: a booking is one transaction whose ticket
//! inserts race on the `tickets_event_seat_key` unique constraint. The loser's SQLSTATE 23505
//! becomes 409 with the seats that were taken. No lock is taken and no request waits for another
//! in this process. Tickets are inserted in seat order, so bookings sharing seats cannot deadlock
//! each other; an attempt PostgreSQL aborts anyway (deadlock, serialization failure) runs again
//! after a short jittered back-off, a few times at most, then the answer is 503 with `Retry-After`.
//!
//! - `best_available` instead of `seat_ids` lets the API choose the seats ([`best`]'s ranking):
//!   from the event's seat map in Redis ([`seatmap`], decision 31), else one pick at a time under
//!   the event's lock in PostgreSQL ([`pick`], decision 25). The unique constraint still decides.
//!
//! - `POST /api/v1/events/{id}/waitlist` joins a sold-out event's line; `GET` and `DELETE`
//!   `/api/v1/events/{id}/waitlist/me` read and leave one's place ([`waitlist`]). Seats that come
//!   back are offered to the line as holds, by PostgreSQL (migrations/V16).
//!
//! While an event has a waiting room, its bookings and holds need the caller's admission token
//! (`Seatbook-Admission`, see [`admission`]); 403 `admission-required` otherwise.
//!
//! Every write route (not the reads) sits behind the per-user write rate limit
//! ([`seatbook_core::ratelimit::limit`], a middleware over the state): 429 once a user's bucket is
//! empty, nothing limited when it is off or Redis is down.

mod admission;
mod best;
mod claim;
mod handlers;
mod idempotency;
mod lifecycle;
mod marks;
mod pick;
mod reads;
mod seatmap;
mod views;
mod waitlist;

pub use claim::BOOK_SQL;
/// Every statement that takes seat ids or a booking's seats, public for the plan tests (a booking
/// must cost the same in any venue) and the benchmark.
pub mod statements {
    pub use crate::claim::{HOLDERS_SQL, RELEASE_LAPSED_SQL};
    pub use crate::lifecycle::{CANCEL_SQL, CONFIRM_SQL};
    /// Best available's reads (its booking is `BOOK_SQL`'s).
    pub use crate::pick::{
        FIRST_READ_SEATS, FULL_ROWS_SQL, LAYOUT_SQL, LOCK_SQL, TAKEN_AMONG_SQL, TAKEN_SQL,
    };
    pub use seatbook_core::catalog::VENUE_SEATS_SQL;
}
pub use claim::TICKETS_ARBITER;
pub use views::{Booking, BookingStatus, Ticket};

use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::Router;
use seatbook_core::{ratelimit, AppState};

/// The routes, the writes behind the rate limit (which reads its limiter from `state`).
pub fn routes(state: &AppState) -> Router<AppState> {
    let limit = from_fn_with_state(state.clone(), ratelimit::limit);
    let writes = Router::new()
        .route("/api/v1/bookings", post(handlers::create))
        .route("/api/v1/bookings/{id}", delete(handlers::cancel))
        .route("/api/v1/holds", post(handlers::hold))
        .route("/api/v1/holds/{id}/confirm", post(handlers::confirm))
        .route("/api/v1/events/{id}/waitlist", post(waitlist::join))
        .route("/api/v1/events/{id}/waitlist/me", delete(waitlist::leave))
        .route_layer(limit);
    Router::new()
        .route("/api/v1/bookings", get(handlers::list))
        .route("/api/v1/bookings/{id}", get(handlers::show))
        .route("/api/v1/events/{id}/waitlist/me", get(waitlist::show))
        .merge(writes)
}

/// This function's operations, for the API's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    handlers::create,
    handlers::list,
    handlers::show,
    handlers::cancel,
    handlers::hold,
    handlers::confirm,
    waitlist::join,
    waitlist::show,
    waitlist::leave
))]
pub struct Api;
