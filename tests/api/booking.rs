use crate::helpers::{assert_problem, spawn_app, As};
use serde_json::Value;

#[tokio::test]
async fn a_customer_books_two_seats_and_nobody_can_book_them_again() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(5, 10).await;

    let before = app.availability(event_id).await;
    assert_eq!(
        (
            before["total_seats"].as_i64(),
            before["available_seats"].as_i64(),
            before["booked_seats"].as_i64()
        ),
        (Some(50), Some(50), Some(0))
    );

    let response = app.book("alice", event_id, &seats[..2]).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let booking: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap())
    );
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["user_id"], "alice");
    assert_eq!(booking["event_id"], event_id);
    assert_eq!(booking["total_cents"], 5000);
    let tickets = booking["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert_eq!(
        (tickets[0]["row"].as_str(), tickets[0]["number"].as_i64()),
        (Some("A"), Some(1))
    );
    assert_eq!(
        (tickets[1]["row"].as_str(), tickets[1]["number"].as_i64()),
        (Some("A"), Some(2))
    );

    let after = app.availability(event_id).await;
    assert_eq!(
        (
            after["available_seats"].as_i64(),
            after["booked_seats"].as_i64()
        ),
        (Some(48), Some(2))
    );
    let booked: Vec<i64> = after["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "booked")
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(booked, seats[..2]);

    for (user, seat) in [("bob", seats[0]), ("carol", seats[1])] {
        let problem = assert_problem(app.book(user, event_id, &[seat]).await, 409).await;
        assert_eq!(problem["seat_ids"], serde_json::json!([seat]));
    }
    // The owner retrying is no exception: a seat is sold once.
    assert_problem(app.book("alice", event_id, &seats[..2]).await, 409).await;
    assert_eq!(app.tickets_for_seat(event_id, seats[0]).await, 1);
}

#[tokio::test]
async fn a_booking_is_all_or_nothing() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    assert_eq!(app.book("alice", event_id, &[seats[3]]).await.status(), 201);

    let problem = assert_problem(
        app.book("bob", event_id, &[seats[2], seats[3], seats[4]])
            .await,
        409,
    )
    .await;
    assert_eq!(problem["seat_ids"], serde_json::json!([seats[3]]));

    // Neither free seat of the failed request was kept.
    assert_eq!(app.tickets_for_seat(event_id, seats[2]).await, 0);
    assert_eq!(app.tickets_for_seat(event_id, seats[4]).await, 0);
    let bobs: i64 = app
        .db
        .query_one("SELECT count(*) FROM bookings WHERE user_id = 'bob'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bobs, 0, "no half booking is left behind");
}

#[tokio::test]
async fn a_booking_is_visible_to_its_owner_and_to_nobody_else() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let first: Value = app
        .book("alice", event_id, &[seats[0]])
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .book("alice", event_id, &[seats[1], seats[2]])
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/bookings/{}", first["id"].as_str().unwrap());

    let mine = app.get(&path, As::User("alice")).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.json::<Value>().await.unwrap(), first);

    assert_problem(app.get(&path, As::User("mallory")).await, 404).await;
    assert_problem(app.get(&path, As::Anonymous).await, 401).await;

    let list: Value = app
        .get("/api/v1/bookings", As::User("alice"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"],
        serde_json::json!([second, first]),
        "newest first"
    );
    let others: Value = app
        .get("/api/v1/bookings", As::User("mallory"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(others["items"], serde_json::json!([]));
}
