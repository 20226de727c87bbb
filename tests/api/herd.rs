//! Many real HTTP clients racing for the same seats at the same instant.

use crate::helpers::{spawn_app, stampede};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

async fn one_seat_herd(clients: usize) {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let seat = seats[7];
    let requests = (0..clients)
        .map(|i| {
            (
                format!("fan-{i}"),
                json!({"event_id": event_id, "seat_ids": [seat]}),
            )
        })
        .collect();

    let results = stampede(&app, requests).await;

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, body) in &results {
        *by_status.entry(*status).or_default() += 1;
        if *status == 409 {
            assert_eq!(
                body["seat_ids"],
                json!([seat]),
                "every loser is told which seat was taken"
            );
        }
    }
    assert_eq!(
        by_status.get(&201),
        Some(&1),
        "exactly one winner: {by_status:?}"
    );
    assert_eq!(
        by_status.get(&409),
        Some(&(clients - 1)),
        "everyone else 409: {by_status:?}"
    );
    assert_eq!(
        app.tickets_for_seat(event_id, seat).await,
        1,
        "one ticket row"
    );
    let winner = &results.iter().find(|(s, _)| *s == 201).unwrap().1;
    let owner: String = app
        .db
        .query_one(
            "SELECT b.user_id FROM tickets t JOIN bookings b ON b.id = t.booking_id
             WHERE t.event_id = $1 AND t.seat_id = $2",
            &[&event_id, &seat],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        winner["user_id"], owner,
        "the 201 went to the owner of the ticket"
    );
    let bookings: i64 = app
        .db
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bookings, 1, "losers leave no booking behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_requests_for_one_seat_make_exactly_one_booking() {
    one_seat_herd(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_simultaneous_requests_for_one_seat_make_exactly_one_booking() {
    one_seat_herd(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_multi_seat_bookings_never_share_a_seat_and_are_always_whole() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(3, 5).await;
    // A small pool of seats so that most requests overlap.
    let pool = &seats[..12];
    let mut rng = rand::rng();
    let requests: Vec<(String, Value)> = (0..200)
        .map(|i| {
            let n = rng.random_range(1..=4);
            let picked: Vec<i64> = pool.choose_multiple(&mut rng, n).copied().collect();
            (
                format!("client-{i}"),
                json!({"event_id": event_id, "seat_ids": picked}),
            )
        })
        .collect();

    let results = stampede(&app, requests.clone()).await;

    let mut sold: HashMap<i64, String> = HashMap::new();
    let mut losers = Vec::new();
    for ((_, request), (status, body)) in requests.iter().zip(&results) {
        let asked: HashSet<i64> = request["seat_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        match status {
            201 => {
                let got: HashSet<i64> = body["tickets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["seat_id"].as_i64().unwrap())
                    .collect();
                assert_eq!(got, asked, "a booking is whole");
                for seat in got {
                    let id = body["id"].as_str().unwrap().to_owned();
                    assert!(sold.insert(seat, id).is_none(), "seat {seat} sold twice");
                }
            }
            409 => losers.push((asked, body.clone())),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(!sold.is_empty(), "somebody won");

    // The database agrees with what the clients were told, ticket for ticket.
    let rows = app
        .db
        .query(
            "SELECT seat_id, booking_id::text FROM tickets WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .unwrap();
    let stored: HashMap<i64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(stored, sold, "tickets in PostgreSQL are exactly the 201s");

    for (asked, problem) in losers {
        let named: Vec<i64> = problem["seat_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert!(!named.is_empty(), "a 409 names the seats: {problem}");
        for seat in named {
            assert!(asked.contains(&seat), "a 409 names only requested seats");
            assert!(
                sold.contains_key(&seat),
                "seat {seat} named in a 409 is really taken"
            );
        }
    }
}
