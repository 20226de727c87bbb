use crate::views::{Availability, EventPage, SeatStatus};
use chrono::{DateTime, Utc};
use seatbook_core::catalog::{Event, EVENT_COLUMNS};
use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use tokio_postgres::types::Type;

/// An event's seat map: every seat of its venue in row order, its status, and for a seat under a
/// live hold, when the hold lapses. The venue is a scalar subquery, so its seats come from the
/// `seats_venue_position_key` index already in order; the claims come from the event's tickets
/// (index on `tickets_event_seat_key`) joined to their bookings by primary key. The cost follows
/// the venue's size, not the size of `seats` or `bookings`. Public so the benchmark's ceiling runs the same SQL.
pub const AVAILABILITY_SQL: &str = "\
SELECT s.id, s.row_label, s.seat_number, coalesce(c.status, 'available') AS status, c.held_until
FROM seats s
LEFT JOIN (
    SELECT t.seat_id,
           CASE WHEN b.status <> 'held' THEN 'booked' WHEN b.expires_at > now() THEN 'held' END
               AS status,
           CASE WHEN b.status = 'held' AND b.expires_at > now() THEN b.expires_at END AS held_until
    FROM tickets t JOIN bookings b ON b.id = t.booking_id
    WHERE t.event_id = $1
) c ON c.seat_id = s.id
WHERE s.venue_id = (SELECT venue_id FROM events WHERE id = $1)
ORDER BY s.row_index, s.seat_number";

/// Where a page of the listing starts: strictly after this (starts_at, id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub starts_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of the events still on sale (or not on sale yet), in start order; `cursor` names the position after the page's last event.
pub async fn upcoming_page(
    db: &Pool,
    after: Option<Position>,
    limit: i64,
    cursor: impl Fn(&Event) -> String,
) -> Result<EventPage, ApiError> {
    // One extra row tells whether another page follows.
    let mut items = upcoming(db, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    Ok(EventPage { items, next_cursor })
}

async fn upcoming(db: &Pool, after: Option<Position>, limit: i64) -> Result<Vec<Event>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id
                 WHERE e.starts_at > now()
                   AND coalesce(e.sales_end_at, e.starts_at) > now()
                   AND ($1::timestamptz IS NULL OR (e.starts_at, e.id) > ($1, $2))
                 ORDER BY e.starts_at, e.id
                 LIMIT $3"
            ),
            &[
                (&after.map(|p| p.starts_at), Type::TIMESTAMPTZ),
                (&after.map_or(0, |p| p.id), Type::INT8),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    Ok(rows.iter().map(Event::from_row).collect())
}

pub async fn event(db: &Pool, id: i64) -> Result<Option<Event>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1"),
            &[(&id, Type::INT8)],
        )
        .await?;
    Ok(row.as_ref().map(Event::from_row))
}

/// Every seat of the event's venue, in row order, with its status, and when the earliest live hold
/// lapses (the map changes then without any write). `None`: no such event.
/// A seat whose hold has lapsed is `available`: it is free to whoever asks first.
pub async fn availability(
    db: &Pool,
    event_id: i64,
) -> Result<Option<(Availability, Option<DateTime<Utc>>)>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(AVAILABILITY_SQL, &[(&event_id, Type::INT8)])
        .await?;
    // Every venue has at least one seat, so an event with no rows does not exist.
    if rows.is_empty() {
        return Ok(None);
    }
    let seats: Vec<SeatStatus> = rows
        .iter()
        .map(|row| SeatStatus {
            id: row.get(0),
            row: row.get(1),
            number: row.get(2),
            status: row.get(3),
        })
        .collect();
    let next_lapse = rows
        .iter()
        .filter_map(|row| row.get::<_, Option<DateTime<Utc>>>(4))
        .min();
    let count = |status: &str| seats.iter().filter(|s| s.status == status).count();
    let (booked, held) = (count("booked"), count("held"));
    let availability = Availability {
        event_id,
        total_seats: seats.len(),
        available_seats: seats.len() - booked - held,
        booked_seats: booked,
        held_seats: held,
        seats,
    };
    Ok(Some((availability, next_lapse)))
}
