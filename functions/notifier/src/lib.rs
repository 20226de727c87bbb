//! The notifier function: delivers booking events from the outbox to a webhook.
//!
//! An event (`booking.confirmed`, `booking.cancelled`) is written to `outbox` in the same
//! statement as the change it announces, so it can never be lost with a frozen Lambda. This
//! function runs on a schedule (EventBridge) and delivers one row at a time: it claims the row
//! under a lease in a short statement, POSTs it signed with HMAC-SHA256 outside any transaction,
//! and records the outcome in another short statement: delivered, retried later with back-off, or
//! `dead` after too many failures. Every outcome is durable once known, so a run killed mid-batch
//! resends only the delivery that was in flight, after its lease lapses. Delivery is at least
//! once; receivers deduplicate on the `Seatbook-Delivery` header and check the signature with
//! [`verify`] (docs/webhooks.md). A booking's events are delivered in order. Delivered rows are
//! purged after a retention period ([`housekeeping_with`]); dead ones are kept.

mod outbox;
mod settings;
mod verify;
mod webhook;

pub use outbox::{
    dead_letters, drain, drain_until, housekeeping, housekeeping_with, DrainReport, Housekeeping,
    Policy, RECORD_MARGIN,
};
pub use settings::{NotifierSettings, DEFAULT_RETENTION};
pub use verify::{verify, VerifyError, DEFAULT_TOLERANCE};
pub use webhook::{
    signature, Webhook, WebhookError, WebhookSettings, DEFAULT_TIMEOUT, DELIVERY_HEADER,
    SIGNATURE_HEADER,
};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
