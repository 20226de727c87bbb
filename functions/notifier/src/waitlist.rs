//! The waitlist sweep: seats of holds that lapsed with nobody colliding with them are offered to
//! their event's line (decision 28). A hold lapses lazily (decision 11): whoever wants its seat
//! releases it, and that release offers it to the line first (migrations/V16, `release_lapsed`).
//! A lapsed hold nobody asks about would keep its seats from the line for ever, so this runs on a
//! clock: each scheduled notifier run (deployed, every minute) and local-api's loop (every 5 s).
//!
//! Only events with a live entry, an open sale and a lapsed hold are visited, each in its own
//! short transaction under the event's pick lock (`sweep_waitlist`, SECURITY DEFINER: the
//! notifier's role may run it and reads no booking table itself).

use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use std::time::Duration;
use tokio_postgres::types::Type;

/// The events worth a visit.
pub const EVENTS_TO_SWEEP_SQL: &str = "SELECT waitlist_events_to_sweep()";
/// One event's visit: its lapsed holds released, their seats offered to its line.
pub const SWEEP_SQL: &str = "SELECT released, offers FROM sweep_waitlist($1)";

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Events visited.
    pub events: usize,
    /// Seats of lapsed holds released.
    pub released: i64,
    /// Offers made to waiting entries.
    pub offers: i64,
}

/// Releases the lapsed holds of every event with a line and offers their seats to it. An event
/// that fails (a lock not granted in time, say) is logged and left for the next run.
pub async fn sweep_waitlists(db: &Pool) -> Result<Swept, ApiError> {
    let conn = db.get().await?;
    let events: Vec<i64> = conn
        .query_typed(EVENTS_TO_SWEEP_SQL, &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut swept = Swept::default();
    for event in events {
        match conn
            .query_typed_one(SWEEP_SQL, &[(&event, Type::INT8)])
            .await
        {
            Ok(row) => {
                swept.events += 1;
                swept.released += row.get::<_, i64>("released");
                swept.offers += i64::from(row.get::<_, i32>("offers"));
            }
            Err(err) => tracing::warn!(event, error = %err, "waitlist sweep of an event failed"),
        }
    }
    Ok(swept)
}

/// [`sweep_waitlists`] every `period`, for ever: local-api's stand-in for the schedule.
pub async fn sweep_every(db: &Pool, period: Duration) -> std::convert::Infallible {
    loop {
        match sweep_waitlists(db).await {
            Ok(swept) if swept.released > 0 => tracing::info!(?swept, "waitlist swept"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "waitlist sweep failed"),
        }
        tokio::time::sleep(period).await;
    }
}
