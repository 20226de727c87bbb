//! The integrity checks run after every scenario: what the load generator was told must be
//! exactly what PostgreSQL holds, and no seat may be sold twice.

use crate::ceiling::CLIENTS;
use crate::fixtures::Block;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio_postgres::Client;
use uuid::Uuid;

/// A booking (or hold) the service answered 201 for, as the load generator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingSeen {
    pub id: Uuid,
    pub event_id: i64,
    pub user_id: String,
    /// (ticket id, seat id), sorted by ticket id.
    pub tickets: Vec<(i64, i64)>,
}

#[derive(Deserialize)]
struct BookingBody {
    id: Uuid,
    event_id: i64,
    user_id: String,
    status: String,
    tickets: Vec<TicketBody>,
}

#[derive(Deserialize)]
struct TicketBody {
    id: i64,
    seat_id: i64,
}

impl BookingSeen {
    /// Reads a 201 body and checks it is what was asked for: this event, this user, exactly these
    /// seats, in `status` ("confirmed", or "held" for a hold).
    pub fn from_answer(
        body: &[u8],
        event_id: i64,
        user_id: &str,
        seats: &[i64],
        status: &str,
    ) -> Result<BookingSeen, String> {
        let b: BookingBody = serde_json::from_slice(body)
            .map_err(|e| format!("201 body is not a booking ({e}): {}", lossy(body)))?;
        let mut got: Vec<i64> = b.tickets.iter().map(|t| t.seat_id).collect();
        let mut wanted = seats.to_vec();
        got.sort_unstable();
        wanted.sort_unstable();
        if b.event_id != event_id || b.user_id != user_id || b.status != status || got != wanted {
            return Err(format!(
                "asked event {event_id} seats {wanted:?} for {user_id}, was given booking {} of \
                 event {} seats {got:?} for {} ({}, expected {status})",
                b.id, b.event_id, b.user_id, b.status
            ));
        }
        let mut tickets: Vec<(i64, i64)> = b.tickets.iter().map(|t| (t.id, t.seat_id)).collect();
        tickets.sort_unstable();
        Ok(BookingSeen {
            id: b.id,
            event_id,
            user_id: user_id.to_owned(),
            tickets,
        })
    }
}

pub fn lossy(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// One integrity check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub scope: String,
    pub bookings_checked: usize,
    pub tickets_checked: usize,
    pub violations: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks in PostgreSQL: no seat has two tickets anywhere; every booking in `seen` exists with
/// exactly the tickets and seats the service returned and one 'booking.confirmed' outbox row; the
/// scenario's `events` hold no booking or ticket the load generator was not told about. `reported`
/// are problems the clients already found in the answers (a wrong seat in a 201, a 409 for a seat
/// nobody else wanted); they fail the check too.
pub async fn check(
    pg: &Client,
    scope: &str,
    events: &[i64],
    seen: &[BookingSeen],
    reported: &[String],
) -> Result<Check> {
    let mut violations: Vec<String> = reported.to_vec();
    // Impossible under the unique constraint, checked anyway.
    let sql = "SELECT event_id, seat_id, count(*) FROM tickets
               GROUP BY event_id, seat_id HAVING count(*) > 1 LIMIT 20";
    violations.extend(pg.query(sql, &[]).await?.iter().map(|r| {
        let (event, seat, n): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
        format!("seat {seat} of event {event} has {n} tickets")
    }));

    let mut stored = HashMap::with_capacity(seen.len());
    for chunk in seen.chunks(10_000) {
        let ids: Vec<Uuid> = chunk.iter().map(|b| b.id).collect();
        let sql = "SELECT b.id, b.event_id, b.user_id,
                coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}'),
                coalesce(array_agg(t.seat_id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}')
            FROM bookings b LEFT JOIN tickets t ON t.booking_id = b.id
            WHERE b.id = ANY ($1) GROUP BY b.id";
        for row in pg.query(sql, &[&ids]).await? {
            let (ticket_ids, seat_ids): (Vec<i64>, Vec<i64>) = (row.get(3), row.get(4));
            let tickets = ticket_ids.into_iter().zip(seat_ids).collect();
            let b = BookingSeen {
                id: row.get(0),
                event_id: row.get(1),
                user_id: row.get(2),
                tickets,
            };
            stored.insert(b.id, b);
        }
    }
    for booking in seen {
        match stored.get(&booking.id) {
            None => violations.push(format!(
                "booking {} was confirmed with 201 but is not in the database",
                booking.id
            )),
            Some(row) if row != booking => violations.push(format!(
                "booking {} was returned as {booking:?} but the database holds {row:?}",
                booking.id
            )),
            Some(_) => {}
        }
    }

    // Every confirmed booking has exactly one confirmation event in the outbox.
    let ids: Vec<Uuid> = seen.iter().map(|b| b.id).collect();
    let sql = "SELECT b.id, count(o.id) FROM bookings b
               LEFT JOIN outbox o ON o.booking_id = b.id AND o.kind = 'booking.confirmed'
               WHERE b.id = ANY ($1) GROUP BY b.id HAVING count(o.id) <> 1";
    violations.extend(pg.query(sql, &[&ids]).await?.iter().map(|r| {
        let (id, n): (Uuid, i64) = (r.get(0), r.get(1));
        format!("confirmed booking {id} has {n} 'booking.confirmed' outbox rows (expected 1)")
    }));

    let ours = seen.iter().filter(|b| events.contains(&b.event_id));
    let expected = ours.fold((0, 0), |(b, t), o| (b + 1, t + o.tickets.len() as i64));
    let counts = pg
        .query_one(
            "SELECT (SELECT count(*) FROM bookings WHERE event_id = ANY ($1)),
                    (SELECT count(*) FROM tickets WHERE event_id = ANY ($1))",
            &[&events],
        )
        .await?;
    let held: (i64, i64) = (counts.get(0), counts.get(1));
    if held != expected {
        violations.push(format!(
            "the scenario's events hold {} bookings / {} tickets, but the service confirmed {} / {}",
            held.0, held.1, expected.0, expected.1
        ));
    }
    let tickets_checked = seen.iter().map(|b| b.tickets.len()).sum();
    Ok(Check {
        scope: scope.to_owned(),
        bookings_checked: seen.len(),
        tickets_checked,
        violations,
    })
}

/// The pgbench ceiling really booked: `transactions` one-seat bookings in the block's events
/// (plus at most one per client cut off by the end of the run), every seat in its event's venue,
/// and each with exactly one 'booking.confirmed' outbox row of book()'s payload shape. Fewer
/// bookings than transactions: the clients ran past their last event.
pub async fn check_ceiling(
    pg: &Client,
    scope: &str,
    block: &Block,
    transactions: u64,
) -> Result<Check> {
    let events = block.events();
    let row = pg
        .query_one(
            "WITH b AS MATERIALIZED (SELECT id FROM bookings WHERE event_id = ANY ($1)),
             o AS (SELECT o.booking_id, count(*) AS n,
                          bool_and(o.payload->>'booking_id' = o.booking_id::text
                                   AND ARRAY(SELECT jsonb_object_keys(o.payload) ORDER BY 1)
                                       = ARRAY['booking_id', 'confirmed_at', 'event_id',
                                               'seat_ids', 'tickets', 'total_cents', 'type',
                                               'user_id'])
                              AS shaped
                   FROM outbox o JOIN b ON b.id = o.booking_id
                   WHERE o.kind = 'booking.confirmed' GROUP BY o.booking_id)
             SELECT (SELECT count(*) FROM b),
                    (SELECT count(*) FROM tickets WHERE event_id = ANY ($1)),
                    (SELECT count(*) FROM (
                        SELECT b.id FROM b LEFT JOIN tickets t ON t.booking_id = b.id
                        GROUP BY b.id HAVING count(t.id) <> 1) partial),
                    (SELECT count(*) FROM tickets t JOIN events e ON e.id = t.event_id
                     JOIN seats s ON s.id = t.seat_id
                     WHERE t.event_id = ANY ($1) AND s.venue_id <> e.venue_id),
                    (SELECT count(*) FROM b LEFT JOIN o ON o.booking_id = b.id
                     WHERE o.n IS DISTINCT FROM 1 OR NOT o.shaped)",
            &[&events],
        )
        .await?;
    let [bookings, tickets, partial, foreign, outbox] =
        [0usize, 1, 2, 3, 4].map(|i| row.get::<_, i64>(i));
    let (done, clients) = (transactions as i64, CLIENTS as i64);
    let mut violations = Vec::new();
    if bookings < done || bookings > done + clients {
        violations.push(format!(
            "pgbench reported {done} transactions but {bookings} bookings were stored \
             (fewer: the clients ran out of events)"
        ));
    }
    if tickets != bookings || partial > 0 {
        violations.push(format!(
            "{bookings} pgbench bookings hold {tickets} tickets ({partial} without exactly one)"
        ));
    }
    if foreign > 0 {
        violations.push(format!(
            "{foreign} tickets for seats outside their event's venue"
        ));
    }
    if outbox > 0 {
        violations.push(format!(
            "{outbox} bookings without exactly one 'booking.confirmed' outbox row of book()'s shape"
        ));
    }
    let (bookings_checked, tickets_checked) = (bookings as usize, tickets as usize);
    Ok(Check {
        scope: scope.to_owned(),
        bookings_checked,
        tickets_checked,
        violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = r#"{"id":"6f1c2a6e-8d4b-4d7e-9b55-0e4c1f3b2a10","event_id":7,
        "user_id":"u1","status":"confirmed","created_at":"2030-01-01T00:00:00Z","total_cents":5000,
        "tickets":[{"id":12,"seat_id":42,"row":"A","number":2,"price_cents":2500},
                   {"id":11,"seat_id":41,"row":"A","number":1,"price_cents":2500}]}"#;

    fn seen(event: i64, user: &str, seats: &[i64]) -> Result<BookingSeen, String> {
        BookingSeen::from_answer(CREATED.as_bytes(), event, user, seats, "confirmed")
    }

    #[test]
    fn a_201_is_recorded_with_its_tickets_only_for_the_seats_user_and_event_asked() {
        assert_eq!(
            seen(7, "u1", &[42, 41]).unwrap().tickets,
            vec![(11, 41), (12, 42)]
        );
        assert!(seen(7, "u1", &[41]).is_err());
        assert!(seen(7, "u2", &[41, 42]).is_err());
        assert!(seen(8, "u1", &[41, 42]).is_err());
        assert!(BookingSeen::from_answer(b"{}", 7, "u1", &[41, 42], "confirmed").is_err());
    }
}
