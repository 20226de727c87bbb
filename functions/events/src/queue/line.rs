//! An event's queue in Redis: every step one Lua script, so each is atomic and one round trip.
//!
//! Keys, all in the event's Redis Cluster slot (`{e<id>}`):
//! - `queue:entries` (hash): user → `<entry id>|<position>|<admitted until, ms>`; position 0
//!   until the sale opens, admitted-until 0 while waiting.
//! - `queue:early` (sorted set): who joined before the sale opened, scored by a random number
//!   drawn at the join; the order of the scores is the random order of the fair start.
//! - `queue:line` (sorted set): who waits, scored by position.
//! - `queue:admitted` (sorted set): who is admitted and has not bought yet, scored by when the
//!   admission ends (the booking function takes a buyer out once a claim with the token is made).
//! - `queue:state` (hash): `seq` (the last position given), `opened`, `free` (the free seats the
//!   last advance saw), `tat` (when the next admission is due, ms, as in GCRA).
//! - `queue:tick`: held for [`ADVANCE_EVERY`] by whoever advances the queue: one process per
//!   event advances it at a time, at most that often.
//!
//! Times are Redis's clock (`TIME`), so every environment agrees on one timeline.

use seatbook_cache::{redis, Cache, Unavailable};
use seatbook_core::cached::queue_key;
use std::sync::LazyLock;
use std::time::Duration;

/// How often the queue is advanced at most (admissions, expiries, the free-seat count).
pub(crate) const ADVANCE_EVERY: Duration = Duration::from_millis(500);

/// Looks at (and with `ARGV[2]` = 1, joins) a user's entry, opening the sale first when it is
/// due. KEYS: entries, early, line, admitted, state, tick. ARGV: user, join (1/0), a new entry's
/// id, its random score, when the sale opens (ms; 0: open), the tick's length (ms).
///
/// Returns `{entry id, position, admitted until, ahead (-1: not waiting in line), free seats (-1:
/// not counted yet), now, due (1: the caller should advance the queue)}`, or nil for no entry.
const LOOK: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local opened = now >= tonumber(ARGV[5])
if opened and redis.call('HGET', KEYS[5], 'opened') ~= '1' then
  -- The fair start: everyone who came early, in the random order of their scores.
  local seq = tonumber(redis.call('HGET', KEYS[5], 'seq') or '0')
  for _, who in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local id = string.match(redis.call('HGET', KEYS[1], who), '^([^|]*)')
    seq = seq + 1
    redis.call('ZADD', KEYS[3], seq, who)
    redis.call('HSET', KEYS[1], who, id .. '|' .. seq .. '|0')
  end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[5], 'seq', seq, 'opened', '1')
end
local user = ARGV[1]
local entry = redis.call('HGET', KEYS[1], user)
local id, position, admitted
if entry then
  id, position, admitted = string.match(entry, '^([^|]*)|(%d+)|(%d+)$')
  position = tonumber(position)
  admitted = tonumber(admitted)
end
if ARGV[2] == '1' and (not entry or (admitted > 0 and admitted <= now)) then
  -- New, or back after an admission that lapsed: at the back.
  id = ARGV[3]
  admitted = 0
  if opened then
    position = redis.call('HINCRBY', KEYS[5], 'seq', 1)
    redis.call('ZADD', KEYS[3], position, user)
  else
    position = 0
    redis.call('ZADD', KEYS[2], ARGV[4], user)
  end
  redis.call('HSET', KEYS[1], user, id .. '|' .. position .. '|0')
elseif not entry then
  return false
end
local ahead = -1
if position > 0 and admitted == 0 then
  ahead = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. position)
end
local free = tonumber(redis.call('HGET', KEYS[5], 'free') or '-1')
local due = 0
if opened and redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[6]) then
  due = 1
end
return {id, position, admitted, ahead, free, now, due}
";

/// Admits who is next, as many as the rate, the inventory and the line allow. KEYS: entries,
/// line, admitted, state. ARGV: free seats, admissions a minute, an admission's length (ms),
/// admitted people per free seat. Returns how many were admitted.
///
/// The rate is GCRA's: `tat` moves on by one interval per admission and is never let fall more
/// than two seconds' worth behind now, so a pause (nobody polling, no seat free) earns no burst.
const ADVANCE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local free = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('HSET', KEYS[4], 'free', free)
local room = tonumber(ARGV[4]) * free - redis.call('ZCARD', KEYS[3])
local interval = 60000 / rate
local slack = math.max(1, rate / 30) * interval
local tat = tonumber(redis.call('HGET', KEYS[4], 'tat') or '0')
if tat < now - slack then tat = now - slack end
local n = math.min(math.floor((now - tat) / interval), room, redis.call('ZCARD', KEYS[2]))
if n <= 0 then
  redis.call('HSET', KEYS[4], 'tat', string.format('%.3f', tat))
  return 0
end
local until_ms = now + tonumber(ARGV[3])
local popped = redis.call('ZPOPMIN', KEYS[2], n)
for i = 1, #popped, 2 do
  local who = popped[i]
  local id = string.match(redis.call('HGET', KEYS[1], who) or '', '^([^|]*)')
  redis.call('HSET', KEYS[1], who, id .. '|' .. popped[i + 1] .. '|' .. until_ms)
  redis.call('ZADD', KEYS[3], until_ms, who)
end
redis.call('HSET', KEYS[4], 'tat', string.format('%.3f', tat + n * interval))
return n
";

static LOOK_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LOOK));
static ADVANCE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ADVANCE));

/// One user's entry as [`LOOK`] found it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub(crate) entry_id: String,
    /// 0: the sale has not opened yet.
    pub(crate) position: i64,
    /// When the admission ends (ms since the epoch); 0: not admitted.
    pub(crate) admitted_until_ms: i64,
    /// Waiting people ahead in line; -1 when not waiting in line.
    pub(crate) ahead: i64,
    /// The free seats at the last advance; -1 before the first.
    pub(crate) free: i64,
    /// Redis's clock, ms since the epoch.
    pub(crate) now_ms: i64,
    /// Whether the caller won the right to advance the queue now.
    pub(crate) due: bool,
}

pub(crate) struct Line<'a> {
    cache: &'a Cache,
    event_id: i64,
}

impl<'a> Line<'a> {
    pub(crate) fn new(cache: &'a Cache, event_id: i64) -> Self {
        Line { cache, event_id }
    }

    fn key(&self, name: &str) -> String {
        queue_key(self.cache.keys(), self.event_id, name)
    }

    /// `user`'s entry, joining first when `join` names a new entry's id; `opens_ms` is when the
    /// sale opens (0: it is open).
    pub(crate) async fn look(
        &self,
        user: &str,
        join: Option<&str>,
        opens_ms: i64,
    ) -> Result<Option<Seen>, Unavailable> {
        let mut invocation = LOOK_SCRIPT.prepare_invoke();
        for name in ["entries", "early", "line", "admitted", "state", "tick"] {
            invocation.key(self.key(name));
        }
        invocation
            .arg(user)
            .arg(if join.is_some() { 1 } else { 0 })
            .arg(join.unwrap_or(""))
            .arg(random_score())
            .arg(opens_ms)
            .arg(ADVANCE_EVERY.as_millis() as u64);
        let reply: Option<(String, i64, i64, i64, i64, i64, i64)> =
            self.cache.invoke(&invocation).await?;
        Ok(reply.map(
            |(entry_id, position, admitted_until_ms, ahead, free, now_ms, due)| Seen {
                entry_id,
                position,
                admitted_until_ms,
                ahead,
                free,
                now_ms,
                due: due == 1,
            },
        ))
    }

    /// Admits whoever is due; returns how many were admitted.
    pub(crate) async fn advance(
        &self,
        free_seats: i64,
        admit_per_minute: i32,
        admission: Duration,
        per_free_seat: i32,
    ) -> Result<i64, Unavailable> {
        let mut invocation = ADVANCE_SCRIPT.prepare_invoke();
        for name in ["entries", "line", "admitted", "state"] {
            invocation.key(self.key(name));
        }
        invocation
            .arg(free_seats)
            .arg(admit_per_minute)
            .arg(admission.as_millis() as u64)
            .arg(per_free_seat);
        self.cache.invoke(&invocation).await
    }
}

/// A random number in [0, 1): the fair start's order. (A v4 UUID's version bits are the same in
/// every draw, so they never decide between two scores: the order is uniformly random.)
fn random_score() -> f64 {
    let bits = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
