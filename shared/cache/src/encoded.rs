//! A read in the encodings it is served in, with its entity tag: computed once per load (and so
//! once per generation while cached), never per request.

use crate::keys::{Hit, Meta};
use bytes::Bytes;
use std::io::Write;
use std::sync::Arc;

/// Below this a body is served as it is: gzip's own header and trailer would eat most of the
/// saving, and small JSON bodies are the common case.
const GZIP_MIN_BYTES: usize = 1024;

/// A read as served: its bytes in one encoding, and its entity tag (the same for every encoding:
/// a weak validator, as a compressing server's is).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub body: Bytes,
    pub gzip: bool,
    pub tag: Arc<str>,
}

/// What a reader accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accept {
    /// `Accept-Encoding` allows gzip.
    pub gzip: bool,
    /// The generation the reader's own last write left ([`crate::Cache::bump`]'s answer):
    /// nothing older is served to it.
    pub min_generation: Option<u64>,
}

/// A freshly loaded read: the plain bytes, and gzip when worth it.
pub(crate) struct Fresh {
    pub(crate) meta: Meta,
    pub(crate) identity: Bytes,
    pub(crate) gzip: Option<Bytes>,
}

impl Fresh {
    /// `compress`: whether to make the gzip copy (only what is cached is worth compressing once).
    pub(crate) fn new(identity: Bytes, loaded_at_ms: u64, compress: bool) -> Fresh {
        let gzip = (compress && identity.len() >= GZIP_MIN_BYTES)
            .then(|| gzip(&identity))
            .flatten();
        Fresh {
            meta: Meta {
                tag: tag_of(&identity),
                loaded_at_ms,
                until_ms: None,
            },
            identity,
            gzip,
        }
    }

    pub(crate) fn serve(&self, accept: &Accept) -> Served {
        match (&self.gzip, accept.gzip) {
            (Some(gzip), true) => Served {
                body: gzip.clone(),
                gzip: true,
                tag: self.meta.tag.clone(),
            },
            _ => Served {
                body: self.identity.clone(),
                gzip: false,
                tag: self.meta.tag.clone(),
            },
        }
    }

    /// The bytes kept under the key for `gzip` readers or the plain one (the plain bytes again
    /// when there is no gzip copy).
    pub(crate) fn encoded(&self, gzip: bool) -> (bool, &Bytes) {
        match (&self.gzip, gzip) {
            (Some(compressed), true) => (true, compressed),
            _ => (false, &self.identity),
        }
    }
}

impl From<Hit> for Served {
    fn from(hit: Hit) -> Self {
        Served {
            body: hit.body,
            gzip: hit.gzip,
            tag: hit.meta.tag,
        }
    }
}

/// The entity tag of a body: its CRC-32 and length. Content-derived, so a value reloaded at the
/// same generation (a hold lapsed, a sale closed: nothing was written) gets a new tag only when
/// its bytes changed, and a tag never outlives a Redis restart's loss of the generations.
pub(crate) fn tag_of(body: &[u8]) -> Arc<str> {
    Arc::from(format!("{:08x}{:x}", crc32fast::hash(body), body.len()))
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_large_body_is_compressed_once_and_both_encodings_share_one_tag() {
        let body = Bytes::from(r#"{"id":1,"status":"available"},"#.repeat(200));
        let fresh = Fresh::new(body.clone(), 7, true);
        let plain = fresh.serve(&Accept::default());
        let zipped = fresh.serve(&Accept {
            gzip: true,
            ..Accept::default()
        });
        assert_eq!(plain.body, body);
        assert!(zipped.gzip && zipped.body.len() < body.len() / 10);
        assert_eq!(plain.tag, zipped.tag);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped.body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, body);
    }

    #[test]
    fn a_small_body_or_an_uncached_one_is_served_plain() {
        let small = Fresh::new(Bytes::from_static(b"{\"id\":1}"), 7, true);
        let large = Fresh::new(Bytes::from("x".repeat(5000)), 7, false);
        let gzip = Accept {
            gzip: true,
            ..Accept::default()
        };
        assert!(!small.serve(&gzip).gzip);
        assert!(!large.serve(&gzip).gzip);
    }

    #[test]
    fn tags_differ_when_the_bytes_do() {
        assert_eq!(tag_of(b"{\"a\":1}"), tag_of(b"{\"a\":1}"));
        assert_ne!(tag_of(b"{\"a\":1}"), tag_of(b"{\"a\":2}"));
        assert_ne!(tag_of(b"held"), tag_of(b"sold"));
    }
}
