//! The Redis read-through cache, against a real Redis: hits and misses, freshness after a booking,
//! stampedes, TTL, unknown ids, and Redis that is absent, dies, stalls, comes back, drops its
//! connections, is cut off from one environment, and restarts from a snapshot older than a booking.

use crate::helpers::{
    ids_in, read_stampede, redis_connection, redis_url, seat_status, spawn_app, spawn_app_with_env,
    As, Sibling, TestApp,
};
use crate::redis_server::{RedisRoute, RedisServer};
use seatbook_cache::{Body, Cache, CacheKey};
use seatbook_core::cached::EventKeys;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Another environment over the app's database and cache prefix (the same keys), reaching Redis at
/// `redis_url` rather than the way the app does.
fn environment(app: &TestApp, redis_url: &str) -> Sibling {
    let settings = seatbook_core::config::Settings::from_lookup(|name| match name {
        "REDIS_URL" => Some(redis_url.to_owned()),
        "CACHE_PREFIX" => Some(app.db_name.clone()),
        _ => None,
    })
    .unwrap();
    let cache = seatbook_core::state::cache(settings.cache.as_ref().unwrap()).unwrap();
    Sibling::serve(app.lambda_state().with_cache(Some(Arc::new(cache))))
}

/// The seat map as another environment serves it to a reader naming `version` (if any).
async fn map_in(app: &TestApp, other: &Sibling, event_id: i64, version: Option<&str>) -> Value {
    let mut request = app
        .client
        .get(other.url(&format!("/api/v1/events/{event_id}/availability")));
    if let Some(version) = version {
        request = request.header("seatbook-event-version", version);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Reads `key` through `cache` in a task of its own: a load waits for `hold`, then stores
/// `{"v": v}`.
fn spawn_read(
    cache: &Arc<Cache>,
    key: &CacheKey,
    v: &'static str,
    hold: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<Body> {
    let (cache, key) = (cache.clone(), key.clone());
    tokio::spawn(async move {
        cache
            .read_through(&key, Default::default(), || async move {
                hold.await;
                seatbook_core::http::json_body(Some(json!({ "v": v })))
            })
            .await
            .unwrap()
    })
}

/// A read of `key` whose load of `{"v": v}`, once started, waits to be let go: the read's task and
/// the sender that lets it go, once the load has started (an error if the read ended without one).
async fn held_read(
    cache: &Arc<Cache>,
    key: &CacheKey,
    v: &'static str,
) -> Result<(JoinHandle<Body>, oneshot::Sender<()>), oneshot::error::RecvError> {
    let (started, has_started) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let read = spawn_read(cache, key, v, async move {
        let _ = started.send(());
        let _ = released.await;
    });
    has_started.await?;
    Ok((read, release))
}

/// A venue and event created without reading anything, so no cache entry exists yet.
async fn cold_event(app: &TestApp, rows: i64, cols: i64) -> i64 {
    let venue = app
        .create_venue(&format!("V{}", uuid::Uuid::new_v4()), rows, cols)
        .await;
    let event = app.create_event(venue["id"].as_i64().unwrap(), 1000).await;
    event["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_first_read_is_a_miss_the_second_a_hit_and_metrics_count_both() {
    let app = spawn_app().await;
    let event_id = cold_event(&app, 5, 10).await;

    let first = app.availability(event_id).await;
    let second = app.availability(event_id).await;
    assert_eq!(
        first, second,
        "the cache serves exactly what PostgreSQL did"
    );

    let m = app.metrics().await;
    let cache = &m["cache"];
    assert_eq!(cache["available"], true);
    assert_eq!(
        (cache["hits"].as_u64(), cache["misses"].as_u64()),
        (Some(1), Some(1)),
        "{m}"
    );
    assert_eq!(cache["loads"], 1);
    assert_eq!(cache["hit_ratio"], 0.5);
    let (hit_ms, miss_ms) = (
        cache["avg_hit_ms"].as_f64().unwrap(),
        cache["avg_miss_ms"].as_f64().unwrap(),
    );
    assert!(
        hit_ms > 0.0 && hit_ms < 1000.0,
        "plausible hit time {hit_ms}"
    );
    assert!(
        miss_ms > 0.0 && miss_ms < 5000.0,
        "plausible miss time {miss_ms}"
    );
    assert_eq!(
        m["database"],
        json!({"bookings_estimate": 0, "tickets_estimate": 0})
    );
}

#[tokio::test]
async fn booking_counters_and_database_figures_are_reported() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 3).await;
    assert_eq!(app.book("alice", event_id, &seats[..2]).await.status(), 201);
    assert_eq!(app.book("bob", event_id, &seats[1..]).await.status(), 409);
    let m = app.metrics().await;
    assert_eq!(m["bookings"], json!({"confirmed": 1, "conflicts": 1}));
    // PostgreSQL's statistics, not a count: they catch up once the booking's session has
    // flushed them (about a second after it goes idle).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let database = app.metrics().await["database"].clone();
        if database == json!({"bookings_estimate": 1, "tickets_estimate": 2}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "estimates never caught up: {database}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_are_for_organizers_only() {
    let app = spawn_app().await;
    let anonymous = app.get("/api/v1/metrics", As::Anonymous).await;
    assert_eq!(anonymous.status(), 401);
    let user = app.get("/api/v1/metrics", As::User("alice")).await;
    assert_eq!(user.status(), 403);
}

#[tokio::test]
async fn a_booker_always_reads_its_own_seats_as_booked_even_while_others_fill_the_cache() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(4, 5).await;
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "available",
        "cached as free"
    );

    // Readers keep reloading the entry while bookings commit, to provoke a late stale write.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, stop) = (
                app.client.clone(),
                app.url(&format!("/api/v1/events/{event_id}/availability")),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.get(&url).send().await.unwrap().bytes().await;
                }
            })
        })
        .collect();

    for (i, seat) in seats.iter().enumerate() {
        assert_eq!(
            app.book(&format!("user-{i}"), event_id, &[*seat])
                .await
                .status(),
            201
        );
        let after = app.availability(event_id).await;
        assert_eq!(
            seat_status(&after, *seat),
            "booked",
            "seat {seat} read back as booked"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert_eq!(app.availability(event_id).await["booked_seats"], 20);
}

#[tokio::test]
async fn a_new_event_appears_in_the_cached_listing_at_once() {
    let app = spawn_app().await;
    let event_id = cold_event(&app, 1, 1).await;
    let before = app.get_json("/api/v1/events", As::Anonymous).await;
    assert_eq!(before["items"].as_array().unwrap().len(), 1);
    let venue_id = before["items"][0]["venue_id"].as_i64().unwrap();
    let second = app.create_event(venue_id, 500).await;
    let after = app.get_json("/api/v1/events", As::Anonymous).await;
    let ids = ids_in(&after["items"], "id");
    assert!(
        ids.contains(&event_id) && ids.contains(&second["id"].as_i64().unwrap()),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_readers_of_a_cold_key_cause_one_database_load() {
    // A generous Redis timeout: this test is about the stampede, not about a slow Redis, and a
    // loaded CI machine must not turn it into one.
    let app = spawn_app_with_env(&[("REDIS_TIMEOUT_MS", "5000")]).await;
    let event_id = cold_event(&app, 10, 20).await;
    let url = app.url(&format!("/api/v1/events/{event_id}/availability"));
    for (status, body) in read_stampede(&app, vec![url; 500]).await {
        assert_eq!(status, 200);
        assert_eq!(body["total_seats"], 200);
    }
    let m = app.metrics().await;
    let cache = &m["cache"];
    assert_eq!(
        cache["hits"].as_u64().unwrap() + cache["misses"].as_u64().unwrap(),
        500
    );
    assert_eq!(
        cache["loads"], 1,
        "one query to PostgreSQL for 500 readers: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_spread_over_several_processes_share_one_load() {
    // Three servers over one database and one cache prefix stand in for three Lambda environments.
    let app = spawn_app_with_env(&[("REDIS_TIMEOUT_MS", "5000")]).await;
    let event_id = cold_event(&app, 10, 20).await;
    let others = [app.sibling().await, app.sibling().await];
    let path = format!("/api/v1/events/{event_id}/availability");
    let urls: Vec<String> = std::iter::once(app.url(&path))
        .chain(others.iter().map(|o| o.url(&path)))
        .collect();
    let readers = (0..300).map(|i| urls[i % 3].clone()).collect();
    for (status, _) in read_stampede(&app, readers).await {
        assert_eq!(status, 200);
    }
    let loads = app.metrics().await["cache"]["loads"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&loads),
        "300 readers in 3 processes caused {loads} loads"
    );
}

#[tokio::test]
async fn cached_reads_expire_after_their_ttl() {
    let app = spawn_app_with_env(&[("CACHE_TTL_SECONDS", "1")]).await;
    let event_id = cold_event(&app, 1, 1).await;
    let path = format!("/api/v1/events/{event_id}");
    let read_name = || async {
        let body = app.get_json(&path, As::Anonymous).await;
        body["name"].as_str().unwrap().to_owned()
    };
    assert_eq!(read_name().await, "Concert");
    // Changed behind the cache's back: only the TTL can bring it in.
    app.db
        .execute(
            "UPDATE events SET name = 'Renamed' WHERE id = $1",
            &[&event_id],
        )
        .await
        .unwrap();
    assert_eq!(
        read_name().await,
        "Concert",
        "served from the cache within the TTL"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(read_name().await, "Renamed", "reloaded after the TTL");
}

#[tokio::test]
async fn with_redis_on_a_closed_port_reads_and_bookings_go_on_and_metrics_say_so() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_app_with_env(&[("REDIS_URL", &format!("redis://127.0.0.1:{port}"))]).await;
    let (event_id, seats) = app.seed_event(2, 2).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(app.availability(event_id).await["available_seats"], 4);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no request waits long on a dead Redis"
    );
    assert_eq!(app.book("alice", event_id, &[seats[0]]).await.status(), 201);
    assert_eq!(app.book("bob", event_id, &[seats[0]]).await.status(), 409);
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked"
    );

    let m = app.metrics().await;
    assert_eq!(m["cache"]["available"], false);
    assert_eq!(m["cache"]["hits"], Value::Null, "unknown, not zero");
    assert!(m["database"]["tickets_estimate"].is_i64(), "{m}");
}

#[tokio::test]
async fn redis_dying_and_stalling_mid_run_degrades_to_postgres_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url()), ("REDIS_TIMEOUT_MS", "200")]).await;
    let (event_id, seats) = app.seed_event(2, 3).await; // reads availability once: a miss
    app.availability(event_id).await;
    assert_eq!(app.metrics().await["cache"]["hits"], 1, "cache in use");

    // Killed: every read and booking still answers, from PostgreSQL.
    redis.kill();
    for seat in &seats[..2] {
        assert_eq!(app.book("alice", event_id, &[*seat]).await.status(), 201);
        assert_eq!(app.book("bob", event_id, &[*seat]).await.status(), 409);
        assert_eq!(
            seat_status(&app.availability(event_id).await, *seat),
            "booked"
        );
    }
    assert_eq!(app.metrics().await["cache"]["available"], false);

    // Back on the same port (empty, as after a failover): the service uses it again by itself.
    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.availability(event_id).await;
        let m = app.metrics().await;
        if m["cache"]["available"] == true && m["cache"]["hits"].as_u64() > Some(0) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the cache was used again after Redis came back");

    // Stalled (SIGSTOP): requests are bounded by the command timeout, not stuck.
    redis.pause();
    let started = Instant::now();
    for _ in 0..5 {
        let availability = app.availability(event_id).await;
        assert_eq!(seat_status(&availability, seats[1]), "booked");
    }
    assert_eq!(app.book("carol", event_id, &[seats[2]]).await.status(), 201);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    redis.resume();
}

#[tokio::test]
async fn the_cache_works_over_tls_as_elasticache_serverless_requires() {
    let redis = RedisServer::start_tls();
    assert!(redis.url().starts_with("rediss://"));
    let app = spawn_app_with_env(&[
        ("REDIS_URL", &redis.url()),
        ("REDIS_CA_FILE", &redis.ca_file()),
    ])
    .await;
    let event_id = cold_event(&app, 2, 2).await;
    let first = app.availability(event_id).await;
    assert_eq!(app.availability(event_id).await, first);
    let m = app.metrics().await;
    assert_eq!(m["cache"]["available"], true, "{m}");
    assert_eq!(
        (m["cache"]["hits"].as_u64(), m["cache"]["misses"].as_u64()),
        (Some(1), Some(1))
    );
}

/// A booking's invalidation is the one Redis write that must not be skipped: while the link backs
/// off after a failure (here a stalled read), it is still sent, or another environment would serve
/// the map from before the booking for up to the TTL.
#[tokio::test]
async fn an_invalidation_is_sent_even_while_the_link_backs_off_after_a_failure() {
    let redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url()), ("REDIS_TIMEOUT_MS", "200")]).await;
    let (event_id, seats) = app.seed_event(2, 2).await;
    let other = app.sibling().await;
    let read_other = || map_in(&app, &other, event_id, None);
    assert_eq!(seat_status(&read_other().await, seats[0]), "available");

    // A read times out on a stalled Redis: this process leaves Redis alone for a second.
    redis.pause();
    app.availability(event_id).await;
    redis.resume();
    assert_eq!(app.book("alice", event_id, &[seats[0]]).await.status(), 201);

    assert_eq!(
        seat_status(&read_other().await, seats[0]),
        "booked",
        "another environment serves the map from after the booking"
    );
}

/// Redis closed every connection (a restart of a proxy, an idle timeout): the invalidation's first
/// try meets a dead connection, and a second try on a new one lands.
#[tokio::test]
async fn an_invalidation_that_meets_a_dropped_connection_is_retried_and_lands() {
    let redis = RedisServer::start();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url())]).await;
    let (event_id, seats) = app.seed_event(2, 2).await;
    redis
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .expect("CLIENT KILL");
    // Another environment, connected after the drop, caches the map from before the booking.
    let other = app.sibling().await;
    let read_other = |version| map_in(&app, &other, event_id, version);
    assert_eq!(seat_status(&read_other(None).await, seats[0]), "available");

    let booked = app.book("alice", event_id, &[seats[0]]).await;
    assert_eq!(booked.status(), 201);
    let version = booked
        .headers()
        .get("seatbook-event-version")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        version.is_some(),
        "the invalidation landed on its second try"
    );
    assert_eq!(
        seat_status(&read_other(version.as_deref()).await, seats[0]),
        "booked",
        "and the other environment serves nothing older"
    );
}

/// The path from one environment to Redis stalls through a booking's invalidation and all its
/// retries, while Redis stays up for everyone else: the booking is held up for a bounded time, this
/// environment reads from PostgreSQL until the invalidation is delivered, it is delivered by itself
/// once the path is back (so the other environment stops serving the old map), and it is counted.
#[tokio::test]
async fn an_invalidation_that_cannot_land_is_owed_until_redis_answers_and_is_counted() {
    let route = RedisRoute::to(&redis_url()).await;
    let app = spawn_app_with_env(&[("REDIS_URL", &route.url()), ("REDIS_TIMEOUT_MS", "200")]).await;
    let (event_id, seats) = app.seed_event(2, 2).await;
    let other = environment(&app, &redis_url());
    let read_other = || map_in(&app, &other, event_id, None);
    assert_eq!(seat_status(&read_other().await, seats[0]), "available");

    route.stall();
    let started = Instant::now();
    assert_eq!(app.book("alice", event_id, &[seats[0]]).await.status(), 201);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(900),
        "a stalled Redis delays a booking by a bounded time, took {took:?}"
    );
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    route.heal();

    // Well past the link's back-off: this environment reads through Redis again, and must never be
    // served the map from before its own booking; the other one catches up within moments.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut other_fresh = false;
    while Instant::now() < deadline {
        assert_eq!(
            seat_status(&app.availability(event_id).await, seats[0]),
            "booked",
            "the booker's environment never serves the map from before the booking"
        );
        other_fresh = other_fresh || seat_status(&read_other().await, seats[0]) == "booked";
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        other_fresh,
        "the owed invalidation reached the other environment once the path was back"
    );
    let m = app.metrics().await;
    assert_eq!(m["cache"]["available"], true, "{m}");
    assert_eq!(m["cache"]["invalidations_failed"], 1, "{m}");
}

/// A load that started before a commit must not be handed to a reader that has already seen the
/// commit's new generation: flights are per generation. (Driven through the cache itself, so the
/// first load can be held open for as long as the test needs.)
#[tokio::test]
async fn a_reader_that_saw_the_new_generation_is_not_handed_a_load_that_started_before_it() {
    let app = spawn_app().await;
    let event_id = cold_event(&app, 1, 1).await;
    let cache = app.lambda_state().cache.clone().expect("a cache");
    let key = cache.keys().availability(event_id);

    let (before, release) = held_read(&cache, &key, "before").await.unwrap();
    // The commit's invalidation, then a reader who sees it.
    cache
        .bump(&cache.keys().event_generation(event_id), |_| {})
        .await;
    let after = spawn_read(&cache, &key, "after", async {});
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = release.send(());

    let read =
        |body: Body| -> Value { serde_json::from_slice(&body.expect("a body").body).unwrap() };
    assert_eq!(read(before.await.unwrap())["v"], "before");
    assert_eq!(read(after.await.unwrap())["v"], "after");
    let again = spawn_read(&cache, &key, "loaded again", async {}).await;
    assert_ne!(
        read(again.unwrap())["v"],
        "before",
        "the late write from before the commit is not current"
    );
}

/// A flood of reads of an event that does not exist costs one query per key per short TTL, not one
/// per request; the "not found" is forgotten the moment an event is created.
#[tokio::test]
async fn an_unknown_event_id_costs_one_database_query_per_ttl_and_appears_once_created() {
    let app = spawn_app_with_env(&[("CACHE_TTL_SECONDS", "2")]).await;
    let venue = app.create_venue("Hall", 1, 2).await;
    // The id the next event will get.
    let next: i64 = app
        .scalar(
            "SELECT setval(s, nextval(s), false) FROM pg_get_serial_sequence('events', 'id') s",
            &[],
        )
        .await;
    for _ in 0..20 {
        for path in [
            format!("/api/v1/events/{next}"),
            format!("/api/v1/events/{next}/availability"),
        ] {
            assert_eq!(app.get(&path, As::Anonymous).await.status(), 404);
        }
    }
    assert_eq!(
        app.metrics().await["cache"]["loads"],
        2,
        "one query per key for 40 reads"
    );

    let event = app.create_event(venue["id"].as_i64().unwrap(), 100).await;
    assert_eq!(event["id"], next);
    assert_eq!(
        app.get(&format!("/api/v1/events/{next}"), As::Anonymous)
            .await
            .status(),
        200,
        "a new event is found at once"
    );
    assert_eq!(app.availability(next).await["total_seats"], 2);

    // Only briefly: after the TTL the next read asks PostgreSQL again.
    let unknown = format!("/api/v1/events/{}", next + 1000);
    assert_eq!(app.get(&unknown, As::Anonymous).await.status(), 404);
    let loads = app.metrics().await["cache"]["loads"].as_u64().unwrap();
    assert_eq!(app.get(&unknown, As::Anonymous).await.status(), 404);
    assert_eq!(app.metrics().await["cache"]["loads"], loads);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(app.get(&unknown, As::Anonymous).await.status(), 404);
    assert_eq!(app.metrics().await["cache"]["loads"], loads + 1);
}

/// Redis crashes after a booking and comes back from a snapshot taken before it: the snapshot's
/// generation and seat map are both older than the booking, and agree with each other. Values are
/// fenced by the Redis run they were written in, so neither the booker's environment nor a new one
/// serves that map.
#[tokio::test]
async fn a_booker_never_reads_a_map_without_their_seat_after_redis_restarts_from_an_older_snapshot()
{
    let mut redis = RedisServer::start_persistent();
    let app = spawn_app_with_env(&[("REDIS_URL", &redis.url())]).await;
    let (event_id, seats) = app.seed_event(2, 2).await;
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "available"
    );
    assert_eq!(app.metrics().await["cache"]["hits"], 1, "cached");
    redis.save();

    assert_eq!(app.book("alice", event_id, &[seats[0]]).await.status(), 201);
    assert_eq!(
        seat_status(&app.availability(event_id).await, seats[0]),
        "booked"
    );
    redis.kill();
    redis.restart();
    assert!(
        matches!(redis.command(&["DBSIZE"]), Ok(redis::Value::Int(n)) if n > 0),
        "the restart brought the snapshot back"
    );

    let other = app.sibling().await;
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        assert_eq!(
            seat_status(&app.availability(event_id).await, seats[0]),
            "booked",
            "the booker's environment"
        );
        let map = map_in(&app, &other, event_id, None).await;
        assert_eq!(seat_status(&map, seats[0]), "booked", "a new environment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the cache is in use again, not bypassed.
    let hits = app.metrics().await["cache"]["hits"].as_u64().unwrap();
    app.availability(event_id).await;
    assert_eq!(app.metrics().await["cache"]["hits"], hits + 1);
}

/// While Redis cannot be reached, a crowd reading one event's map costs PostgreSQL one load at a
/// time per process, and the last good copy is served within the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_a_crowd_shares_one_load_and_then_the_last_good_copy_within_the_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Nothing listens on port 1.
    let app = spawn_app_with_env(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let cache = app
        .lambda_state()
        .cache
        .clone()
        .expect("a cache, unreachable");
    let key = cache.keys().availability(7);
    let (running, most, loads) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let read = || {
        let (cache, key) = (cache.clone(), key.clone());
        let (running, most, loads) = (running.clone(), most.clone(), loads.clone());
        async move {
            cache
                .read_through(&key, Default::default(), || async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    seatbook_core::http::json_body(Some(json!({ "load": n })))
                })
                .await
                .unwrap()
                .expect("a body")
        }
    };
    let crowd: Vec<_> = (0..50).map(|_| tokio::spawn(read())).collect();
    for reader in crowd {
        reader.await.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "one load at a time");
    let first = loads.load(Ordering::SeqCst);
    assert!(first <= 2, "the crowd shared its loads: {first}");
    // Within the bound: the last good copy, no load.
    let again = read().await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        first,
        "served the last good copy"
    );
    assert!(serde_json::from_slice::<Value>(&again.body).unwrap()["load"].as_u64() <= Some(2));
    // Past it: never served; loaded again.
    tokio::time::sleep(seatbook_cache::MAX_STALE).await;
    let _ = read().await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        first + 1,
        "a copy past the bound is not served"
    );
}

/// A refresher releases its lock only while it still holds it: one whose lock expired while it
/// loaded (and that another reader has taken since) must not delete the other's lock.
#[tokio::test]
async fn a_refresher_whose_lock_expired_does_not_release_the_next_holders_lock() {
    let app = spawn_app().await;
    let cache = app.lambda_state().cache.clone().expect("a cache");
    let key = cache.keys().availability(4242);
    spawn_read(&cache, &key, "first", async {}).await.unwrap();
    // A write makes the value behind; once it is old enough, the next reader refreshes it.
    cache
        .bump(&cache.keys().event_generation(4242), |_| {})
        .await;
    tokio::time::sleep(seatbook_cache::REFRESH_AFTER + Duration::from_millis(20)).await;

    let (refresher, release) = held_read(&cache, &key, "refreshed")
        .await
        .expect("the reader refreshes");
    // Its lock expires and another reader takes it (done by hand here, at once).
    let lock = format!("{}:refresh", key.value);
    let mut redis = redis_connection().await;
    let get = redis::cmd("GET").arg(&lock).to_owned();
    let held: Option<String> = get.query_async(&mut redis).await.unwrap();
    assert!(held.is_some(), "the refresher holds {lock}");
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("another-refresher")
        .arg("PX")
        .arg(5000)
        .query_async(&mut redis)
        .await
        .unwrap();
    let _ = release.send(());
    refresher.await.unwrap();
    let after: Option<String> = get.query_async(&mut redis).await.unwrap();
    assert_eq!(
        after.as_deref(),
        Some("another-refresher"),
        "the late refresher left the next holder's lock alone"
    );
}
