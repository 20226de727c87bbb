use super::{bounded_text, Invalid};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName(String);

impl EventName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("name", raw, 200).map(EventName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > 5000 {
            return Err(Invalid(
                "description must be at most 5000 characters".to_owned(),
            ));
        }
        Ok(Description(raw.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ticket price in integer cents: never negative, never absurd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceCents(i64);

impl PriceCents {
    pub const MAX: i64 = 100_000_000;

    pub fn parse(cents: i64) -> Result<Self, Invalid> {
        if (0..=Self::MAX).contains(&cents) {
            Ok(PriceCents(cents))
        } else {
            Err(Invalid(format!(
                "price_cents must be between 0 and {}, got {cents}",
                Self::MAX
            )))
        }
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

/// When an event starts: an RFC 3339 timestamp in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartsAt(DateTime<Utc>);

impl StartsAt {
    pub fn parse(raw: &str, now: DateTime<Utc>) -> Result<Self, Invalid> {
        let at = DateTime::parse_from_rfc3339(raw.trim())
            .map_err(|_| {
                Invalid(format!(
                    "starts_at must be an RFC 3339 timestamp such as 2030-01-31T20:00:00Z, got {raw:?}"
                ))
            })?
            .with_timezone(&Utc);
        if at <= now {
            return Err(Invalid("starts_at must be in the future".to_owned()));
        }
        Ok(StartsAt(at))
    }

    pub fn get(&self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_must_be_a_future_rfc3339_timestamp() {
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(StartsAt::parse("2030-01-02T20:00:00+01:00", now).is_ok());
        assert!(StartsAt::parse("2029-12-31T20:00:00Z", now).is_err());
        assert!(StartsAt::parse("tomorrow", now).is_err());
    }

    #[test]
    fn prices_are_non_negative_cents() {
        assert!(PriceCents::parse(0).is_ok());
        assert!(PriceCents::parse(-1).is_err());
        assert!(PriceCents::parse(PriceCents::MAX + 1).is_err());
    }
}
