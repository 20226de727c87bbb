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

/// The whole booking write: one statement inside the transaction (see its comments).
/// Public so the benchmark can run the very same SQL through pgbench.
pub const BOOK_SQL: &str = r#"-- Books every requested seat of one event for one user, or none, in a single statement.
-- $1 event id, $2 seat ids (already de-duplicated, 1..=10), $3 user id,
-- $4 status as text ('confirmed', or 'held' for a hold; see migrations/V7), $5 how long a hold lasts in seconds (else NULL).
--
-- One round trip, no read-then-write race: the insert into tickets is the claim itself, and the
-- unique constraint tickets_event_seat_key decides every race (23505 -> 409). When the event does
-- not exist or a seat is not in the event's venue, nothing is inserted and the first two columns
-- say why. A confirmed booking writes its confirmation to the outbox in the same statement, so the
-- notification exists exactly when the booking does.
--
-- The fair-sale rules are decided here too, by PostgreSQL's clock (now() is the transaction's
-- start), not by a read before: outside the sales window, or past the caller's seat cap, nothing
-- is written and the result's columns say which rule refused. Under a cap, the caller's
-- seat_allowances row was locked by the transaction's previous statement (ALLOWANCE_SQL), so the
-- count below, taken by this later statement, includes whatever the caller's last concurrent
-- request committed.
WITH event AS (
    -- One row: the event, whether it is on sale now, and (only under a cap) the caller's live
    -- seats for it, confirmed or held and unexpired. `ok`: this request may write.
    SELECT e.*, e.on_sale AND (e.max_seats_per_user IS NULL
                               OR e.live_seats + cardinality($2) <= e.max_seats_per_user) AS ok
    FROM (
        SELECT id, venue_id, price_cents, max_seats_per_user, sales_start_at,
               coalesce(sales_end_at, starts_at) AS sales_end_at,
               now() < sales_start_at IS TRUE AS before_sale,
               now() >= coalesce(sales_start_at, '-infinity')
                   AND now() < coalesce(sales_end_at, starts_at) AS on_sale,
               CASE WHEN max_seats_per_user IS NOT NULL THEN live_seats($1, $3) END AS live_seats
        FROM events WHERE id = $1
    ) e
), wanted AS (
    SELECT s.id AS seat_id, s.row_index, s.row_label, s.seat_number
    FROM seats s
    JOIN event e ON s.venue_id = e.venue_id
    WHERE s.id = ANY ($2)
), usr AS (
    INSERT INTO users (id) SELECT $3 FROM event WHERE ok ON CONFLICT (id) DO NOTHING
), booking AS (
    INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
    SELECT $3, e.id, $4::booking_status, e.price_cents * cardinality($2), now() + make_interval(secs => $5)
    FROM event e
    WHERE e.ok AND (SELECT count(*) FROM wanted) = cardinality($2)
    RETURNING id, created_at, total_cents, expires_at
), ticket AS (
    -- In seat order, whatever order the request listed them in: two bookings that share seats
    -- then meet on the lowest shared seat first, where the later one waits for the earlier and
    -- gets 23505 if it commits. Neither can hold a seat the other waits for, so no deadlock.
    INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
    SELECT b.id, e.id, w.seat_id, e.price_cents
    FROM booking b, event e, wanted w
    ORDER BY w.seat_id
    RETURNING id, seat_id, price_cents
), confirmation AS (
    INSERT INTO outbox (booking_id, kind, payload)
    SELECT b.id, 'booking.confirmed', json_build_object(
        'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', $1, 'user_id', $3,
        'seat_ids', $2, 'total_cents', b.total_cents, 'confirmed_at', b.created_at)
    FROM booking b
    WHERE $4::booking_status = 'confirmed'
)
SELECT
    e.id IS NOT NULL AS event_found,
    e.on_sale,
    e.sales_start_at,
    e.before_sale,
    e.sales_end_at,
    e.max_seats_per_user,
    e.live_seats,
    (SELECT coalesce(array_agg(seat_id), '{}') FROM wanted) AS valid_seat_ids,
    b.id AS booking_id,
    b.created_at,
    b.total_cents,
    b.expires_at,
    t.id AS ticket_id,
    t.seat_id,
    w.row_label,
    w.seat_number,
    t.price_cents
FROM (SELECT) AS one
LEFT JOIN event e ON true
LEFT JOIN booking b ON true
LEFT JOIN ticket t ON true
LEFT JOIN wanted w ON w.seat_id = t.seat_id
ORDER BY w.row_index, w.seat_number
"#;

/// Under a per-user seat cap, takes the lock on the caller's (event, user) allowance row before
/// the booking statement counts their seats (see migrations/V4). Other users have other rows and
/// never wait on it; an event without a cap writes and locks nothing. Public for the benchmark.
pub const ALLOWANCE_SQL: &str = "\
INSERT INTO seat_allowances (event_id, user_id)
SELECT id, $2 FROM events WHERE id = $1 AND max_seats_per_user IS NOT NULL
ON CONFLICT (event_id, user_id) DO UPDATE SET user_id = excluded.user_id";

/// Runs the booking statement once in `client`'s transaction.
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
    let allowance_params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&claim.event_id, Type::INT8), (&user, Type::TEXT)];
    let book_params: [(&(dyn ToSql + Sync), Type); 5] = [
        (&claim.event_id, Type::INT8),
        (&seat_ids, Type::INT8_ARRAY),
        (&user, Type::TEXT),
        (&status.as_str(), Type::TEXT),
        (&hold_seconds, Type::FLOAT8),
    ];
    // Both statements are sent at once (tokio-postgres pipelines concurrent queries on one
    // connection): no extra round trip, and PostgreSQL still runs the lock before the booking
    // statement takes its snapshot.
    let (allowance, result) = tokio::join!(
        client.query_typed(ALLOWANCE_SQL, &allowance_params),
        client.query_typed(BOOK_SQL, &book_params)
    );
    allowance?;
    let rows = result?;
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
