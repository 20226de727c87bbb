//! Key layout. Every key is `<prefix>:v<SCHEMA_VERSION>:{<tag>}:<name>`; the `{tag}` is a Redis
//! Cluster hash tag, so a value, its generation and its lock live in one slot (ElastiCache
//! Serverless is clustered, and `MGET` must not cross slots).

use super::SCHEMA_VERSION;
use bytes::Bytes;

pub struct Keys {
    base: String,
}

/// A cached value's key and the generation key that decides whether it is current.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub value: String,
    pub generation: String,
}

impl CacheKey {
    pub(crate) fn lock(&self) -> String {
        format!("{}:lock", self.value)
    }
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            base: format!("{prefix}:v{SCHEMA_VERSION}"),
        }
    }

    pub fn event(&self, event_id: i64) -> CacheKey {
        self.of_event(event_id, "event")
    }

    pub fn availability(&self, event_id: i64) -> CacheKey {
        self.of_event(event_id, "availability")
    }

    /// One page of the upcoming-events listing.
    pub fn listing(&self, limit: i64, cursor: Option<&str>) -> CacheKey {
        CacheKey {
            value: format!(
                "{}:{{events}}:list:{limit}:{}",
                self.base,
                cursor.unwrap_or("-")
            ),
            generation: self.catalog_generation(),
        }
    }

    fn of_event(&self, event_id: i64, what: &str) -> CacheKey {
        CacheKey {
            value: format!("{}:{{e{event_id}}}:{what}", self.base),
            generation: self.event_generation(event_id),
        }
    }

    pub(crate) fn event_generation(&self, event_id: i64) -> String {
        format!("{}:{{e{event_id}}}:gen", self.base)
    }

    pub(crate) fn catalog_generation(&self) -> String {
        format!("{}:{{events}}:gen", self.base)
    }

    pub(crate) fn counter(&self, name: &str) -> String {
        format!("{}:{{metrics}}:{name}", self.base)
    }

    /// A user's write rate-limit bucket: one key per user, in the user's own slot.
    pub(crate) fn write_bucket(&self, user: &str) -> String {
        format!("{}:{{u:{user}}}:writes", self.base)
    }
}

/// A stored value: `<generation>\n<body>`.
pub(crate) fn stamp(generation: u64, body: &[u8]) -> Vec<u8> {
    let mut stored = format!("{generation}\n").into_bytes();
    stored.extend_from_slice(body);
    stored
}

/// The body of a stored value if it was loaded at the current generation.
pub(crate) fn current(stored: Option<Vec<u8>>, generation: u64) -> Option<Bytes> {
    let stored = Bytes::from(stored?);
    let newline = stored.iter().position(|b| *b == b'\n')?;
    let stamped: u64 = std::str::from_utf8(&stored[..newline]).ok()?.parse().ok()?;
    (stamped == generation).then(|| stored.slice(newline + 1..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_current_only_at_the_generation_it_was_loaded_at() {
        let stored = stamp(7, b"{\"a\":1}");
        assert_eq!(
            current(Some(stored.clone()), 7).as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(current(Some(stored), 8), None);
        assert_eq!(current(None, 0), None);
        assert_eq!(current(Some(b"garbage".to_vec()), 0), None);
    }

    #[test]
    fn keys_are_namespaced_versioned_and_slot_tagged() {
        let keys = Keys::new("test-1");
        let key = keys.availability(42);
        assert_eq!(key.value, "test-1:v1:{e42}:availability");
        assert_eq!(key.generation, "test-1:v1:{e42}:gen");
        assert_eq!(key.lock(), "test-1:v1:{e42}:availability:lock");
        assert_eq!(keys.listing(20, None).generation, "test-1:v1:{events}:gen");
    }
}
