//! Conditional, compressed responses for cached bodies: `304 Not Modified` when the request's
//! `If-None-Match` names the body's entity tag, else the body, gzipped when the request accepts it
//! and a gzip copy was made. The tag comes with the cached value (made once per load), so a 304
//! costs a lookup and no body is built or sent.

use crate::Served;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// The tags a request's `If-None-Match` names (all its fields, as one list).
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(Option<String>);

impl IfNoneMatch {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let tags = headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>();
        IfNoneMatch((!tags.is_empty()).then(|| tags.join(",")))
    }

    /// RFC 9110 §13.1.2: `*`, or any listed tag equal to `tag` under weak comparison.
    pub fn matches(&self, tag: &str) -> bool {
        let Some(list) = &self.0 else {
            return false;
        };
        list.split(',').map(str::trim).any(|candidate| {
            candidate == "*"
                || candidate
                    .strip_prefix("W/")
                    .unwrap_or(candidate)
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                    == Some(tag)
        })
    }
}

/// Whether the request's `Accept-Encoding` allows gzip: `gzip`, `x-gzip` or `*`, without `q=0`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            value.split(',').any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                let name = parts.next().unwrap_or_default().to_ascii_lowercase();
                let refused = parts.any(|param| {
                    param
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                matches!(name.as_str(), "gzip" | "x-gzip" | "*") && !refused
            })
        })
}

/// 304 when `if_none_match` names `served`'s tag, else 200 with it (a JSON body); with a weak
/// `ETag` (the same for both encodings) and `Vary: accept-encoding` either way.
pub fn respond(served: Served, if_none_match: &IfNoneMatch) -> Response<Bytes> {
    let etag =
        HeaderValue::from_str(&format!("W/\"{}\"", served.tag)).expect("a tag is hex digits");
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    if if_none_match.matches(&served.tag) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    } else {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if served.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        *response.body_mut() = served.body;
    }
    let headers = response.headers_mut();
    headers.insert(ETAG, etag);
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn gzip_is_accepted_as_clients_spell_it_and_refused_with_q_zero() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, gzip;q=0.5",
            "*",
            "x-gzip",
        ] {
            assert!(accepts_gzip(&asked(&[("accept-encoding", yes)])), "{yes}");
        }
        for no in ["", "identity", "br", "gzip;q=0", "deflate, gzip; q=0.0"] {
            assert!(!accepts_gzip(&asked(&[("accept-encoding", no)])), "{no}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let matches = |pairs: &[_]| IfNoneMatch::from_headers(&asked(pairs)).matches("abc1");
        for header in ["W/\"abc1\"", "\"abc1\"", "\"zzz\", W/\"abc1\"", "*"] {
            assert!(matches(&[("if-none-match", header)]), "{header}");
        }
        for header in ["W/\"abc\"", "abc1", "\"abc12\""] {
            assert!(!matches(&[("if-none-match", header)]), "{header}");
        }
        assert!(!matches(&[]));
    }
}
