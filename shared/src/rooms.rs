//! What the waiting room needs to know of an event: its sales window and its room, remembered by
//! the process ([`Remembered`]).

use crate::catalog::{waiting_room, EventWaitingRoom};
use crate::db::Pool;
use crate::error::ApiError;
use crate::remembered::Remembered;
use chrono::{DateTime, Utc};
use seatbook_cache::Flights;
use tokio_postgres::types::Type;

/// A process remembers this many events at most; past that it starts over (a handful of events
/// are on sale at once).
const REMEMBERED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomEvent {
    pub id: i64,
    pub sales_start_at: Option<DateTime<Utc>>,
    pub sales_end_at: DateTime<Utc>,
    /// `None`: the event has no waiting room.
    pub room: Option<EventWaitingRoom>,
}

pub struct Rooms {
    known: Remembered<RoomEvent>,
    /// One read per event at a time: the first claims of an on-sale's herd (the booking function
    /// asks for every claim it cannot admit on a token) share it.
    reads: Flights<i64, Option<RoomEvent>>,
}

impl Default for Rooms {
    fn default() -> Self {
        Rooms {
            known: Remembered::new(REMEMBERED),
            reads: Flights::default(),
        }
    }
}

impl Rooms {
    /// Event `id` as the waiting room sees it; `None` when there is no such event.
    pub async fn event(&self, db: &Pool, id: i64) -> Result<Option<RoomEvent>, ApiError> {
        if let Some(known) = self.known.get(id) {
            return Ok(Some(*known));
        }
        let read = self.reads.run(&id, || read(db, id)).await?;
        let Some(event) = read else {
            return Ok(None);
        };
        self.known.remember(id, event);
        Ok(Some(event))
    }
}

async fn read(db: &Pool, id: i64) -> Result<Option<RoomEvent>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            "SELECT sales_start_at, coalesce(sales_end_at, starts_at) AS sales_end_at,
                    room_admit_per_minute, room_admission_ttl_seconds,
                    room_max_admitted_per_free_seat
             FROM events WHERE id = $1",
            &[(&id, Type::INT8)],
        )
        .await?;
    Ok(row.map(|row| RoomEvent {
        id,
        sales_start_at: row.get("sales_start_at"),
        sales_end_at: row.get("sales_end_at"),
        room: waiting_room(&row),
    }))
}
