//! `best-available`: bookings of `best_available: {count: 2}` (docs/decisions.md, 25). A herd of
//! 500 users at once on a fresh 400-seat event: exactly 200 × 201 covering every seat once and
//! 300 × 409 `not-enough-seats`, nothing else. Then 32 clients booking pairs round 8 arena events
//! for the window, against the same work with the seats named (32 clients booking pairs side by
//! side on an arena event of their own, through the same server; goal ≥ 0.8×), and beside the
//! `book @40k` rate (one seat a booking, no Redis). Both go to the server with Redis, as deployed:
//! picks are made from the seat map (decision 31).

use super::{tally, Bench, CLIENTS};
use crate::clients::Booker;
use crate::fixtures::Admin;
use crate::http::{self, Body, Identity};
use crate::integrity::{lossy, BookingSeen};
use crate::loadgen::{self, Client};
use crate::report::Goal;
use crate::Result;
use bytes::Bytes;
use hyper::{Request, StatusCode};
use serde_json::json;

const HERD: usize = 500;
/// Arena events the on-sale goes round: 4 clients an event, 20,000 pairs each.
const EVENTS: usize = 8;

fn best(user: &str, event: i64) -> Request<Body> {
    let body = json!({ "event_id": event, "best_available": { "count": 2 } });
    http::post("/api/v1/bookings", &Identity::user(user), &body)
}

/// A 201 as a confirmed booking of 2 seats of `event` for `user`, whichever seats they are.
fn pair(body: &[u8], event: i64, user: &str) -> Result<BookingSeen, String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let seats = v["tickets"].as_array().into_iter().flatten();
    let seats: Vec<i64> = seats.filter_map(|t| t["seat_id"].as_i64()).collect();
    match seats.len() {
        2 => BookingSeen::from_answer(body, event, user, &seats, "confirmed"),
        _ => Err(format!(
            "a best-available 201 without 2 seats: {}",
            lossy(body)
        )),
    }
}

/// (user, events, requests so far, bookings seen, violations): books pairs round the events,
/// from its own; a 409 is a violation (no event runs short inside a window).
struct Picker(String, Vec<i64>, usize, Vec<BookingSeen>, Vec<String>);

impl Client for Picker {
    const UNIT: &'static str = "bookings/s";

    fn next_request(&mut self) -> Option<Request<Body>> {
        self.2 += 1;
        Some(best(&self.0, self.1[self.2 % EVENTS]))
    }

    fn check_answer(&mut self, status: StatusCode, body: &Bytes) -> bool {
        let event = self.1[self.2 % EVENTS];
        let seen = match status {
            StatusCode::CREATED => pair(body, event, &self.0),
            StatusCode::CONFLICT => Err(format!("409 on event {event}: {}", lossy(body))),
            _ => return false,
        };
        seen.map(|b| self.3.push(b))
            .map_err(|v| self.4.push(v))
            .is_ok()
    }
}

impl Bench {
    pub async fn best_available(&mut self) -> Result<()> {
        let (mut admin, big) = (
            Admin::open(self.main.addr).await?,
            self.fixtures.big.clone(),
        );
        let hall = admin.venue("best herd", 20, 20).await?;
        let event = admin.event("best herd", hall.id).await?;
        let mut events = Vec::new();
        for k in 0..EVENTS {
            events.push(admin.event(&format!("best {k}"), big.id).await?);
        }
        let named_block = admin.block("best pairs", &big, 1).await?;
        let book = self
            .results
            .venues
            .iter()
            .find(|v| v.venue_seats == big.seats);
        let book = book.map(|v| v.service);
        // With Redis, as deployed: picks are made from the seat map (decision 31).
        let to = self.cached_server().await?;
        self.analyze().await?;
        self.settle().await;
        let seats = hall.seats;
        eprintln!("[best-available] herd of {HERD} x count 2 on {seats} seats ...");
        let users: Vec<String> = (0..HERD).map(|i| format!("best-herd-{i}")).collect();
        let requests = users.iter().map(|u| best(u, event)).collect();
        let run = loadgen::herd(to.addr, requests).await?;
        let short = |body: &[u8]| lossy(body).contains("/not-enough-seats");
        let (h, winners, mut violations) = tally(&run, &users, |b, u| pair(b, event, u), short);
        let sold = winners.iter().flat_map(|b| &b.tickets);
        let mut sold: Vec<i64> = sold.map(|t| t.1).collect();
        sold.sort_unstable();
        // A venue's seat ids are consecutive (fixtures): every seat, each once.
        let (first, pairs) = (hall.first_seat, seats as usize / 2);
        let once = sold.into_iter().eq(first..first + seats);
        let ok = once && h.created == pairs && h.conflicts == HERD - pairs && h.unanswered == 0;
        let ok = ok && h.other.is_empty();
        let actual = format!(
            "{} x 201 (every seat once: {once}), {} x 409, other {:?}, {} unanswered, p99 {:.0} ms",
            h.created, h.conflicts, h.other, h.unanswered, h.latency.p99_ms
        );
        if !ok {
            violations.push(format!("best-available herd: {actual}"));
        }
        let goal = format!("best-available herd {HERD} on {seats} seats, exactly once");
        self.results.goals.push(Goal::judged(&goal, actual, ok));
        let all = h.all_answered_ms;
        self.results
            .figure("best-available herd: all answered", all, "ms");
        self.check("best-available herd", &[event], &winners, &violations)
            .await?;

        // The same work with the seats named: pairs side by side, through the same server.
        eprintln!("[best-available] {CLIENTS} clients booking named pairs ...");
        let booker = |c| {
            Booker::new(
                format!("bench-pairs-{c}"),
                named_block.client_events(c),
                &big,
            )
            .in_pairs()
        };
        let clients = (0..CLIENTS).map(booker).collect();
        let name = "book pairs @40k";
        let (clients, row) = self.measure(name, &to, clients).await?;
        let named = row.rate;
        self.results.throughput.push(row);
        self.check_bookers(name, &named_block.events(), clients)
            .await?;

        eprintln!("[best-available] {CLIENTS} clients round {EVENTS} arena events ...");
        let picker = |c| Picker(format!("bench-best-{c}"), events.clone(), c, vec![], vec![]);
        let clients = (0..CLIENTS).map(picker).collect();
        let name = "best-available @40k";
        let (clients, row) = self.measure(name, &to, clients).await?;
        let row = row.against("book pairs @40k (named)", named);
        let goal = "best-available >= 0.8 x book (named pairs)";
        self.results
            .goals
            .push(Goal::ratio(goal, Some((row.rate, named)), 0.8));
        if let Some(single) = book {
            let figure = "best-available / book @40k (one named seat, no Redis)";
            self.results.figure(figure, row.rate / single, "x");
        }
        self.results.throughput.push(row);
        let (seen, violations): (Vec<_>, Vec<_>) = clients.into_iter().map(|p| (p.3, p.4)).unzip();
        self.check(name, &events, &seen.concat(), &violations.concat())
            .await
    }
}
