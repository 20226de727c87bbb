use crate::helpers::{assert_problem, spawn_app, As};
use serde_json::json;

#[tokio::test]
async fn every_bad_booking_request_gets_its_4xx_and_never_a_5xx() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(3, 5).await;
    let (_, other_venue_seats) = app.seed_event(1, 2).await;

    let json_cases = [
        (
            "empty seat list",
            json!({"event_id": event_id, "seat_ids": []}),
            422,
        ),
        (
            "duplicate seats",
            json!({"event_id": event_id, "seat_ids": [seats[0], seats[0]]}),
            422,
        ),
        (
            "too many seats",
            json!({"event_id": event_id, "seat_ids": seats[..11]}),
            422,
        ),
        (
            "seat of another venue",
            json!({"event_id": event_id, "seat_ids": [seats[0], other_venue_seats[0]]}),
            422,
        ),
        (
            "seat that does not exist",
            json!({"event_id": event_id, "seat_ids": [987654]}),
            422,
        ),
        (
            "unknown event",
            json!({"event_id": 987654, "seat_ids": [seats[0]]}),
            404,
        ),
        (
            "event id of the wrong type",
            json!({"event_id": "one", "seat_ids": [seats[0]]}),
            400,
        ),
        (
            "seat ids of the wrong type",
            json!({"event_id": event_id, "seat_ids": "A1"}),
            400,
        ),
        (
            "seat id of the wrong type",
            json!({"event_id": event_id, "seat_ids": [1.5]}),
            400,
        ),
        ("missing seat ids", json!({"event_id": event_id}), 400),
        ("not an object", json!([1, 2]), 400),
    ];
    for (case, body, status) in json_cases {
        let response = app.post("/api/v1/bookings", As::User("alice"), &body).await;
        assert_eq!(response.status(), status, "{case}");
        assert_problem(response, status).await;
    }

    let malformed = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("alice"))
        .header("content-type", "application/json")
        .body("{\"event_id\": 1, \"seat_ids\": [1,")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;

    let not_json = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("alice"))
        .body("event_id=1")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, 415).await;

    assert_problem(
        app.get("/api/v1/bookings/not-a-uuid", As::User("alice"))
            .await,
        404,
    )
    .await;
    assert_problem(
        app.get("/api/v1/bookings?limit=0", As::User("alice")).await,
        400,
    )
    .await;

    // None of it left a trace.
    assert_eq!(app.count("SELECT count(*) FROM tickets").await, 0);
}

#[tokio::test]
async fn a_rejected_request_does_not_leak_internals() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 1).await;
    app.book("alice", event_id, &seats).await;
    let problem = assert_problem(app.book("bob", event_id, &seats).await, 409).await;
    let text = problem.to_string();
    for leak in [
        "tickets_event_seat_key",
        "duplicate key",
        "SQLSTATE",
        "23505",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem_and_nothing_is_booked() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    // Valid JSON, padded past the limit with whitespace.
    let body = format!(
        "{{\"event_id\": {event_id}, \"seat_ids\": [{}]{}}}",
        seats[0],
        " ".repeat(65 * 1024)
    );
    for path in ["/api/v1/bookings", "/api/v1/holds", "/api/v1/venues"] {
        let response = app
            .request(reqwest::Method::POST, path, As::Organizer("org-1"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 413).await;
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .ends_with("/payload-too-large"),
            "{path}: {problem}"
        );
    }
    assert_eq!(app.tickets_for_seat(event_id, seats[0]).await, 0);
    // Just under the limit is an ordinary request.
    let body = format!(
        "{{\"event_id\": {event_id}, \"seat_ids\": [{}]{}}}",
        seats[0],
        " ".repeat(60 * 1024)
    );
    let response = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("ann"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_problem_names_its_request_as_instance_and_the_id_comes_back_in_a_header() {
    let app = spawn_app().await;
    let response = app
        .request(reqwest::Method::GET, "/api/v1/events/424242", As::Anonymous)
        .header("x-request-id", "support-ticket-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "support-ticket-42");
    let problem = assert_problem(response, 404).await;
    assert_eq!(
        problem["instance"],
        "urn:seatbook:request:support-ticket-42"
    );

    // Without one (or with one that is not a plain short id), the server makes one up.
    for given in [None, Some("has spaces and \"quotes\"")] {
        let mut request = app.request(reqwest::Method::GET, "/api/v1/nowhere", As::Anonymous);
        if let Some(given) = given {
            request = request.header("x-request-id", given);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        let problem = assert_problem(response, 404).await;
        assert_eq!(problem["instance"], format!("urn:seatbook:request:{id}"));
    }
}

/// JSON Schema (so the OpenAPI document) counts `3.0` as the integer 3; so does the API.
#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_taken_as_an_integer() {
    let app = spawn_app().await;
    let venue = app
        .post(
            "/api/v1/venues",
            crate::helpers::ORGANIZER,
            &json!({"name": "Float Hall", "rows": 2.0, "cols": 3.0}),
        )
        .await;
    assert_eq!(venue.status(), 201);
    let venue: serde_json::Value = venue.json().await.unwrap();
    assert_eq!(venue["total_seats"], 6);
    let (event_id, seats) = app.seed_event(1, 2).await;
    let booking = app
        .post(
            "/api/v1/bookings",
            As::User("alice"),
            &json!({"event_id": event_id as f64, "seat_ids": [seats[0] as f64]}),
        )
        .await;
    assert_eq!(booking.status(), 201);
    let fraction = app
        .post(
            "/api/v1/bookings",
            As::User("alice"),
            &json!({"event_id": event_id, "seat_ids": [seats[1] as f64 + 0.5]}),
        )
        .await;
    assert_problem(fraction, 400).await;
}
