//! The developer loop, for real: `cargo lambda watch` started from the repository root, as a
//! newcomer would, serving every route of every function through the workspace router
//! (`[workspace.metadata.lambda.watch]` in Cargo.toml). A venue, an event, its availability, a
//! booking, a 409 and the metrics, then the watcher is stopped.
//!
//! Needs `cargo-lambda` (`pip install cargo-lambda`; `scripts/tools` installs it): found through
//! `CARGO_LAMBDA`, on `PATH`, or in the private virtualenv `scripts/tools` makes. The functions
//! are compiled by the watcher on their first request, so this test takes a minute or two.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::{free_port, TestDb};

#[tokio::test]
async fn cargo_lambda_watch_serves_every_function_from_the_repository_root() {
    let database = TestDb::migrated("watch").await;
    let port = free_port();
    let started = Instant::now();
    let watcher = Watcher::start(port, &database.name);
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            // The watcher compiles each function on its first request.
            .timeout(Duration::from_secs(1800))
            .build()
            .unwrap(),
    };
    wait_until_listening(port, &watcher).await;

    let organizer = [("x-dev-user", "org-1"), ("x-dev-groups", "organizers")];
    let (status, venue) = api
        .post(
            "/api/v1/venues",
            &organizer,
            json!({"name": "Watch Hall", "rows": 2, "cols": 3}),
        )
        .await;
    assert_eq!(status, 201, "organizer creates a venue: {venue}");
    let (status, event) = api
        .post(
            "/api/v1/events",
            &organizer,
            json!({
                "name": "Watch Night",
                "starts_at": "2035-06-01T20:00:00Z",
                "venue_id": venue["id"],
                "price_cents": 2500
            }),
        )
        .await;
    assert_eq!(status, 201, "organizer creates an event: {event}");
    let event_id = event["id"].as_i64().unwrap();

    // A path parameter, routed by the watcher's router to the events function.
    let (status, shown) = api.get(&format!("/api/v1/events/{event_id}"), &[]).await;
    assert_eq!((status, &shown["name"]), (200, &json!("Watch Night")));
    let availability_path = format!("/api/v1/events/{event_id}/availability");
    let (status, availability) = api.get(&availability_path, &[]).await;
    assert_eq!(status, 200, "{availability}");
    assert_eq!(availability["available_seats"], 6);
    let seat = availability["seats"][0]["id"].as_i64().unwrap();

    let booking = json!({"event_id": event_id, "seat_ids": [seat]});
    let alice = [("x-dev-user", "alice")];
    let (status, booked) = api.post("/api/v1/bookings", &alice, booking.clone()).await;
    assert_eq!(status, 201, "alice books the seat: {booked}");
    let (status, conflict) = api
        .post("/api/v1/bookings", &[("x-dev-user", "bob")], booking)
        .await;
    assert_eq!(status, 409, "bob is too late: {conflict}");
    assert_eq!(conflict["seat_ids"], json!([seat]));
    let mine = format!(
        "/api/v1/bookings/{}",
        booked["id"].as_str().expect("booking id")
    );
    let (status, mine) = api.get(&mine, &alice).await;
    assert_eq!((status, &mine["status"]), (200, &json!("confirmed")));

    let (status, availability) = api.get(&availability_path, &[]).await;
    assert_eq!((status, &availability["booked_seats"]), (200, &json!(1)));
    let (status, metrics) = api.get("/api/v1/metrics", &organizer).await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics["bookings"].is_object(), "{metrics}");

    // Unknown routes are the watcher's 404, not a hang.
    let unknown = api
        .client
        .get(format!("{}/api/v1/nowhere", api.base))
        .send()
        .await
        .unwrap();
    assert!(unknown.status().is_client_error());

    eprintln!(
        "cargo lambda watch: every route answered in {:.1} s (including compilation)",
        started.elapsed().as_secs_f64()
    );
    drop(watcher);
}

/// The API `cargo lambda watch` serves, at `base`.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        self.call("GET", path, headers, None).await
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
        self.call("POST", path, headers, Some(body)).await
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.parse().unwrap(), &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    }
}

/// `cargo lambda watch` in its own process group, so stopping it stops the functions it runs.
struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Watcher {
    fn start(port: u16, database: &str) -> Watcher {
        use std::os::unix::process::CommandExt;
        let root = workspace_root();
        let log = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(cargo_lambda());
        // The variables cargo sets for this test process (CARGO_MANIFEST_DIR, CARGO_PKG_NAME…)
        // must not reach the cargo the watcher runs: build scripts (ring's) declare them with
        // `rerun-if-env-changed`, so the watcher would compile ring again and everything above it
        // (two minutes of both cores in CI), then the next plain `cargo build` all of it once more.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_by_cargo_for_tests) {
                command.env_remove(name);
            }
        }
        let child = command
            .current_dir(&root)
            .args(["lambda", "watch", "--ignore-changes"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args([
                "--env-var",
                &format!("DATABASE_URL=postgres://postgres@127.0.0.1:5432/{database}"),
            ])
            .args(["--env-var", &format!("CACHE_PREFIX={database}")])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start cargo lambda watch");
        Watcher { child, log }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // The group may be gone already; kill's complaint about that is noise.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- cargo lambda watch log ---\n{}", self.log());
        }
    }
}

async fn wait_until_listening(port: u16, watcher: &Watcher) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}:\n{}",
            watcher.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `name` is a variable cargo sets for the crates and tests it runs (not one of the
/// settings it reads, such as `CARGO_HOME` or `CARGO_TARGET_DIR`).
fn set_by_cargo_for_tests(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_BIN_EXE_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&name)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo_lambda() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_LAMBDA") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("cargo-lambda"))
        .find(|p| p.is_file());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| "/tmp".into());
    let venv = cache.join("seatbook/tools-venv/bin/cargo-lambda");
    on_path
        .or_else(|| venv.is_file().then_some(venv))
        .expect("cargo-lambda is not installed: run scripts/tools (pip install cargo-lambda)")
}
