//! After a booking exists: cancelling it, and turning a hold into a confirmed booking.

use chrono::{DateTime, Utc};
use seatbook_core::db::Pool;
use seatbook_core::domain::UserId;
use seatbook_core::ApiError;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// Cancels in one statement: the booking becomes `cancelled` and its tickets move to
/// `released_tickets`, which frees the seats at once and keeps the history. Cancelling a booking
/// that is no longer live changes nothing. A confirmed booking's cancellation is announced in the
/// outbox by the same statement (a hold never announced was never confirmed, so it announces
/// nothing; a repeated cancel finds nothing live and writes nothing). The row lock taken by `live`
/// orders this after the booking's confirmation, whose outbox row therefore comes first. The rows
/// a confirmed booking's seats had filled are no longer full (V15): their record goes too.
pub const CANCEL_SQL: &str = "\
WITH live AS (
    SELECT id, status FROM bookings
    WHERE id = $1 AND ($2::text IS NULL OR user_id = $2) AND status IN ('confirmed', 'held')
    FOR UPDATE
), cancelled AS (
    UPDATE bookings b SET status = 'cancelled'
    FROM live WHERE b.id = live.id
    RETURNING b.id, b.event_id, b.user_id, live.status AS was
), gone AS (
    DELETE FROM tickets t USING cancelled c WHERE t.booking_id = c.id RETURNING t.*
), archived AS (
    INSERT INTO released_tickets (id, booking_id, event_id, seat_id, price_cents, created_at, reason)
    SELECT id, booking_id, event_id, seat_id, price_cents, created_at, 'cancelled' FROM gone
), reopened AS (
    DELETE FROM full_rows f USING gone g JOIN seats s ON s.id = g.seat_id
    WHERE f.event_id = g.event_id AND f.row_index = s.row_index
), cancellation AS (
    INSERT INTO outbox (booking_id, kind, payload)
    SELECT c.id, 'booking.cancelled', json_build_object(
        'type', 'booking.cancelled', 'booking_id', c.id, 'event_id', c.event_id,
        'user_id', c.user_id, 'cancelled_at', now(),
        'seat_ids', (SELECT array_agg(seat_id ORDER BY seat_id) FROM gone))
    FROM cancelled c WHERE c.was = 'confirmed'
)
SELECT event_id FROM cancelled";

/// Takes the pick lock of a confirmed booking's event (pick.rs, decision 25) before the booking is
/// cancelled, in the same transaction: a pick that saw the booking's row full then either records
/// it before this statement's snapshot, which deletes the record, or reads after this commit and
/// sees the free seats. A hold fills no row and takes no lock.
pub const CANCEL_LOCK_SQL: &str = "\
SELECT pg_advisory_xact_lock(event_id) FROM bookings WHERE id = $1 AND status = 'confirmed'";

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
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    // Pipelined: the cancellation starts once the lock is granted, with a snapshot taken then.
    let owner = owner.map(UserId::as_str);
    let by_id: [(&(dyn ToSql + Sync), Type); 1] = [(&id, Type::UUID)];
    let by_owner: [(&(dyn ToSql + Sync), Type); 2] = [(&id, Type::UUID), (&owner, Type::TEXT)];
    let lock = tx.execute_typed(CANCEL_LOCK_SQL, &by_id);
    let cancel = tx.query_typed_opt(CANCEL_SQL, &by_owner);
    let (_, row) = tokio::try_join!(lock, cancel)?;
    tx.commit().await?;
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
