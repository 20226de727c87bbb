//! The event as every function shows it (organizer writes return it, the events function reads it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

/// An event on sale (or not on sale yet) in a venue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// When the event starts.
    pub starts_at: DateTime<Utc>,
    pub venue_id: i64,
    pub venue_name: String,
    /// The price of a seat in no price category ("Standard"), in cents: of every seat when the
    /// event has no categories (the seat map gives each seat's price).
    pub price_cents: i64,
    /// When the sale opens; `None`: on sale since the event was created.
    pub sales_start_at: Option<DateTime<Utc>>,
    /// When the sale closes: the organizer's `sales_end_at`, or the start of the event.
    pub sales_end_at: DateTime<Utc>,
    /// Seats one person may have at once (confirmed plus unexpired holds); `None`: no cap.
    pub max_seats_per_user: Option<i32>,
    /// How long a waitlist offer lasts, in seconds.
    pub waitlist_offer_seconds: i32,
    /// The event's waiting room; absent: none, bookings and holds need no admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub waiting_room: Option<EventWaitingRoom>,
}

/// An event's waiting room: buyers join its queue (`POST /api/v1/events/{id}/queue`) and book
/// only once admitted, with the admission token as `Seatbook-Admission`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct EventWaitingRoom {
    /// People admitted a minute at most, spread evenly over the minute.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub admit_per_minute: i32,
    /// How long an admission lasts.
    #[schema(minimum = 60, maximum = 3600)]
    pub admission_ttl_seconds: i32,
    /// At most this many people admitted (and not expired) per free seat.
    #[schema(minimum = 1, maximum = 100)]
    pub max_admitted_per_free_seat: i32,
}

impl From<crate::domain::WaitingRoom> for EventWaitingRoom {
    fn from(room: crate::domain::WaitingRoom) -> Self {
        EventWaitingRoom {
            admit_per_minute: room.admit_per_minute(),
            admission_ttl_seconds: room.admission_ttl_seconds(),
            max_admitted_per_free_seat: room.max_admitted_per_free_seat(),
        }
    }
}

/// An event's layout, one row by key: its venue and Standard price; the venue's sections in
/// order (name, first row as the venue counts rows, rows, width); the event's price categories in
/// order (name, position, price); and the category of each row some category covers (V13's
/// `category_rows`; the other rows are "Standard"). A handful of rows, read beside the seats
/// rather than joined to each of them: joined, the planner estimated every section at a thousand
/// rows and sorted the whole venue twice. The map and the best-available pick both read it.
pub const EVENT_LAYOUT_SQL: &str = "\
SELECT e.venue_id, e.price_cents,
       ARRAY(SELECT name FROM sections WHERE venue_id = e.venue_id ORDER BY position)
           AS section_names,
       ARRAY(SELECT first_row FROM sections WHERE venue_id = e.venue_id ORDER BY position)
           AS section_first_rows,
       ARRAY(SELECT rows FROM sections WHERE venue_id = e.venue_id ORDER BY position)
           AS section_rows,
       ARRAY(SELECT cols FROM sections WHERE venue_id = e.venue_id ORDER BY position)
           AS section_cols,
       ARRAY(SELECT name FROM price_categories WHERE event_id = e.id ORDER BY position)
           AS category_names,
       ARRAY(SELECT position FROM price_categories WHERE event_id = e.id ORDER BY position)
           AS category_positions,
       ARRAY(SELECT price_cents FROM price_categories WHERE event_id = e.id ORDER BY position)
           AS category_prices,
       ARRAY(SELECT row_index FROM category_rows WHERE event_id = e.id ORDER BY row_index)
           AS covered_rows,
       ARRAY(SELECT category_position FROM category_rows WHERE event_id = e.id ORDER BY row_index)
           AS row_categories
FROM events e WHERE e.id = $1";

/// A venue's seats by row (as the venue counts rows), each row in number order.
#[derive(Debug, Clone, Default)]
pub struct VenueSeats {
    pub rows: std::collections::HashMap<i32, Vec<VenueSeat>>,
    /// Each seat's place in the venue's order (by row, then number), from 0: its byte in an
    /// event's seat map (`functions/booking/src/seatmap.rs`).
    pub positions: std::collections::HashMap<i64, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueSeat {
    pub id: i64,
    pub number: i32,
    pub accessible: bool,
    /// Its place in the venue's order (`VenueSeats::positions`).
    pub position: usize,
}

/// Every seat of venue `$1`, in row and number order (`seats_venue_position_key`).
pub const VENUE_SEATS_SQL: &str = "\
SELECT id, row_index, seat_number, accessible FROM seats WHERE venue_id = $1
ORDER BY row_index, seat_number";

impl VenueSeats {
    pub fn from_rows(rows: &[Row]) -> Self {
        let mut seats = VenueSeats::default();
        for (position, row) in rows.iter().enumerate() {
            seats.positions.insert(row.get("id"), position);
            seats
                .rows
                .entry(row.get("row_index"))
                .or_default()
                .push(VenueSeat {
                    id: row.get("id"),
                    number: row.get("seat_number"),
                    accessible: row.get("accessible"),
                    position,
                });
        }
        seats
    }
}

/// [`EVENT_LAYOUT_SQL`]'s row, parsed once for every reader of it.
#[derive(Debug, Clone)]
pub struct EventLayout {
    pub venue_id: i64,
    /// The price of a seat in no category ("Standard").
    pub standard_price: i64,
    /// The venue's sections, front to back.
    pub sections: Vec<LayoutSection>,
    /// The event's price categories, in its order.
    pub categories: Vec<LayoutCategory>,
    /// (venue row, category position from 1) for each row some category covers, by row.
    pub covered: Vec<(i32, i32)>,
}

#[derive(Debug, Clone)]
pub struct LayoutSection {
    pub name: String,
    /// Its first row as the venue counts rows.
    pub first_row: i32,
    pub rows: i32,
    pub cols: i32,
}

#[derive(Debug, Clone)]
pub struct LayoutCategory {
    pub name: String,
    pub position: i32,
    pub price_cents: i64,
}

impl EventLayout {
    pub fn from_row(row: &Row) -> Self {
        let names: Vec<String> = row.get("section_names");
        let first_rows: Vec<i32> = row.get("section_first_rows");
        let rows: Vec<i32> = row.get("section_rows");
        let cols: Vec<i32> = row.get("section_cols");
        let category_names: Vec<String> = row.get("category_names");
        let positions: Vec<i32> = row.get("category_positions");
        let prices: Vec<i64> = row.get("category_prices");
        let covered: Vec<i32> = row.get("covered_rows");
        let row_categories: Vec<i32> = row.get("row_categories");
        EventLayout {
            venue_id: row.get("venue_id"),
            standard_price: row.get("price_cents"),
            sections: names
                .into_iter()
                .zip(first_rows)
                .zip(rows)
                .zip(cols)
                .map(|(((name, first_row), rows), cols)| LayoutSection {
                    name,
                    first_row,
                    rows,
                    cols,
                })
                .collect(),
            categories: category_names
                .into_iter()
                .zip(positions)
                .zip(prices)
                .map(|((name, position), price_cents)| LayoutCategory {
                    name,
                    position,
                    price_cents,
                })
                .collect(),
            covered: covered.into_iter().zip(row_categories).collect(),
        }
    }
}

/// Columns of [`Event`], for a query over `events e JOIN venues v ON v.id = e.venue_id`.
pub const EVENT_COLUMNS: &str =
    "e.id, e.name, e.description, e.starts_at, e.venue_id, v.name AS venue_name, e.price_cents, \
     e.sales_start_at, coalesce(e.sales_end_at, e.starts_at) AS sales_end_at, e.max_seats_per_user, \
     e.waitlist_offer_seconds, \
     e.room_admit_per_minute, e.room_admission_ttl_seconds, e.room_max_admitted_per_free_seat";

impl Event {
    pub fn from_row(row: &Row) -> Self {
        Event {
            id: row.get("id"),
            name: row.get("name"),
            description: row.get("description"),
            starts_at: row.get("starts_at"),
            venue_id: row.get("venue_id"),
            venue_name: row.get("venue_name"),
            price_cents: row.get("price_cents"),
            sales_start_at: row.get("sales_start_at"),
            sales_end_at: row.get("sales_end_at"),
            max_seats_per_user: row.get("max_seats_per_user"),
            waitlist_offer_seconds: row.get("waitlist_offer_seconds"),
            waiting_room: waiting_room(row),
        }
    }
}

/// The waiting room of an event row read with [`EVENT_COLUMNS`] (V17: all three columns or none).
pub fn waiting_room(row: &Row) -> Option<EventWaitingRoom> {
    Some(EventWaitingRoom {
        admit_per_minute: row.get::<_, Option<i32>>("room_admit_per_minute")?,
        admission_ttl_seconds: row.get::<_, Option<i32>>("room_admission_ttl_seconds")?,
        max_admitted_per_free_seat: row.get::<_, Option<i32>>("room_max_admitted_per_free_seat")?,
    })
}
