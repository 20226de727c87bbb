//! Best available (issue 22): `best_available` instead of `seat_ids` on holds and bookings, the
//! ranking over real seats, categories, sections and wheelchair places, and an on-sale herd of
//! picks that sells every seat once.

use crate::helpers::{
    assert_problem, by_status, ids_in, spawn_app, spawn_app_with_env, stampede, stampede_across,
    As, TestApp, ORGANIZER,
};
use crate::redis_server::RedisServer;
use chrono::{Duration as Span, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// POSTs `{event_id, best_available}` to `path` (`/api/v1/holds` or `/api/v1/bookings`) as `user`.
async fn best(
    app: &TestApp,
    path: &str,
    user: &str,
    event_id: i64,
    best_available: Value,
) -> reqwest::Response {
    let body = json!({"event_id": event_id, "best_available": best_available});
    app.post(path, As::User(user), &body).await
}

/// The best pair of `event_id` booked for `user`, asserted a 201.
async fn best_pair(app: &TestApp, user: &str, event_id: i64) -> Value {
    let body = json!({"count": 2});
    created(best(app, "/api/v1/bookings", user, event_id, body).await).await
}

/// An app without Redis: its picks are made from the database under the event's pick lock
/// (decision 25), as when the seat map cannot settle a request (decision 31).
async fn without_redis() -> TestApp {
    spawn_app_with_env(&[("REDIS_URL", "")]).await
}

/// The Redis key of the event's seat map (decision 31), and a connection to its server.
async fn seat_map_key(app: &TestApp, event_id: i64) -> (String, redis::aio::MultiplexedConnection) {
    let mut conn = crate::helpers::redis_connection().await;
    let pattern = format!("{}:*{{e{event_id}}}:seatmap", app.db_name);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one seat map: {keys:?}");
    (keys[0].clone(), conn)
}

/// The event's seat map in Redis: a byte per seat, `.` free, `h` held, `b` booked.
async fn seat_map(app: &TestApp, event_id: i64) -> Vec<u8> {
    let (key, mut conn) = seat_map_key(app, event_id).await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Overwrites the event's seat map in Redis with `bytes`.
async fn set_seat_map(app: &TestApp, event_id: i64, bytes: &[u8]) {
    let (key, mut conn) = seat_map_key(app, event_id).await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A 201's body, asserted.
async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// `(row, number)` of each ticket of a booking.
fn places(booking: &Value) -> Vec<(String, i64)> {
    booking["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["row"].as_str().unwrap().to_owned(),
                t["number"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn row(label: &str, numbers: impl IntoIterator<Item = i64>) -> Vec<(String, i64)> {
    numbers.into_iter().map(|n| (label.to_owned(), n)).collect()
}

/// The seat ids of `numbers` in row `row` (from 0) of a venue `cols` wide, as `seed_event` lists
/// them.
fn ids(seats: &[i64], cols: usize, row: usize, numbers: impl IntoIterator<Item = i64>) -> Vec<i64> {
    numbers
        .into_iter()
        .map(|n| seats[row * cols + n as usize - 1])
        .collect()
}

/// Books `seat_ids` for a user of its own, asserting a 201.
async fn taken(app: &TestApp, event_id: i64, seat_ids: &[i64]) {
    let user = format!("earlier-{}", uuid::Uuid::new_v4());
    assert_eq!(app.book(&user, event_id, seat_ids).await.status(), 201);
}

/// A theatre: Stalls (3 rows of 4, wheelchair places A1 and A4), then Circle (2 rows of 5); an
/// event in it priced Front (Stalls A) 9000, Stalls (the rest of it) 6000, Circle B 3000, and
/// Circle A left to Standard at 4500. The event's id and its map.
async fn theatre(app: &TestApp) -> (i64, Value) {
    let venue = json!({
        "name": format!("Theatre {}", uuid::Uuid::new_v4()),
        "sections": [
            {"name": "Stalls", "rows": 3, "cols": 4,
             "accessible": [{"row": "A", "number": 1}, {"row": "A", "number": 4}]},
            {"name": "Circle", "rows": 2, "cols": 5},
        ],
    });
    let response = app.post("/api/v1/venues", ORGANIZER, &venue).await;
    let venue = created(response).await;
    let event = json!({
        "name": "Hamlet",
        "starts_at": "2031-06-01T19:30:00Z",
        "venue_id": venue["id"],
        "price_cents": 4500,
        "categories": [
            {"name": "Front", "price_cents": 9000, "section": "Stalls", "rows": ["A"]},
            {"name": "Stalls", "price_cents": 6000, "section": "Stalls"},
            {"name": "Back", "price_cents": 3000, "section": "Circle", "rows": ["B"]},
        ],
    });
    let event_id = created(app.post("/api/v1/events", ORGANIZER, &event).await).await["id"]
        .as_i64()
        .unwrap();
    let map = app.availability(event_id).await;
    (event_id, map)
}

/// The map's id of seat `number` of row `row` in `section`.
fn seat_id(map: &Value, section: &str, row: &str, number: i64) -> i64 {
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == section && s["row"] == row && s["number"] == number)
        .unwrap_or_else(|| panic!("{section} {row}{number} on the map"))["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn four_seats_in_an_empty_ten_by_twenty_venue_are_row_a_nine_to_twelve() {
    let app = spawn_app().await;
    let (event_id, _) = app.seed_event(10, 20).await;

    let response = best(
        &app,
        "/api/v1/bookings",
        "alice",
        event_id,
        json!({"count": 4}),
    )
    .await;

    assert!(response.headers().contains_key("location"));
    let booking = created(response).await;
    assert_eq!(places(&booking), row("A", 9..=12));
    assert_eq!(booking["together"], true);
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["total_cents"], 4 * 2500);
}

#[tokio::test]
async fn the_front_row_wins_over_the_centre_of_a_row_behind() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(3, 10).await;
    taken(&app, event_id, &ids(&seats, 10, 0, 1..=6)).await;

    let booking =
        created(best(&app, "/api/v1/holds", "bob", event_id, json!({"count": 2})).await).await;

    assert_eq!(places(&booking), row("A", 7..=8));
}

/// A cancellation in a full front row opens its seats to picks again: under the lock, which skips
/// the rows confirmed bookings have filled (V15), the row's record goes with the cancellation; the
/// seat map hears of it in the round trip that tells the cache. The freed front seats win over the
/// row behind.
#[tokio::test]
async fn seats_a_cancellation_frees_in_a_full_front_row_are_picked_first() {
    for mapped in [false, true] {
        let app = match mapped {
            true => spawn_app().await,
            false => without_redis().await,
        };
        let (event_id, seats) = app.seed_event(3, 4).await;
        taken(&app, event_id, &ids(&seats, 4, 0, 1..=2)).await;
        let middle = app.book("carol", event_id, &ids(&seats, 4, 0, 3..=4)).await;
        let middle = created(middle).await;
        let first = best_pair(&app, "bob", event_id).await;
        assert_eq!(places(&first), row("B", 1..=2));
        match mapped {
            true => assert_eq!(seat_map(&app, event_id).await, b"bbbbbb......"),
            false => assert_eq!(
                app.count("SELECT count(*) FROM full_rows").await,
                1,
                "row A is recorded full"
            ),
        }

        let cancelled = app
            .cancel(middle["id"].as_str().unwrap(), As::User("carol"))
            .await;
        assert_eq!(cancelled.status(), 200);
        if mapped {
            assert_eq!(seat_map(&app, event_id).await, b"bb..bb......");
        }
        let second = best_pair(&app, "dan", event_id).await;

        assert_eq!(places(&second), row("A", 3..=4), "from the map: {mapped}");
    }
}

/// The seats the nearly full rows' records list as open (V19), in order.
async fn open_seats(app: &TestApp) -> Vec<i64> {
    let sql = "SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM full_rows, unnest(open) x";
    app.db.query_one(sql, &[]).await.unwrap().get(0)
}

/// A row confirmed bookings have nearly filled is recorded with the seats they have not (V19):
/// later picks from the database read only the claims on those, still find them, narrow the record as they sell,
/// and a cancellation in the row opens it to be read whole again.
#[tokio::test]
async fn a_nearly_full_row_is_read_by_its_open_seats_until_a_cancellation_opens_it() {
    let app = without_redis().await;
    let (event_id, seats) = app.seed_event(2, 16).await;
    let carol = created(
        app.book("carol", event_id, &ids(&seats, 16, 0, 2..=3))
            .await,
    )
    .await;
    taken(&app, event_id, &ids(&seats, 16, 0, 4..=10)).await;
    taken(&app, event_id, &ids(&seats, 16, 0, 11..=15)).await;
    // Row A has seats 1 and 16 free, apart: the pair goes to row B, and row A is recorded.
    let pair = best_pair(&app, "bob", event_id).await;
    assert_eq!(places(&pair), row("B", 8..=9));
    assert_eq!(open_seats(&app).await, ids(&seats, 16, 0, [1, 16]));
    // Single seats are found in the record: the front row, then the lower number; the second
    // pick reads seat 1 sold and narrows the record.
    let one = json!({"count": 1});
    let single = created(best(&app, "/api/v1/bookings", "dan", event_id, one.clone()).await).await;
    assert_eq!(places(&single), row("A", [1]));
    let single = created(best(&app, "/api/v1/bookings", "fay", event_id, one).await).await;
    assert_eq!(places(&single), row("A", [16]));
    assert_eq!(open_seats(&app).await, ids(&seats, 16, 0, [16]));

    let cancelled = app
        .cancel(carol["id"].as_str().unwrap(), As::User("carol"))
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        open_seats(&app).await,
        Vec::<i64>::new(),
        "the row's record is gone"
    );
    let again = best_pair(&app, "erin", event_id).await;
    assert_eq!(places(&again), row("A", 2..=3));
}

/// Holds fill no row for good: one lapses without a write, and its seats are picked again, from
/// the database...
#[tokio::test]
async fn a_front_row_of_holds_that_lapse_is_picked_again() {
    let app = without_redis().await;
    let (event_id, seats) = app.seed_event(2, 4).await;
    let hold = app.hold("carol", event_id, &ids(&seats, 4, 0, 1..=4)).await;
    assert_eq!(hold.status(), 201);
    let first = best_pair(&app, "bob", event_id).await;
    assert_eq!(places(&first), row("B", 1..=2));

    app.db
        .execute(
            "UPDATE bookings SET expires_at = now() - interval '1 second' WHERE status = 'held'",
            &[],
        )
        .await
        .unwrap();
    let second = best_pair(&app, "dan", event_id).await;

    assert_eq!(places(&second), row("A", 1..=2));
}

/// ...and from the seat map, which keeps each hold's deadline, whether it was read from the
/// database when the map was built or written with the hold, and frees its seats once it passes.
#[tokio::test]
async fn a_front_row_of_holds_that_lapse_is_picked_again_from_the_seat_map() {
    let app = spawn_app_with_env(&[("HOLD_TTL_SECONDS", "1")]).await;
    let (event_id, seats) = app.seed_event(2, 4).await;
    let early = app.hold("carol", event_id, &ids(&seats, 4, 0, 3..=4)).await;
    assert_eq!(early.status(), 201);
    let first = best_pair(&app, "ann", event_id).await;
    assert_eq!(places(&first), row("A", 1..=2));
    let late = app.hold("erin", event_id, &ids(&seats, 4, 1, 1..=2)).await;
    assert_eq!(late.status(), 201);
    let second = best_pair(&app, "bob", event_id).await;
    assert_eq!(places(&second), row("B", 3..=4));
    assert_eq!(seat_map(&app, event_id).await, b"bbhhhhbb");

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let third = best_pair(&app, "dan", event_id).await;
    let fourth = best_pair(&app, "fay", event_id).await;

    assert_eq!(places(&third), row("A", 3..=4));
    assert_eq!(places(&fourth), row("B", 1..=2));
    assert_eq!(seat_map(&app, event_id).await, b"bbbbbbbb");
}

/// A pick from the seat map takes no database lock: it books while another session holds the
/// event's pick lock, with an `Idempotency-Key` and without. A pick the map cannot settle (here a
/// map showing every seat taken) is made from the database: it waits for the lock until its
/// `lock_timeout` and gives up (503).
#[tokio::test]
async fn a_pick_from_the_seat_map_does_not_wait_for_the_events_pick_lock() {
    let app = spawn_app().await;
    let (event_id, _) = app.seed_event(2, 10).await;
    let rival = app.connect().await;
    rival
        .execute("SELECT pg_advisory_lock($1)", &[&event_id])
        .await
        .unwrap();
    let body = json!({"event_id": event_id, "best_available": {"count": 2}});

    let mapped = best_pair(&app, "gus", event_id).await;
    let keyed = app
        .request(reqwest::Method::POST, "/api/v1/bookings", As::User("hal"))
        .header("idempotency-key", "mapped")
        .json(&body)
        .send()
        .await
        .unwrap();
    let keyed = created(keyed).await;
    set_seat_map(&app, event_id, &[b'b'; 20]).await;
    let locked = best(
        &app,
        "/api/v1/bookings",
        "ida",
        event_id,
        body["best_available"].clone(),
    );

    assert_eq!(places(&mapped), row("A", 5..=6));
    assert_eq!(places(&keyed), row("A", 3..=4));
    assert_problem(locked.await, 503).await;
}

/// A seat booked where the seat map does not hear of it (here straight in the database): the
/// pick that chooses it collides on the unique constraint and picks again; no seat is sold twice.
#[tokio::test]
async fn a_seat_booked_behind_the_seat_maps_back_is_not_sold_twice() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 10).await;
    let first = best_pair(&app, "ivy", event_id).await;
    assert_eq!(places(&first), row("A", 5..=6));
    app.db
        .query(
            "SELECT * FROM book($1, $2, 'behind', 'confirmed'::booking_status, NULL)",
            &[&event_id, &ids(&seats, 10, 0, 3..=4)],
        )
        .await
        .unwrap();

    let second = best_pair(&app, "jon", event_id).await;

    assert_eq!(places(&second), row("A", 7..=8));
    assert_eq!(
        app.count("SELECT count(DISTINCT seat_id) FROM tickets")
            .await,
        6
    );
    assert_eq!(app.count("SELECT count(*) FROM tickets").await, 6);
}

/// A seat map that shows seats taken that are free (unmarks lost) never answers `not-enough-seats`
/// on its own: the pick is made from the database, which sells what is free.
#[tokio::test]
async fn a_seat_map_that_shows_every_seat_taken_still_sells_what_the_database_has_free() {
    let app = spawn_app().await;
    let (event_id, _) = app.seed_event(1, 10).await;
    let first = best_pair(&app, "kim", event_id).await;
    assert_eq!(places(&first), row("A", 5..=6));
    set_seat_map(&app, event_id, b"bbbbbbbbbb").await;

    let second = best_pair(&app, "lou", event_id).await;

    assert_eq!(places(&second), row("A", 3..=4));
}

#[tokio::test]
async fn the_block_nearest_the_row_centre_wins_and_then_the_lower_seat_number() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 20).await;
    taken(&app, event_id, &ids(&seats, 20, 0, 9..=12)).await;

    // 7-8 and 13-14 are as near the centre (10.5) as each other: the lower goes first.
    let first = created(
        best(
            &app,
            "/api/v1/holds",
            "carol",
            event_id,
            json!({"count": 2}),
        )
        .await,
    )
    .await;
    let second =
        created(best(&app, "/api/v1/holds", "dave", event_id, json!({"count": 2})).await).await;

    assert_eq!(places(&first), row("A", 7..=8));
    assert_eq!(places(&second), row("A", 13..=14));
}

#[tokio::test]
async fn a_block_that_would_strand_one_seat_loses_to_one_that_does_not() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 8).await;
    // Row A keeps seats 1-3: any pair there leaves one seat alone.
    taken(&app, event_id, &ids(&seats, 8, 0, 4..=8)).await;

    let booking = created(
        best(
            &app,
            "/api/v1/bookings",
            "erin",
            event_id,
            json!({"count": 2}),
        )
        .await,
    )
    .await;

    assert_eq!(places(&booking), row("B", 4..=5));
    assert_eq!(booking["together"], true);
}

#[tokio::test]
async fn with_no_seats_side_by_side_the_best_apart_are_given_and_said_not_together() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 5).await;
    taken(&app, event_id, &ids(&seats, 5, 0, [2, 4])).await;

    let booking = created(
        best(
            &app,
            "/api/v1/bookings",
            "frank",
            event_id,
            json!({"count": 2}),
        )
        .await,
    )
    .await;

    // Seat 3 is the centre; 1 and 5 are as far from it, and 1 is the lower.
    assert_eq!(places(&booking), row("A", [1, 3]));
    assert_eq!(booking["together"], false);
}

#[tokio::test]
async fn a_category_or_a_section_narrows_the_choice_and_prices_the_seats() {
    let app = spawn_app().await;
    let (event_id, map) = theatre(&app).await;

    let back = created(
        best(
            &app,
            "/api/v1/holds",
            "gina",
            event_id,
            json!({"count": 2, "category": "Back"}),
        )
        .await,
    )
    .await;
    let circle = created(
        best(
            &app,
            "/api/v1/holds",
            "hugo",
            event_id,
            json!({"count": 3, "section": "Circle"}),
        )
        .await,
    )
    .await;
    let standard = created(
        best(
            &app,
            "/api/v1/holds",
            "ines",
            event_id,
            json!({"count": 2, "category": "Standard"}),
        )
        .await,
    )
    .await;

    // Circle B (5 wide): 2-3 and 3-4 would each leave a seat alone, so 1-2.
    let back_seats = [
        seat_id(&map, "Circle", "B", 1),
        seat_id(&map, "Circle", "B", 2),
    ];
    assert_eq!(ids_in(&back["tickets"], "seat_id"), back_seats);
    assert_eq!(back["total_cents"], 2 * 3000);
    // Circle A, the front row of the section: 1-3 (3-5 is as near its centre, and higher).
    let circle_seats: Vec<i64> = (1..=3).map(|n| seat_id(&map, "Circle", "A", n)).collect();
    assert_eq!(ids_in(&circle["tickets"], "seat_id"), circle_seats);
    assert_eq!(circle["total_cents"], 3 * 4500);
    // Standard is Circle A, whose seats 4-5 are left.
    let standard_seats = [
        seat_id(&map, "Circle", "A", 4),
        seat_id(&map, "Circle", "A", 5),
    ];
    assert_eq!(ids_in(&standard["tickets"], "seat_id"), standard_seats);

    // Both filters at once: Stalls' own category, in Stalls.
    let stalls = created(
        best(
            &app,
            "/api/v1/holds",
            "jon",
            event_id,
            json!({"count": 4, "category": "Stalls", "section": "Stalls"}),
        )
        .await,
    )
    .await;
    assert_eq!(places(&stalls), row("B", 1..=4));
    assert_eq!(stalls["total_cents"], 4 * 6000);
}

#[tokio::test]
async fn an_unknown_category_or_section_is_unprocessable() {
    let app = spawn_app().await;
    let (event_id, _) = theatre(&app).await;

    for wanted in [
        json!({"count": 1, "category": "Gallery"}),
        json!({"count": 1, "section": "Balcony"}),
        json!({"count": 1, "category": "Back", "section": "Gods"}),
    ] {
        let response = best(&app, "/api/v1/bookings", "kim", event_id, wanted.clone()).await;
        let problem = assert_problem(response, 422).await;
        assert!(
            problem["type"].as_str().unwrap().ends_with("/validation"),
            "{wanted}: {problem}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 0);
}

#[tokio::test]
async fn wheelchair_places_are_offered_only_when_asked_for_and_then_only_they() {
    let app = spawn_app().await;
    let (event_id, map) = theatre(&app).await;

    // Stalls A is 1 (wheelchair), 2, 3, 4 (wheelchair): a pair there without asking is 2-3.
    let ordinary =
        created(best(&app, "/api/v1/holds", "lea", event_id, json!({"count": 2})).await).await;
    assert_eq!(places(&ordinary), row("A", 2..=3));
    // Four in Stalls: not row A, whose other two seats are wheelchair places.
    let four = created(
        best(
            &app,
            "/api/v1/holds",
            "max",
            event_id,
            json!({"count": 4, "section": "Stalls"}),
        )
        .await,
    )
    .await;
    assert_eq!(places(&four), row("B", 1..=4));

    let asked = created(
        best(
            &app,
            "/api/v1/holds",
            "ned",
            event_id,
            json!({"count": 1, "accessible": true}),
        )
        .await,
    )
    .await;
    assert_eq!(
        ids_in(&asked["tickets"], "seat_id"),
        [seat_id(&map, "Stalls", "A", 1)]
    );
    // One wheelchair place is left, and nothing else is offered to whoever asks for them.
    let response = best(
        &app,
        "/api/v1/holds",
        "ola",
        event_id,
        json!({"count": 2, "accessible": true}),
    )
    .await;
    let problem = assert_problem(response, 409).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/not-enough-seats"),
        "{problem}"
    );
    assert_eq!(problem["available"], 1);
}

#[tokio::test]
async fn fewer_free_seats_than_asked_for_is_a_409_saying_how_many_are_free() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 5).await;
    taken(&app, event_id, &seats[..3]).await;

    for path in ["/api/v1/bookings", "/api/v1/holds"] {
        let response = best(&app, path, "pat", event_id, json!({"count": 3})).await;
        let problem = assert_problem(response, 409).await;
        assert_eq!(
            problem["type"],
            "https://seatbook.dev/problems/not-enough-seats"
        );
        assert_eq!(problem["available"], 2, "{problem}");
    }
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
}

#[tokio::test]
async fn exactly_one_of_seat_ids_and_best_available_is_taken_else_400() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;

    for body in [
        json!({"event_id": event_id, "seat_ids": [seats[0]], "best_available": {"count": 1}}),
        json!({"event_id": event_id}),
        json!({"event_id": event_id, "best_available": null}),
        json!({"event_id": event_id, "seat_ids": null, "best_available": {"count": 1}}),
        json!({"event_id": event_id, "best_available": {"category": "Front"}}),
    ] {
        for path in ["/api/v1/bookings", "/api/v1/holds"] {
            let response = app.post(path, As::User("quinn"), &body).await;
            assert_problem(response, 400).await;
        }
    }
    for count in [0, 11, -1] {
        let body = json!({"event_id": event_id, "best_available": {"count": count}});
        let response = app.post("/api/v1/bookings", As::User("quinn"), &body).await;
        assert_problem(response, 422).await;
    }
    let unknown = best(
        &app,
        "/api/v1/bookings",
        "quinn",
        999_999,
        json!({"count": 1}),
    )
    .await;
    assert_problem(unknown, 404).await;
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 0);
}

#[tokio::test]
async fn holds_and_bookings_both_take_best_available_and_a_hold_is_confirmed_as_any() {
    let app = spawn_app().await;
    let (event_id, _) = app.seed_event(1, 10).await;

    let hold =
        created(best(&app, "/api/v1/holds", "rita", event_id, json!({"count": 2})).await).await;
    let booking = created(
        best(
            &app,
            "/api/v1/bookings",
            "sam",
            event_id,
            json!({"count": 2}),
        )
        .await,
    )
    .await;

    assert_eq!(
        (hold["status"].as_str(), hold["together"].as_bool()),
        (Some("held"), Some(true))
    );
    assert!(hold["expires_at"].is_string());
    assert_eq!(places(&hold), row("A", 5..=6));
    assert_eq!(booking["status"], "confirmed");
    // 3-4 and 7-8 are as near the centre; 3-4 is the lower.
    assert_eq!(places(&booking), row("A", 3..=4));
    let confirm = app
        .post(
            &format!("/api/v1/holds/{}/confirm", hold["id"].as_str().unwrap()),
            As::User("rita"),
            &json!({}),
        )
        .await;
    assert_eq!(confirm.status(), 201);
    // The map shows all four seats taken.
    let map = app.availability(event_id).await;
    assert_eq!(map["available_seats"], 6);
}

#[tokio::test]
async fn an_idempotency_key_replays_a_best_available_booking_and_refuses_another_request() {
    let app = spawn_app().await;
    let (event_id, _) = app.seed_event(1, 10).await;
    let body = json!({"event_id": event_id, "best_available": {"count": 2}});
    let send = |body: Value| {
        app.request(reqwest::Method::POST, "/api/v1/bookings", As::User("tess"))
            .header("idempotency-key", "pick-1")
            .json(&body)
            .send()
    };

    let first = created(send(body.clone()).await.unwrap()).await;
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again = created(again).await;
    let other = send(json!({"event_id": event_id, "best_available": {"count": 3}}))
        .await
        .unwrap();

    assert_eq!(again, first);
    assert_eq!(first["together"], true);
    assert_problem(other, 422).await;
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
}

/// A pick under the event's lock commits without waiting for the disk, so the lock is given up
/// before the flush (decision 25); its answer waits for the flush. A pick from the seat map commits
/// as any booking does. Judged in the WAL itself (`pg_walinspect` reads only what is flushed): the
/// commit of each booking is there when its 201 arrives, from the map and under the lock (an app
/// without Redis), with an `Idempotency-Key` and without.
#[tokio::test]
async fn a_best_available_booking_is_on_disk_before_it_is_answered() {
    for app in [spawn_app().await, without_redis().await] {
        on_disk_when_answered(&app).await;
    }
}

async fn on_disk_when_answered(app: &TestApp) {
    let (event_id, _) = app.seed_event(2, 10).await;
    app.db
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .await
        .unwrap();
    let body = json!({"event_id": event_id, "best_available": {"count": 2}});

    for key in [None, Some("flushed-1")] {
        let start: String = app
            .db
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .unwrap()
            .get(0);
        let mut request = app.request(reqwest::Method::POST, "/api/v1/bookings", As::User("dora"));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let booking = created(request.json(&body).send().await.unwrap()).await;
        let id = uuid::Uuid::parse_str(booking["id"].as_str().unwrap()).unwrap();

        // The booking's row was written in a savepoint: its xmin is a subtransaction's, listed
        // in the top-level commit record's description.
        let flushed: i64 = app
            .db
            .query_one(
                "WITH x AS (SELECT xmin::text AS xid FROM bookings WHERE id = $1)
                 SELECT count(*) FROM x, pg_get_wal_records_info($2::text::pg_lsn,
                                                               pg_current_wal_flush_lsn()) w
                 WHERE w.resource_manager = 'Transaction' AND w.record_type = 'COMMIT'
                   AND (w.xid::text = x.xid OR w.description ~ ('subxacts:.*\\m' || x.xid || '\\M'))",
                &[&id, &start],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            flushed, 1,
            "key {key:?}: booking {id}'s commit is on disk when answered"
        );
    }
}

#[tokio::test]
async fn a_cap_and_a_sales_window_apply_to_best_available_as_to_any_booking() {
    let app = spawn_app().await;
    let venue = app
        .create_venue(&format!("Capped {}", uuid::Uuid::new_v4()), 2, 10)
        .await;
    let at = |offset: Span| (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut events = Vec::new();
    for extra in [
        json!({"max_seats_per_user": 2}),
        json!({"sales_start_at": at(Span::days(1))}),
    ] {
        let mut body = json!({"name": "Gig", "starts_at": at(Span::days(30)),
                              "venue_id": venue["id"], "price_cents": 1000});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        events.push(
            created(app.post("/api/v1/events", ORGANIZER, &body).await).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let (capped, later) = (events[0], events[1]);

    let too_many = best(&app, "/api/v1/holds", "uma", capped, json!({"count": 3})).await;
    let problem = assert_problem(too_many, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/seat-limit"),
        "{problem}"
    );
    // The seats the refused pick marked on the seat map are given back.
    assert_eq!(seat_map(&app, capped).await, b"....................");
    created(best(&app, "/api/v1/holds", "uma", capped, json!({"count": 2})).await).await;
    let closed = best(&app, "/api/v1/bookings", "uma", later, json!({"count": 1})).await;
    let problem = assert_problem(closed, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/sales-closed"),
        "{problem}"
    );
}

/// A booking naming seats that a pick chose, committed while the pick waits on them: the pick
/// collides on the unique constraint and picks again from a fresh read, without a 409.
#[tokio::test]
async fn a_pick_that_meets_a_booking_naming_its_seats_picks_again() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 10).await;
    let rival = app.connect().await;
    // A booking of seats 5-6 (the best pair), open: not visible to the pick's read, but its
    // tickets stop the pick's insert until it commits.
    rival.batch_execute("BEGIN").await.unwrap();
    rival
        .query(
            "SELECT * FROM book($1, $2, 'rival', 'confirmed'::booking_status, NULL)",
            &[&event_id, &ids(&seats, 10, 0, 5..=6)],
        )
        .await
        .unwrap();

    let pick = {
        let url = app.url("/api/v1/bookings");
        let client = app.client.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-dev-user", "vera")
                .json(&json!({"event_id": event_id, "best_available": {"count": 2}}))
                .send()
                .await
                .unwrap()
        })
    };
    // The pick waits on the rival's uncommitted tickets.
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE wait_event_type = 'Lock' AND query LIKE '%book(%'";
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.count(waiting).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the pick never waited on the rival"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rival.batch_execute("COMMIT").await.unwrap();

    let booking = created(pick.await.unwrap()).await;
    // 3-4 and 7-8 are as near the centre; 3-4 is the lower.
    assert_eq!(places(&booking), row("A", 3..=4));
    assert_eq!(booking["together"], true);
}

/// An on-sale herd of pairs: 500 buyers at once, each asking for the best two seats of a 400-seat
/// event. Every seat is sold once, to exactly 200 of them; the other 300 are told there are not
/// enough seats, and nobody gets any other answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_simultaneous_pairs_on_a_four_hundred_seat_event_sell_every_seat_once() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(20, 20).await;
    let requests = (0..500)
        .map(|i| {
            let body = json!({"event_id": event_id, "best_available": {"count": 2}});
            (format!("fan-{i}"), body)
        })
        .collect();
    let stats =
        "SELECT xact_commit + xact_rollback, blks_hit + blks_read, tup_returned + tup_fetched
                 FROM pg_stat_database WHERE datname = current_database()";
    let before = app.db.query_one(stats, &[]).await.unwrap();

    let started = Instant::now();
    let results = stampede(&app, requests).await;
    let took = started.elapsed();

    tokio::time::sleep(Duration::from_millis(600)).await; // pg_stat's figures are flushed late
    let after = app.db.query_one(stats, &[]).await.unwrap();
    let delta = |i: usize| after.get::<_, i64>(i) - before.get::<_, i64>(i);
    eprintln!(
        "herd of 500 pairs on 400 seats: {took:?}, {} transactions, {} buffers, {} tuples",
        delta(0),
        delta(1),
        delta(2)
    );
    sold_every_seat_once(&results, &seats);
    assert_eq!(app.count("SELECT count(*) FROM tickets").await, 400);
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 200);
}

/// The herd again, spread over four environments that share the database and Redis (as Lambda
/// runs them): their picks meet only in the seat map's atomic claims and in PostgreSQL, and still
/// sell every seat once, with no answer but 201 and `not-enough-seats`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_of_pairs_over_four_environments_sells_every_seat_once() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(10, 20).await;
    let siblings = [
        app.sibling().await,
        app.sibling().await,
        app.sibling().await,
    ];
    let mut addresses = vec![app.url("/api/v1/bookings")];
    addresses.extend(siblings.iter().map(|s| s.url("/api/v1/bookings")));
    let requests = (0..300)
        .map(|i| {
            let body = json!({"event_id": event_id, "best_available": {"count": 2}});
            (format!("fan-{i}"), body)
        })
        .collect();

    let results = stampede_across(&app, &addresses, requests).await;

    sold_every_seat_once(&results, &seats);
}

/// Redis dies mid-sale: picks are made from the database under the event's lock, seat for seat as
/// the map would have made them. Back (empty, as after a failover), the map is built again from
/// the database by the next pick and picks are made from it.
#[tokio::test]
async fn picks_go_on_without_redis_and_the_seat_map_is_rebuilt_when_it_returns() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url()), ("REDIS_TIMEOUT_MS", "200")]).await;
    let (event_id, _) = app.seed_event(1, 10).await;
    let first = best_pair(&app, "ann", event_id).await;
    assert_eq!(places(&first), row("A", 5..=6));

    redis.kill();
    let second = best_pair(&app, "bob", event_id).await;
    assert_eq!(places(&second), row("A", 3..=4));
    assert_eq!(app.metrics().await["cache"]["available"], false);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.metrics().await["cache"]["available"] != true {
        assert!(Instant::now() < deadline, "Redis never used again");
        app.availability(event_id).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let third = best_pair(&app, "cat", event_id).await;

    assert_eq!(places(&third), row("A", 7..=8));
    let keys = redis.command(&["KEYS", "*:seatmap"]).unwrap();
    let redis::Value::Array(keys) = keys else {
        panic!("{keys:?}")
    };
    let [redis::Value::BulkString(key)] = &keys[..] else {
        panic!("one seat map: {keys:?}")
    };
    let map = redis.command(&["GET", std::str::from_utf8(key).unwrap()]);
    assert_eq!(
        map.unwrap(),
        redis::Value::BulkString(b"..bbbbbb..".to_vec())
    );
}

/// A herd of pairs on an event of `seats`, more than it has: one 201 per pair, every seat sold
/// once, and every other answer 409 `not-enough-seats` with none available.
fn sold_every_seat_once(results: &[(u16, Value)], seats: &[i64]) {
    let pairs = seats.len() / 2;
    let counted = by_status(results);
    let expected = HashMap::from([(201, pairs), (409, results.len() - pairs)]);
    assert_eq!(counted, expected, "{counted:?}");
    let mut sold = Vec::new();
    for (status, body) in results {
        if *status == 201 {
            sold.extend(ids_in(&body["tickets"], "seat_id"));
        } else {
            assert_eq!(
                body["type"], "https://seatbook.dev/problems/not-enough-seats",
                "{body}"
            );
            assert_eq!(body["available"], 0, "{body}");
        }
    }
    let distinct: HashSet<i64> = sold.iter().copied().collect();
    assert_eq!(sold.len(), seats.len(), "no seat twice");
    assert_eq!(distinct, seats.iter().copied().collect(), "every seat sold");
}
