//! The notifier's own settings; the database and logging settings are the core crate's.

use crate::outbox::{Policy, DEFAULT_CONCURRENCY, RECORD_MARGIN};
use crate::webhook::DEFAULT_TIMEOUT;
use seatbook_core::config::{parsed, ConfigError};
use std::time::Duration;

/// Delivered rows are kept a week unless `OUTBOX_RETENTION_HOURS` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(168 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierSettings {
    /// `WEBHOOK_TIMEOUT_SECONDS` (5): the most one delivery may take, connecting included.
    pub delivery_timeout: Duration,
    /// `OUTBOX_LEASE_SECONDS` (30): how long a claimed delivery is reserved for the run that
    /// claimed it. A run that dies mid-delivery leaves it to be taken again once this has passed.
    /// At least the delivery timeout plus a second, so a live run never loses its lease.
    pub lease: Duration,
    /// `OUTBOX_RETENTION_HOURS` (168): delivered rows older than this are purged by housekeeping.
    /// Pending and dead rows are never purged.
    pub retention: Duration,
    /// `WEBHOOK_CONCURRENCY` (32, at most 1,024): deliveries in flight at once, never two of one
    /// booking. Size it to what the receiver takes: 32 at 20 ms each is 1,600 deliveries/s.
    pub concurrency: usize,
}

/// The most deliveries `WEBHOOK_CONCURRENCY` may put in flight at once.
pub const MAX_CONCURRENCY: usize = 1024;

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            delivery_timeout: DEFAULT_TIMEOUT,
            lease: Policy::default().lease,
            retention: DEFAULT_RETENTION,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl NotifierSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = NotifierSettings::default();
        let delivery_timeout = seconds(
            &lookup,
            "WEBHOOK_TIMEOUT_SECONDS",
            defaults.delivery_timeout,
            1,
        )?;
        let lease = seconds(&lookup, "OUTBOX_LEASE_SECONDS", defaults.lease, 1)?;
        if lease < delivery_timeout + RECORD_MARGIN {
            return Err(ConfigError::Invalid {
                name: "OUTBOX_LEASE_SECONDS",
                reason: format!(
                    "the lease ({}s) must outlast a delivery: at least WEBHOOK_TIMEOUT_SECONDS \
                     ({}s) plus {}s",
                    lease.as_secs(),
                    delivery_timeout.as_secs(),
                    RECORD_MARGIN.as_secs()
                ),
            });
        }
        let retention = parsed(
            "OUTBOX_RETENTION_HOURS",
            lookup("OUTBOX_RETENTION_HOURS"),
            "a whole number of hours (0 or more)",
            |_: &u32| true,
        )?
        .map_or(defaults.retention, |hours| {
            Duration::from_secs(u64::from(hours) * 3600)
        });
        let concurrency = parsed(
            "WEBHOOK_CONCURRENCY",
            lookup("WEBHOOK_CONCURRENCY"),
            &format!("a whole number of deliveries from 1 to {MAX_CONCURRENCY}"),
            |n: &usize| (1..=MAX_CONCURRENCY).contains(n),
        )?
        .unwrap_or(defaults.concurrency);
        Ok(NotifierSettings {
            delivery_timeout,
            lease,
            retention,
            concurrency,
        })
    }

    /// The retry policy with this lease and concurrency.
    pub fn policy(&self) -> Policy {
        Policy {
            lease: self.lease,
            concurrency: self.concurrency,
            ..Policy::default()
        }
    }
}

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
    min: u64,
) -> Result<Duration, ConfigError> {
    let seconds = parsed(
        name,
        lookup(name),
        &format!("a whole number of seconds, at least {min}"),
        |n: &u32| u64::from(*n) >= min,
    )?;
    Ok(seconds.map_or(default, |n| Duration::from_secs(n.into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<NotifierSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NotifierSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn by_default_a_delivery_has_five_seconds_a_lease_thirty_and_delivered_rows_a_week() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults, NotifierSettings::default());
        assert_eq!(defaults.delivery_timeout, Duration::from_secs(5));
        assert_eq!(defaults.lease, Duration::from_secs(30));
        assert_eq!(defaults.retention, Duration::from_secs(168 * 3600));
        assert_eq!(defaults.policy().lease, Duration::from_secs(30));
        assert_eq!(defaults.concurrency, 32);
        assert_eq!(defaults.policy().concurrency, 32);
    }

    #[test]
    fn retention_timeout_lease_and_concurrency_are_read_from_the_environment() {
        let read = settings(&[
            ("OUTBOX_RETENTION_HOURS", "24"),
            ("WEBHOOK_TIMEOUT_SECONDS", "2"),
            ("OUTBOX_LEASE_SECONDS", "3"),
            ("WEBHOOK_CONCURRENCY", "4"),
        ])
        .unwrap();
        assert_eq!(read.policy().concurrency, 4);
        assert_eq!(read.retention, Duration::from_secs(24 * 3600));
        assert_eq!(read.delivery_timeout, Duration::from_secs(2));
        assert_eq!(read.lease, Duration::from_secs(3));
        assert_eq!(
            settings(&[("OUTBOX_RETENTION_HOURS", "0")])
                .unwrap()
                .retention,
            Duration::ZERO
        );
    }

    #[test]
    fn a_lease_that_a_delivery_could_outlast_or_a_bad_number_is_refused() {
        for vars in [
            &[("OUTBOX_LEASE_SECONDS", "5")][..],
            &[("WEBHOOK_TIMEOUT_SECONDS", "30")][..],
            &[("WEBHOOK_TIMEOUT_SECONDS", "0")][..],
            &[("OUTBOX_RETENTION_HOURS", "-1")][..],
            &[("OUTBOX_RETENTION_HOURS", "a week")][..],
            &[("WEBHOOK_CONCURRENCY", "0")][..],
            &[("WEBHOOK_CONCURRENCY", "1025")][..],
            &[("WEBHOOK_CONCURRENCY", "many")][..],
        ] {
            assert!(settings(vars).is_err(), "{vars:?}");
        }
    }
}
