//! `cargo run --release --bin local-api`: every function on http://127.0.0.1:3000 (port from
//! `PORT`), dev identity on (`SEATBOOK_DEV_IDENTITY=false` turns it off), migrations applied at
//! start. With dev identity on it listens only on loopback unless
//! `LOCAL_API_ALLOW_REMOTE_DEV_IDENTITY=true`. With `WEBHOOK_URL` and `WEBHOOK_SECRET` set
//! (a URL without a secret fails the start), booking events are delivered from the outbox every
//! 5 seconds, as the scheduled notifier function does in AWS (docs/webhooks.md). Every 5 seconds
//! too, with or without a webhook, seats of lapsed holds are offered to their event's waitlist.
//! `--migrate-only` applies the migrations and exits (for `scripts/sam-local`, whose functions
//! need a migrated database).

/// mimalloc: glibc's allocator was 15 % of the server's CPU serving cached reads from many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use seatbook::DevIdentity;
use seatbook_core::config::{flag, Settings, DEV_IDENTITY_VAR};
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
    let migrate_only = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--migrate-only") => true,
        Some(other) => {
            return Err(format!("unknown argument {other:?} (only --migrate-only)").into())
        }
    };
    // The local server is a development tool: identity comes from x-dev-user / x-dev-groups
    // unless it is switched off.
    let dev_identity = match std::env::var(DEV_IDENTITY_VAR).ok() {
        Some(raw) if !flag(Some(&raw), DEV_IDENTITY_VAR)? && !raw.trim().is_empty() => {
            DevIdentity::Off
        }
        _ => DevIdentity::On,
    };
    let port: u16 = match std::env::var("PORT") {
        Ok(raw) => raw
            .parse()
            .map_err(|_| format!("PORT must be a port number, got {raw:?}"))?,
        Err(_) => 3000,
    };
    let host: std::net::IpAddr = std::env::var("HOST")
        .unwrap_or_else(|_| "127.0.0.1".to_owned())
        .parse()
        .map_err(|_| "HOST must be an IP address, e.g. 127.0.0.1")?;
    let allow_remote = flag(
        std::env::var(seatbook::ALLOW_REMOTE_VAR).ok().as_deref(),
        seatbook::ALLOW_REMOTE_VAR,
    )?;
    seatbook::check_bind(host, dev_identity, allow_remote)?;

    let settings = Settings::from_env()?;
    seatbook_core::telemetry::init(settings.json_logs);
    if dev_identity == DevIdentity::On {
        tracing::warn!(
            "DEV IDENTITY IS ON: callers are trusted by their x-dev-user / x-dev-groups headers"
        );
    }
    let state = seatbook::prepare(&settings).await?;
    if migrate_only {
        tracing::info!("migrations applied; --migrate-only, so not serving");
        return Ok(());
    }
    let listener = seatbook::listen(SocketAddr::new(host, port))?;
    tracing::info!(
        "serving every function on http://{}",
        listener.local_addr()?
    );
    // Seats of lapsed holds go to the waitlists within 5 s, as the scheduled notifier does it
    // deployed within a minute (decision 28); with or without a webhook to deliver to.
    let db = state.db.clone();
    tokio::spawn(async move { notifier_fn::sweep_every(&db, notifier_fn::LOCAL_PERIOD).await });
    // A WEBHOOK_URL without WEBHOOK_SECRET fails the start, as it does the notifier's.
    if let Some(webhook) = notifier_fn::WebhookSettings::from_env()? {
        // Deployed, EventBridge runs the notifier on a schedule; locally this loop stands in.
        let notifier = notifier_fn::NotifierSettings::from_env()?;
        let webhook = notifier_fn::Webhook::with_timeout(webhook, notifier.delivery_timeout)?;
        let db = state.db.clone();
        tokio::spawn(async move {
            notifier_fn::drain_every(&db, &webhook, notifier, notifier_fn::LOCAL_PERIOD).await
        });
    }
    axum::serve(listener, seatbook::app(state, dev_identity))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
