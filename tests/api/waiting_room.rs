//! The waiting room of an on-sale (issue 23), over real HTTP, Redis and PostgreSQL: the queue,
//! the fair start, admission in order at the room's rate and within the free seats, the admission
//! token and every refusal of a claim without a valid one, expiry, and Redis going away.

use crate::helpers::{assert_problem, spawn_app, spawn_app_with_env, As, TestApp, ORGANIZER};
use crate::redis_server::RedisServer;
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use seatbook_core::admission::{Admission, KeySet, KeySource};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ed25519 keys (PKCS#8, base64 DER) for these tests only.
const KEY_A: &str = "MC4CAQAwBQYDK2VwBCIEIF3pdD/quUzRHXR9dvDizFpdojz/sTUiOt43K48M1F05";
const KEY_B: &str = "MC4CAQAwBQYDK2VwBCIEIBW24hJOUlyUtw23w1vT0F/mz7vxQHaDSbdVMaADgba/";
const KEY_C: &str = "MC4CAQAwBQYDK2VwBCIEIFIHmQdyWWsRRgljxb5W1gMzICYSamdihtlsoszeYp9x";

/// `ADMISSION_KEYS`: `signing` signs, each of `keys` (kid, key) verifies.
fn key_set(signing: &str, keys: &[(&str, &str)]) -> String {
    let keys: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(kid, key)| (kid.to_string(), json!(key)))
        .collect();
    json!({"signing": signing, "keys": keys}).to_string()
}

/// A token of the test's own for `user` and `event`, valid from `issued_at` to `expires_at` (s),
/// signed by `key` under the kid `kid`, as an attacker or an older deployment would sign it.
async fn token_of(
    kid: &str,
    key: &str,
    user: &str,
    event: i64,
    issued_at: u64,
    expires_at: u64,
) -> String {
    let set = KeySet::parse(&key_set(kid, &[(kid, key)])).unwrap();
    let signer = Admission::new(KeySource::Given(Arc::new(set)), None);
    signer
        .sign(user, event, issued_at, expires_at)
        .await
        .unwrap()
}

/// An app whose admission keys the test knows (`a`, KEY_A), with more settings.
async fn spawn_room_app(env: &[(&'static str, &str)]) -> TestApp {
    let keys = key_set("a", &[("a", KEY_A)]);
    let mut all = vec![("ADMISSION_KEYS", keys.as_str())];
    all.extend_from_slice(env);
    spawn_app_with_env(&all).await
}

/// A venue of `rows`×`cols` and an event in it with the waiting room `room` (and any other
/// members of `extra`); the event's id and its seats.
async fn event_with_room(
    app: &TestApp,
    rows: i64,
    cols: i64,
    room: Value,
    extra: Value,
) -> (i64, Vec<i64>) {
    let mut body = json!({
        "name": "On-sale",
        "starts_at": "2031-06-01T19:30:00Z",
        "price_cents": 2500,
        "waiting_room": room,
    });
    for (member, value) in extra.as_object().unwrap() {
        body[member] = value.clone();
    }
    let (event, seats) = app.event_with(rows, cols, body).await;
    (event["id"].as_i64().unwrap(), seats)
}

fn queue(event: i64) -> String {
    format!("/api/v1/events/{event}/queue")
}

fn me(event: i64) -> String {
    format!("/api/v1/events/{event}/queue/me")
}

/// `user` joins the queue of `event`; the entry.
async fn join(app: &TestApp, user: &str, event: i64) -> Value {
    let response = app.post(&queue(event), As::User(user), &json!({})).await;
    assert_eq!(response.status(), 200, "{user} joins");
    assert!(response.headers().contains_key("retry-after"));
    response.json().await.unwrap()
}

/// `user`'s entry in the queue of `event`.
async fn entry(app: &TestApp, user: &str, event: i64) -> Value {
    let response = app.get(&me(event), As::User(user)).await;
    assert_eq!(response.status(), 200, "{user}'s entry");
    response.json().await.unwrap()
}

/// Polls `user`'s entry until it reads `state`, for `within` at most; the entry.
async fn until_state(
    app: &TestApp,
    user: &str,
    event: i64,
    state: &str,
    within: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let entry = entry(app, user, event).await;
        if entry["state"] == state {
            return entry;
        }
        assert!(
            started.elapsed() < within,
            "{user} still reads {entry} after {within:?}, not {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `user`'s admission token, polling until admitted (5 s at most).
async fn admitted(app: &TestApp, user: &str, event: i64) -> String {
    let entry = until_state(app, user, event, "admitted", Duration::from_secs(5)).await;
    entry["admission"]["token"].as_str().unwrap().to_owned()
}

/// A claim (`/api/v1/bookings` or `/api/v1/holds`) of `body` by `user` with `token`.
async fn claim(
    app: &TestApp,
    path: &str,
    user: &str,
    body: Value,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .request(reqwest::Method::POST, path, As::User(user))
        .json(&body);
    if let Some(token) = token {
        request = request.header("seatbook-admission", token);
    }
    request.send().await.unwrap()
}

async fn book(
    app: &TestApp,
    user: &str,
    event: i64,
    seat: i64,
    token: Option<&str>,
) -> reqwest::Response {
    let body = json!({"event_id": event, "seat_ids": [seat]});
    claim(app, "/api/v1/bookings", user, body, token).await
}

/// `user` holds `seat` of `event` with the admission `token`, asserted made (201); the hold.
async fn holds(app: &TestApp, user: &str, event: i64, seat: i64, token: &str) -> Value {
    let body = json!({"event_id": event, "seat_ids": [seat]});
    let response = claim(app, "/api/v1/holds", user, body, Some(token)).await;
    assert_eq!(
        response.status(),
        201,
        "{user} holds seat {seat} with a token"
    );
    response.json().await.unwrap()
}

/// `user` books `seat` of `event` with the admission `token`, asserted made (201).
async fn books(app: &TestApp, user: &str, event: i64, seat: i64, token: &str) {
    let status = book(app, user, event, seat, Some(token)).await.status();
    assert_eq!(status, 201, "{user} books seat {seat} with a token");
}

/// Asserts a 403 `admission-required` whose `reason` is `reason`; its detail.
async fn refused(response: reqwest::Response, reason: &str) -> String {
    let problem = assert_problem(response, 403).await;
    assert_eq!(
        problem["type"], "https://seatbook.dev/problems/admission-required",
        "{problem}"
    );
    assert_eq!(problem["reason"], reason, "{problem}");
    problem["detail"].as_str().unwrap().to_owned()
}

fn now_secs() -> u64 {
    Utc::now().timestamp() as u64
}

#[tokio::test]
async fn an_event_without_a_waiting_room_has_no_queue_and_books_without_a_token() {
    let app = spawn_app().await;
    let (event, seats) = app.seed_event(1, 2).await;
    let problem = assert_problem(
        app.post(&queue(event), As::User("ann"), &json!({})).await,
        409,
    )
    .await;
    assert_eq!(
        problem["type"],
        "https://seatbook.dev/problems/no-waiting-room"
    );
    assert_problem(app.get(&me(event), As::User("ann")).await, 409).await;
    assert_eq!(app.book("ann", event, &[seats[0]]).await.status(), 201);
    // A token sent anyway changes nothing.
    assert_eq!(
        book(&app, "ann", event, seats[1], Some("junk"))
            .await
            .status(),
        201
    );
    assert_problem(
        app.post(&queue(999_999), As::User("ann"), &json!({})).await,
        404,
    )
    .await;
    assert_problem(
        app.post(&queue(event), As::Anonymous, &json!({})).await,
        401,
    )
    .await;
}

#[tokio::test]
async fn a_waiting_room_is_validated_shown_with_its_defaults_and_refused_out_of_bounds() {
    let app = spawn_app().await;
    let (event, _) = event_with_room(&app, 1, 2, json!({"admit_per_minute": 30}), json!({})).await;
    let shown = app
        .get_json(&format!("/api/v1/events/{event}"), As::Anonymous)
        .await;
    assert_eq!(
        shown["waiting_room"],
        json!({"admit_per_minute": 30, "admission_ttl_seconds": 600, "max_admitted_per_free_seat": 2})
    );
    let venue = app.create_venue("Bounds", 1, 1).await;
    for room in [
        json!({"admit_per_minute": 0}),
        json!({"admit_per_minute": 10, "admission_ttl_seconds": 59}),
        json!({"admit_per_minute": 10, "admission_ttl_seconds": 3601}),
        json!({"admit_per_minute": 10, "max_admitted_per_free_seat": 0}),
        json!({"admit_per_minute": 10, "max_admitted_per_free_seat": 101}),
    ] {
        let body = json!({"name": "x", "starts_at": "2031-06-01T19:30:00Z", "venue_id": venue["id"],
                          "price_cents": 1, "waiting_room": room});
        let problem = assert_problem(app.post("/api/v1/events", ORGANIZER, &body).await, 422).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("waiting_room."),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn joining_again_returns_the_same_entry_with_its_position_and_estimate() {
    let app = spawn_app().await;
    // One a minute: the first in line is admitted at once, the next ones wait a minute each.
    let (event, _) = event_with_room(&app, 2, 2, json!({"admit_per_minute": 1}), json!({})).await;
    assert_eq!(join(&app, "first", event).await["position"], 1);
    let ann = join(&app, "ann", event).await;
    assert_eq!(ann["state"], "waiting");
    assert_eq!(
        (ann["position"].as_i64(), ann["ahead"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(ann["eta_seconds"], 60);
    assert!(ann.get("admission").is_none(), "{ann}");
    let again = join(&app, "ann", event).await;
    assert_eq!(again["entry_id"], ann["entry_id"]);
    assert_eq!(again["position"], 2);
    assert_eq!(entry(&app, "ann", event).await["entry_id"], ann["entry_id"]);
    let bob = join(&app, "bob", event).await;
    assert_eq!(
        (bob["position"].as_i64(), bob["ahead"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(bob["eta_seconds"], 120);
    assert_ne!(bob["entry_id"], ann["entry_id"]);
    // Not in the queue: 404.
    assert_problem(app.get(&me(event), As::User("carol")).await, 404).await;
}

#[tokio::test]
async fn the_queue_entry_has_an_etag_and_a_retry_after_and_answers_304_while_unchanged() {
    let app = spawn_app().await;
    let (event, _) = event_with_room(&app, 2, 2, json!({"admit_per_minute": 1}), json!({})).await;
    join(&app, "first", event).await;
    join(&app, "ann", event).await;
    let response = app.get(&me(event), As::User("ann")).await;
    assert_eq!(response.status(), 200);
    let tag = response.headers()["etag"].to_str().unwrap().to_owned();
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let again = app
        .get_with(&me(event), As::User("ann"), &[("if-none-match", &tag)])
        .await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), tag);
    assert!(again.headers().contains_key("retry-after"));
    // Someone else's entry is another representation.
    let first = app
        .get_with(&me(event), As::User("first"), &[("if-none-match", &tag)])
        .await;
    assert_eq!(first.status(), 200);
}

#[tokio::test]
async fn those_who_join_before_the_sale_opens_are_put_in_a_random_order_when_it_opens() {
    let app = spawn_app().await;
    let opens = Utc::now() + chrono::Duration::seconds(3);
    let (event, _) = event_with_room(
        &app,
        2,
        10,
        json!({"admit_per_minute": 1}),
        json!({"sales_start_at": opens.to_rfc3339_opts(SecondsFormat::Millis, true)}),
    )
    .await;
    let early: Vec<String> = (0..12).map(|i| format!("early-{i}")).collect();
    for user in &early {
        let entry = join(&app, user, event).await;
        assert_eq!(entry["state"], "waiting", "{entry}");
        assert_eq!(
            (entry["position"].clone(), entry["ahead"].clone()),
            (Value::Null, Value::Null)
        );
    }
    assert!(
        Utc::now() < opens,
        "every early join came before the opening"
    );
    tokio::time::sleep((opens - Utc::now()).to_std().unwrap() + Duration::from_millis(200)).await;
    let mut positions = Vec::new();
    for user in &early {
        positions.push(entry(&app, user, event).await["position"].as_i64().unwrap());
    }
    let sorted: BTreeSet<i64> = positions.iter().copied().collect();
    assert_eq!(
        sorted,
        (1..=12).collect(),
        "a permutation of 1..12: {positions:?}"
    );
    assert_ne!(
        positions,
        (1..=12).collect::<Vec<_>>(),
        "not the order of joining"
    );
    // Later joiners queue behind, in the order they come.
    assert_eq!(join(&app, "late-1", event).await["position"], 13);
    assert_eq!(join(&app, "late-2", event).await["position"], 14);
}

#[tokio::test]
async fn people_are_admitted_in_queue_order_no_faster_than_the_rate() {
    let app = spawn_app().await;
    let (event, _) = event_with_room(&app, 2, 5, json!({"admit_per_minute": 60}), json!({})).await;
    let users: Vec<String> = (0..8).map(|i| format!("buyer-{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        assert_eq!(join(&app, user, event).await["position"], i as i64 + 1);
    }
    let started = Instant::now();
    let mut admitted_at: Vec<Option<Duration>> = vec![None; users.len()];
    while started.elapsed() < Duration::from_millis(3500) {
        // Back to front: an admission that lands mid-pass is then seen for those ahead too.
        for (i, user) in users.iter().enumerate().rev() {
            if admitted_at[i].is_none() && entry(&app, user, event).await["state"] == "admitted" {
                admitted_at[i] = Some(started.elapsed());
            }
        }
        // In order: whoever is admitted, everyone ahead of them is too.
        let admitted = admitted_at.iter().take_while(|at| at.is_some()).count();
        assert!(
            admitted_at[admitted..].iter().all(Option::is_none),
            "out of order: {admitted_at:?}"
        );
        // A second's worth of slack at the start, then one a second.
        let allowed = 2 + started.elapsed().as_secs() as usize + 1;
        assert!(
            admitted <= allowed,
            "{admitted} admitted after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admitted = admitted_at.iter().filter(|at| at.is_some()).count();
    assert!(
        (3..=7).contains(&admitted),
        "{admitted} admitted in 3.5 s at 60 a minute"
    );
    assert!(admitted < users.len(), "not everyone at once");
}

#[tokio::test]
async fn claims_need_a_valid_admission_and_each_refusal_says_why() {
    let app = spawn_room_app(&[]).await;
    let fast = json!({"admit_per_minute": 6000});
    let (event, seats) = event_with_room(&app, 2, 5, fast.clone(), json!({})).await;
    let (other, other_seats) = event_with_room(&app, 1, 2, fast, json!({})).await;
    join(&app, "ann", event).await;
    let token = admitted(&app, "ann", event).await;

    let detail = refused(book(&app, "ann", event, seats[0], None).await, "missing").await;
    assert!(detail.contains("waiting room"), "{detail}");
    let hold = json!({"event_id": event, "seat_ids": [seats[0]]});
    refused(
        claim(&app, "/api/v1/holds", "ann", hold, None).await,
        "missing",
    )
    .await;
    let best = json!({"event_id": event, "best_available": {"count": 1}});
    refused(
        claim(&app, "/api/v1/holds", "ann", best.clone(), None).await,
        "missing",
    )
    .await;
    refused(
        book(&app, "bob", event, seats[0], Some(&token)).await,
        "other-user",
    )
    .await;
    refused(
        book(&app, "ann", other, other_seats[0], Some(&token)).await,
        "other-event",
    )
    .await;
    let now = now_secs();
    let forged = token_of("a", KEY_C, "ann", event, now, now + 600).await;
    refused(
        book(&app, "ann", event, seats[0], Some(&forged)).await,
        "bad-signature",
    )
    .await;
    let unknown = token_of("z", KEY_A, "ann", event, now, now + 600).await;
    refused(
        book(&app, "ann", event, seats[0], Some(&unknown)).await,
        "bad-signature",
    )
    .await;
    refused(
        book(&app, "ann", event, seats[0], Some("not.a.token")).await,
        "bad-signature",
    )
    .await;
    let stale = token_of("a", KEY_A, "ann", event, now - 700, now - 100).await;
    refused(
        book(&app, "ann", event, seats[0], Some(&stale)).await,
        "expired",
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) FROM bookings").await,
        0,
        "nothing was claimed"
    );

    // With the token: a booking, a hold, a best-available hold; confirming the hold needs none.
    books(&app, "ann", event, seats[0], &token).await;
    let held = holds(&app, "ann", event, seats[1], &token).await;
    assert_eq!(
        claim(&app, "/api/v1/holds", "ann", best, Some(&token))
            .await
            .status(),
        201
    );
    let confirmed = app
        .confirm(held["id"].as_str().unwrap(), As::User("ann"))
        .await;
    assert_eq!(confirmed.status(), 201);
}

#[tokio::test]
async fn tokens_name_their_key_which_the_published_set_has_and_a_rotated_out_key_still_verifies() {
    // Key b signs now; key a signed before the rotation, and its tokens are still good.
    let keys = key_set("b", &[("a", KEY_A), ("b", KEY_B)]);
    let app = spawn_app_with_env(&[("ADMISSION_KEYS", &keys)]).await;
    let (event, seats) =
        event_with_room(&app, 1, 3, json!({"admit_per_minute": 6000}), json!({})).await;
    let set = app
        .get_json("/api/v1/.well-known/jwks.json", As::Anonymous)
        .await;
    let kids: BTreeSet<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            assert_eq!(
                (key["kty"].as_str(), key["crv"].as_str()),
                (Some("OKP"), Some("Ed25519"))
            );
            assert!(key.get("d").is_none(), "no private part: {key}");
            key["kid"].as_str().unwrap()
        })
        .collect();
    assert_eq!(kids, BTreeSet::from(["a", "b"]));

    join(&app, "ann", event).await;
    let token = admitted(&app, "ann", event).await;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("EdDSA"), Some("b"))
    );
    books(&app, "ann", event, seats[0], &token).await;

    let now = now_secs();
    let before = token_of("a", KEY_A, "bob", event, now, now + 600).await;
    books(&app, "bob", event, seats[1], &before).await;
}

#[tokio::test]
async fn no_more_people_are_admitted_than_the_ratio_times_the_free_seats() {
    let app = spawn_app().await;
    let room = json!({"admit_per_minute": 60000, "max_admitted_per_free_seat": 2});
    let (event, _) = event_with_room(&app, 1, 3, room, json!({})).await;
    let users: Vec<String> = (0..10).map(|i| format!("fan-{i}")).collect();
    for user in &users {
        join(&app, user, event).await;
    }
    let mut admitted = BTreeSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        for (i, user) in users.iter().enumerate() {
            if entry(&app, user, event).await["state"] == "admitted" {
                admitted.insert(i);
            }
        }
        assert!(
            admitted.len() <= 6,
            "{admitted:?} admitted for 3 free seats"
        );
    }
    assert_eq!(admitted, (0..6).collect(), "the first six in line");
}

#[tokio::test]
async fn with_no_seat_free_the_line_reads_sold_out_and_moves_again_when_seats_come_back() {
    let app = spawn_app_with_env(&[
        ("HOLD_TTL_SECONDS", "2"),
        ("WAITING_ROOM_TEST_TTL_SECONDS", "4"),
    ])
    .await;
    let room = json!({"admit_per_minute": 6000, "max_admitted_per_free_seat": 1});
    let (event, seats) = event_with_room(&app, 1, 2, room, json!({})).await;
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        join(&app, user, event).await;
    }
    let t1 = admitted(&app, "u1", event).await;
    let t2 = admitted(&app, "u2", event).await;
    assert_eq!(
        entry(&app, "u3", event).await["state"],
        "waiting",
        "two seats, two admitted"
    );
    holds(&app, "u1", event, seats[0], &t1).await;
    holds(&app, "u2", event, seats[1], &t2).await;
    let held_at = Instant::now();

    let sold_out = until_state(&app, "u3", event, "sold_out", Duration::from_secs(5)).await;
    assert_eq!(sold_out["position"], 3);
    assert!(
        held_at.elapsed() < Duration::from_secs(2),
        "read before the holds lapsed"
    );
    assert_eq!(entry(&app, "u5", event).await["state"], "sold_out");

    // The holds lapse: the next two are admitted, in order (the holders bought, so they count no
    // more), and the one after them reads waiting again, until those two admissions end.
    until_state(&app, "u3", event, "admitted", Duration::from_secs(5)).await;
    until_state(&app, "u4", event, "admitted", Duration::from_secs(2)).await;
    let u5 = entry(&app, "u5", event).await;
    assert_eq!(
        (u5["state"].as_str(), u5["ahead"].as_i64()),
        (Some("waiting"), Some(0))
    );
    until_state(&app, "u5", event, "admitted", Duration::from_secs(6)).await;
}

#[tokio::test]
async fn whoever_bought_counts_no_more_against_the_admissions_the_free_seats_allow() {
    let app = spawn_app().await;
    // One seat, two admitted per free seat.
    let room = json!({"admit_per_minute": 6000, "max_admitted_per_free_seat": 2});
    let (event, seats) = event_with_room(&app, 1, 1, room, json!({})).await;
    for user in ["buyer", "other", "next"] {
        join(&app, user, event).await;
    }
    let token = admitted(&app, "buyer", event).await;
    admitted(&app, "other", event).await;
    assert_eq!(entry(&app, "next", event).await["state"], "waiting");
    let held = holds(&app, "buyer", event, seats[0], &token).await;
    until_state(&app, "next", event, "sold_out", Duration::from_secs(5)).await;

    // The hold is cancelled: one seat free again, and only "other" admitted and not bought, so
    // there is room for "next" (the buyer's admission, used, no longer counts).
    let cancelled = app
        .cancel(held["id"].as_str().unwrap(), As::User("buyer"))
        .await;
    assert_eq!(cancelled.status(), 200);
    until_state(&app, "next", event, "admitted", Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_admission_left_unused_expires_and_admission_goes_on() {
    let app = spawn_app_with_env(&[("WAITING_ROOM_TEST_TTL_SECONDS", "1")]).await;
    let room = json!({"admit_per_minute": 6000, "max_admitted_per_free_seat": 1});
    let (event, seats) = event_with_room(&app, 1, 1, room, json!({})).await;
    let first = join(&app, "walker", event).await;
    join(&app, "stayer", event).await;
    let token = admitted(&app, "walker", event).await;
    assert_eq!(
        entry(&app, "stayer", event).await["state"],
        "waiting",
        "one seat, one admitted"
    );

    // The walker walks away; the stayer is admitted once the walker's admission ends, and books
    // at once (its admission lasts a second too).
    let stayer = admitted(&app, "stayer", event).await;
    books(&app, "stayer", event, seats[0], &stayer).await;
    let walker = entry(&app, "walker", event).await;
    assert_eq!(walker["state"], "expired", "{walker}");
    assert!(walker.get("admission").is_none());
    refused(
        book(&app, "walker", event, seats[0], Some(&token)).await,
        "expired",
    )
    .await;

    // Joining again: a new entry, at the back.
    let again = join(&app, "walker", event).await;
    assert_ne!(again["entry_id"], first["entry_id"]);
    assert_eq!(again["position"], 3);
    assert_ne!(again["state"], "admitted");
}

#[tokio::test]
async fn with_redis_down_joins_answer_503_and_the_admitted_keep_booking() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url()), ("REDIS_TIMEOUT_MS", "200")]).await;
    let (event, seats) =
        event_with_room(&app, 1, 2, json!({"admit_per_minute": 6000}), json!({})).await;
    join(&app, "ann", event).await;
    let token = admitted(&app, "ann", event).await;

    redis.kill();
    let response = app.post(&queue(event), As::User("bob"), &json!({})).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503).await;
    assert_problem(app.get(&me(event), As::User("ann")).await, 503).await;
    books(&app, "ann", event, seats[0], &token).await;
    refused(book(&app, "bob", event, seats[1], None).await, "missing").await;
}

#[tokio::test]
async fn deployed_the_keys_come_from_secrets_manager_as_the_stack_generates_them() {
    let moto = test_support::Moto::start().await;
    // What the template's AdmissionKeysSecret generates: a fixed kid beside a random seed.
    let secret = json!({"signing": "k1", "seed": "q8T2mZx4Lw9Vb7Nc3Rf6Hs1Kd5Gj0Pa2Ye8Ui4Oo7Tt3Ww9Xx6Zz1Bb5Cc2Dd0Ee"});
    let arn = moto
        .create_secret("seatbook/admission-keys", &secret.to_string())
        .await;
    // The SDK reads these from the process's environment, as a Lambda function's (nextest runs
    // each test in a process of its own).
    for (name, value) in [
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ] {
        std::env::set_var(name, value);
    }
    let app = spawn_app_with_env(&[("ADMISSION_KEYS_SECRET_ARN", &arn)]).await;
    let (event, seats) =
        event_with_room(&app, 1, 2, json!({"admit_per_minute": 6000}), json!({})).await;
    let set = app
        .get_json("/api/v1/.well-known/jwks.json", As::Anonymous)
        .await;
    assert_eq!(set["keys"][0]["kid"], "k1", "{set}");
    join(&app, "ann", event).await;
    let token = admitted(&app, "ann", event).await;
    books(&app, "ann", event, seats[0], &token).await;
    refused(
        book(&app, "bob", event, seats[1], Some(&token)).await,
        "other-user",
    )
    .await;
}
