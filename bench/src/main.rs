//! seatbook-bench: measures the seat-booking service over real HTTP and, in the same run on the
//! same machine, the physical ceiling underneath it (pgbench running the very booking SQL,
//! redis-benchmark, nginx), and prints every throughput beside its ceiling.
//!
//! It starts its own `local-api` servers on free ports against a database of its own (dropped
//! at the end) and never touches other data. See bench/README.md.

mod ceiling;
mod cli;
mod clients;
mod db;
mod fixtures;
mod http;
mod integrity;
mod loadgen;
mod nginx;
mod procstat;
mod redis;
mod report;
mod scenarios;
mod server;
mod stats;

use cli::{Options, Profile, Scenario};
use report::{Machine, Results};
use scenarios::Bench;
use server::Server;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use test_support::TestDb;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    let var =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let pg_base = var("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432");
    let redis = redis::Redis::from_url(&var("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))?;
    let server_url = format!("{}/postgres", pg_base.trim_end_matches('/'));
    let database = TestDb::try_create_on(&server_url, "bench")
        .await
        .map_err(|e| format!("{server_url}: {e}"))?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        outcome = bench(opts, &database, redis.clone(), server_bin) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = sigterm.recv() => Err("terminated".into()),
    };
    // The servers were stopped with the future above; the database is dropped with `database`.
    redis.clean_up();
    outcome
}

async fn bench(
    opts: Options,
    database: &TestDb,
    redis: redis::Redis,
    server_bin: PathBuf,
) -> Result<bool> {
    let mut results = Results {
        machine: Machine::describe(),
        started_at: chrono::Utc::now().to_rfc3339(),
        quick: opts.quick,
        ..Results::default()
    };
    settings(&opts, &database.name, &mut results);
    eprintln!("starting local-api against database {} ...", database.name);
    let database_url = database.url();
    let main = Server::start("main", &server_bin, &database_url, &opts.out_dir, &[]).await?;
    let pg = db::connect(&database_url).await?;
    // This session runs the integrity checks. Statistics are refreshed only at each scenario's
    // start, so after a ceiling stored tens of thousands of rows the planner still sees
    // near-empty tables, and a nested loop over them would take minutes. JIT off: the penalty of
    // a disabled nested loop pushes plans that need one (any call of book()) over
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
        pg_user: database.user().to_owned(),
        pg_server: database.server(),
        database_name: database.name.clone(),
        database_url,
        pg,
        main,
        cached: None,
        server_bin,
        redis,
        results,
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
    results.judge_goals(Profile::full().herd_sizes.into_iter().max().unwrap_or(0));
    println!("{}", results.render());
    let json = opts.out_dir.join("results.json");
    results.write_json(&json)?;
    eprintln!("wrote {}", json.display());
    Ok(results.integrity_passed())
}

fn settings(opts: &Options, database: &str, results: &mut Results) {
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
        ("database", database.to_owned()),
    ] {
        results.settings.insert(k.to_owned(), v);
    }
}

/// The ceilings need pgbench, redis-benchmark and nginx on PATH; scripts/bench installs them.
fn require_tools(opts: &Options) -> Result<()> {
    use Scenario::*;
    let pgbench = [Book, BookMulti, Read, Lambda]
        .into_iter()
        .any(|s| opts.runs(s));
    let cached = opts.runs(Read) || opts.runs(Poll);
    let tools = [
        (
            pgbench,
            "pgbench",
            "--version",
            "postgresql-contrib or postgresql-client",
        ),
        (cached, "redis-benchmark", "--version", "redis-tools"),
        (cached, "nginx", "-v", "nginx-light"),
    ];
    for (_, tool, flag, package) in tools.into_iter().filter(|t| t.0) {
        let found = Command::new(tool)
            .arg(flag)
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
