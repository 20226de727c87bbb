use seatbook_core::catalog::Event;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

/// A page of the upcoming events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An event's seat map, with each seat's status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Availability {
    pub event_id: i64,
    pub total_seats: usize,
    pub available_seats: usize,
    pub booked_seats: usize,
    /// Reserved by a live hold; they become available again when it lapses.
    pub held_seats: usize,
    /// The event's price categories in its order, then "Standard" (the seats no category covers,
    /// at the event's `price_cents`) when there are such seats.
    pub categories: Vec<CategoryAvailability>,
    /// Front to back: by section, then row, then number.
    pub seats: Vec<SeatStatus>,
}

/// A price category of the map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct CategoryAvailability {
    pub name: String,
    /// The price of each of its seats, in cents.
    pub price_cents: i64,
    /// Its seats that are `available`.
    pub available: usize,
}

/// One seat of the map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SeatStatus {
    pub id: i64,
    /// The name of its section ("Main" in a venue of one rectangle).
    pub section: String,
    /// The row's label within its section: A, B, …, Z, AA, ….
    pub row: String,
    /// The seat's number in its row, from 1.
    pub number: i32,
    /// Its price category: one of the event's, or "Standard".
    pub category: String,
    /// What the seat costs, in cents.
    pub price_cents: i64,
    /// A wheelchair place.
    pub accessible: bool,
    #[schema(schema_with = seat_state)]
    pub status: String,
}

/// The statuses [`crate::AVAILABILITY_SQL`] gives a seat.
fn seat_state() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["available", "held", "booked"]))
        .description(Some(
            "`available`, `held` (by a live hold; available again when it lapses) or `booked`.",
        ))
}
