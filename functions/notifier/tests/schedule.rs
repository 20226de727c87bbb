//! The real `notifier` binary under the local Lambda Runtime API, invoked with the EventBridge
//! sample `events/notifier-schedule.json`, delivering to a webhook receiver served by axum on
//! loopback: what a run publishes, what survives the process being killed mid-batch, how a run
//! keeps to its Lambda deadline, and that it refuses to start without a signing key.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lambda_emulator::test_db::TestDb;
use lambda_emulator::{Emulator, Function, InvokeError};
use notifier_fn::{verify, DEFAULT_TOLERANCE, DELIVERY_HEADER, SIGNATURE_HEADER};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "schedule-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_publishes_the_dead_confirmations_as_a_cloudwatch_metric() {
    let db = TestDb::create("notifier").await;
    migrate(&db).await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO users (id) VALUES ('alice');
             INSERT INTO venues (name, rows, cols) VALUES ('Dead Letter Hall', 1, 2);
             INSERT INTO events (name, starts_at, venue_id, price_cents)
                 SELECT 'Night', now() + interval '1 day', id, 100 FROM venues;
             INSERT INTO bookings (user_id, event_id, status, total_cents)
                 SELECT 'alice', id, 'confirmed', 100 FROM events;
             INSERT INTO outbox (booking_id, kind, payload, status, attempts)
                 SELECT id, 'booking.confirmed', '{}'::jsonb, 'dead', 8 FROM bookings
                 UNION ALL SELECT id, 'booking.confirmed', '{}'::jsonb, 'dead', 8 FROM bookings;",
        )
        .await
        .unwrap();
    let lambda = Emulator::launch(notifier(&db)).await.unwrap();

    let answer = lambda
        .invoke(&schedule(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answer["dead_letters"], 2, "{answer}");

    let logs = lambda.logs();
    let metric = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|doc| doc.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no EMF line in the logs:\n{logs}"));
    let directive = &metric["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Seatbook");
    assert_eq!(directive["Metrics"][0]["Name"], "OutboxDead");
    assert_eq!(metric["Service"], "notifier");
    assert_eq!(metric["OutboxDead"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_killed_mid_batch_keeps_what_it_delivered_and_resends_only_the_delivery_in_flight(
) {
    let db = TestDb::create("notifier_killed").await;
    migrate(&db).await;
    let ids = seed_deliveries(&db, 5).await;
    let receiver = Receiver::hanging_after(2);
    let url = receiver.serve().await;
    let function = || {
        notifier(&db)
            .env("WEBHOOK_URL", &url)
            .env("WEBHOOK_SECRET", SECRET)
            .env("WEBHOOK_TIMEOUT_SECONDS", "5")
            .env("OUTBOX_LEASE_SECONDS", "8")
    };

    // The third delivery hangs at the receiver, and the execution environment dies under it.
    let lambda = Emulator::launch(function()).await.unwrap();
    let event = schedule();
    tokio::select! {
        answer = lambda.invoke(&event, Duration::from_secs(50)) => {
            panic!("the run ended before it was killed: {answer:?}")
        }
        _ = receiver.hanging.notified() => {}
    }
    let pid = lambda.pid();
    drop(lambda); // SIGKILL
    wait_for_exit(pid).await;

    let rows = outbox_rows(&db).await;
    assert_eq!(
        rows,
        vec![
            ("delivered".to_owned(), 1, false),
            ("delivered".to_owned(), 1, false),
            ("pending".to_owned(), 1, true),
            ("pending".to_owned(), 0, false),
            ("pending".to_owned(), 0, false),
        ],
        "what was delivered is recorded; the delivery in flight is leased"
    );
    receiver.stop_hanging();

    // A new execution environment, while the lease holds: the rest, not the one in flight.
    let lambda = Emulator::launch(function()).await.unwrap();
    let answer = lambda
        .invoke(&schedule(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        (answer["delivered"].as_u64(), answer["retried"].as_u64()),
        (Some(2), Some(0)),
        "{answer}"
    );
    assert_eq!(receiver.accepted(), [ids[0], ids[1], ids[3], ids[4]]);

    // Once the lease lapses, the delivery that was in flight is sent again.
    let lapse = Instant::now();
    let client = db.client().await;
    while client
        .query_one(
            "SELECT locked_until > now() FROM outbox WHERE id = $1",
            &[&ids[2]],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            lapse.elapsed() < Duration::from_secs(15),
            "the lease lapses"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = lambda
        .invoke(&schedule(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answer["delivered"], 1, "{answer}");
    assert_eq!(
        receiver.accepted(),
        [ids[0], ids[1], ids[3], ids[4], ids[2]]
    );
    assert_eq!(
        receiver.requests(),
        [ids[0], ids[1], ids[2], ids[3], ids[4], ids[2]],
        "nothing delivered was sent again"
    );
    let row = client
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_hanging_receiver_answers_before_its_lambda_deadline_with_every_attempt_recorded(
) {
    let db = TestDb::create("notifier_deadline").await;
    migrate(&db).await;
    seed_deliveries(&db, 5).await;
    let receiver = Receiver::hanging_after(0);
    let url = receiver.serve().await;
    let lambda = Emulator::launch(
        notifier(&db)
            .env("WEBHOOK_URL", &url)
            .env("WEBHOOK_SECRET", SECRET)
            .env("WEBHOOK_TIMEOUT_SECONDS", "1"),
    )
    .await
    .unwrap();
    lambda.wait_for_init(Duration::from_secs(30)).await.unwrap();

    // Six seconds to the deadline: it stops claiming once a delivery (1 s) and its record could
    // not be done with two seconds still left for housekeeping and the answer.
    let answer = lambda
        .invoke(&schedule(), Duration::from_secs(6))
        .await
        .expect("an answer before the deadline");
    assert_eq!(answer["out_of_time"], true, "{answer}");
    assert_eq!(answer["delivered"], 0, "{answer}");
    let retried = answer["retried"].as_u64().unwrap();
    assert!((1..=4).contains(&retried), "{answer}");

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT attempts, status, locked_until IS NULL, next_attempt_at > now(), last_error
             FROM outbox ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let tried: Vec<_> = rows.iter().filter(|r| r.get::<_, i32>(0) > 0).collect();
    assert_eq!(tried.len() as u64, retried, "every attempt is recorded");
    for row in tried {
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(row.get::<_, String>(1), "pending");
        assert!(row.get::<_, bool>(2), "no lease left behind");
        assert!(row.get::<_, bool>(3), "retried after a back-off");
        assert!(row.get::<_, String>(4).contains("no answer within"));
    }
}

#[tokio::test]
async fn a_webhook_url_without_a_signing_key_fails_the_start_with_a_clear_error() {
    for secret in [None, Some(""), Some("   ")] {
        let mut function = Function::new(env!("CARGO_BIN_EXE_notifier"), "seatbook-notifier")
            .env(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            )
            .env("REDIS_URL", "")
            .env("LOG_FORMAT", "json")
            .env("WEBHOOK_URL", "http://127.0.0.1:9/hook");
        if let Some(secret) = secret {
            function = function.env("WEBHOOK_SECRET", secret);
        }
        let lambda = Emulator::launch(function).await.unwrap();
        match lambda.invoke(&schedule(), Duration::from_secs(30)).await {
            Err(InvokeError::Exited { logs, .. }) => {
                assert!(logs.contains("cold start failed"), "{secret:?}: {logs}");
                assert!(
                    logs.contains("the webhook signing key is missing or empty")
                        && logs.contains("WEBHOOK_SECRET_ARN"),
                    "{secret:?}: {logs}"
                );
            }
            other => panic!("{secret:?}: the notifier started without a key: {other:?}"),
        }
    }
}

/// A webhook receiver that verifies every signature and can be told to hang.
#[derive(Clone, Default)]
struct Receiver {
    /// Delivery ids of every well-signed request, in arrival order.
    requests: Arc<Mutex<Vec<i64>>>,
    accepted: Arc<Mutex<Vec<i64>>>,
    /// `Some(n)`: every request after the first `n` hangs.
    hang_after: Arc<Mutex<Option<usize>>>,
    hanging: Arc<tokio::sync::Notify>,
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

    fn requests(&self) -> Vec<i64> {
        self.requests.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<i64> {
        self.accepted.lock().unwrap().clone()
    }

    /// Serves the receiver on a loopback port; its URL.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/seatbook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/seatbook", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    if verify(
        SECRET,
        signature,
        &body,
        SystemTime::now(),
        DEFAULT_TOLERANCE,
    )
    .is_err()
    {
        return StatusCode::UNAUTHORIZED;
    }
    let delivery: i64 = headers[DELIVERY_HEADER].to_str().unwrap().parse().unwrap();
    let ordinal = {
        let mut requests = receiver.requests.lock().unwrap();
        requests.push(delivery);
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
    receiver.accepted.lock().unwrap().push(delivery);
    StatusCode::NO_CONTENT
}

/// The notifier function over `db`, without a webhook unless the caller adds one.
fn notifier(db: &TestDb) -> Function {
    Function::new(env!("CARGO_BIN_EXE_notifier"), "seatbook-notifier")
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", "")
        .env("LOG_FORMAT", "json")
}

fn schedule() -> Value {
    serde_json::from_str(include_str!("../../../events/notifier-schedule.json")).unwrap()
}

/// `n` confirmed bookings, each with its pending confirmation; the outbox ids in order.
async fn seed_deliveries(db: &TestDb, n: i64) -> Vec<i64> {
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO users (id) VALUES ('alice');
             INSERT INTO venues (name, rows, cols) VALUES ('Delivery Hall', 1, {n});
             INSERT INTO events (name, starts_at, venue_id, price_cents)
                 SELECT 'Night', now() + interval '1 day', id, 100 FROM venues;
             INSERT INTO bookings (user_id, event_id, status, total_cents)
                 SELECT 'alice', id, 'confirmed', 100 FROM events, generate_series(1, {n});
             INSERT INTO outbox (booking_id, kind, payload)
                 SELECT id, 'booking.confirmed',
                        json_build_object('type', 'booking.confirmed', 'booking_id', id)
                 FROM bookings ORDER BY created_at, id;"
        ))
        .await
        .unwrap();
    client
        .query("SELECT id FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Each outbox row as (status, attempts, leased now), in id order.
async fn outbox_rows(db: &TestDb) -> Vec<(String, i32, bool)> {
    db.client()
        .await
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

/// Waits until process `pid` is gone (or a zombie: it runs no more code either way).
async fn wait_for_exit(pid: u32) {
    let started = Instant::now();
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') =>
            {
                return
            }
            Ok(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "process {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn migrate(db: &TestDb) {
    let url = db.url();
    let settings = seatbook_core::config::Settings::from_lookup(|k| {
        (k == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap();
    let pool = seatbook_core::db::pool(&settings.database, 1).unwrap();
    seatbook_core::db::migrate(&pool).await.expect("migrate");
}
