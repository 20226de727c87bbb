//! Key layout, and the stamp every stored value carries. Every key is
//! `<prefix>:v<SCHEMA_VERSION>:{<slot>}:<name>`; the `{slot}` is a Redis Cluster hash tag, so a
//! value, its generation and its locks live in one slot (ElastiCache Serverless is clustered, and
//! `MGET` must not cross slots).

use crate::link::Run;
use crate::SCHEMA_VERSION;
use bytes::Bytes;
use std::sync::Arc;

/// The namespace of one deployment's keys.
pub struct Keys {
    base: String,
}

/// A cached value's key and the generation key that decides whether it is current.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub value: String,
    pub generation: String,
    /// For a read that may find nothing: the generation that also decides whether a cached "not
    /// found" is current (one that making such a thing bumps). `None`: a "not found" is never
    /// cached for this key.
    pub absent_generation: Option<String>,
    /// Whether a value behind its generation may still be served, within the staleness bound.
    /// Not for a read where a new entry must appear at once.
    pub may_lag: bool,
}

impl CacheKey {
    /// The cross-process loading lock of the value at one generation: a reader that has seen a
    /// newer generation does not wait for a load that started before it.
    pub(crate) fn lock(&self, generation: u64) -> String {
        format!("{}:lock:{generation}", self.value)
    }

    /// The lock of a refresh of a value that is behind (one per key, whatever the generation:
    /// while writes come fast, the generation moves with every one).
    pub(crate) fn refresh_lock(&self) -> String {
        format!("{}:refresh", self.value)
    }

    /// Where the value is kept in the encoding asked for: the gzip copy under `:gz`.
    pub(crate) fn encoded(&self, gzip: bool) -> String {
        if gzip {
            format!("{}:gz", self.value)
        } else {
            self.value.clone()
        }
    }
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            base: format!("{prefix}:v{SCHEMA_VERSION}"),
        }
    }

    /// `<prefix>:v<SCHEMA_VERSION>:{<slot>}:<name>`: keys of one slot may share a command.
    pub fn key(&self, slot: &str, name: &str) -> String {
        format!("{}:{{{slot}}}:{name}", self.base)
    }

    /// A counter ([`crate::Cache::stats`]); all of them share one slot.
    pub fn counter(&self, name: &str) -> String {
        self.key("metrics", name)
    }
}

/// What a stored value must carry to be current, as read just before its load started: the
/// generation of its key, the run of the Redis server that generation was read from, and for a
/// key that may cache "not found", its absent generation.
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

/// What a found value carries besides its bytes: its entity tag (the same for both encodings)
/// and when its load started, in milliseconds since the Unix epoch (what it can be stale by).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub(crate) tag: Arc<str>,
    pub(crate) loaded_at_ms: u64,
    /// When the value stops being true without any write (a hold in it lapses): from
    /// then on it is behind, as after a write (see [`Current::Behind`]).
    pub(crate) until_ms: Option<u64>,
}

/// A stored value: `<generation>@<run> <tag> <loaded at ms> <encoding>[ <until ms>]\n<body>`,
/// kept under the value's key (identity) and its `:gz` key (gzip, or identity again when the body
/// is too small to be worth compressing).
pub(crate) fn stamp(stamp: &Stamp, meta: &Meta, gzip: bool, body: &[u8]) -> Vec<u8> {
    let encoding = if gzip { "gzip" } else { "identity" };
    let until = meta.until_ms.map(|at| format!(" {at}")).unwrap_or_default();
    let mut stored = format!(
        "{} {} {} {encoding}{until}\n",
        stamp.header(),
        meta.tag,
        meta.loaded_at_ms
    )
    .into_bytes();
    stored.extend_from_slice(body);
    stored
}

/// A cached "not found": `<generation>@<run>!<catalog generation>\n`. `None`: "not found" is not
/// cached for this key.
pub(crate) fn stamp_absent(stamp: &Stamp) -> Option<Vec<u8>> {
    let absent = stamp.absent_generation?;
    Some(format!("{}!{absent}\n", stamp.header()).into_bytes())
}

/// A found value as read from Redis: its bytes in one encoding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) meta: Meta,
    pub(crate) gzip: bool,
    pub(crate) body: Bytes,
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub(crate) enum Current {
    /// A value loaded at the current stamp.
    Found(Hit),
    /// A value loaded in this run of Redis at an earlier generation of its key (a write has come
    /// since its load started), or one past its `until`. Servable only within the staleness
    /// bound of `since_ms`, the latest it can have been true (see `Cache`).
    Behind {
        hit: Hit,
        generation: u64,
        since_ms: u64,
    },
    /// "Not found", cached at the current stamp.
    Absent,
    /// Nothing, something from another run of Redis, or a "not found" no longer current.
    Stale,
}

/// Whether `stored` is current at `now`, read at `at_ms`.
pub(crate) fn current(stored: Option<Vec<u8>>, now: &Stamp, at_ms: u64) -> Current {
    let Some(stored) = stored.map(Bytes::from) else {
        return Current::Stale;
    };
    let Some(newline) = stored.iter().position(|b| *b == b'\n') else {
        return Current::Stale;
    };
    let Ok(header) = std::str::from_utf8(&stored[..newline]) else {
        return Current::Stale;
    };
    let mut fields = header.split(' ');
    let stamped = fields.next().unwrap_or_default();
    if let Some((stamped, absent)) = stamped.split_once('!') {
        return if stamped == now.header() && absent.parse().ok() == now.absent_generation {
            Current::Absent
        } else {
            Current::Stale
        };
    }
    let (Some(tag), Some(loaded_at_ms), Some(encoding), until, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Current::Stale;
    };
    let until_ms = match until.map(str::parse::<u64>) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(_)) => return Current::Stale,
    };
    let (Some((generation, run)), Ok(loaded_at_ms)) =
        (stamped.split_once('@'), loaded_at_ms.parse())
    else {
        return Current::Stale;
    };
    let Ok(generation) = generation.parse::<u64>() else {
        return Current::Stale;
    };
    if run != &*now.run || generation > now.generation {
        return Current::Stale;
    }
    let hit = Hit {
        meta: Meta {
            tag: Arc::from(tag),
            loaded_at_ms,
            until_ms,
        },
        gzip: encoding == "gzip",
        body: stored.slice(newline + 1..),
    };
    match (generation == now.generation, until_ms) {
        (true, Some(until)) if until <= at_ms => Current::Behind {
            hit,
            generation,
            since_ms: until,
        },
        (true, _) => Current::Found(hit),
        // A write came after the load started: it may have been behind from then on.
        (false, _) => Current::Behind {
            hit,
            generation,
            since_ms: loaded_at_ms,
        },
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

    fn meta(tag: &str) -> Meta {
        Meta {
            tag: Arc::from(tag),
            loaded_at_ms: 1_700_000_000_000,
            until_ms: None,
        }
    }

    const NOW: u64 = 1_700_000_000_500;

    fn hit(tag: &str, gzip: bool, body: &'static [u8]) -> Hit {
        Hit {
            meta: meta(tag),
            gzip,
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn a_value_is_current_at_its_generation_behind_after_it_and_stale_in_another_run() {
        let loaded = at(7, "run-a", Some(3));
        let stored = stamp(&loaded, &meta("ab12"), false, b"{\"a\":1}");
        assert_eq!(
            current(Some(stored.clone()), &loaded, NOW),
            Current::Found(hit("ab12", false, b"{\"a\":1}"))
        );
        // A value does not depend on the catalog's generation; only "not found" does.
        assert!(matches!(
            current(Some(stored.clone()), &at(7, "run-a", Some(4)), NOW),
            Current::Found(_)
        ));
        assert_eq!(
            current(Some(stored.clone()), &at(9, "run-a", Some(3)), NOW),
            Current::Behind {
                hit: hit("ab12", false, b"{\"a\":1}"),
                generation: 7,
                since_ms: 1_700_000_000_000,
            },
            "two writes came since its load started"
        );
        assert_eq!(
            current(Some(stored.clone()), &at(6, "run-a", Some(3)), NOW),
            Current::Stale,
            "from a generation this reader has not seen: never served"
        );
        assert_eq!(
            current(Some(stored), &at(7, "run-b", Some(3)), NOW),
            Current::Stale,
            "written in an earlier run of Redis (before a restart)"
        );
        assert_eq!(current(None, &loaded, NOW), Current::Stale);
        assert_eq!(
            current(Some(b"garbage".to_vec()), &loaded, NOW),
            Current::Stale
        );
        for earlier in ["7\n{}", "7@run-a\n{}"] {
            assert_eq!(
                current(
                    Some(earlier.as_bytes().to_vec()),
                    &at(7, "run-a", None),
                    NOW
                ),
                Current::Stale,
                "an earlier shape: {earlier}"
            );
        }
    }

    #[test]
    fn a_value_past_its_until_is_behind_since_then_and_current_before() {
        let loaded = at(7, "run-a", None);
        let until = Meta {
            until_ms: Some(NOW - 100),
            ..meta("ab12")
        };
        let stored = stamp(&loaded, &until, false, b"map");
        let found = |at_ms| current(Some(stored.clone()), &loaded, at_ms);
        assert!(matches!(found(NOW - 101), Current::Found(_)));
        assert!(matches!(
            found(NOW),
            Current::Behind { generation: 7, since_ms, .. } if since_ms == NOW - 100
        ));
        // Behind a write as well: behind since its load, the earlier.
        assert!(matches!(
            current(Some(stored.clone()), &at(8, "run-a", None), NOW),
            Current::Behind {
                since_ms: 1_700_000_000_000,
                ..
            }
        ));
    }

    #[test]
    fn the_gzip_copy_says_it_is_gzip() {
        let loaded = at(1, "run-a", None);
        let stored = stamp(&loaded, &meta("ab12"), true, b"\x1f\x8b...");
        assert_eq!(
            current(Some(stored), &loaded, NOW),
            Current::Found(hit("ab12", true, b"\x1f\x8b..."))
        );
    }

    #[test]
    fn not_found_is_current_until_its_generation_or_the_catalog_moves_on() {
        let loaded = at(0, "run-a", Some(12));
        let stored = stamp_absent(&loaded).unwrap();
        assert_eq!(current(Some(stored.clone()), &loaded, NOW), Current::Absent);
        assert_eq!(
            current(Some(stored.clone()), &at(0, "run-a", Some(13)), NOW),
            Current::Stale,
            "an event was created since"
        );
        assert_eq!(
            current(Some(stored), &at(1, "run-a", Some(12)), NOW),
            Current::Stale,
            "never served behind"
        );
        assert_eq!(stamp_absent(&at(0, "run-a", None)), None, "never cached");
    }

    #[test]
    fn flights_differ_by_generation_and_run() {
        let key = crate::testing::availability(&Keys::new("p"), 1);
        let flight = |stamp: Stamp| stamp.flight(&key);
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(2, "a", Some(0))));
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(1, "b", Some(0))));
        assert_ne!(flight(at(1, "a", Some(0))), flight(at(1, "a", Some(1))));
        assert_eq!(flight(at(1, "a", Some(0))), flight(at(1, "a", Some(0))));
    }

    #[test]
    fn keys_are_namespaced_versioned_and_slot_tagged() {
        let keys = Keys::new("test-1");
        let key = crate::testing::availability(&keys, 42);
        assert_eq!(key.value, "test-1:v1:{e42}:availability");
        assert_eq!(key.generation, "test-1:v1:{e42}:gen");
        assert_eq!(key.lock(3), "test-1:v1:{e42}:availability:lock:3");
        assert_eq!(key.encoded(true), "test-1:v1:{e42}:availability:gz");
        assert_eq!(key.refresh_lock(), "test-1:v1:{e42}:availability:refresh");
        assert_eq!(keys.counter("hits"), "test-1:v1:{metrics}:hits");
    }
}
