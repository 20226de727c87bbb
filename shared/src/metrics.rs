//! CloudWatch metrics as Embedded Metric Format (EMF): one JSON line on stdout, which CloudWatch
//! Logs turns into a metric with no API call and nothing to flush before Lambda freezes the
//! process. The alarms in `template.yaml` watch these; the names here and there must agree.
//!
//! Lines are written only where logs are JSON (`LOG_FORMAT=json`, as deployed): a local server
//! under load with Redis stopped should not print a metric per request.

use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace of every metric this service publishes.
pub const NAMESPACE: &str = "Seatbook";

/// A Redis call that failed or was skipped because Redis just failed; the request was served
/// from PostgreSQL. Dimension `Service` = `api`.
pub const REDIS_UNAVAILABLE: Metric = Metric {
    service: "api",
    name: "RedisUnavailable",
};

/// An invalidation (a booking's generation bump) that could not be delivered to Redis within its
/// retries; the environment owes it and delivers it when Redis answers again. Dimension `Service`
/// = `api`.
pub const CACHE_INVALIDATION_FAILED: Metric = Metric {
    service: "api",
    name: "CacheInvalidationFailed",
};

/// Confirmations whose delivery retries are spent (outbox rows `dead`). Dimension `Service` =
/// `notifier`.
pub const OUTBOX_DEAD: Metric = Metric {
    service: "notifier",
    name: "OutboxDead",
};

/// The business figures of an on-sale, summed in the process (see [`count`]). Dimension
/// `Service` = `api`.
pub const BOOKINGS_CONFIRMED: Metric = api("BookingsConfirmed");
pub const HOLDS_PLACED: Metric = api("HoldsPlaced");
/// Requests refused because a seat was taken (409), from PostgreSQL or from the taken-seat marks.
pub const BOOKING_CONFLICTS: Metric = api("BookingConflicts");
/// Seats of lapsed holds given back (by whoever wanted them next).
pub const HOLD_SEATS_LAPSED: Metric = api("HoldSeatsLapsed");
/// Reads served from a cache (this process's copy or Redis), and reads that loaded or waited.
pub const CACHE_HITS: Metric = api("CacheHits");
pub const CACHE_MISSES: Metric = api("CacheMisses");
/// Execution environments started (written at once, not summed).
pub const COLD_STARTS: Metric = api("ColdStarts");

const fn api(name: &'static str) -> Metric {
    Metric {
        service: "api",
        name,
    }
}

/// How long counts are summed before they are written: one line per environment per this at
/// most, however many requests it serves. Counts of an environment that is shut down before its
/// next request after that are lost (Lambda gives no hook to write them).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

struct Sums {
    since: Option<std::time::Instant>,
    values: std::collections::BTreeMap<&'static str, f64>,
}

static SUMS: std::sync::Mutex<Sums> = std::sync::Mutex::new(Sums {
    since: None,
    values: std::collections::BTreeMap::new(),
});

/// Adds `value` to `metric` (service `api`), and writes every sum in one EMF line when they have
/// been summed for [`FLUSH_EVERY`]. Nothing when publishing is off.
pub fn count(metric: Metric, value: f64) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let due = {
        let mut sums = SUMS.lock().unwrap_or_else(|e| e.into_inner());
        *sums.values.entry(metric.name).or_default() += value;
        let since = *sums.since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= FLUSH_EVERY {
            sums.since = None;
            Some(std::mem::take(&mut sums.values))
        } else {
            None
        }
    };
    if let Some(values) = due {
        let line = sums_line("api", &values, now_ms());
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// One EMF document with several metrics of one service, newline-terminated.
pub fn sums_line(
    service: &str,
    values: &std::collections::BTreeMap<&'static str, f64>,
    timestamp_ms: u64,
) -> String {
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"]],
                "Metrics": values.keys().map(|name| json!({"Name": name, "Unit": "Count"}))
                    .collect::<Vec<_>>(),
            }],
        },
        "Service": service,
    });
    for (name, value) in values {
        document[*name] = json!(value);
    }
    format!("{document}\n")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the cache reports ([`seatbook_cache::Signal`]), as these metrics: hits and misses summed,
/// Redis trouble and failed invalidations written at once (alarms watch them).
pub fn cache_signal(signal: seatbook_cache::Signal) {
    use seatbook_cache::Signal;
    match signal {
        Signal::Hit => count(CACHE_HITS, 1.0),
        Signal::Miss => count(CACHE_MISSES, 1.0),
        Signal::RedisUnavailable => publish(REDIS_UNAVAILABLE, 1.0),
        Signal::InvalidationFailed => publish(CACHE_INVALIDATION_FAILED, 1.0),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    service: &'static str,
    name: &'static str,
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns publishing on (by [`crate::telemetry::init`] when logs are JSON).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Publishes one value of `metric` (unit `Count`), if publishing is on.
pub fn publish(metric: Metric, value: f64) {
    if ENABLED.load(Ordering::Relaxed) {
        let line = emf_line(metric, value, now_ms());
        // One write of the whole line, so concurrent lines never interleave.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// The EMF document for one value, newline-terminated.
pub fn emf_line(metric: Metric, value: f64, timestamp_ms: u64) -> String {
    let document = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Service"]],
                "Metrics": [{"Name": metric.name, "Unit": "Count"}],
            }],
        },
        "Service": metric.service,
        metric.name: value,
    });
    format!("{document}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_line_is_an_emf_document_cloudwatch_accepts() {
        let line = emf_line(OUTBOX_DEAD, 3.0, 1_796_155_200_000);
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_796_155_200_000u64);
        assert_eq!(directive["Namespace"], "Seatbook");
        assert_eq!(directive["Metrics"][0]["Name"], "OutboxDead");
        // Every dimension and metric named in the directive is a top-level member.
        assert_eq!(directive["Dimensions"][0][0], "Service");
        assert_eq!(doc["Service"], "notifier");
        assert_eq!(doc["OutboxDead"], 3.0);
    }

    #[test]
    fn summed_counts_are_one_document_naming_every_metric() {
        let values = [("BookingsConfirmed", 12.0), ("CacheHits", 900.0)]
            .into_iter()
            .collect();
        let line = sums_line("api", &values, 1_796_155_200_000);
        let doc: Value = serde_json::from_str(&line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["BookingsConfirmed", "CacheHits"]);
        assert_eq!(doc["BookingsConfirmed"], 12.0);
        assert_eq!(doc["CacheHits"], 900.0);
        assert_eq!(doc["Service"], "api");
    }
}
