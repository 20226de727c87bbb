//! What the simulated clients do: book their own seats, read one path over and over, browse and
//! book, or hold, confirm and cancel.

use crate::fixtures::Venue;
use crate::http::{self, Body, Identity};
use crate::integrity::{lossy, BookingSeen, ClaimSeen, Told};
use crate::loadgen::Client;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;

/// A POST of `seats` of `event` to `path` (a booking or a hold).
pub fn booking(path: &str, who: &Identity, event: i64, seats: &[i64]) -> Request<Body> {
    http::post(path, who, &json!({ "event_id": event, "seat_ids": seats }))
}

/// splitmix64: deterministic per client, no lock or RNG crate needed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Books its own seats one booking after another: the seats of its own events on one venue,
/// event after event, seat after seat, never shared with another client (as in the pgbench
/// script), so no booking can collide. Every 201 is recorded for the integrity check.
pub struct Booker {
    who: Identity,
    pub user_id: String,
    events: Vec<i64>,
    first_seat: i64,
    capacity: i64,
    per_booking: i64,
    next: i64,
    event: i64,
    asked: Vec<i64>,
    /// The seats ran out inside the window (the scenario needs more events).
    pub ran_out: bool,
    pub seen: Vec<BookingSeen>,
    /// Answers that contradict the scenario (a 409 for a seat nobody else wanted, a 201 for the
    /// wrong seats): integrity violations, not mere errors.
    pub violations: Vec<String>,
}

impl Booker {
    pub fn new(user_id: String, events: Vec<i64>, venue: &Venue, per_booking: i64) -> Booker {
        Booker {
            who: Identity::user(&user_id),
            user_id,
            events,
            first_seat: venue.first_seat,
            capacity: venue.seats,
            per_booking,
            next: 0,
            event: 0,
            asked: Vec::new(),
            ran_out: false,
            seen: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The next event and seats; `None` once every event is sold out to this client.
    fn take(&mut self) -> Option<(i64, Vec<i64>)> {
        let per_event = self.capacity / self.per_booking * self.per_booking;
        let event = *self.events.get((self.next / per_event) as usize)?;
        let first = self.first_seat + self.next % per_event;
        self.next += self.per_booking;
        Some((event, (first..first + self.per_booking).collect()))
    }

    fn request(&mut self) -> Option<Request<Body>> {
        let Some((event, seats)) = self.take() else {
            self.ran_out = true;
            return None;
        };
        (self.event, self.asked) = (event, seats);
        Some(booking("/api/v1/bookings", &self.who, event, &self.asked))
    }

    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        match status {
            StatusCode::CREATED => {
                match BookingSeen::from_answer(
                    body,
                    self.event,
                    &self.user_id,
                    &self.asked,
                    "confirmed",
                ) {
                    Ok(seen) => self.seen.push(seen),
                    Err(violation) => self.violations.push(violation),
                }
                true
            }
            StatusCode::CONFLICT => {
                self.violations.push(format!(
                    "409 for seats {:?} of event {} that no other client ever asked for: {}",
                    self.asked,
                    self.event,
                    lossy(body)
                ));
                false
            }
            // 503 and friends are service errors, counted by the load generator.
            _ => false,
        }
    }
}

impl Client for Booker {
    const KINDS: &'static [&'static str] = &["book"];
    const UNIT: &'static str = "bookings/s";

    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        self.request().map(|r| (0, r))
    }

    fn check_answer(&mut self, _kind: usize, status: StatusCode, body: &Bytes) -> bool {
        self.answer(status, body)
    }
}

/// Reads one path over and over. Nothing changes what is read meanwhile, so every answer must
/// have the same status and length: the first is parsed (an availability answer with all the
/// seats), the rest only compared by length, so the load generator does not spend a core scanning
/// 30 kB of JSON per request at cached-read rates.
pub struct Reader {
    who: Identity,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    status: StatusCode,
    total_seats: usize,
    len: Option<usize>,
}

#[derive(Deserialize)]
struct AvailabilityBody {
    total_seats: usize,
}

impl Reader {
    pub fn new(user_id: &str, path: &str, total_seats: usize) -> Reader {
        Reader {
            who: Identity::user(user_id),
            path: path.to_owned(),
            headers: Vec::new(),
            status: StatusCode::OK,
            total_seats,
            len: None,
        }
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Reader {
        self.headers.push((name, value));
        self
    }

    /// Every answer `status` with a body of `len` bytes (gzip, or a 304's none), unparsed.
    pub fn expect(self, status: StatusCode, len: usize) -> Reader {
        Reader {
            status,
            len: Some(len),
            ..self
        }
    }
}

impl Client for Reader {
    const KINDS: &'static [&'static str] = &["availability"];

    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        let request = self
            .headers
            .iter()
            .fold(http::get(&self.path, &self.who), |r, (k, v)| {
                http::with(r, k.clone(), v.clone())
            });
        Some((0, request))
    }

    fn check_answer(&mut self, _kind: usize, status: StatusCode, body: &Bytes) -> bool {
        if status != self.status {
            return false;
        }
        match self.len {
            Some(len) => body.len() == len,
            None => {
                let whole = serde_json::from_slice::<AvailabilityBody>(body)
                    .is_ok_and(|a| a.total_seats == self.total_seats);
                self.len = whole.then_some(body.len());
                whole
            }
        }
    }
}

/// Mixed's booking kind.
const BOOK: usize = 3;

/// Browses and books 7:2: of every nine requests, seven are GETs (events list, one event, one
/// event's availability, in turn) and two are bookings. Clients start at different points of the
/// cycle so bookings are spread evenly over time.
pub struct Mixed {
    pub booker: Booker,
    who: Identity,
    step: usize,
    browse_events: Arc<Vec<i64>>,
    pick: u64,
}

impl Mixed {
    pub fn new(index: usize, booker: Booker, browse_events: Arc<Vec<i64>>) -> Mixed {
        Mixed {
            who: Identity::user(&format!("bench-browser-{index}")),
            booker,
            step: index,
            browse_events,
            pick: index as u64 * 0x9E37_79B9_7F4A_7C15 + 1,
        }
    }
}

impl Client for Mixed {
    const KINDS: &'static [&'static str] = &["list", "event", "availability", "book"];

    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        let slot = self.step % 9;
        self.step += 1;
        if slot >= 7 {
            return self.booker.request().map(|r| (BOOK, r));
        }
        let event = self.browse_events
            [(splitmix(&mut self.pick) % self.browse_events.len() as u64) as usize];
        let path = match slot % 3 {
            0 => "/api/v1/events".to_owned(),
            1 => format!("/api/v1/events/{event}"),
            _ => format!("/api/v1/events/{event}/availability"),
        };
        Some((slot % 3, http::get(&path, &self.who)))
    }

    fn check_answer(&mut self, kind: usize, status: StatusCode, body: &Bytes) -> bool {
        match kind {
            BOOK => self.booker.answer(status, body),
            _ => status == StatusCode::OK,
        }
    }
}

const HOLD: usize = 0;
const CONFIRM: usize = 1;
const CANCEL: usize = 2;
const PLAIN_BOOK: usize = 3;
/// A client cancels its oldest confirmed booking once it keeps more than this many, so the
/// event never sells out and the races go on for the whole window.
const MAX_KEPT: usize = 4;

/// Holds 1 or 2 random seats, confirms the hold, cancels one confirmed booking in two; one
/// request in four is instead a plain booking of random seats, racing everyone's holds. Every
/// answer is recorded for the integrity check.
pub struct Lifecycle {
    who: Identity,
    user_id: String,
    event_id: i64,
    first_seat: i64,
    seats: i64,
    rng: u64,
    step: u64,
    /// The request in flight: its kind, and the claim it acts on (confirm, cancel).
    inflight: (usize, usize),
    asked: Vec<i64>,
    confirm_next: Option<usize>,
    cancel_next: Option<usize>,
    /// Confirmed, not cancelled, oldest first.
    kept: VecDeque<usize>,
    pub claims: Vec<ClaimSeen>,
    /// Holds or bookings sent whose answer never came (they may exist).
    pub lost: usize,
    pub violations: Vec<String>,
}

impl Lifecycle {
    pub fn new(index: usize, event_id: i64, first_seat: i64, seats: i64) -> Lifecycle {
        let user_id = format!("bench-lifecycle-{index}");
        Lifecycle {
            who: Identity::user(&user_id),
            user_id,
            event_id,
            first_seat,
            seats,
            rng: index as u64 * 0x9E37_79B9_7F4A_7C15 + 7,
            step: index as u64,
            inflight: (HOLD, 0),
            asked: Vec::new(),
            confirm_next: None,
            cancel_next: None,
            kept: VecDeque::new(),
            claims: Vec::new(),
            lost: 0,
            violations: Vec::new(),
        }
    }

    /// 1 or 2 distinct random seats of the event.
    fn random_seats(&mut self) -> Vec<i64> {
        let (first, count) = (self.first_seat, self.seats);
        let a = (splitmix(&mut self.rng) % count as u64) as i64;
        if count < 2 || splitmix(&mut self.rng).is_multiple_of(2) {
            return vec![first + a];
        }
        let b = (a + 1 + (splitmix(&mut self.rng) % (count as u64 - 1)) as i64) % count;
        vec![first + a, first + b]
    }

    fn created(&mut self, body: &Bytes, booked: bool) {
        let status = if booked { "confirmed" } else { "held" };
        match BookingSeen::from_answer(body, self.event_id, &self.user_id, &self.asked, status) {
            Ok(booking) => {
                let confirmed = if booked { Told::Yes } else { Told::No };
                let cancelled = Told::No;
                self.claims.push(ClaimSeen {
                    booking,
                    booked,
                    confirmed,
                    cancelled,
                });
                let index = self.claims.len() - 1;
                if booked {
                    self.after_confirmed(index);
                } else {
                    self.confirm_next = Some(index);
                }
            }
            Err(violation) => self.violations.push(violation),
        }
    }

    /// One confirmed booking in two is cancelled at once; the others are kept.
    fn after_confirmed(&mut self, index: usize) {
        if splitmix(&mut self.rng).is_multiple_of(2) {
            self.cancel_next = Some(index);
        } else {
            self.kept.push_back(index);
        }
    }
}

#[derive(Deserialize)]
struct StatusBody {
    id: uuid::Uuid,
    status: String,
}

impl Client for Lifecycle {
    const KINDS: &'static [&'static str] = &["hold", "confirm", "cancel", "book"];

    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        // Until its answer arrives, what a confirmation or cancellation did is unsure.
        if let Some(index) = self.confirm_next.take() {
            self.claims[index].confirmed = Told::Unsure;
            self.inflight = (CONFIRM, index);
            let path = format!("/api/v1/holds/{}/confirm", self.claims[index].booking.id);
            return Some((CONFIRM, http::post(&path, &self.who, &json!({}))));
        }
        let kept = (self.kept.len() > MAX_KEPT)
            .then(|| self.kept.pop_front())
            .flatten();
        if let Some(index) = self.cancel_next.take().or(kept) {
            self.claims[index].cancelled = Told::Unsure;
            self.inflight = (CANCEL, index);
            let path = format!("/api/v1/bookings/{}", self.claims[index].booking.id);
            return Some((CANCEL, http::delete(&path, &self.who)));
        }
        self.step += 1;
        let (kind, path) = match self.step.is_multiple_of(4) {
            true => (PLAIN_BOOK, "/api/v1/bookings"),
            false => (HOLD, "/api/v1/holds"),
        };
        self.asked = self.random_seats();
        self.inflight = (kind, 0);
        // Counted lost until its answer arrives.
        self.lost += 1;
        Some((kind, booking(path, &self.who, self.event_id, &self.asked)))
    }

    fn check_answer(&mut self, kind: usize, status: StatusCode, body: &Bytes) -> bool {
        let index = self.inflight.1;
        match (kind, status) {
            (HOLD | PLAIN_BOOK, StatusCode::CREATED) => self.created(body, kind == PLAIN_BOOK),
            // A 409 must name only seats that were asked for.
            (HOLD | PLAIN_BOOK, StatusCode::CONFLICT) => {
                let named: Vec<i64> = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| serde_json::from_value(v.get("seat_ids")?.clone()).ok())
                    .unwrap_or_default();
                if named.is_empty() || named.iter().any(|s| !self.asked.contains(s)) {
                    let asked = &self.asked;
                    self.violations.push(format!(
                        "409 for seats {asked:?} names {named:?}: {}",
                        lossy(body)
                    ));
                }
            }
            (CONFIRM, StatusCode::CREATED) => {
                let hold = self.claims[index].booking.clone();
                let seats: Vec<i64> = hold.tickets.iter().map(|t| t.1).collect();
                match BookingSeen::from_answer(
                    body,
                    hold.event_id,
                    &hold.user_id,
                    &seats,
                    "confirmed",
                ) {
                    Ok(confirmed) if confirmed == hold => {
                        self.claims[index].confirmed = Told::Yes;
                        self.after_confirmed(index);
                    }
                    Ok(other) => self.violations.push(format!(
                        "confirming hold {hold:?} answered booking {other:?}"
                    )),
                    Err(violation) => self.violations.push(violation),
                }
            }
            (CONFIRM, StatusCode::GONE) => self.claims[index].confirmed = Told::No,
            (CANCEL, StatusCode::OK) => {
                let id = self.claims[index].booking.id;
                match serde_json::from_slice::<StatusBody>(body) {
                    Ok(b) if b.id == id && b.status == "cancelled" => {
                        self.claims[index].cancelled = Told::Yes;
                    }
                    _ => self.violations.push(format!(
                        "cancelling booking {id} answered 200 with {}",
                        lossy(body)
                    )),
                }
            }
            // Anything else (a 5xx, a 404) is an error; a hold or booking was not created, and
            // what a confirmation or cancellation did stays unsure.
            (HOLD | PLAIN_BOOK, _) => {
                self.lost -= 1;
                return false;
            }
            _ => return false,
        }
        if matches!(kind, HOLD | PLAIN_BOOK) {
            self.lost -= 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(first_seat: i64, seats: i64) -> Venue {
        Venue {
            id: 1,
            first_seat,
            seats,
        }
    }

    #[test]
    fn a_booker_takes_each_seat_once_and_mixed_clients_browse_seven_times_for_two_bookings() {
        let mut booker = Booker::new("u".into(), vec![9, 10], &venue(100, 10), 4);
        let taken: Vec<_> = std::iter::from_fn(|| booker.take()).collect();
        assert_eq!(taken.len(), 4);
        assert_eq!(taken[1], (9, vec![104, 105, 106, 107]));
        assert_eq!(taken[2], (10, vec![100, 101, 102, 103]));
        let booker = Booker::new("u".into(), vec![1], &venue(1, 1_000), 1);
        let mut mixed = Mixed::new(0, booker, Arc::new(vec![5, 6]));
        let kinds: Vec<usize> = (0..9).map(|_| mixed.next_request().unwrap().0).collect();
        assert_eq!(kinds.iter().filter(|k| **k == BOOK).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == 2).count(), 2);
    }

    #[test]
    fn a_lifecycle_client_holds_one_or_two_seats_and_confirms_its_hold_next() {
        let mut client = Lifecycle::new(1, 7, 41, 5);
        for _ in 0..1_000 {
            let seats = client.random_seats();
            assert!(matches!(seats.len(), 1 | 2));
            assert!(seats.iter().all(|s| (41..46).contains(s)));
            assert!(seats.len() == 1 || seats[0] != seats[1]);
        }
        let (kind, _) = client.next_request().unwrap();
        assert_eq!(kind, HOLD);
        client.asked = vec![41, 42];
        let held = br#"{"id":"6f1c2a6e-8d4b-4d7e-9b55-0e4c1f3b2a10","event_id":7,
            "user_id":"bench-lifecycle-1","status":"held",
            "tickets":[{"id":11,"seat_id":41},{"id":12,"seat_id":42}]}"#;
        assert!(client.check_answer(HOLD, StatusCode::CREATED, &Bytes::from_static(held)));
        assert_eq!((client.claims.len(), client.lost), (1, 0));
        let (kind, request) = client.next_request().unwrap();
        assert_eq!(kind, CONFIRM);
        let confirm = "/api/v1/holds/6f1c2a6e-8d4b-4d7e-9b55-0e4c1f3b2a10/confirm";
        assert_eq!(request.uri().path(), confirm);
        assert!(client.check_answer(CONFIRM, StatusCode::GONE, &Bytes::new()));
        assert_eq!(client.claims[0].confirmed, Told::No);
    }
}
