//! The per-user write rate limit (`RATE_LIMIT_PER_USER_PER_SECOND`, `RATE_LIMIT_BURST`): a token
//! bucket per user in the real Redis, checked over real HTTP.

use crate::helpers::{
    assert_one_winner, assert_problem, by_status, one_seat_requests, spawn_app, spawn_app_with,
    stampede, As, Spawn, TestApp,
};
use crate::lambda::{gateway_event, invoke};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A server whose writes are limited to `rate` a second per user, in bursts of `burst`.
async fn limited_app(rate: &str, burst: u32) -> TestApp {
    spawn_app_with(Spawn {
        env: limit_env(rate, burst),
        ..Spawn::default()
    })
    .await
}

fn limit_env(rate: &str, burst: u32) -> Vec<(&'static str, String)> {
    vec![
        ("RATE_LIMIT_PER_USER_PER_SECOND", rate.to_owned()),
        ("RATE_LIMIT_BURST", burst.to_string()),
    ]
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `(r, t)` of a `RateLimit: "writes";r=…;t=…` field.
fn remaining_and_reset(field: &str) -> (u64, u64) {
    let params: HashMap<&str, u64> = field
        .strip_prefix("\"writes\";")
        .unwrap_or_else(|| panic!("policy name first: {field}"))
        .split(';')
        .map(|param| {
            let (name, value) = param.split_once('=').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    (params["r"], params["t"])
}

/// Asserts a 429 as the limiter sends it and returns its `Retry-After` in seconds.
async fn assert_rate_limited(response: reqwest::Response, burst: u32, window: u64) -> u64 {
    let retry_after: u64 = header(&response, "retry-after")
        .expect("a 429 says when to retry")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(
        header(&response, "ratelimit-policy").as_deref(),
        Some(format!("\"writes\";q={burst};w={window}").as_str())
    );
    let (remaining, reset) = remaining_and_reset(&header(&response, "ratelimit").unwrap());
    assert_eq!(remaining, 0, "nothing left");
    assert!(
        (retry_after..=window).contains(&reset),
        "full again after the next write is allowed, within the window: t={reset}"
    );
    let problem = assert_problem(response, 429).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/rate-limited"),
        "{problem}"
    );
    retry_after
}

#[tokio::test]
async fn a_user_over_the_burst_gets_429_with_retry_after_and_ratelimit_fields_then_gets_through_after_waiting(
) {
    let app = limited_app("1", 3).await;
    let (event_id, seats) = app.seed_event(2, 10).await;

    // A fresh bucket holds the burst; each write takes one and says what is left.
    let first = app.book("eager", event_id, &[seats[0]]).await;
    assert_eq!(first.status(), 201);
    assert_eq!(
        header(&first, "ratelimit-policy").as_deref(),
        Some("\"writes\";q=3;w=3")
    );
    let (remaining, reset) = remaining_and_reset(&header(&first, "ratelimit").unwrap());
    assert_eq!((remaining, reset), (2, 1));

    // Keep writing until refused: three writes at once, and a slow machine may earn a fourth.
    let mut admitted = 1;
    let refused = loop {
        let response = app.book("eager", event_id, &[seats[admitted]]).await;
        if response.status() == 429 {
            break response;
        }
        assert_eq!(response.status(), 201);
        admitted += 1;
        assert!(admitted <= 5, "never refused after {admitted} writes");
    };
    assert!(admitted >= 3, "the whole burst was admitted: {admitted}");
    let refused_seat = seats[admitted];
    let retry_after = assert_rate_limited(refused, 3, 3).await;
    assert_eq!(
        retry_after, 1,
        "one write a second: the next is at most 1 s away"
    );
    assert_eq!(
        app.tickets_for_seat(event_id, refused_seat).await,
        0,
        "a refused write writes nothing"
    );

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = app.book("eager", event_id, &[refused_seat]).await;
    assert_eq!(
        again.status(),
        201,
        "after Retry-After the user gets through"
    );
    assert!(header(&again, "ratelimit").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_users_burst_never_throttles_another_user_writing_at_the_same_time() {
    let app = limited_app("1", 3).await;
    let (event_id, seats) = app.seed_event(5, 10).await;
    let scalper_writes = 30;
    let mut requests: Vec<(String, Value)> = (0..scalper_writes)
        .map(|i| {
            (
                "scalper".to_owned(),
                json!({"event_id": event_id, "seat_ids": [seats[i]]}),
            )
        })
        .collect();
    let fan_seats = &seats[scalper_writes..scalper_writes + 3];
    for seat in fan_seats {
        requests.push((
            "fan".to_owned(),
            json!({"event_id": event_id, "seat_ids": [seat]}),
        ));
    }

    let started = Instant::now();
    let results = stampede(&app, requests).await;
    let took = started.elapsed();

    let (scalper, fan) = results.split_at(scalper_writes);
    for (status, body) in fan {
        assert_eq!(*status, 201, "the fan is unaffected by the scalper: {body}");
    }
    let by_status = by_status(scalper);
    let admitted = by_status.get(&201).copied().unwrap_or(0);
    // The burst, plus one write for every second the stampede took.
    let earned = 3 + took.as_secs() as usize + 1;
    assert!(
        (3..=earned).contains(&admitted),
        "the scalper got the burst and no more: {by_status:?} in {took:?}"
    );
    assert_eq!(
        by_status.get(&429).copied().unwrap_or(0),
        scalper_writes - admitted,
        "every other scalper write is refused, none fails otherwise: {by_status:?}"
    );
    let sold: i64 = app
        .scalar(
            "SELECT count(*) FROM tickets WHERE event_id = $1",
            &[&event_id],
        )
        .await;
    assert_eq!(
        sold as usize,
        admitted + 3,
        "only admitted writes sold seats"
    );
}

#[tokio::test]
async fn every_kind_of_write_draws_on_the_same_allowance_and_is_refused_when_it_is_spent() {
    // One write every 5 s: nothing refills while the test runs.
    let app = limited_app("0.2", 4).await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let alice = As::User("alice");
    let left = |response: &reqwest::Response| {
        remaining_and_reset(&header(response, "ratelimit").expect("an admitted write says")).0
    };

    let hold = app
        .claim("/api/v1/holds", alice, event_id, &seats[0..1])
        .await;
    assert_eq!((hold.status().as_u16(), left(&hold)), (201, 3));
    let hold: Value = hold.json().await.unwrap();
    let confirm_path = format!("/api/v1/holds/{}/confirm", hold["id"].as_str().unwrap());
    let confirmed = app.post(&confirm_path, alice, &json!({})).await;
    assert_eq!((confirmed.status().as_u16(), left(&confirmed)), (201, 2));
    let booked = app.book("alice", event_id, &[seats[1]]).await;
    assert_eq!((booked.status().as_u16(), left(&booked)), (201, 1));
    let booking: Value = booked.json().await.unwrap();
    let booking_path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    let cancelled = app.delete(&booking_path, alice).await;
    assert_eq!((cancelled.status().as_u16(), left(&cancelled)), (200, 0));

    // Spent: every write route refuses, before it touches anything.
    assert_rate_limited(app.book("alice", event_id, &[seats[2]]).await, 4, 20).await;
    let hold_again = app
        .claim("/api/v1/holds", alice, event_id, &seats[3..4])
        .await;
    assert_rate_limited(hold_again, 4, 20).await;
    assert_rate_limited(app.post(&confirm_path, alice, &json!({})).await, 4, 20).await;
    assert_rate_limited(app.delete(&booking_path, alice).await, 4, 20).await;
    for seat in &seats[2..4] {
        assert_eq!(app.tickets_for_seat(event_id, *seat).await, 0);
    }
}

#[tokio::test]
async fn reads_are_never_limited_even_for_a_user_whose_writes_are() {
    let app = limited_app("0.2", 1).await;
    let (event_id, seats) = app.seed_event(1, 3).await;
    let booked = app.book("reader", event_id, &[seats[0]]).await;
    assert_eq!(booked.status(), 201);
    let booking: Value = booked.json().await.unwrap();
    assert_rate_limited(app.book("reader", event_id, &[seats[1]]).await, 1, 5).await;

    let one = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    let availability = format!("/api/v1/events/{event_id}/availability");
    for _ in 0..10 {
        for path in ["/api/v1/bookings", one.as_str(), availability.as_str()] {
            let response = app.get(path, As::User("reader")).await;
            assert_eq!(response.status(), 200, "{path}");
            assert!(header(&response, "ratelimit").is_none(), "{path}");
        }
    }
}

#[tokio::test]
async fn writes_without_an_identity_get_401_and_are_not_counted() {
    let app = limited_app("0.2", 1).await;
    let (event_id, seats) = app.seed_event(1, 3).await;
    for _ in 0..5 {
        let response = app
            .claim("/api/v1/bookings", As::Anonymous, event_id, &seats[..1])
            .await;
        assert_problem(response, 401).await;
    }
    assert_eq!(
        app.book("someone", event_id, &[seats[0]]).await.status(),
        201
    );
}

#[tokio::test]
async fn the_bucket_is_shared_by_every_server_so_another_lambda_environment_refuses_too() {
    let app = limited_app("0.2", 2).await;
    let (event_id, seats) = app.seed_event(1, 5).await;
    let other = app.sibling().await;
    app.book_each(event_id, &seats[..2], |_| "roamer".to_owned())
        .await;

    let elsewhere = app
        .client
        .post(other.url("/api/v1/bookings"))
        .header("x-dev-user", "roamer")
        .json(&json!({"event_id": event_id, "seat_ids": [seats[2]]}))
        .send()
        .await
        .unwrap();
    assert_rate_limited(elsewhere, 2, 10).await;
}

#[tokio::test]
async fn the_limit_follows_the_jwt_subject_through_the_lambda_entry_path() {
    let app = limited_app("0.2", 1).await;
    let (event_id, seats) = app.seed_event(1, 3).await;
    let state = app.lambda_state();
    let booking_fn = seatbook_core::http::finish(booking_fn::routes(&state), state);
    let book = |sub: &str, seat: i64| {
        gateway_event(
            "POST",
            "/api/v1/bookings",
            Some(json!({"sub": sub})),
            Some(&json!({"event_id": event_id, "seat_ids": [seat]})),
        )
    };

    let (status, _) = invoke(booking_fn.clone(), book("jwt-user", seats[0])).await;
    assert_eq!(status, 201);
    let (status, problem) = invoke(booking_fn.clone(), book("jwt-user", seats[1])).await;
    assert_eq!(status, 429, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("/rate-limited"));
    let (status, _) = invoke(booking_fn, book("another-jwt-user", seats[1])).await;
    assert_eq!(status, 201, "another subject has its own bucket");
}

#[tokio::test]
async fn with_redis_down_the_limiter_fails_open_and_bookings_go_through() {
    let mut env = limit_env("0.2", 1);
    // Nothing listens on port 1.
    env.push(("REDIS_URL", "redis://127.0.0.1:1".to_owned()));
    env.push(("REDIS_TIMEOUT_MS", "100".to_owned()));
    let app = spawn_app_with(Spawn {
        env,
        ..Spawn::default()
    })
    .await;
    let (event_id, seats) = app.seed_event(1, 5).await;

    for seat in &seats {
        let response = app.book("unchecked", event_id, &[*seat]).await;
        assert_eq!(response.status(), 201, "the limiter fails open");
        assert!(
            header(&response, "ratelimit").is_none(),
            "no quota is claimed that was not checked"
        );
    }
    assert_problem(app.book("unchecked", event_id, &[seats[0]]).await, 409).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_of_500_users_on_one_seat_still_has_exactly_one_winner_with_the_limiter_on() {
    // The template's values.
    let app = limited_app("2", 10).await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let seat = seats[7];
    let requests = one_seat_requests("fan", 500, event_id, seat);

    let results = stampede(&app, requests).await;

    // Nobody rate limited.
    assert_one_winner(&app, event_id, seat, &results).await;
}

#[tokio::test]
async fn with_the_settings_unset_nothing_is_limited() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 10).await;
    for seat in &seats {
        let response = app.book("unlimited", event_id, &[*seat]).await;
        assert_eq!(response.status(), 201);
        assert!(header(&response, "ratelimit").is_none());
        assert!(header(&response, "ratelimit-policy").is_none());
    }
}
