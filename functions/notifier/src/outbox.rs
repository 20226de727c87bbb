//! Draining the outbox.

use crate::webhook::Webhook;
use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use std::time::{Duration, Instant};
use tokio_postgres::types::Type;

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts before a delivery is declared dead.
    pub max_attempts: i32,
    /// Wait after the first failure; doubled after each further one, up to an hour.
    pub first_backoff: Duration,
    /// Rows claimed per transaction.
    pub batch: i64,
    /// A run stops claiming new batches after this long (a scheduled Lambda has a timeout).
    pub budget: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 8,
            first_backoff: Duration::from_secs(30),
            batch: 20,
            budget: Duration::from_secs(40),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
}

/// Claims the due rows nobody else holds (`SKIP LOCKED`); they stay locked while being sent.
const CLAIM_SQL: &str = "\
SELECT id, payload::text, attempts FROM outbox
WHERE status = 'pending' AND next_attempt_at <= now()
ORDER BY next_attempt_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED";

const DELIVERED_SQL: &str = "\
UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = $1";

const FAILED_SQL: &str = "\
UPDATE outbox SET attempts = attempts + 1, last_error = $2,
       status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => $4)
WHERE id = $1";

/// Delivers every due confirmation, batch by batch, until none is due or the budget is spent.
pub async fn drain(db: &Pool, webhook: &Webhook, policy: Policy) -> Result<DrainReport, ApiError> {
    let started = Instant::now();
    let mut report = DrainReport::default();
    while started.elapsed() < policy.budget {
        let mut conn = db.get().await?;
        let tx = conn.transaction().await?;
        let rows = tx
            .query_typed(CLAIM_SQL, &[(&policy.batch, Type::INT8)])
            .await?;
        for row in &rows {
            let (id, payload, attempts): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
            match webhook.send(id, &payload).await {
                Ok(()) => {
                    tx.query_typed(DELIVERED_SQL, &[(&id, Type::INT8)]).await?;
                    report.delivered += 1;
                }
                Err(error) => {
                    let attempt = attempts + 1;
                    let dead = attempt >= policy.max_attempts;
                    let wait = backoff(policy.first_backoff, attempt).as_secs_f64();
                    tx.query_typed(
                        FAILED_SQL,
                        &[
                            (&id, Type::INT8),
                            (&error, Type::TEXT),
                            (&dead, Type::BOOL),
                            (&wait, Type::FLOAT8),
                        ],
                    )
                    .await?;
                    if dead {
                        tracing::error!(delivery = id, attempts = attempt, %error, "confirmation delivery is dead");
                        report.dead += 1;
                    } else {
                        tracing::warn!(delivery = id, attempts = attempt, %error, "confirmation delivery failed; will retry");
                        report.retried += 1;
                    }
                }
            }
        }
        tx.commit().await?;
        if (rows.len() as i64) < policy.batch {
            break;
        }
    }
    Ok(report)
}

fn backoff(first: Duration, attempt: i32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).clamp(0, 16) as u32);
    first.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// How many confirmations are dead: their retries are spent and only a person can deliver them
/// now (the `OutboxDead` metric the notifier publishes, which `OutboxDeadLettersAlarm` watches).
pub async fn dead_letters(db: &Pool) -> Result<i64, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_one("SELECT count(*) FROM outbox WHERE status = 'dead'", &[])
        .await?;
    Ok(row.get(0))
}

/// Deletes idempotency keys past their retention (kept 48 hours; the promise is 24).
pub async fn housekeeping(db: &Pool) -> Result<u64, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_one(
            "WITH gone AS (
                 DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'
                 RETURNING 1
             )
             SELECT count(*) FROM gone",
            &[],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_and_is_capped() {
        let first = Duration::from_secs(30);
        assert_eq!(backoff(first, 1), Duration::from_secs(30));
        assert_eq!(backoff(first, 2), Duration::from_secs(60));
        assert_eq!(backoff(first, 4), Duration::from_secs(240));
        assert_eq!(backoff(first, 30), Duration::from_secs(3600));
    }
}
