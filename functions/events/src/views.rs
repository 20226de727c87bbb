use seatbook_core::catalog::Event;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Availability {
    pub event_id: i64,
    pub total_seats: usize,
    pub available_seats: usize,
    pub booked_seats: usize,
    /// Reserved by a live hold; they become available again when it lapses.
    pub held_seats: usize,
    pub seats: Vec<SeatStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeatStatus {
    pub id: i64,
    pub row: String,
    pub number: i32,
    /// `available`, `held` or `booked`.
    pub status: String,
}
