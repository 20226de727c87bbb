//! The real `notifier` binary under the local Lambda Runtime API, invoked with the EventBridge
//! sample `events/notifier-schedule.json`: each run publishes the dead-letter count as an
//! Embedded Metric Format line, the metric `OutboxDeadLettersAlarm` in template.yaml watches.

use lambda_emulator::test_db::TestDb;
use lambda_emulator::{Emulator, Function};
use serde_json::Value;
use std::time::Duration;

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
    let lambda = Emulator::launch(
        Function::new(env!("CARGO_BIN_EXE_notifier"), "seatbook-notifier")
            .env("DATABASE_URL", db.url())
            .env("REDIS_URL", "")
            .env("LOG_FORMAT", "json"),
    )
    .await
    .unwrap();
    let schedule: Value =
        serde_json::from_str(include_str!("../../../events/notifier-schedule.json")).unwrap();

    let answer = lambda
        .invoke(&schedule, Duration::from_secs(30))
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

async fn migrate(db: &TestDb) {
    let url = db.url();
    let settings = seatbook_core::config::Settings::from_lookup(|k| {
        (k == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap();
    let pool = seatbook_core::db::pool(&settings.database, 1).unwrap();
    seatbook_core::db::migrate(&pool).await.expect("migrate");
}
