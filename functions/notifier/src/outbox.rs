//! Draining the outbox, one leased delivery at a time.
//!
//! No transaction is ever held open over an HTTP call. Each delivery is:
//!
//! 1. claimed in one short statement (`CLAIM_SQL`): the first due row nobody holds, whose
//!    booking has no earlier row still pending, gets `attempts + 1` and a lease (`locked_until`);
//! 2. sent, outside any transaction;
//! 3. recorded in another short statement: delivered, or failed with back-off, or `dead`.
//!
//! So every outcome is durable as soon as it is known. A run that is killed mid-delivery leaves
//! only the row in flight pending under its lease; once the lease lapses the next run sends it
//! again (at least once), and its `last_error` says the earlier attempt was interrupted.

use crate::webhook::Webhook;
use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use std::time::{Duration, Instant};
use tokio_postgres::types::Type;

/// Time kept, beyond a delivery's timeout, to record its outcome.
pub const RECORD_MARGIN: Duration = Duration::from_secs(1);

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts before a delivery is declared dead.
    pub max_attempts: i32,
    /// Wait after the first failure; doubled after each further one, up to an hour.
    pub first_backoff: Duration,
    /// How long a claimed delivery is reserved for this run; another run may take it once this
    /// has passed. Never less than the webhook's timeout plus [`RECORD_MARGIN`].
    pub lease: Duration,
    /// For [`drain`]: the run stops claiming when what is left of this could not cover another
    /// delivery. (Deployed, the notifier uses the Lambda deadline instead: [`drain_until`].)
    pub budget: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 8,
            first_backoff: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            budget: Duration::from_secs(40),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
    /// The run stopped claiming because the time left could not cover another delivery.
    pub out_of_time: bool,
}

/// Claims the next due delivery and leases it. Due: pending, its retry time come, not leased by a
/// live run, not tried already in this run (`$2`), and no earlier delivery of its booking pending,
/// so a booking's events reach the receiver in the order they happened (a dead one no longer
/// holds the later ones back). `SKIP LOCKED` keeps concurrent runs off each other's candidate;
/// the lease is checked again by the UPDATE, which decides. A lease that lapsed is noted in
/// `last_error`: the run that held it stopped before recording an outcome.
const CLAIM_SQL: &str = "\
WITH due AS (
    SELECT o.id FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= now()
      AND (o.locked_until IS NULL OR o.locked_until <= now())
      AND o.id <> ALL ($2)
      AND NOT EXISTS (
          SELECT 1 FROM outbox earlier
          WHERE earlier.booking_id = o.booking_id AND earlier.id < o.id
            AND earlier.status = 'pending')
    ORDER BY o.next_attempt_at, o.id
    LIMIT 1
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox o
SET attempts = o.attempts + 1,
    locked_until = now() + make_interval(secs => $1),
    last_error = CASE WHEN o.locked_until IS NULL THEN o.last_error
        ELSE 'attempt ' || o.attempts || ' was interrupted: the notifier stopped before recording its outcome'
    END
FROM due
WHERE o.id = due.id AND o.status = 'pending'
  AND (o.locked_until IS NULL OR o.locked_until <= now())
RETURNING o.id, o.payload::text, o.attempts";

/// A success is recorded whoever holds the lease now: the receiver has it.
const DELIVERED_SQL: &str = "\
UPDATE outbox SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_error = NULL
WHERE id = $1 AND status = 'pending'";

/// A failure is recorded only by the attempt that still holds the row (`attempts` unchanged
/// since its claim); a later claim records its own.
const FAILED_SQL: &str = "\
UPDATE outbox SET last_error = $3, locked_until = NULL,
       status = CASE WHEN $4 THEN 'dead' ELSE 'pending' END,
       next_attempt_at = now() + make_interval(secs => $5)
WHERE id = $1 AND attempts = $2 AND status = 'pending'
RETURNING id";

/// A delivery whose every attempt is spent (the last one interrupted) is dead without another
/// send; the claim that found it does not count as an attempt.
const EXHAUSTED_SQL: &str = "\
UPDATE outbox SET status = 'dead', attempts = attempts - 1, locked_until = NULL
WHERE id = $1 AND attempts = $2 AND status = 'pending'";

/// Delivers what is due until nothing is or `policy.budget` could not cover another delivery.
pub async fn drain(db: &Pool, webhook: &Webhook, policy: Policy) -> Result<DrainReport, ApiError> {
    drain_until(db, webhook, policy, Instant::now() + policy.budget).await
}

/// Delivers what is due, each delivery at most once per run, and claims no delivery that could
/// not be sent and recorded before `deadline` (a Lambda's deadline, less what the run needs after).
pub async fn drain_until(
    db: &Pool,
    webhook: &Webhook,
    policy: Policy,
    deadline: Instant,
) -> Result<DrainReport, ApiError> {
    let needed = webhook.timeout() + RECORD_MARGIN;
    let lease = policy.lease.max(needed).as_secs_f64();
    let mut tried: Vec<i64> = Vec::new();
    let mut report = DrainReport::default();
    loop {
        if deadline.saturating_duration_since(Instant::now()) < needed {
            report.out_of_time = true;
            break;
        }
        // The connection goes back to the pool before the send and is taken again after it.
        let claimed = db
            .get()
            .await?
            .query_typed_opt(
                CLAIM_SQL,
                &[(&lease, Type::FLOAT8), (&tried, Type::INT8_ARRAY)],
            )
            .await?;
        let Some(row) = claimed else {
            break;
        };
        let (id, payload, attempt): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
        tried.push(id);
        if attempt > policy.max_attempts {
            let conn = db.get().await?;
            conn.query_typed(EXHAUSTED_SQL, &[(&id, Type::INT8), (&attempt, Type::INT4)])
                .await?;
            tracing::error!(
                delivery = id,
                "delivery is dead: its last attempt was interrupted"
            );
            report.dead += 1;
            continue;
        }
        let outcome = webhook.send(id, &payload).await;
        let conn = db.get().await?;
        match outcome {
            Ok(()) => {
                conn.query_typed(DELIVERED_SQL, &[(&id, Type::INT8)])
                    .await?;
                report.delivered += 1;
            }
            Err(error) => {
                let dead = attempt >= policy.max_attempts;
                let wait = backoff(policy.first_backoff, attempt).as_secs_f64();
                let recorded = conn
                    .query_typed(
                        FAILED_SQL,
                        &[
                            (&id, Type::INT8),
                            (&attempt, Type::INT4),
                            (&error, Type::TEXT),
                            (&dead, Type::BOOL),
                            (&wait, Type::FLOAT8),
                        ],
                    )
                    .await?;
                if recorded.is_empty() {
                    // This run's lease lapsed and a later claim holds the row: its outcome wins.
                    tracing::warn!(delivery = id, attempts = attempt, %error, "delivery failed after its lease lapsed");
                } else if dead {
                    tracing::error!(delivery = id, attempts = attempt, %error, "delivery is dead");
                    report.dead += 1;
                } else {
                    tracing::warn!(delivery = id, attempts = attempt, %error, "delivery failed; will retry");
                    report.retried += 1;
                }
            }
        }
    }
    Ok(report)
}

fn backoff(first: Duration, attempt: i32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).clamp(0, 16) as u32);
    first.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// How many deliveries are dead: their retries are spent and only a person can deliver them
/// now (the `OutboxDead` metric the notifier publishes, which `OutboxDeadLettersAlarm` watches).
pub async fn dead_letters(db: &Pool) -> Result<i64, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_one("SELECT count(*) FROM outbox WHERE status = 'dead'", &[])
        .await?;
    Ok(row.get(0))
}

/// What one housekeeping pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    pub idempotency_keys_deleted: u64,
    /// Delivered outbox rows past their retention.
    pub outbox_purged: u64,
}

/// [`housekeeping_with`] the default retention of delivered rows (a week).
pub async fn housekeeping(db: &Pool) -> Result<Housekeeping, ApiError> {
    housekeeping_with(db, crate::settings::DEFAULT_RETENTION).await
}

/// Deletes idempotency keys past their retention (kept 48 hours; the promise is 24), and delivered
/// outbox rows delivered more than `outbox_retention` ago. Pending and dead rows are kept: the
/// purge runs through `purge_delivered_outbox` (migrations/V5), the notifier's only way to delete
/// from the outbox.
pub async fn housekeeping_with(
    db: &Pool,
    outbox_retention: Duration,
) -> Result<Housekeeping, ApiError> {
    let conn = db.get().await?;
    let keys = conn
        .query_typed_one(
            "WITH gone AS (
                 DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'
                 RETURNING 1
             )
             SELECT count(*) FROM gone",
            &[],
        )
        .await?;
    let retention = outbox_retention.as_secs_f64();
    let purged = conn
        .query_typed_one(
            "SELECT purge_delivered_outbox(make_interval(secs => $1))",
            &[(&retention, Type::FLOAT8)],
        )
        .await?;
    Ok(Housekeeping {
        idempotency_keys_deleted: keys.get::<_, i64>(0) as u64,
        outbox_purged: purged.get::<_, i64>(0) as u64,
    })
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
