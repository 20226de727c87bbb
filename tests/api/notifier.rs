//! Confirmations delivered from the outbox to a real local webhook receiver.

use crate::helpers::{spawn_app, As, TestApp};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use notifier_fn::{
    drain, signature, Policy, Webhook, WebhookSettings, DELIVERY_HEADER, SIGNATURE_HEADER,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "test-webhook-secret";

/// A webhook receiver that checks signatures and can be told to fail the first attempts.
#[derive(Clone, Default)]
struct Receiver {
    /// Accepted deliveries: (delivery id, body).
    accepted: Arc<Mutex<Vec<(String, Value)>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: u32,
    bad_signatures: Arc<Mutex<u32>>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let delivery = headers[DELIVERY_HEADER].to_str().unwrap().to_owned();
    let sent = headers[SIGNATURE_HEADER].to_str().unwrap();
    let timestamp: i64 = sent
        .trim_start_matches("t=")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    if signature(SECRET, timestamp, &body) != sent {
        *receiver.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let attempt = {
        let mut attempts = receiver.attempts.lock().unwrap();
        let n = attempts.entry(delivery.clone()).or_default();
        *n += 1;
        *n
    };
    if attempt <= receiver.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    receiver
        .accepted
        .lock()
        .unwrap()
        .push((delivery, serde_json::from_str(&body).unwrap()));
    StatusCode::NO_CONTENT
}

async fn start(receiver: Receiver) -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/seatbook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hooks/seatbook", post(receive))
        .with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Webhook::new(WebhookSettings {
        url,
        secret: SECRET.to_owned().into(),
    })
    .unwrap()
}

fn immediate_retries(max_attempts: i32) -> Policy {
    Policy {
        max_attempts,
        first_backoff: Duration::ZERO,
        ..Policy::default()
    }
}

/// Five bookings and a confirmed hold: six confirmations. Returns the confirmed booking ids.
async fn confirm_six(app: &TestApp) -> Vec<String> {
    let (event_id, seats) = app.seed_event(2, 5).await;
    let mut ids = Vec::new();
    for (i, seat) in seats[..5].iter().enumerate() {
        let booking: Value = app
            .book(&format!("user-{i}"), event_id, &[*seat])
            .await
            .json()
            .await
            .unwrap();
        ids.push(booking["id"].as_str().unwrap().to_owned());
    }
    let hold: Value = app
        .post(
            "/api/v1/holds",
            As::User("holder"),
            &json!({"event_id": event_id, "seat_ids": [seats[5]]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    let confirm = app
        .post(
            &format!("/api/v1/holds/{hold_id}/confirm"),
            As::User("holder"),
            &json!({}),
        )
        .await;
    assert_eq!(confirm.status(), 201);
    ids.push(hold_id);
    // A hold that is never confirmed sends nothing.
    app.post(
        "/api/v1/holds",
        As::User("idle"),
        &json!({"event_id": event_id, "seat_ids": [seats[6]]}),
    )
    .await;
    ids.sort();
    ids
}

fn delivered_booking_ids(receiver: &Receiver) -> Vec<String> {
    let mut ids: Vec<String> = receiver
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| body["booking_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_confirmed_booking_is_delivered_exactly_once() {
    let app = spawn_app().await;
    let expected = confirm_six(&app).await;
    let receiver = Receiver::default();
    let webhook = Arc::new(start(receiver.clone()).await);
    let state = app.lambda_state();

    // Two notifier runs at the same time: SKIP LOCKED keeps them off each other's rows.
    let (a, b) = tokio::join!(
        drain(&state.db, &webhook, Policy::default()),
        drain(&state.db, &webhook, Policy::default())
    );
    assert_eq!(a.unwrap().delivered + b.unwrap().delivered, 6);
    assert_eq!(
        delivered_booking_ids(&receiver),
        expected,
        "each confirmation once"
    );
    assert_eq!(
        *receiver.bad_signatures.lock().unwrap(),
        0,
        "every delivery is signed"
    );
    let first = receiver.accepted.lock().unwrap()[0].1.clone();
    assert_eq!(first["type"], "booking.confirmed");

    // Nothing is delivered twice by later runs.
    let again = drain(&state.db, &webhook, Policy::default()).await.unwrap();
    assert_eq!(again.delivered, 0);
    assert_eq!(receiver.accepted.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_first_still_gets_every_confirmation() {
    let app = spawn_app().await;
    let expected = confirm_six(&app).await;
    let receiver = Receiver {
        fail_first: 2,
        ..Receiver::default()
    };
    let webhook = start(receiver.clone()).await;
    let state = app.lambda_state();

    for run in 1..=3 {
        let report = drain(&state.db, &webhook, immediate_retries(8))
            .await
            .unwrap();
        if run < 3 {
            assert_eq!((report.delivered, report.retried), (0, 6), "run {run}");
        } else {
            assert_eq!(report.delivered, 6, "run {run}");
        }
    }
    assert_eq!(
        delivered_booking_ids(&receiver),
        expected,
        "at least once, here exactly once"
    );
    let rows = app
        .db
        .query("SELECT status, attempts FROM outbox", &[])
        .await
        .unwrap();
    assert!(rows
        .iter()
        .all(|r| r.get::<_, String>(0) == "delivered" && r.get::<_, i32>(1) == 3));
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_ends_in_the_dead_letter_state() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 1).await;
    assert_eq!(app.book("alice", event_id, &seats).await.status(), 201);
    let receiver = Receiver {
        fail_first: u32::MAX,
        ..Receiver::default()
    };
    let webhook = start(receiver.clone()).await;
    let state = app.lambda_state();
    let mut dead = 0;
    for _ in 0..3 {
        dead += drain(&state.db, &webhook, immediate_retries(3))
            .await
            .unwrap()
            .dead;
    }
    assert_eq!(dead, 1);
    let row = app
        .db
        .query_one("SELECT status, attempts, last_error FROM outbox", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert!(row.get::<_, String>(2).contains("503"));
    // Dead deliveries are left alone.
    assert_eq!(
        drain(&state.db, &webhook, immediate_retries(3))
            .await
            .unwrap(),
        Default::default()
    );
}
