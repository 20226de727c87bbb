use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A booking (or a hold, which is a booking with status `held`) as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Booking {
    pub id: Uuid,
    pub event_id: i64,
    pub user_id: String,
    /// `confirmed`, `held`, `cancelled` or `expired`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// When a hold lapses; `null` for anything but a live hold.
    pub expires_at: Option<DateTime<Utc>>,
    pub total_cents: i64,
    /// The seats; for a cancelled or expired booking, the seats it had.
    pub tickets: Vec<Ticket>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ticket {
    pub id: i64,
    pub seat_id: i64,
    pub row: String,
    pub number: i32,
    pub price_cents: i64,
}
