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
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = emf_line(metric, value, millis);
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
}
