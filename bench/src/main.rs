//! seatbook-bench: measures the seat-booking service over real HTTP and, in the same run on the
//! same machine, the physical ceiling underneath it (pgbench running the very booking SQL,
//! redis-benchmark, nginx), and prints every throughput beside its ceiling.
//!
//! It starts its own `local-api` servers on free ports against a database of its own (dropped
//! at the end) and never touches other data. See bench/README.md.

mod ceiling;
mod clients;
mod cores;
mod fixtures;
mod http;
mod integrity;
mod loadgen;
mod procs;
mod report;
mod scenarios;

use ceiling::Redis;
use clap::{Parser, ValueEnum};
use procs::Server;
use report::Results;
use scenarios::Bench;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use test_support::TestDb;
use tokio_postgres::NoTls;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

const ENVIRONMENT: &str = "\
environment:
  BENCH_PG_URL     PostgreSQL server, without a database name (default postgres://postgres@127.0.0.1:5432)
  BENCH_REDIS_URL  Redis for the cached reads and redis-benchmark (default redis://127.0.0.1:6379)
  DB_POOL_MAX_SIZE passed through to the service (its default: two per core, 4 to 16)
  RUST_LOG         passed through to the service (its default is info)";

/// In run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    Book,
    BestAvailable,
    Herd,
    Read,
    Poll,
    Hot,
    Queue,
    Webhooks,
}

/// Measures the seat-booking service over HTTP beside its ceilings (pgbench, redis-benchmark,
/// nginx). See bench/README.md.
#[derive(Debug, Clone, Parser)]
#[command(name = "seatbook-bench", after_help = ENVIRONMENT)]
pub struct Options {
    /// Short durations and small herds: a smoke test of the harness, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated subset of the scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Where results.json and the logs go.
    #[arg(long = "out", default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// The local-api binary (default: local-api next to this binary).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    #[arg(skip = Profile::FULL)]
    pub profile: Profile,
}

/// How long things run: the full profile measures; the quick one only proves the harness works.
#[derive(Debug, Clone)]
pub struct Profile {
    pub warmup: Duration,
    pub measure: Duration,
    pub pgbench_secs: u32,
    pub redis_requests: u32,
    pub herd_sizes: &'static [usize],
    /// Bookings whose webhooks `webhooks` delivers.
    pub webhooks: usize,
}

impl Profile {
    pub const FULL: Profile = Profile {
        warmup: Duration::from_secs(2),
        measure: Duration::from_secs(10),
        pgbench_secs: 10,
        redis_requests: 200_000,
        herd_sizes: &[50, 500, 5_000],
        webhooks: 3_000,
    };
    const QUICK: Profile = Profile {
        warmup: Duration::from_millis(500),
        measure: Duration::from_secs(2),
        pgbench_secs: 2,
        redis_requests: 20_000,
        herd_sizes: &[50, 200],
        webhooks: 200,
    };
}

impl Options {
    /// Every scenario when none is named, in run order, each once; the quick profile if asked.
    fn settled(mut self) -> Options {
        if self.scenarios.is_empty() {
            self.scenarios = Scenario::value_variants().to_vec();
        }
        self.scenarios.sort();
        self.scenarios.dedup();
        if self.quick {
            self.profile = Profile::QUICK;
        }
        self
    }
}

/// Enough descriptors for the largest herd on both ends of every connection.
const WANTED_OPEN_FILES: u64 = 20_000;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Options::parse().settled()).await {
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

fn var(name: &str, default: &str) -> String {
    let value = std::env::var(name).ok().filter(|v| !v.is_empty());
    value.unwrap_or_else(|| default.to_owned())
}

/// Sets up, runs, and always cleans up (servers, database, Redis keys), even on Ctrl-C.
async fn run(opts: Options) -> Result<bool> {
    procs::raise_nofile(WANTED_OPEN_FILES)?;
    std::fs::create_dir_all(&opts.out_dir)?;
    // By default `local-api` next to our own binary: `cargo build` puts both in one directory.
    let server_bin = match &opts.server_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("local-api"),
    };
    let pg_base = var("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432");
    let redis = Redis::new(var("BENCH_REDIS_URL", "redis://127.0.0.1:6379"));
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

const PGBENCH: &str = "-c 32 -j 2; -M prepared for bookings, -M extended for availability";
const POOL: &str = "2 per core within 4..=16 (service default)";

async fn bench(opts: Options, db: &TestDb, redis: Redis, server_bin: PathBuf) -> Result<bool> {
    let mut results = Results::new(opts.quick);
    let p = &opts.profile;
    for (k, v) in [
        ("warmup_s", p.warmup.as_secs_f64().to_string()),
        ("measure_s", p.measure.as_secs_f64().to_string()),
        ("pgbench_s", p.pgbench_secs.to_string()),
        ("clients", ceiling::CLIENTS.to_string()),
        ("pgbench", PGBENCH.into()),
        ("DB_POOL_MAX_SIZE", var("DB_POOL_MAX_SIZE", POOL)),
        ("RUST_LOG", var("RUST_LOG", "info (service default)")),
        ("database", db.name.clone()),
    ] {
        results.settings.insert(k.to_owned(), v);
    }
    eprintln!("starting local-api against database {} ...", db.name);
    let database_url = db.url();
    let main = Server::start("main", &server_bin, &database_url, &opts.out_dir, &[]).await?;
    let pg = connect(&database_url).await?;
    // This session runs the integrity checks. Statistics are refreshed only at each scenario's
    // start, so after a ceiling stored tens of thousands of rows the planner still sees
    // near-empty tables, and a nested loop over them would take minutes. JIT off: the penalty of
    // a disabled nested loop pushes plans that need one (any call of book()) over
    // jit_above_cost, and each such statement then spends ~0.8 s compiling.
    pg.batch_execute("SET enable_nestloop = off; SET jit = off")
        .await?;
    results.postgres = pg.query_one("SELECT version()", &[]).await?.get(0);
    eprintln!("creating venues and events ...");
    let fixtures = fixtures::create(main.addr).await?;
    pg.batch_execute("VACUUM ANALYZE").await?;
    // Autovacuum off on the bench's tables: it would land in one side of a comparison and not
    // the other; each scenario analyzes at fixed points instead (the tables are insert-only).
    let sql = "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
               WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
    for row in pg.query(sql, &[]).await? {
        let table: String = row.get(0);
        let sql = format!("ALTER TABLE {table} SET (autovacuum_enabled = false)");
        pg.batch_execute(&sql).await?;
    }

    let mut bench = Bench {
        opts: opts.clone(),
        fixtures,
        database_url,
        pg,
        main,
        cached: None,
        server_bin,
        redis,
        results,
        herd_winners: Vec::new(),
        nginx: None,
    };
    for scenario in &opts.scenarios {
        match scenario {
            Scenario::Book => bench.book().await?,
            Scenario::BestAvailable => bench.best_available().await?,
            Scenario::Herd => bench.herd().await?,
            Scenario::Read => bench.read().await?,
            Scenario::Poll => bench.poll().await?,
            Scenario::Hot => bench.hot().await?,
            Scenario::Queue => bench.queue().await?,
            Scenario::Webhooks => bench.webhooks().await?,
        }
    }
    let mut results = bench.results;
    results.judge_goals(Profile::FULL.herd_sizes.iter().copied().max().unwrap_or(0));
    println!("{}", results.render());
    let json = opts.out_dir.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("wrote {}", json.display());
    Ok(results.integrity_passed())
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        let args = std::iter::once("seatbook-bench").chain(args.iter().copied());
        Options::try_parse_from(args).map(Options::settled)
    }

    #[test]
    fn everything_runs_by_default_and_scenarios_are_picked_by_name_in_a_fixed_order() {
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.scenarios, Scenario::value_variants().to_vec());
        assert_eq!(opts.out_dir, PathBuf::from("bench-results"));
        assert_eq!(opts.profile.herd_sizes, [50, 500, 5_000]);
        let opts = parse(&["--quick", "--scenarios", "webhooks,read,book,read"]).unwrap();
        let picked = [Scenario::Book, Scenario::Read, Scenario::Webhooks];
        assert_eq!(opts.scenarios, picked);
        assert_eq!(opts.profile.herd_sizes, [50, 200]);
        for wrong in [
            &["--scenarios", "book,nope"][..],
            &["--fast"],
            &["--scenarios"],
        ] {
            assert!(parse(wrong).is_err(), "{wrong:?}");
        }
    }
}
