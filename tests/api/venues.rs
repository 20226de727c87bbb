//! Venues of sections with wheelchair places, events with price categories, the seat map that
//! shows both, and what seats of different categories cost (issue 22).

use crate::common::place;
use crate::helpers::{assert_problem, spawn_app, As, TestApp, ORGANIZER};
use serde_json::{json, Value};

/// A theatre: Stalls (3 rows of 4, wheelchair places A1 and A4), then Circle (2 rows of 5).
fn theatre(name: &str) -> Value {
    json!({
        "name": name,
        "sections": [
            {"name": "Stalls", "rows": 3, "cols": 4,
             "accessible": [{"row": "A", "number": 1}, {"row": "A", "number": 4}]},
            {"name": "Circle", "rows": 2, "cols": 5},
        ],
    })
}

/// POSTs a venue, asserting a 201.
async fn venue(app: &TestApp, body: Value) -> Value {
    let response = app.post("/api/v1/venues", ORGANIZER, &body).await;
    assert_eq!(response.status(), 201, "create venue {body}");
    response.json().await.unwrap()
}

/// An event in `venue_id` at `price_cents`, with `categories` (none if `null`).
fn event_body(venue_id: &Value, price_cents: i64, categories: Value) -> Value {
    let mut body = json!({
        "name": "Hamlet",
        "starts_at": "2031-06-01T19:30:00Z",
        "venue_id": venue_id,
        "price_cents": price_cents,
    });
    if !categories.is_null() {
        body["categories"] = categories;
    }
    body
}

/// POSTs an event, asserting a 201; its id.
async fn event(app: &TestApp, venue_id: &Value, price_cents: i64, categories: Value) -> i64 {
    post_event(app, event_body(venue_id, price_cents, categories)).await
}

/// POSTs the event `body`, asserting a 201; its id.
async fn post_event(app: &TestApp, body: Value) -> i64 {
    let response = app.post("/api/v1/events", ORGANIZER, &body).await;
    assert_eq!(response.status(), 201, "create event {body}");
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// The theatre's usual prices: Front (Stalls A) 9000, Stalls (the rest of it) 6000, Circle B 3000;
/// Circle A is left to Standard at the event's 4500.
fn theatre_prices() -> Value {
    json!([
        {"name": "Front", "price_cents": 9000, "section": "Stalls", "rows": ["A"]},
        {"name": "Stalls", "price_cents": 6000, "section": "Stalls"},
        {"name": "Back", "price_cents": 3000, "section": "Circle", "rows": ["B"]},
    ])
}

/// The map's seat `number` of row `row` in `section`.
fn seat<'a>(map: &'a Value, section: &str, row: &str, number: i64) -> &'a Value {
    map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == section && s["row"] == row && s["number"] == number)
        .unwrap_or_else(|| panic!("{section} {row}{number} on the map"))
}

fn seat_id(map: &Value, section: &str, row: &str, number: i64) -> i64 {
    seat(map, section, row, number)["id"].as_i64().unwrap()
}

/// `{name: [price_cents, available]}` of the map's categories, in the map's order.
fn categories(map: &Value) -> Vec<(String, i64, i64)> {
    map["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["price_cents"].as_i64().unwrap(),
                c["available"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn owned(list: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    list.iter()
        .map(|(name, price, available)| (name.to_string(), *price, *available))
        .collect()
}

#[tokio::test]
async fn a_venue_of_sections_gives_each_section_its_own_rows_front_to_back() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Old Vic")).await;
    assert_eq!(made["total_seats"], 22);
    assert_eq!(
        (made["rows"].clone(), made["cols"].clone()),
        (json!(5), json!(5))
    );
    assert_eq!(
        made["sections"],
        json!([
            {"name": "Stalls", "rows": 3, "cols": 4,
             "accessible": [{"row": "A", "number": 1}, {"row": "A", "number": 4}]},
            {"name": "Circle", "rows": 2, "cols": 5, "accessible": []},
        ])
    );
    let event_id = event(&app, &made["id"], 2500, Value::Null).await;
    let map = app.availability(event_id).await;
    let order: Vec<String> = map["seats"].as_array().unwrap().iter().map(place).collect();
    let mut expected = Vec::new();
    for (section, rows, cols) in [
        ("Stalls", ["A", "B", "C"].as_slice(), 4),
        ("Circle", &["A", "B"], 5),
    ] {
        for row in rows {
            for number in 1..=cols {
                expected.push(format!("{section} {row}{number}"));
            }
        }
    }
    assert_eq!(
        order, expected,
        "front to back, rows A, B, … in each section"
    );
    let wheelchair: Vec<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["accessible"] == true)
        .map(place)
        .collect();
    assert_eq!(wheelchair, ["Stalls A1", "Stalls A4"]);
}

#[tokio::test]
async fn section_names_must_be_unique_in_a_venue_ignoring_case() {
    let app = spawn_app().await;
    let body = json!({"name": "Twice", "sections": [
        {"name": "Stalls", "rows": 1, "cols": 1},
        {"name": "stalls ", "rows": 1, "cols": 1},
    ]});
    let problem = assert_problem(app.post("/api/v1/venues", ORGANIZER, &body).await, 422).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("unique"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_wheelchair_place_the_section_does_not_have_is_unprocessable() {
    let app = spawn_app().await;
    for place in [
        json!({"row": "C", "number": 1}),
        json!({"row": "A", "number": 5}),
        json!({"row": "a", "number": 1}),
        json!({"row": "A", "number": 0}),
    ] {
        let body = json!({"name": "Odd", "sections": [
            {"name": "Stalls", "rows": 2, "cols": 4, "accessible": [place]},
        ]});
        let problem = assert_problem(app.post("/api/v1/venues", ORGANIZER, &body).await, 422).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("Stalls"),
            "{problem}"
        );
    }
    let twice = json!({"name": "Odd", "sections": [{"name": "Stalls", "rows": 2, "cols": 4,
        "accessible": [{"row": "A", "number": 1}, {"row": "A", "number": 1}]}]});
    assert_problem(app.post("/api/v1/venues", ORGANIZER, &twice).await, 422).await;
    // Nothing was created by any of them.
    let venues = app.count("SELECT count(*) FROM venues").await;
    assert_eq!(venues, 0);
}

#[tokio::test]
async fn sections_of_impossible_sizes_or_too_many_seats_are_unprocessable() {
    let app = spawn_app().await;
    let section =
        |name: String, rows: i64, cols: i64| json!({"name": name, "rows": rows, "cols": cols});
    for sections in [
        json!([]),
        json!([section("A".into(), 0, 3)]),
        json!([section("A".into(), 3, 201)]),
        json!([section(" ".into(), 1, 1)]),
        // Two full-size sections: 80,000 seats.
        json!([section("A".into(), 200, 200), section("B".into(), 200, 200)]),
        json!((0..21)
            .map(|i| section(format!("S{i}"), 1, 1))
            .collect::<Vec<_>>()),
    ] {
        let body = json!({"name": "Odd", "sections": sections});
        assert_problem(app.post("/api/v1/venues", ORGANIZER, &body).await, 422).await;
    }
}

#[tokio::test]
async fn a_venue_takes_sections_or_rows_and_cols_but_not_both_nor_neither() {
    let app = spawn_app().await;
    let sections = json!([{"name": "Stalls", "rows": 1, "cols": 1}]);
    for body in [
        json!({"name": "Both", "rows": 2, "cols": 2, "sections": sections}),
        json!({"name": "Both", "rows": 2, "sections": sections}),
        json!({"name": "Neither"}),
        json!({"name": "Half", "rows": 2}),
        json!({"name": "Half", "cols": 2}),
        json!({"name": "Null", "rows": 2, "cols": 2, "sections": null}),
        json!({"name": "Null", "rows": null, "cols": null, "sections": sections}),
    ] {
        let problem = assert_problem(app.post("/api/v1/venues", ORGANIZER, &body).await, 400).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("sections") && detail.contains("rows"),
            "{body}: {problem}"
        );
    }
}

#[tokio::test]
async fn a_venue_of_rows_and_cols_is_one_section_named_main_at_one_price() {
    let app = spawn_app().await;
    let made = app.create_venue("Plain Hall", 2, 3).await;
    assert_eq!(
        made["sections"],
        json!([{"name": "Main", "rows": 2, "cols": 3, "accessible": []}])
    );
    let event_id = event(&app, &made["id"], 2500, Value::Null).await;
    let map = app.availability(event_id).await;
    for seat in map["seats"].as_array().unwrap() {
        assert_eq!(seat["section"], "Main", "{seat}");
        assert_eq!(seat["category"], "Standard", "{seat}");
        assert_eq!(seat["price_cents"], 2500, "{seat}");
        assert_eq!(seat["accessible"], false, "{seat}");
        assert_eq!(seat["status"], "available", "{seat}");
    }
    assert_eq!(categories(&map), owned(&[("Standard", 2500, 6)]));
    // A one-price booking costs what it always did.
    let seats: Vec<i64> = [("A", 1), ("B", 3)]
        .map(|(r, n)| seat_id(&map, "Main", r, n))
        .into();
    let booking: Value = app
        .book("alice", event_id, &seats)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(booking["total_cents"], 5000, "{booking}");
}

#[tokio::test]
async fn a_seat_is_in_the_first_category_that_covers_it_and_otherwise_in_standard() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Lyric")).await;
    let event_id = event(&app, &made["id"], 4500, theatre_prices()).await;
    let map = app.availability(event_id).await;
    for (section, row, category, price) in [
        // Stalls A is in Front and in Stalls: Front came first.
        ("Stalls", "A", "Front", 9000),
        ("Stalls", "B", "Stalls", 6000),
        ("Stalls", "C", "Stalls", 6000),
        ("Circle", "A", "Standard", 4500),
        ("Circle", "B", "Back", 3000),
    ] {
        let seat = seat(&map, section, row, 2);
        assert_eq!(
            (
                seat["category"].as_str().unwrap(),
                seat["price_cents"].as_i64().unwrap()
            ),
            (category, price),
            "{section} {row}: {seat}"
        );
    }
    assert_eq!(
        categories(&map),
        owned(&[
            ("Front", 9000, 4),
            ("Stalls", 6000, 8),
            ("Back", 3000, 5),
            ("Standard", 4500, 5),
        ])
    );
}

#[tokio::test]
async fn standard_is_left_off_the_map_when_categories_cover_every_seat() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Full Cover")).await;
    let prices = json!([
        {"name": "Stalls", "price_cents": 6000, "section": "Stalls"},
        {"name": "Circle", "price_cents": 3000, "section": "Circle"},
        {"name": "Unused", "price_cents": 1000, "section": "Circle", "rows": ["A"]},
    ]);
    let event_id = event(&app, &made["id"], 4500, prices).await;
    let map = app.availability(event_id).await;
    // A category every seat of which an earlier one took is listed, with nothing available.
    assert_eq!(
        categories(&map),
        owned(&[
            ("Stalls", 6000, 12),
            ("Circle", 3000, 10),
            ("Unused", 1000, 0)
        ])
    );
}

#[tokio::test]
async fn a_category_naming_a_section_or_row_the_venue_does_not_have_is_unprocessable() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Strict")).await;
    for category in [
        json!({"name": "Box", "price_cents": 100, "section": "Balcony"}),
        // Circle has rows A and B; Stalls has C, the Circle does not.
        json!({"name": "Box", "price_cents": 100, "section": "Circle", "rows": ["C"]}),
        json!({"name": "Box", "price_cents": 100, "section": "Stalls", "rows": ["A", "D"]}),
        json!({"name": "Box", "price_cents": 100, "section": "Stalls", "rows": ["A", "A"]}),
        json!({"name": "Box", "price_cents": 100, "section": "Stalls", "rows": []}),
        json!({"name": "Box", "price_cents": -1, "section": "Stalls"}),
    ] {
        let body = event_body(&made["id"], 4500, json!([category]));
        let problem = assert_problem(app.post("/api/v1/events", ORGANIZER, &body).await, 422).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("Box"),
            "{category}: {problem}"
        );
    }
    let events = app.count("SELECT count(*) FROM events").await;
    assert_eq!(events, 0, "no event was created");
}

#[tokio::test]
async fn category_names_are_unique_in_an_event_and_standard_is_taken() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Names")).await;
    for categories in [
        json!([
            {"name": "Gold", "price_cents": 100, "section": "Stalls"},
            {"name": "GOLD", "price_cents": 200, "section": "Circle"},
        ]),
        json!([{"name": "Standard", "price_cents": 100, "section": "Stalls"}]),
    ] {
        let body = event_body(&made["id"], 4500, categories);
        assert_problem(app.post("/api/v1/events", ORGANIZER, &body).await, 422).await;
    }
    // The same name in two events is fine.
    for _ in 0..2 {
        let gold = json!([{"name": "Gold", "price_cents": 100, "section": "Stalls"}]);
        event(&app, &made["id"], 4500, gold).await;
    }
}

#[tokio::test]
async fn an_event_with_categories_in_an_unknown_venue_is_not_found() {
    let app = spawn_app().await;
    let body = event_body(&json!(4242), 100, theatre_prices());
    assert_problem(app.post("/api/v1/events", ORGANIZER, &body).await, 404).await;
}

#[tokio::test]
async fn the_map_counts_the_available_seats_of_each_category() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Counting")).await;
    let event_id = event(&app, &made["id"], 4500, theatre_prices()).await;
    let map = app.availability(event_id).await;
    let front = [1, 2].map(|n| seat_id(&map, "Stalls", "A", n));
    let standard = seat_id(&map, "Circle", "A", 3);
    assert_eq!(app.book("alice", event_id, &front).await.status(), 201);
    assert_eq!(app.hold("bob", event_id, &[standard]).await.status(), 201);
    let map = app.availability(event_id).await;
    assert_eq!(
        categories(&map),
        owned(&[
            ("Front", 9000, 2),
            ("Stalls", 6000, 8),
            ("Back", 3000, 5),
            ("Standard", 4500, 4),
        ])
    );
    assert_eq!(map["available_seats"], 19);
    assert_eq!(seat(&map, "Circle", "A", 3)["status"], "held");
}

#[tokio::test]
async fn the_map_of_sections_and_categories_is_served_with_an_etag_and_gzip() {
    let app = spawn_app().await;
    let made = venue(&app, theatre("Cached")).await;
    let event_id = event(&app, &made["id"], 4500, theatre_prices()).await;
    let path = format!("/api/v1/events/{event_id}/availability");
    let response = app
        .request(reqwest::Method::GET, &path, As::Anonymous)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let etag = response.headers()["etag"].clone();
    let gzipped = response.bytes().await.unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut plain)
        .unwrap();
    let map: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(seat(&map, "Stalls", "A", 1)["category"], "Front");
    let again = app
        .request(reqwest::Method::GET, &path, As::Anonymous)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn venues_made_before_sections_are_one_section_named_main_after_the_migration() {
    let db = test_support::TestDb::create("venues").await;
    let url = db.url();
    let settings = seatbook_core::config::Settings::from_lookup(|k| {
        (k == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap();
    let pool = seatbook_core::db::pool(&settings.database, 1).unwrap();
    // The schema before sections, with a venue and an event in it.
    seatbook_core::db::migrate_to(&pool, 12).await.unwrap();
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO venues (name, rows, cols) VALUES ('Old Hall', 2, 3);
             INSERT INTO seats (venue_id, row_index, row_label, seat_number)
             SELECT v.id, r, chr(64 + r), n
             FROM venues v, generate_series(1, 2) r, generate_series(1, 3) n;
             INSERT INTO events (name, starts_at, venue_id, price_cents)
             SELECT 'Old Night', now() + interval '1 day', id, 1500 FROM venues;",
        )
        .await
        .unwrap();
    assert!(seatbook_core::db::migrate(&pool).await.unwrap() > 0);
    let sections: Vec<(String, i32, i32, i32, i32)> = client
        .query(
            "SELECT name, position, first_row, rows, cols FROM sections",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(sections, [("Main".to_owned(), 1, 1, 2, 3)]);
    let wheelchair: i64 = client
        .query_one("SELECT count(*) FROM seats WHERE accessible", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wheelchair, 0, "every existing seat is an ordinary one");
    // Its seats still sell, at the event's one price.
    let total: i64 = client
        .query_one(
            "SELECT total_cents FROM book((SELECT id FROM events),
                 ARRAY(SELECT id FROM seats ORDER BY id LIMIT 2), 'alice', 'confirmed', NULL)
             LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 3000);
}

/// The `booking.confirmed` payload the outbox holds for `booking_id`, as the webhook delivers it.
async fn confirmation(app: &TestApp, booking_id: &Value) -> Value {
    let id: uuid::Uuid = booking_id.as_str().unwrap().parse().unwrap();
    let payload: Value = app
        .db
        .query_one(
            "SELECT payload::text FROM outbox WHERE booking_id = $1 AND kind = 'booking.confirmed'",
            &[&id],
        )
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    payload
}

/// (seat id, price_cents) of each of a booking's tickets, or of a payload's.
fn prices(tickets: &Value) -> Vec<(i64, i64)> {
    let mut prices: Vec<(i64, i64)> = tickets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["seat_id"].as_i64().unwrap(),
                t["price_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    prices.sort_unstable();
    prices
}

/// A theatre event with its usual prices (`cap`: a per-person seat cap, which books through
/// `book()`'s other path), and one seat of each price: Front 9000, Stalls 6000, Standard 4500,
/// Back 3000, with their (seat id, price) sorted by seat id.
async fn priced_theatre(app: &TestApp, cap: Option<i64>) -> (i64, Vec<i64>, Vec<(i64, i64)>) {
    let made = venue(app, theatre(&format!("Theatre {}", uuid::Uuid::new_v4()))).await;
    let mut body = event_body(&made["id"], 4500, theatre_prices());
    if let Some(cap) = cap {
        body["max_seats_per_user"] = json!(cap);
    }
    let event_id = post_event(app, body).await;
    let map = app.availability(event_id).await;
    let picked = [
        ("Stalls", "A", 9000),
        ("Stalls", "B", 6000),
        ("Circle", "A", 4500),
        ("Circle", "B", 3000),
    ]
    .map(|(section, row, price)| (seat_id(&map, section, row, 2), price));
    let mut expected = picked.to_vec();
    expected.sort_unstable();
    (event_id, picked.map(|(id, _)| id).into(), expected)
}

#[tokio::test]
async fn a_booking_across_categories_costs_the_sum_of_its_seats_prices_each_on_its_ticket() {
    let app = spawn_app().await;
    // Without a cap and with one: book() prices seats the same way on both of its paths.
    for (user, cap) in [("alice", None), ("bob", Some(6))] {
        let (event_id, seats, expected) = priced_theatre(&app, cap).await;
        let response = app.book(user, event_id, &seats).await;
        assert_eq!(response.status(), 201, "cap {cap:?}");
        let booking: Value = response.json().await.unwrap();
        assert_eq!(booking["total_cents"], 22_500, "cap {cap:?}: {booking}");
        assert_eq!(prices(&booking["tickets"]), expected, "cap {cap:?}");
        // As stored, and as the booking reads back.
        let read = app
            .get_json(
                &format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap()),
                As::User(user),
            )
            .await;
        assert_eq!(read["total_cents"], 22_500);
        assert_eq!(prices(&read["tickets"]), expected);
        // The webhook says the same.
        let payload = confirmation(&app, &booking["id"]).await;
        assert_eq!(payload["total_cents"], 22_500, "{payload}");
        assert_eq!(prices(&payload["tickets"]), expected, "{payload}");
    }
}

#[tokio::test]
async fn a_hold_across_categories_is_confirmed_at_the_sum_of_its_seats_prices() {
    let app = spawn_app().await;
    let (event_id, seats, expected) = priced_theatre(&app, None).await;
    let hold: Value = app
        .hold("carol", event_id, &seats[1..])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hold["total_cents"], 13_500, "{hold}");
    assert_eq!(
        prices(&hold["tickets"]),
        expected
            .iter()
            .copied()
            .filter(|(_, p)| *p != 9000)
            .collect::<Vec<_>>()
    );
    let confirmed = app
        .confirm(hold["id"].as_str().unwrap(), As::User("carol"))
        .await;
    assert_eq!(confirmed.status(), 201);
    let confirmed: Value = confirmed.json().await.unwrap();
    assert_eq!(confirmed["total_cents"], 13_500, "{confirmed}");
    let payload = confirmation(&app, &hold["id"]).await;
    assert_eq!(payload["total_cents"], 13_500, "{payload}");
    assert_eq!(
        prices(&payload["tickets"]),
        prices(&hold["tickets"]),
        "{payload}"
    );
}

#[tokio::test]
async fn each_function_prices_and_maps_seats_under_its_own_database_role() {
    use crate::lambda::{call, organizer_claims};
    let app = spawn_app().await;
    let writer = app.lambda_state_as("seatbook_writer");
    let organizer_fn = seatbook_core::http::finish(organizer_fn::routes(), writer.clone());
    let organizer = || Some(organizer_claims());
    let (status, made) = call(
        &organizer_fn,
        "POST",
        "/api/v1/venues",
        organizer(),
        Some(&theatre("Roles")),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let body = event_body(&made["id"], 4500, theatre_prices());
    let (status, event) = call(
        &organizer_fn,
        "POST",
        "/api/v1/events",
        organizer(),
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_i64().unwrap();

    let reader = app.lambda_state_as("seatbook_reader");
    let events_fn = seatbook_core::http::finish(events_fn::routes(), reader);
    let path = format!("/api/v1/events/{event_id}/availability");
    let (status, map) = call(&events_fn, "GET", &path, None, None).await;
    assert_eq!(status, 200, "{map}");
    let seats = [
        seat_id(&map, "Stalls", "A", 1),
        seat_id(&map, "Circle", "A", 1),
    ];

    let booking_fn = seatbook_core::http::finish(booking_fn::routes(&writer), writer);
    let claim = json!({"event_id": event_id, "seat_ids": seats});
    let alice = Some(json!({"sub": "alice"}));
    let (status, booking) =
        call(&booking_fn, "POST", "/api/v1/bookings", alice, Some(&claim)).await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["total_cents"], 9000 + 4500);
}
