//! Best available against the database, for the picks the seat map cannot settle
//! ([`crate::seatmap`]: no Redis, too few seats free on the map): the rows a request may have, the
//! claims on their seats read front to back (stopping once the choice is settled; the venue's seats
//! and the event's layout are remembered by the process, nearly full rows are read by their open
//! seats), the choice ([`crate::best`]), and its booking through the claim path every booking takes
//! ([`claim::attempt`]: `book()`, its rules and the unique constraint on tickets).
//!
//! Picks of one event are made one at a time: in the process they take turns ([`turn`]) before
//! taking a connection, and in the database they hold a transaction-scoped advisory lock keyed by
//! the event's id from the read of its claims to the commit of the booking, a commit that does not
//! wait for the disk; the answer does ([`durable`]) (decision 25). Every request of an on-sale herd
//! would otherwise choose the same best block and all but one collide. Bookings that name their
//! seats never take the lock; one that takes a picked seat first makes the pick collide (23505),
//! and the pick is made again from a fresh read, still under the lock. The taken-seat marks in
//! Redis are not read here: they may refuse seats that are free again, which would turn a pick into
//! a wrong 409.

use crate::best::{self, Choice, Place, Row};
use crate::claim::{self, Attempts, Claim};
use crate::views::Booking;
use seatbook_core::catalog::{EventLayout, VenueSeats, VENUE_SEATS_SQL};
use seatbook_core::domain::{SeatSelection, UserId, STANDARD};
use seatbook_core::turns::Turn;
use seatbook_core::{ApiError, AppState};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};

/// What a best-available request asks for.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub count: usize,
    pub category: Option<String>,
    pub section: Option<String>,
    /// Wheelchair places (only they), or ordinary seats (only they).
    pub accessible: bool,
}

/// The event's venue, sections and price categories (`seatbook_core::catalog`).
pub use seatbook_core::catalog::EVENT_LAYOUT_SQL as LAYOUT_SQL;

/// Waits for the event's pick lock, held until the transaction ends. The key is the event's id;
/// no other advisory lock is taken in this database.
pub const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";

/// A pick's transaction commits without waiting for its WAL to reach disk, so the pick lock, held
/// to the commit, is given up after the work and not after a disk flush (decision 25). Its seats
/// are visible to the next pick at once; [`DURABLE_SQL`] waits for the flush before the answer.
pub const ASYNC_COMMIT_SQL: &str = "SET LOCAL synchronous_commit = off";

/// Waits until everything this session committed is on disk (and on synchronous standbys): a
/// logical-decoding message in a transaction of its own, committed as usual, is flushed with all
/// the WAL before it. Flushes of concurrent picks are shared, as commits' are.
pub const DURABLE_SQL: &str = "SELECT pg_logical_emit_message(true, 'seatbook', 'durable')";

/// The rows of the event that confirmed bookings have filled (V15) or nearly filled (V19), each
/// with the seats they had not (`open`; none when full): a pick leaves full rows out and reads
/// only the claims on a nearly full row's open seats. Read with the layout, before the pick lock:
/// a row a cancellation opens meanwhile is read by the next pick, as if the cancellation had come
/// after this one; the lock guards what is recorded.
pub const FULL_ROWS_SQL: &str = "SELECT row_index, open FROM full_rows WHERE event_id = $1";

/// Records rows `$2` of event `$1` with their open seats `$3` (each a comma-separated list of ids,
/// empty for a full row), or narrows their record.
pub const RECORD_FULL_ROWS_SQL: &str = "\
INSERT INTO full_rows (event_id, row_index, open)
SELECT $1, r, string_to_array(o, ',')::bigint[] FROM unnest($2::int[], $3::text[]) AS u (r, o)
ON CONFLICT (event_id, row_index) DO UPDATE SET open = EXCLUDED.open";

/// A row read with at most this many seats no confirmed booking has, and no more than an eighth
/// of its seats, is recorded with them (a short row only when full, as before V19).
const RECORD_OPEN_AT_MOST: usize = 24;

/// The live claims of event `$1` on the seats that `$seats` (SQL after `t.seat_id`) picks: one
/// statement text for [`TAKEN_SQL`] and [`TAKEN_AMONG_SQL`], so the two reads never drift apart.
macro_rules! taken_sql {
    ($seats:literal) => {
        concat!(
            "\
SELECT t.seat_id, b.held, b.until_ms
FROM tickets t
CROSS JOIN LATERAL (
    SELECT status = 'held' AS held, (extract(epoch FROM expires_at) * 1000)::int8 AS until_ms
    FROM bookings
    WHERE id = t.booking_id AND (status <> 'held' OR expires_at > statement_timestamp())
    LIMIT 1
) b
WHERE t.event_id = $1 AND t.seat_id ",
            $seats
        )
    };
}

/// The live claims of event `$1` on seats `$2..=$3` (the id range of the rows a pick reads; the
/// venue's seats are remembered, [`AppState::venue_seats`]): a ticket, unless of a hold that has
/// lapsed, whose seat the claim path releases on the way, and whether it is a hold (`held`). The
/// tickets come by `tickets_event_seat_key` over the range, each booking by key: what is read grows
/// with the rows read, never with the event's sales (all its live tickets hashed took 6.4 ms with
/// 8,000 seats of an arena sold, against 1.3 ms), and no join is left to statistics: joined to the
/// event's holds from statistics taken before an on-sale, a nested loop compared every ticket with
/// every hold (1.5 million pairs, 81 ms, with 3,000 held).
pub const TAKEN_SQL: &str = taken_sql!("BETWEEN $2 AND $3");

/// [`TAKEN_SQL`] on the seats `$2` (the open seats of nearly full rows, V19).
pub const TAKEN_AMONG_SQL: &str = taken_sql!("= ANY ($2)");

/// The first read covers rows up to about this many seats (one row at least); each next read four
/// times as many.
pub const FIRST_READ_SEATS: usize = 1024;

/// How long a pick waits for its turn in this process ([`turn`]): longer than for a connection
/// (2 s), as a waiter holds none, and inside the request's deadline (4.5 s) with the pick's own
/// waits (its connection, its statements).
pub(crate) const TURN_WAIT: Duration = Duration::from_secs(3);

/// The one id [`AppState::scarce`] remembers for an event.
pub(crate) const SCARCE: i64 = 0;

/// How many times a pick is made again after a booking naming its seats took one of them first.
pub(crate) const MAX_PICKS: usize = 5;

/// What a pick reads of the event, but its claims: the venue's seats, and the rows the request may
/// have, front to back, but the full ones.
struct Layout {
    seats: Arc<VenueSeats>,
    /// (row, seats of it a pick reads: all, or the open ones of a nearly full row).
    rows: Vec<(i32, usize)>,
    /// The nearly full rows' open seats (V19).
    recorded: HashMap<i32, HashSet<i64>>,
}

/// Reads the event's layout (once per process: [`AppState::layouts`]) and the rows `wanted` may
/// have: 404 for no such event, 422 for a category or section it does not have.
async fn layout(
    state: &AppState,
    tx: &Transaction<'_>,
    event_id: i64,
    wanted: &Wanted,
) -> Result<Layout, ApiError> {
    let key: [(&(dyn ToSql + Sync), Type); 1] = [(&event_id, Type::INT8)];
    let (_, layout, recorded) = tokio::try_join!(
        async { Ok(tx.batch_execute(ASYNC_COMMIT_SQL).await?) },
        event_layout(state, tx, event_id),
        async { Ok(tx.query_typed(FULL_ROWS_SQL, &key).await?) }
    )?;
    let recorded: HashMap<i32, HashSet<i64>> = recorded
        .iter()
        .map(|row| (row.get(0), row.get::<_, Vec<i64>>(1).into_iter().collect()))
        .collect();
    let seats = venue_seats(state, tx, layout.venue_id).await?;
    let rows = rows_wanted(&layout, event_id, wanted, &recorded)?;
    Ok(Layout {
        seats,
        rows,
        recorded,
    })
}

/// The event's layout, read once per process ([`AppState::layouts`]); 404 for no such event.
pub(crate) async fn event_layout(
    state: &AppState,
    client: &impl GenericClient,
    event_id: i64,
) -> Result<Arc<EventLayout>, ApiError> {
    let key: [(&(dyn ToSql + Sync), Type); 1] = [(&event_id, Type::INT8)];
    let read = || async {
        match client.query_typed_opt(LAYOUT_SQL, &key).await? {
            Some(row) => Ok(EventLayout::from_row(&row)),
            None => Err(ApiError::not_found(format!("event {event_id}"))),
        }
    };
    state.layouts.get_or_load(event_id, read).await
}

/// The venue's seats, read once per process ([`AppState::venue_seats`]).
pub(crate) async fn venue_seats(
    state: &AppState,
    client: &impl GenericClient,
    venue_id: i64,
) -> Result<Arc<VenueSeats>, ApiError> {
    let venue: [(&(dyn ToSql + Sync), Type); 1] = [(&venue_id, Type::INT8)];
    let read = || async {
        let rows = client.query_typed(VENUE_SEATS_SQL, &venue).await?;
        Ok(VenueSeats::from_rows(&rows))
    };
    state.venue_seats.get_or_load(venue_id, read).await
}

/// The rows `wanted` may have, front to back, each with how many of its seats a pick reads (all,
/// or the open ones `recorded` of a nearly full row); full rows left out. 422 for a category or
/// section the event does not have.
pub(crate) fn rows_wanted(
    layout: &EventLayout,
    event_id: i64,
    wanted: &Wanted,
    recorded: &HashMap<i32, HashSet<i64>>,
) -> Result<Vec<(i32, usize)>, ApiError> {
    let section = match &wanted.section {
        None => None,
        Some(name) => Some(
            layout
                .sections
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "event {event_id}'s venue has no section named {name:?}"
                    ))
                })?,
        ),
    };
    // The category's position, or `None` for "Standard" (the rows no category covers).
    let category = match &wanted.category {
        None => None,
        Some(name) if name.eq_ignore_ascii_case(STANDARD) => Some(None),
        Some(name) => Some(Some(
            layout
                .categories
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
                .map(|c| c.position)
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "event {event_id} has no price category named {name:?}"
                    ))
                })?,
        )),
    };
    let category_of: HashMap<i32, i32> = layout.covered.iter().copied().collect();
    let mut rows = Vec::new();
    for (i, s) in layout.sections.iter().enumerate() {
        if section.is_some_and(|wanted| wanted != i) {
            continue;
        }
        for r in s.first_row..s.first_row + s.rows {
            let open = recorded.get(&r).map(HashSet::len);
            if open != Some(0) && category.is_none_or(|c| category_of.get(&r).copied() == c) {
                rows.push((r, open.unwrap_or(s.cols as usize)));
            }
        }
    }
    Ok(rows)
}

/// Reads the rows of `layout` front to back, a batch at a time, until the choice is settled
/// ([`best::settled`]) or every row is read; takes the event's pick lock first (pipelined with the
/// first batch, which is read once the lock is granted) when `lock` says so. Returns the rows, and
/// those of them confirmed bookings have filled or nearly filled whose record is new or narrower,
/// each with its open seats.
async fn free_seats(
    tx: &Transaction<'_>,
    event_id: i64,
    layout: &Layout,
    wanted: &Wanted,
    lock: bool,
) -> Result<(Vec<Row>, Vec<(i32, Vec<i64>)>), ApiError> {
    let open = &layout.rows;
    let mut rows: Vec<Row> = Vec::with_capacity(open.len());
    let mut slot: HashMap<i32, usize> = HashMap::new();
    let mut filled = Vec::new();
    let mut next = 0;
    let mut budget = FIRST_READ_SEATS;
    while next < open.len() {
        let mut end = next;
        let mut seats = 0;
        while end < open.len() && (end == next || seats + open[end].1 <= budget) {
            seats += open[end].1;
            end += 1;
        }
        let batch: Vec<i32> = open[next..end].iter().map(|(r, _)| *r).collect();
        for r in &batch {
            slot.insert(*r, rows.len());
            rows.push(Row::default());
        }
        // Rows read whole: the claims over their seats' id range; nearly full rows: the claims
        // on their open seats.
        let (whole, among): (Vec<i32>, Vec<i32>) =
            batch.iter().partition(|r| !layout.recorded.contains_key(r));
        let ids = whole
            .iter()
            .flat_map(|r| &layout.seats.rows[r])
            .map(|s| s.id);
        let (lo, hi) = (ids.clone().min().unwrap_or(0), ids.max().unwrap_or(-1));
        let among: Vec<i64> = among
            .iter()
            .flat_map(|r| &layout.recorded[r])
            .copied()
            .collect();
        let key: [(&(dyn ToSql + Sync), Type); 1] = [(&event_id, Type::INT8)];
        let range: [(&(dyn ToSql + Sync), Type); 3] = [
            (&event_id, Type::INT8),
            (&lo, Type::INT8),
            (&hi, Type::INT8),
        ];
        let listed: [(&(dyn ToSql + Sync), Type); 2] =
            [(&event_id, Type::INT8), (&among, Type::INT8_ARRAY)];
        // One round trip: the lock (first batch of a pick under it), then the reads, which start
        // once the lock is granted and so see every pick made before this one.
        let locked = async {
            if lock && next == 0 {
                tx.execute_typed(LOCK_SQL, &key).await?;
            }
            Ok(())
        };
        let in_range = async {
            match whole.is_empty() {
                true => Ok(Vec::new()),
                false => tx.query_typed(TAKEN_SQL, &range).await,
            }
        };
        let on_listed = async {
            match among.is_empty() {
                true => Ok(Vec::new()),
                false => tx.query_typed(TAKEN_AMONG_SQL, &listed).await,
            }
        };
        let ((), in_range, on_listed) = tokio::try_join!(locked, in_range, on_listed)?;
        // Seat → whether its claim is a hold.
        let claims: HashMap<i64, bool> = in_range
            .iter()
            .chain(&on_listed)
            .map(|claim| (claim.get("seat_id"), claim.get("held")))
            .collect();
        for r in &batch {
            let recorded = layout.recorded.get(r);
            // The seats of the row no confirmed booking has.
            let mut open = Vec::new();
            for seat in &layout.seats.rows[r] {
                // A seat a nearly full row's record leaves out is a confirmed booking's.
                let listed = recorded.is_none_or(|o| o.contains(&seat.id));
                let held = match listed {
                    true => claims.get(&seat.id).copied(),
                    false => Some(false),
                };
                if held != Some(false) {
                    open.push(seat.id);
                }
                rows[slot[r]].seats.push(Place {
                    id: seat.id,
                    number: seat.number,
                    free: held.is_none() && seat.accessible == wanted.accessible,
                });
            }
            let at_most = RECORD_OPEN_AT_MOST.min(layout.seats.rows[r].len() / 8);
            if open.len() <= at_most && recorded.map(HashSet::len) != Some(open.len()) {
                filled.push((*r, open));
            }
        }
        next = end;
        budget *= 4;
        if best::settled(&rows, wanted.count) {
            break;
        }
    }
    Ok((rows, filled))
}

/// Waits for this process's turn to pick for `event_id` (`seatbook_core::turns`), to be taken
/// before a connection and given up after the commit. `None` when the event has just run short
/// here, before or during the wait: [`book`] then answers from a read without the lock, beside
/// the other requests instead of one after another.
pub async fn turn(state: &AppState, event_id: i64) -> Result<Option<Turn>, ApiError> {
    if state.scarce.any(event_id, &[SCARCE]) {
        return Ok(None);
    }
    let turn = state.pick_turns.wait(event_id, TURN_WAIT).await?;
    if state.scarce.any(event_id, &[SCARCE]) {
        return Ok(None);
    }
    Ok(Some(turn))
}

/// Books (or holds) the best available seats for `wanted` in `tx`, which its caller commits (a
/// booking, or an `Idempotency-Key`'s stored response) or rolls back, and after a commit waits
/// for with [`durable`] before answering. The booking says whether its seats are `together`.
pub async fn book(
    state: &AppState,
    tx: &Transaction<'_>,
    user: &UserId,
    event_id: i64,
    wanted: &Wanted,
    hold_for: Option<Duration>,
) -> Result<Booking, ApiError> {
    let layout = layout(state, tx, event_id, wanted).await?;
    let short = |available| ApiError::NotEnoughSeats {
        available,
        requested: wanted.count,
    };
    if state.scarce.any(event_id, &[SCARCE]) {
        // This process just found the event short: look without the lock first, so the losers of
        // a sold-out herd are answered side by side instead of one after another.
        let (rows, _) = free_seats(tx, event_id, &layout, wanted, false).await?;
        if let Choice::NotEnough { available } = best::choose(&rows, wanted.count) {
            return Err(short(available));
        }
    }
    for pick in 0..MAX_PICKS {
        let (rows, filled) = free_seats(tx, event_id, &layout, wanted, pick == 0).await?;
        let (ids, together) = match best::choose(&rows, wanted.count) {
            Choice::Seats { ids, together } => (ids, together),
            Choice::NotEnough { available } => {
                state.scarce.note(event_id, &[SCARCE]);
                return Err(short(available));
            }
        };
        let seats = SeatSelection::parse(ids)?;
        let claim = Claim {
            user,
            event_id,
            seats: &seats,
            hold_for,
        };
        // The rows found full or nearly full are recorded (under the lock: a cancellation takes
        // it to delete them) in the round trip of the booking, sent first so a refused booking's
        // rollback to its savepoint keeps them; a pick that finds too few seats records nothing,
        // so the losers of a sold-out herd spend no round trip on it while they hold the lock.
        let (filled, open): (Vec<i32>, Vec<String>) = filled
            .iter()
            .map(|(r, open)| {
                (
                    *r,
                    open.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
            .unzip();
        let params: [(&(dyn ToSql + Sync), Type); 3] = [
            (&event_id, Type::INT8),
            (&filled, Type::INT4_ARRAY),
            (&open, Type::TEXT_ARRAY),
        ];
        let record = async {
            if filled.is_empty() {
                return Ok(0);
            }
            tx.execute_typed(RECORD_FULL_ROWS_SQL, &params).await
        };
        // The marks were not read (see the head of this module) and the seats were read just now.
        let attempt = claim::attempt(Attempts::Savepoints(tx), &claim, &state.contested, true);
        let (recorded, attempt) = tokio::join!(record, attempt);
        recorded?;
        match attempt {
            Ok(mut booking) => {
                booking.together = Some(together);
                return Ok(booking);
            }
            // A booking naming a picked seat took it first: pick again.
            Err(ApiError::SeatsTaken { seat_ids }) => {
                tracing::info!(
                    event = event_id,
                    ?seat_ids,
                    pick,
                    "picked seats taken; picking again"
                );
            }
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::Unavailable(
        "the picked seats kept being taken by bookings naming them".into(),
    ))
}

/// Returns once what `conn` committed is durable: after a pick's commit ([`ASYNC_COMMIT_SQL`]) and
/// before its answer, so no booking is confirmed that a crash could take back.
pub async fn durable(conn: &tokio_postgres::Client) -> Result<(), ApiError> {
    conn.query_typed(DURABLE_SQL, &[]).await?;
    Ok(())
}
