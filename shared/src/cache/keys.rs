//! Key layout, and the stamp every stored value carries. Every key is
//! `<prefix>:v<SCHEMA_VERSION>:{<tag>}:<name>`; the `{tag}` is a Redis Cluster hash tag, so a
//! value, its generation and its lock live in one slot (ElastiCache Serverless is clustered, and
//! `MGET` must not cross slots).

use super::link::Run;
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
    /// For a read that may find nothing (an event by id): the generation that also decides whether
    /// a cached "not found" is current, the catalog's, which creating an event bumps. `None`: a
    /// "not found" is never cached for this key.
    pub absent_generation: Option<String>,
}

impl CacheKey {
    /// The cross-process loading lock of the value at one generation: a reader that has seen a
    /// newer generation does not wait for a load that started before it.
    pub(crate) fn lock(&self, generation: u64) -> String {
        format!("{}:lock:{generation}", self.value)
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
            absent_generation: None,
        }
    }

    fn of_event(&self, event_id: i64, what: &str) -> CacheKey {
        CacheKey {
            value: format!("{}:{{e{event_id}}}:{what}", self.base),
            generation: self.event_generation(event_id),
            absent_generation: Some(self.catalog_generation()),
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

/// What a stored value must carry to be current, as read just before its load started: the
/// generation of its event (or of the catalog), the run of the Redis server that generation was
/// read from, and for a key that may cache "not found", the catalog's generation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamp {
    pub(crate) generation: u64,
    pub(crate) run: Run,
    pub(crate) absent_generation: Option<u64>,
}

impl Stamp {
    /// The stamp's text: `<generation>@<run>`. It never parses as a number, so a deploy that still
    /// reads the earlier `<generation>\n<body>` shape takes it for a miss rather than misreading it
    /// (and the key names, with the generation keys every environment bumps, stay the same).
    fn header(&self) -> String {
        format!("{}@{}", self.generation, self.run)
    }

    /// What single flight is keyed by: the value's key read at this stamp. A reader that has seen
    /// a newer generation (or another run) never waits for a load that started before it.
    pub(crate) fn flight(&self, key: &CacheKey) -> String {
        match self.absent_generation {
            Some(absent) => format!("{} {}!{absent}", key.value, self.header()),
            None => format!("{} {}", key.value, self.header()),
        }
    }
}

/// A stored value: `<generation>@<run>\n<body>`; a cached "not found":
/// `<generation>@<run>!<catalog generation>\n`. `None`: "not found" is not cached for this key.
pub(crate) fn stamp(stamp: &Stamp, body: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut stored = match (body, stamp.absent_generation) {
        (Some(_), _) => stamp.header(),
        (None, Some(absent)) => format!("{}!{absent}", stamp.header()),
        (None, None) => return None,
    }
    .into_bytes();
    stored.push(b'\n');
    stored.extend_from_slice(body.unwrap_or_default());
    Some(stored)
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Current {
    /// A value loaded at the current stamp.
    Found(Bytes),
    /// "Not found", cached at the current stamp.
    Absent,
    /// Nothing, or something from an earlier generation or another run of Redis.
    Stale,
}

/// Whether `stored` is current at `now`.
pub(crate) fn current(stored: Option<Vec<u8>>, now: &Stamp) -> Current {
    let Some(stored) = stored.map(Bytes::from) else {
        return Current::Stale;
    };
    let Some(newline) = stored.iter().position(|b| *b == b'\n') else {
        return Current::Stale;
    };
    let Ok(header) = std::str::from_utf8(&stored[..newline]) else {
        return Current::Stale;
    };
    let (stamped, absent) = match header.split_once('!') {
        Some((stamped, absent)) => (stamped, Some(absent)),
        None => (header, None),
    };
    if stamped != now.header() {
        return Current::Stale;
    }
    match absent {
        None => Current::Found(stored.slice(newline + 1..)),
        Some(absent) if absent.parse().ok() == now.absent_generation => Current::Absent,
        Some(_) => Current::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(generation: u64, run: &str, absent_generation: Option<u64>) -> Stamp {
        Stamp {
            generation,
            run: Run::from(run),
            absent_generation,
        }
    }

    #[test]
    fn a_value_is_current_only_at_the_generation_and_run_it_was_loaded_at() {
        let loaded = at(7, "run-a", Some(3));
        let stored = stamp(&loaded, Some(b"{\"a\":1}")).unwrap();
        assert_eq!(
            current(Some(stored.clone()), &loaded),
            Current::Found(Bytes::from_static(b"{\"a\":1}"))
        );
        // A value does not depend on the catalog's generation; only "not found" does.
        assert!(matches!(
            current(Some(stored.clone()), &at(7, "run-a", Some(4))),
            Current::Found(_)
        ));
        assert_eq!(
            current(Some(stored.clone()), &at(8, "run-a", Some(3))),
            Current::Stale
        );
        assert_eq!(
            current(Some(stored), &at(7, "run-b", Some(3))),
            Current::Stale,
            "written in an earlier run of Redis (before a restart)"
        );
        assert_eq!(current(None, &loaded), Current::Stale);
        assert_eq!(current(Some(b"garbage".to_vec()), &loaded), Current::Stale);
        assert_eq!(
            current(Some(b"7\n{}".to_vec()), &at(7, "", None)),
            Current::Stale,
            "the earlier shape, without a run"
        );
    }

    #[test]
    fn not_found_is_current_until_its_generation_or_the_catalog_moves_on() {
        let loaded = at(0, "run-a", Some(12));
        let stored = stamp(&loaded, None).unwrap();
        assert_eq!(current(Some(stored.clone()), &loaded), Current::Absent);
        assert_eq!(
            current(Some(stored.clone()), &at(0, "run-a", Some(13))),
            Current::Stale,
            "an event was created since"
        );
        assert_eq!(
            current(Some(stored), &at(1, "run-a", Some(12))),
            Current::Stale
        );
        assert_eq!(stamp(&at(0, "run-a", None), None), None, "never cached");
    }

    #[test]
    fn flights_differ_by_generation_and_run() {
        let key = Keys::new("p").event(1);
        let flight = |stamp: Stamp| stamp.flight(&key);
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(2, "a", Some(0))));
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(1, "b", Some(0))));
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(1, "a", Some(1))));
        assert_eq!(flight(at(1, "a", Some(0))), flight(at(1, "a", Some(0))));
    }

    #[test]
    fn keys_are_namespaced_versioned_and_slot_tagged() {
        let keys = Keys::new("test-1");
        let key = keys.availability(42);
        assert_eq!(key.value, "test-1:v1:{e42}:availability");
        assert_eq!(key.generation, "test-1:v1:{e42}:gen");
        assert_eq!(key.lock(3), "test-1:v1:{e42}:availability:lock:3");
        assert_eq!(
            key.absent_generation.as_deref(),
            Some("test-1:v1:{events}:gen")
        );
        assert_eq!(keys.listing(20, None).generation, "test-1:v1:{events}:gen");
        assert_eq!(keys.listing(20, None).absent_generation, None);
    }
}
