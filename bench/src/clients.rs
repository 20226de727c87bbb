//! What the simulated clients do: book seats, read availability, or mix browsing and booking.

use crate::http::{self, Body, Identity};
use crate::integrity::{lossy, BookingSeen};
use crate::loadgen::Client;
use bytes::Bytes;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

/// One client's own supply of free seats: the seats of one event (`event_id` on a venue whose
/// seats are `first_seat..first_seat + capacity`), taken in order, never shared with another
/// client. So no booking can ever collide, exactly like the pgbench ceiling script.
#[derive(Debug, Clone)]
pub struct SeatStream {
    pub event_id: i64,
    first_seat: i64,
    capacity: i64,
    per_booking: i64,
    next: i64,
}

impl SeatStream {
    pub fn new(event_id: i64, first_seat: i64, capacity: i64, per_booking: i64) -> SeatStream {
        SeatStream {
            event_id,
            first_seat,
            capacity,
            per_booking,
            next: 0,
        }
    }

    /// The next seats to book; `None` once the event is sold out to this client.
    fn take(&mut self) -> Option<Vec<i64>> {
        if self.next + self.per_booking > self.capacity {
            return None;
        }
        let seats = (self.next..self.next + self.per_booking)
            .map(|n| self.first_seat + n)
            .collect();
        self.next += self.per_booking;
        Some(seats)
    }
}

/// Books its own seats one booking after another; every 201 is recorded for the integrity check.
pub struct Booker {
    who: Identity,
    user_id: String,
    stream: SeatStream,
    asked: Vec<i64>,
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
            asked: Vec::new(),
            seen: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn request(&mut self) -> Option<Request<Body>> {
        self.asked = self.stream.take()?;
        let body = serde_json::to_vec(&serde_json::json!({
            "event_id": self.stream.event_id,
            "seat_ids": self.asked,
        }))
        .expect("a booking request serialises");
        Some(http::post_json("/api/v1/bookings", &self.who, body))
    }

    fn answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        match status {
            StatusCode::CREATED => {
                match BookingSeen::from_created(
                    body,
                    self.stream.event_id,
                    &self.user_id,
                    &self.asked,
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
                    self.stream.event_id,
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
    pub fn new(user_id: &str, event_id: i64, total_seats: usize) -> Reader {
        Reader {
            who: Identity::user(user_id),
            path: format!("/api/v1/events/{event_id}/availability"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_stream_hands_out_each_seat_once_and_stops_at_the_end() {
        let mut stream = SeatStream::new(9, 100, 10, 4);
        assert_eq!(stream.take(), Some(vec![100, 101, 102, 103]));
        assert_eq!(stream.take(), Some(vec![104, 105, 106, 107]));
        assert_eq!(stream.take(), None);
    }

    #[test]
    fn mixed_clients_browse_seven_times_for_every_two_bookings() {
        let booker = Booker::new("u".into(), SeatStream::new(1, 1, 1_000, 1));
        let mut mixed = Mixed::new(0, booker, Arc::new(vec![5, 6]));
        let kinds: Vec<usize> = (0..9).map(|_| mixed.next_request().unwrap().0).collect();
        assert_eq!(kinds.iter().filter(|k| **k == BOOK).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == 2).count(), 2);
    }
}
