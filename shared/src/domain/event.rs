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
        let at = rfc3339("starts_at", raw)?;
        if at <= now {
            return Err(Invalid("starts_at must be in the future".to_owned()));
        }
        Ok(StartsAt(at))
    }

    pub fn get(&self) -> DateTime<Utc> {
        self.0
    }
}

/// When an event's tickets are on sale: from `start` (or creation) until `end`, which is the
/// event's start unless the organizer closes the sale earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesWindow {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl SalesWindow {
    pub fn parse(
        start: Option<&str>,
        end: Option<&str>,
        starts_at: StartsAt,
        now: DateTime<Utc>,
    ) -> Result<Self, Invalid> {
        let start = start
            .map(|raw| rfc3339("sales_start_at", raw))
            .transpose()?;
        let end = end.map(|raw| rfc3339("sales_end_at", raw)).transpose()?;
        let closes = end.unwrap_or(starts_at.get());
        if closes > starts_at.get() {
            return Err(Invalid(
                "sales_end_at must not be after starts_at: tickets are not sold once the event has started"
                    .to_owned(),
            ));
        }
        if closes <= now {
            return Err(Invalid("sales_end_at must be in the future".to_owned()));
        }
        if start.is_some_and(|opens| opens >= closes) {
            return Err(Invalid(
                "sales_start_at must be before sales_end_at (or starts_at when there is no sales_end_at)"
                    .to_owned(),
            ));
        }
        Ok(SalesWindow { start, end })
    }

    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// As the organizer gave it; `None` means "when the event starts".
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }
}

/// Seats one person may have at once for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSeatsPerUser(i32);

impl MaxSeatsPerUser {
    pub const MAX: i64 = 10_000;

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(MaxSeatsPerUser(raw as i32))
        } else {
            Err(Invalid(format!(
                "max_seats_per_user must be between 1 and {}, got {raw}",
                Self::MAX
            )))
        }
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

/// How long a waitlist offer of an event lasts, in seconds: long enough to see it and pay, short
/// enough that the seats find a taker before the sale ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitlistOfferSeconds(i32);

impl WaitlistOfferSeconds {
    pub const MIN: i64 = 10;
    pub const MAX: i64 = 86_400;
    pub const DEFAULT: WaitlistOfferSeconds = WaitlistOfferSeconds(900);

    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if (Self::MIN..=Self::MAX).contains(&raw) {
            Ok(WaitlistOfferSeconds(raw as i32))
        } else {
            Err(Invalid(format!(
                "waitlist_offer_seconds must be between {} and {}, got {raw}",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    pub fn get(&self) -> i32 {
        self.0
    }
}

/// An event's waiting room, as the organizer asked for it: admission at most `admit_per_minute`
/// a minute, each admission good for `admission_ttl_seconds`, and never more people admitted at
/// once than `max_admitted_per_free_seat` times the free seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingRoom {
    admit_per_minute: i32,
    admission_ttl_seconds: i32,
    max_admitted_per_free_seat: i32,
}

impl WaitingRoom {
    /// An admission lasts this long unless the organizer says otherwise.
    pub const DEFAULT_TTL_SECONDS: i64 = 600;
    pub const TTL_SECONDS: std::ops::RangeInclusive<i64> = 60..=3600;
    pub const DEFAULT_PER_FREE_SEAT: i64 = 2;
    pub const PER_FREE_SEAT: std::ops::RangeInclusive<i64> = 1..=100;
    /// A million a minute: past that a room admits everyone at once anyway.
    pub const MAX_PER_MINUTE: i64 = 1_000_000;

    pub fn parse(
        admit_per_minute: i64,
        admission_ttl_seconds: Option<i64>,
        max_admitted_per_free_seat: Option<i64>,
    ) -> Result<Self, Invalid> {
        let within = |field: &str, value: i64, range: std::ops::RangeInclusive<i64>| {
            if range.contains(&value) {
                Ok(value as i32)
            } else {
                Err(Invalid(format!(
                    "waiting_room.{field} must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                )))
            }
        };
        Ok(WaitingRoom {
            admit_per_minute: within(
                "admit_per_minute",
                admit_per_minute,
                1..=Self::MAX_PER_MINUTE,
            )?,
            admission_ttl_seconds: within(
                "admission_ttl_seconds",
                admission_ttl_seconds.unwrap_or(Self::DEFAULT_TTL_SECONDS),
                Self::TTL_SECONDS,
            )?,
            max_admitted_per_free_seat: within(
                "max_admitted_per_free_seat",
                max_admitted_per_free_seat.unwrap_or(Self::DEFAULT_PER_FREE_SEAT),
                Self::PER_FREE_SEAT,
            )?,
        })
    }

    pub fn admit_per_minute(&self) -> i32 {
        self.admit_per_minute
    }

    pub fn admission_ttl_seconds(&self) -> i32 {
        self.admission_ttl_seconds
    }

    pub fn max_admitted_per_free_seat(&self) -> i32 {
        self.max_admitted_per_free_seat
    }
}

fn rfc3339(field: &str, raw: &str) -> Result<DateTime<Utc>, Invalid> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            Invalid(format!(
                "{field} must be an RFC 3339 timestamp such as 2030-01-31T20:00:00Z, got {raw:?}"
            ))
        })
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

    #[test]
    fn a_sales_window_closes_by_the_start_and_opens_before_it_closes() {
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        let starts = StartsAt::parse("2030-02-01T20:00:00Z", now).unwrap();
        let open = SalesWindow::parse(None, None, starts, now).unwrap();
        assert_eq!((open.start(), open.end()), (None, None));
        let window = SalesWindow::parse(
            Some("2030-01-10T10:00:00Z"),
            Some("2030-02-01T18:00:00Z"),
            starts,
            now,
        )
        .unwrap();
        assert_eq!(
            window.start(),
            Some("2030-01-10T10:00:00Z".parse().unwrap())
        );
        // Past the start, before the opening, in the past, or not a timestamp.
        assert!(SalesWindow::parse(None, Some("2030-02-01T21:00:00Z"), starts, now).is_err());
        assert!(SalesWindow::parse(Some("2030-02-01T20:00:00Z"), None, starts, now).is_err());
        assert!(SalesWindow::parse(
            Some("2030-01-20T00:00:00Z"),
            Some("2030-01-19T00:00:00Z"),
            starts,
            now
        )
        .is_err());
        assert!(SalesWindow::parse(None, Some("2029-12-31T00:00:00Z"), starts, now).is_err());
        assert!(SalesWindow::parse(Some("soon"), None, starts, now).is_err());
    }

    #[test]
    fn a_waiting_room_has_a_rate_a_ttl_and_a_ratio_within_bounds() {
        let room = WaitingRoom::parse(60, None, None).unwrap();
        assert_eq!(
            (
                room.admit_per_minute(),
                room.admission_ttl_seconds(),
                room.max_admitted_per_free_seat()
            ),
            (60, 600, 2)
        );
        assert!(WaitingRoom::parse(0, None, None).is_err());
        assert!(WaitingRoom::parse(1, Some(59), None).is_err());
        assert!(WaitingRoom::parse(1, Some(3601), None).is_err());
        assert!(WaitingRoom::parse(1, Some(3600), Some(100)).is_ok());
        assert!(WaitingRoom::parse(1, None, Some(0)).is_err());
        assert!(WaitingRoom::parse(1, None, Some(101)).is_err());
    }

    #[test]
    fn a_seat_cap_is_a_positive_count() {
        assert_eq!(MaxSeatsPerUser::parse(4).unwrap().get(), 4);
        assert!(MaxSeatsPerUser::parse(0).is_err());
        assert!(MaxSeatsPerUser::parse(-1).is_err());
        assert!(MaxSeatsPerUser::parse(MaxSeatsPerUser::MAX + 1).is_err());
    }
}
