use crate::views::{Availability, EventPage, SeatStatus};
use chrono::{DateTime, Utc};
use seatbook_core::catalog::{Event, EVENT_COLUMNS};
use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use tokio_postgres::types::Type;

/// Where a page of the listing starts: strictly after this (starts_at, id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub starts_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of upcoming events; `cursor` names the position after the page's last event.
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

/// Every seat of the event's venue, in row order, with its status. `None`: no such event.
pub async fn availability(db: &Pool, event_id: i64) -> Result<Option<Availability>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(
            "SELECT s.id, s.row_label, s.seat_number, t.seat_id IS NOT NULL AS booked
             FROM events e
             JOIN seats s ON s.venue_id = e.venue_id
             LEFT JOIN tickets t ON t.event_id = e.id AND t.seat_id = s.id
             WHERE e.id = $1
             ORDER BY s.row_index, s.seat_number",
            &[(&event_id, Type::INT8)],
        )
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
            status: if row.get::<_, bool>(3) {
                "booked"
            } else {
                "available"
            }
            .to_owned(),
        })
        .collect();
    let booked = seats.iter().filter(|s| s.status == "booked").count();
    Ok(Some(Availability {
        event_id,
        total_seats: seats.len(),
        available_seats: seats.len() - booked,
        booked_seats: booked,
        seats,
    }))
}
