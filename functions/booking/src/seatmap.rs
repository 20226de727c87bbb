//! The seat map: where a best-available pick chooses, in Redis, so that picks of one event do not
//! queue on a database lock (decision 31).
//!
//! One byte per seat of the event's venue, in the venue's order ([`VenueSeats::positions`]): `.`
//! free, `h` held or being booked (until a deadline kept beside it), `b` booked. A pick reads the
//! map, chooses ([`crate::best`]), marks its choice `h` in one atomic step that fails if any of
//! those seats stopped being free, and books them as any booking does (`book()`, the unique
//! constraint on tickets), with no lock held. The map is a hint that PostgreSQL corrects:
//!
//! - a seat the map calls free that is taken (a write it was not told of) makes the booking
//!   collide (23505); the seat is marked held for a while and the pick made again;
//! - a seat the map calls taken that is free (an unmark that failed) is never a wrong answer:
//!   when the map has too few free seats, the pick is made under the event's lock from the
//!   database ([`crate::pick`]), which alone answers 409 `not-enough-seats`.
//!
//! Every write the service makes tells the map in the round trip that already tells the cache
//! ([`crate::marks`]): bookings mark `b`, holds `h` until they lapse (a pick takes a lapsed hold's
//! seats as free, and its claim frees them), cancellations `.`. The map is built from the
//! database by the first pick that finds it missing; a cancellation meanwhile counts `freed`, and
//! a build that started before it is dropped, so the map never keeps a seat taken that a
//! cancellation it missed freed.

use crate::best::{self, Choice, Place, Row};
use crate::claim::{self, Attempts, Claim};
use crate::pick::{self, Wanted, MAX_PICKS, TAKEN_SQL, TURN_WAIT};
use crate::views::Booking;
use seatbook_cache::redis::{Pipeline, Script};
use seatbook_cache::{Cache, Unavailable};
use seatbook_core::cached;
use seatbook_core::catalog::{VenueSeat, VenueSeats};
use seatbook_core::domain::{SeatSelection, UserId};
use seatbook_core::{ApiError, AppState};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

/// How long an event's map lives after the last pick from it: an idle event's map is built again.
const MAP_TTL: Duration = Duration::from_secs(3600);

/// How long a pick's seats stay marked while it books them: past the request's deadline, so a
/// pick whose process died frees its seats by itself.
const IN_FLIGHT: Duration = Duration::from_secs(10);

/// How long a seat that collided stays marked held: it was taken by a write the map was not told
/// of, or by a hold about to lapse; it is offered again after this.
const COLLIDED: Duration = Duration::from_secs(60);

/// How many times a pick reads the map again after another process marked a seat of its choice
/// first.
const MAX_CLAIMS: usize = 8;

/// Marks positions ARGV[4..] held until ARGV[1] if every one of them is free, holds that lapsed
/// by ARGV[2] (now, in ms) freed first; 1 if it did. Keeps the map's keys ARGV[3] ms longer. KEYS:
/// map, holds (a sorted set of positions by deadline), positions (seat id → position), freed. (The
/// map is read with a plain GET, never into Lua: Redis's Lua hashes every byte of a string it
/// makes, 40 kB for an arena.)
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
if #lapsed > 0 then
  for _, p in ipairs(lapsed) do
    if redis.call('GETRANGE', KEYS[1], p, p) == 'h' then redis.call('SETRANGE', KEYS[1], p, '.') end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
end
for i = 4, #ARGV do
  if redis.call('GETRANGE', KEYS[1], ARGV[i], ARGV[i]) ~= '.' then return 0 end
end
for i = 4, #ARGV do
  redis.call('SETRANGE', KEYS[1], ARGV[i], 'h')
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
";

/// Seats ARGV[4..] (ids) become ARGV[1]: `b` booked, `.` free (counted in `freed`, even with no
/// map, so that a build under way is dropped), or `h` held until ARGV[2] (a booked seat stays
/// booked; a deadline is only ever moved later). ARGV[3]: TTL in ms. KEYS as [`CLAIM`].
const WRITE: &str = r"
local state, deadline = ARGV[1], ARGV[2]
if state == '.' then
  redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 4, #ARGV do
  local p = redis.call('HGET', KEYS[3], ARGV[i])
  if p then
    if state == 'h' then
      if redis.call('GETRANGE', KEYS[1], p, p) ~= 'b' then
        redis.call('SETRANGE', KEYS[1], p, 'h')
        redis.call('ZADD', KEYS[2], 'GT', deadline, p)
      end
    else
      redis.call('SETRANGE', KEYS[1], p, state)
      redis.call('ZREM', KEYS[2], p)
    end
  end
end
return 1
";

/// Stores a map built from the database (ARGV[3]) with its holds (ARGV[4..], position and
/// deadline pairs), unless there is one already or a seat was freed since the build began
/// (`freed` is no longer ARGV[1]). ARGV[2]: TTL in ms. KEYS as [`CLAIM`].
const BUILD: &str = r"
local freed = redis.call('GET', KEYS[4]) or ''
if freed ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
for i = 4, #ARGV, 2 do redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
";

static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));

/// The map's keys, in the event's cluster slot: map, holds, positions, freed. Made once per pick
/// and handed to each of its commands.
fn keys(cache: &Cache, event_id: i64) -> [String; 4] {
    let slot = cached::slot(event_id);
    [
        "seatmap",
        "seatmap-holds",
        "seatmap-positions",
        "seatmap-freed",
    ]
    .map(|name| cache.keys().key(&slot, name))
}

/// The event's count of seats freed (by cancellations; `WRITE` with `.`), which [`BUILD`] and a
/// conflict's mark (`crate::marks::mark_conflict`) check has not moved since they read.
pub(crate) fn freed_key(cache: &Cache, event_id: i64) -> String {
    let [.., freed] = keys(cache, event_id);
    freed
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a write does to seats on the map.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seats {
    Booked,
    Held { until: SystemTime },
    Free,
}

/// Adds the change of `ids` to `change` to `pipe` (its reply ignored), for [`crate::marks`].
pub(crate) fn write_into(
    cache: &Cache,
    event_id: i64,
    ids: &[i64],
    change: Seats,
    pipe: &mut Pipeline,
) {
    add_write(&keys(cache, event_id), ids, change, pipe);
}

/// [`write_into`] with the map's keys at hand.
fn add_write(keys: &[String; 4], ids: &[i64], change: Seats, pipe: &mut Pipeline) {
    let (state, until) = match change {
        Seats::Booked => ("b", 0),
        Seats::Held { until } => ("h", ms(until)),
        Seats::Free => (".", 0),
    };
    pipe.cmd("EVAL")
        .arg(WRITE)
        .arg(4)
        .arg(keys)
        .arg(state)
        .arg(until)
        .arg(MAP_TTL.as_millis() as u64)
        .arg(ids)
        .ignore();
}

/// Applies `change` on its own, quietly: a lost write only makes the map wrong in a way the
/// database corrects (see the module's head).
async fn write(cache: &Cache, keys: &[String; 4], ids: &[i64], change: Seats) {
    let _ = cache
        .query::<()>(|pipe| add_write(keys, ids, change, pipe))
        .await;
}

/// Why the map cannot settle a request; the pick is then made from the database.
#[derive(Debug)]
enum Unsettled {
    /// Redis could not be asked, or the map is missing, short or contended.
    Fallback,
    /// The request has its answer (the database failed, say).
    Failed(ApiError),
}

impl From<Unavailable> for Unsettled {
    fn from(_: Unavailable) -> Self {
        Unsettled::Fallback
    }
}

impl From<ApiError> for Unsettled {
    fn from(err: ApiError) -> Self {
        Unsettled::Failed(err)
    }
}

/// The event's map, holds that have lapsed shown free; `None` when it has none.
async fn read(cache: &Cache, keys: &[String; 4]) -> Result<Option<Vec<u8>>, Unavailable> {
    let [map, holds, ..] = keys;
    let now = ms(SystemTime::now());
    let (bytes, lapsed): (Option<Vec<u8>>, Vec<usize>) = cache
        .query(|pipe| {
            pipe.cmd("GET").arg(map);
            pipe.cmd("ZRANGEBYSCORE").arg(holds).arg("-inf").arg(now);
        })
        .await?;
    Ok(bytes.map(|mut bytes| {
        for p in lapsed {
            if let Some(b @ b'h') = bytes.get_mut(p) {
                *b = b'.';
            }
        }
        bytes
    }))
}

/// Marks `positions` held for [`IN_FLIGHT`] if all of them are free; whether it did.
async fn claim(
    cache: &Cache,
    keys: &[String; 4],
    positions: &[usize],
) -> Result<bool, Unavailable> {
    let now = SystemTime::now();
    let mut invocation = CLAIM_SCRIPT.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    invocation
        .arg(ms(now + IN_FLIGHT))
        .arg(ms(now))
        .arg(MAP_TTL.as_millis() as u64)
        .arg(positions);
    Ok(cache.invoke::<i64>(&invocation).await? == 1)
}

/// Builds the event's map from its live claims in the database, unless a seat is freed meanwhile
/// (then the next pick builds it).
async fn build(
    state: &AppState,
    cache: &Cache,
    keys: &[String; 4],
    event_id: i64,
    seats: &VenueSeats,
) -> Result<(), Unsettled> {
    let [_, _, positions, freed] = keys;
    // Read before the claims: a seat freed after this read drops the build.
    let (before,): (Option<String>,) = cache
        .query(|pipe| {
            pipe.cmd("GET").arg(freed);
        })
        .await?;
    let ids = seats.positions.keys();
    let (lo, hi) = (ids.clone().min().copied(), ids.max().copied());
    let mut map = vec![b'.'; seats.positions.len()];
    let mut holds: Vec<u64> = Vec::new();
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let conn = state.db.get().await.map_err(ApiError::from)?;
        let range: [(&(dyn ToSql + Sync), Type); 3] = [
            (&event_id, Type::INT8),
            (&lo, Type::INT8),
            (&hi, Type::INT8),
        ];
        let claims = conn
            .query_typed(TAKEN_SQL, &range)
            .await
            .map_err(ApiError::from)?;
        for claim in claims {
            let Some(&p) = seats.positions.get(&claim.get::<_, i64>("seat_id")) else {
                continue;
            };
            if claim.get("held") {
                map[p] = b'h';
                holds.push(p as u64);
                holds.push(claim.get::<_, Option<i64>>("until_ms").unwrap_or(0) as u64);
            } else {
                map[p] = b'b';
            }
        }
    }
    let ttl = MAP_TTL.as_millis() as u64;
    let pairs: Vec<(i64, usize)> = seats.positions.iter().map(|(&id, &p)| (id, p)).collect();
    cache
        .query::<()>(|pipe| {
            for chunk in pairs.chunks(1000) {
                pipe.cmd("HSET").arg(positions).arg(chunk).ignore();
            }
            pipe.cmd("PEXPIRE").arg(positions).arg(ttl).ignore();
            pipe.cmd("EVAL")
                .arg(BUILD)
                .arg(4)
                .arg(keys)
                .arg(before.unwrap_or_default())
                .arg(ttl)
                .arg(map)
                .arg(holds)
                .ignore();
        })
        .await?;
    Ok(())
}

/// The rows of `wanted` that [`best::choose`] needs, as the map has them: the first row, front to
/// back, with a block that strands no seat (nothing else can rank above its best block), found
/// without building a row; else every row with a seat free for this request.
fn rows_on(map: &[u8], seats: &VenueSeats, rows: &[(i32, usize)], wanted: &Wanted) -> Vec<Row> {
    let free =
        |s: &VenueSeat| map.get(s.position) == Some(&b'.') && s.accessible == wanted.accessible;
    let row_of = |r: &i32| {
        let seats = &seats.rows[r];
        let places = seats.iter().map(|s| Place {
            id: s.id,
            number: s.number,
            free: free(s),
        });
        Row {
            seats: places.collect(),
        }
    };
    if let Some((r, _)) = rows
        .iter()
        .find(|(r, _)| strands_none(&seats.rows[r], wanted.count, free))
    {
        return vec![row_of(r)];
    }
    rows.iter()
        .filter(|(r, _)| seats.rows[r].iter().any(free))
        .map(|(r, _)| row_of(r))
        .collect()
}

/// Whether `row` has `count` free seats side by side that leave no single free seat beside
/// them ([`best`]'s first rule): a run of free seats of exactly `count`, or of `count + 2` or more.
fn strands_none(row: &[VenueSeat], count: usize, free: impl Fn(&VenueSeat) -> bool) -> bool {
    let clean = |run: usize| run == count || run >= count + 2;
    let (mut run, mut last) = (0, None);
    for seat in row {
        if !free(seat) {
            if clean(run) {
                return true;
            }
            run = 0;
        } else if run > 0 && last.is_some_and(|n: i32| n + 1 == seat.number) {
            run += 1;
        } else {
            if clean(run) {
                return true;
            }
            run = 1;
        }
        last = Some(seat.number);
    }
    clean(run)
}

/// Chooses from the map and marks the choice, taking this process's turn for the event meanwhile
/// (its picks would otherwise choose the same seats); `None` when the map cannot settle it.
async fn choose(
    state: &AppState,
    cache: &Cache,
    keys: &[String; 4],
    event_id: i64,
    seats: &VenueSeats,
    rows: &[(i32, usize)],
    wanted: &Wanted,
) -> Result<(Vec<i64>, bool), Unsettled> {
    let _turn = state.pick_turns.wait(event_id, TURN_WAIT).await?;
    let mut built = false;
    for _ in 0..MAX_CLAIMS {
        let map = match read(cache, keys).await? {
            Some(map) => map,
            None if !built => {
                build(state, cache, keys, event_id, seats).await?;
                built = true;
                continue;
            }
            None => return Err(Unsettled::Fallback),
        };
        let rows = rows_on(&map, seats, rows, wanted);
        let Choice::Seats { ids, together } = best::choose(&rows, wanted.count) else {
            return Err(Unsettled::Fallback);
        };
        let positions: Vec<usize> = ids.iter().map(|id| seats.positions[id]).collect();
        if claim(cache, keys, &positions).await? {
            return Ok((ids, together));
        }
    }
    Err(Unsettled::Fallback)
}

/// Books (or holds) the best available seats for `wanted` from the event's map: in a transaction
/// of its own, or in savepoints of `tx` (an `Idempotency-Key`'s, which its owner commits). `None`
/// when the map cannot settle the request (no Redis, no map, too few seats free on it): the caller
/// then picks under the event's lock ([`pick::book`]).
pub(crate) async fn book(
    state: &AppState,
    tx: Option<&Transaction<'_>>,
    user: &UserId,
    event_id: i64,
    wanted: &Wanted,
    hold_for: Option<Duration>,
) -> Option<Result<Booking, ApiError>> {
    let cache = state.cache.as_deref()?;
    if state.scarce.any(event_id, &[pick::SCARCE]) {
        // Just found short here: the database answers, side by side (pick::turn).
        return None;
    }
    // The event's layout and its venue's seats, with a connection only when this process has yet
    // to read one of them.
    let known = state.layouts.get(event_id).and_then(|layout| {
        let seats = state.venue_seats.get(layout.venue_id)?;
        Some((layout, seats))
    });
    let read = async {
        let conn = state.db.get().await?;
        let client: &tokio_postgres::Client = &conn;
        let layout = pick::event_layout(state, client, event_id).await?;
        let seats = pick::venue_seats(state, client, layout.venue_id).await?;
        Ok::<_, ApiError>((layout, seats))
    };
    let (layout, seats) = match known {
        Some(known) => known,
        None => match read.await {
            Ok(read) => read,
            Err(err) => return Some(Err(err)),
        },
    };
    let rows = match pick::rows_wanted(&layout, event_id, wanted, &HashMap::new()) {
        Ok(rows) => rows,
        Err(err) => return Some(Err(err)),
    };
    let keys = keys(cache, event_id);
    for _ in 0..MAX_PICKS {
        let (ids, together) =
            match choose(state, cache, &keys, event_id, &seats, &rows, wanted).await {
                Ok(chosen) => chosen,
                // Redis could not say, or the map is short: the database decides.
                Err(Unsettled::Fallback) => return None,
                Err(Unsettled::Failed(err)) => return Some(Err(err)),
            };
        let selection = match SeatSelection::parse(ids.clone()) {
            Ok(selection) => selection,
            Err(err) => return Some(Err(err.into())),
        };
        let claim = Claim {
            user,
            event_id,
            seats: &selection,
            hold_for,
        };
        let attempt = async {
            match tx {
                Some(tx) => {
                    let attempts = Attempts::Savepoints(tx);
                    claim::attempt(attempts, &claim, &state.contested, true).await
                }
                None => {
                    let conn = state.db.get().await?;
                    let attempts = Attempts::Statements(&conn);
                    claim::attempt(attempts, &claim, &state.contested, true).await
                }
            }
        };
        match attempt.await {
            Ok(mut booking) => {
                booking.together = Some(together);
                return Some(Ok(booking));
            }
            // Taken by a write the map missed: marked, and the others given back.
            Err(ApiError::SeatsTaken { seat_ids }) => {
                tracing::info!(
                    event = event_id,
                    ?seat_ids,
                    "mapped seats taken; picking again"
                );
                let until = SystemTime::now() + COLLIDED;
                write(cache, &keys, &seat_ids, Seats::Held { until }).await;
                let rest: Vec<i64> = ids
                    .into_iter()
                    .filter(|id| !seat_ids.contains(id))
                    .collect();
                write(cache, &keys, &rest, Seats::Free).await;
            }
            Err(err) => {
                write(cache, &keys, &ids, Seats::Free).await;
                return Some(Err(err));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of up to 9 seats, numbered on or with a gap after the third, every pattern of
    /// free seats and every count up to 4: the quick test agrees with the ranking's own (a clean
    /// block settles the choice).
    #[test]
    fn a_row_strands_none_exactly_when_the_ranking_finds_a_clean_block_in_it() {
        for (width, gap) in (1..=9_i32).flat_map(|w| [(w, 0), (w, 1)]) {
            for pattern in 0..(1_u32 << width) {
                let seats: Vec<VenueSeat> = (0..width)
                    .map(|i| VenueSeat {
                        id: i64::from(i),
                        number: i + 1 + if i >= 3 { gap } else { 0 },
                        accessible: false,
                        position: i as usize,
                    })
                    .collect();
                let free = |s: &VenueSeat| pattern & (1 << s.position) != 0;
                let row = Row {
                    seats: seats
                        .iter()
                        .map(|s| Place {
                            id: s.id,
                            number: s.number,
                            free: free(s),
                        })
                        .collect(),
                };
                for count in 1..=4 {
                    assert_eq!(
                        strands_none(&seats, count, free),
                        best::settled(std::slice::from_ref(&row), count),
                        "width {width}, gap {gap}, free {pattern:b}, count {count}"
                    );
                }
            }
        }
    }
}
