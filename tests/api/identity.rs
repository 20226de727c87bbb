use crate::helpers::{assert_problem, spawn_app, spawn_app_with, As, Spawn, ORGANIZER};
use serde_json::json;

#[tokio::test]
async fn dev_identity_headers_are_ignored_when_dev_mode_is_off() {
    let app = spawn_app_with(Spawn {
        dev_identity: false,
        ..Spawn::default()
    })
    .await;
    let venue = json!({"name": "Hall", "rows": 1, "cols": 1});
    assert_problem(app.post("/api/v1/venues", ORGANIZER, &venue).await, 401).await;
    let booking = json!({"event_id": 1, "seat_ids": [1]});
    let response = app
        .post("/api/v1/bookings", As::User("alice"), &booking)
        .await;
    let problem = assert_problem(response, 401).await;
    assert_eq!(problem["title"], "Authentication required");
    // Reads stay public.
    assert_eq!(app.get("/api/v1/events", As::Anonymous).await.status(), 200);
}

#[tokio::test]
async fn only_organizers_may_change_the_catalog() {
    let app = spawn_app().await;
    let venue = json!({"name": "Hall", "rows": 1, "cols": 1});
    assert_problem(app.post("/api/v1/venues", As::Anonymous, &venue).await, 401).await;
    assert_problem(
        app.post("/api/v1/venues", As::User("alice"), &venue).await,
        403,
    )
    .await;
    assert_eq!(
        app.post("/api/v1/venues", ORGANIZER, &venue).await.status(),
        201
    );
}

#[tokio::test]
async fn booking_requires_an_identity() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    let response = app
        .claim("/api/v1/bookings", As::Anonymous, event_id, &seats[..1])
        .await;
    assert_problem(response, 401).await;
    assert_problem(app.get("/api/v1/bookings", As::Anonymous).await, 401).await;
}
