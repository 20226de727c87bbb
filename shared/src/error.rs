//! The API's one error type, and the one place that turns it into a response.
//!
//! Every error leaves as RFC 9457 `application/problem+json` with `type`, `title`, `status` and
//! `detail`. What went wrong inside (SQL errors, pool timeouts) is logged with the request's span and
//! never shown to the caller.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Base of every problem `type` URI; the suffix names the problem.
pub const PROBLEM_TYPE_BASE: &str = "https://seatbook.dev/problems/";

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON, wrong JSON types, unparseable query parameters.
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication is required")]
    Unauthorized,
    #[error("this action is reserved for organizers")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Some of the requested seats already belong to another booking.
    #[error("seats already taken")]
    SeatsTaken { seat_ids: Vec<i64> },
    /// Fewer free seats than a best-available request asked for (of its category, section, kind).
    #[error("{requested} seat(s) were asked for and only {available} are free")]
    NotEnoughSeats { available: usize, requested: usize },
    /// A waitlist asked for seats that are free now: book them instead.
    #[error("{available} matching seat(s) are free now, enough for the {requested} asked for: book them instead of waiting")]
    SeatsAvailable { available: usize, requested: usize },
    /// A booking or hold outside the event's sales window (not open yet, closed, or started).
    #[error("{reason}")]
    SalesClosed {
        reason: String,
        sales_start_at: Option<DateTime<Utc>>,
        sales_end_at: DateTime<Utc>,
    },
    /// The booking would take the caller past the event's per-user seat cap.
    #[error(
        "this event allows {limit} seat(s) per person; you already have {current}, so {requested} more would be too many"
    )]
    SeatLimit {
        limit: i32,
        current: i64,
        requested: usize,
    },
    /// The event has no waiting room to join.
    #[error("event {0} has no waiting room: its seats are booked without queueing")]
    NoWaitingRoom(i64),
    /// A booking or hold of an event with a waiting room, without a valid admission to it.
    #[error("{0}")]
    AdmissionRequired(crate::admission::Refusal),
    /// A uniquely named thing exists already (e.g. a venue name).
    #[error("{0}")]
    Duplicate(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error(
        "the request body is larger than this API accepts ({} bytes)",
        crate::http::MAX_BODY_BYTES
    )]
    PayloadTooLarge,
    /// Well-formed input that breaks a rule of the domain.
    #[error("{0}")]
    Unprocessable(String),
    /// It existed, but no longer does (an expired hold).
    #[error("{0}")]
    Gone(String),
    /// The caller's write rate limit is spent for now ([`crate::ratelimit`]).
    #[error("too many writes in a short time")]
    RateLimited(crate::ratelimit::Quota),
    /// The database is unreachable or saturated; the client may retry.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// An RFC 9457 problem, as every error response carries it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// What kind of problem: `https://seatbook.dev/problems/<name>`, one URI per kind.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    type_: String,
    /// The kind's title, the same for every occurrence.
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// This occurrence, in words for a person.
    detail: String,
    /// This occurrence: `urn:seatbook:request:<request id>`, the id every log line of the request
    /// carries, for a support conversation that starts from a screenshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    #[serde(flatten)]
    extension: ProblemExtension<'a>,
}

/// The members some kinds of problem add (RFC 9457 extension members), as one value.
#[derive(Default, Serialize, utoipa::ToSchema)]
pub(crate) struct ProblemExtension<'a> {
    /// `seats-taken`: the requested seats someone else has.
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_ids: Option<&'a [i64]>,
    /// `not-enough-seats`, `seats-available`: how many seats of those the request could have are
    /// free.
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<usize>,
    /// `sales-closed`: when the sale opens (absent: since the event was created).
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_start_at: Option<DateTime<Utc>>,
    /// `sales-closed`: when the sale closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_end_at: Option<DateTime<Utc>>,
    /// `admission-required`: what is wrong with the admission: `missing`, `expired`,
    /// `other-user`, `other-event` or `bad-signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    reason: Option<&'static str>,
    /// `seat-limit`: seats one person may have for the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i32>,
    /// `seat-limit`: seats the caller has for the event already.
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<i64>,
}

/// The kinds of problem this API reports, in one table: each kind's HTTP status, the name its
/// `type` URI ends in, and its title. Each [`ApiError`] variant is one of them; the OpenAPI
/// document lists, per operation, the ones it can answer with ([`crate::openapi`]).
macro_rules! problem_types {
    ($($kind:ident => $status:ident, $name:literal, $title:literal;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum ProblemType {
            $($kind,)*
        }

        impl ProblemType {
            /// Every kind, in the table's order.
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$kind,)*];

            /// The kind's row: status, name, title.
            fn row(self) -> (StatusCode, &'static str, &'static str) {
                match self {
                    $(ProblemType::$kind => (StatusCode::$status, $name, $title),)*
                }
            }
        }
    };
}

problem_types! {
    BadRequest => BAD_REQUEST, "bad-request", "Bad request";
    Unauthorized => UNAUTHORIZED, "unauthorized", "Authentication required";
    Forbidden => FORBIDDEN, "forbidden", "Forbidden";
    NotFound => NOT_FOUND, "not-found", "Not found";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed";
    SeatsTaken => CONFLICT, "seats-taken", "Seats already taken";
    NotEnoughSeats => CONFLICT, "not-enough-seats", "Not enough seats";
    SeatsAvailable => CONFLICT, "seats-available", "Seats are available";
    SalesClosed => CONFLICT, "sales-closed", "Sales are closed";
    SeatLimit => CONFLICT, "seat-limit", "Seat limit reached";
    NoWaitingRoom => CONFLICT, "no-waiting-room", "No waiting room";
    AdmissionRequired => FORBIDDEN, "admission-required", "Admission required";
    Duplicate => CONFLICT, "duplicate", "Already exists";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large";
    Validation => UNPROCESSABLE_ENTITY, "validation", "Invalid request";
    Gone => GONE, "gone", "Gone";
    RateLimited => TOO_MANY_REQUESTS, "rate-limited", "Too many requests";
    Unavailable => SERVICE_UNAVAILABLE, "unavailable", "Service unavailable";
    Internal => INTERNAL_SERVER_ERROR, "internal", "Internal server error";
}

impl ProblemType {
    pub fn status(self) -> StatusCode {
        self.row().0
    }

    /// The last segment of the `type` URI.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    pub fn title(self) -> &'static str {
        self.row().2
    }

    /// The `type` member of this kind's problems.
    pub fn uri(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.name())
    }
}

impl ApiError {
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("{what} was not found"))
    }

    pub fn internal(err: impl Into<BoxError>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        self.problem_type().status()
    }

    pub fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::BadRequest(_) => ProblemType::BadRequest,
            ApiError::Unauthorized => ProblemType::Unauthorized,
            ApiError::Forbidden => ProblemType::Forbidden,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::MethodNotAllowed => ProblemType::MethodNotAllowed,
            ApiError::SeatsTaken { .. } => ProblemType::SeatsTaken,
            ApiError::NotEnoughSeats { .. } => ProblemType::NotEnoughSeats,
            ApiError::SeatsAvailable { .. } => ProblemType::SeatsAvailable,
            ApiError::SalesClosed { .. } => ProblemType::SalesClosed,
            ApiError::SeatLimit { .. } => ProblemType::SeatLimit,
            ApiError::NoWaitingRoom(_) => ProblemType::NoWaitingRoom,
            ApiError::AdmissionRequired(_) => ProblemType::AdmissionRequired,
            ApiError::Duplicate(_) => ProblemType::Duplicate,
            ApiError::UnsupportedMediaType => ProblemType::UnsupportedMediaType,
            ApiError::PayloadTooLarge => ProblemType::PayloadTooLarge,
            ApiError::Unprocessable(_) => ProblemType::Validation,
            ApiError::Gone(_) => ProblemType::Gone,
            ApiError::RateLimited(_) => ProblemType::RateLimited,
            ApiError::Unavailable(_) => ProblemType::Unavailable,
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::SeatsTaken { seat_ids } => format!(
                "{} of the requested seats {} already booked: no seat was booked",
                seat_ids.len(),
                if seat_ids.len() == 1 { "is" } else { "are" }
            ),
            ApiError::Unavailable(_) => {
                "the service is busy or briefly unavailable; please retry".to_owned()
            }
            ApiError::RateLimited(quota) => format!(
                "too many writes in a short time: {} at once, refilled over {} s; retry in {} s",
                quota.burst,
                quota.window_seconds,
                quota.retry_after_seconds()
            ),
            ApiError::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ApiError {
    /// The RFC 9457 body this error is sent with.
    pub fn problem_json(&self) -> String {
        let kind = self.problem_type();
        let body = Problem {
            type_: kind.uri(),
            title: kind.title(),
            status: self.status().as_u16(),
            detail: self.detail(),
            instance: crate::http::request_id().map(|id| format!("urn:seatbook:request:{id}")),
            extension: self.extension(),
        };
        serde_json::to_string(&body).expect("a problem always serialises")
    }

    /// The extension members of this error's problem, if its kind has any.
    fn extension(&self) -> ProblemExtension<'_> {
        match self {
            ApiError::SeatsTaken { seat_ids } => ProblemExtension {
                seat_ids: Some(seat_ids),
                ..ProblemExtension::default()
            },
            ApiError::NotEnoughSeats { available, .. }
            | ApiError::SeatsAvailable { available, .. } => ProblemExtension {
                available: Some(*available),
                ..ProblemExtension::default()
            },
            ApiError::SalesClosed {
                sales_start_at,
                sales_end_at,
                ..
            } => ProblemExtension {
                sales_start_at: *sales_start_at,
                sales_end_at: Some(*sales_end_at),
                ..ProblemExtension::default()
            },
            ApiError::AdmissionRequired(refusal) => ProblemExtension {
                reason: Some(refusal.code()),
                ..ProblemExtension::default()
            },
            ApiError::SeatLimit { limit, current, .. } => ProblemExtension {
                limit: Some(*limit),
                current: Some(*current),
                ..ProblemExtension::default()
            },
            _ => ProblemExtension::default(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, source = ?cause, "request failed")
            }
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => tracing::debug!(status = status.as_u16(), error = %self, "request rejected"),
        }
        let mut response = (status, self.problem_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited(quota) => {
                headers.insert(header::RETRY_AFTER, quota.retry_after_seconds().into());
                quota.write_fields(headers);
            }
            _ => {}
        }
        response
    }
}
