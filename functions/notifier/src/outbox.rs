//! Draining the outbox: leased deliveries, up to `Policy::concurrency` in flight at once.
//!
//! No transaction is ever held open over an HTTP call. Each delivery is:
//!
//! 1. claimed, with up to as many others as there are free slots, in one short statement
//!    (`CLAIM_SQL`): due rows nobody holds, whose booking has no earlier row still pending, get
//!    `attempts + 1` and a lease (`locked_until`);
//! 2. sent, outside any transaction, beside the other deliveries in flight;
//! 3. recorded as soon as its answer is in, in a short statement shared with the other answers in
//!    at that moment: delivered, or failed with back-off, or `dead`.
//!
//! A booking's later event is never claimed while an earlier one is still pending, in flight or
//! waiting for its retry: so no two events of one booking are ever in flight together, and a later
//! one is sent only once the earlier one is recorded delivered (or `dead`). Events of different
//! bookings go out side by side.
//!
//! So every outcome is durable as soon as it is known. A run that is killed mid-batch leaves the
//! rows in flight pending under their leases; once a lease lapses the next run sends that row
//! again (at least once), and its `last_error` says the earlier attempt was interrupted.

use crate::webhook::Webhook;
use seatbook_core::db::Pool;
use seatbook_core::ApiError;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_postgres::types::Type;

/// Time kept, beyond a delivery's timeout, to record its outcome.
pub const RECORD_MARGIN: Duration = Duration::from_secs(1);

/// Deliveries in flight at once unless `WEBHOOK_CONCURRENCY` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 32;

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
    /// The most deliveries in flight at once (at least 1). Never two of one booking.
    pub concurrency: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 8,
            first_backoff: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            budget: Duration::from_secs(40),
            concurrency: DEFAULT_CONCURRENCY,
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

/// Claims up to `$3` due deliveries and leases them. Due: pending, its retry time come, not leased
/// by a live run, not tried already in this run nor in flight (`$2`), and no earlier delivery of
/// its booking pending, so a booking's events reach the receiver one at a time, in the order they
/// happened (a dead one no longer holds the later ones back). Only the earliest pending row of a
/// booking can pass that test, so one claim never takes two rows of one booking either.
/// `SKIP LOCKED` keeps concurrent runs off each other's candidates; the lease is checked again by
/// the UPDATE, which decides. A lease that lapsed is noted in `last_error`: the run that held it
/// stopped before recording an outcome.
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
    LIMIT $3
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

/// Successes are recorded whoever holds the lease now: the receiver has them.
const DELIVERED_SQL: &str = "\
UPDATE outbox SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_error = NULL
WHERE id = ANY ($1) AND status = 'pending'";

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

/// One attempt's answer: (outbox id, attempt, outcome).
type Sent = (i64, i32, Result<(), String>);

/// Delivers what is due, up to `policy.concurrency` at a time, each delivery at most once per run,
/// and claims no delivery that could not be sent and recorded before `deadline` (a Lambda's
/// deadline, less what the run needs after). Ends when nothing is due and nothing is in flight.
pub async fn drain_until(
    db: &Pool,
    webhook: &Webhook,
    policy: Policy,
    deadline: Instant,
) -> Result<DrainReport, ApiError> {
    let needed = webhook.timeout() + RECORD_MARGIN;
    let lease = policy.lease.max(needed).as_secs_f64();
    let concurrency = policy.concurrency.max(1);
    // Deliveries in flight, and those this run saw fail: neither is claimed again by this run.
    let mut tried: Vec<i64> = Vec::new();
    let mut in_flight: JoinSet<Sent> = JoinSet::new();
    let mut report = DrainReport::default();
    // Whether the last claim filled every free slot: then more may be due straight away.
    let mut more_due = true;
    loop {
        let free = concurrency - in_flight.len();
        if !report.out_of_time && free > 0 {
            if deadline.saturating_duration_since(Instant::now()) < needed {
                report.out_of_time = true;
            } else {
                let asked = free as i64;
                // The connection goes back to the pool before the sends and is taken again after.
                let claimed = db
                    .get()
                    .await?
                    .query_typed(
                        CLAIM_SQL,
                        &[
                            (&lease, Type::FLOAT8),
                            (&tried, Type::INT8_ARRAY),
                            (&asked, Type::INT8),
                        ],
                    )
                    .await?;
                more_due = claimed.len() == free;
                for row in claimed {
                    let (id, payload, attempt): (i64, String, i32) =
                        (row.get(0), row.get(1), row.get(2));
                    if attempt > policy.max_attempts {
                        exhausted(db, id, attempt).await?;
                        report.dead += 1;
                        continue;
                    }
                    tried.push(id);
                    let webhook = webhook.clone();
                    in_flight.spawn(async move {
                        let outcome = webhook.send(id, &payload).await;
                        (id, attempt, outcome)
                    });
                }
            }
        }
        // Wait for an answer, then take every other answer already in, and record them together.
        let Some(first) = in_flight.join_next().await else {
            if more_due && !report.out_of_time {
                continue; // every claimed row was exhausted: claim again
            }
            break; // nothing due, nothing in flight; or out of time
        };
        let mut answers = vec![first.map_err(|e| ApiError::Internal(e.into()))?];
        while let Some(next) = in_flight.try_join_next() {
            answers.push(next.map_err(|e| ApiError::Internal(e.into()))?);
        }
        record(db, policy, &answers, &mut tried, &mut report).await?;
    }
    Ok(report)
}

/// Records a batch of answers: the deliveries in one statement, each failure in its own. What
/// was delivered or is dead leaves `tried` (it is no longer pending); what failed stays in it.
async fn record(
    db: &Pool,
    policy: Policy,
    answers: &[Sent],
    tried: &mut Vec<i64>,
    report: &mut DrainReport,
) -> Result<(), ApiError> {
    let conn = db.get().await?;
    let delivered: Vec<i64> = answers
        .iter()
        .filter(|(_, _, outcome)| outcome.is_ok())
        .map(|(id, _, _)| *id)
        .collect();
    if !delivered.is_empty() {
        conn.query_typed(DELIVERED_SQL, &[(&delivered, Type::INT8_ARRAY)])
            .await?;
        report.delivered += delivered.len() as u64;
    }
    let mut done = delivered;
    for (id, attempt, outcome) in answers {
        let (id, attempt) = (*id, *attempt);
        let Err(error) = outcome else {
            continue;
        };
        let dead = attempt >= policy.max_attempts;
        let wait = backoff(policy.first_backoff, attempt).as_secs_f64();
        let recorded = conn
            .query_typed(
                FAILED_SQL,
                &[
                    (&id, Type::INT8),
                    (&attempt, Type::INT4),
                    (error, Type::TEXT),
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
            done.push(id);
        } else {
            tracing::warn!(delivery = id, attempts = attempt, %error, "delivery failed; will retry");
            report.retried += 1;
        }
    }
    tried.retain(|id| !done.contains(id));
    Ok(())
}

/// Records a delivery whose every attempt is spent as dead, without sending it.
async fn exhausted(db: &Pool, id: i64, attempt: i32) -> Result<(), ApiError> {
    db.get()
        .await?
        .query_typed(EXHAUSTED_SQL, &[(&id, Type::INT8), (&attempt, Type::INT4)])
        .await?;
    tracing::error!(
        delivery = id,
        "delivery is dead: its last attempt was interrupted"
    );
    Ok(())
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
