use crate::helpers::{
    assert_problem, by_status, ids_in, spawn_app, spawn_app_with_env, stampede,
    wait_until_a_session_waits_for_a_lock, As, TestApp,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

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
    let bobs = app
        .count("SELECT count(*) FROM bookings WHERE user_id = 'bob'")
        .await;
    assert_eq!(bobs, 0, "no half booking is left behind");
}

#[tokio::test]
async fn a_booking_is_visible_to_its_owner_and_to_nobody_else() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let first = app.booked("alice", event_id, &[seats[0]]).await;
    let second = app.booked("alice", event_id, &[seats[1], seats[2]]).await;
    let path = format!("/api/v1/bookings/{}", first["id"].as_str().unwrap());

    let mine = app.get(&path, As::User("alice")).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.json::<Value>().await.unwrap(), first);

    assert_problem(app.get(&path, As::User("mallory")).await, 404).await;
    assert_problem(app.get(&path, As::Anonymous).await, 401).await;

    let list = app.get_json("/api/v1/bookings", As::User("alice")).await;
    assert_eq!(
        list["items"],
        serde_json::json!([second, first]),
        "newest first"
    );
    let others = app.get_json("/api/v1/bookings", As::User("mallory")).await;
    assert_eq!(others["items"], serde_json::json!([]));
}

#[tokio::test]
async fn postgres_knows_exactly_the_booking_statuses_the_api_knows() {
    let app = spawn_app().await;
    let labels: Vec<String> = app
        .column("SELECT unnest(enum_range(NULL::booking_status))::text")
        .await;
    let known: Vec<&str> = booking_fn::BookingStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .collect();
    assert_eq!(labels, known);

    // A misspelt status in a query is an error, not a condition that silently matches nothing.
    let typo = app
        .db
        .query(
            "SELECT count(*) FROM bookings WHERE status = 'confimed'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        typo.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION),
        "{typo}"
    );
}

/// Fires a booking of `seats` for alice (with `key` as its Idempotency-Key, if any) into a real
/// deadlock: the test's own transaction first claims the higher seat, waits until the booking is
/// blocked on it (holding the lower seat, as it inserts in seat order), then reaches for the lower
/// seat. PostgreSQL breaks the cycle by aborting the booking's transaction (40P01: the test's
/// transaction waits ten times longer before it looks for deadlocks); the test's transaction then
/// rolls back, and the booking's retry has the seats to itself.
async fn book_into_a_deadlock(
    app: &TestApp,
    event_id: i64,
    (low, high): (i64, i64),
    key: Option<&str>,
) -> reqwest::Response {
    assert!(low < high);
    let intruder = format!("intruder-{}", uuid::Uuid::new_v4().simple());
    app.db
        .batch_execute(&format!(
            "INSERT INTO users (id) VALUES ('{intruder}');
             BEGIN;
             SET LOCAL deadlock_timeout = '10s';
             WITH b AS (
                 INSERT INTO bookings (user_id, event_id, status, total_cents)
                 VALUES ('{intruder}', {event_id}, 'confirmed', 0) RETURNING id)
             INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
             SELECT id, {event_id}, {high}, 0 FROM b;"
        ))
        .await
        .unwrap();

    // The seats as the customer lists them: the higher first.
    let mut request = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("alice"))
        .json(&json!({"event_id": event_id, "seat_ids": [high, low]}));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let booking = tokio::spawn(request.send());

    wait_until_a_session_waits_for_a_lock(
        app,
        "the booking never waited for the seat the test holds",
    )
    .await;

    let reaching = Instant::now();
    app.db
        .batch_execute(&format!(
            "INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
             SELECT id, {event_id}, {low}, 0 FROM bookings WHERE user_id = '{intruder}'"
        ))
        .await
        .expect("PostgreSQL picks the booking as the deadlock's victim");
    assert!(
        reaching.elapsed() >= Duration::from_millis(300),
        "the lower seat was free: the booking did not take its seats in seat order, so there \
         was no deadlock ({:?})",
        reaching.elapsed()
    );
    app.db.batch_execute("ROLLBACK").await.unwrap();
    booking.await.unwrap().expect("the booking is answered")
}

/// How many deadlocks PostgreSQL has counted in the test database. A session reports its
/// statistics when idle, at most once a second and up to ten seconds late, but always as it
/// exits: the server's sessions are ended first (its pool is useless afterwards).
async fn deadlocks(app: &TestApp) -> i64 {
    app.db
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let others = app
            .count(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await;
        if others == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sessions linger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.count("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .await
}

#[tokio::test]
async fn a_booking_picked_as_a_deadlock_victim_is_retried_and_booked() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;

    let response = book_into_a_deadlock(&app, event_id, (seats[1], seats[2]), None).await;
    assert_eq!(
        response.status(),
        201,
        "retried after the deadlock, not a 500"
    );
    let booking: Value = response.json().await.unwrap();
    assert_eq!(ids_in(&booking["tickets"], "seat_id"), [seats[1], seats[2]]);
    assert_eq!(app.tickets_for_seat(event_id, seats[1]).await, 1);
    assert_eq!(app.tickets_for_seat(event_id, seats[2]).await, 1);
    assert_eq!(deadlocks(&app).await, 1, "a real deadlock happened");
}

#[tokio::test]
async fn a_booking_under_an_idempotency_key_picked_as_a_deadlock_victim_is_retried_and_stored() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;

    let response =
        book_into_a_deadlock(&app, event_id, (seats[0], seats[3]), Some("deadlocked")).await;
    assert_eq!(
        response.status(),
        201,
        "retried after the deadlock, not a 500"
    );
    let booking: Value = response.json().await.unwrap();

    let again = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("alice"))
        .header("idempotency-key", "deadlocked")
        .json(&json!({"event_id": event_id, "seat_ids": [seats[3], seats[0]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), booking);
    let bookings = app
        .count("SELECT count(*) FROM bookings WHERE user_id = 'alice'")
        .await;
    assert_eq!(bookings, 1);
    assert_eq!(deadlocks(&app).await, 1, "a real deadlock happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bookings_listing_shared_seats_in_opposite_orders_never_deadlock() {
    let app = spawn_app_with_env(&[("DB_POOL_MAX_SIZE", "40")]).await;
    let (event_id, seats) = app.seed_event(4, 10).await;
    // Each ticket takes 20 ms to insert, so the bookings of a group really overlap: in the order
    // each request lists its seats, two of them would each hold a seat the other needs.
    app.db
        .batch_execute(
            "CREATE FUNCTION slow_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
             CREATE TRIGGER slow_ticket BEFORE INSERT ON tickets
                 FOR EACH ROW EXECUTE FUNCTION slow_ticket();",
        )
        .await
        .unwrap();

    // Ten rounds of eight customers each: half list four shared seats upwards, half downwards.
    let mut requests = Vec::new();
    for round in 0..10 {
        let mut group = seats[round * 4..round * 4 + 4].to_vec();
        for customer in 0..8 {
            group.reverse();
            requests.push((
                format!("customer-{round}-{customer}"),
                json!({"event_id": event_id, "seat_ids": group}),
            ));
        }
    }
    let results = stampede(&app, requests).await;
    for (status, body) in &results {
        assert!(*status == 201 || *status == 409, "{status} {body}");
    }
    let by_status = by_status(&results);
    assert_eq!(by_status[&201], 10, "one winner per group: {by_status:?}");
    assert_eq!(deadlocks(&app).await, 0, "no transaction waited in a cycle");
}

/// Installs a trigger that makes the next `failures` ticket inserts fail as PostgreSQL fails a
/// transaction it cannot serialize (SQLSTATE 40001), and counts every insert statement it sees.
pub(crate) async fn fail_serialization(app: &TestApp, failures: i64) {
    app.db
        .batch_execute(&format!(
            "CREATE SEQUENCE ticket_inserts;
             CREATE FUNCTION refuse_to_serialize() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('ticket_inserts') <= {failures} THEN
                     RAISE EXCEPTION 'could not serialize access due to concurrent update'
                         USING ERRCODE = 'serialization_failure';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER refuse_to_serialize BEFORE INSERT ON tickets
                 FOR EACH STATEMENT EXECUTE FUNCTION refuse_to_serialize();"
        ))
        .await
        .unwrap();
}

/// How many ticket inserts the trigger of [`fail_serialization`] saw.
pub(crate) async fn ticket_inserts(app: &TestApp) -> i64 {
    app.count("SELECT last_value FROM ticket_inserts").await
}

#[tokio::test]
async fn a_booking_that_fails_serialization_twice_is_booked_on_its_third_attempt() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    fail_serialization(&app, 2).await;

    let response = app.book("alice", event_id, &[seats[0]]).await;
    assert_eq!(response.status(), 201, "retried, not a 500");
    assert_eq!(
        ticket_inserts(&app).await,
        3,
        "two failures, then the booking"
    );
    assert_eq!(app.tickets_for_seat(event_id, seats[0]).await, 1);
}

#[tokio::test]
async fn a_booking_that_never_serializes_gets_a_503_with_retry_after_after_a_few_attempts() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    fail_serialization(&app, i64::MAX).await;

    let started = Instant::now();
    let response = app.book("alice", event_id, &[seats[0]]).await;
    assert_eq!(response.status(), 503, "a retryable answer, not a 500");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503).await;
    let attempts = ticket_inserts(&app).await;
    assert!((2..=5).contains(&attempts), "bounded retries: {attempts}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded back-off"
    );
    let bookings = app.count("SELECT count(*) FROM bookings").await;
    assert_eq!(bookings, 0, "nothing half-done is left");
}

/// Every page of alice's bookings from `first`, following `next_cursor` to the end.
async fn all_pages(app: &TestApp, first: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..20 {
        let response = app.get(&path, As::User("alice")).await;
        assert_eq!(response.status(), 200, "{path}");
        let page: Value = response.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/bookings?limit=2&cursor={cursor}"),
            None => {
                assert_eq!(page["next_cursor"], Value::Null, "{page}");
                return items;
            }
        }
    }
    panic!("the pages never end");
}

#[tokio::test]
async fn the_bookings_list_pages_newest_first_with_the_cursor_it_issues() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let alice = |_| "alice".to_owned();
    app.book_each(event_id, &seats[..5], alice).await;
    assert_eq!(app.book("bob", event_id, &[seats[5]]).await.status(), 201);
    // Two bookings made at the same instant are still told apart (by id).
    app.db
        .batch_execute(&format!(
            "UPDATE bookings SET created_at = (SELECT created_at FROM bookings
                 WHERE user_id = 'alice' ORDER BY created_at LIMIT 1)
             WHERE user_id = 'alice' AND id IN (
                 SELECT b.id FROM bookings b JOIN tickets t ON t.booking_id = b.id
                 WHERE t.seat_id IN ({}, {}))",
            seats[1], seats[2]
        ))
        .await
        .unwrap();

    let everything = app
        .get_json("/api/v1/bookings?limit=100", As::User("alice"))
        .await;
    assert_eq!(
        everything["next_cursor"],
        Value::Null,
        "one page holds them"
    );
    let everything = everything["items"].as_array().unwrap().clone();
    assert_eq!(everything.len(), 5, "alice's five, not bob's");
    let order: Vec<(String, String)> = everything
        .iter()
        .map(|b| {
            (
                b["created_at"].as_str().unwrap().to_owned(),
                b["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|a, b| {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        (at(&b.0), &b.1).cmp(&(at(&a.0), &a.1))
    });
    assert_eq!(order, newest_first, "newest first, ties by id");

    let paged = all_pages(&app, "/api/v1/bookings?limit=2").await;
    assert_eq!(
        paged, everything,
        "the pages hold each booking once, in order"
    );

    // A booking made after the first page was read does not shift the pages that follow.
    let first = app
        .get_json("/api/v1/bookings?limit=2", As::User("alice"))
        .await;
    app.booked("alice", event_id, &[seats[6]]).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = all_pages(&app, &format!("/api/v1/bookings?limit=2&cursor={cursor}")).await;
    assert_eq!(rest, everything[2..]);
}

#[tokio::test]
async fn a_bookings_cursor_the_api_did_not_issue_is_a_400() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    app.book_each(event_id, &seats[..3], |_| "alice".to_owned())
        .await;
    let page = app
        .get_json("/api/v1/bookings?limit=1", As::User("alice"))
        .await;
    let issued = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let ok = app
        .get(
            &format!("/api/v1/bookings?limit=1&cursor={issued}"),
            As::User("alice"),
        )
        .await;
    assert_eq!(ok.status(), 200);

    let (micros, id) = issued.split_once('.').expect("micros.uuid");
    let uuid: uuid::Uuid = id.parse().unwrap();
    let forged = [
        String::new(),
        "abc".to_owned(),
        micros.to_owned(),
        format!("{micros}."),
        format!(".{id}"),
        format!("{micros}.not-a-uuid"),
        format!("x.{id}"),
        // Spellings of the same position that the API never issues.
        format!("%2B{micros}.{id}"),
        format!("0{micros}.{id}"),
        format!("{micros}.{}", id.to_uppercase()),
        format!("{micros}.{}", uuid.simple()),
        format!("{micros}.%7B{id}%7D"),
        format!("{micros}.urn:uuid:{id}"),
        format!("{micros}.{id}%20"),
    ];
    for cursor in forged {
        let response = app
            .get(
                &format!("/api/v1/bookings?limit=1&cursor={cursor}"),
                As::User("alice"),
            )
            .await;
        assert_problem(response, 400).await;
    }
}
