//! After a booking exists: cancelling it, and turning a hold into a confirmed booking.

use chrono::{DateTime, Utc};
use seatbook_core::db::Pool;
use seatbook_core::domain::UserId;
use seatbook_core::ApiError;
use tokio_postgres::types::Type;
use uuid::Uuid;

/// Cancels in one statement: the booking becomes `cancelled` and its tickets move to
/// `released_tickets`, which frees the seats at once and keeps the history; the freed seats are
/// offered to the event's waitlist in the same transaction (the `cancel_booking` function of
/// migrations/V16). Cancelling a booking that is no longer live changes nothing and returns no
/// row. A confirmed booking's cancellation is announced in the outbox by the same statement (a hold
/// never announced was never confirmed, so it announces nothing). The booking's row lock orders
/// this after the booking's confirmation, whose outbox row therefore comes first. The function
/// takes the event's pick lock (pick.rs, decision 25) before the cancellation's statement, whose
/// snapshot is taken after it: a pick that saw the booking's row full (V15) either recorded it
/// before, and the statement deletes the record, or reads after the commit and sees the seats.
pub const CANCEL_SQL: &str = "SELECT event_id, seat_ids, offers FROM cancel_booking($1, $2)";

/// Confirms a live hold within its sale, and records its confirmation in the outbox: the
/// `confirm_hold` function of migrations/V10, which takes the caller's seat allowance lock first
/// and judges the hold's expiry and the sales window by the clock after it. One call, one round
/// trip, no named statement.
pub const CONFIRM_SQL: &str =
    "SELECT outcome, event_id, sales_start_at, sales_end_at FROM confirm_hold($1, $2)";

/// What confirming a hold did.
pub enum Confirmation {
    /// The hold of this event is a confirmed booking now.
    Confirmed(i64),
    /// The sale has closed: nothing was confirmed.
    SalesClosed {
        sales_start_at: Option<DateTime<Utc>>,
        sales_end_at: DateTime<Utc>,
    },
    /// No live hold of the caller's by that id (the booking says why).
    NotLive,
}

/// Cancels booking `id` (only the owner's, unless `owner` is `None`: an organizer). Returns the
/// event whose seats were released, or `None` when nothing was live to cancel.
pub async fn cancel(db: &Pool, id: Uuid, owner: Option<&UserId>) -> Result<Option<i64>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            CANCEL_SQL,
            &[(&id, Type::UUID), (&owner.map(UserId::as_str), Type::TEXT)],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Confirms the caller's hold `id`.
pub async fn confirm(db: &Pool, id: Uuid, owner: &UserId) -> Result<Confirmation, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_one(
            CONFIRM_SQL,
            &[(&id, Type::UUID), (&owner.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(match row.get::<_, &str>("outcome") {
        "confirmed" => Confirmation::Confirmed(row.get("event_id")),
        "sales_closed" => Confirmation::SalesClosed {
            sales_start_at: row.get("sales_start_at"),
            sales_end_at: row.get("sales_end_at"),
        },
        _ => Confirmation::NotLive,
    })
}
