//! The notifier function: delivers booking events from the outbox to a webhook.
//!
//! An event (`booking.confirmed`, `booking.cancelled`) is written to `outbox` in the same
//! statement as the change it announces, so it can never be lost with a frozen Lambda. This
//! function runs on a schedule (EventBridge) and delivers up to `WEBHOOK_CONCURRENCY` rows at a
//! time: it claims them under a lease in a short statement, POSTs each signed as Standard Webhooks
//! specify outside any transaction, and records each outcome as soon as it is in: delivered,
//! retried later with back-off, or `dead` after too many failures. Every outcome is durable once
//! known, so a run killed mid-batch resends only the deliveries that were in flight, after their
//! leases lapse. Delivery is at least once; receivers deduplicate on the `webhook-id` header and
//! check the signature with [`verify`] or any Standard Webhooks library (docs/webhooks.md). A
//! booking's events are delivered one at a time, in order. Delivered rows are purged after a
//! retention period ([`housekeeping_with`]); dead ones are kept. Each run also sweeps the
//! waitlists ([`sweep_waitlists`]): seats of lapsed holds are offered to their event's line.

mod outbox;
mod settings;
mod verify;
mod waitlist;
mod webhook;

pub use outbox::{
    dead_letters, drain, drain_until, housekeeping, housekeeping_with, DrainReport, Housekeeping,
    Policy, DEFAULT_CONCURRENCY, RECORD_MARGIN,
};
pub use settings::{NotifierSettings, DEFAULT_RETENTION, MAX_CONCURRENCY};
pub use verify::{signing_key, verify, Headers, VerifyError, DEFAULT_TOLERANCE};
pub use waitlist::{sweep_every, sweep_waitlists, Swept, EVENTS_TO_SWEEP_SQL, SWEEP_SQL};
pub use webhook::{
    signature, Webhook, WebhookError, WebhookSettings, DEFAULT_TIMEOUT, ID_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

use seatbook_core::db::Pool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often `local-api` runs the notifier and the waitlist sweep (deployed, EventBridge runs the
/// notifier, sweep included, once a minute).
pub const LOCAL_PERIOD: Duration = Duration::from_secs(5);

/// The notifier as `local-api` runs it, standing in for the EventBridge schedule: drain, then
/// housekeeping, then wait `period`, for ever. Failures are logged and the loop goes on.
pub async fn drain_every(
    db: &Pool,
    webhook: &Webhook,
    settings: NotifierSettings,
    period: Duration,
) -> std::convert::Infallible {
    loop {
        match drain(db, webhook, settings.policy()).await {
            Ok(report) if report != DrainReport::default() => {
                tracing::info!(?report, "outbox drained");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "outbox drain failed"),
        }
        if let Err(err) = housekeeping_with(db, settings.retention).await {
            tracing::warn!(error = %err, "outbox housekeeping failed");
        }
        tokio::time::sleep(period).await;
    }
}

/// What a scheduled run keeps, after draining, for housekeeping and its answer.
pub const AFTER_DRAIN: Duration = Duration::from_secs(2);

/// The instant a run must stop draining: the invocation's deadline (milliseconds since the
/// epoch, as the Lambda Runtime API gives it) less [`AFTER_DRAIN`].
pub fn drain_deadline(lambda_deadline_ms: u64, now: SystemTime) -> Instant {
    let deadline = UNIX_EPOCH + Duration::from_millis(lambda_deadline_ms);
    let left = deadline.duration_since(now).unwrap_or_default();
    Instant::now() + left.saturating_sub(AFTER_DRAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_drains_until_two_seconds_before_its_lambda_deadline() {
        let now = SystemTime::now();
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = drain_deadline(ms(now + Duration::from_secs(55)), now)
            .saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(53) && left > Duration::from_secs(52),
            "{left:?}"
        );
        let past = drain_deadline(ms(now - Duration::from_secs(1)), now);
        assert_eq!(
            past.saturating_duration_since(Instant::now()),
            Duration::ZERO
        );
    }
}
