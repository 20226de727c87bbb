use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A booking (or a hold, which is a booking with status `held`) as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Booking {
    pub id: Uuid,
    pub event_id: i64,
    pub user_id: String,
    pub status: BookingStatus,
    pub created_at: DateTime<Utc>,
    /// When a hold lapses; `null` for anything but a live hold.
    pub expires_at: Option<DateTime<Utc>>,
    /// The price of all its seats, in cents.
    pub total_cents: i64,
    /// The seats; for a cancelled or expired booking, the seats it had.
    pub tickets: Vec<Ticket>,
    /// Only in the answer to a `best_available` request: `true` when the seats are side by side
    /// in one row, `false` when no such block was free and they are the best seats apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub together: Option<bool>,
}

/// How long a confirmed booking's seats stay marked as taken in Redis (see
/// [`crate::store::book`]): long enough that a herd after a sale is answered from the marks, short
/// enough that a cancellation whose unmark was lost refuses its seats for a minute at most.
const CONFIRMED_MARK: std::time::Duration = std::time::Duration::from_secs(60);

impl Booking {
    /// Its seats' ids.
    pub(crate) fn seat_ids(&self) -> Vec<i64> {
        self.tickets.iter().map(|ticket| ticket.seat_id).collect()
    }

    /// Until when its seats are known to be taken: a hold's expiry, or a little while for a
    /// confirmed booking (see [`CONFIRMED_MARK`]).
    pub(crate) fn claimed_until(&self) -> std::time::SystemTime {
        match (self.status, self.expires_at) {
            (BookingStatus::Held, Some(expires_at)) => expires_at.into(),
            _ => std::time::SystemTime::now() + CONFIRMED_MARK,
        }
    }
}

/// One seat of a booking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Ticket {
    pub id: i64,
    pub seat_id: i64,
    /// The seat's row label.
    pub row: String,
    /// The seat's number in its row.
    pub number: i32,
    /// What the seat cost, in cents.
    pub price_cents: i64,
}

/// Where a booking stands. PostgreSQL holds the same list as the `booking_status` enum
/// (migrations/V7); a test keeps the two equal. A hold whose time is up reads as `expired` even
/// before anyone releases its seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    /// Seats reserved until `expires_at`, not paid yet.
    Held,
    /// Seats sold.
    Confirmed,
    /// Seats given back by the buyer or an organizer.
    Cancelled,
    /// A hold that lapsed; its seats are free.
    Expired,
}

impl BookingStatus {
    /// Every status, in the order of the SQL enum's labels.
    pub const ALL: [BookingStatus; 4] = [
        BookingStatus::Held,
        BookingStatus::Confirmed,
        BookingStatus::Cancelled,
        BookingStatus::Expired,
    ];

    /// The label, as in the API and in the SQL enum.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Held => "held",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label PostgreSQL returned that this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown booking status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for BookingStatus {
    type Err = UnknownStatus;

    fn from_str(label: &str) -> Result<Self, Self::Err> {
        BookingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == label)
            .ok_or_else(|| UnknownStatus(label.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_label_and_serializes_as_it() {
        for status in BookingStatus::ALL {
            assert_eq!(status.as_str().parse::<BookingStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        assert!("Confirmed".parse::<BookingStatus>().is_err());
        assert!("".parse::<BookingStatus>().is_err());
    }
}
