use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A booking as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Booking {
    pub id: Uuid,
    pub event_id: i64,
    pub user_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub total_cents: i64,
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
