//! The test harness: a server per test, each over its own database.

use crate::common::{self, serve};
use seatbook::DevIdentity;
use seatbook_core::config::Settings;
use seatbook_core::AppState;
use serde_json::{json, Value};
use std::collections::HashMap;
pub use test_support::redis_url;
use test_support::TestDb;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db_name: String,
    /// A direct connection for assertions about what is really stored.
    pub db: tokio_postgres::Client,
    /// New sessions on the database come from it ([`TestApp::connect`]); dropped after the
    /// server, it drops the database with the app.
    database: TestDb,
    settings_env: HashMap<String, String>,
    server: tokio::task::JoinHandle<()>,
    /// The newest `Seatbook-Event-Version` a write through [`TestApp::post`] was answered with:
    /// [`TestApp::availability`] sends it back, as a client reading its own writes does. (One
    /// number for every event: a version from another event is only ever stricter.)
    written: std::sync::atomic::AtomicU64,
}

pub struct Spawn {
    pub dev_identity: bool,
    /// Settings to add or override, e.g. `("CACHE_TTL_SECONDS", "1")`.
    pub env: Vec<(&'static str, String)>,
    /// `host:port` of a connection pooler (PgBouncer) in front of the test PostgreSQL: the server
    /// reaches its database through it. The test's own `db` client still connects directly.
    pub database_via: Option<String>,
    /// A `postgres://` URL of another PostgreSQL server (its maintenance database) to create the
    /// test database on instead of TEST_DATABASE_URL's, e.g. a private cluster the test crashes.
    pub admin_url: Option<String>,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn {
            dev_identity: true,
            env: Vec::new(),
            database_via: None,
            admin_url: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Spawn::default()).await
}

pub async fn spawn_app_with(options: Spawn) -> TestApp {
    let database = match &options.admin_url {
        Some(server) => TestDb::create_on(server, "api").await,
        None => TestDb::migrated("api").await,
    };
    let db_name = database.name.clone();
    let database_url = match &options.database_via {
        Some(via) => database.url_via(via),
        None => database.url(),
    };
    let env = options
        .env
        .iter()
        .map(|(name, value)| (*name, value.as_str()));
    let settings_env = common::settings_env(database_url, 10, &db_name, env);
    let state = common::prepare(&settings_env).await;

    let dev_identity = if options.dev_identity {
        DevIdentity::On
    } else {
        DevIdentity::Off
    };
    let (address, server) = serve(state, dev_identity);

    let db = database.client().await;

    TestApp {
        written: Default::default(),
        address,
        client: reqwest::Client::new(),
        db_name,
        db,
        database,
        settings_env,
        server,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        // Drop cannot await; a short-lived runtime on its own thread can. The database itself goes
        // with `database`, after this.
        let prefix = self.db_name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(forget_cache_keys(&prefix))
        })
        .join();
    }
}

/// Deletes every key under a test's prefix (best effort: Redis may be the thing under test).
async fn forget_cache_keys(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    }
}

pub struct Sibling {
    address: String,
    server: tokio::task::JoinHandle<()>,
}

impl Sibling {
    /// Another environment over `state` (with dev identity), e.g. one whose cache reaches Redis
    /// another way than the app's.
    pub fn serve(state: AppState) -> Sibling {
        let (address, server) = serve(state, DevIdentity::On);
        Sibling { address, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A request's identity, as the dev headers carry it.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Anonymous,
    User(&'a str),
    Organizer(&'a str),
}

pub const ORGANIZER: As<'static> = As::Organizer("organizer-1");

impl TestApp {
    /// Another server over the same database and cache prefix: a second Lambda environment.
    pub async fn sibling(&self) -> Sibling {
        let settings = Settings::from_lookup(|k| self.settings_env.get(k).cloned()).unwrap();
        Sibling::serve(AppState::from_settings(&settings, 10).unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A new session on the test database (the server's own, as a superuser): fresh plan caches.
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.database.client().await
    }

    /// State for the same database as the server, as a deployed function builds it (a pool of
    /// two); its routers see identity from API Gateway claims only, as no dev layer wraps them.
    pub fn lambda_state(&self) -> AppState {
        let settings = Settings::from_lookup(|k| self.settings_env.get(k).cloned()).unwrap();
        AppState::from_settings(&settings, 2).unwrap()
    }

    /// A function's state whose every database session runs as `role` (one of the roles of
    /// migrations/V3), as deployed where the function logs in as that role. Here the session starts
    /// as the test's superuser and switches at connection start (`options=-c role=…`): privileges
    /// are then checked against `role`, and no role's global LOGIN or password is touched.
    pub fn lambda_state_as(&self, role: &str) -> AppState {
        let url = format!(
            "{}?options=-c%20role%3D{role}",
            self.settings_env["DATABASE_URL"]
        );
        let settings = Settings::from_lookup(|k| match k {
            "DATABASE_URL" => Some(url.clone()),
            _ => self.settings_env.get(k).cloned(),
        })
        .unwrap();
        AppState::from_settings(&settings, 2).unwrap()
    }

    pub fn request(&self, method: reqwest::Method, path: &str, who: As) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match who {
            As::Anonymous => builder,
            As::User(id) => builder.header("x-dev-user", id),
            As::Organizer(id) => builder
                .header("x-dev-user", id)
                .header("x-dev-groups", "organizers"),
        }
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, who)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: &Value) -> reqwest::Response {
        let response = self
            .request(reqwest::Method::POST, path, who)
            .json(body)
            .send()
            .await
            .expect("POST");
        self.saw(&response);
        response
    }

    /// Keeps the event version a write's response names, for this app's own reads.
    pub fn saw(&self, response: &reqwest::Response) {
        let version = response
            .headers()
            .get("seatbook-event-version")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if let Some(version) = version {
            self.written
                .fetch_max(version, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub async fn create_venue(&self, name: &str, rows: i64, cols: i64) -> Value {
        let response = self
            .post(
                "/api/v1/venues",
                ORGANIZER,
                &json!({"name": name, "rows": rows, "cols": cols}),
            )
            .await;
        assert_eq!(response.status(), 201, "create venue");
        response.json().await.unwrap()
    }

    pub async fn create_event(&self, venue_id: i64, price_cents: i64) -> Value {
        let response = self
            .post(
                "/api/v1/events",
                ORGANIZER,
                &json!({
                    "name": "Concert",
                    "description": "An evening of music",
                    "starts_at": "2031-06-01T19:30:00Z",
                    "venue_id": venue_id,
                    "price_cents": price_cents,
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "create event");
        response.json().await.unwrap()
    }

    /// A venue of `rows`×`cols` and an event in it on sale now, starting in 30 days at 1,000
    /// cents a seat, with the members of `extra` added or replacing those; the event as created
    /// and its seat ids in row order.
    pub async fn event_with(&self, rows: i64, cols: i64, extra: Value) -> (Value, Vec<i64>) {
        let venue = self
            .create_venue(&format!("Venue {}", uuid::Uuid::new_v4()), rows, cols)
            .await;
        let mut body = json!({
            "name": "On-sale night", "starts_at": in_future(chrono::Duration::days(30)),
            "venue_id": venue["id"], "price_cents": 1000
        });
        for (member, value) in extra.as_object().unwrap() {
            body[member] = value.clone();
        }
        let response = self.post("/api/v1/events", ORGANIZER, &body).await;
        assert_eq!(response.status(), 201, "create the event");
        let event: Value = response.json().await.unwrap();
        let seats = self.availability(event["id"].as_i64().unwrap()).await;
        (event, ids_in(&seats["seats"], "id"))
    }

    /// A venue of `rows`×`cols` with one event on sale; returns the event id and its seat ids in
    /// row order.
    pub async fn seed_event(&self, rows: i64, cols: i64) -> (i64, Vec<i64>) {
        let venue = self
            .create_venue(&format!("Venue {}", uuid::Uuid::new_v4()), rows, cols)
            .await;
        let event = self.create_event(venue["id"].as_i64().unwrap(), 2500).await;
        let event_id = event["id"].as_i64().unwrap();
        let availability = self.availability(event_id).await;
        (event_id, ids_in(&availability["seats"], "id"))
    }

    /// The seat map as this app's writer reads it: naming the newest version its writes left, so
    /// it shows them (another reader may be served a map up to `MAX_STALE` old).
    pub async fn availability(&self, event_id: i64) -> Value {
        let mut request = self.request(
            reqwest::Method::GET,
            &format!("/api/v1/events/{event_id}/availability"),
            As::Anonymous,
        );
        let written = self.written.load(std::sync::atomic::Ordering::Relaxed);
        if written > 0 {
            request = request.header("seatbook-event-version", written);
        }
        let response = request.send().await.expect("GET");
        assert_eq!(response.status(), 200, "availability");
        response.json().await.unwrap()
    }

    pub async fn book(&self, user: &str, event_id: i64, seat_ids: &[i64]) -> reqwest::Response {
        self.claim("/api/v1/bookings", As::User(user), event_id, seat_ids)
            .await
    }

    pub async fn hold(&self, user: &str, event_id: i64, seat_ids: &[i64]) -> reqwest::Response {
        self.claim("/api/v1/holds", As::User(user), event_id, seat_ids)
            .await
    }

    /// How many ticket rows claim `seat_id` of `event_id`, straight from the table.
    pub async fn tickets_for_seat(&self, event_id: i64, seat_id: i64) -> i64 {
        self.db
            .query_one(
                "SELECT count(*) FROM tickets WHERE event_id = $1 AND seat_id = $2",
                &[&event_id, &seat_id],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// Asserts an RFC 9457 problem response with `status`, and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "content type"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem has {member}: {body}");
    }
    assert_eq!(body["status"], status, "problem status member");
    body
}

/// Fires every booking request at once (all wait on one barrier) and returns (status, body) per
/// request, in order. Each request is (user, body).
pub async fn stampede(app: &TestApp, requests: Vec<(String, Value)>) -> Vec<(u16, Value)> {
    let requests = requests.into_iter().map(|(user, body)| {
        app.client
            .post(app.url("/api/v1/bookings"))
            .header("x-dev-user", user)
            .json(&body)
    });
    all_at_once(requests.collect()).await
}

/// [`stampede`] spread over several environments: request `i` goes to `addresses[i % n]` (the
/// app's [`TestApp::url`] or a [`Sibling`]'s, of `/api/v1/bookings`).
pub async fn stampede_across(
    app: &TestApp,
    addresses: &[String],
    requests: Vec<(String, Value)>,
) -> Vec<(u16, Value)> {
    let requests = requests.into_iter().enumerate().map(|(i, (user, body))| {
        app.client
            .post(&addresses[i % addresses.len()])
            .header("x-dev-user", user)
            .json(&body)
    });
    all_at_once(requests.collect()).await
}

/// [`stampede`] for readers: GETs every one of `urls` at once (a URL of the app or of a
/// [`Sibling`]) and returns (status, JSON body or `null`) per URL, in order.
pub async fn read_stampede(app: &TestApp, urls: Vec<String>) -> Vec<(u16, Value)> {
    all_at_once(urls.into_iter().map(|url| app.client.get(url)).collect()).await
}

/// Sends every request at once (all wait on one barrier); (status, JSON body or `null`) per
/// request, in order.
async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, Value)> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.expect("every request is answered");
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

/// The status of `seat` in an availability response.
pub fn seat_status(availability: &Value, seat: i64) -> String {
    availability["seats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == seat)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// [`spawn_app_with`] nothing but `env` set, e.g. `&[("HOLD_TTL_SECONDS", "1")]`.
pub async fn spawn_app_with_env(env: &[(&'static str, &str)]) -> TestApp {
    spawn_app_with(Spawn {
        env: env
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect(),
        ..Spawn::default()
    })
    .await
}

/// The integers of a JSON array, e.g. a request's or a 409's `seat_ids`.
/// `offset` from now, as the API's timestamps are written.
pub fn in_future(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn integers(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// The integer `member` of each object of a JSON array: `ids_in(&map["seats"], "id")`,
/// `ids_in(&booking["tickets"], "seat_id")`, `ids_in(&listing["items"], "id")`.
pub fn ids_in(list: &Value, member: &str) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[member].as_i64().unwrap())
        .collect()
}

/// `clients` booking requests for the one seat `seat`, each by its own user (`{prefix}-{i}`), as
/// [`stampede`] takes them.
pub fn one_seat_requests(
    prefix: &str,
    clients: usize,
    event_id: i64,
    seat: i64,
) -> Vec<(String, Value)> {
    (0..clients)
        .map(|i| {
            (
                format!("{prefix}-{i}"),
                json!({"event_id": event_id, "seat_ids": [seat]}),
            )
        })
        .collect()
}

/// How many of a [`stampede`]'s answers had each status.
pub fn by_status(results: &[(u16, Value)]) -> HashMap<u16, usize> {
    let mut counted = HashMap::new();
    for (status, _) in results {
        *counted.entry(*status).or_default() += 1;
    }
    counted
}

/// Asserts a [`stampede`] on the one seat `seat` ended as it must: one 201, a 409 naming the seat
/// for everybody else (nothing else, no 5xx), and one ticket row for the seat.
pub async fn assert_one_winner(app: &TestApp, event_id: i64, seat: i64, results: &[(u16, Value)]) {
    let counted = by_status(results);
    assert_eq!(
        counted,
        HashMap::from([(201, 1), (409, results.len() - 1)]),
        "one winner, everybody else told the seat is taken: {counted:?}"
    );
    for (status, body) in results {
        if *status == 409 {
            assert_eq!(body["seat_ids"], json!([seat]), "{body}");
        }
    }
    assert_eq!(
        app.tickets_for_seat(event_id, seat).await,
        1,
        "one ticket row"
    );
}

/// Requests the tests make in many places, and queries of what is stored.
impl TestApp {
    /// The first column of the one row `sql` returns.
    pub async fn scalar<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.db.query_one(sql, params).await.unwrap().get(0)
    }

    /// The first column of every row `sql` returns, in order.
    pub async fn column<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self.db.query(sql, &[]).await.unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// The number a `SELECT count(*) …` (or any one-bigint query without parameters) returns.
    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(sql, &[]).await
    }

    /// The JSON body `path` answers `who` with, whatever its status.
    pub async fn get_json(&self, path: &str, who: As<'_>) -> Value {
        self.get(path, who).await.json().await.unwrap()
    }

    /// GET `path` as `who` with more request headers, e.g. `&[("if-none-match", &etag)]`.
    pub async fn get_with(
        &self,
        path: &str,
        who: As<'_>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.request(reqwest::Method::GET, path, who);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("GET")
    }

    /// The service's live figures (`GET /api/v1/metrics` as an organizer), asserted served.
    pub async fn metrics(&self) -> Value {
        let response = self.get("/api/v1/metrics", ORGANIZER).await;
        assert_eq!(response.status(), 200, "metrics");
        response.json().await.unwrap()
    }

    pub async fn delete(&self, path: &str, who: As<'_>) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path, who)
            .send()
            .await
            .expect("DELETE")
    }

    /// Cancels the booking (or hold) `id` as `who`.
    pub async fn cancel(&self, id: &str, who: As<'_>) -> reqwest::Response {
        self.delete(&format!("/api/v1/bookings/{id}"), who).await
    }

    /// Confirms the hold `id` as `who`.
    pub async fn confirm(&self, id: &str, who: As<'_>) -> reqwest::Response {
        self.post(&format!("/api/v1/holds/{id}/confirm"), who, &json!({}))
            .await
    }

    /// A claim on `seat_ids` of `event_id` as `who`: `path` is `/api/v1/bookings` or
    /// `/api/v1/holds`.
    pub async fn claim(
        &self,
        path: &str,
        who: As<'_>,
        event_id: i64,
        seat_ids: &[i64],
    ) -> reqwest::Response {
        self.post(
            path,
            who,
            &json!({"event_id": event_id, "seat_ids": seat_ids}),
        )
        .await
    }

    /// `user`'s booking of `seat_ids`, asserted made; its JSON.
    pub async fn booked(&self, user: &str, event_id: i64, seat_ids: &[i64]) -> Value {
        let response = self.book(user, event_id, seat_ids).await;
        assert_eq!(response.status(), 201, "{user} books {seat_ids:?}");
        response.json().await.unwrap()
    }

    /// `user`'s hold of `seat_ids`, asserted made; its JSON.
    pub async fn held(&self, user: &str, event_id: i64, seat_ids: &[i64]) -> Value {
        let response = self.hold(user, event_id, seat_ids).await;
        assert_eq!(response.status(), 201, "{user} holds {seat_ids:?}");
        response.json().await.unwrap()
    }

    /// Books each of `seats` on its own, the `i`-th by `user(i)`, and asserts every booking made.
    pub async fn book_each(&self, event_id: i64, seats: &[i64], user: impl Fn(usize) -> String) {
        for (i, seat) in seats.iter().enumerate() {
            let who = user(i);
            let status = self.book(&who, event_id, &[*seat]).await.status();
            assert_eq!(status, 201, "{who} books seat {seat}");
        }
    }
}

/// A connection to the tests' Redis (the one `redis_url` names).
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// Returns once another session of the app's database waits for a lock (a booking's statement
/// behind the test's uncommitted rows); fails the test with `what` after 10 s.
pub async fn wait_until_a_session_waits_for_a_lock(app: &TestApp, what: &str) {
    let since = std::time::Instant::now();
    loop {
        // Inside a transaction, the activity view is read once unless told to read it afresh.
        app.db
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let blocked: i64 = app
            .db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if blocked > 0 {
            return;
        }
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10),
            "{what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
