//! The API's OpenAPI document, assembled from every function's operations.
//!
//! Each function documents its own operations (`#[utoipa::path]` beside its handlers, listed by
//! the function crate's `Api`). The whole document needs all of them, so it is assembled here, in
//! the one crate that depends on every function, as [`crate::app`] merges their routes. The events
//! function serves the committed copy (openapi.json at the repository root; see
//! `events_fn::openapi`) instead of depending on the other functions' crates, and
//! tests/api/openapi.rs fails whenever that copy and this document differ.

use seatbook_core::openapi::Common;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "seatbook",
        version = "1.0.0",
        description = "Seat booking: a public catalog of events with their seat maps, bookings and \
            holds for signed-in buyers, and catalog writes for organizers.\n\n\
            Every error is an RFC 9457 `application/problem+json` body whose `type` names the \
            problem; each operation lists the ones it can answer with. Lists are pages: pass a \
            page's `next_cursor` as `cursor` for the next one. Writes of bookings and holds take \
            an `Idempotency-Key`. Every booking write counts against the caller's write rate \
            limit: admitted writes carry `RateLimit-Policy` and `RateLimit`, refused ones are a 429 \
            with `Retry-After`.\n\n\
            Deployed, API Gateway verifies the caller's JWT before any function runs. The local \
            development server takes a stand-in identity instead, which this document does not \
            describe (docs/dev-loop.md).",
        license(name = "MIT"),
    ),
    tags(
        (name = "events", description = "The public catalog: upcoming events, one event, its seat map (the events function)."),
        (name = "booking", description = "A buyer's bookings and holds (the booking function)."),
        (name = "organizer", description = "Venues and events, for organizers (the organizer function)."),
        (name = "metrics", description = "Live figures, for organizers (the metrics function)."),
    ),
    modifiers(&Functions, &Common),
)]
struct Api;

/// Every function's operations, merged (two functions share `/api/v1/events`: GET and POST).
struct Functions;

impl Modify for Functions {
    fn modify(&self, openapi: &mut Document) {
        for part in [
            events_fn::Api::openapi(),
            booking_fn::Api::openapi(),
            organizer_fn::Api::openapi(),
            metrics_fn::Api::openapi(),
        ] {
            openapi.merge(part);
        }
    }
}

/// The API's OpenAPI document.
pub fn document() -> Document {
    Api::openapi()
}

/// The document as committed and served: pretty JSON, ending in a newline.
pub fn document_json() -> String {
    let json = document()
        .to_pretty_json()
        .expect("the document serialises");
    // Each line comes back with its newline, so the file ends with one.
    json.lines().map(camel_case_link_fields).collect()
}

/// utoipa 5 writes a Link object's fields in snake case (`operation_id`; fixed in utoipa 6), which
/// no OpenAPI tool reads: schemathesis would see links without a target. No schema, parameter or
/// example of this API has a member of those names, so the keys are renamed line by line, which
/// keeps the document's order.
fn camel_case_link_fields(line: &str) -> String {
    let indent = &line[..line.len() - line.trim_start().len()];
    let renamed = [
        ("\"operation_id\": ", "\"operationId\": "),
        ("\"operation_ref\": ", "\"operationRef\": "),
        ("\"request_body\": ", "\"requestBody\": "),
    ]
    .into_iter()
    .find_map(|(snake, camel)| {
        line.trim_start()
            .strip_prefix(snake)
            .map(|rest| format!("{indent}{camel}{rest}\n"))
    });
    renamed.unwrap_or_else(|| format!("{line}\n"))
}
