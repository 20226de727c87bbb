//! The booking statement: every seat of a claim or none, with the fair-sale rules (sales window,
//! per-user cap) decided inside it by PostgreSQL. [`crate::store`] runs it and handles what it
//! refuses.

use crate::store::{Claim, Refusal};
use crate::views::{Booking, BookingStatus, Ticket};
use chrono::{DateTime, Utc};
use seatbook_core::ApiError;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// The whole booking write, one statement: the `book` function of migrations/V8, which locks the
/// caller's seat allowance under a cap, then inserts every seat or none, with the fair-sale rules
/// decided inside (see the migration's comments). A function so that PostgreSQL caches its plans
/// per session while the statement on the wire stays unnamed (proxy-safe); one statement, so it
/// is its own transaction: one round trip per booking. Public so the benchmark can run the very
/// same SQL through pgbench.
///
/// `$1` event id (INT8), `$2` seat ids (INT8[], de-duplicated, 1..=10), `$3` user id (TEXT), `$4`
/// status as text (`confirmed`, or `held` for a hold; the cast keeps the enum's OID off the
/// wire), `$5` how long a hold lasts in seconds (FLOAT8, else NULL).
pub const BOOK_SQL: &str = "SELECT * FROM book($1, $2, $3, $4::booking_status, $5)";

/// Runs the booking statement once: on its own (its own transaction) or in `client`'s open
/// transaction.
pub(crate) async fn insert(
    client: &impl GenericClient,
    claim: &Claim<'_>,
) -> Result<Booking, Refusal> {
    let status = if claim.hold_for.is_some() {
        BookingStatus::Held
    } else {
        BookingStatus::Confirmed
    };
    let hold_seconds = claim.hold_for.map(|d| d.as_secs_f64());
    let (user, seat_ids) = (claim.user.as_str(), claim.seats.ids());
    let book_params: [(&(dyn ToSql + Sync), Type); 5] = [
        (&claim.event_id, Type::INT8),
        (&seat_ids, Type::INT8_ARRAY),
        (&user, Type::TEXT),
        (&status.as_str(), Type::TEXT),
        (&hold_seconds, Type::FLOAT8),
    ];
    let rows = client.query_typed(BOOK_SQL, &book_params).await?;
    let head = rows
        .first()
        .ok_or_else(|| ApiError::internal("booking returned no row"))?;
    if !head.get::<_, bool>("event_found") {
        return Err(ApiError::not_found(format!("event {}", claim.event_id)).into());
    }
    if !head.get::<_, bool>("on_sale") {
        return Err(sales_closed(head).into());
    }
    if let Some(limit) = head.get::<_, Option<i32>>("max_seats_per_user") {
        let current: i64 = head.get("live_seats");
        let requested = claim.seats.ids().len();
        if current + requested as i64 > i64::from(limit) {
            return Err(ApiError::SeatLimit {
                limit,
                current,
                requested,
            }
            .into());
        }
    }
    let Some(booking_id) = head.get::<_, Option<Uuid>>("booking_id") else {
        let valid: Vec<i64> = head.get("valid_seat_ids");
        let foreign: Vec<String> = claim
            .seats
            .ids()
            .iter()
            .filter(|id| !valid.contains(id))
            .map(i64::to_string)
            .collect();
        return Err(ApiError::Unprocessable(format!(
            "seat(s) {} are not seats of event {}'s venue",
            foreign.join(", "),
            claim.event_id
        ))
        .into());
    };
    Ok(Booking {
        id: booking_id,
        event_id: claim.event_id,
        user_id: claim.user.as_str().to_owned(),
        status,
        created_at: head.get("created_at"),
        expires_at: head.get("expires_at"),
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

/// Why the sale refused: not open yet, or closed (which includes "the event has started").
fn sales_closed(head: &Row) -> ApiError {
    let opens: Option<DateTime<Utc>> = head.get("sales_start_at");
    let closes: DateTime<Utc> = head.get("sales_end_at");
    let reason = match opens {
        Some(opens) if head.get::<_, bool>("before_sale") => {
            format!("sales for this event open at {}", opens.to_rfc3339())
        }
        _ => format!("sales for this event closed at {}", closes.to_rfc3339()),
    };
    ApiError::SalesClosed {
        reason,
        sales_start_at: opens,
        sales_end_at: closes,
    }
}
