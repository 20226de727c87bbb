//! `cargo run --release --bin local-api`: every function on http://127.0.0.1:3000 (port from
//! `PORT`), dev identity on, migrations applied at start. With `WEBHOOK_URL` (and `WEBHOOK_SECRET`)
//! set, booking confirmations are delivered from the outbox every 5 seconds, as the scheduled
//! notifier function does in AWS.

use seatbook_core::config::Settings;
use std::net::SocketAddr;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("local-api: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings::from_env()?;
    // The local server is a development tool: identity comes from x-dev-user / x-dev-groups.
    settings.dev_identity = true;
    seatbook_core::telemetry::init(settings.json_logs);
    let state = seatbook::prepare(&settings).await?;
    let port: u16 = match std::env::var("PORT") {
        Ok(raw) => raw
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {raw:?}"))?,
        Err(_) => 3000,
    };
    let host: std::net::IpAddr = std::env::var("HOST")
        .unwrap_or_else(|_| "127.0.0.1".to_owned())
        .parse()?;
    let listener = seatbook::listen(SocketAddr::new(host, port))?;
    tracing::info!(
        "serving every function on http://{}",
        listener.local_addr()?
    );
    if let Some(webhook) = notifier_fn::WebhookSettings::from_env() {
        // Deployed, EventBridge runs the notifier on a schedule; locally this loop stands in.
        let webhook = notifier_fn::Webhook::new(webhook)?;
        let db = state.db.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = notifier_fn::drain(&db, &webhook, Default::default()).await {
                    tracing::warn!(error = %err, "outbox drain failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
    }
    axum::serve(listener, seatbook::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
