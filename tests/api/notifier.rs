//! Booking events delivered from the outbox to a real local webhook receiver (axum, over HTTP),
//! against the test's own PostgreSQL database.

use crate::helpers::{spawn_app, As, TestApp};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use notifier_fn::{
    drain, drain_every, housekeeping, housekeeping_with, verify, DrainReport, Headers,
    NotifierSettings, Policy, Webhook, WebhookSettings, DEFAULT_TOLERANCE, ID_HEADER, LOCAL_PERIOD,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use seatbook_core::db::Pool;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A Standard Webhooks secret: `whsec_` and the base64 of the key.
const SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0zMi1ieXRlcyE=";

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
        each(&self.accepted, |(id, _)| id.clone())
    }

    /// The delivery id of every well-signed request, in arrival order.
    fn requested_ids(&self) -> Vec<String> {
        each(&self.requests, |(id, _)| id.clone())
    }
}

/// `part` of each entry a receiver recorded, in order.
fn each<E, T>(record: &Mutex<Vec<E>>, part: impl Fn(&E) -> T) -> Vec<T> {
    record.lock().unwrap().iter().map(part).collect()
}

/// A delivery's Standard Webhooks headers.
fn headers_of(headers: &HeaderMap) -> Headers<'_> {
    let header = |name: &str| headers[name].to_str().unwrap();
    Headers {
        id: header(ID_HEADER),
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let sent = headers_of(&headers);
    let delivery = sent.id.to_owned();
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
        let booking = app.booked(&format!("user-{i}"), event_id, &[*seat]).await;
        ids.push(booking["id"].as_str().unwrap().to_owned());
    }
    let hold = app.held("holder", event_id, &[seats[5]]).await;
    let hold_id = hold["id"].as_str().unwrap().to_owned();
    let confirm = app.confirm(&hold_id, As::User("holder")).await;
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
    app.book_each(event_id, &seats, |i| format!("user-{i}"))
        .await;
    outbox_ids(app).await
}

async fn outbox_ids(app: &TestApp) -> Vec<i64> {
    app.column("SELECT id FROM outbox ORDER BY id").await
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

/// The outbox row `id` as it is stored.
#[derive(Debug)]
struct OutboxRow {
    status: String,
    attempts: i32,
    last_error: Option<String>,
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

async fn outbox_row(app: &TestApp, id: i64) -> OutboxRow {
    let row = app
        .db
        .query_one(
            "SELECT status, attempts, last_error, locked_until FROM outbox WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    OutboxRow {
        status: row.get(0),
        attempts: row.get(1),
        last_error: row.get(2),
        locked_until: row.get(3),
    }
}

/// Waits (at most `within`) until no outbox row is leased any more.
async fn until_no_lease(app: &TestApp, within: Duration) {
    let lapse = Instant::now();
    while outbox_rows(app).await.iter().any(|r| r.2) {
        assert!(lapse.elapsed() < within, "the leases lapse");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cancel(app: &TestApp, user: &str, booking_id: &str) -> reqwest::Response {
    app.cancel(booking_id, As::User(user)).await
}

fn delivered_booking_ids(receiver: &Receiver) -> Vec<String> {
    let mut ids = each(&receiver.accepted, |(_, body)| {
        body["booking_id"].as_str().unwrap().to_owned()
    });
    ids.sort();
    ids
}

/// Changes the outbox behind the notifier's back with `sql`, then runs the notifier once, with
/// the default policy, delivering to a fresh receiver; the receiver and the run's report.
async fn drain_after(app: &TestApp, sql: &str) -> (Receiver, DrainReport) {
    app.db.batch_execute(sql).await.unwrap();
    let receiver = Receiver::default();
    let webhook = start(receiver.clone()).await;
    let report = drain(&app.lambda_state().db, &webhook, Policy::default())
        .await
        .unwrap();
    (receiver, report)
}

/// What each run of a notifier under test is given: the database, the webhook, the policy.
struct Notifier {
    db: Pool,
    webhook: Arc<Webhook>,
    policy: Policy,
}

impl Notifier {
    async fn drain(&self) -> DrainReport {
        drain(&self.db, &self.webhook, self.policy).await.unwrap()
    }

    /// A run in the background, for the test to abort mid-batch.
    fn start(&self) -> tokio::task::JoinHandle<DrainReport> {
        let (db, webhook, policy) = (self.db.clone(), self.webhook.clone(), self.policy);
        tokio::spawn(async move { drain(&db, &webhook, policy).await.unwrap() })
    }
}

/// `n` bookings and a receiver that answers the first two requests and hangs on every later one;
/// the notifier delivering to it gives up on a request after `timeout`, leases each delivery for
/// `lease` and has up to `concurrency` in flight.
async fn bookings_and_a_receiver_that_hangs_after_two(
    n: usize,
    timeout: Duration,
    lease: Duration,
    concurrency: usize,
) -> (TestApp, Vec<i64>, Receiver, Notifier) {
    let app = spawn_app().await;
    let ids = book_n(&app, n).await;
    let receiver = Receiver::hanging_after(2);
    let notifier = Notifier {
        db: app.lambda_state().db.clone(),
        webhook: Arc::new(start_with(receiver.clone(), timeout).await),
        policy: Policy {
            lease,
            concurrency,
            ..Policy::default()
        },
    };
    (app, ids, receiver, notifier)
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
    let ids = book_n(&app, 1).await;
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
    let row = outbox_row(&app, ids[0]).await;
    assert_eq!((row.status.as_str(), row.attempts), ("dead", 3));
    assert!(row.last_error.unwrap().contains("503"));
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
            // One at a time: the run meets its budget with deliveries still to claim.
            concurrency: 1,
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
    // One at a time, so "the delivery in flight" is one; the concurrent case is
    // a_drain_aborted_with_deliveries_in_flight_loses_none_and_resends_only_those.
    let (app, ids, receiver, notifier) = bookings_and_a_receiver_that_hangs_after_two(
        4,
        Duration::from_secs(2),
        Duration::from_secs(3),
        1,
    )
    .await;
    let run = notifier.start();
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
    let next = notifier.drain().await;
    assert_eq!(next.delivered, 1, "{next:?}");
    let id = |i: usize| ids[i].to_string();
    assert_eq!(receiver.accepted_ids(), vec![id(0), id(1), id(3)]);

    // Once it lapses (the last one leased), the delivery that was in flight is sent again, and
    // only it.
    until_no_lease(&app, Duration::from_secs(10)).await;
    let last = notifier.drain().await;
    assert_eq!(last.delivered, 1, "{last:?}");
    assert_eq!(receiver.accepted_ids(), vec![id(0), id(1), id(3), id(2)]);
    assert_eq!(
        receiver.requested_ids(),
        vec![id(0), id(1), id(2), id(3), id(2)]
    );
    let row = outbox_row(&app, ids[2]).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.last_error),
        ("delivered", 2, None)
    );
}

#[tokio::test]
async fn an_interrupted_last_attempt_makes_the_delivery_dead_without_sending_it_again() {
    let app = spawn_app().await;
    let ids = book_n(&app, 1).await;
    // The eighth attempt's run stopped before recording; its lease has lapsed.
    let (receiver, report) = drain_after(
        &app,
        "UPDATE outbox SET attempts = 8, locked_until = now() - interval '1 second'",
    )
    .await;
    assert_eq!(report.dead, 1, "{report:?}");
    assert!(receiver.requests.lock().unwrap().is_empty());
    let row = outbox_row(&app, ids[0]).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.locked_until),
        ("dead", 8, None)
    );
    assert!(row
        .last_error
        .unwrap()
        .contains("attempt 8 was interrupted"));
}

#[tokio::test]
async fn a_cancellation_reaches_the_receiver_after_its_confirmation_even_when_the_confirmation_was_still_pending(
) {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    let booking = app.booked("alice", event_id, &seats[..1]).await;
    let booking_id = booking["id"].as_str().unwrap();
    // Cancelled before the notifier has delivered its confirmation.
    assert_eq!(cancel(&app, "alice", booking_id).await.status(), 200);
    let kinds: Vec<String> = app.column("SELECT kind FROM outbox ORDER BY id").await;
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
    assert_eq!(
        each(&receiver.requests, |(_, kind)| kind.clone()),
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
    let booking = app.booked("alice", event_id, &seats[..1]).await;
    let booking_id = booking["id"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(cancel(&app, "alice", booking_id).await.status(), 200);
    }
    let hold = app.held("bob", event_id, &[seats[1]]).await;
    let hold_id = hold["id"].as_str().unwrap();
    assert_eq!(cancel(&app, "bob", hold_id).await.status(), 200);
    // A hold that was confirmed is a confirmed booking: its cancellation is announced.
    let held = app.held("carol", event_id, &[seats[2]]).await;
    let held_id = held["id"].as_str().unwrap();
    let confirmed = app.confirm(held_id, As::User("carol")).await;
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
    let booking = app.booked("alice", event_id, &seats).await;
    assert_eq!(
        cancel(&app, "alice", booking["id"].as_str().unwrap())
            .await
            .status(),
        200
    );
    let (receiver, report) = drain_after(
        &app,
        "UPDATE outbox SET status = 'dead', attempts = 8 WHERE kind = 'booking.confirmed'",
    )
    .await;
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
    let error: String = app.scalar("SELECT last_error FROM outbox", &[]).await;
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

/// Standard Webhooks signing written out from the specification (standardwebhooks.com), sharing
/// no code with the notifier: `v1,` and the base64 HMAC-SHA256, under the base64-decoded part of
/// `whsec_<base64>`, of `"{id}.{timestamp}.{body}"`.
fn spec_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let base64 = base64::engine::general_purpose::STANDARD;
    let key = base64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64.encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn every_attempt_carries_standard_webhooks_headers_that_an_independent_implementation_verifies(
) {
    // The independent implementation reproduces the specification's published test vector (the
    // reference libraries' "sign function works").
    assert_eq!(
        spec_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let app = spawn_app().await;
    let ids = book_n(&app, 1).await;
    // Records every request as it came; fails the first attempt, so the delivery is retried.
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let record = seen.clone();
    let hooks = axum::Router::new().route(
        "/hooks/seatbook",
        post(move |headers: HeaderMap, body: String| async move {
            let mut seen = record.lock().unwrap();
            seen.push((headers, body));
            if seen.len() == 1 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NO_CONTENT
            }
        }),
    );
    let webhook = webhook(
        serve(hooks, "/hooks/seatbook").await,
        notifier_fn::DEFAULT_TIMEOUT,
    );
    let state = app.lambda_state();
    let first = drain(&state.db, &webhook, immediate_retries(8))
        .await
        .unwrap();
    assert_eq!((first.delivered, first.retried), (0, 1), "{first:?}");
    // Each attempt is signed when it is sent.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = drain(&state.db, &webhook, immediate_retries(8))
        .await
        .unwrap();
    assert_eq!(second.delivered, 1, "{second:?}");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let now = chrono::Utc::now().timestamp();
    for (headers, body) in &seen {
        let header = |name: &str| headers[name].to_str().unwrap();
        let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
        assert_eq!(id, ids[0].to_string(), "the outbox id");
        let sent: i64 = timestamp.parse().unwrap();
        assert!(
            (now - 10..=now).contains(&sent),
            "unix seconds: {timestamp}"
        );
        let expected = spec_signature(SECRET, id, timestamp, body);
        assert!(
            header("webhook-signature")
                .split(' ')
                .any(|s| s == expected),
            "{} has {expected}",
            header("webhook-signature")
        );
        assert_eq!(header("content-type"), "application/json");
        assert!(headers.get("seatbook-signature").is_none());
        assert!(headers.get("seatbook-delivery").is_none());
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap()["type"],
            "booking.confirmed"
        );
    }
    let header = |i: usize, name: &str| seen[i].0[name].to_str().unwrap().to_owned();
    assert_eq!(
        header(0, "webhook-id"),
        header(1, "webhook-id"),
        "the id receivers deduplicate on is the same on a retry"
    );
    assert_ne!(
        header(0, "webhook-timestamp"),
        header(1, "webhook-timestamp")
    );
}

#[tokio::test]
async fn last_error_never_carries_the_webhook_urls_path_or_query() {
    const PATH: &str = "/hooks/s3cr3t-path";
    const QUERY: &str = "token=t0k3n";
    let app = spawn_app().await;
    let ids = book_n(&app, 1).await;
    let mode: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("fail"));
    let answer = mode.clone();
    let hooks = axum::Router::new().route(
        PATH,
        post(move |headers: HeaderMap| async move {
            let mode = *answer.lock().unwrap();
            let host = headers["host"].to_str().unwrap().to_owned();
            match mode {
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    StatusCode::NO_CONTENT.into_response()
                }
                // Moved to HTTPS: the same path and query, token included.
                "redirect" => (
                    StatusCode::PERMANENT_REDIRECT,
                    [("location", format!("https://{host}{PATH}?{QUERY}"))],
                )
                    .into_response(),
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }),
    );
    let served = format!("{}?{QUERY}", serve(hooks, PATH).await);
    let refused = format!("http://127.0.0.1:9{PATH}?{QUERY}");
    let state = app.lambda_state();
    for (name, url, expected) in [
        ("refused", refused.as_str(), "request failed"),
        ("hang", served.as_str(), "no answer within"),
        ("redirect", served.as_str(), "308"),
        ("fail", served.as_str(), "500"),
    ] {
        *mode.lock().unwrap() = name;
        app.db
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),
                        locked_until = NULL, last_error = NULL WHERE id = $1",
                &[&ids[0]],
            )
            .await
            .unwrap();
        let webhook = webhook(url.to_owned(), Duration::from_secs(1));
        let report = drain(&state.db, &webhook, Policy::default()).await.unwrap();
        assert_eq!(report.retried, 1, "{name}: {report:?}");
        let error: String = app
            .scalar("SELECT last_error FROM outbox WHERE id = $1", &[&ids[0]])
            .await;
        assert!(error.contains(expected), "{name}: {error}");
        for secret in ["s3cr3t", "t0k3n", "/hooks"] {
            assert!(!error.contains(secret), "{name}: {error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_aborted_with_deliveries_in_flight_loses_none_and_resends_only_those() {
    let (app, ids, receiver, notifier) = bookings_and_a_receiver_that_hangs_after_two(
        8,
        Duration::from_secs(5),
        Duration::from_secs(6),
        4,
    )
    .await;
    let run = notifier.start();
    // Four sent at once; the two answered are recorded and their slots refilled while the other
    // two still hang: six requests, four of them in flight.
    let started = Instant::now();
    while receiver.requests.lock().unwrap().len() < 6
        || outbox_rows(&app)
            .await
            .iter()
            .filter(|r| r.0 == "delivered")
            .count()
            < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "two deliveries recorded and four in flight, within the 5 s timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        receiver.requests.lock().unwrap().len(),
        6,
        "never more than four in flight"
    );
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let rows = outbox_rows(&app).await;
    let leased = |status: &str, attempts: i32, leased: bool| (status.to_owned(), attempts, leased);
    let mut counted: HashMap<(String, i32, bool), usize> = HashMap::new();
    for row in &rows {
        *counted.entry(row.clone()).or_default() += 1;
    }
    assert_eq!(
        counted,
        HashMap::from([
            (leased("delivered", 1, false), 2),
            (leased("pending", 1, true), 4),
            (leased("pending", 0, false), 2),
        ]),
        "{rows:?}"
    );
    let in_flight = receiver.requested_ids()[2..].to_vec();
    receiver.stop_hanging();

    // While the leases hold, the next run sends the rest and leaves the four in flight alone; once
    // they lapse, those four are sent again, and only they.
    let next = notifier.drain().await;
    assert_eq!(next.delivered, 2, "{next:?}");
    until_no_lease(&app, Duration::from_secs(15)).await;
    let last = notifier.drain().await;
    assert_eq!(last.delivered, 4, "{last:?}");
    let mut accepted = receiver.accepted_ids();
    accepted.sort();
    let mut all: Vec<String> = ids.iter().map(i64::to_string).collect();
    all.sort();
    assert_eq!(accepted, all, "every delivery accepted once");
    let mut sent_twice: Vec<String> = {
        let requests = receiver.requests.lock().unwrap();
        let mut count: HashMap<String, usize> = HashMap::new();
        for (id, _) in requests.iter() {
            *count.entry(id.clone()).or_default() += 1;
        }
        count
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(id, _)| id)
            .collect()
    };
    sent_twice.sort();
    let mut expected = in_flight;
    expected.sort();
    assert_eq!(
        sent_twice, expected,
        "only the deliveries in flight were sent again"
    );
}

/// A receiver that takes 20 ms over every request, verifying each, and keeps when each ran.
#[derive(Clone, Default)]
struct SlowReceiver {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    bad_signatures: Arc<AtomicUsize>,
}

#[derive(Clone, Debug)]
struct Arrival {
    delivery: String,
    booking: String,
    kind: String,
    started: Instant,
    answered: Instant,
}

async fn receive_slowly(
    State(receiver): State<SlowReceiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let started = Instant::now();
    let sent = headers_of(&headers);
    if verify(SECRET, sent, &body, SystemTime::now(), DEFAULT_TOLERANCE).is_err() {
        receiver.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let payload: Value = serde_json::from_str(&body).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    receiver.arrivals.lock().unwrap().push(Arrival {
        delivery: sent.id.to_owned(),
        booking: payload["booking_id"].as_str().unwrap().to_owned(),
        kind: payload["type"].as_str().unwrap().to_owned(),
        started,
        answered: Instant::now(),
    });
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_thousand_bookings_reach_a_20_ms_receiver_within_20_s_each_once_and_in_order() {
    const BOOKINGS: usize = 3000;
    const WRITERS: usize = 8;
    // Every tenth booking is cancelled straight after: its two events must arrive in order.
    const CANCEL_EVERY: usize = 10;
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(30, 100).await;
    assert_eq!(seats.len(), BOOKINGS);

    let receiver = SlowReceiver::default();
    let hooks = axum::Router::new()
        .route("/hooks/seatbook", post(receive_slowly))
        .with_state(receiver.clone());
    let webhook = webhook(
        serve(hooks, "/hooks/seatbook").await,
        notifier_fn::DEFAULT_TIMEOUT,
    );

    // The bookings, through the SQL the booking API runs, from a few connections at once.
    let booking_started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let db = app.connect().await;
        let mine: Vec<(usize, i64)> = seats
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| i % WRITERS == writer)
            .collect();
        writers.push(tokio::spawn(async move {
            for (i, seat) in mine {
                let row = db
                    .query_one(
                        "SELECT * FROM book($1, ARRAY[$2]::bigint[], $3, 'confirmed', NULL)",
                        &[&event_id, &seat, &format!("fan-{i}")],
                    )
                    .await
                    .unwrap();
                let booking: uuid::Uuid = row.get("booking_id");
                if i % CANCEL_EVERY == 0 {
                    let cancelled = db
                        .query_opt(
                            booking_fn::statements::CANCEL_SQL,
                            &[&booking, &None::<String>],
                        )
                        .await
                        .unwrap();
                    assert!(cancelled.is_some(), "booking {i} cancelled");
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let last_booking = Instant::now();
    let booked_in = last_booking - booking_started;
    let events = app.count("SELECT count(*) FROM outbox").await as usize;
    assert_eq!(events, BOOKINGS + BOOKINGS / CANCEL_EVERY);

    // Then local-api's notifier loop, with local-api's settings when none are set (32 in flight),
    // starting on the whole backlog: its first drain delivers every event, at its own pace.
    let settings = NotifierSettings::from_lookup(|_| None).unwrap();
    assert_eq!(settings.concurrency, 32);
    let db = app.lambda_state().db.clone();
    let notifier = tokio::spawn(async move {
        drain_every(&db, &webhook, settings, LOCAL_PERIOD).await;
    });

    while receiver.arrivals.lock().unwrap().len() < events {
        assert!(
            last_booking.elapsed() < Duration::from_secs(20),
            "{} of {events} delivered 20 s after the last booking",
            receiver.arrivals.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_in = last_booking.elapsed();
    // Anything sent twice would have arrived by now too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    notifier.abort();
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);

    // Each once: as many arrivals as events, each delivery id once, and every row delivered.
    assert_eq!(arrivals.len(), events);
    let distinct: HashSet<&str> = arrivals.iter().map(|a| a.delivery.as_str()).collect();
    assert_eq!(distinct.len(), events, "no delivery id twice");
    let delivered = app
        .count("SELECT count(*) FROM outbox WHERE status = 'delivered'")
        .await;
    assert_eq!(delivered as usize, events);

    // In order per booking, one at a time: a cancellation starts only once its confirmation
    // has been answered.
    let mut by_booking: HashMap<&str, Vec<&Arrival>> = HashMap::new();
    for arrival in &arrivals {
        by_booking
            .entry(&arrival.booking)
            .or_default()
            .push(arrival);
    }
    assert_eq!(by_booking.len(), BOOKINGS);
    let mut pairs = 0;
    for (booking, mut seen) in by_booking {
        seen.sort_by_key(|a| a.started);
        let kinds: Vec<&str> = seen.iter().map(|a| a.kind.as_str()).collect();
        match kinds[..] {
            ["booking.confirmed"] => {}
            ["booking.confirmed", "booking.cancelled"] => {
                assert!(
                    seen[1].started >= seen[0].answered,
                    "{booking}: the cancellation was sent before its confirmation was answered"
                );
                pairs += 1;
            }
            _ => panic!("{booking}: {kinds:?}"),
        }
    }
    assert_eq!(pairs, BOOKINGS / CANCEL_EVERY);

    // Throughput: from the first request to the last answer.
    let from = arrivals.iter().map(|a| a.started).min().unwrap();
    let to = arrivals.iter().map(|a| a.answered).max().unwrap();
    let rate = events as f64 / (to - from).as_secs_f64();
    eprintln!(
        "webhook throughput: {events} deliveries ({BOOKINGS} bookings, {} of them cancelled, booked \
         in {:.1} s) to a receiver taking 20 ms each, 32 in flight: all in {:.1} s after the last \
         booking; {:.2} s from the first request to the last answer: {rate:.0} deliveries/s",
        BOOKINGS / CANCEL_EVERY,
        booked_in.as_secs_f64(),
        all_in.as_secs_f64(),
        (to - from).as_secs_f64()
    );
}
