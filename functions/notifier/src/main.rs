//! Runs on an EventBridge schedule: drains the outbox until the invocation's deadline is near,
//! then sweeps the waitlists (lapsed holds' seats offered to the line) and does housekeeping.

use lambda_runtime::{service_fn, LambdaEvent};
use notifier_fn::{
    dead_letters, drain_deadline, drain_until, housekeeping_with, sweep_waitlists,
    NotifierSettings, Webhook, WebhookSettings,
};
use seatbook_core::config::Settings;
use seatbook_core::lambda::LAMBDA_POOL_SIZE;
use seatbook_core::AppState;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    seatbook_core::telemetry::init(settings.json_logs);
    let notifier = NotifierSettings::from_env().map_err(cold_start_failed)?;
    let state = AppState::from_settings(&settings, LAMBDA_POOL_SIZE)?;
    // A URL without a signing key fails the start: nothing is ever sent unsigned.
    let webhook = WebhookSettings::from_env_or_secrets_manager()
        .await
        .and_then(|settings| {
            settings
                .map(|s| Webhook::with_timeout(s, notifier.delivery_timeout))
                .transpose()
        })
        .map_err(cold_start_failed)?;
    let (state, webhook, policy) = (&state, &webhook, notifier.policy());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // First, so that the offers it makes are delivered by this run's drain. A failure is
        // logged and leaves the deliveries alone: the next run sweeps again.
        let waitlists = sweep_waitlists(&state.db)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "waitlist sweep failed"))
            .unwrap_or_default();
        let report = match webhook {
            Some(webhook) => {
                let deadline = drain_deadline(event.context.deadline, std::time::SystemTime::now());
                Some(drain_until(&state.db, webhook, policy, deadline).await?)
            }
            None => {
                tracing::warn!("WEBHOOK_URL is not set: booking events stay in the outbox");
                None
            }
        };
        let swept = housekeeping_with(&state.db, notifier.retention).await?;
        // Published every run, zero included, so the alarm sees the count fall back once someone
        // has dealt with the dead rows.
        let dead = dead_letters(&state.db).await?;
        seatbook_core::metrics::publish(seatbook_core::metrics::OUTBOX_DEAD, dead as f64);
        tracing::info!(?report, ?waitlists, ?swept, dead, "notifier run complete");
        Ok::<_, lambda_runtime::Error>(json!({
            "delivered": report.as_ref().map(|r| r.delivered),
            "retried": report.as_ref().map(|r| r.retried),
            "dead": report.as_ref().map(|r| r.dead),
            "out_of_time": report.as_ref().map(|r| r.out_of_time),
            "idempotency_keys_deleted": swept.idempotency_keys_deleted,
            "outbox_purged": swept.outbox_purged,
            "dead_letters": dead,
            "waitlist_seats_released": waitlists.released,
            "waitlist_offers": waitlists.offers,
        }))
    }))
    .await
}

/// Logs why the start failed, and returns it as the error the process exits with (its message,
/// not its debug form).
fn cold_start_failed(err: impl std::fmt::Display) -> lambda_runtime::Error {
    tracing::error!(error = %err, "cold start failed");
    err.to_string().into()
}
