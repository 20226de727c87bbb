//! What the simulated clients do: book seats, read availability, or mix browsing and booking.

use crate::http::{self, Body, Identity};
use crate::integrity::{lossy, BookingSeen, ClaimSeen, Told};
use crate::loadgen::Client;
use bytes::Bytes;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use std::collections::VecDeque;
use std::sync::Arc;

/// One client's own supply of free seats: the seats of its own events (all on one venue whose
/// seats are `first_seat..first_seat + capacity`), event after event, seat after seat, never
/// shared with another client; so no booking can ever collide, exactly as in the pgbench script.
#[derive(Debug, Clone)]
pub struct SeatStream {
    events: Vec<i64>,
    first_seat: i64,
    capacity: i64,
    per_booking: i64,
    next: i64,
}

impl SeatStream {
    pub fn new(events: Vec<i64>, first_seat: i64, capacity: i64, per_booking: i64) -> SeatStream {
        SeatStream {
            events,
            first_seat,
            capacity,
            per_booking,
            next: 0,
        }
    }

    /// The next event and seats to book; `None` once every event is sold out to this client.
    fn take(&mut self) -> Option<(i64, Vec<i64>)> {
        let per_event = self.capacity / self.per_booking * self.per_booking;
        let (event, offset) = (self.next / per_event, self.next % per_event);
        let event = *self.events.get(event as usize)?;
        self.next += self.per_booking;
        let first = self.first_seat + offset;
        Some((event, (first..first + self.per_booking).collect()))
    }
}

/// Books its own seats one booking after another; every 201 is recorded for the integrity check.
pub struct Booker {
    who: Identity,
    pub user_id: String,
    stream: SeatStream,
    event: i64,
    asked: Vec<i64>,
    /// Set when the stream ran dry inside the window (the scenario needs more events).
    pub ran_out: bool,
    pub seen: Vec<BookingSeen>,
    /// Answers that contradict the scenario (a 409 for a seat nobody else wanted, a 201 for the
    /// wrong seats): integrity violations, not mere errors.
    pub violations: Vec<String>,
}

impl Booker {
    pub fn new(user_id: String, stream: SeatStream) -> Booker {
        Booker {
            who: Identity::user(&user_id),
            user_id,
            stream,
            event: 0,
            asked: Vec::new(),
            ran_out: false,
            seen: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn request(&mut self) -> Option<Request<Body>> {
        let Some((event, seats)) = self.stream.take() else {
            self.ran_out = true;
            return None;
        };
        (self.event, self.asked) = (event, seats);
        let body = serde_json::to_vec(&serde_json::json!({
            "event_id": event,
            "seat_ids": self.asked,
        }))
        .expect("a booking request serialises");
        Some(http::post_json("/api/v1/bookings", &self.who, body))
    }

    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        match status {
            StatusCode::CREATED => {
                match BookingSeen::from_created(body, self.event, &self.user_id, &self.asked) {
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
    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        self.request().map(|r| (0, r))
    }

    fn check_answer(&mut self, _kind: usize, status: StatusCode, body: &Bytes) -> bool {
        self.answer(status, body)
    }
}

/// Reads one event's availability over and over.
pub struct Reader {
    who: Identity,
    path: String,
    total_seats: usize,
    /// The length of the first full answer: nothing is booked in the read event while it is
    /// read, so every later answer must be exactly as long.
    answer_len: Option<usize>,
}

#[derive(Deserialize)]
struct AvailabilityBody {
    total_seats: usize,
}

impl Reader {
    pub fn new(user_id: &str, path: String, total_seats: usize) -> Reader {
        Reader {
            who: Identity::user(user_id),
            path,
            total_seats,
            answer_len: None,
        }
    }
}

impl Client for Reader {
    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        Some((0, http::get(&self.path, &self.who)))
    }

    fn check_answer(&mut self, _kind: usize, status: StatusCode, body: &Bytes) -> bool {
        if status != StatusCode::OK {
            return false;
        }
        // The first answer is parsed; the rest are compared by length, so the load generator
        // does not spend a core scanning 30 kB of JSON per request at cached-read rates.
        match self.answer_len {
            Some(len) => body.len() == len,
            None => {
                let whole = serde_json::from_slice::<AvailabilityBody>(body)
                    .is_ok_and(|a| a.total_seats == self.total_seats);
                if whole {
                    self.answer_len = Some(body.len());
                }
                whole
            }
        }
    }
}

/// The kinds of request in the mixed scenario, in report order.
pub const MIXED_KINDS: [&str; 4] = ["list", "event", "availability", "book"];
const BOOK: usize = 3;

/// Browses and books 7:2: of every nine requests, seven are GETs (events list, one event, one
/// event's availability, in turn) and two are bookings. Clients start at different points of the
/// cycle so bookings are spread evenly over time.
pub struct Mixed {
    booker: Booker,
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

    pub fn into_booker(self) -> Booker {
        self.booker
    }

    /// A pseudo-random browse event (splitmix64): deterministic, and no lock or RNG crate needed.
    fn some_event(&mut self) -> i64 {
        self.pick = self.pick.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.pick;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        self.browse_events[(z % self.browse_events.len() as u64) as usize]
    }
}

impl Client for Mixed {
    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        let slot = self.step % 9;
        self.step += 1;
        if slot >= 7 {
            return self.booker.request().map(|r| (BOOK, r));
        }
        let kind = slot % 3;
        let path = match kind {
            0 => "/api/v1/events".to_owned(),
            1 => format!("/api/v1/events/{}", self.some_event()),
            _ => format!("/api/v1/events/{}/availability", self.some_event()),
        };
        Some((kind, http::get(&path, &self.who)))
    }

    fn check_answer(&mut self, kind: usize, status: StatusCode, body: &Bytes) -> bool {
        if kind == BOOK {
            self.booker.answer(status, body)
        } else {
            status == StatusCode::OK
        }
    }
}

/// The kinds of request in the lifecycle scenario, in report order.
pub const LIFECYCLE_KINDS: [&str; 4] = ["hold", "confirm", "cancel", "book"];
const HOLD: usize = 0;
const CONFIRM: usize = 1;
const CANCEL: usize = 2;
const PLAIN_BOOK: usize = 3;
/// A client cancels its oldest confirmed booking once it keeps more than this many, so the
/// event never sells out and the races go on for the whole window.
const MAX_KEPT: usize = 4;

/// splitmix64: deterministic per client, no lock or RNG crate needed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 1 or 2 distinct random seats of `first..first + count`.
fn random_seats(state: &mut u64, first: i64, count: i64) -> Vec<i64> {
    let a = (splitmix(state) % count as u64) as i64;
    if count < 2 || splitmix(state).is_multiple_of(2) {
        return vec![first + a];
    }
    let b = (a + 1 + (splitmix(state) % (count as u64 - 1)) as i64) % count;
    vec![first + a, first + b]
}

/// Holds random seats, confirms the hold, cancels one confirmed booking in two; one request in
/// four is instead a plain booking of random seats, racing everyone's holds. Every answer is
/// recorded for the integrity check.
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

    fn created(&mut self, body: &Bytes, status: &str, booked: bool) {
        match BookingSeen::from_answer(body, self.event_id, &self.user_id, &self.asked, status) {
            Ok(booking) => {
                let confirmed = if booked { Told::Yes } else { Told::No };
                self.claims.push(ClaimSeen {
                    booking,
                    booked,
                    confirmed,
                    cancelled: Told::No,
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

    /// A 409 must name only seats that were asked for.
    fn conflict(&mut self, body: &Bytes) {
        let named: Vec<i64> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("seat_ids")?.clone()).ok())
            .unwrap_or_default();
        if named.is_empty() || named.iter().any(|s| !self.asked.contains(s)) {
            self.violations.push(format!(
                "409 for seats {:?} names {named:?}: {}",
                self.asked,
                lossy(body)
            ));
        }
    }
}

#[derive(Deserialize)]
struct StatusBody {
    id: uuid::Uuid,
    status: String,
}

impl Client for Lifecycle {
    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        // Until its answer arrives, what a confirmation or cancellation did is unsure.
        if let Some(index) = self.confirm_next.take() {
            self.claims[index].confirmed = Told::Unsure;
            self.inflight = (CONFIRM, index);
            let path = format!("/api/v1/holds/{}/confirm", self.claims[index].booking.id);
            return Some((CONFIRM, http::post_json(&path, &self.who, b"{}".to_vec())));
        }
        let cancel = self.cancel_next.take().or_else(|| {
            (self.kept.len() > MAX_KEPT)
                .then(|| self.kept.pop_front())
                .flatten()
        });
        if let Some(index) = cancel {
            self.claims[index].cancelled = Told::Unsure;
            self.inflight = (CANCEL, index);
            let path = format!("/api/v1/bookings/{}", self.claims[index].booking.id);
            return Some((CANCEL, http::delete(&path, &self.who)));
        }
        self.step += 1;
        let kind = if self.step.is_multiple_of(4) {
            PLAIN_BOOK
        } else {
            HOLD
        };
        self.asked = random_seats(&mut self.rng, self.first_seat, self.seats);
        self.inflight = (kind, 0);
        // Counted lost until its answer arrives.
        self.lost += 1;
        let body = serde_json::to_vec(&serde_json::json!({
            "event_id": self.event_id,
            "seat_ids": self.asked,
        }))
        .expect("a booking request serialises");
        let path = if kind == HOLD {
            "/api/v1/holds"
        } else {
            "/api/v1/bookings"
        };
        Some((kind, http::post_json(path, &self.who, body)))
    }

    fn check_answer(&mut self, kind: usize, status: StatusCode, body: &Bytes) -> bool {
        let index = self.inflight.1;
        match (kind, status) {
            (HOLD | PLAIN_BOOK, _) => {
                self.lost -= 1;
                match status {
                    StatusCode::CREATED if kind == HOLD => self.created(body, "held", false),
                    StatusCode::CREATED => self.created(body, "confirmed", true),
                    StatusCode::CONFLICT => self.conflict(body),
                    // Unexpected: the request failed, so nothing was created.
                    _ => return false,
                }
                true
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
                true
            }
            (CONFIRM, StatusCode::GONE) => {
                self.claims[index].confirmed = Told::No;
                true
            }
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
                true
            }
            // Anything else (a 5xx, a 404) is an error; the outcome stays unsure.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_stream_hands_out_each_seat_once_and_stops_at_the_end() {
        let mut stream = SeatStream::new(vec![9, 10], 100, 10, 4);
        assert_eq!(stream.take(), Some((9, vec![100, 101, 102, 103])));
        assert_eq!(stream.take(), Some((9, vec![104, 105, 106, 107])));
        assert_eq!(stream.take(), Some((10, vec![100, 101, 102, 103])));
        assert_eq!(stream.take(), Some((10, vec![104, 105, 106, 107])));
        assert_eq!(stream.take(), None);
    }

    #[test]
    fn mixed_clients_browse_seven_times_for_every_two_bookings() {
        let booker = Booker::new("u".into(), SeatStream::new(vec![1], 1, 1_000, 1));
        let mut mixed = Mixed::new(0, booker, Arc::new(vec![5, 6]));
        let kinds: Vec<usize> = (0..9).map(|_| mixed.next_request().unwrap().0).collect();
        assert_eq!(kinds.iter().filter(|k| **k == BOOK).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == 2).count(), 2);
    }

    #[test]
    fn random_seats_are_one_or_two_distinct_seats_of_the_event() {
        let mut rng = 3;
        for _ in 0..1_000 {
            let seats = random_seats(&mut rng, 100, 5);
            assert!(matches!(seats.len(), 1 | 2));
            assert!(seats.iter().all(|s| (100..105).contains(s)));
            assert!(seats.len() == 1 || seats[0] != seats[1]);
        }
    }

    #[test]
    fn a_lifecycle_client_confirms_its_hold_next() {
        let mut client = Lifecycle::new(1, 7, 41, 2);
        let (kind, _) = client.next_request().unwrap();
        assert_eq!(kind, HOLD);
        client.asked = vec![41, 42];
        let held = br#"{"id":"6f1c2a6e-8d4b-4d7e-9b55-0e4c1f3b2a10","event_id":7,
            "user_id":"bench-lifecycle-1","status":"held",
            "tickets":[{"id":11,"seat_id":41},{"id":12,"seat_id":42}]}"#;
        assert!(client.check_answer(HOLD, StatusCode::CREATED, &Bytes::from_static(held)));
        assert_eq!(client.claims.len(), 1);
        assert_eq!(client.lost, 0);
        let (kind, request) = client.next_request().unwrap();
        assert_eq!(kind, CONFIRM);
        assert_eq!(
            request.uri().path(),
            "/api/v1/holds/6f1c2a6e-8d4b-4d7e-9b55-0e4c1f3b2a10/confirm"
        );
        assert!(client.check_answer(CONFIRM, StatusCode::GONE, &Bytes::new()));
        assert_eq!(client.claims[0].confirmed, Told::No);
    }
}
