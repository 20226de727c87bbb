//! The booking SQL. Every statement is sent with `query_typed` (unnamed statements), which stays
//! correct behind RDS Proxy and PgBouncer in transaction mode.

use crate::views::{Booking, Ticket};
use seatbook_core::db::{is_unique_violation_on, Pool};
use seatbook_core::domain::{SeatSelection, UserId};
use seatbook_core::ApiError;
use tokio_postgres::types::{Json, Type};
use tokio_postgres::Row;
use uuid::Uuid;

/// The constraint that arbitrates every race for a seat.
pub const TICKETS_ARBITER: &str = "tickets_event_seat_key";

/// The whole booking write: one statement inside the transaction (see the comments in the file).
/// Public so the benchmark can run the very same SQL through pgbench.
pub const BOOK_SQL: &str = include_str!("book.sql");

const TAKEN_SQL: &str =
    "SELECT seat_id FROM tickets WHERE event_id = $1 AND seat_id = ANY ($2) ORDER BY seat_id";

const BOOKING_SELECT: &str = "\
SELECT b.id, b.event_id, b.user_id, b.status, b.created_at, b.total_cents,
       coalesce((SELECT json_agg(json_build_object(
                            'id', t.id, 'seat_id', t.seat_id, 'row', s.row_label,
                            'number', s.seat_number, 'price_cents', t.price_cents)
                        ORDER BY s.row_index, s.seat_number)
                 FROM tickets t JOIN seats s ON s.id = t.seat_id
                 WHERE t.booking_id = b.id), '[]') AS tickets
FROM bookings b";

/// Books `seats` of `event_id` for `user`: all of them, or none and an error saying why.
pub async fn book(
    db: &Pool,
    user: &UserId,
    event_id: i64,
    seats: &SeatSelection,
) -> Result<Booking, ApiError> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    let result = tx
        .query_typed(
            BOOK_SQL,
            &[
                (&event_id, Type::INT8),
                (&seats.ids(), Type::INT8_ARRAY),
                (&user.as_str(), Type::TEXT),
            ],
        )
        .await;
    let rows = match result {
        Ok(rows) => rows,
        Err(err) if is_unique_violation_on(&err, TICKETS_ARBITER) => {
            // Dropping the transaction queues its ROLLBACK ahead of the next query.
            drop(tx);
            let mut taken: Vec<i64> = conn
                .query_typed(
                    TAKEN_SQL,
                    &[(&event_id, Type::INT8), (&seats.ids(), Type::INT8_ARRAY)],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if taken.is_empty() {
                // The winner released its seat between our conflict and this read; the
                // constraint's own report still names the seat that was taken at the time.
                taken.extend(conflicting_seat(&err));
            }
            return Err(ApiError::SeatsTaken { seat_ids: taken });
        }
        Err(err) => return Err(err.into()),
    };
    let head = rows
        .first()
        .ok_or_else(|| ApiError::internal("booking returned no row"))?;
    if !head.get::<_, bool>("event_found") {
        return Err(ApiError::not_found(format!("event {event_id}")));
    }
    let Some(booking_id) = head.get::<_, Option<Uuid>>("booking_id") else {
        let valid: Vec<i64> = head.get("valid_seat_ids");
        let foreign: Vec<String> = seats
            .ids()
            .iter()
            .filter(|id| !valid.contains(id))
            .map(i64::to_string)
            .collect();
        return Err(ApiError::Unprocessable(format!(
            "seat(s) {} are not seats of event {event_id}'s venue",
            foreign.join(", ")
        )));
    };
    tx.commit().await?;
    Ok(Booking {
        id: booking_id,
        event_id,
        user_id: user.as_str().to_owned(),
        status: "confirmed".to_owned(),
        created_at: head.get("created_at"),
        total_cents: head.get("total_cents"),
        tickets: rows
            .iter()
            .map(|row| Ticket {
                id: row.get("ticket_id"),
                seat_id: row.get("seat_id"),
                row: row.get("row_label"),
                number: row.get("seat_number"),
                price_cents: row.get("price_cents"),
            })
            .collect(),
    })
}

/// The caller's booking `id`; someone else's booking does not exist as far as they can tell.
pub async fn find(db: &Pool, user: &UserId, id: Uuid) -> Result<Option<Booking>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            &format!("{BOOKING_SELECT} WHERE b.id = $1 AND b.user_id = $2"),
            &[(&id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(row.map(|row| booking_from_row(&row)))
}

/// The caller's bookings, newest first.
pub async fn list(db: &Pool, user: &UserId, limit: i64) -> Result<Vec<Booking>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "{BOOKING_SELECT} WHERE b.user_id = $1 ORDER BY b.created_at DESC, b.id DESC LIMIT $2"
            ),
            &[(&user.as_str(), Type::TEXT), (&limit, Type::INT8)],
        )
        .await?;
    Ok(rows.iter().map(booking_from_row).collect())
}

fn booking_from_row(row: &Row) -> Booking {
    let Json(tickets): Json<Vec<Ticket>> = row.get("tickets");
    Booking {
        id: row.get("id"),
        event_id: row.get("event_id"),
        user_id: row.get("user_id"),
        status: row.get("status"),
        created_at: row.get("created_at"),
        total_cents: row.get("total_cents"),
        tickets,
    }
}

/// The seat id in a unique violation's detail: `Key (event_id, seat_id)=(7, 42) already exists.`
fn conflicting_seat(err: &tokio_postgres::Error) -> Option<i64> {
    let detail = err.as_db_error()?.detail()?;
    let values = detail.split_once(")=(")?.1;
    values.split([',', ')']).nth(1)?.trim().parse().ok()
}
