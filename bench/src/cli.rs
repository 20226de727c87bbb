//! Command-line options and the two run profiles (full and `--quick`).

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: seatbook-bench [--quick] [--scenarios book,book-multi,herd,read,mixed,lifecycle,lambda,
                      poll,hot] [--out DIR]
                      [--server-bin PATH]

  --quick          short durations and small herds: a smoke test of the harness, not a measurement
  --scenarios LIST comma-separated subset of: book, book-multi, herd, read, mixed,
                   lifecycle, lambda, poll, hot (default: all)
  --out DIR        where results.json, latency.png and the logs go (default: bench-results)
  --server-bin P   the local-api binary (default: local-api next to this binary)

environment:
  BENCH_PG_URL     PostgreSQL server to use, without a database name
                   (default postgres://postgres@127.0.0.1:5432)
  BENCH_REDIS_URL  Redis for the cached read and redis-benchmark (default redis://127.0.0.1:6379)
  DB_POOL_MAX_SIZE passed through to the service (its default is 16; lambda's processes get 2)
  PGBOUNCER        the pgbouncer binary for lambda (default: on PATH, or /usr/sbin/pgbouncer)
  RUST_LOG         passed through to the service (its default is info)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Book,
        Scenario::BookMulti,
        Scenario::Herd,
        Scenario::Read,
        Scenario::Mixed,
        Scenario::Lifecycle,
        Scenario::Lambda,
        Scenario::Poll,
        Scenario::Hot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Book => "book",
            Scenario::BookMulti => "book-multi",
            Scenario::Herd => "herd",
            Scenario::Read => "read",
            Scenario::Mixed => "mixed",
            Scenario::Lifecycle => "lifecycle",
            Scenario::Lambda => "lambda",
            Scenario::Poll => "poll",
            Scenario::Hot => "hot",
        }
    }

    fn parse(raw: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == raw)
            .ok_or_else(|| format!("unknown scenario {raw:?}"))
    }
}

/// How long things run. The full profile keeps the whole run under about three minutes on two
/// cores; the quick one only proves the harness works end to end.
#[derive(Debug, Clone)]
pub struct Profile {
    pub warmup: Duration,
    pub measure: Duration,
    pub pgbench_secs: u32,
    pub redis_requests: u32,
    pub herd_sizes: Vec<usize>,
    /// Clients in `lifecycle`.
    pub lifecycle_clients: usize,
    /// Server processes (execution environments) the `lambda` herd is queued for.
    pub lambda_herd_processes: usize,
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
        }
    }

    pub fn quick() -> Profile {
        Profile {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
            pgbench_secs: 2,
            redis_requests: 20_000,
            herd_sizes: vec![50, 200],
            lifecycle_clients: 8,
            lambda_herd_processes: 32,
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
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut quick = false;
        let mut scenarios: Vec<Scenario> = Scenario::ALL.to_vec();
        let mut out_dir = PathBuf::from("bench-results");
        let mut server_bin = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--quick" => quick = true,
                "--scenarios" => {
                    scenarios = value("--scenarios")?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Scenario::parse)
                        .collect::<Result<_, _>>()?;
                    scenarios.sort();
                    scenarios.dedup();
                    if scenarios.is_empty() {
                        return Err("--scenarios needs at least one scenario".to_owned());
                    }
                }
                "--out" => out_dir = PathBuf::from(value("--out")?),
                "--server-bin" => server_bin = Some(PathBuf::from(value("--server-bin")?)),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Options {
            quick,
            profile: if quick {
                Profile::quick()
            } else {
                Profile::full()
            },
            scenarios,
            out_dir,
            server_bin,
        })
    }

    pub fn runs(&self, scenario: Scenario) -> bool {
        self.scenarios.contains(&scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn everything_runs_by_default() {
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.scenarios, Scenario::ALL.to_vec());
        assert!(!opts.quick);
    }

    #[test]
    fn scenarios_are_picked_by_name_in_a_fixed_order() {
        let opts = parse(&["--quick", "--scenarios", "read,book"]).unwrap();
        assert_eq!(opts.scenarios, vec![Scenario::Book, Scenario::Read]);
        assert!(opts.quick);
        let opts = parse(&["--scenarios=herd"]).unwrap();
        assert_eq!(opts.scenarios, vec![Scenario::Herd]);
        let opts = parse(&["--scenarios", "lifecycle,mixed"]).unwrap();
        assert_eq!(opts.scenarios, vec![Scenario::Mixed, Scenario::Lifecycle]);
        // lambda runs last: it compares itself with book and herd of the same run.
        let opts = parse(&["--scenarios", "lambda,herd,book"]).unwrap();
        assert_eq!(
            opts.scenarios,
            vec![Scenario::Book, Scenario::Herd, Scenario::Lambda]
        );
    }

    #[test]
    fn unknown_scenarios_and_flags_are_refused() {
        assert!(parse(&["--scenarios", "book,nope"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--scenarios"]).is_err());
    }
}
