//! What of the catalog is cached, under which keys, and which generation each write bumps: the
//! events function reads through these keys, the booking and organizer functions bump their
//! generations, so the layout lives here, once. The cache itself ([`seatbook_cache`]) knows only
//! keys and generations.
//!
//! Every event's keys share its Redis Cluster slot (`{e<id>}`), the catalog's share `{events}`.
//! The names must not change across a deploy: every environment bumps the same generations.

use seatbook_cache::{CacheKey, Keys};

/// Confirmed bookings, counted with the bump of each (a Redis counter, for `/api/v1/metrics`).
pub const BOOKINGS_CONFIRMED: &str = "bookings_confirmed";
/// Bookings that lost their race (409), tallied in the process and carried by its next command.
pub const BOOKING_CONFLICTS: &str = "booking_conflicts";

/// The catalog's keys, on the cache's namespace.
pub trait EventKeys {
    /// An event's details. They do not change when its seats do, so they have a generation of
    /// their own, which bookings leave alone (nothing changes an event after its creation yet).
    fn event(&self, event_id: i64) -> CacheKey;
    /// An event's seat map: behind after every booking, so it may lag (within the bound).
    fn availability(&self, event_id: i64) -> CacheKey;
    /// One page of the upcoming-events listing: never lags, so a new event appears at once.
    fn listing(&self, limit: i64, cursor: Option<&str>) -> CacheKey;
    /// What a booking, hold or cancellation of the event bumps.
    fn event_generation(&self, event_id: i64) -> String;
    /// What creating an event bumps: the listing, and every cached "no such event".
    fn catalog_generation(&self) -> String;
}

impl EventKeys for Keys {
    fn event(&self, event_id: i64) -> CacheKey {
        CacheKey {
            generation: self.key(&slot(event_id), "details:gen"),
            ..of_event(self, event_id, "event")
        }
    }

    fn availability(&self, event_id: i64) -> CacheKey {
        of_event(self, event_id, "availability")
    }

    fn listing(&self, limit: i64, cursor: Option<&str>) -> CacheKey {
        CacheKey {
            value: self.key("events", &format!("list:{limit}:{}", cursor.unwrap_or("-"))),
            generation: self.catalog_generation(),
            absent_generation: None,
            may_lag: false,
        }
    }

    fn event_generation(&self, event_id: i64) -> String {
        self.key(&slot(event_id), "gen")
    }

    fn catalog_generation(&self) -> String {
        self.key("events", "gen")
    }
}

/// Key `name` of an event's waiting-room queue (see `events_fn::queue::line`), in the event's
/// slot: the events function keeps the queue, the booking function takes a used admission out of
/// its count.
pub fn queue_key(keys: &Keys, event_id: i64, name: &str) -> String {
    keys.key(&slot(event_id), &format!("queue:{name}"))
}

/// An event's own Redis Cluster slot.
pub fn slot(event_id: i64) -> String {
    format!("e{event_id}")
}

fn of_event(keys: &Keys, event_id: i64, what: &str) -> CacheKey {
    CacheKey {
        value: keys.key(&slot(event_id), what),
        generation: keys.event_generation(event_id),
        absent_generation: Some(keys.catalog_generation()),
        may_lag: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_versioned_and_slot_tagged() {
        let keys = Keys::new("test-1");
        let key = keys.availability(42);
        assert_eq!(key.value, "test-1:v1:{e42}:availability");
        assert_eq!(key.generation, "test-1:v1:{e42}:gen");
        assert_eq!(
            key.absent_generation.as_deref(),
            Some("test-1:v1:{events}:gen")
        );
        assert_eq!(keys.listing(20, None).generation, "test-1:v1:{events}:gen");
        assert_eq!(keys.listing(20, None).absent_generation, None);
        assert_eq!(keys.event(42).generation, "test-1:v1:{e42}:details:gen");
        assert_eq!(
            keys.listing(20, Some("1.2")).value,
            "test-1:v1:{events}:list:20:1.2"
        );
    }
}
