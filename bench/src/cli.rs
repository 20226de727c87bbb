//! Command-line options (clap) and the two run profiles (full and `--quick`).

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const ENVIRONMENT: &str = "\
environment:
  BENCH_PG_URL     PostgreSQL server, without a database name (default postgres://postgres@127.0.0.1:5432)
  BENCH_REDIS_URL  Redis for the cached reads and redis-benchmark (default redis://127.0.0.1:6379)
  DB_POOL_MAX_SIZE passed through to the service (its default is 16; lambda's processes get 2)
  PGBOUNCER        the pgbouncer binary for lambda (default: on PATH, or /usr/sbin/pgbouncer)
  RUST_LOG         passed through to the service (its default is info)";

/// In run order: `lambda` compares itself with `book` and `herd` of the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    Book,
    BookMulti,
    Herd,
    Read,
    Mixed,
    Lifecycle,
    Lambda,
    Poll,
    Hot,
    Webhooks,
}

/// Measures the seat-booking service over HTTP beside its ceilings (pgbench, redis-benchmark,
/// nginx). See bench/README.md.
#[derive(Debug, Clone, Parser)]
#[command(name = "seatbook-bench", after_help = ENVIRONMENT)]
struct Args {
    /// Short durations and small herds: a smoke test of the harness, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Comma-separated subset of the scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Where results.json and the logs go.
    #[arg(long = "out", default_value = "bench-results")]
    out_dir: PathBuf,
    /// The local-api binary (default: local-api next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// How long things run: the full profile measures; the quick one only proves the harness works.
#[derive(Debug, Clone)]
pub struct Profile {
    pub warmup: Duration,
    pub measure: Duration,
    pub pgbench_secs: u32,
    pub redis_requests: u32,
    pub herd_sizes: Vec<usize>,
    pub lifecycle_clients: usize,
    /// Server processes (execution environments) the `lambda` herd is queued for.
    pub lambda_herd_processes: usize,
    /// Bookings whose webhooks `webhooks` delivers.
    pub webhooks: usize,
}

impl Profile {
    pub fn full() -> Profile {
        Profile {
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(10),
            pgbench_secs: 10,
            redis_requests: 200_000,
            herd_sizes: vec![50, 500, 5_000],
            lifecycle_clients: 32,
            lambda_herd_processes: 64,
            webhooks: 3_000,
        }
    }

    fn quick() -> Profile {
        Profile {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
            pgbench_secs: 2,
            redis_requests: 20_000,
            herd_sizes: vec![50, 200],
            lifecycle_clients: 8,
            lambda_herd_processes: 32,
            webhooks: 200,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub profile: Profile,
    pub scenarios: Vec<Scenario>,
    pub out_dir: PathBuf,
    pub server_bin: Option<PathBuf>,
}

impl Options {
    /// Parses the arguments; exits with clap's message on a mistake.
    pub fn parse() -> Options {
        Options::from(Args::parse())
    }

    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

impl From<Args> for Options {
    fn from(args: Args) -> Options {
        let mut scenarios = args.scenarios;
        if scenarios.is_empty() {
            scenarios = Scenario::value_variants().to_vec();
        }
        scenarios.sort();
        scenarios.dedup();
        let profile = if args.quick {
            Profile::quick()
        } else {
            Profile::full()
        };
        Options {
            quick: args.quick,
            profile,
            scenarios,
            out_dir: args.out_dir,
            server_bin: args.server_bin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Args::try_parse_from(std::iter::once("seatbook-bench").chain(args.iter().copied()))
            .map(Options::from)
    }

    #[test]
    fn everything_runs_by_default_and_scenarios_are_picked_by_name_in_a_fixed_order() {
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.scenarios, Scenario::value_variants().to_vec());
        assert_eq!(
            (opts.quick, opts.out_dir),
            (false, PathBuf::from("bench-results"))
        );
        let opts = parse(&["--quick", "--scenarios", "webhooks,read,book"]).unwrap();
        assert_eq!(
            opts.scenarios,
            [Scenario::Book, Scenario::Read, Scenario::Webhooks]
        );
        assert!(opts.quick);
        let opts = parse(&["--scenarios=herd,book-multi"]).unwrap();
        assert_eq!(opts.scenarios, [Scenario::BookMulti, Scenario::Herd]);
        for wrong in [
            &["--scenarios", "book,nope"][..],
            &["--fast"],
            &["--scenarios"],
        ] {
            assert!(parse(wrong).is_err(), "{wrong:?}");
        }
    }
}
