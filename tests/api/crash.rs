//! PostgreSQL crashing under booking load: a private cluster (`initdb` + `pg_ctl`, run as the
//! `postgres` user when the tests run as root) that the test kills with `pg_ctl stop -m immediate`
//! (no checkpoint, no goodbye to the clients: a power cut as far as the database is concerned)
//! and starts again, which replays the WAL. Bookings never see a 500: a 201 only ever follows a
//! commit PostgreSQL has acknowledged, and it survives the crash; while the database is down every
//! booking is a 503 with `Retry-After`; once it is back, bookings go through again at once.

use crate::helpers::{spawn_app_with, Spawn};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

/// Concurrent bookers.
const BOOKERS: usize = 6;
/// Each booker's pause between requests, so the venue's seats last the whole test.
const PACE: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bookings_survive_postgresql_crashing_and_restarting_under_load() {
    let cluster = Cluster::create().await;
    let app = spawn_app_with(Spawn {
        admin_url: Some(cluster.url("postgres")),
        ..Spawn::default()
    })
    .await;
    let (event_id, seats) = app.seed_event(70, 70).await;

    let load = Load::start(&app.client, &app.url("/api/v1/bookings"), event_id, seats);
    load.wait_for_bookings(20).await;

    let crashing = Instant::now();
    cluster.pg_ctl(&["stop", "-m", "immediate"]).await;
    let crashed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarting = Instant::now();
    cluster.start().await;
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outcomes = load.stop().await;

    // No 500, ever; every 503 says when to come back.
    for outcome in &outcomes {
        assert!(
            [201, 503].contains(&outcome.status),
            "only 201 or 503: {outcome:?}"
        );
        if outcome.status == 503 {
            assert_eq!(outcome.retry_after.as_deref(), Some("1"), "{outcome:?}");
            assert_eq!(outcome.content_type, "application/problem+json");
        }
    }
    let before: Vec<_> = outcomes.iter().filter(|o| o.sent < crashing).collect();
    assert!(
        before.iter().any(|o| o.status == 201),
        "bookings before the crash"
    );

    // While it is down, every booking is a 503.
    let down: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent >= crashed && o.answered <= restarting)
        .collect();
    assert!(
        down.len() >= BOOKERS,
        "requests while it was down: {}",
        down.len()
    );
    assert!(down.iter().all(|o| o.status == 503), "{down:?}");

    // Back within seconds of it coming back, and for good.
    let first_back = outcomes
        .iter()
        .filter(|o| o.sent >= restarted && o.status == 201)
        .map(|o| o.answered)
        .min()
        .expect("bookings succeed again after the restart");
    assert!(
        first_back - restarted < Duration::from_secs(2),
        "first booking {:?} after the restart",
        first_back - restarted
    );
    let settled: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent >= restarted + Duration::from_secs(1))
        .collect();
    assert!(settled.len() >= BOOKERS, "requests after recovery");
    assert!(settled.iter().all(|o| o.status == 201), "{settled:?}");

    // Crash it once more, right after the last 201: every 201 the API gave is on disk.
    cluster.pg_ctl(&["stop", "-m", "immediate"]).await;
    cluster.start().await;
    let db = cluster.connect(&app.db_name).await;
    let confirmed: Vec<_> = outcomes.iter().filter(|o| o.status == 201).collect();
    for outcome in &confirmed {
        let (id, seats) = outcome.booking.as_ref().expect("a 201 has its booking");
        let row = db
            .query_typed_opt(
                "SELECT b.status::text,
                        (SELECT array_agg(seat_id ORDER BY seat_id) FROM tickets WHERE booking_id = b.id),
                        (SELECT count(*) FROM outbox WHERE booking_id = b.id)
                 FROM bookings b WHERE b.id = $1",
                &[(id, tokio_postgres::types::Type::UUID)],
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("booking {id} was answered 201 and then lost"));
        assert_eq!(row.get::<_, String>(0), "confirmed");
        assert_eq!(&row.get::<_, Vec<i64>>(1), seats, "booking {id}'s tickets");
        assert_eq!(row.get::<_, i64>(2), 1, "booking {id}'s confirmation");
    }
    // Whatever the crashes cut short was undone whole: no booking without both its seats.
    let torn: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings b
             WHERE (SELECT count(*) FROM tickets t WHERE t.booking_id = b.id) <> 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(torn, 0, "half-made bookings");
    eprintln!(
        "crash test: {} requests, {} × 201, {} while down, first booking {:?} after the restart",
        outcomes.len(),
        confirmed.len(),
        down.len(),
        first_back - restarted
    );
}

/// What one booking request got.
#[derive(Debug)]
struct Outcome {
    sent: Instant,
    answered: Instant,
    status: u16,
    retry_after: Option<String>,
    content_type: String,
    /// For a 201: the booking's id and its seats.
    booking: Option<(uuid::Uuid, Vec<i64>)>,
}

/// Bookers taking two fresh seats per request (so no request can conflict with another) until
/// stopped. Each request is a new user, so no rate limit is reached.
struct Load {
    stop: Arc<AtomicBool>,
    booked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    fn start(client: &reqwest::Client, url: &str, event_id: i64, seats: Vec<i64>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let booked = Arc::new(AtomicUsize::new(0));
        let seats = Arc::new(Mutex::new(seats.into_iter()));
        let tasks = (0..BOOKERS)
            .map(|booker| {
                let (client, url) = (client.clone(), url.to_owned());
                let (stop, booked, seats) = (stop.clone(), booked.clone(), seats.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let pair: Vec<i64> = seats.lock().unwrap().by_ref().take(2).collect();
                        assert_eq!(pair.len(), 2, "the venue ran out of seats");
                        let sent = Instant::now();
                        let response = client
                            .post(&url)
                            .header("x-dev-user", format!("booker-{booker}-{}", outcomes.len()))
                            .timeout(Duration::from_secs(10))
                            .json(&json!({"event_id": event_id, "seat_ids": pair}))
                            .send()
                            .await
                            .expect("every request is answered");
                        let status = response.status().as_u16();
                        let header = |name: &str| {
                            response
                                .headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_owned())
                        };
                        let retry_after = header("retry-after");
                        let content_type = header("content-type").unwrap_or_default();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let booking = (status == 201).then(|| {
                            booked.fetch_add(1, Ordering::Relaxed);
                            let mut seats: Vec<i64> = body["tickets"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|t| t["seat_id"].as_i64().unwrap())
                                .collect();
                            seats.sort_unstable();
                            let mut asked = pair.clone();
                            asked.sort_unstable();
                            assert_eq!(seats, asked, "{body}");
                            (body["id"].as_str().unwrap().parse().unwrap(), seats)
                        });
                        outcomes.push(Outcome {
                            sent,
                            answered: Instant::now(),
                            status,
                            retry_after,
                            content_type,
                            booking,
                        });
                        tokio::time::sleep(PACE).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load {
            stop,
            booked,
            tasks,
        }
    }

    async fn wait_for_bookings(&self, count: usize) {
        let started = Instant::now();
        while self.booked.load(Ordering::Relaxed) < count {
            assert!(started.elapsed() < Duration::from_secs(10), "no bookings");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.extend(task.await.expect("a booker failed"));
        }
        outcomes
    }
}

/// A PostgreSQL cluster of the test's own, on a free port, with trust authentication, in a
/// temporary directory that goes away with it.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    async fn create() -> Cluster {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("seatbook-crash-{}", uuid::Uuid::new_v4()));
        let port = test_support::free_port();
        let cluster = Cluster { bin, dir, port };
        let initdb = cluster.bin.join("initdb");
        let data = cluster.dir.to_str().unwrap().to_owned();
        let args = [
            "-D",
            &data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ];
        run_as_postgres(&initdb, &args).await;
        cluster.start().await;
        cluster
    }

    /// Starts the cluster (after a crash: replays the WAL first) and waits until it accepts
    /// connections.
    async fn start(&self) {
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c shared_buffers=32MB -c max_connections=60",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ])
        .await;
    }

    async fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.to_str().unwrap().to_owned();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        run_as_postgres(&self.bin.join("pg_ctl"), &all).await;
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(database), NoTls)
            .await
            .expect("connect to the private cluster");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.to_str().unwrap().to_owned();
        let _ = as_postgres(&pg_ctl, &["-D", &data, "stop", "-m", "immediate"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest PostgreSQL's programs (`PG_BINDIR` overrides).
fn postgres_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs in /usr/lib/postgresql/<version>/bin (or PG_BINDIR)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().expect("initdb under /usr/lib/postgresql").1
}

/// `program args…` as the `postgres` user when this runs as root (PostgreSQL refuses to run as
/// root), else as the current user.
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).current_dir(std::env::temp_dir());
    command
}

async fn run_as_postgres(program: &Path, args: &[&str]) {
    let mut command = as_postgres(program, args);
    let what = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
