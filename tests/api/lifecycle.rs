//! The booking lifecycle: idempotent retries, cancellation, holds that lapse without any job.

use crate::booking::{fail_serialization, ticket_inserts};
use crate::helpers::{
    assert_problem, seat_status, spawn_app, spawn_app_with_env, As, TestApp, ORGANIZER,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// Asserts `seat` is available on the map as `app` reads it (`why`); the map.
async fn assert_available(app: &TestApp, event_id: i64, seat: i64, why: &str) -> Value {
    let availability = app.availability(event_id).await;
    assert_eq!(seat_status(&availability, seat), "available", "{why}");
    availability
}

async fn book_with_key(app: &TestApp, user: &str, key: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/api/v1/bookings", As::User(user))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_booking_with_the_same_key_returns_the_original_response() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let body = json!({"event_id": event_id, "seat_ids": [seats[0], seats[1]]});

    let first = book_with_key(&app, "alice", "key-1", &body).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let original: Value = first.json().await.unwrap();

    let again = book_with_key(&app, "alice", "key-1", &body).await;
    assert_eq!(again.status(), 201, "the same status");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        original,
        "the same booking"
    );
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);

    // Seat order is not part of the request's identity; a different request is.
    let reordered = json!({"event_id": event_id, "seat_ids": [seats[1], seats[0]]});
    assert_eq!(
        book_with_key(&app, "alice", "key-1", &reordered)
            .await
            .status(),
        201
    );
    let other = json!({"event_id": event_id, "seat_ids": [seats[2]]});
    assert_problem(book_with_key(&app, "alice", "key-1", &other).await, 422).await;

    // Keys belong to their user: bob's "key-1" is a new request (and loses the seats).
    let bobs = book_with_key(&app, "bob", "key-1", &body).await;
    let problem = assert_problem(bobs, 409).await;
    // ... and its 409 is replayed as such.
    let bobs_again = assert_problem(book_with_key(&app, "bob", "key-1", &body).await, 409).await;
    assert_eq!(problem, bobs_again);

    let bad_key = book_with_key(&app, "alice", "", &body).await;
    assert_problem(bad_key, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_retries_of_one_key_make_one_booking() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let body = json!({"event_id": event_id, "seat_ids": [seats[3]]});
    let barrier = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .request(reqwest::Method::POST, "/api/v1/bookings", As::User("alice"))
                .header("idempotency-key", "retry-storm")
                .json(&body);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.unwrap();
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, booking) = task.await.unwrap();
        assert_eq!(status, 201, "{booking}");
        ids.insert(booking["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every retry got the same booking");
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        1,
        "one confirmation"
    );
}

#[tokio::test]
async fn a_cancelled_booking_frees_its_seats_at_once_and_keeps_its_history() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let booking = app.booked("alice", event_id, &seats[..2]).await;
    let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked",
        "cached as booked"
    );

    assert_problem(app.delete(&path, As::User("mallory")).await, 404).await;

    let cancelled = app.delete(&path, As::User("alice")).await;
    assert_eq!(cancelled.status(), 200);
    app.saw(&cancelled);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["tickets"], booking["tickets"], "history kept");

    let availability = assert_available(&app, event_id, seats[0], "the cache reflects it").await;
    assert_eq!(availability["booked_seats"], 0);

    assert_eq!(
        app.book("bob", event_id, &seats[..2]).await.status(),
        201,
        "someone else can book them"
    );

    let twice = app.delete(&path, As::User("alice")).await;
    assert_eq!(twice.status(), 200, "cancelling twice is harmless");
    assert_eq!(twice.json::<Value>().await.unwrap(), cancelled);
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked",
        "bob's seats stay bob's"
    );
}

#[tokio::test]
async fn an_organizer_may_cancel_anyones_booking() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    let booking = app.booked("alice", event_id, &[seats[0]]).await;
    let response = app.cancel(booking["id"].as_str().unwrap(), ORGANIZER).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_racing_a_cancellation_never_double_books() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 5).await;
    // A seat per round: a round's winner keeps its seat. (A loser's conflict mark can no longer
    // land after the cancellation cleared the marks: herd.rs,
    // `a_conflict_after_a_seat_of_its_event_was_freed_leaves_no_mark`.)
    for (round, &seat) in seats.iter().enumerate() {
        let booking = app
            .booked(&format!("owner-{round}"), event_id, &[seat])
            .await;
        let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
        let barrier = Arc::new(Barrier::new(101));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let request = app
                .request(
                    reqwest::Method::POST,
                    "/api/v1/bookings",
                    As::User(&format!("fan-{round}-{i}")),
                )
                .json(&json!({"event_id": event_id, "seat_ids": [seat]}));
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status().as_u16()
            }));
        }
        let cancel = app.request(
            reqwest::Method::DELETE,
            &path,
            As::User(&format!("owner-{round}")),
        );
        let barrier2 = barrier.clone();
        let cancelled = tokio::spawn(async move {
            barrier2.wait().await;
            cancel.send().await.unwrap().status().as_u16()
        });
        let statuses: Vec<u16> = futures_join(tasks).await;
        assert_eq!(cancelled.await.unwrap(), 200);
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
        let winners = statuses.iter().filter(|s| **s == 201).count();
        assert!(winners <= 1, "round {round}: {winners} winners");
        assert_eq!(app.tickets_for_seat(event_id, seat).await, winners as i64);
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_hold_reserves_seats_until_confirmed() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let response = app.hold("alice", event_id, &[seats[0], seats[1]]).await;
    assert_eq!(response.status(), 201);
    let hold: Value = response.json().await.unwrap();
    assert_eq!(hold["status"], "held");
    let expires_at: chrono::DateTime<chrono::Utc> =
        hold["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires_at - chrono::Utc::now();
    assert!(
        ttl > chrono::Duration::seconds(590) && ttl <= chrono::Duration::seconds(600),
        "default 600 s: {ttl}"
    );

    let availability = app.availability(event_id).await;
    assert_eq!(seat_status(&availability, seats[0]), "held");
    assert_eq!(availability["held_seats"], 2);
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        0,
        "no confirmation for a hold"
    );

    let problem = assert_problem(app.book("bob", event_id, &[seats[1]]).await, 409).await;
    assert_eq!(problem["seat_ids"], json!([seats[1]]));
    let bobs_hold = app.hold("bob", event_id, &[seats[0]]).await;
    assert_problem(bobs_hold, 409).await;

    let hold_id = hold["id"].as_str().unwrap();
    assert_problem(app.confirm(hold_id, As::User("bob")).await, 404).await;
    let confirmed = app.confirm(hold_id, As::User("alice")).await;
    assert_eq!(confirmed.status(), 201);
    let confirmed: Value = confirmed.json().await.unwrap();
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["id"], hold["id"]);
    assert_eq!(confirmed["expires_at"], Value::Null);
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox").await,
        1,
        "the confirmation is recorded"
    );

    let again = app.confirm(hold_id, As::User("alice")).await;
    assert_eq!(again.status(), 201, "confirming twice answers the same");
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 1);
}

#[tokio::test]
async fn a_lapsed_hold_frees_its_seats_without_any_job_and_cannot_be_confirmed() {
    let app = spawn_app_with_env(&[("HOLD_TTL_SECONDS", "1")]).await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    let hold = app.held("alice", event_id, &[seats[0], seats[1]]).await;
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "held",
        "and cached"
    );
    assert_problem(app.book("bob", event_id, &[seats[0]]).await, 409).await;

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let why = "the cached map lapsed with the hold";
    let availability = assert_available(&app, event_id, seats[0], why).await;
    assert_eq!(availability["held_seats"], 0);

    // Bob simply wins the seat; the lapsed hold is released in his transaction.
    let bobs = app.book("bob", event_id, &[seats[0]]).await;
    assert_eq!(bobs.status(), 201);
    assert_eq!(app.tickets_for_seat(event_id, seats[0]).await, 1);

    let hold_id = hold["id"].as_str().unwrap();
    assert_problem(app.confirm(hold_id, As::User("alice")).await, 410).await;
    let expired = app
        .get_json(&format!("/api/v1/bookings/{hold_id}"), As::User("alice"))
        .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(
        expired["tickets"].as_array().unwrap().len(),
        2,
        "history kept"
    );
    // Its other seat is free too.
    assert_eq!(app.book("carol", event_id, &[seats[1]]).await.status(), 201);
}

#[tokio::test]
async fn a_keyed_booking_that_never_serializes_gets_a_503_and_its_key_books_later() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    let body = json!({"event_id": event_id, "seat_ids": [seats[0]]});
    fail_serialization(&app, i64::MAX).await;

    let response = book_with_key(&app, "alice", "unlucky", &body).await;
    assert_eq!(response.status(), 503, "a retryable answer, not a 500");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503).await;
    let attempts = ticket_inserts(&app).await;
    assert!((2..=5).contains(&attempts), "bounded retries: {attempts}");
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);

    app.db
        .batch_execute("DROP TRIGGER refuse_to_serialize ON tickets")
        .await
        .unwrap();
    let retried = book_with_key(&app, "alice", "unlucky", &body).await;
    assert_eq!(retried.status(), 201, "a 503 is not replayed");
    assert!(retried.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
}

#[tokio::test]
async fn a_keyed_booking_that_fails_serialization_twice_is_booked_and_replayed() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    let body = json!({"event_id": event_id, "seat_ids": [seats[0], seats[1]]});
    fail_serialization(&app, 2).await;

    let response = book_with_key(&app, "alice", "patient", &body).await;
    assert_eq!(response.status(), 201, "retried, not a 500");
    let booking: Value = response.json().await.unwrap();
    assert_eq!(
        ticket_inserts(&app).await,
        3,
        "two failures, then the booking"
    );
    let again = book_with_key(&app, "alice", "patient", &body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), booking);
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
}

#[tokio::test]
async fn a_lapsed_hold_gives_way_to_a_booking_with_or_without_an_idempotency_key() {
    let app = spawn_app_with_env(&[("HOLD_TTL_SECONDS", "1")]).await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    for pair in [[seats[0], seats[1]], [seats[2], seats[3]]] {
        let hold = app
            .claim("/api/v1/holds", As::User("alice"), event_id, &pair)
            .await;
        assert_eq!(hold.status(), 201);
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let plain = app.book("bob", event_id, &[seats[1], seats[0]]).await;
    assert_eq!(plain.status(), 201);
    let keyed = book_with_key(
        &app,
        "carol",
        "after-the-hold",
        &json!({"event_id": event_id, "seat_ids": [seats[3], seats[2]]}),
    )
    .await;
    assert_eq!(keyed.status(), 201);
    assert_eq!(
        app.count("SELECT count(*) FROM bookings WHERE status = 'expired'")
            .await,
        2,
        "both holds were released, and kept as history"
    );
    assert_eq!(app.count("SELECT count(*) FROM released_tickets").await, 4);
    for seat in &seats[..4] {
        assert_eq!(app.tickets_for_seat(event_id, *seat).await, 1);
    }
}
