//! What a claim tells the cache: the event's generation bump after a write (so the writer's next
//! read is fresh), and the taken-seat marks, a hint every environment reads in one round trip.
//!
//! A claim reads the marks before it asks PostgreSQL, so the losers of an on-sale herd are
//! answered without a database transaction each. A mark is only ever a hint: a missing one lets a
//! request through to the unique constraint on tickets, and one that outlives what it says (an
//! unmark that failed) refuses for at most its own lifetime. One Redis hash per event, `seat →
//! expiry in ms since the epoch`, in the event's cluster slot; the hash lives [`SET_TTL`] past its
//! last write, so an idle event's marks do not linger.

use crate::seatmap::{self, Seats};
use seatbook_cache::redis::Pipeline;
use seatbook_cache::Cache;
use seatbook_core::cached::{self, EventKeys, BOOKINGS_CONFIRMED, BOOKING_CONFLICTS};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an event's marks live after their last change.
const SET_TTL: Duration = Duration::from_secs(3600);

/// A change to an event's marks, made in the same round trip as the write's bump.
#[derive(Debug, Clone, Copy)]
pub enum MarkChange<'a> {
    /// Mark `ids` taken until `until`; `booked`: by a confirmed booking (a hold's or a conflict's
    /// mark lapses).
    Set {
        ids: &'a [i64],
        until: SystemTime,
        booked: bool,
    },
    /// Take the marks off `ids` (they are free again).
    Clear { ids: &'a [i64] },
}

impl MarkChange<'_> {
    /// Adds the change's commands, replies ignored, to `pipe`: the marks, and the event's seat
    /// map ([`crate::seatmap`]) when `map` says so.
    fn add_to(&self, cache: &Cache, event_id: i64, map: bool, pipe: &mut Pipeline) {
        let set = &taken_seats(cache, event_id);
        if map {
            let (ids, seats) = match *self {
                MarkChange::Set {
                    ids, booked: true, ..
                } => (ids, Seats::Booked),
                MarkChange::Set { ids, until, .. } => (ids, Seats::Held { until }),
                MarkChange::Clear { ids } => (ids, Seats::Free),
            };
            seatmap::write_into(cache, event_id, ids, seats, pipe);
        }
        match *self {
            MarkChange::Set { ids, until, .. } if !ids.is_empty() => {
                let until_ms = until
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let hset = pipe.cmd("HSET").arg(set);
                for id in ids {
                    hset.arg(*id).arg(until_ms);
                }
                hset.ignore();
                pipe.cmd("PEXPIRE")
                    .arg(set)
                    .arg(SET_TTL.as_millis() as u64)
                    .ignore();
            }
            MarkChange::Clear { ids } if !ids.is_empty() => {
                pipe.cmd("HDEL").arg(set).arg(ids).ignore();
            }
            MarkChange::Set { .. } | MarkChange::Clear { .. } => {}
        }
    }
}

/// The marks on an event's seats: those known to be taken.
fn taken_seats(cache: &Cache, event_id: i64) -> String {
    cache.keys().key(&cached::slot(event_id), "taken")
}

/// Seats of `event_id` changed hands: its cached reads are stale from now on, and `marks` changes
/// its taken seats in the same round trip; a confirmed booking is counted too. Awaited before the
/// response is sent. Returns the event's version after it (`None` when Redis could not be told),
/// for the response's `Seatbook-Event-Version`.
pub async fn event_changed(
    cache: &Cache,
    event_id: i64,
    confirmed: bool,
    marks: MarkChange<'_>,
) -> Option<u64> {
    let counter = cache.keys().counter(BOOKINGS_CONFIRMED);
    cache
        .bump(&cache.keys().event_generation(event_id), |pipe| {
            if confirmed {
                pipe.cmd("INCR").arg(counter).ignore();
            }
            marks.add_to(cache, event_id, true, pipe);
        })
        .await
}

/// A claim lost its race (409): counted in the process, carried to Redis by its next command.
pub fn conflicted(cache: &Cache) {
    cache.tally(BOOKING_CONFLICTS);
}

/// Which of `ids` carry a mark on `event_id` that has not expired, in the order given, and the
/// event's count of freed seats (for [`mark_conflict`]); `None` when Redis cannot say (the caller
/// goes on as if nothing were marked).
pub async fn marked(cache: &Cache, event_id: i64, ids: &[i64]) -> Option<(Vec<i64>, String)> {
    if ids.is_empty() {
        return Some((Vec::new(), String::new()));
    }
    let set = taken_seats(cache, event_id);
    let (marks, freed): (Vec<Option<u64>>, Option<String>) = cache
        .query(|pipe| {
            pipe.cmd("HMGET").arg(&set).arg(ids);
            pipe.cmd("GET").arg(seatmap::freed_key(cache, event_id));
        })
        .await
        .ok()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let taken = ids
        .iter()
        .zip(marks)
        .filter(|(_, until)| until.is_some_and(|until| until > now))
        .map(|(id, _)| *id)
        .collect();
    Some((taken, freed.unwrap_or_default()))
}

/// Marks `ids` (KEYS[1]) taken until ARGV[2] (ms) and keeps the hash ARGV[3] ms, unless the
/// event's freed count (KEYS[2]) is no longer ARGV[1].
const CONFLICT: &str = r"
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
for i = 4, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// A loser's hint that `ids` are taken, until `until`, quietly (a hint that is lost costs nothing
/// but a database round trip later); not to the seat map, which the winner's write tells (a
/// herd's thousands of losers would each run its script).
///
/// Only while no seat of the event has been freed since the marks were read (`freed`, as
/// [`marked`] saw it before the claim): the holder may have cancelled after the conflict and
/// cleared its marks before this write arrives, and the mark would then refuse a free seat for its
/// whole life. Any cancellation of the event meanwhile skips the mark; the next request then asks
/// PostgreSQL, which decides either way.
pub async fn mark_conflict(
    cache: &Cache,
    event_id: i64,
    ids: &[i64],
    until: SystemTime,
    freed: &str,
) {
    let until_ms = until
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let _ = cache
        .query::<()>(|pipe| {
            pipe.cmd("EVAL")
                .arg(CONFLICT)
                .arg(2)
                .arg(taken_seats(cache, event_id))
                .arg(seatmap::freed_key(cache, event_id))
                .arg(freed)
                .arg(until_ms)
                .arg(SET_TTL.as_millis() as u64)
                .arg(ids)
                .ignore();
        })
        .await;
}
