//! The real `notifier` binary under the local Lambda Runtime API, invoked with the EventBridge
//! sample `events/notifier-schedule.json`, delivering to a webhook receiver served by axum on
//! loopback: what a run publishes, how a run keeps to its Lambda deadline, and that it refuses to
//! start without a signing key. What a drain does with its deliveries (order, retries, a run
//! stopped mid-batch) is tested once, in tests/api/notifier.rs.

use axum::http::{HeaderMap, StatusCode};
use lambda_emulator::{Emulator, Function, InvokeError};
use notifier_fn::{
    verify, Headers, DEFAULT_TOLERANCE, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};
use test_support::{sample_event, TestDb};

const SECRET: &str = "whsec_c2NoZWR1bGUtdGVzdC1zZWNyZXQtb2YtMzItYnl0ZXM=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_publishes_the_dead_confirmations_as_a_cloudwatch_metric() {
    let db = TestDb::create("notifier").await;
    db.migrate().await;
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

    // The answer can come back before the process's log lines have been read: wait for them.
    let waiting = Instant::now();
    let metric = loop {
        let logs = lambda.logs();
        let emf = logs
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|doc| doc.get("_aws").is_some());
        match emf {
            Some(metric) => break metric,
            None if waiting.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => panic!("no EMF line in the logs after 10 s:\n{logs}"),
        }
    };
    let directive = &metric["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Seatbook");
    assert_eq!(directive["Metrics"][0]["Name"], "OutboxDead");
    assert_eq!(metric["Service"], "notifier");
    assert_eq!(metric["OutboxDead"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_hanging_receiver_answers_before_its_lambda_deadline_with_every_attempt_recorded(
) {
    let db = TestDb::create("notifier_deadline").await;
    db.migrate().await;
    seed_deliveries(&db, 5).await;
    let url = serve_a_hanging_receiver().await;
    let lambda = Emulator::launch(
        notifier(&db)
            .env("WEBHOOK_URL", &url)
            .env("WEBHOOK_SECRET", SECRET)
            .env("WEBHOOK_TIMEOUT_SECONDS", "1")
            // One at a time, so the run meets its deadline with deliveries still to claim.
            .env("WEBHOOK_CONCURRENCY", "1"),
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

/// Serves, on a loopback port, a webhook receiver that verifies every signature and then hangs: a
/// well-signed request is answered only after a minute. Its URL.
async fn serve_a_hanging_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/seatbook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hooks/seatbook", axum::routing::post(hang));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn hang(headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers[name].to_str().unwrap();
    let sent = Headers {
        id: header(ID_HEADER),
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
    };
    if verify(SECRET, sent, &body, SystemTime::now(), DEFAULT_TOLERANCE).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    StatusCode::SERVICE_UNAVAILABLE
}

/// The notifier function over `db`, without a webhook unless the caller adds one.
fn notifier(db: &TestDb) -> Function {
    Function::new(env!("CARGO_BIN_EXE_notifier"), "seatbook-notifier")
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", "")
        .env("LOG_FORMAT", "json")
}

fn schedule() -> Value {
    sample_event("notifier-schedule.json")
}

/// `n` confirmed bookings, each with its pending confirmation.
async fn seed_deliveries(db: &TestDb, n: i64) {
    db.client()
        .await
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
}
