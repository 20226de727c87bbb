//! A fair on-sale: sales windows decided by PostgreSQL's clock, and a per-user seat cap that holds
//! under concurrency without making other users wait.

use crate::helpers::{
    assert_problem, ids_in, in_future, spawn_app, spawn_app_with_env, As, TestApp, ORGANIZER,
};
use chrono::{Duration as Span, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// A venue of one row of `seats` seats and an event on it, on sale now, at most `cap` seats a
/// user; the event's id and its seat ids.
async fn capped_event(app: &TestApp, seats: i64, cap: i64) -> (i64, Vec<i64>) {
    let (event, seats) = app
        .event_with(1, seats, json!({"max_seats_per_user": cap}))
        .await;
    (event["id"].as_i64().unwrap(), seats)
}

async fn claim(
    app: &TestApp,
    path: &str,
    user: &str,
    event: i64,
    seats: &[i64],
) -> reqwest::Response {
    app.claim(path, As::User(user), event, seats).await
}

/// Asserts `user`'s claim of `seats` is answered `status`.
async fn assert_claim(
    app: &TestApp,
    path: &str,
    user: &str,
    event: i64,
    seats: &[i64],
    status: u16,
) {
    let response = claim(app, path, user, event, seats).await;
    assert_eq!(
        response.status(),
        status,
        "{user} claims {seats:?} at {path}"
    );
}

/// Asserts a 409 `sales-closed` problem, whose detail says `says` if given; returns it.
async fn assert_sales_closed(response: reqwest::Response, says: Option<&str>) -> Value {
    let problem = assert_problem(response, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/sales-closed"),
        "{problem}"
    );
    if let Some(says) = says {
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    problem
}

/// A server whose holds lapse after a second, and on it an event of four seats, at most two a
/// user: the server, the event's id and its seat ids.
async fn lapsing_holds_under_a_cap_of_two() -> (TestApp, i64, Vec<i64>) {
    let app = spawn_app_with_env(&[("HOLD_TTL_SECONDS", "1")]).await;
    let (id, seats) = capped_event(&app, 4, 2).await;
    (app, id, seats)
}

async fn confirmed_bookings(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
        .await
}

#[tokio::test]
async fn an_event_shows_its_sales_window_and_cap_and_refuses_an_impossible_window() {
    let app = spawn_app().await;
    let opens = in_future(Span::days(1));
    let (event, _) = app
        .event_with(
            1,
            2,
            json!({"sales_start_at": opens, "max_seats_per_user": 4}),
        )
        .await;
    assert_eq!(event["sales_start_at"], opens);
    assert_eq!(
        event["sales_end_at"], event["starts_at"],
        "closes at the start by default"
    );
    assert_eq!(event["max_seats_per_user"], 4);
    let shown: Value = app
        .get(&format!("/api/v1/events/{}", event["id"]), As::Anonymous)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["sales_start_at"], event["sales_start_at"]);
    assert_eq!(shown["max_seats_per_user"], 4);

    let venue = app.create_venue("Impossible Hall", 1, 1).await;
    for (extra, why) in [
        (
            json!({"sales_start_at": in_future(Span::days(40))}),
            "opens after it starts",
        ),
        (
            json!({"sales_end_at": in_future(Span::days(31))}),
            "closes after it starts",
        ),
        (
            json!({"sales_start_at": in_future(Span::days(5)), "sales_end_at": in_future(Span::days(4))}),
            "opens after it closes",
        ),
        (json!({"max_seats_per_user": 0}), "a cap of nothing"),
        (json!({"sales_start_at": "at noon"}), "not a timestamp"),
    ] {
        let mut body = json!({"name": "X", "starts_at": in_future(Span::days(30)),
                              "venue_id": venue["id"], "price_cents": 1});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = app.post("/api/v1/events", ORGANIZER, &body).await;
        assert_eq!(response.status(), 422, "{why}");
        assert_problem(response, 422).await;
    }
}

#[tokio::test]
async fn a_booking_or_hold_outside_the_sales_window_is_a_409_and_writes_nothing() {
    let app = spawn_app().await;
    let (early, seats) = app
        .event_with(1, 2, json!({"sales_start_at": in_future(Span::hours(2))}))
        .await;
    let early_id = early["id"].as_i64().unwrap();
    for path in ["/api/v1/bookings", "/api/v1/holds"] {
        let claimed = claim(&app, path, "eve", early_id, &seats[..1]).await;
        let problem = assert_sales_closed(claimed, Some("open at")).await;
        assert_eq!(problem["sales_start_at"], early["sales_start_at"]);
        assert_eq!(problem["sales_end_at"], early["sales_end_at"]);
    }

    // Closed, and started: moved into the past behind the API's back (the API refuses a window
    // that is already over).
    for (moved, path, says) in [
        ("sales_end_at", "/api/v1/bookings", Some("closed at")),
        ("starts_at", "/api/v1/holds", None),
    ] {
        let (event, seats) = app.event_with(1, 2, json!({})).await;
        let id = event["id"].as_i64().unwrap();
        app.db
            .execute(
                &format!("UPDATE events SET {moved} = now() - interval '1 minute' WHERE id = $1"),
                &[&id],
            )
            .await
            .unwrap();
        assert_sales_closed(claim(&app, path, "eve", id, &seats).await, says).await;
    }

    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE id = 'eve'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_listing_drops_an_event_when_its_sale_closes_even_from_the_cache() {
    let app = spawn_app().await;
    let (closing, _) = app
        .event_with(1, 1, json!({"sales_end_at": in_future(Span::seconds(3))}))
        .await;
    let (staying, _) = app.event_with(1, 1, json!({})).await;
    let listing = || app.get_json("/api/v1/events", As::Anonymous);
    let first = listing().await;
    assert_eq!(
        ids_in(&first["items"], "id"),
        [
            closing["id"].as_i64().unwrap(),
            staying["id"].as_i64().unwrap()
        ]
    );
    // Read again: a cache hit, with the closing event still on sale.
    assert_eq!(listing().await, first);

    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        ids_in(&listing().await["items"], "id"),
        [staying["id"].as_i64().unwrap()]
    );
}

#[tokio::test]
async fn a_user_cannot_hold_or_book_past_the_cap_and_cancelling_frees_the_allowance() {
    let app = spawn_app().await;
    let (id, seats) = capped_event(&app, 8, 4).await;
    assert_claim(&app, "/api/v1/bookings", "ann", id, &seats[0..2], 201).await;
    assert_claim(&app, "/api/v1/holds", "ann", id, &seats[2..4], 201).await;
    let problem = assert_problem(
        claim(&app, "/api/v1/bookings", "ann", id, &seats[4..5]).await,
        409,
    )
    .await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/seat-limit"),
        "{problem}"
    );
    assert_eq!(
        (problem["limit"].clone(), problem["current"].clone()),
        (json!(4), json!(4))
    );
    // Someone else is not affected.
    assert_claim(&app, "/api/v1/bookings", "bob", id, &seats[4..8], 201).await;

    let first = app.get_json("/api/v1/bookings", As::User("ann")).await;
    let booking = first["items"][1]["id"].as_str().unwrap();
    assert_eq!(app.cancel(booking, As::User("ann")).await.status(), 200);
    assert_claim(&app, "/api/v1/bookings", "ann", id, &seats[0..2], 201).await;
}

#[tokio::test]
async fn a_lapsed_hold_no_longer_counts_against_the_cap() {
    let (app, id, seats) = lapsing_holds_under_a_cap_of_two().await;
    assert_claim(&app, "/api/v1/holds", "ann", id, &seats[0..2], 201).await;
    assert_claim(&app, "/api/v1/holds", "ann", id, &seats[2..3], 409).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_claim(&app, "/api/v1/bookings", "ann", id, &seats[2..4], 201).await;
}

#[tokio::test]
async fn twenty_simultaneous_holds_by_one_user_under_a_cap_of_four_give_exactly_two() {
    let app = Arc::new(spawn_app().await);
    let (id, seats) = capped_event(&app, 60, 4).await;
    // Twenty 2-seat holds by mallory, each on its own seats, and twenty 1-seat bookings by other
    // users, all released at once.
    let barrier = Arc::new(Barrier::new(40));
    let mut tasks = Vec::new();
    for n in 0..40usize {
        let (app, barrier) = (app.clone(), barrier.clone());
        let (user, path, wanted) = if n < 20 {
            (
                "mallory".to_owned(),
                "/api/v1/holds",
                seats[2 * n..2 * n + 2].to_vec(),
            )
        } else {
            (format!("fan-{n}"), "/api/v1/bookings", vec![seats[n + 20]])
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = claim(&app, path, &user, id, &wanted).await;
            let status = response.status().as_u16();
            (user, status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut mallory = Vec::new();
    for task in tasks {
        let (user, status, body) = task.await.unwrap();
        if user == "mallory" {
            mallory.push((status, body));
        } else {
            assert_eq!(status, 201, "{user} never waits on mallory's cap: {body}");
        }
    }
    assert_eq!(
        mallory.iter().filter(|(s, _)| *s == 201).count(),
        2,
        "{mallory:?}"
    );
    for (status, body) in mallory.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409);
        assert!(
            body["type"].as_str().unwrap().ends_with("/seat-limit"),
            "{body}"
        );
    }
    let held = app
        .count(&format!(
            "SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
             WHERE b.user_id = 'mallory' AND b.event_id = {id}"
        ))
        .await;
    assert_eq!(held, 4);
}

#[tokio::test]
async fn a_retried_hold_with_the_same_idempotency_key_replays_instead_of_conflicting() {
    let app = spawn_app().await;
    let (event, seats) = app.event_with(1, 2, json!({})).await;
    let body = json!({"event_id": event["id"], "seat_ids": [seats[0]]});
    let send = || {
        app.request(reqwest::Method::POST, "/api/v1/holds", As::User("ann"))
            .header("idempotency-key", "hold-1")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(first["status"], "held");
    // The same key for a booking of the same seats is another request.
    let booking = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("ann"))
        .header("idempotency-key", "hold-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(booking, 422).await;
}

/// Sleeps until `at` (an RFC 3339 time) has passed, and a little more.
async fn until_past(at: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    let left = (at.with_timezone(&Utc) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_hold_ends_with_the_sale_and_cannot_be_confirmed_after_it() {
    let app = spawn_app().await;
    let closes = in_future(Span::seconds(3));
    let (event, seats) = app.event_with(1, 2, json!({"sales_end_at": closes})).await;
    let event_id = event["id"].as_i64().unwrap();
    let response = claim(&app, "/api/v1/holds", "late-buyer", event_id, &seats[..1]).await;
    assert_eq!(response.status(), 201);
    let hold: Value = response.json().await.unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(hold["expires_at"].as_str().unwrap());
    let closes_at = chrono::DateTime::parse_from_rfc3339(&closes).unwrap();
    assert!(
        expires.unwrap() <= closes_at,
        "a hold lasts no longer than the sale: expires {} and the sale closes {closes}",
        hold["expires_at"]
    );

    until_past(&closes).await;
    let confirm = app
        .confirm(hold["id"].as_str().unwrap(), As::User("late-buyer"))
        .await;
    assert_sales_closed(confirm, None).await;
    assert_eq!(confirmed_bookings(&app).await, 0);
}

#[tokio::test]
async fn confirming_a_hold_waits_for_the_users_allowance_and_judges_its_expiry_after_it() {
    // A confirmation and a booking of the same user under a cap are decided one after the other,
    // on the allowance row, each by the clock after its turn: a confirmation that waited past the
    // hold's expiry does not confirm it (else the user's other booking, which counted the hold as
    // lapsed, and this one could together pass the cap).
    let (app, event_id, seats) = lapsing_holds_under_a_cap_of_two().await;
    let response = claim(&app, "/api/v1/holds", "racer", event_id, &seats[..2]).await;
    assert_eq!(response.status(), 201);
    let hold: Value = response.json().await.unwrap();

    // Another request of the same user holds the allowance (as a concurrent booking would).
    let other = app.connect().await;
    other
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM seat_allowances
             WHERE event_id = {event_id} AND user_id = 'racer' FOR UPDATE"
        ))
        .await
        .unwrap();
    let confirm = tokio::spawn(
        app.request(
            reqwest::Method::POST,
            &format!("/api/v1/holds/{}/confirm", hold["id"].as_str().unwrap()),
            As::User("racer"),
        )
        .send(),
    );
    until_past(hold["expires_at"].as_str().unwrap()).await;
    assert!(
        !confirm.is_finished(),
        "the confirmation waits for the allowance"
    );
    other.batch_execute("ROLLBACK").await.unwrap();
    let confirm = confirm.await.unwrap().unwrap();
    assert_problem(confirm, 410).await;
    assert_eq!(confirmed_bookings(&app).await, 0);
}

#[tokio::test]
async fn a_booking_that_waited_for_its_idempotency_key_is_judged_when_it_runs() {
    // Its transaction starts, then waits for the key's row; the sale opens meanwhile. Judged by
    // the transaction's start it would be refused as "not open yet".
    let app = spawn_app().await;
    let opens = in_future(Span::seconds(2));
    let (event, seats) = app.event_with(1, 2, json!({"sales_start_at": opens})).await;
    let holder = app.connect().await;
    holder
        .batch_execute(
            "BEGIN; INSERT INTO idempotency_keys (user_id, key, request_hash, response_status,
                                                   response_body)
                    VALUES ('early-bird', 'k-1', 'another request', 0, '')",
        )
        .await
        .unwrap();
    let booking = tokio::spawn(
        app.request(
            reqwest::Method::POST,
            "/api/v1/bookings",
            As::User("early-bird"),
        )
        .header("idempotency-key", "k-1")
        .json(&json!({"event_id": event["id"], "seat_ids": [seats[0]]}))
        .send(),
    );
    until_past(&opens).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    let booking = booking.await.unwrap().unwrap();
    assert_eq!(booking.status(), 201, "{}", booking.text().await.unwrap());
}
