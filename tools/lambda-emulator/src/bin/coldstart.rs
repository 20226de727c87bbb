//! `coldstart`: how fast each function binary starts, as Lambda would start it.
//!
//! For every function (default: booking, events, metrics, organizer, migrate) in `--bin-dir`
//! (default `target/release`), `--runs` times (default 5), a fresh process under the local Runtime
//! API: the init time (spawn → the runtime's first `next`), the time to the first response to a
//! representative event against the local PostgreSQL (a fresh database, migrated by the `migrate`
//! function's own Create request) and Redis, the peak RSS (`VmHWM`) and the binary's size; then,
//! in the last run's process, `--warm` more invocations (default 20) for the warm latency.
//! Prints a table and writes JSON (`--out`, default `bench-results/coldstart.json`).
//!
//! `scripts/coldstart` builds the release binaries and runs this.

use axum::http::StatusCode;
use lambda_emulator::{Emulator, Function};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use test_support::{gateway_event, TestDb};

const DEFAULT_FUNCTIONS: [&str; 5] = ["booking", "events", "metrics", "organizer", "migrate"];
const TARGET_INIT_MS: f64 = 20.0;
/// scripts/sam-build-check's budget (16 MiB): the release profile trades size for build time.
const TARGET_SIZE_BYTES: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

struct Options {
    bin_dir: PathBuf,
    runs: usize,
    warm: usize,
    out: PathBuf,
    label: Option<String>,
    functions: Vec<String>,
    database_url: String,
    redis_url: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: coldstart [--bin-dir DIR] [--runs N] [--warm N] [--out FILE] [--label TEXT] \
         [FUNCTION...]\n\
         functions: {} (default: all)\n\
         env: DATABASE_URL (server to create the scratch database on, default \
         postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (default redis://127.0.0.1:6379; \
         empty: no cache)",
        DEFAULT_FUNCTIONS.join(", ")
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut options = Options {
        bin_dir: PathBuf::from("target/release"),
        runs: 5,
        warm: 20,
        out: PathBuf::from("bench-results/coldstart.json"),
        label: None,
        functions: Vec::new(),
        database_url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        redis_url: std::env::var("REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--bin-dir" => options.bin_dir = PathBuf::from(value()),
            "--runs" => options.runs = value().parse().unwrap_or_else(|_| usage()),
            "--warm" => options.warm = value().parse().unwrap_or_else(|_| usage()),
            "--out" => options.out = PathBuf::from(value()),
            "--label" => options.label = Some(value()),
            "-h" | "--help" => usage(),
            name if DEFAULT_FUNCTIONS.contains(&name) => options.functions.push(name.to_owned()),
            _ => usage(),
        }
    }
    if options.functions.is_empty() {
        options.functions = DEFAULT_FUNCTIONS.iter().map(|s| s.to_string()).collect();
    }
    if options.runs == 0 {
        usage();
    }
    options
}

#[tokio::main]
async fn main() {
    let options = options();
    let scratch = TestDb::try_create_on(&options.database_url, "coldstart")
        .await
        .unwrap_or_else(|e| {
            eprintln!("coldstart: PostgreSQL is not reachable ({e}); run scripts/services");
            std::process::exit(1)
        });
    let receiver = CfnReceiver::start().await;
    let prefix = format!("coldstart-{}", uuid::Uuid::new_v4().simple());
    let env = vec![
        ("DATABASE_URL".to_owned(), scratch.url()),
        ("REDIS_URL".to_owned(), options.redis_url.clone()),
        ("CACHE_PREFIX".to_owned(), prefix),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];

    // The schema first, by the migrate function (from the measured set, or the one built with
    // this tool when the measured set has none).
    let migrate = [
        options.bin_dir.join("migrate"),
        std::env::current_exe().unwrap().with_file_name("migrate"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| {
        eprintln!("coldstart: no migrate binary to create the schema with (build -p migrate-fn)");
        std::process::exit(1)
    });
    let lambda = Emulator::launch(with_env(Function::new(&migrate, "migrate"), &env))
        .await
        .expect("start migrate");
    let created = lambda
        .invoke(&create_request(&receiver), Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("migrating the scratch database: {e}"));
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    drop(lambda);

    let mut results = Vec::new();
    for name in &options.functions {
        let binary = options.bin_dir.join(name);
        let Ok(metadata) = std::fs::metadata(&binary) else {
            eprintln!("coldstart: {} not found, skipped", binary.display());
            continue;
        };
        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        let mut peak_rss = 0;
        let mut outcome = String::new();
        let mut warm = Vec::new();
        for run in 0..options.runs {
            let function = with_env(Function::new(&binary, name.as_str()), &env);
            let lambda = Emulator::launch(function).await.expect("spawn");
            let event = representative_event(name, run, &receiver);
            match lambda.invoke(&event, TIMEOUT).await {
                Ok(response) => outcome = describe(name, &response),
                Err(err) => {
                    outcome = format!("error: {}", err.to_string().lines().next().unwrap_or(""));
                    eprintln!("coldstart: {name}: {err}");
                }
            }
            let timings = lambda.timings();
            inits.push(ms(timings.init));
            firsts.push(ms(timings.first_response));
            if run + 1 == options.runs {
                // The migrate function's warm path is another Create: nothing left to apply.
                for i in 0..options.warm {
                    let event = representative_event(name, options.runs + i, &receiver);
                    let started = std::time::Instant::now();
                    if lambda.invoke(&event, TIMEOUT).await.is_ok() {
                        warm.push(ms(Some(started.elapsed())));
                    }
                }
            }
            peak_rss = peak_rss.max(lambda.peak_rss_kib().unwrap_or(0));
        }
        results.push(json!({
            "function": name,
            "binary": binary.display().to_string(),
            "size_bytes": metadata.len(),
            "init_ms": summary(&inits),
            "first_response_ms": summary(&firsts),
            "warm_invoke_ms": if warm.is_empty() { Value::Null } else { summary(&warm) },
            "peak_rss_kib": peak_rss,
            "response": outcome,
        }));
    }

    print_table(&results);
    let report = json!({
        "label": options.label,
        "runs": options.runs,
        "bin_dir": options.bin_dir.display().to_string(),
        "targets": {"init_ms": TARGET_INIT_MS, "size_bytes": TARGET_SIZE_BYTES},
        "host": host(),
        "functions": results,
    });
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(
        &options.out,
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", options.out.display()));
    println!("\nwritten to {}", options.out.display());
    drop(receiver);
    drop(scratch);
}

fn with_env(mut function: Function, env: &[(String, String)]) -> Function {
    function.env.extend(env.iter().cloned());
    function
}

fn ms(duration: Option<Duration>) -> f64 {
    duration.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return Value::Null;
    }
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    let round = |v: f64| (v * 100.0).round() / 100.0;
    json!({
        "median": round(median),
        "min": round(sorted[0]),
        "max": round(sorted[sorted.len() - 1]),
        "all": values.iter().map(|v| round(*v)).collect::<Vec<_>>(),
    })
}

fn describe(name: &str, response: &Value) -> String {
    if name == "migrate" {
        response["Status"].as_str().unwrap_or("?").to_owned()
    } else {
        format!("HTTP {}", response["statusCode"])
    }
}

fn print_table(results: &[Value]) {
    let header = [
        "function",
        "size",
        "init p50",
        "init max",
        "1st resp p50",
        "warm p50",
        "peak RSS",
    ];
    println!(
        "{:<10} {:>9} {:>11} {:>11} {:>14} {:>11} {:>9}  response",
        header[0], header[1], header[2], header[3], header[4], header[5], header[6]
    );
    for r in results {
        let size = r["size_bytes"].as_u64().unwrap();
        let init = r["init_ms"]["median"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<10} {:>7.2}MB {:>9.2}ms {:>9.2}ms {:>12.2}ms {:>9.2}ms {:>7.1}MB  {}{}",
            r["function"].as_str().unwrap(),
            size as f64 / 1e6,
            init,
            r["init_ms"]["max"].as_f64().unwrap_or(f64::NAN),
            r["first_response_ms"]["median"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["warm_invoke_ms"]["median"].as_f64().unwrap_or(f64::NAN),
            r["peak_rss_kib"].as_u64().unwrap() as f64 / 1024.0,
            r["response"].as_str().unwrap(),
            if init < TARGET_INIT_MS && size < TARGET_SIZE_BYTES {
                ""
            } else {
                "  (over target: init < 20 ms, size < 16 MiB)"
            },
        );
    }
}

fn host() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "arch": std::env::consts::ARCH,
    })
}

fn representative_event(name: &str, run: usize, receiver: &CfnReceiver) -> Value {
    let organizer = json!({"sub": "coldstart-organizer", "cognito:groups": "[organizers]"});
    match name {
        "booking" => gateway_event(
            "GET",
            "/api/v1/bookings",
            Some(json!({"sub": "coldstart"})),
            None,
        ),
        "events" => gateway_event("GET", "/api/v1/events", None, None),
        "metrics" => gateway_event("GET", "/api/v1/metrics", None, None),
        "organizer" => gateway_event(
            "POST",
            "/api/v1/venues",
            Some(organizer),
            Some(&json!({
                "name": format!("Cold Hall {run} {}", uuid::Uuid::new_v4().simple()),
                "rows": 10,
                "cols": 20
            })),
        ),
        "migrate" => create_request(receiver),
        _ => unreachable!("only known functions are accepted"),
    }
}

fn create_request(receiver: &CfnReceiver) -> Value {
    // The sample in events/, answered to this run's stand-in for CloudFormation.
    let mut event: Value =
        serde_json::from_str(include_str!("../../../../events/migrate-create.json")).unwrap();
    event["ResponseURL"] = json!(format!("{}/response", receiver.base));
    event["RequestId"] = json!(uuid::Uuid::new_v4().to_string());
    event
}

/// Stands in for CloudFormation's response URL.
struct CfnReceiver {
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl CfnReceiver {
    async fn start() -> CfnReceiver {
        let app = axum::Router::new().fallback(axum::routing::put(|| async { StatusCode::OK }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CfnReceiver { base, server }
    }
}

impl Drop for CfnReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
