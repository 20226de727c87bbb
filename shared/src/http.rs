//! What every function's router gets, whichever function it is and however it is served.

use crate::error::ApiError;
use crate::state::AppState;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;

/// Turns a function's routes into the service it runs: problem+json for unknown paths and wrong
/// methods, a panic answered as a logged 500 (not a dropped connection), and the shared state.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        // Every body this API takes is a few hundred bytes (a 5,000-character description at
        // most); axum's default would buffer 2 MB per request before anything could refuse it.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::NotFound("no such resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// The largest request body accepted; more is a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

/// Serialises a read for the cache (`None`: nothing found, which is never cached).
pub fn json_body<T: serde::Serialize>(value: Option<T>) -> Result<crate::cache::Loaded, ApiError> {
    value
        .map(|v| serde_json::to_vec(&v).map(bytes::Bytes::from))
        .transpose()
        .map(crate::cache::Loaded::from)
        .map_err(ApiError::internal)
}

/// A 200 with a JSON body that is already serialised (cached or freshly loaded, the same bytes).
pub fn json_response(body: bytes::Bytes) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
