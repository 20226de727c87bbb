//! `GET /api/v1/openapi.json`: the API's OpenAPI document, as committed at the repository root.
//!
//! The document covers every function's operations, so it is assembled where all of them are
//! visible: local-api (tools/local-api/src/openapi.rs), which depends on every function crate.
//! This function serves the committed copy instead of depending on the booking, organizer and
//! metrics crates (each function stays a binary of its own code and the shared core); a test
//! (tests/api/openapi.rs) fails whenever the committed copy and the generated document differ.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// openapi.json at the repository root.
pub(crate) const OPENAPI_JSON: &str = include_str!("../../../openapi.json");

/// This document
///
/// The OpenAPI 3.1 description of every operation of the API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "get_openapi",
    tag = "events",
    responses((status = 200, description = "This document.", body = Object)),
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
