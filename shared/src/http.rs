//! What every function's router gets, whichever function it is and however it is served.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use lambda_http::request::RequestContext;
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The header a request id is returned in (and, locally, may be given in).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if any: API Gateway's `requestContext.requestId`
/// deployed, the caller's `x-request-id` locally, else a fresh UUID.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(String::clone).ok()
}

/// Turns a function's routes into the service it runs: problem+json for unknown paths and wrong
/// methods, a panic answered as a logged 500 (not a dropped connection), a deadline, a span per
/// request carrying its id (so every log line of the request says which one it was), and the
/// shared state. The id and the span are tower-http's layers; only choosing which id to trust is
/// this service's own.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    routes
        // Every body this API takes is a few hundred bytes (a 5,000-character description at
        // most); axum's default would buffer 2 MB per request before anything could refuse it.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(|| async { ApiError::NotFound("no such resource".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(within_deadline))
        .layer(axum::middleware::from_fn(with_request_id))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(answered)
                // ApiError logs what failed, with its cause, once.
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .layer(axum::middleware::map_request(trusted_request_id))
        .with_state(state)
}

/// The id a request is known by: API Gateway's `requestContext.requestId` deployed, else the
/// caller's `x-request-id` when it is a short id of plain visible characters (it is echoed into
/// logs and bodies), else none, and [`SetRequestIdLayer`] makes a UUID.
async fn trusted_request_id(mut request: Request) -> Request {
    let gateway = match request.extensions().get() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .request_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .and_then(|id| HeaderValue::from_str(id).ok()),
        _ => None,
    };
    let headers = request.headers_mut();
    match gateway {
        Some(id) => {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        None => {
            let usable = headers
                .get(REQUEST_ID_HEADER)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|id| {
                    (1..=128).contains(&id.len())
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
                });
            if !usable {
                headers.remove(REQUEST_ID_HEADER);
            }
        }
    }
    request
}

fn id_of(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn request_span(request: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %id_of(request),
        method = %request.method(),
        path = %request.uri().path(),
    )
}

fn answered(response: &Response, latency: std::time::Duration, _: &tracing::Span) {
    tracing::debug!(
        status = response.status().as_u16(),
        ms = latency.as_secs_f64() * 1000.0,
        "request answered"
    );
}

/// The request's id in scope (task-local) for the whole handler, so a problem+json body names it
/// as its `instance`.
async fn with_request_id(request: Request, next: Next) -> Response {
    let id = id_of(&request);
    REQUEST_ID.scope(id, next.run(request)).await
}

/// How long a request may take before it is answered 503 with `Retry-After`: inside the
/// functions' 10 s timeout with room for a cold start, and above every database wait (a
/// connection: 2 s; a lock: 2 s), so those answer first, with their own cause in the logs.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_millis(4500);

/// Answers 503 with `Retry-After` when the handler has not finished by [`REQUEST_DEADLINE`] (a
/// database that stopped answering): never a hang, never a bare Lambda timeout. A write cut off
/// here may still commit; a client retrying with its `Idempotency-Key` gets its outcome.
async fn within_deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within the request deadline of {REQUEST_DEADLINE:?}"),
        )))
        .into_response(),
    }
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

/// Serialises a read for the cache (`None`: nothing found).
pub fn json_body<T: serde::Serialize>(
    value: Option<T>,
) -> Result<seatbook_cache::Loaded, ApiError> {
    value
        .map(|v| serde_json::to_vec(&v).map(bytes::Bytes::from))
        .transpose()
        .map(seatbook_cache::Loaded::from)
        .map_err(ApiError::internal)
}
