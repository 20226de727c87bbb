//! The waitlist of a sold-out event (issue 24): the line in the order of joining, the freed seats
//! themselves offered as holds (on a cancellation in its own transaction, on a lapsed hold by the
//! sweep or by whoever collides with it), confirmed through the hold, lapsing to the next in
//! line, within the cap and the sale.

use crate::helpers::{
    assert_problem, ids_in, integers, seat_status, spawn_app, spawn_app_with_env, As, TestApp,
    ORGANIZER,
};
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An event on sale on a venue of one row of `seats` seats, made with `extra` fields; its id and
/// its seat ids by number.
async fn event_with(app: &TestApp, seats: i64, extra: Value) -> (i64, Vec<i64>) {
    let (event, seats) = app.event_with(1, seats, extra).await;
    (event["id"].as_i64().unwrap(), seats)
}

/// An event of one row of `seats` seats, every seat booked on its own by `fan-{i}`; its id, its
/// seat ids by number, and the booking id of each seat.
async fn sold_out(app: &TestApp, seats: i64) -> (i64, Vec<i64>, Vec<String>) {
    let (event_id, seat_ids) = event_with(app, seats, json!({})).await;
    let mut bookings = Vec::new();
    for (i, seat) in seat_ids.iter().enumerate() {
        let booking = app.booked(&format!("fan-{i}"), event_id, &[*seat]).await;
        bookings.push(booking["id"].as_str().unwrap().to_owned());
    }
    (event_id, seat_ids, bookings)
}

fn waitlist(event_id: i64) -> String {
    format!("/api/v1/events/{event_id}/waitlist")
}

fn mine(event_id: i64) -> String {
    format!("/api/v1/events/{event_id}/waitlist/me")
}

/// `user` joins for `count` seats (and `category`); the response.
async fn join_with(
    app: &TestApp,
    user: &str,
    event_id: i64,
    count: i64,
    category: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({ "count": count });
    if let Some(category) = category {
        body["category"] = json!(category);
    }
    app.post(&waitlist(event_id), As::User(user), &body).await
}

/// `user` joins for `count` seats, asserted a new entry; the entry.
async fn joined(app: &TestApp, user: &str, event_id: i64, count: i64) -> Value {
    let response = join_with(app, user, event_id, count, None).await;
    assert_eq!(response.status(), 201, "{user} joins");
    response.json().await.unwrap()
}

/// `user`'s entry as GET .../waitlist/me shows it (asserted 200).
async fn entry(app: &TestApp, user: &str, event_id: i64) -> Value {
    let response = app.get(&mine(event_id), As::User(user)).await;
    assert_eq!(response.status(), 200, "{user}'s entry");
    response.json().await.unwrap()
}

/// Cancels booking `id` as its owner `user`, asserted done; keeps the version it answers with.
async fn cancelled(app: &TestApp, user: &str, id: &str) {
    let response = app.cancel(id, As::User(user)).await;
    assert_eq!(response.status(), 200, "{user} cancels {id}");
    app.saw(&response);
}

/// The offered seats of an entry.
fn offered(entry: &Value) -> Vec<i64> {
    assert_eq!(entry["state"], "offered", "{entry}");
    integers(&entry["offer"]["seats"])
}

/// Moves the deadline of `user`'s offer for `event_id` to now, in the test's own database: an
/// offer lasts 10 s at least, and a test does not wait for it.
async fn lapse_offer(app: &TestApp, user: &str, event_id: i64) {
    let moved = app
        .db
        .execute(
            "UPDATE bookings SET expires_at = now() - interval '1 millisecond'
             WHERE id = (SELECT hold_id FROM waitlist_entries
                         WHERE event_id = $1 AND user_id = $2 AND state = 'offered')",
            &[&event_id, &user],
        )
        .await
        .unwrap();
    assert_eq!(moved, 1, "{user}'s offer");
}

#[tokio::test]
async fn joining_a_sold_out_events_waitlist_gives_a_place_and_joining_again_the_same_entry() {
    let app = spawn_app().await;
    let (event_id, _, _) = sold_out(&app, 3).await;

    let response = join_with(&app, "alice", event_id, 2, None).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], mine(event_id).as_str());
    let alice: Value = response.json().await.unwrap();
    assert_eq!(alice["state"], "waiting");
    assert_eq!(alice["position"], 1);
    assert_eq!(alice["count"], 2);
    assert!(alice["offer"].is_null(), "{alice}");
    let bob = joined(&app, "bob", event_id, 1).await;
    assert_eq!(bob["position"], 2);

    let again = join_with(&app, "alice", event_id, 1, None).await;
    assert_eq!(again.status(), 200, "the same entry");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["entry_id"], alice["entry_id"]);
    assert_eq!(again["count"], 2, "unchanged");
    assert_eq!(entry(&app, "alice", event_id).await, again);
    assert_eq!(
        app.count("SELECT count(*) FROM waitlist_entries").await,
        2,
        "one entry each"
    );

    // Nobody's entry but one's own: carol is in no line of this event; there is no event 0.
    assert_eq!(
        app.get(&mine(event_id), As::User("carol")).await.status(),
        204
    );
    assert_problem(app.get(&mine(0), As::User("carol")).await, 404).await;
    assert_problem(app.get(&mine(event_id), As::Anonymous).await, 401).await;
}

#[tokio::test]
async fn a_waitlist_request_out_of_bounds_or_for_no_such_event_or_category_is_refused() {
    let app = spawn_app().await;
    let (event_id, _, _) = sold_out(&app, 2).await;
    for count in [0, 11, -1] {
        assert_problem(join_with(&app, "alice", event_id, count, None).await, 422).await;
    }
    assert_problem(
        join_with(&app, "alice", event_id, 1, Some("Balcony")).await,
        422,
    )
    .await;
    assert_problem(join_with(&app, "alice", event_id, 1, Some("  ")).await, 422).await;
    assert_problem(
        join_with(&app, "alice", event_id + 1000, 1, None).await,
        404,
    )
    .await;
    let anonymous = app
        .post(&waitlist(event_id), As::Anonymous, &json!({"count": 1}))
        .await;
    assert_problem(anonymous, 401).await;
    // "Standard" names the seats no category covers: every seat of this event.
    let standard = join_with(&app, "alice", event_id, 1, Some("standard")).await;
    assert_eq!(standard.status(), 201);
    assert_eq!(
        standard.json::<Value>().await.unwrap()["category"],
        "Standard"
    );
    assert_eq!(app.count("SELECT count(*) FROM waitlist_entries").await, 1);
}

#[tokio::test]
async fn joining_while_enough_matching_seats_are_free_is_refused_with_how_many_are() {
    let app = spawn_app().await;
    let (event_id, seats) = event_with(&app, 4, json!({})).await;
    app.book_each(event_id, &seats[..2], |i| format!("fan-{i}"))
        .await;

    let problem = assert_problem(join_with(&app, "alice", event_id, 2, None).await, 409).await;
    assert_eq!(
        problem["type"],
        "https://seatbook.dev/problems/seats-available"
    );
    assert_eq!(problem["available"], 2);
    // Three are more than are free: that is what the line is for.
    let alice = joined(&app, "alice", event_id, 3).await;
    assert_eq!(alice["state"], "waiting");
}

#[tokio::test]
async fn a_cancellation_offers_its_seat_to_the_first_entry_it_satisfies_at_once_as_a_hold() {
    let app = spawn_app().await;
    let (event_id, seats) = event_with(&app, 3, json!({"waitlist_offer_seconds": 120})).await;
    let mut bookings = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        let booking = app.booked(&format!("fan-{i}"), event_id, &[*seat]).await;
        bookings.push(booking["id"].as_str().unwrap().to_owned());
    }
    joined(&app, "alice", event_id, 2).await;
    joined(&app, "bob", event_id, 1).await;

    cancelled(&app, "fan-1", &bookings[1]).await;

    // One seat cannot satisfy alice's two: bob, behind her, gets it; she keeps her place.
    let alice = entry(&app, "alice", event_id).await;
    assert_eq!(
        (alice["state"].as_str(), alice["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
    let bob = entry(&app, "bob", event_id).await;
    assert_eq!(offered(&bob), vec![seats[1]]);
    assert!(bob["position"].is_null(), "{bob}");
    let expires: DateTime<Utc> = bob["offer"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let lasts = expires - Utc::now();
    assert!(
        lasts > Span::seconds(110) && lasts <= Span::seconds(120),
        "the event's waitlist_offer_seconds: {lasts}"
    );

    // The offer is bob's hold: nobody else gets the seat, and the public sees it held.
    let hold = app
        .get(
            &format!(
                "/api/v1/bookings/{}",
                bob["offer"]["hold_id"].as_str().unwrap()
            ),
            As::User("bob"),
        )
        .await;
    assert_eq!(hold.status(), 200);
    let hold: Value = hold.json().await.unwrap();
    assert_eq!(hold["status"], "held");
    assert_eq!(ids_in(&hold["tickets"], "seat_id"), vec![seats[1]]);
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[1]),
        "held"
    );
    let problem = assert_problem(app.book("carol", event_id, &[seats[1]]).await, 409).await;
    assert_eq!(problem["seat_ids"], json!([seats[1]]));

    // And the offer is announced, signed like every webhook, from the outbox.
    let payload: Value = app
        .scalar(
            "SELECT payload FROM outbox WHERE kind = 'waitlist.offered'",
            &[],
        )
        .await;
    assert_eq!(payload["type"], "waitlist.offered");
    assert_eq!(payload["user_id"], "bob");
    assert_eq!(payload["entry_id"], bob["entry_id"]);
    assert_eq!(payload["hold_id"], bob["offer"]["hold_id"]);
    assert_eq!(payload["seat_ids"], json!([seats[1]]));
}

#[tokio::test]
async fn seats_freed_together_are_offered_side_by_side_by_the_best_available_rules() {
    let app = spawn_app().await;
    let (event_id, seats) = event_with(&app, 8, json!({})).await;
    app.book_each(event_id, &seats[..2], |i| format!("fan-{i}"))
        .await;
    let group = app.booked("group", event_id, &seats[2..6]).await;
    app.book_each(event_id, &seats[6..], |i| format!("fan-{}", i + 6))
        .await;
    for (user, count) in [("alice", 2), ("bob", 2), ("carol", 1)] {
        joined(&app, user, event_id, count).await;
    }

    cancelled(&app, "group", group["id"].as_str().unwrap()).await;

    // Seats 3-6 free: 3-4 and 5-6 strand nobody and are as near the row's centre; the lower
    // first. Then the other pair, and nothing is left for carol.
    assert_eq!(
        offered(&entry(&app, "alice", event_id).await),
        seats[2..4].to_vec()
    );
    assert_eq!(
        offered(&entry(&app, "bob", event_id).await),
        seats[4..6].to_vec()
    );
    assert_eq!(entry(&app, "carol", event_id).await["state"], "waiting");
}

#[tokio::test]
async fn never_more_seats_are_offered_than_were_freed_and_the_line_goes_in_order_of_joining() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 5).await;
    let line = ["dan", "erin", "frank", "grace"];
    for user in line {
        joined(&app, user, event_id, 1).await;
    }
    for (place, user) in line.iter().enumerate() {
        assert_eq!(
            entry(&app, user, event_id).await["position"],
            place as i64 + 1
        );
    }

    cancelled(&app, "fan-3", &bookings[3]).await;
    assert_eq!(offered(&entry(&app, "dan", event_id).await), vec![seats[3]]);
    assert_eq!(entry(&app, "erin", event_id).await["position"], 1, "next");
    cancelled(&app, "fan-0", &bookings[0]).await;
    assert_eq!(
        offered(&entry(&app, "erin", event_id).await),
        vec![seats[0]]
    );

    // Two freed, two offered: frank and grace wait, the first of them next.
    assert_eq!(entry(&app, "frank", event_id).await["position"], 1);
    assert_eq!(entry(&app, "grace", event_id).await["position"], 2);
    assert_eq!(
        app.count("SELECT count(*) FROM waitlist_entries WHERE state = 'offered'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM outbox WHERE kind = 'waitlist.offered'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_cancellations_offer_each_freed_seat_once_to_the_front_of_the_line() {
    let app = spawn_app().await;
    let (event_id, _, bookings) = sold_out(&app, 10).await;
    let line: Vec<String> = (0..14).map(|i| format!("waiting-{i:02}")).collect();
    for user in &line {
        joined(&app, user, event_id, 1).await;
    }

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bookings.len()));
    let cancels: Vec<_> = bookings
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let request = app.request(
                reqwest::Method::DELETE,
                &format!("/api/v1/bookings/{id}"),
                As::User(&format!("fan-{i}")),
            );
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status()
            })
        })
        .collect();
    for cancel in cancels {
        assert_eq!(cancel.await.unwrap(), 200);
    }

    // Ten seats back, ten offers: to the first ten in line, a different seat each.
    let mut seats_offered = Vec::new();
    for (place, user) in line.iter().enumerate() {
        let entry = entry(&app, user, event_id).await;
        if place < 10 {
            seats_offered.extend(offered(&entry));
        } else {
            assert_eq!(entry["position"], place as i64 - 9, "{user}");
        }
    }
    seats_offered.sort_unstable();
    seats_offered.dedup();
    assert_eq!(seats_offered.len(), 10, "no seat in two offers");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM tickets t JOIN waitlist_entries w ON w.hold_id = t.booking_id"
        )
        .await,
        10
    );
}

#[tokio::test]
async fn confirming_an_offers_hold_books_the_seats_and_fulfils_the_entry() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 2).await;
    joined(&app, "alice", event_id, 1).await;
    cancelled(&app, "fan-0", &bookings[0]).await;
    let offer = entry(&app, "alice", event_id).await["offer"].clone();

    let booking = app
        .confirm(offer["hold_id"].as_str().unwrap(), As::User("alice"))
        .await;
    assert_eq!(booking.status(), 201);
    let booking: Value = booking.json().await.unwrap();
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(ids_in(&booking["tickets"], "seat_id"), vec![seats[0]]);
    let alice = entry(&app, "alice", event_id).await;
    assert_eq!(alice["state"], "fulfilled");
    assert_eq!(alice["offer"]["hold_id"], offer["hold_id"]);
    assert_eq!(
        app.count("SELECT count(*) FROM waitlist_entries WHERE state = 'fulfilled'")
            .await,
        1,
        "stored so"
    );
    // Fulfilled, the entry is no longer in line: joining again is a new entry, at the back.
    assert_eq!(
        join_with(&app, "alice", event_id, 1, None).await.status(),
        201
    );
}

#[tokio::test]
async fn an_offer_that_lapses_expires_and_its_seats_go_to_the_next_in_line_before_the_public() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 3).await;
    joined(&app, "alice", event_id, 1).await;
    joined(&app, "bob", event_id, 1).await;
    cancelled(&app, "fan-2", &bookings[2]).await;
    let first = entry(&app, "alice", event_id).await;
    assert_eq!(offered(&first), vec![seats[2]]);

    lapse_offer(&app, "alice", event_id).await;
    assert_eq!(
        entry(&app, "alice", event_id).await["state"],
        "expired",
        "at once"
    );
    // Someone asking for the seat finds the lapsed offer in the way: releasing it offers the seat
    // to bob first, and the asker is told the seat is taken.
    let problem = assert_problem(app.book("carol", event_id, &[seats[2]]).await, 409).await;
    assert_eq!(problem["seat_ids"], json!([seats[2]]));
    assert_eq!(offered(&entry(&app, "bob", event_id).await), vec![seats[2]]);
    let alice = entry(&app, "alice", event_id).await;
    assert_eq!(alice["state"], "expired");
    let gone = app
        .confirm(
            first["offer"]["hold_id"].as_str().unwrap(),
            As::User("alice"),
        )
        .await;
    assert_problem(gone, 410).await;

    // With nobody left in line, a lapsed offer's seat goes back on sale. (Best available: a
    // request naming the seat would be refused from the taken-seat mark of the 409 above for a
    // few seconds, decision 18.)
    lapse_offer(&app, "bob", event_id).await;
    let best = json!({"event_id": event_id, "best_available": {"count": 1}});
    let carols = app.post("/api/v1/bookings", As::User("carol"), &best).await;
    assert_eq!(carols.status(), 201);
    let carols: Value = carols.json().await.unwrap();
    assert_eq!(ids_in(&carols["tickets"], "seat_id"), vec![seats[2]]);
    assert_eq!(entry(&app, "bob", event_id).await["state"], "expired");
}

#[tokio::test]
async fn the_sweep_offers_a_lapsed_offers_seats_to_the_next_in_line() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 2).await;
    joined(&app, "alice", event_id, 1).await;
    joined(&app, "bob", event_id, 1).await;
    cancelled(&app, "fan-1", &bookings[1]).await;
    lapse_offer(&app, "alice", event_id).await;

    let notifier = app.lambda_state_as("seatbook_notifier");
    let swept = notifier_fn::sweep_waitlists(&notifier.db).await.unwrap();
    assert_eq!(
        (swept.events, swept.released, swept.offers),
        (1, 1, 1),
        "{swept:?}"
    );
    assert_eq!(offered(&entry(&app, "bob", event_id).await), vec![seats[1]]);
    assert_eq!(
        app.count("SELECT count(*) FROM waitlist_entries WHERE state = 'expired'")
            .await,
        1,
        "alice's, stored so"
    );
    // Nothing lapsed since: the next sweep has nothing to do.
    let again = notifier_fn::sweep_waitlists(&notifier.db).await.unwrap();
    assert_eq!(again, notifier_fn::Swept::default());
}

#[tokio::test]
async fn a_hold_that_lapses_is_offered_to_the_line_within_five_seconds_by_local_apis_loop() {
    let app = spawn_app_with_env(&[("HOLD_TTL_SECONDS", "2")]).await;
    let (event_id, seats) = event_with(&app, 2, json!({})).await;
    app.booked("fan-0", event_id, &seats[..1]).await;
    app.held("dawdler", event_id, &seats[1..]).await;
    joined(&app, "alice", event_id, 1).await;
    let db = app.lambda_state().db.clone();
    let sweeper =
        tokio::spawn(async move { notifier_fn::sweep_every(&db, notifier_fn::LOCAL_PERIOD).await });

    // Nobody asks for the held seat: the loop alone offers it once the hold lapses.
    let lapses = Instant::now() + Duration::from_secs(2);
    let alice = loop {
        let alice = entry(&app, "alice", event_id).await;
        if alice["state"] == "offered" {
            break alice;
        }
        assert!(
            Instant::now() < lapses + notifier_fn::LOCAL_PERIOD + Duration::from_secs(1),
            "not offered within the loop's period of the lapse: {alice}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    sweeper.abort();
    assert_eq!(offered(&alice), vec![seats[1]]);
    assert_eq!(
        app.scalar::<String>(
            "SELECT status::text FROM bookings WHERE user_id = 'dawdler'",
            &[]
        )
        .await,
        "expired"
    );
}

#[tokio::test]
async fn an_offer_never_takes_a_person_over_the_events_seat_cap() {
    let app = spawn_app().await;
    let (event_id, seats) = event_with(&app, 4, json!({"max_seats_per_user": 2})).await;
    app.booked("alice", event_id, &seats[..2]).await;
    let fans = app.booked("fan", event_id, &seats[2..3]).await;
    app.booked("fan-2", event_id, &seats[3..]).await;
    joined(&app, "alice", event_id, 1).await;
    joined(&app, "bob", event_id, 1).await;

    cancelled(&app, "fan", fans["id"].as_str().unwrap()).await;

    // Alice has her two: the seat goes to bob, and she keeps her place.
    assert_eq!(offered(&entry(&app, "bob", event_id).await), vec![seats[2]]);
    let alice = entry(&app, "alice", event_id).await;
    assert_eq!(
        (alice["state"].as_str(), alice["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
}

#[tokio::test]
async fn after_the_sale_closes_nobody_joins_and_nothing_is_offered() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 2).await;
    joined(&app, "alice", event_id, 1).await;
    app.db
        .execute(
            "UPDATE events SET sales_end_at = now() WHERE id = $1",
            &[&event_id],
        )
        .await
        .unwrap();

    let problem = assert_problem(join_with(&app, "bob", event_id, 1, None).await, 409).await;
    assert_eq!(
        problem["type"],
        "https://seatbook.dev/problems/sales-closed"
    );
    let cancel = app.cancel(&bookings[0], ORGANIZER).await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(entry(&app, "alice", event_id).await["state"], "waiting");
    assert_eq!(
        app.tickets_for_seat(event_id, seats[0]).await,
        0,
        "no offer"
    );
}

#[tokio::test]
async fn leaving_the_line_gives_up_the_place_and_an_unconfirmed_offer_to_the_next() {
    let app = spawn_app().await;
    let (event_id, seats, bookings) = sold_out(&app, 2).await;
    for user in ["alice", "bob", "carol"] {
        joined(&app, user, event_id, 1).await;
    }

    let left = app.delete(&mine(event_id), As::User("alice")).await;
    assert_eq!(left.status(), 204);
    assert_eq!(entry(&app, "alice", event_id).await["state"], "left");
    assert_eq!(entry(&app, "bob", event_id).await["position"], 1);
    // Leaving again changes nothing; a line of no event is not there to leave.
    assert_eq!(
        app.delete(&mine(event_id), As::User("alice"))
            .await
            .status(),
        204
    );
    assert_eq!(entry(&app, "alice", event_id).await["state"], "left");
    assert_problem(app.delete(&mine(0), As::User("alice")).await, 404).await;

    cancelled(&app, "fan-0", &bookings[0]).await;
    assert_eq!(offered(&entry(&app, "bob", event_id).await), vec![seats[0]]);
    // Bob leaves with his offer: its seat goes to carol.
    assert_eq!(
        app.delete(&mine(event_id), As::User("bob")).await.status(),
        204
    );
    assert_eq!(entry(&app, "bob", event_id).await["state"], "left");
    assert_eq!(
        offered(&entry(&app, "carol", event_id).await),
        vec![seats[0]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirming_an_offer_while_leaving_the_line_ends_one_way_or_the_other_never_in_an_error() {
    let app = spawn_app().await;
    let rounds = 8;
    let (event_id, _, bookings) = sold_out(&app, rounds).await;
    let line: Vec<String> = (0..rounds).map(|i| format!("racer-{i}")).collect();
    for user in &line {
        joined(&app, user, event_id, 1).await;
    }
    let mut fans = bookings.iter().enumerate();
    for (round, user) in line.iter().enumerate() {
        // A seat for this racer: the one the last racer left, or a fan's cancelled now.
        if entry(&app, user, event_id).await["state"] != "offered" {
            let (fan, booking) = fans.next().unwrap();
            cancelled(&app, &format!("fan-{fan}"), booking).await;
        }
        let hold = entry(&app, user, event_id).await["offer"]["hold_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let confirm = app
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/holds/{hold}/confirm"),
                As::User(user),
            )
            .json(&json!({}))
            .send();
        let leave = app
            .request(reqwest::Method::DELETE, &mine(event_id), As::User(user))
            .send();
        let (confirmed, left) = tokio::join!(confirm, leave);
        let (confirmed, left) = (confirmed.unwrap().status(), left.unwrap().status());
        assert_eq!(left, 204, "round {round}");
        let state = entry(&app, user, event_id).await["state"].clone();
        match confirmed.as_u16() {
            201 => assert_eq!(state, "fulfilled", "round {round}: confirmed first"),
            410 => assert_eq!(state, "left", "round {round}: left first"),
            other => panic!("round {round}: confirming answered {other}"),
        }
    }
}
