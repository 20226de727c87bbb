//! Each function's Lambda entry path: an API Gateway HTTP API (payload 2.0) event, parsed by
//! lambda_http exactly as the runtime does, through the function's own router, in the identity
//! mode a deployed function runs in. The answer must match the local server's.

use crate::helpers::{spawn_app, As, ORGANIZER};
use axum::body::to_bytes;
use serde_json::{json, Value};
pub(crate) use test_support::gateway_event;
use test_support::sample_event;
use tower::ServiceExt;

/// The claims API Gateway's JWT authorizer passes for a member of the Cognito group `organizers`.
pub(crate) fn organizer_claims() -> Value {
    json!({"sub": "organizer-1", "cognito:groups": "[organizers]"})
}

/// A venue of `rows`×`cols` named "<name> Hall" and an event on it, both created through the
/// organizer function with an organizer's claims (each a 201); the event's id.
pub(crate) async fn organize_event(
    organizer_fn: &axum::Router,
    name: &str,
    rows: i64,
    cols: i64,
) -> i64 {
    let venue = json!({"name": format!("{name} Hall"), "rows": rows, "cols": cols});
    let venue = organize(organizer_fn, "/api/v1/venues", venue).await;
    let event = json!({"name": format!("{name} Night"), "starts_at": "2031-02-03T20:00:00Z",
                       "venue_id": venue["id"], "price_cents": 4200});
    organize(organizer_fn, "/api/v1/events", event).await["id"]
        .as_i64()
        .unwrap()
}

/// What the organizer function made of `body`, POSTed to `path` with an organizer's claims
/// (asserted a 201).
async fn organize(organizer_fn: &axum::Router, path: &str, body: Value) -> Value {
    let claims = Some(organizer_claims());
    let (status, made) = call(organizer_fn, "POST", path, claims, Some(&body)).await;
    assert_eq!(status, 201, "{made}");
    made
}

/// The answer of the function `router` to an API Gateway event of `method` on `path`, with the
/// authorizer's `claims` (if any) and the JSON `body` (if any).
pub(crate) async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    claims: Option<Value>,
    body: Option<&Value>,
) -> (u16, Value) {
    invoke(router.clone(), gateway_event(method, path, claims, body)).await
}

pub(crate) async fn invoke(router: axum::Router, event: Value) -> (u16, Value) {
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("lambda_http parses the event");
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_function_answers_an_api_gateway_event_as_the_local_server_does() {
    let app = spawn_app().await;
    let state = app.lambda_state();
    let alice = json!({"sub": "alice", "email": "alice@example.com"});

    // organizer: claims decide, and a plain user is refused.
    let organizer_fn = seatbook_core::http::finish(organizer_fn::routes(), state.clone());
    let venue_body = json!({"name": "Lambda Hall", "rows": 2, "cols": 3});
    let claims = Some(alice.clone());
    let (status, _) = call(
        &organizer_fn,
        "POST",
        "/api/v1/venues",
        claims,
        Some(&venue_body),
    )
    .await;
    assert_eq!(status, 403);
    let event_id = organize_event(&organizer_fn, "Lambda", 2, 3).await;

    // events: the same JSON through Lambda as over HTTP.
    let events_fn = seatbook_core::http::finish(events_fn::routes(), state.clone());
    for path in [
        format!("/api/v1/events/{event_id}"),
        format!("/api/v1/events/{event_id}/availability"),
        "/api/v1/events?limit=5".to_owned(),
    ] {
        let via_lambda = call(&events_fn, "GET", &path, None, None).await;
        let local = app.get(&path, As::Anonymous).await;
        let via_http = (
            local.status().as_u16(),
            local.json::<Value>().await.unwrap(),
        );
        assert_eq!(via_lambda, via_http, "{path}");
    }
    let seat = app.availability(event_id).await["seats"][0]["id"]
        .as_i64()
        .unwrap();

    // booking: the caller is the JWT subject; no claims, no booking.
    let booking_fn = seatbook_core::http::finish(booking_fn::routes(&state), state.clone());
    let booking_body = json!({"event_id": event_id, "seat_ids": [seat]});
    let book = |claims: Option<Value>| {
        call(
            &booking_fn,
            "POST",
            "/api/v1/bookings",
            claims,
            Some(&booking_body),
        )
    };
    let (status, _) = book(None).await;
    assert_eq!(status, 401);
    let (status, booking) = book(Some(alice.clone())).await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["user_id"], "alice");
    let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    let via_lambda = call(&booking_fn, "GET", &path, Some(alice), None).await;
    let local = app.get(&path, As::User("alice")).await;
    assert_eq!(via_lambda, (200, local.json::<Value>().await.unwrap()));
    let (status, problem) = book(Some(json!({"sub": "bob"}))).await;
    assert_eq!((status, &problem["seat_ids"]), (409, &json!([seat])));

    // metrics
    let metrics_fn = seatbook_core::http::finish(metrics_fn::routes(), state);
    let (status, _) = call(&metrics_fn, "GET", "/api/v1/metrics", None, None).await;
    assert_eq!(status, 401, "metrics are for organizers");
    let claims = Some(organizer_claims());
    let (status, via_lambda) = call(&metrics_fn, "GET", "/api/v1/metrics", claims, None).await;
    let local = app.get("/api/v1/metrics", ORGANIZER).await;
    let local: Value = local.json().await.unwrap();
    assert_eq!(status, 200);
    // The database estimates may move between the two calls; the rest must match.
    assert_eq!(via_lambda["bookings"], local["bookings"]);
    assert_eq!(
        via_lambda["cache"]["available"],
        local["cache"]["available"]
    );
}

#[tokio::test]
async fn every_sample_event_in_events_is_answered_by_its_function_as_written() {
    let app = spawn_app().await;
    let state = app.lambda_state();
    let organizer_fn = seatbook_core::http::finish(organizer_fn::routes(), state.clone());
    let events_fn = seatbook_core::http::finish(events_fn::routes(), state.clone());
    let booking_fn = seatbook_core::http::finish(booking_fn::routes(&state), state.clone());
    let metrics_fn = seatbook_core::http::finish(metrics_fn::routes(), state);

    // In the order docs/dev-loop.md invokes them on a fresh database: the samples name venue 1,
    // event 1 and its seats 1 and 2.
    let steps = [
        (&organizer_fn, "organizer-create-venue.json", 201),
        (&organizer_fn, "organizer-create-event.json", 201),
        (&events_fn, "events-list.json", 200),
        (&events_fn, "events-get.json", 200),
        (&events_fn, "events-availability.json", 200),
        (&booking_fn, "booking-create.json", 201),
        (&booking_fn, "booking-list.json", 200),
        (&metrics_fn, "metrics-get.json", 200),
    ];
    for (function, name, expected) in steps {
        let (status, body) = invoke(function.clone(), sample_event(name)).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
    let (status, problem) = invoke(booking_fn, sample_event("booking-create.json")).await;
    // API Gateway's request id is the problem's instance (and on every log line of the request).
    assert_eq!(
        problem["instance"],
        format!(
            "urn:seatbook:request:{}",
            sample_event("booking-create.json")["requestContext"]["requestId"]
                .as_str()
                .unwrap()
        )
    );
    assert_eq!(
        (status, &problem["seat_ids"]),
        (409, &json!([1, 2])),
        "the same seats again: {problem}"
    );
    // Straight from the tickets (another reader's map may lag the booking by up to a second).
    let booked: Vec<i64> = app
        .column("SELECT seat_id FROM tickets WHERE event_id = 1 ORDER BY seat_id")
        .await;
    assert_eq!(booked, [1, 2]);
}
