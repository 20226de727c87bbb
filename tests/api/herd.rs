//! Many real HTTP clients racing for the same seats at the same instant.

use crate::helpers::{
    assert_one_winner, assert_problem, by_status, ids_in, integers, one_seat_requests,
    redis_connection, spawn_app, spawn_app_with_env, stampede,
    wait_until_a_session_waits_for_a_lock, As, TestApp,
};
use crate::redis_server::RedisServer;
use rand::seq::IndexedRandom;
use rand::Rng;
use redis::AsyncCommands;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

async fn one_seat_herd(clients: usize) {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let seat = seats[7];
    let requests = one_seat_requests("fan", clients, event_id, seat);

    let results = stampede(&app, requests).await;

    assert_one_winner(&app, event_id, seat, &results).await;
    let winner = &results.iter().find(|(s, _)| *s == 201).unwrap().1;
    let owner: String = app
        .db
        .query_one(
            "SELECT b.user_id FROM tickets t JOIN bookings b ON b.id = t.booking_id
             WHERE t.event_id = $1 AND t.seat_id = $2",
            &[&event_id, &seat],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        winner["user_id"], owner,
        "the 201 went to the owner of the ticket"
    );
    let bookings = app.count("SELECT count(*) FROM bookings").await;
    assert_eq!(bookings, 1, "losers leave no booking behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_requests_for_one_seat_make_exactly_one_booking() {
    one_seat_herd(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_simultaneous_requests_for_one_seat_make_exactly_one_booking() {
    one_seat_herd(500).await;
}

/// The losers of a herd are refused from the taken-seat mark; requests asking while a read of it
/// is out share that read, and a process keeps a mark it has read for as long as the near copy of
/// a read: Redis is asked a few times (2–3 here), not once per loser.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_for_a_taken_seat_asks_redis_for_its_mark_a_few_times_not_once_per_loser() {
    let redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url())]).await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    assert_eq!(app.book("first", event_id, &[seats[3]]).await.status(), 201);
    let mark_reads = || {
        let info = redis.command(&["INFO", "commandstats"]).unwrap();
        let info: String = redis::FromRedisValue::from_redis_value(info).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_hmget:calls="))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse::<u64>().unwrap()
            })
    };
    let before = mark_reads();

    let clients = 300;
    let results = stampede(&app, one_seat_requests("fan", clients, event_id, seats[3])).await;

    assert_eq!(by_status(&results).get(&409), Some(&clients), "{results:?}");
    let reads = mark_reads() - before;
    assert!(
        reads <= clients as u64 / 10,
        "{reads} reads of the marks for {clients} losers"
    );
    assert_eq!(app.count("SELECT count(*) FROM bookings").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_multi_seat_bookings_never_share_a_seat_and_are_always_whole() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(3, 5).await;
    // A small pool of seats so that most requests overlap.
    let pool = &seats[..12];
    let mut rng = rand::rng();
    let requests: Vec<(String, Value)> = (0..200)
        .map(|i| {
            let n = rng.random_range(1..=4);
            let picked: Vec<i64> = pool.choose_multiple(&mut rng, n).copied().collect();
            (
                format!("client-{i}"),
                json!({"event_id": event_id, "seat_ids": picked}),
            )
        })
        .collect();

    let results = stampede(&app, requests.clone()).await;

    let mut sold: HashMap<i64, String> = HashMap::new();
    let mut losers = Vec::new();
    for ((_, request), (status, body)) in requests.iter().zip(&results) {
        let asked: HashSet<i64> = integers(&request["seat_ids"]).into_iter().collect();
        match status {
            201 => {
                let got: HashSet<i64> = ids_in(&body["tickets"], "seat_id").into_iter().collect();
                assert_eq!(got, asked, "a booking is whole");
                for seat in got {
                    let id = body["id"].as_str().unwrap().to_owned();
                    assert!(sold.insert(seat, id).is_none(), "seat {seat} sold twice");
                }
            }
            409 => losers.push((asked, body.clone())),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(!sold.is_empty(), "somebody won");

    // The database agrees with what the clients were told, ticket for ticket.
    let rows = app
        .db
        .query(
            "SELECT seat_id, booking_id::text FROM tickets WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .unwrap();
    let stored: HashMap<i64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(stored, sold, "tickets in PostgreSQL are exactly the 201s");

    for (asked, problem) in losers {
        let named = integers(&problem["seat_ids"]);
        assert!(!named.is_empty(), "a 409 names the seats: {problem}");
        for seat in named {
            assert!(asked.contains(&seat), "a 409 names only requested seats");
            assert!(
                sold.contains_key(&seat),
                "seat {seat} named in a 409 is really taken"
            );
        }
    }
}

/// Holds every table lock on `tickets` in its own session until dropped: a booking that needs
/// the table waits, one that never reaches PostgreSQL does not.
async fn lock_tickets(app: &TestApp) -> tokio_postgres::Client {
    let locker = app.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    locker
}

#[tokio::test]
async fn a_seat_known_to_be_taken_is_refused_without_asking_postgresql() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    app.booked("winner", event_id, &[seats[0]]).await;
    app.held("holder", event_id, &[seats[1]]).await;

    // PostgreSQL cannot answer anything about tickets now; the committed claims' marks in Redis
    // still refuse their seats, at once and naming them.
    let locker = lock_tickets(&app).await;
    for seat in [seats[0], seats[1]] {
        let started = std::time::Instant::now();
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app.book("late-fan", event_id, &[seat, seats[2]]),
        )
        .await
        .expect("refused without waiting for the locked table");
        let problem = assert_problem(response, 409).await;
        assert_eq!(problem["seat_ids"], json!([seat]), "{problem}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
    // A free seat still goes to PostgreSQL, which decides (and waits for the lock).
    let free = tokio::spawn({
        let request = app
            .client
            .post(app.url("/api/v1/bookings"))
            .header("x-dev-user", "patient")
            .json(&json!({"event_id": event_id, "seat_ids": [seats[2]]}));
        async move { request.send().await.unwrap().status() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !free.is_finished(),
        "a free seat's booking waits for PostgreSQL"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(free.await.unwrap(), 201);
}

#[tokio::test]
async fn a_cancelled_seat_is_bookable_at_once_and_a_conflict_marks_its_seat_taken() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let booking = app.booked("first", event_id, &[seats[3]]).await;
    let cancel = app
        .cancel(booking["id"].as_str().unwrap(), As::User("first"))
        .await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(
        app.book("second", event_id, &[seats[3]]).await.status(),
        201,
        "the cancellation took the seat's mark off"
    );

    // A claim committed behind the service's back (no mark): PostgreSQL refuses the next
    // request, and that conflict marks the seat, so the one after is refused from Redis.
    app.db
        .batch_execute(&format!(
            "INSERT INTO users (id) VALUES ('elsewhere');
             WITH b AS (INSERT INTO bookings (user_id, event_id, status, total_cents)
                        VALUES ('elsewhere', {event_id}, 'confirmed', 0) RETURNING id)
             INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
             SELECT id, {event_id}, {}, 0 FROM b",
            seats[4]
        ))
        .await
        .unwrap();
    let first = app.book("fan-1", event_id, &[seats[4]]).await;
    assert_problem(first, 409).await;
    let locker = lock_tickets(&app).await;
    let second = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.book("fan-2", event_id, &[seats[4]]),
    )
    .await
    .expect("refused from the conflict's mark");
    let problem = assert_problem(second, 409).await;
    assert_eq!(problem["seat_ids"], json!([seats[4]]));
    locker.batch_execute("ROLLBACK").await.unwrap();
}

/// A loser's mark is written after its 409, so it could land after the holder cancelled and its
/// cancellation took the seat's marks off, then refuse the freed seat for its 5 s. It is written
/// only while no seat of the event has been freed since the loser read the marks.
#[tokio::test]
async fn a_conflict_after_a_seat_of_its_event_was_freed_leaves_no_mark() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let other = app.booked("canceller", event_id, &[seats[1]]).await;
    let seat = seats[4];
    // A claim on `seat` behind the service's back, not yet committed: the loser's insert, made
    // after its read of the marks, waits for it.
    let holder = app.connect().await;
    holder
        .batch_execute(&format!(
            "BEGIN;
             INSERT INTO users (id) VALUES ('elsewhere');
             WITH b AS (INSERT INTO bookings (user_id, event_id, status, total_cents)
                        VALUES ('elsewhere', {event_id}, 'confirmed', 0) RETURNING id)
             INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
             SELECT id, {event_id}, {seat}, 0 FROM b"
        ))
        .await
        .unwrap();
    let loser = tokio::spawn({
        let request = app
            .client
            .post(app.url("/api/v1/bookings"))
            .header("x-dev-user", "fan-1")
            .json(&json!({"event_id": event_id, "seat_ids": [seat]}));
        async move { request.send().await.unwrap().status() }
    });
    wait_until_a_session_waits_for_a_lock(
        &app,
        "the booking never waited for the uncommitted claim",
    )
    .await;

    // Meanwhile a seat of the event is freed, then the loser's conflict comes.
    let cancel = app
        .cancel(other["id"].as_str().unwrap(), As::User("canceller"))
        .await;
    assert_eq!(cancel.status(), 200);
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(loser.await.unwrap(), 409);

    let mut redis = redis_connection().await;
    // The marks' key beside the freed count the cancellation moved (whatever the key's version).
    let freed: Vec<String> = redis
        .keys(format!("{}:*{{e{event_id}}}:seatmap-freed", app.db_name))
        .await
        .unwrap();
    assert_eq!(
        freed.len(),
        1,
        "the cancellation counted a freed seat: {freed:?}"
    );
    let taken = freed[0].replace(":seatmap-freed", ":taken");
    let mark: Option<String> = redis.hget(&taken, seat).await.unwrap();
    assert_eq!(mark, None, "no mark written over the cancellation");

    // Without a seat freed meanwhile, the next conflict marks it (as before); asked once the
    // process's own memory of the conflict (100 ms) is over, so it goes to PostgreSQL.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let again = app.book("fan-2", event_id, &[seat]).await;
    assert_problem(again, 409).await;
    let mark: Option<String> = redis.hget(&taken, seat).await.unwrap();
    assert!(
        mark.is_some(),
        "a conflict with nothing freed marks the seat"
    );
}
