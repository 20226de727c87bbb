//! Conditional, compressed reads as the API serves them: what a read request accepts (gzip, the
//! event version its reader's own write left) and the response that answers it, which the cache
//! makes (`304` or the body, with `ETag`, see [`seatbook_cache::respond`]) and this module marks
//! with who may keep it.

use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, VARY};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use seatbook_cache::{Accept, IfNoneMatch, Served};

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
    if_none_match: IfNoneMatch,
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
        Ok(Conditional {
            accept: Accept {
                gzip: seatbook_cache::accepts_gzip(headers),
                min_generation,
            },
            if_none_match: IfNoneMatch::from_headers(headers),
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
        let mut response =
            seatbook_cache::respond(served, &self.if_none_match).map(axum::body::Body::from);
        let headers = response.headers_mut();
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
