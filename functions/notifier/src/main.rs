//! Runs on an EventBridge schedule: drains the outbox, then housekeeping.

use lambda_runtime::{service_fn, LambdaEvent};
use notifier_fn::{dead_letters, drain, housekeeping, Policy, Webhook, WebhookSettings};
use seatbook_core::config::Settings;
use seatbook_core::lambda::LAMBDA_POOL_SIZE;
use seatbook_core::AppState;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    seatbook_core::telemetry::init(settings.json_logs);
    let state = AppState::from_settings(&settings, LAMBDA_POOL_SIZE)?;
    let webhook = WebhookSettings::from_env_or_secrets_manager()
        .await?
        .map(Webhook::new)
        .transpose()?;
    let (state, webhook) = (&state, &webhook);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let report = match webhook {
            Some(webhook) => Some(drain(&state.db, webhook, Policy::default()).await?),
            None => {
                tracing::warn!("WEBHOOK_URL is not set: confirmations stay in the outbox");
                None
            }
        };
        let keys_deleted = housekeeping(&state.db).await?;
        // Published every run, zero included, so the alarm sees the count fall back once someone
        // has dealt with the dead rows.
        let dead = dead_letters(&state.db).await?;
        seatbook_core::metrics::publish(seatbook_core::metrics::OUTBOX_DEAD, dead as f64);
        tracing::info!(?report, keys_deleted, dead, "notifier run complete");
        Ok::<_, lambda_runtime::Error>(json!({
            "delivered": report.as_ref().map(|r| r.delivered),
            "retried": report.as_ref().map(|r| r.retried),
            "dead": report.as_ref().map(|r| r.dead),
            "idempotency_keys_deleted": keys_deleted,
            "dead_letters": dead,
        }))
    }))
    .await
}
