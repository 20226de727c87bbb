//! What every function's part of the OpenAPI document shares: the problem responses an operation
//! can give, built from [`ProblemType`] and real [`ApiError`] bodies, and the response headers of
//! the write rate limit ([`crate::ratelimit`]).
//!
//! Each function documents its own operations with `#[utoipa::path]` beside its handlers and
//! lists, with [`problems!`](crate::problems), the problems each can answer; local-api assembles
//! the whole document (tools/local-api/src/openapi.rs).

use crate::domain::MAX_SEATS_PER_BOOKING;
use crate::error::{ApiError, Problem, ProblemType, PROBLEM_JSON};
use crate::ratelimit::{Quota, POLICY_NAME};
use chrono::DateTime;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The name of the security scheme (a JWT from the user pool, as a bearer token) that every
/// operation needing a caller names.
pub const BEARER: &str = "bearer";

impl ProblemType {
    /// An error of this kind, whose body is the document's example: the examples are what the API
    /// really sends, not a description of it. Fixed values, so the document is the same on every
    /// build.
    pub fn example(self) -> ApiError {
        let at = |raw: &str| {
            DateTime::parse_from_rfc3339(raw)
                .expect("a fixed timestamp")
                .to_utc()
        };
        match self {
            ProblemType::BadRequest => {
                ApiError::BadRequest("the request body is not valid JSON".to_owned())
            }
            ProblemType::Unauthorized => ApiError::Unauthorized,
            ProblemType::Forbidden => ApiError::Forbidden,
            ProblemType::NotFound => ApiError::not_found("event 42"),
            ProblemType::MethodNotAllowed => ApiError::MethodNotAllowed,
            ProblemType::SeatsTaken => ApiError::SeatsTaken {
                seat_ids: vec![12, 13],
            },
            ProblemType::NotEnoughSeats => ApiError::NotEnoughSeats {
                available: 1,
                requested: 2,
            },
            ProblemType::SeatsAvailable => ApiError::SeatsAvailable {
                available: 3,
                requested: 2,
            },
            ProblemType::SalesClosed => ApiError::SalesClosed {
                reason: "sales for this event open at 2031-05-01T10:00:00+00:00".to_owned(),
                sales_start_at: Some(at("2031-05-01T10:00:00Z")),
                sales_end_at: at("2031-06-01T19:30:00Z"),
            },
            ProblemType::SeatLimit => ApiError::SeatLimit {
                limit: 4,
                current: 3,
                requested: 2,
            },
            ProblemType::NoWaitingRoom => ApiError::NoWaitingRoom(42),
            ProblemType::AdmissionRequired => {
                ApiError::AdmissionRequired(crate::admission::Refusal::Missing)
            }
            ProblemType::Duplicate => {
                ApiError::Duplicate("a venue named \"Main Hall\" already exists".to_owned())
            }
            ProblemType::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            ProblemType::PayloadTooLarge => ApiError::PayloadTooLarge,
            ProblemType::Validation => {
                ApiError::Unprocessable("seat_ids must name at least one seat".to_owned())
            }
            ProblemType::Gone => ApiError::Gone(
                "hold 67e55044-10b1-426f-9247-bb680e5fe0c8 expired; its seats may have been taken"
                    .to_owned(),
            ),
            ProblemType::RateLimited => ApiError::RateLimited(Quota {
                burst: 10,
                window_seconds: 5,
                remaining: 0,
                full_in: Duration::from_millis(4_600),
                retry_in: Duration::from_millis(400),
            }),
            ProblemType::Unavailable => ApiError::Unavailable("pool timed out".into()),
            ProblemType::Internal => ApiError::internal("a bug"),
        }
    }
}

/// What the whole document needs from this crate: the [`Problem`] schema every problem response
/// refers to, and the security scheme. Deployed, API Gateway's JWT authorizer checks the token
/// before a function runs; locally, `local-api` takes a stand-in identity instead (see
/// docs/dev-loop.md), which this document does not describe.
pub struct Common;

impl utoipa::Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = Vec::new();
        <Problem as ToSchema>::schemas(&mut schemas);
        components
            .schemas
            .insert(Problem::name().into_owned(), Problem::schema());
        components.schemas.extend(schemas);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An ID token of the stack's Cognito user pool; organizers are in its \
                         `organizers` group.",
                    ))
                    .build(),
            ),
        );
        add_rate_limit_headers(openapi);
    }
}

/// The operations that can answer 429 are those behind the write rate limit, whose admitted
/// writes carry the limit's fields too.
fn add_rate_limit_headers(openapi: &mut utoipa::openapi::OpenApi) {
    let limited = ProblemType::RateLimited.status().as_u16().to_string();
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            if !responses.contains_key(&limited) {
                continue;
            }
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.extend(
                        rate_limit_headers()
                            .into_iter()
                            .map(|(name, header)| (name.to_owned(), header)),
                    );
                }
            }
        }
    }
}

/// An operation's problem responses, one per status, for `kinds`: the problems it can answer with.
pub fn problem_responses(kinds: &[ProblemType]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ProblemType>> = BTreeMap::new();
    for &kind in kinds {
        by_status
            .entry(kind.status().as_u16())
            .or_default()
            .push(kind);
    }
    by_status
        .into_iter()
        .map(|(status, kinds)| (status.to_string(), problem_response(&kinds).into()))
        .collect()
}

/// One status's problems: the body is a [`Problem`] whose `type` is one of theirs.
fn problem_response(kinds: &[ProblemType]) -> Response {
    let uris: Vec<String> = kinds.iter().map(|kind| kind.uri()).collect();
    let description = kinds
        .iter()
        .map(|kind| format!("{} (`{}`)", kind.title(), kind.uri()))
        .collect::<Vec<_>>()
        .join("; ");
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(Problem::name()))
        .item(
            ObjectBuilder::new().property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(uris)),
            ),
        )
        .build();
    let examples = kinds.iter().map(|kind| {
        let body: serde_json::Value =
            serde_json::from_str(&kind.example().problem_json()).expect("a problem body is JSON");
        (
            kind.name(),
            ExampleBuilder::new()
                .summary(kind.title())
                .value(Some(body))
                .build(),
        )
    });
    let content = ContentBuilder::new()
        .schema(Some(Schema::AllOf(schema)))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    for &kind in kinds {
        for (name, header) in problem_headers(kind) {
            response = response.header(name, header);
        }
    }
    response.build()
}

/// The headers a problem of `kind` comes with (see `IntoResponse for ApiError`).
fn problem_headers(kind: ProblemType) -> Vec<(&'static str, Header)> {
    match kind {
        ProblemType::Unauthorized => vec![(
            "WWW-Authenticate",
            string_header("`Bearer`: a JWT is needed.", "^Bearer$"),
        )],
        ProblemType::RateLimited => {
            let mut headers = vec![retry_after("Seconds until a write is admitted again.")];
            headers.extend(rate_limit_headers());
            headers
        }
        ProblemType::Unavailable => vec![retry_after(
            "Seconds to wait before retrying: the database is busy or briefly unavailable.",
        )],
        _ => Vec::new(),
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), which every admitted
/// write carries while the limit is on and Redis answers, and every 429.
fn rate_limit_headers() -> Vec<(&'static str, Header)> {
    vec![
        (
            "RateLimit-Policy",
            string_header(
                "The caller's write quota: `q` writes at once, refilled over `w` seconds.",
                &format!("^\"{POLICY_NAME}\";q=[0-9]+;w=[0-9]+$"),
            ),
        ),
        (
            "RateLimit",
            string_header(
                "What is left of the quota now (`r` writes) and the seconds until it is whole (`t`).",
                &format!("^\"{POLICY_NAME}\";r=[0-9]+;t=[0-9]+$"),
            ),
        ),
    ]
}

fn retry_after(description: &str) -> (&'static str, Header) {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1));
    (
        "Retry-After",
        HeaderBuilder::new()
            .schema(schema)
            .description(Some(description))
            .build(),
    )
}

fn string_header(description: &str, pattern: &str) -> Header {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern));
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

/// `seat_ids` of a booking or a hold, as [`SeatSelection`](crate::domain::SeatSelection) takes them.
pub fn seat_ids() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_SEATS_PER_BOOKING))
        .unique_items(true)
        .description(Some("Seats of the event's venue, each once."))
}

/// A unit struct whose [`utoipa::IntoResponses`] are the problem responses of the listed
/// [`ProblemType`]s, for an operation's `responses(...)`:
///
/// ```ignore
/// seatbook_core::problems!(ShowProblems: NotFound, Unavailable, Internal);
/// #[utoipa::path(get, path = "/x/{id}", responses((status = 200, body = X), ShowProblems))]
/// ```
#[macro_export]
macro_rules! problems {
    ($(#[$meta:meta])* $name:ident: $($kind:ident),+ $(,)?) => {
        $(#[$meta])*
        pub(crate) struct $name;

        impl ::utoipa::IntoResponses for $name {
            fn responses() -> ::std::collections::BTreeMap<
                ::std::string::String,
                ::utoipa::openapi::RefOr<::utoipa::openapi::response::Response>,
            > {
                $crate::openapi::problem_responses(&[$($crate::error::ProblemType::$kind),+])
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_example_of_its_own_kind_with_its_status() {
        for &kind in ProblemType::ALL {
            let example = kind.example();
            assert_eq!(example.problem_type(), kind);
            let body: serde_json::Value = serde_json::from_str(&example.problem_json()).unwrap();
            assert_eq!(body["type"], kind.uri());
            assert_eq!(body["status"], kind.status().as_u16());
        }
        let mut sorted = ProblemType::ALL.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ProblemType::ALL.len(), "listed once each");
    }

    #[test]
    fn problems_of_one_status_share_a_response_naming_every_type() {
        let responses = problem_responses(&[
            ProblemType::NotFound,
            ProblemType::SeatsTaken,
            ProblemType::SeatLimit,
        ]);
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["404", "409"]);
        let conflict = serde_json::to_value(&responses["409"]).unwrap();
        let types = &conflict["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"]["type"];
        assert_eq!(
            types["enum"],
            serde_json::json!([
                "https://seatbook.dev/problems/seats-taken",
                "https://seatbook.dev/problems/seat-limit"
            ])
        );
    }
}
