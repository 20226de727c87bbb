//! The real `events` binary under the local Lambda Runtime API, with Redis unreachable: the read
//! is served from PostgreSQL, and every Redis call that failed is published as the
//! `RedisUnavailable` metric (an Embedded Metric Format line) that `RedisUnavailableAlarm` in
//! template.yaml watches.

use lambda_emulator::{Emulator, Function};
use serde_json::Value;
use std::time::Duration;
use test_support::{sample_event, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_redis_down_is_served_and_counted_as_a_cloudwatch_metric() {
    let db = TestDb::migrated("events_redis_down").await;
    // Event 1, as the sample names it.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO venues (name, rows, cols) VALUES ('Fallback Hall', 1, 2);
             INSERT INTO seats (venue_id, row_index, row_label, seat_number)
                 SELECT id, 1, 'A', n FROM venues, generate_series(1, 2) AS n;
             INSERT INTO events (name, starts_at, venue_id, price_cents)
                 SELECT 'Fallback Night', now() + interval '1 day', id, 100 FROM venues;",
        )
        .await
        .unwrap();
    // Nothing listens on port 1.
    let lambda = Emulator::launch(
        Function::new(env!("CARGO_BIN_EXE_events"), "seatbook-events")
            .env("DATABASE_URL", db.url())
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .env("LOG_FORMAT", "json"),
    )
    .await
    .unwrap();
    let sample = sample_event("events-get.json");

    let (status, body) = lambda
        .invoke_http(&sample, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Fallback Night");

    let logs = lambda.logs();
    // The fallback's warning is logged inside the request's span, with API Gateway's request id.
    let request_id = sample["requestContext"]["requestId"].as_str().unwrap();
    let warning = logs
        .lines()
        .find(|line| line.contains("Redis unavailable"))
        .unwrap_or_else(|| panic!("no fallback warning in the logs:\n{logs}"));
    assert!(warning.contains(request_id), "{warning}");
    let metrics: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    // The environment's start is counted too, at once.
    let (cold, metrics): (Vec<Value>, Vec<Value>) = metrics
        .into_iter()
        .partition(|doc| doc.get("ColdStarts").is_some());
    assert_eq!(cold.len(), 1, "one ColdStarts line:\n{logs}");
    assert_eq!(cold[0]["ColdStarts"], 1.0);
    assert!(!metrics.is_empty(), "no EMF line in the logs:\n{logs}");
    for metric in metrics {
        let directive = &metric["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Seatbook");
        assert_eq!(directive["Metrics"][0]["Name"], "RedisUnavailable");
        assert_eq!(metric["Service"], "api");
        assert_eq!(metric["RedisUnavailable"], 1.0);
    }
}
