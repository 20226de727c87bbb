//! The claim: one module owns taking seats, from the request's seats to a booking or a refusal.
//!
//! A claim walks forward: the taken-seat marks in Redis may refuse it at once (a herd's losers);
//! otherwise the booking statement runs (the `book` function of the migrations: every seat or
//! none, the fair-sale rules decided by PostgreSQL), and what it refuses is resolved here (a lapsed
//! hold in the way is released and the statement runs again; a deadlock is retried with back-off;
//! a seat really taken is a 409 and is marked). A booking under an `Idempotency-Key` runs the same
//! attempts in savepoints of the key's transaction ([`crate::idempotency`]). Every statement is sent
//! with `query_typed` (unnamed), which stays correct behind RDS Proxy and PgBouncer.

use crate::marks;
use crate::views::{Booking, BookingStatus, Ticket};
use chrono::{DateTime, Utc};
use seatbook_core::db::{is_retryable_conflict, is_unique_violation_on};
use seatbook_core::domain::{SeatSelection, UserId};
use seatbook_core::recent::Recent;
use seatbook_core::state::MarkRead;
use seatbook_core::{ApiError, AppState};
use std::time::{Duration, SystemTime};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, Row, Transaction};
use uuid::Uuid;

/// The constraint that arbitrates every race for a seat.
pub const TICKETS_ARBITER: &str = "tickets_event_seat_key";

/// How many times one request runs the booking statement at most while PostgreSQL keeps aborting
/// it to break a deadlock or a serialization conflict; then the answer is 503 with `Retry-After`.
const MAX_CONTENDED_ATTEMPTS: u32 = 4;
/// The back-off before the n-th of those retries is up to this × 2^(n-1) (see [`backoff`]).
const BACKOFF_BASE: Duration = Duration::from_millis(10);

/// Who holds the requested seats now, and whether that claim is a hold that has lapsed. Judged at
/// the statement's time, as book() judges at its own (not at a keyed transaction's start).
pub const HOLDERS_SQL: &str = "\
SELECT t.seat_id, b.status = 'held' AND b.expires_at <= statement_timestamp() AS lapsed
FROM tickets t JOIN bookings b ON b.id = t.booking_id
WHERE t.event_id = $1 AND t.seat_id = ANY ($2)
ORDER BY t.seat_id";

/// Gives back the seats of lapsed holds that stand in the way of a request: the hold becomes
/// `expired` (locking its row, so a concurrent confirmation either wins first or sees this) and its
/// tickets move to `released_tickets`. Correctness needs no background job: whoever wants an
/// expired hold's seat runs this first. The `release_lapsed` function of migrations/V16 offers the
/// released seats to the event's waitlist in the same transaction, so a seat whose hold lapsed
/// goes to whoever waits in line before the request that found it; returns the seats released.
pub const RELEASE_LAPSED_SQL: &str = "SELECT release_lapsed($1, $2)";

/// What a booking or a hold asks for.
pub struct Claim<'a> {
    pub user: &'a UserId,
    pub event_id: i64,
    pub seats: &'a SeatSelection,
    /// `Some(duration)`: a hold lasting that long; `None`: a confirmed booking.
    pub hold_for: Option<Duration>,
}

/// Why one attempt at the booking statement did not produce a booking.
pub(crate) enum Refusal {
    /// A seat is claimed already (23505 on the arbiter); the attempt is aborted.
    Taken(tokio_postgres::Error),
    /// PostgreSQL aborted the attempt to break a deadlock or a serialization conflict (40P01,
    /// 40001): worth running again in a moment.
    Contended(tokio_postgres::Error),
    /// Anything else, as the API will report it.
    Failed(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        Refusal::Failed(err)
    }
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(err: tokio_postgres::Error) -> Self {
        if is_unique_violation_on(&err, TICKETS_ARBITER) {
            Refusal::Taken(err)
        } else if is_retryable_conflict(&err) {
            Refusal::Contended(err)
        } else {
            Refusal::Failed(err.into())
        }
    }
}

/// What to do about a conflict.
enum Conflict {
    /// Lapsed holds were released: try again (once).
    Retry,
    /// These seats are really taken.
    Taken(Vec<i64>),
}

/// Where the attempts at a claim run.
pub(crate) enum Attempts<'a, 't> {
    /// Each attempt is the booking statement alone on this connection: one statement, so its own
    /// transaction, committed when it books and rolled back whole when it fails.
    Statements(&'a Client),
    /// Each attempt is a savepoint of this open transaction, which its owner commits (a booking
    /// under an `Idempotency-Key`: the transaction holds the key's row). The service runs at READ
    /// COMMITTED, so every statement of an attempt reads afresh: rolling back to the savepoint and
    /// running the statement again is a real retry.
    Savepoints(&'a Transaction<'t>),
}

/// How long seats found taken by a conflict stay marked as taken in Redis: a herd's losers after
/// the first are refused from the mark. Short, as the holder may be a hold about to lapse.
const CONFLICT_MARK: Duration = Duration::from_secs(5);

/// Books (or holds) the claim: all seats, or none and an error saying why.
///
/// Seats marked taken in Redis (by the commit that took them, or by an earlier conflict) are
/// refused before any database work: in an on-sale herd, the losers are answered from the marks,
/// before they wait for a connection and again once they have one (by then the winner has usually
/// committed). A mark read here is kept in the process for as long as the near copy of a read
/// (`seen_taken`), and requests asking while a read is out share it (`mark_reads`), so a herd
/// costs Redis a few reads, not one per loser. The marks only ever refuse
/// what PostgreSQL refused or committed; the unique constraint still decides every seat that gets
/// through.
pub async fn book(state: &AppState, claim: &Claim<'_>) -> Result<Booking, ApiError> {
    let cache = state.cache.as_deref();
    // The event's freed count as the last read of the marks saw it (see `marks::mark_conflict`).
    let mut freed = None;
    match marked(state, claim).await {
        Some(read) if !read.taken.is_empty() => {
            return Err(ApiError::SeatsTaken {
                seat_ids: read.taken,
            })
        }
        Some(read) => freed = Some(read.freed),
        None => {}
    }
    let conn = state.db.get().await?;
    let mut looked = false;
    if state.contested.any(claim.event_id, claim.seats.ids()) {
        match marked(state, claim).await {
            Some(read) if !read.taken.is_empty() => {
                return Err(ApiError::SeatsTaken {
                    seat_ids: read.taken,
                })
            }
            Some(read) => (looked, freed) = (true, Some(read.freed)),
            None => {}
        }
    }
    let asked = std::time::Instant::now();
    let outcome = attempt(Attempts::Statements(&conn), claim, &state.contested, looked).await;
    if let (Err(ApiError::SeatsTaken { seat_ids }), Some(cache)) = (&outcome, cache) {
        // This process's next requests for these seats are refused at once, as after a read of
        // the marks: a herd's losers that got past the marks before the winner's were written
        // would otherwise each cost PostgreSQL a read (seen: half the herds of 5,000 spent 45 %
        // of a core there, p99 1.3 s instead of 0.5).
        state.seen_taken.note_read(claim.event_id, seat_ids, asked);
        // PostgreSQL refused: the next requests for these seats are refused from Redis, unless a
        // seat of the event was freed since the marks were read (or they could not be).
        if let Some(freed) = &freed {
            let until = SystemTime::now() + CONFLICT_MARK;
            marks::mark_conflict(cache, claim.event_id, seat_ids, until, freed).await;
        }
    }
    outcome
}

/// The requested seats that carry a taken mark, as this process saw them within the near copy's
/// span (then `freed` is empty and `taken` is not) or else as Redis has them; `None` when there is
/// no Redis to ask or it cannot say.
async fn marked(state: &AppState, claim: &Claim<'_>) -> Option<MarkRead> {
    let cache = state.cache.as_deref()?;
    let (event, ids) = (claim.event_id, claim.seats.ids());
    let seen = state.seen_taken.which(event, ids);
    if !seen.is_empty() {
        return Some(MarkRead {
            taken: seen,
            sent: std::time::Instant::now(),
            freed: String::new(),
        });
    }
    // One read for every request asking about the same seats meanwhile (a herd), timed from
    // when that read was sent.
    let read = || async {
        let sent = std::time::Instant::now();
        let (taken, freed) = marks::marked(cache, event, ids).await.ok_or(())?;
        Ok::<_, ()>(MarkRead { taken, sent, freed })
    };
    let key = (event, ids.to_vec());
    let read = state.mark_reads.run(&key, read).await.ok()?;
    // Not over a cancellation this process made while the read was out.
    state.seen_taken.note_read(event, &read.taken, read.sent);
    Some(read)
}

/// The one loop that runs the booking statement until it books or gets a final answer, for
/// plain bookings and those under an `Idempotency-Key` alike:
///
/// - a collision with a hold that has lapsed releases that hold and runs the statement again
///   (once; a second collision is a real one);
/// - an attempt PostgreSQL aborted to break a deadlock or a serialization conflict runs again
///   after a short random back-off, at most [`MAX_CONTENDED_ATTEMPTS`] times in all; then the
///   answer is 503 with `Retry-After`, never 500;
/// - seats someone really holds are a 409, remembered in `contested`.
pub(crate) async fn attempt(
    mut attempts: Attempts<'_, '_>,
    claim: &Claim<'_>,
    contested: &Recent,
    marks_looked_at: bool,
) -> Result<Booking, ApiError> {
    if !marks_looked_at && contested.any(claim.event_id, claim.seats.ids()) {
        // A herd: answer the losers with one read instead of a doomed transaction.
        let taken = attempts.live_holders(claim).await?;
        if !taken.is_empty() {
            return Err(ApiError::SeatsTaken { seat_ids: taken });
        }
    }
    let mut released = false;
    let mut contended = 0;
    loop {
        let refusal = match attempts.once(claim).await {
            Ok(booking) => return Ok(booking),
            Err(Refusal::Taken(conflict)) => {
                attempts.rewind().await?;
                match attempts.resolve(claim, &conflict, !released).await {
                    Ok(Conflict::Retry) => {
                        released = true;
                        continue;
                    }
                    Ok(Conflict::Taken(seat_ids)) => {
                        contested.note(claim.event_id, &seat_ids);
                        return Err(ApiError::SeatsTaken { seat_ids });
                    }
                    Err(refusal) => refusal,
                }
            }
            Err(refusal) => refusal,
        };
        match refusal {
            Refusal::Contended(err) => {
                contended += 1;
                if contended >= MAX_CONTENDED_ATTEMPTS {
                    tracing::warn!(
                        event = claim.event_id,
                        attempts = contended,
                        error = %err,
                        "booking still aborted by PostgreSQL; giving up"
                    );
                    return Err(err.into());
                }
                attempts.rewind().await?;
                let pause = backoff(contended);
                tracing::info!(
                    event = claim.event_id,
                    attempt = contended,
                    error = %err,
                    ?pause,
                    "booking aborted by PostgreSQL; retrying"
                );
                tokio::time::sleep(pause).await;
            }
            Refusal::Failed(err) => {
                // A refusal leaves the transaction usable for its owner (the key's response is
                // stored in it); a broken connection or server error is not worth the round trip.
                if !err.status().is_server_error() {
                    attempts.rewind().await?;
                }
                return Err(err);
            }
            // Resolving reads and releases; it never claims a seat.
            Refusal::Taken(err) => return Err(err.into()),
        }
    }
}

/// A random pause before the n-th retry (from 1): between half and all of [`BACKOFF_BASE`] ×
/// 2^(n-1), so requests that collided once do not collide again in step.
fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE * 2u32.pow(retry.saturating_sub(1).min(10));
    let jitter = (Uuid::new_v4().as_u128() % 1024) as u32;
    ceiling / 2 + ceiling / 2 * jitter / 1024
}

impl Attempts<'_, '_> {
    /// Runs the booking statement once, as a transaction or in a savepoint of its own.
    async fn once(&mut self, claim: &Claim<'_>) -> Result<Booking, Refusal> {
        match self {
            Attempts::Statements(client) => insert(*client, claim).await,
            Attempts::Savepoints(tx) => {
                // One round trip: the savepoint, then the statement.
                let (saved, inserted) =
                    tokio::join!(tx.batch_execute("SAVEPOINT attempt"), insert(*tx, claim));
                saved?;
                inserted
            }
        }
    }

    /// Undoes a refused attempt (and whatever failed after it), leaving the connection or the
    /// transaction ready for the next statement.
    async fn rewind(&self) -> Result<(), ApiError> {
        match self {
            // A failed statement outside a transaction left nothing behind.
            Attempts::Statements(_) => Ok(()),
            Attempts::Savepoints(tx) => {
                Ok(tx.batch_execute("ROLLBACK TO SAVEPOINT attempt").await?)
            }
        }
    }

    async fn resolve(
        &self,
        claim: &Claim<'_>,
        conflict: &tokio_postgres::Error,
        may_release: bool,
    ) -> Result<Conflict, Refusal> {
        match self {
            Attempts::Statements(client) => resolve(*client, claim, conflict, may_release).await,
            Attempts::Savepoints(tx) => resolve(*tx, claim, conflict, may_release).await,
        }
    }

    async fn live_holders(&self, claim: &Claim<'_>) -> Result<Vec<i64>, ApiError> {
        match self {
            Attempts::Statements(client) => live_holders(*client, claim).await,
            Attempts::Savepoints(tx) => live_holders(*tx, claim).await,
        }
    }
}

/// The requested seats that a live claim holds (a lapsed hold does not count: it is free).
async fn live_holders(
    client: &impl GenericClient,
    claim: &Claim<'_>,
) -> Result<Vec<i64>, ApiError> {
    Ok(holders(client, claim)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter(|(_, lapsed)| !lapsed)
        .map(|(seat, _)| seat)
        .collect())
}

/// Each requested seat that has a ticket, and whether that ticket's hold has lapsed.
async fn holders(
    client: &impl GenericClient,
    claim: &Claim<'_>,
) -> Result<Vec<(i64, bool)>, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            HOLDERS_SQL,
            &[
                (&claim.event_id, Type::INT8),
                (&claim.seats.ids(), Type::INT8_ARRAY),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("seat_id"), row.get("lapsed")))
        .collect())
}

/// After a conflict: release lapsed holds in the way (when `may_release`) so the caller retries,
/// or name the seats that are really taken.
async fn resolve(
    client: &impl GenericClient,
    claim: &Claim<'_>,
    conflict: &tokio_postgres::Error,
    may_release: bool,
) -> Result<Conflict, Refusal> {
    let holders = holders(client, claim).await?;
    if may_release && holders.iter().any(|(_, lapsed)| *lapsed) {
        let released: i64 = client
            .query_typed_one(
                RELEASE_LAPSED_SQL,
                &[
                    (&claim.event_id, Type::INT8),
                    (&claim.seats.ids(), Type::INT8_ARRAY),
                ],
            )
            .await?
            .get(0);
        seatbook_core::metrics::count(seatbook_core::metrics::HOLD_SEATS_LAPSED, released as f64);
        return Ok(Conflict::Retry);
    }
    let mut taken: Vec<i64> = holders
        .into_iter()
        .filter(|(_, lapsed)| !lapsed)
        .map(|(seat, _)| seat)
        .collect();
    if taken.is_empty() {
        // The winner released its seat between our conflict and this read; the constraint's
        // own report still names the seat that was taken at the time.
        taken.extend(conflicting_seat(conflict));
    }
    Ok(Conflict::Taken(taken))
}

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
        together: None,
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

/// The seat id in a unique violation's detail: `Key (event_id, seat_id)=(7, 42) already exists.`
fn conflicting_seat(err: &tokio_postgres::Error) -> Option<i64> {
    let detail = err.as_db_error()?.detail()?;
    let values = detail.split_once(")=(")?.1;
    values.split([',', ')']).nth(1)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_grows_with_each_retry_and_is_jittered() {
        for retry in 1..=MAX_CONTENDED_ATTEMPTS {
            let ceiling = BACKOFF_BASE * 2u32.pow(retry - 1);
            let pauses: Vec<Duration> = (0..50).map(|_| backoff(retry)).collect();
            for pause in &pauses {
                assert!(
                    *pause >= ceiling / 2 && *pause <= ceiling,
                    "{pause:?} for retry {retry}"
                );
            }
            let distinct: std::collections::HashSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 10, "jittered: {pauses:?}");
        }
        // All the retries of one request wait well under a second in all.
        let worst: Duration = (1..MAX_CONTENDED_ATTEMPTS)
            .map(|n| BACKOFF_BASE * 2u32.pow(n - 1))
            .sum();
        assert!(worst < Duration::from_millis(200), "{worst:?}");
    }
}
