//! What the simulated clients do: book their own seats, or read one path over and over.

use crate::fixtures::Venue;
use crate::http::{self, Body, Identity};
use crate::integrity::{lossy, BookingSeen};
use crate::loadgen::Client;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// A booking of `seats` of `event`.
pub fn booking(who: &Identity, event: i64, seats: &[i64]) -> Request<Body> {
    let body = json!({ "event_id": event, "seat_ids": seats });
    http::post("/api/v1/bookings", who, &body)
}

/// Books its own seats one booking after another: the seats of its own events on one venue,
/// event after event, seat after seat, never shared with another client (as in the pgbench
/// script), so no booking can collide. Every 201 is recorded for the integrity check.
pub struct Booker {
    who: Identity,
    user_id: String,
    events: Vec<i64>,
    first_seat: i64,
    capacity: i64,
    /// Seats a booking: 1, or 2 side by side ([`Booker::in_pairs`]).
    size: i64,
    next: i64,
    event: i64,
    asked: Vec<i64>,
    pub seen: Vec<BookingSeen>,
    /// Answers that contradict the scenario (a 409 for a seat nobody else wanted, a 201 for the
    /// wrong seats): integrity violations, not mere errors.
    pub violations: Vec<String>,
}

impl Booker {
    pub fn new(user_id: String, events: Vec<i64>, venue: &Venue) -> Booker {
        Booker {
            who: Identity::user(&user_id),
            user_id,
            events,
            first_seat: venue.first_seat,
            capacity: venue.seats,
            size: 1,
            next: 0,
            event: 0,
            asked: Vec::new(),
            seen: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Books two seats side by side each time (the venue's seat count is even).
    pub fn in_pairs(mut self) -> Booker {
        self.size = 2;
        self
    }

    /// The next event and first seat; `None` once every event is sold out to this client.
    fn take(&mut self) -> Option<(i64, i64)> {
        let event = *self.events.get((self.next / self.capacity) as usize)?;
        let seat = self.first_seat + self.next % self.capacity;
        self.next += self.size;
        Some((event, seat))
    }
}

impl Client for Booker {
    const UNIT: &'static str = "bookings/s";

    fn next_request(&mut self) -> Option<Request<Body>> {
        let Some((event, seat)) = self.take() else {
            // The scenario gave it too few events: its bookings stop before the window ends.
            let user = &self.user_id;
            self.violations
                .push(format!("{user} ran out of seats inside the window"));
            return None;
        };
        (self.event, self.asked) = (event, (seat..seat + self.size).collect());
        Some(booking(&self.who, event, &self.asked))
    }

    fn check_answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        match status {
            StatusCode::CREATED => {
                let (event, user) = (self.event, &self.user_id);
                match BookingSeen::from_answer(body, event, user, &self.asked, "confirmed") {
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
    fn next_request(&mut self) -> Option<Request<Body>> {
        let request = http::get(&self.path, &self.who);
        let with = |r, (k, v): &(HeaderName, HeaderValue)| http::with(r, k.clone(), v.clone());
        Some(self.headers.iter().fold(request, with))
    }

    fn check_answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booker_takes_each_seat_once() {
        let venue = Venue {
            id: 1,
            first_seat: 100,
            seats: 3,
        };
        let mut booker = Booker::new("u".into(), vec![9, 10], &venue);
        let taken: Vec<_> = std::iter::from_fn(|| booker.take()).collect();
        assert_eq!(
            taken,
            [
                (9, 100),
                (9, 101),
                (9, 102),
                (10, 100),
                (10, 101),
                (10, 102)
            ]
        );
    }
}
