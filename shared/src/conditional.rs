//! Conditional, compressed reads: what a read request accepts (gzip, the event version its
//! reader's own write left) and the response that answers it: `304 Not Modified` when its
//! `If-None-Match` names the entity tag of what would be sent, else the body (gzipped when
//! accepted and cached so), with `ETag`.
//!
//! The tag comes with the cached value (computed once per load, see `cache::encoded`), so a 304
//! costs a cache lookup and no body is built or sent.

use crate::cache::{Accept, Served};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The header a write's response names the event's version after it in, and a read of that
/// event may name it in to be served nothing older (the writer's own reads show its writes).
pub const EVENT_VERSION_HEADER: &str = "seatbook-event-version";

/// `Cache-Control` of a read anyone may be served (see [`Conditional::cache_control`]).
pub const PUBLIC_READ: &str = "public, max-age=0, s-maxage=1, stale-while-revalidate=1";
/// `Cache-Control` of a read that names its reader's own write: never from a shared cache.
pub const PRIVATE_READ: &str = "private, no-cache";

/// The headers of a conditional read, as an operation's parameters (documentation only: the
/// handler reads them through [`Conditional`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConditionalHeaders {
    /// An `ETag` this read answered before: 304 with no body while it still holds.
    #[param(rename = "If-None-Match", nullable = false)]
    if_none_match: Option<String>,
    /// The `Seatbook-Event-Version` of the caller's own last write to this event: nothing older
    /// than it is served (others may be served a seat map up to a second old while an event
    /// sells fast).
    #[param(rename = "Seatbook-Event-Version", nullable = false, minimum = 0)]
    event_version: Option<i64>,
}

/// What a read request asked for.
#[derive(Debug, Clone, Default)]
pub struct Conditional {
    pub accept: Accept,
    if_none_match: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Conditional {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Conditional::from_headers(&parts.headers)
    }
}

impl Conditional {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let min_generation = match headers.get(EVENT_VERSION_HEADER) {
            None => None,
            Some(raw) => Some(
                raw.to_str()
                    .ok()
                    // Redis counts in signed 64 bits: nothing past i64::MAX is a version.
                    .and_then(|raw| raw.trim().parse::<i64>().ok())
                    .and_then(|version| u64::try_from(version).ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "{EVENT_VERSION_HEADER} must be a version a write's response gave"
                        ))
                    })?,
            ),
        };
        let gzip = headers
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(accepts_gzip);
        let if_none_match = headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect::<Vec<_>>();
        Ok(Conditional {
            accept: Accept {
                gzip,
                min_generation,
            },
            if_none_match: (!if_none_match.is_empty()).then(|| if_none_match.join(",")),
        })
    }

    /// The same request for a read that is not of one event (a listing): an event's version
    /// means nothing there.
    pub fn without_event_version(mut self) -> Self {
        self.accept.min_generation = None;
        self
    }

    /// 304 when `If-None-Match` names `served`'s tag, else 200 with it.
    pub fn respond(&self, served: Served) -> Response {
        let etag =
            HeaderValue::from_str(&format!("W/\"{}\"", served.tag)).expect("a tag is hex digits");
        let mut response = if self.matches(&served.tag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                served.body,
            )
                .into_response();
            if served.gzip {
                response
                    .headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        };
        let headers = response.headers_mut();
        headers.insert(ETAG, etag);
        // Another encoding, or a reader naming a newer version, may get other bytes.
        headers.insert(
            VARY,
            HeaderValue::from_static("accept-encoding, seatbook-event-version"),
        );
        headers.insert(CACHE_CONTROL, self.cache_control());
        response
    }

    /// Who may keep the response. A browser keeps it but asks again every time (the 304 makes
    /// that cheap). A shared cache (the CDN) may serve a public read for a second, and a second
    /// more while it refreshes, which adds that much to the staleness bound of the seat map (see
    /// docs/cache.md); a read naming the reader's own version never comes from a shared cache.
    fn cache_control(&self) -> HeaderValue {
        if self.accept.min_generation.is_some() {
            HeaderValue::from_static(PRIVATE_READ)
        } else {
            HeaderValue::from_static(PUBLIC_READ)
        }
    }

    /// RFC 9110 §13.1.2: `*`, or any listed tag equal to ours under weak comparison.
    fn matches(&self, tag: &str) -> bool {
        let Some(list) = &self.if_none_match else {
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

/// Whether one `Accept-Encoding` value allows gzip: `gzip`, `x-gzip` or `*`, without `q=0`.
fn accepts_gzip(value: &str) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(pairs: &[(&'static str, &'static str)]) -> Result<Conditional, ApiError> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        Conditional::from_headers(&headers)
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
            assert!(
                asked(&[("accept-encoding", yes)]).unwrap().accept.gzip,
                "{yes}"
            );
        }
        for no in ["", "identity", "br", "gzip;q=0", "deflate, gzip; q=0.0"] {
            assert!(
                !asked(&[("accept-encoding", no)]).unwrap().accept.gzip,
                "{no}"
            );
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        for header in ["W/\"abc1\"", "\"abc1\"", "\"zzz\", W/\"abc1\"", "*"] {
            assert!(
                asked(&[("if-none-match", header)]).unwrap().matches("abc1"),
                "{header}"
            );
        }
        for header in ["W/\"abc\"", "abc1", "\"abc12\""] {
            assert!(
                !asked(&[("if-none-match", header)]).unwrap().matches("abc1"),
                "{header}"
            );
        }
        assert!(!asked(&[]).unwrap().matches("abc1"));
    }

    #[test]
    fn an_event_version_must_be_a_number() {
        let asked_for = asked(&[(EVENT_VERSION_HEADER, "42")]).unwrap();
        assert_eq!(asked_for.accept.min_generation, Some(42));
        assert!(matches!(
            asked(&[(EVENT_VERSION_HEADER, "soon")]),
            Err(ApiError::BadRequest(_))
        ));
        for past_redis in ["-1", "9223372036854775808"] {
            assert!(
                asked(&[(EVENT_VERSION_HEADER, past_redis)]).is_err(),
                "{past_redis}"
            );
        }
    }
}
