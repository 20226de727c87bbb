use crate::helpers::{assert_problem, spawn_app, As, ORGANIZER};
use serde_json::{json, Value};

#[tokio::test]
async fn an_organizer_creates_a_venue_and_its_seats_are_generated_in_row_order() {
    let app = spawn_app().await;
    let venue = app.create_venue("Royal Hall", 3, 4).await;
    assert_eq!(venue["total_seats"], 12);
    let event = app.create_event(venue["id"].as_i64().unwrap(), 1999).await;
    assert_eq!(event["venue_name"], "Royal Hall");
    assert_eq!(event["price_cents"], 1999);

    let availability = app.availability(event["id"].as_i64().unwrap()).await;
    let labels: Vec<String> = availability["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}{}", s["row"].as_str().unwrap(), s["number"]))
        .collect();
    assert_eq!(
        labels,
        ["A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4", "C1", "C2", "C3", "C4"]
    );
    assert!(availability["seats"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "available"));
}

#[tokio::test]
async fn a_second_venue_with_the_same_name_is_a_conflict() {
    let app = spawn_app().await;
    app.create_venue("Arena", 1, 1).await;
    let response = app
        .post(
            "/api/v1/venues",
            ORGANIZER,
            &json!({"name": "Arena", "rows": 2, "cols": 2}),
        )
        .await;
    assert_problem(response, 409).await;
}

#[tokio::test]
async fn venues_of_impossible_sizes_are_rejected() {
    let app = spawn_app().await;
    for (rows, cols) in [(0, 10), (5, 0), (-3, 4), (201, 1), (1, 1000)] {
        let response = app
            .post(
                "/api/v1/venues",
                ORGANIZER,
                &json!({"name": "Odd", "rows": rows, "cols": cols}),
            )
            .await;
        assert_problem(response, 422).await;
    }
}

#[tokio::test]
async fn an_event_in_an_unknown_venue_is_not_found() {
    let app = spawn_app().await;
    let ghost = json!({"name": "Ghost", "starts_at": "2031-01-01T00:00:00Z", "venue_id": 999, "price_cents": 100});
    assert_problem(app.post("/api/v1/events", ORGANIZER, &ghost).await, 404).await;
}

#[tokio::test]
async fn invalid_events_are_unprocessable() {
    let app = spawn_app().await;
    let venue = app.create_venue("Club", 1, 1).await;
    let base = json!({"name": "Gig", "starts_at": "2031-01-01T00:00:00Z", "venue_id": venue["id"], "price_cents": 100});
    for (field, value) in [
        ("name", json!("   ")),
        ("starts_at", json!("next friday")),
        ("starts_at", json!("2001-01-01T00:00:00Z")),
        ("price_cents", json!(-5)),
    ] {
        let mut body = base.clone();
        body[field] = value;
        assert_problem(app.post("/api/v1/events", ORGANIZER, &body).await, 422).await;
    }
}

#[tokio::test]
async fn upcoming_events_are_listed_in_start_order_page_by_page() {
    let app = spawn_app().await;
    let venue = app.create_venue("Stadium", 1, 2).await;
    let mut expected = Vec::new();
    for day in [5, 3, 9, 1, 7] {
        let response = app
            .post(
                "/api/v1/events",
                ORGANIZER,
                &json!({"name": format!("Day {day}"), "starts_at": format!("2031-01-0{day}T20:00:00Z"),
                        "venue_id": venue["id"], "price_cents": 100}),
            )
            .await;
        assert_eq!(response.status(), 201);
        expected.push((
            day,
            response.json::<Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap(),
        ));
    }
    expected.sort();
    let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut path = "/api/v1/events?limit=2".to_owned();
    loop {
        let page: Value = app.get(&path, As::Anonymous).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    let one: Value = app
        .get(&format!("/api/v1/events/{}", expected[0]), As::Anonymous)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "Day 1");
}

#[tokio::test]
async fn unknown_events_and_bad_listing_parameters_get_clear_errors() {
    let app = spawn_app().await;
    assert_problem(app.get("/api/v1/events/424242", As::Anonymous).await, 404).await;
    assert_problem(
        app.get("/api/v1/events/424242/availability", As::Anonymous)
            .await,
        404,
    )
    .await;
    assert_problem(
        app.get("/api/v1/events/not-a-number", As::Anonymous).await,
        404,
    )
    .await;
    assert_problem(app.get("/api/v1/events?limit=0", As::Anonymous).await, 400).await;
    assert_problem(
        app.get("/api/v1/events?limit=ten", As::Anonymous).await,
        400,
    )
    .await;
    assert_problem(
        app.get("/api/v1/events?cursor=garbage", As::Anonymous)
            .await,
        400,
    )
    .await;
    assert_problem(app.get("/api/v1/nothing-here", As::Anonymous).await, 404).await;
    let wrong_method = app
        .request(reqwest::Method::DELETE, "/api/v1/events", As::Anonymous)
        .send()
        .await
        .unwrap();
    assert_problem(wrong_method, 405).await;
}
