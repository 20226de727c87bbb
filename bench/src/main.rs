//! seatbook-bench: measures the seat-booking service over real HTTP and, in the same run on the
//! same machine, the physical ceiling underneath it (pgbench running the very booking SQL,
//! redis-benchmark), and prints every throughput beside its ceiling.
//!
//! It starts its own `local-api` servers on free ports against a fresh database
//! (`seatbook_bench_<pid>`, dropped at the end) and never touches other data. See bench/README.md.

mod ceiling;
mod cli;
mod clients;
mod db;
mod fixtures;
mod http;
mod integrity;
mod loadgen;
mod nginx;
mod pgbouncer;
mod procstat;
mod redis;
mod report;
mod scenarios;
mod server;
mod stats;

use cli::{Options, Profile, Scenario};
use report::{Machine, Results};
use scenarios::Bench;
use server::{Cache, Server};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Enough descriptors for the largest herd on both ends of every connection.
const WANTED_OPEN_FILES: u64 = 20_000;

fn main() -> ExitCode {
    let opts = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(opts)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("seatbook-bench: FAILED: an integrity check or herd assertion failed (see INTEGRITY above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("seatbook-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up, runs, and always cleans up (servers, database, Redis keys), even on Ctrl-C.
async fn run(opts: Options) -> Result<bool> {
    require_tools(&opts)?;
    procstat::raise_nofile(WANTED_OPEN_FILES)?;
    std::fs::create_dir_all(&opts.out_dir)?;
    let server_bin = match &opts.server_bin {
        Some(bin) => bin.clone(),
        None => server::default_binary()?,
    };
    let pg_base = std::env::var("BENCH_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    let redis_url =
        std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let redis = redis::Redis::from_url(&redis_url)?;
    let database = db::BenchDb::new(&pg_base);
    database.drop_if_exists().await?;

    let outcome = tokio::select! {
        outcome = bench(opts, &database, redis.clone(), server_bin) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = terminated() => Err("terminated".into()),
    };
    // The servers were dropped (and stopped) with the future above, before the database goes.
    if let Err(err) = database.drop_if_exists().await {
        eprintln!("note: could not drop database {}: {err}", database.name);
    }
    redis.clean_up();
    outcome
}

/// SIGTERM, cleaned up after like Ctrl-C.
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn bench(
    opts: Options,
    database: &db::BenchDb,
    redis: redis::Redis,
    server_bin: PathBuf,
) -> Result<bool> {
    let mut results = Results {
        machine: Machine::describe(),
        started_at: chrono::Utc::now().to_rfc3339(),
        quick: opts.quick,
        ..Results::default()
    };
    settings(&opts, database, &mut results);

    eprintln!("starting local-api against database {} ...", database.name);
    let main = Server::start(
        "main",
        &server_bin,
        &database.url(),
        &Cache::Off,
        &opts.out_dir,
    )
    .await?;
    let pg = database.connect().await?;
    // This session runs the integrity checks. Statistics are refreshed only at each scenario's
    // start (see db::analyze), so after a ceiling stored tens of thousands of rows the planner
    // still sees near-empty tables, and a nested loop over them would take minutes. JIT off: the
    // penalty of a disabled nested loop pushes plans that need one (any call of book()) over
    // jit_above_cost, and each such statement then spends ~0.8 s compiling.
    pg.batch_execute("SET enable_nestloop = off; SET jit = off")
        .await?;
    results.machine.postgres = pg.query_one("SELECT version()", &[]).await?.get(0);
    eprintln!("creating venues and events ...");
    let fixtures = fixtures::create(main.addr, ceiling::CLIENTS).await?;
    pg.batch_execute("VACUUM ANALYZE").await?;
    db::quiet_autovacuum(&pg).await?;

    let mut bench = Bench {
        opts: opts.clone(),
        fixtures,
        database_url: database.url(),
        pg_base: database.base.clone(),
        database_name: database.name.clone(),
        pg,
        main,
        server_bin,
        redis,
        results,
        cached: None,
        herd_winners: Vec::new(),
        nginx: None,
        cached_peak_before_mixed_kib: 0,
    };
    for scenario in &opts.scenarios {
        match scenario {
            Scenario::Book => bench.book(1).await?,
            Scenario::BookMulti => bench.book(4).await?,
            Scenario::Herd => bench.herd().await?,
            Scenario::Read => bench.read().await?,
            Scenario::Mixed => bench.mixed().await?,
            Scenario::Lifecycle => bench.lifecycle().await?,
            Scenario::Lambda => bench.lambda().await?,
            Scenario::Poll => bench.poll().await?,
            Scenario::Hot => bench.hot().await?,
            Scenario::Webhooks => bench.webhooks().await?,
        }
    }
    bench.finish();

    let mut results = bench.results;
    let herd_target = Profile::full().herd_sizes.into_iter().max().unwrap_or(0);
    results.judge_goals(herd_target);
    println!("{}", results.render());

    let json = opts.out_dir.join("results.json");
    results.write_json(&json)?;
    eprintln!("wrote {}", json.display());
    Ok(results.integrity_passed())
}

fn settings(opts: &Options, database: &db::BenchDb, results: &mut Results) {
    let p = &opts.profile;
    let env_or = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    for (k, v) in [
        ("warmup_s", p.warmup.as_secs_f64().to_string()),
        ("measure_s", p.measure.as_secs_f64().to_string()),
        ("pgbench_s", p.pgbench_secs.to_string()),
        ("clients", ceiling::CLIENTS.to_string()),
        (
            "pgbench",
            "-c 32 -j 2; -M prepared for bookings, -M extended for availability".to_owned(),
        ),
        (
            "DB_POOL_MAX_SIZE",
            env_or("DB_POOL_MAX_SIZE", "16 (service default)"),
        ),
        ("RUST_LOG", env_or("RUST_LOG", "info (service default)")),
        ("database", database.name.clone()),
    ] {
        results.settings.insert(k.to_owned(), v);
    }
}

/// The ceilings need pgbench and redis-benchmark on PATH; scripts/bench installs them.
fn require_tools(opts: &Options) -> Result<()> {
    let needs_pgbench = opts.runs(Scenario::Book)
        || opts.runs(Scenario::BookMulti)
        || opts.runs(Scenario::Read)
        || opts.runs(Scenario::Lambda);
    let mut tools = Vec::new();
    if needs_pgbench {
        tools.push(("pgbench", "postgresql-contrib or postgresql-client"));
    }
    if opts.runs(Scenario::Read) || opts.runs(Scenario::Poll) {
        tools.push(("redis-benchmark", "redis-tools"));
        tools.push(("nginx", "nginx-light"));
    }
    for (tool, package) in tools {
        let found = Command::new(tool)
            .arg(if tool == "nginx" { "-v" } else { "--version" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!("{tool} is not installed (Debian package {package})").into());
        }
    }
    Ok(())
}
