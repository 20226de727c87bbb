//! The physical ceiling, measured on the same machine in the same run: pgbench running the very
//! SQL the service sends, and redis-benchmark for the cached read.
//!
//! The pgbench scripts are kept in bench/pgbench/ and compiled into this binary; `verify_scripts`
//! (run by a unit test and again at the start of every run) fails if a script's statement stops
//! being exactly `booking_fn::BOOK_SQL` (or `events_fn::AVAILABILITY_SQL`) with its parameters
//! replaced by the script's variables, so the ceiling cannot drift from the real service SQL.

use crate::stats::Percentiles;
use crate::Result;
use serde::Serialize;
use std::path::Path;
use std::process::Command;

pub const BOOK_1_SCRIPT: &str = include_str!("../pgbench/book_1.sql");
pub const BOOK_4_SCRIPT: &str = include_str!("../pgbench/book_4.sql");
pub const AVAILABILITY_SCRIPT: &str = include_str!("../pgbench/availability.sql");

/// pgbench concurrency: the same 32 clients the service scenarios use, on two threads (cores).
pub const CLIENTS: usize = 32;
const THREADS: usize = 2;

/// How each `BOOK_SQL` parameter (`$1`, `$2`, ...) is written in the pgbench script.
///
/// Each becomes the pgbench variable cast to the type the service's `query_typed` declares for
/// it: pgbench cannot declare parameter types, and a cast on an untyped parameter is how
/// PostgreSQL gives it the declared type. Two exceptions, both forced by pgbench: the seat array
/// is built from one variable per seat (pgbench variables are numbers or -D strings, never
/// arrays), and a parameter the service binds as NULL is written as that typed NULL (pgbench
/// cannot bind NULL; the unnamed statement is planned with its parameter values, so the plan is
/// the same). Parameters the statement does not use are simply never substituted.
fn book_params(seats: usize) -> Vec<String> {
    let array = (1..=seats)
        .map(|n| format!(":seat{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        // $1 event id, INT8
        ":event_id::bigint".into(),
        // $2 seat ids, INT8[]
        format!("ARRAY[{array}]::bigint[]"),
        // $3 user id, TEXT
        ":user_id::text".into(),
        // $4 booking status, TEXT (cast to booking_status by the statement): -D status=confirmed,
        // as for POST /api/v1/bookings
        ":status::text".into(),
        // $5 hold length in seconds, FLOAT8: NULL for a confirmed booking
        "NULL::float8".into(),
    ]
}

/// `BOOK_SQL` as the pgbench script must contain it for `seats` seats a booking.
pub fn pgbench_book_sql(seats: usize) -> String {
    let params = book_params(seats);
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    substitute(booking_fn::BOOK_SQL, &params)
}

/// What the service sends for a booking: the one statement, which is its own transaction (no
/// BEGIN/COMMIT round trips).
pub fn pgbench_book_transaction(seats: usize) -> String {
    format!("{};\n", pgbench_book_sql(seats))
}

/// Replaces every `$n` placeholder with `params[n - 1]`.
fn substitute(sql: &str, params: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        match digits.parse::<usize>() {
            Ok(n) if (1..=params.len()).contains(&n) => out.push_str(params[n - 1]),
            Ok(n) => panic!("BOOK_SQL uses ${n}, which ceiling::book_params does not know"),
            Err(_) => out.push('$'),
        }
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

const BLESS_HINT: &str = "Check that the new SQL still suits the ceiling (parameters: \
    ceiling::book_params), then rewrite the kept scripts' statements with \
    `SEATBOOK_BENCH_BLESS=1 cargo test -p seatbook-bench` and rebuild.";

/// `AVAILABILITY_SQL` as the pgbench script must contain it: `$1` (INT8) is the event.
pub fn pgbench_availability_sql() -> String {
    format!(
        "{};\n",
        substitute(events_fn::AVAILABILITY_SQL, &[":event_id::bigint"])
    )
}

/// Fails unless each kept booking script runs exactly `BOOK_SQL` and the availability script
/// exactly `AVAILABILITY_SQL`.
pub fn verify_scripts() -> Result<(), String> {
    if !AVAILABILITY_SCRIPT.contains(&pgbench_availability_sql()) {
        return Err(format!(
            "bench/pgbench/availability.sql no longer runs events_fn::AVAILABILITY_SQL. {BLESS_HINT}"
        ));
    }
    for (seats, script, file) in [
        (1, BOOK_1_SCRIPT, "book_1.sql"),
        (4, BOOK_4_SCRIPT, "book_4.sql"),
    ] {
        if !script.contains(&pgbench_book_transaction(seats)) {
            return Err(format!(
                "bench/pgbench/{file} no longer runs booking_fn::BOOK_SQL. {BLESS_HINT}"
            ));
        }
    }
    Ok(())
}

/// One pgbench run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchRun {
    pub name: String,
    pub command: String,
    pub tps: f64,
    pub transactions: u64,
    pub latency: Percentiles,
}

pub struct Pgbench {
    pub name: String,
    /// `prepared` for the booking ceilings; `extended` for the informational row that plans the
    /// statement on every execution, and for the availability ceiling.
    pub protocol: &'static str,
    pub script: &'static str,
    pub clients: usize,
    pub defines: Vec<(&'static str, String)>,
    pub seconds: u32,
}

impl Pgbench {
    /// The booking ceilings run with `-M prepared`: parsed and planned once per session, the best
    /// PostgreSQL can do with the statement. The service sends it unnamed (`query_typed`, proxy
    /// safe); the `book` function it calls keeps its inner plans per session, which is how the
    /// service gets near that ceiling without named statements.
    pub fn run(&self, database_url: &str, work_dir: &Path) -> Result<PgbenchRun> {
        let stem: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let script = work_dir.join(format!("{stem}.sql"));
        std::fs::write(&script, self.script)?;
        let log_dir = work_dir.join(format!("{stem}-log"));
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir)?;

        let mut args: Vec<String> = vec![
            "--no-vacuum".into(),
            format!("--protocol={}", self.protocol),
            format!("--client={}", self.clients),
            format!("--jobs={THREADS}"),
            format!("--time={}", self.seconds),
            format!("--file={}", script.display()),
            "--log".into(),
            format!("--log-prefix={}", log_dir.join("tx").display()),
        ];
        args.extend(
            self.defines
                .iter()
                .map(|(k, v)| format!("--define={k}={v}")),
        );
        args.push(database_url.to_owned());
        let command = format!("pgbench {}", args.join(" "));
        let output = Command::new("pgbench")
            .args(&args)
            .output()
            .map_err(|e| format!("could not run pgbench: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        std::fs::write(
            work_dir.join(format!("{stem}.out")),
            format!("$ {command}\n{stdout}{stderr}"),
        )?;
        let summary = parse_summary(&stdout);
        match summary {
            Some(s) if output.status.success() && s.failed == 0 && !stderr.contains("aborted") => {
                let latencies = read_latency_log(&log_dir)?;
                let _ = std::fs::remove_dir_all(&log_dir);
                Ok(PgbenchRun {
                    name: self.name.clone(),
                    command,
                    tps: s.tps,
                    transactions: s.transactions,
                    latency: Percentiles::from_micros(&latencies),
                })
            }
            _ => Err(format!(
                "pgbench {} failed ({}):\n$ {command}\n{stdout}{stderr}",
                self.name, output.status
            )
            .into()),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Summary {
    tps: f64,
    transactions: u64,
    failed: u64,
}

fn parse_summary(stdout: &str) -> Option<Summary> {
    let value = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    };
    let tps = value("tps = ")?.split_whitespace().next()?.parse().ok()?;
    let transactions = value("number of transactions actually processed:")?
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let failed = value("number of failed transactions:")
        .and_then(|v| v.split_whitespace().next())
        .map_or(Some(0), |n| n.parse().ok())?;
    Some(Summary {
        tps,
        transactions,
        failed,
    })
}

/// Per-transaction latencies (µs) from pgbench's --log files, one file per thread:
/// `client_id transaction_no latency_us script_no epoch epoch_us`.
fn read_latency_log(dir: &Path) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        latencies.extend(
            text.lines()
                .filter_map(|line| line.split_whitespace().nth(2))
                .filter_map(|us| us.parse::<u64>().ok()),
        );
    }
    Ok(latencies)
}

/// redis-benchmark's figure for one command.
#[derive(Debug, Clone, Serialize)]
pub struct RedisRun {
    pub name: String,
    pub command: String,
    pub rps: f64,
}

/// `redis-benchmark -c 32 -n <requests> -q` with `extra` arguments (`-t get`, or a command).
pub fn redis_benchmark(
    name: &str,
    host: &str,
    port: u16,
    requests: u32,
    extra: &[String],
) -> Result<RedisRun> {
    let mut args: Vec<String> = vec![
        "-h".into(),
        host.into(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        CLIENTS.to_string(),
        "-n".into(),
        requests.to_string(),
        "-q".into(),
    ];
    args.extend(extra.iter().cloned());
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.len() > 40 {
                "<payload>".into()
            } else {
                a.clone()
            }
        })
        .collect();
    let command = format!("redis-benchmark {}", shown.join(" "));
    let output = Command::new("redis-benchmark")
        .args(&args)
        .output()
        .map_err(|e| format!("could not run redis-benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rps = parse_redis_rps(&stdout).ok_or_else(|| {
        format!(
            "redis-benchmark gave no rate ({}):\n$ {command}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(RedisRun {
        name: name.to_owned(),
        command,
        rps,
    })
}

/// The last "<NAME>: <rps> requests per second" in -q output (progress lines are separated by
/// carriage returns and come first).
fn parse_redis_rps(stdout: &str) -> Option<f64> {
    stdout
        .split(['\r', '\n'])
        .filter(|line| line.contains("requests per second"))
        .filter_map(|line| {
            let after = line.split_once(": ")?.1;
            after.split_whitespace().next()?.parse().ok()
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ceiling's guarantee: the kept scripts run the booking path's very statement, with
    /// nothing else but pgbench's variable set-up before it.
    #[test]
    fn the_kept_booking_scripts_run_exactly_book_sql() {
        if bless() {
            return;
        }
        verify_scripts().unwrap();
        for (seats, script) in [(1, BOOK_1_SCRIPT), (4, BOOK_4_SCRIPT)] {
            let params = book_params(seats);
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            let expected = substitute(booking_fn::BOOK_SQL, &params);
            assert!(script.ends_with(&format!("{expected};\n")));
            let code = |text: &str| {
                text.lines()
                    .filter(|l| !l.starts_with("--") && !l.starts_with('\\') && !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(code(script), code(&pgbench_book_transaction(seats)));
        }
    }

    /// `SEATBOOK_BENCH_BLESS=1 cargo test -p seatbook-bench` rewrites the statement of the kept
    /// booking scripts from the current BOOK_SQL (their header and variables stay as they are).
    /// For after a deliberate change to the booking SQL, once `book_params` still fits it.
    fn bless() -> bool {
        if std::env::var_os("SEATBOOK_BENCH_BLESS").is_none() {
            return false;
        }
        for (seats, file) in [(1, "book_1.sql"), (4, "book_4.sql")] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pgbench")
                .join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            // The header: comments and pgbench's \set lines; the statement follows them.
            let header: String = text
                .lines()
                .take_while(|l| l.starts_with("--") || l.starts_with("\\set "))
                .map(|l| format!("{l}\n"))
                .collect();
            let blessed = format!("{header}{}", pgbench_book_transaction(seats));
            std::fs::write(&path, blessed).unwrap();
            eprintln!("rewrote {}; rebuild so the binary runs it", path.display());
        }
        // availability.sql: its leading comment lines, then the statement.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pgbench/availability.sql");
        let text = std::fs::read_to_string(&path).unwrap();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, header + &pgbench_availability_sql()).unwrap();
        true
    }

    #[test]
    fn every_variable_a_booking_script_uses_is_defined() {
        for script in [BOOK_1_SCRIPT, BOOK_4_SCRIPT, AVAILABILITY_SCRIPT] {
            let mut defined: Vec<String> = ["client_id", "event_base", "first_seat", "i", "status"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if script == AVAILABILITY_SCRIPT {
                defined.push("event_id".into());
            }
            for line in script.lines().filter(|l| !l.starts_with("--")) {
                if let Some(rest) = line.strip_prefix("\\set ") {
                    defined.push(rest.split_whitespace().next().unwrap().to_owned());
                }
                for var in variables(
                    line.strip_prefix("\\set ")
                        .map_or(line, |r| r.split_once(' ').map_or("", |(_, expr)| expr)),
                ) {
                    assert!(defined.contains(&var), "{var} is used before it is defined");
                }
            }
        }
    }

    /// pgbench variables (`:name`, not `::type`) in a line.
    fn variables(line: &str) -> Vec<String> {
        let bytes = line.as_bytes();
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b':' {
                if bytes.get(i + 1) == Some(&b':') {
                    i += 2;
                    continue;
                }
                let name: String = line[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name.clone());
                }
                i += 1 + name.len();
            } else {
                i += 1;
            }
        }
        found
    }

    /// The uncached availability ceiling runs the events function's very query, and nothing else.
    #[test]
    fn the_availability_script_runs_the_service_query() {
        if std::env::var_os("SEATBOOK_BENCH_BLESS").is_some() {
            return;
        }
        verify_scripts().unwrap();
        let code: Vec<&str> = AVAILABILITY_SCRIPT
            .lines()
            .filter(|l| !l.starts_with("--"))
            .collect();
        assert_eq!(code.join("\n") + "\n", pgbench_availability_sql());
    }

    #[test]
    fn placeholders_are_replaced_whole() {
        assert_eq!(substitute("a $1 b $2 $1", &["x", "y"]), "a x b y x");
        assert_eq!(substitute("cost $ 5", &["x"]), "cost $ 5");
    }

    #[test]
    fn pgbench_and_redis_benchmark_output_is_understood() {
        let out = "transaction type: book_1.sql\nnumber of transactions actually processed: 31234\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 10.2 ms\n\
                   initial connection time = 20.1 ms\ntps = 3123.456789 (without initial connection time)\n";
        assert_eq!(
            parse_summary(out),
            Some(Summary {
                tps: 3123.456789,
                transactions: 31234,
                failed: 0
            })
        );
        let redis = "GET: rps=81234.0 (overall: 80000.0) avg_msec=0.3\rGET: 98039.22 requests per second, p50=0.167 msec\n";
        assert_eq!(parse_redis_rps(redis), Some(98039.22));
    }
}
