//! The booking reads: one booking, and a page of the caller's bookings.

use crate::views::{Booking, Ticket};
use chrono::{DateTime, Utc};
use seatbook_core::db::Pool;
use seatbook_core::domain::UserId;
use seatbook_core::ApiError;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::Row;
use uuid::Uuid;

const BOOKING_SELECT: &str = "\
SELECT b.id, b.event_id, b.user_id, b.created_at, b.total_cents,
       (CASE WHEN b.status = 'held' AND b.expires_at <= now() THEN 'expired' ELSE b.status END)::text
           AS status,
       CASE WHEN b.status = 'held' THEN b.expires_at END AS expires_at,
       coalesce((SELECT json_agg(json_build_object(
                            'id', t.id, 'seat_id', t.seat_id, 'row', s.row_label,
                            'number', s.seat_number, 'price_cents', t.price_cents)
                        ORDER BY s.row_index, s.seat_number)
                 FROM (SELECT id, seat_id, price_cents FROM tickets WHERE booking_id = b.id
                       UNION ALL
                       SELECT id, seat_id, price_cents FROM released_tickets WHERE booking_id = b.id) t
                 JOIN seats s ON s.id = t.seat_id), '[]') AS tickets
FROM bookings b";

/// Booking `id`; with `owner`, only if it is theirs (someone else's booking does not exist as far
/// as they can tell).
pub async fn find(
    db: &Pool,
    id: Uuid,
    owner: Option<&UserId>,
) -> Result<Option<Booking>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            &format!("{BOOKING_SELECT} WHERE b.id = $1 AND ($2::text IS NULL OR b.user_id = $2)"),
            &[(&id, Type::UUID), (&owner.map(UserId::as_str), Type::TEXT)],
        )
        .await?;
    row.map(|row| booking_from_row(&row)).transpose()
}

/// Where a page of the caller's bookings starts: after the booking made at `created_at` with `id`
/// (the last of the previous page).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Up to `limit` of the caller's bookings, newest first (ties by id), after `after` if given.
pub async fn list(
    db: &Pool,
    user: &UserId,
    after: Option<Position>,
    limit: i64,
) -> Result<Vec<Booking>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "{BOOKING_SELECT} WHERE b.user_id = $1
                   AND ($2::timestamptz IS NULL OR (b.created_at, b.id) < ($2, $3))
                 ORDER BY b.created_at DESC, b.id DESC LIMIT $4"
            ),
            &[
                (&user.as_str(), Type::TEXT),
                (&after.map(|p| p.created_at), Type::TIMESTAMPTZ),
                (&after.map_or(Uuid::nil(), |p| p.id), Type::UUID),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(booking_from_row).collect()
}

fn booking_from_row(row: &Row) -> Result<Booking, ApiError> {
    let Json(tickets): Json<Vec<Ticket>> = row.get("tickets");
    let status = row.get::<_, &str>("status").parse().map_err(|err| {
        ApiError::internal(format!("booking {}: {err}", row.get::<_, Uuid>("id")))
    })?;
    Ok(Booking {
        id: row.get("id"),
        event_id: row.get("event_id"),
        user_id: row.get("user_id"),
        status,
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        total_cents: row.get("total_cents"),
        tickets,
        together: None,
    })
}
