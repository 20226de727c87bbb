//! Each function's Lambda entry path: an API Gateway HTTP API (payload 2.0) event, parsed by
//! lambda_http exactly as the runtime does, through the function's own router, in the identity
//! mode a deployed function runs in. The answer must match the local server's.

use crate::helpers::{spawn_app, As};
use axum::body::to_bytes;
use serde_json::{json, Value};
use tower::ServiceExt;

/// An API Gateway v2 event (from aws_lambda_events' own fixture) for one request.
fn gateway_event(method: &str, path: &str, claims: Option<Value>, body: Option<&Value>) -> String {
    let mut event: Value = serde_json::from_str(include_str!(
        "fixtures/apigw-v2-request-jwt-authorizer.json"
    ))
    .unwrap();
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = json!({});
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(raw_path);
    // `cargo lambda watch` and some integrations send none; routing must not rely on them.
    event["pathParameters"] = json!({});
    event["cookies"] = json!([]);
    event["headers"] = json!({"content-type": "application/json", "host": "api.example.com"});
    match claims {
        Some(claims) => event["requestContext"]["authorizer"]["jwt"]["claims"] = claims,
        None => {
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    event["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    event["isBase64Encoded"] = json!(false);
    event.to_string()
}

async fn invoke(router: axum::Router, event: String) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event).expect("lambda_http parses the event");
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
    let organizer = json!({"sub": "organizer-1", "cognito:groups": "[organizers]"});
    let alice = json!({"sub": "alice", "email": "alice@example.com"});

    // organizer: claims decide, and a plain user is refused.
    let organizer_fn = seatbook_core::http::finish(organizer_fn::routes(), state.clone());
    let venue_body = json!({"name": "Lambda Hall", "rows": 2, "cols": 3});
    let (status, _) = invoke(
        organizer_fn.clone(),
        gateway_event(
            "POST",
            "/api/v1/venues",
            Some(alice.clone()),
            Some(&venue_body),
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, venue) = invoke(
        organizer_fn.clone(),
        gateway_event(
            "POST",
            "/api/v1/venues",
            Some(organizer.clone()),
            Some(&venue_body),
        ),
    )
    .await;
    assert_eq!(status, 201, "{venue}");
    let event_body = json!({"name": "Lambda Night", "starts_at": "2031-02-03T20:00:00Z",
                            "venue_id": venue["id"], "price_cents": 4200});
    let (status, event) = invoke(
        organizer_fn,
        gateway_event("POST", "/api/v1/events", Some(organizer), Some(&event_body)),
    )
    .await;
    assert_eq!(status, 201);
    let event_id = event["id"].as_i64().unwrap();

    // events: the same JSON through Lambda as over HTTP.
    let events_fn = seatbook_core::http::finish(events_fn::routes(), state.clone());
    for path in [
        format!("/api/v1/events/{event_id}"),
        format!("/api/v1/events/{event_id}/availability"),
        "/api/v1/events?limit=5".to_owned(),
    ] {
        let via_lambda = invoke(events_fn.clone(), gateway_event("GET", &path, None, None)).await;
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
    let booking_fn = seatbook_core::http::finish(booking_fn::routes(), state.clone());
    let booking_body = json!({"event_id": event_id, "seat_ids": [seat]});
    let (status, _) = invoke(
        booking_fn.clone(),
        gateway_event("POST", "/api/v1/bookings", None, Some(&booking_body)),
    )
    .await;
    assert_eq!(status, 401);
    let (status, booking) = invoke(
        booking_fn.clone(),
        gateway_event(
            "POST",
            "/api/v1/bookings",
            Some(alice.clone()),
            Some(&booking_body),
        ),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["user_id"], "alice");
    let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    let via_lambda = invoke(
        booking_fn.clone(),
        gateway_event("GET", &path, Some(alice), None),
    )
    .await;
    let local = app.get(&path, As::User("alice")).await;
    assert_eq!(via_lambda, (200, local.json::<Value>().await.unwrap()));
    let (status, problem) = invoke(
        booking_fn,
        gateway_event(
            "POST",
            "/api/v1/bookings",
            Some(json!({"sub": "bob"})),
            Some(&booking_body),
        ),
    )
    .await;
    assert_eq!((status, &problem["seat_ids"]), (409, &json!([seat])));

    // metrics
    let metrics_fn = seatbook_core::http::finish(metrics_fn::routes(), state);
    let via_lambda = invoke(
        metrics_fn,
        gateway_event("GET", "/api/v1/metrics", None, None),
    )
    .await;
    let local = app.get("/api/v1/metrics", As::Anonymous).await;
    assert_eq!(via_lambda, (200, local.json::<Value>().await.unwrap()));
}
