//! Booking events delivered from the outbox to a real local webhook receiver (axum, over HTTP),
//! against the test's own PostgreSQL database.

use crate::helpers::{spawn_app, As, TestApp};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use notifier_fn::{
    drain, housekeeping, housekeeping_with, verify, NotifierSettings, Policy, Webhook,
    WebhookSettings, DEFAULT_TOLERANCE, DELIVERY_HEADER, SIGNATURE_HEADER,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "test-webhook-secret";

/// A webhook receiver that checks signatures with the notifier's own [`verify`], and can be told
/// to fail the first attempts at each delivery or to hang.
#[derive(Clone, Default)]
struct Receiver {
    /// Accepted deliveries, in order: (delivery id, body).
    accepted: Arc<Mutex<Vec<(String, Value)>>>,
    /// Every well-signed request, in arrival order: (delivery id, event type).
    requests: Arc<Mutex<Vec<(String, String)>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: u32,
    /// `Some(n)`: every request after the first `n` hangs (answers only after a minute).
    hang_after: Arc<Mutex<Option<usize>>>,
    /// Signalled when a request starts hanging.
    hanging: Arc<tokio::sync::Notify>,
    bad_signatures: Arc<Mutex<u32>>,
}

impl Receiver {
    fn hanging_after(n: usize) -> Receiver {
        let receiver = Receiver::default();
        *receiver.hang_after.lock().unwrap() = Some(n);
        receiver
    }

    fn stop_hanging(&self) {
        *self.hang_after.lock().unwrap() = None;
    }

    fn accepted_ids(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let delivery = headers[DELIVERY_HEADER].to_str().unwrap().to_owned();
    let sent = headers[SIGNATURE_HEADER].to_str().unwrap();
    if verify(SECRET, sent, &body, SystemTime::now(), DEFAULT_TOLERANCE).is_err() {
        *receiver.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let payload: Value = serde_json::from_str(&body).unwrap();
    let ordinal = {
        let mut requests = receiver.requests.lock().unwrap();
        requests.push((
            delivery.clone(),
            payload["type"].as_str().unwrap().to_owned(),
        ));
        requests.len()
    };
    let hang = receiver
        .hang_after
        .lock()
        .unwrap()
        .is_some_and(|n| ordinal > n);
    if hang {
        receiver.hanging.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        return StatusCode::SERVICE_UNAVAILABLE;
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
    receiver.accepted.lock().unwrap().push((delivery, payload));
    StatusCode::NO_CONTENT
}

/// Serves `app` on a loopback port; the URL of `path` on it.
async fn serve(app: axum::Router, path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn webhook(url: String, timeout: Duration) -> Webhook {
    Webhook::with_timeout(
        WebhookSettings {
            url,
            secret: SECRET.to_owned().into(),
        },
        timeout,
    )
    .unwrap()
}

async fn start_with(receiver: Receiver, timeout: Duration) -> Webhook {
    let app = axum::Router::new()
        .route("/hooks/seatbook", post(receive))
        .with_state(receiver);
    webhook(serve(app, "/hooks/seatbook").await, timeout)
}

async fn start(receiver: Receiver) -> Webhook {
    start_with(receiver, notifier_fn::DEFAULT_TIMEOUT).await
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
        .hold("holder", event_id, &[seats[5]])
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
    app.hold("idle", event_id, &[seats[6]]).await;
    ids.sort();
    ids
}

/// `n` confirmed bookings, one seat each, by `n` users; their outbox ids in order.
async fn book_n(app: &TestApp, n: usize) -> Vec<i64> {
    let (event_id, seats) = app.seed_event(1, n as i64).await;
    for (i, seat) in seats.iter().enumerate() {
        assert_eq!(
            app.book(&format!("user-{i}"), event_id, &[*seat])
                .await
                .status(),
            201
        );
    }
    outbox_ids(app).await
}

async fn outbox_ids(app: &TestApp) -> Vec<i64> {
    app.db
        .query("SELECT id FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Each outbox row as (status, attempts, leased now).
async fn outbox_rows(app: &TestApp) -> Vec<(String, i32, bool)> {
    app.db
        .query(
            "SELECT status, attempts, coalesce(locked_until > now(), false) FROM outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn cancel(app: &TestApp, user: &str, booking_id: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/bookings/{booking_id}"),
        As::User(user),
    )
    .send()
    .await
    .unwrap()
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

    // Two notifier runs at the same time: the leases keep them off each other's rows.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_past_the_timeout_costs_a_failed_attempt_with_back_off_and_the_run_ends_within_its_budget(
) {
    let app = spawn_app().await;
    book_n(&app, 5).await;
    let receiver = Receiver::hanging_after(0);
    let webhook = start_with(receiver.clone(), Duration::from_secs(1)).await;
    let state = app.lambda_state();
    let budget = Duration::from_millis(4500);

    let started = Instant::now();
    let report = drain(
        &state.db,
        &webhook,
        Policy {
            budget,
            ..Policy::default()
        },
    )
    .await
    .unwrap();
    let took = started.elapsed();

    // Every claim had a whole timeout (and a second to record) left in the budget; the run stopped
    // claiming when it had not.
    assert!(took < budget, "the run took {took:?}");
    assert!(report.out_of_time, "{report:?}");
    assert_eq!(report.delivered, 0);
    assert!((1..=3).contains(&report.retried), "{report:?}");
    let rows = app
        .db
        .query(
            "SELECT attempts, status, locked_until IS NULL,
                    next_attempt_at > now() + interval '20 seconds', last_error
             FROM outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let tried: Vec<_> = rows.iter().filter(|r| r.get::<_, i32>(0) == 1).collect();
    assert_eq!(tried.len() as u64, report.retried, "each attempt recorded");
    for row in &tried {
        assert_eq!(row.get::<_, String>(1), "pending");
        assert!(row.get::<_, bool>(2), "the lease is released");
        assert!(row.get::<_, bool>(3), "retried after the 30 s back-off");
        let error: String = row.get(4);
        assert!(error.contains("no answer within"), "{error}");
    }
    assert!(
        rows.iter()
            .all(|r| r.get::<_, i32>(0) <= 1 && r.get::<_, String>(1) == "pending"),
        "no delivery tried twice in one run"
    );

    // Not lost: the next run sends the deliveries it never reached, and leaves the failed ones
    // to their back-off.
    receiver.stop_hanging();
    let next = drain(&state.db, &webhook, Policy::default()).await.unwrap();
    assert_eq!(next.delivered, 5 - report.retried, "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_aborted_mid_batch_keeps_what_it_delivered_and_resends_only_the_delivery_in_flight_after_its_lease(
) {
    let app = spawn_app().await;
    let ids = book_n(&app, 4).await;
    let receiver = Receiver::hanging_after(2);
    let webhook = Arc::new(start_with(receiver.clone(), Duration::from_secs(2)).await);
    let state = app.lambda_state();
    let policy = Policy {
        lease: Duration::from_secs(3),
        ..Policy::default()
    };

    let run = {
        let (db, webhook) = (state.db.clone(), webhook.clone());
        tokio::spawn(async move { drain(&db, &webhook, policy).await })
    };
    tokio::time::timeout(Duration::from_secs(20), receiver.hanging.notified())
        .await
        .expect("the third delivery reaches the receiver");
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());

    // What was delivered is recorded; the delivery in flight is leased; the last is untouched.
    assert_eq!(
        outbox_rows(&app).await,
        vec![
            ("delivered".to_owned(), 1, false),
            ("delivered".to_owned(), 1, false),
            ("pending".to_owned(), 1, true),
            ("pending".to_owned(), 0, false),
        ]
    );
    receiver.stop_hanging();

    // While the lease holds, the next run leaves the delivery in flight alone.
    let next = drain(&state.db, &webhook, policy).await.unwrap();
    assert_eq!(next.delivered, 1, "{next:?}");
    let id = |i: usize| ids[i].to_string();
    assert_eq!(receiver.accepted_ids(), vec![id(0), id(1), id(3)]);

    // Once it lapses, the delivery that was in flight is sent again, and only it.
    let lapse = Instant::now();
    while app
        .db
        .query_one(
            "SELECT locked_until > now() FROM outbox WHERE id = $1",
            &[&ids[2]],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            lapse.elapsed() < Duration::from_secs(10),
            "the lease lapses"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = drain(&state.db, &webhook, policy).await.unwrap();
    assert_eq!(last.delivered, 1, "{last:?}");
    assert_eq!(receiver.accepted_ids(), vec![id(0), id(1), id(3), id(2)]);
    let sent: Vec<String> = receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(sent, vec![id(0), id(1), id(2), id(3), id(2)]);
    let row = app
        .db
        .query_one(
            "SELECT status, attempts, last_error FROM outbox WHERE id = $1",
            &[&ids[2]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(row.get::<_, Option<String>>(2), None);
}

#[tokio::test]
async fn an_interrupted_last_attempt_makes_the_delivery_dead_without_sending_it_again() {
    let app = spawn_app().await;
    let ids = book_n(&app, 1).await;
    // The eighth attempt's run stopped before recording; its lease has lapsed.
    app.db
        .execute(
            "UPDATE outbox SET attempts = 8, locked_until = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let receiver = Receiver::default();
    let webhook = start(receiver.clone()).await;
    let state = app.lambda_state();
    let report = drain(&state.db, &webhook, Policy::default()).await.unwrap();
    assert_eq!(report.dead, 1, "{report:?}");
    assert!(receiver.requests.lock().unwrap().is_empty());
    let row = app
        .db
        .query_one(
            "SELECT status, attempts, last_error, locked_until FROM outbox WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(row.get::<_, i32>(1), 8);
    assert!(row
        .get::<_, String>(2)
        .contains("attempt 8 was interrupted"));
    assert_eq!(row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(3), None);
}

#[tokio::test]
async fn a_cancellation_reaches_the_receiver_after_its_confirmation_even_when_the_confirmation_was_still_pending(
) {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    let booking: Value = app
        .book("alice", event_id, &seats[..1])
        .await
        .json()
        .await
        .unwrap();
    let booking_id = booking["id"].as_str().unwrap();
    // Cancelled before the notifier has delivered its confirmation.
    assert_eq!(cancel(&app, "alice", booking_id).await.status(), 200);
    let kinds: Vec<String> = app
        .db
        .query("SELECT kind FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["booking.confirmed", "booking.cancelled"]);

    // Every delivery fails once: the cancellation waits while the confirmation is undelivered.
    let receiver = Receiver {
        fail_first: 1,
        ..Receiver::default()
    };
    let webhook = start(receiver.clone()).await;
    let state = app.lambda_state();
    let mut reports = Vec::new();
    for _ in 0..3 {
        let report = drain(&state.db, &webhook, immediate_retries(8))
            .await
            .unwrap();
        reports.push((report.delivered, report.retried));
    }
    assert_eq!(reports, vec![(0, 1), (1, 1), (1, 0)]);
    let sent: Vec<String> = receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, kind)| kind.clone())
        .collect();
    assert_eq!(
        sent,
        [
            "booking.confirmed",
            "booking.confirmed",
            "booking.cancelled",
            "booking.cancelled"
        ]
    );
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].1["type"], "booking.confirmed");
    let cancelled = &accepted[1].1;
    assert_eq!(cancelled["type"], "booking.cancelled");
    assert_eq!(cancelled["booking_id"], booking_id);
    assert_eq!(cancelled["event_id"], event_id);
    assert_eq!(cancelled["user_id"], "alice");
    assert_eq!(cancelled["seat_ids"], json!([seats[0]]));
    assert!(cancelled["cancelled_at"].is_string());
}

#[tokio::test]
async fn cancelling_again_or_cancelling_a_hold_that_was_never_confirmed_announces_nothing() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 3).await;
    let booking: Value = app
        .book("alice", event_id, &seats[..1])
        .await
        .json()
        .await
        .unwrap();
    let booking_id = booking["id"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(cancel(&app, "alice", booking_id).await.status(), 200);
    }
    let hold: Value = app
        .hold("bob", event_id, &[seats[1]])
        .await
        .json()
        .await
        .unwrap();
    let hold_id = hold["id"].as_str().unwrap();
    assert_eq!(cancel(&app, "bob", hold_id).await.status(), 200);
    // A hold that was confirmed is a confirmed booking: its cancellation is announced.
    let held: Value = app
        .hold("carol", event_id, &[seats[2]])
        .await
        .json()
        .await
        .unwrap();
    let held_id = held["id"].as_str().unwrap();
    let confirmed = app
        .post(
            &format!("/api/v1/holds/{held_id}/confirm"),
            As::User("carol"),
            &json!({}),
        )
        .await;
    assert_eq!(confirmed.status(), 201);
    assert_eq!(cancel(&app, "carol", held_id).await.status(), 200);

    let rows: Vec<(String, String)> = app
        .db
        .query("SELECT booking_id::text, kind FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let event = |id: &str, kind: &str| (id.to_owned(), kind.to_owned());
    assert_eq!(
        rows,
        vec![
            event(booking_id, "booking.confirmed"),
            event(booking_id, "booking.cancelled"),
            event(held_id, "booking.confirmed"),
            event(held_id, "booking.cancelled"),
        ]
    );
}

#[tokio::test]
async fn a_dead_confirmation_does_not_hold_back_the_cancellation() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 1).await;
    let booking: Value = app
        .book("alice", event_id, &seats)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        cancel(&app, "alice", booking["id"].as_str().unwrap())
            .await
            .status(),
        200
    );
    app.db
        .execute(
            "UPDATE outbox SET status = 'dead', attempts = 8 WHERE kind = 'booking.confirmed'",
            &[],
        )
        .await
        .unwrap();
    let receiver = Receiver::default();
    let webhook = start(receiver.clone()).await;
    let state = app.lambda_state();
    let report = drain(&state.db, &webhook, Policy::default()).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(
        receiver.accepted.lock().unwrap()[0].1["type"],
        "booking.cancelled"
    );
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_its_target_never_gets_the_delivery() {
    let app = spawn_app().await;
    book_n(&app, 1).await;
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let hooks = axum::Router::new()
        .route(
            "/hooks/seatbook",
            post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]) }),
        )
        .route(
            "/elsewhere",
            post(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }),
        );
    let webhook = webhook(
        serve(hooks, "/hooks/seatbook").await,
        notifier_fn::DEFAULT_TIMEOUT,
    );
    let state = app.lambda_state();
    let report = drain(&state.db, &webhook, Policy::default()).await.unwrap();
    assert_eq!((report.delivered, report.retried), (0, 1), "{report:?}");
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect is not followed"
    );
    let error: String = app
        .db
        .query_one("SELECT last_error FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("307"), "{error}");
    assert!(error.contains("redirects are not followed"), "{error}");
}

#[tokio::test]
async fn delivered_rows_are_purged_after_the_retention_period_and_pending_and_dead_rows_are_kept() {
    let app = spawn_app().await;
    let ids = book_n(&app, 5).await;
    app.db
        .batch_execute(&format!(
            "UPDATE outbox SET status = 'delivered', delivered_at = now() - interval '169 hours'
                 WHERE id = {};
             UPDATE outbox SET status = 'delivered', delivered_at = now() - interval '167 hours'
                 WHERE id = {};
             UPDATE outbox SET status = 'delivered', delivered_at = now() - interval '25 hours'
                 WHERE id = {};
             UPDATE outbox SET status = 'dead', attempts = 8, created_at = now() - interval '900 hours'
                 WHERE id = {};
             UPDATE outbox SET created_at = now() - interval '900 hours' WHERE id = {};",
            ids[0], ids[1], ids[2], ids[3], ids[4]
        ))
        .await
        .unwrap();
    // As deployed: the notifier's own role, and its settings from the environment.
    let notifier = app.lambda_state_as("seatbook_notifier");
    let settings = NotifierSettings::from_lookup(|_| None).unwrap();
    assert_eq!(settings.retention, Duration::from_secs(168 * 3600));

    let swept = housekeeping_with(&notifier.db, settings.retention)
        .await
        .unwrap();
    assert_eq!(swept.outbox_purged, 1);
    assert_eq!(outbox_ids(&app).await, ids[1..]);
    assert_eq!(housekeeping(&notifier.db).await.unwrap().outbox_purged, 0);

    let day = NotifierSettings::from_lookup(|name| {
        (name == "OUTBOX_RETENTION_HOURS").then(|| "24".to_owned())
    })
    .unwrap();
    let swept = housekeeping_with(&notifier.db, day.retention)
        .await
        .unwrap();
    assert_eq!(swept.outbox_purged, 2);
    assert_eq!(
        outbox_ids(&app).await,
        ids[3..],
        "dead and pending rows are kept"
    );
}
