//! The results: what was measured, the stdout tables, the goals, and results.json.

use crate::ceiling::{PgbenchRun, RedisRun};
use crate::integrity::Check;
use crate::stats::Percentiles;
use crate::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub started_at: String,
    pub quick: bool,
    pub settings: BTreeMap<String, String>,
    pub throughput: Vec<Throughput>,
    pub open_loop: Vec<OpenLoop>,
    pub pgbench: Vec<PgbenchRun>,
    pub redis: Vec<RedisRun>,
    pub herds: Vec<Herd>,
    pub lambda: Option<Lambda>,
    pub cpu: Vec<CpuUse>,
    pub process: Vec<Figure>,
    pub integrity: Vec<Check>,
    pub goals: Vec<Goal>,
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub loadavg_at_start: String,
    pub postgres: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
                .unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            loadavg_at_start: read("/proc/loadavg").trim().to_owned(),
            postgres: String::new(),
        }
    }
}

/// One throughput figure beside its ceiling.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub scenario: String,
    pub rate: f64,
    pub unit: String,
    /// A second rate worth showing (seats/s for multi-seat bookings).
    pub also: Option<String>,
    pub ceiling: Option<String>,
    pub ceiling_rate: Option<f64>,
    pub ratio: Option<f64>,
    pub latency: Percentiles,
    pub requests: u64,
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// The load generator's CPU use during the window, in % of one core.
    pub loadgen_cpu_pct: f64,
    pub first_problem: Option<String>,
}

impl Throughput {
    pub fn against(mut self, name: &str, ceiling: f64) -> Throughput {
        self.ceiling = Some(name.to_owned());
        self.ceiling_rate = Some(ceiling);
        self.ratio = (ceiling > 0.0).then(|| self.rate / ceiling);
        self
    }
}

/// One open-loop run: a fixed arrival rate, latency from each request's intended send time.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    pub scenario: String,
    /// The rate as a share of `closed_loop_rate` (0.5, 0.8).
    pub load: f64,
    /// The closed-loop maximum measured just before, on the same server.
    pub closed_loop_rate: f64,
    pub target_rate: f64,
    /// Answers that arrived inside the window, per second.
    pub achieved_rate: f64,
    pub unit: String,
    pub connections: usize,
    /// From the intended send time to the complete answer, over requests intended inside the
    /// window (answers arriving after the window included).
    pub latency: Percentiles,
    /// Requests intended inside the window, and how many of them were answered.
    pub scheduled: u64,
    pub answered: u64,
    /// Sent 2 ms or more after their intended time (mostly: their connection still waited for
    /// the previous answer), and of those, the ones whose connection was free: the load
    /// generator itself was behind.
    pub late_sends: u64,
    pub late_loadgen: u64,
    /// How late sends on a free connection were (the load generator's own lag).
    pub loadgen_lag_p99_ms: f64,
    pub loadgen_lag_max_ms: f64,
    /// Intended inside the window and never sent (a backlog left at the drain deadline).
    pub unsent: u64,
    pub errors: u64,
    pub loadgen_cpu_pct: f64,
    pub first_problem: Option<String>,
}

/// The `lambda` scenario's set-up and its booking figure beside the direct run's.
#[derive(Debug, Clone, Serialize)]
pub struct Lambda {
    /// local-api processes started (each `DB_POOL_MAX_SIZE=2`, one request at a time).
    pub processes: usize,
    /// Closed-loop booking clients, each owning one process.
    pub book_clients: usize,
    /// Processes the herd was queued for.
    pub herd_processes: usize,
    pub pool_per_process: usize,
    /// The RDS Proxy stand-in.
    pub proxy: String,
    pub proxy_server_connections: usize,
    pub book_rate: f64,
    /// The `book` scenario's rate in the same run (direct: one local-api, 16 connections).
    pub direct_book_rate: Option<f64>,
    /// pgbench `book-1` (`-M prepared`, 32 clients) in the same run.
    pub ceiling_rate: Option<f64>,
    pub rss_per_process_max_mb: f64,
    pub rss_total_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Herd {
    /// `direct` (the main server) or `lambda` (queued for the fleet, through PgBouncer).
    pub route: String,
    pub size: usize,
    pub seat_id: i64,
    pub created: usize,
    pub conflicts: usize,
    pub other: BTreeMap<String, usize>,
    pub unanswered: usize,
    pub connect_ms: f64,
    /// From release until the last answer arrived; only meaningful when all were answered.
    pub all_answered_ms: f64,
    pub latency: Percentiles,
}

impl Herd {
    pub fn as_asserted(&self) -> bool {
        self.created == 1 && self.conflicts == self.size - 1 && self.unanswered == 0
    }
}

/// Where the CPU went during one measurement window (% of one core; the machine in % of all
/// cores, which includes anyone else's load).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub scenario: String,
    pub server_pct: f64,
    pub postgres_pct: f64,
    pub loadgen_pct: f64,
    pub machine_busy_pct: f64,
    pub server_ms_per_request: f64,
    pub postgres_ms_per_request: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub actual: String,
    pub verdict: &'static str,
}

impl Results {
    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        self.process.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    fn find(&self, scenario: &str) -> Option<&Throughput> {
        self.throughput.iter().find(|t| t.scenario == scenario)
    }

    fn find_figure(&self, name: &str) -> Option<f64> {
        self.process
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// The three goals, each PASS, MISS or SKIP (scenario not run).
    pub fn judge_goals(&mut self, herd_target: usize) {
        let mut goals = Vec::new();
        goals.push(
            match self.find("book").and_then(|t| t.ratio.map(|r| (t, r))) {
                Some((t, ratio)) => Goal {
                    goal: "book >= 0.8 x pgbench".into(),
                    actual: format!(
                        "{:.0} bookings/s = {ratio:.2} x {:.0} tx/s",
                        t.rate,
                        t.ceiling_rate.unwrap_or_default()
                    ),
                    verdict: verdict(ratio >= 0.8),
                },
                None => skipped("book >= 0.8 x pgbench"),
            },
        );
        let herd_goal = format!("herd {herd_target}: one winner, all answered, p99 < 1 s");
        goals.push(
            match self
                .herds
                .iter()
                .filter(|h| h.route == "direct")
                .max_by_key(|h| h.size)
            {
                Some(h) => Goal {
                    goal: if h.size == herd_target {
                        herd_goal
                    } else {
                        format!("{herd_goal} (quick run: checked on herd {})", h.size)
                    },
                    actual: format!(
                        "{} winner(s), {} x 409, {} other, {} unanswered, p99 {:.0} ms",
                        h.created,
                        h.conflicts,
                        h.other.values().sum::<usize>(),
                        h.unanswered,
                        h.latency.p99_ms
                    ),
                    verdict: verdict(h.as_asserted() && h.latency.p99_ms < 1000.0),
                },
                None => skipped(&herd_goal),
            },
        );
        goals.push(match self.find_figure("server peak RSS under mixed") {
            Some(mib) => Goal {
                goal: "server RSS < 64 MB under mixed".into(),
                actual: format!("peak {mib:.1} MB"),
                verdict: verdict(mib < 64.0),
            },
            None => skipped("server RSS < 64 MB under mixed"),
        });
        // Goals a scenario judged itself (`hot`) come after these.
        goals.append(&mut self.goals);
        self.goals = goals;
    }

    pub fn integrity_passed(&self) -> bool {
        self.integrity.iter().all(Check::passed)
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Everything a reader needs on stdout, as plain-text tables.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "\nseatbook benchmark{}: {} x {}, kernel {}, load at start {}\n{}\n",
            if self.quick {
                " (QUICK: not a measurement)"
            } else {
                ""
            },
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.loadavg_at_start,
            m.postgres
        ));
        out.push_str(&format!(
            "settings: {}\n\n",
            self.settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        out.push_str("THROUGHPUT (service over HTTP) beside its CEILING (same SQL / same store, same machine)\n");
        let mut table = vec![row(&[
            "scenario",
            "service",
            "ceiling",
            "ratio",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "answers",
            "errors",
            "loadgen cpu",
        ])];
        for t in &self.throughput {
            let mut service = format!("{:.0} {}", t.rate, t.unit);
            if let Some(also) = &t.also {
                service.push_str(&format!(" ({also})"));
            }
            table.push(row(&[
                &t.scenario,
                &service,
                &match (&t.ceiling, t.ceiling_rate) {
                    (Some(name), Some(rate)) => format!("{rate:.0}/s {name}"),
                    _ => "-".into(),
                },
                &t.ratio.map_or("-".into(), |r| format!("{r:.2}")),
                &ms(t.latency.p50_ms),
                &ms(t.latency.p95_ms),
                &ms(t.latency.p99_ms),
                &t.requests.to_string(),
                &t.errors.to_string(),
                &format!("{:.0}%", t.loadgen_cpu_pct),
            ]));
        }
        out.push_str(&tabulate(&table));

        if !self.open_loop.is_empty() {
            out.push_str(&self.render_open_loop());
        }

        if !self.pgbench.is_empty() || !self.redis.is_empty() {
            out.push_str("\nCEILINGS\n");
            let mut table = vec![row(&[
                "ceiling", "rate", "p50 ms", "p95 ms", "p99 ms", "count",
            ])];
            for p in &self.pgbench {
                table.push(row(&[
                    &format!("pgbench {}", p.name),
                    &format!("{:.0} tx/s", p.tps),
                    &ms(p.latency.p50_ms),
                    &ms(p.latency.p95_ms),
                    &ms(p.latency.p99_ms),
                    &p.transactions.to_string(),
                ]));
            }
            for r in &self.redis {
                table.push(row(&[
                    &format!("redis-benchmark {}", r.name),
                    &format!("{:.0} req/s", r.rps),
                    "-",
                    "-",
                    "-",
                    "-",
                ]));
            }
            out.push_str(&tabulate(&table));
        }

        if !self.herds.is_empty() {
            out.push_str("\nHERD (N simultaneous POSTs for one seat, connections opened first)\n");
            let mut table = vec![row(&[
                "herd",
                "route",
                "201",
                "409",
                "other",
                "unanswered",
                "connect ms",
                "all answered ms",
                "p50 ms",
                "p99 ms",
                "as asserted",
            ])];
            for h in &self.herds {
                table.push(row(&[
                    &h.size.to_string(),
                    &h.route,
                    &h.created.to_string(),
                    &h.conflicts.to_string(),
                    &if h.other.is_empty() {
                        "0".into()
                    } else {
                        format!("{:?}", h.other)
                    },
                    &h.unanswered.to_string(),
                    &format!("{:.0}", h.connect_ms),
                    &format!("{:.0}", h.all_answered_ms),
                    &ms(h.latency.p50_ms),
                    &ms(h.latency.p99_ms),
                    if h.as_asserted() { "yes" } else { "NO" },
                ]));
            }
            out.push_str(&tabulate(&table));
        }

        if let Some(lambda) = &self.lambda {
            out.push_str(&self.render_lambda(lambda));
        }

        if !self.cpu.is_empty() {
            out.push_str(
                "\nCPU during each window (% of one core; machine: % of all cores, anyone's load included)\n",
            );
            let mut table = vec![row(&[
                "scenario",
                "server",
                "PostgreSQL",
                "load generator",
                "machine busy",
                "server ms/req",
                "PostgreSQL ms/req",
            ])];
            for c in &self.cpu {
                table.push(row(&[
                    &c.scenario,
                    &format!("{:.0}%", c.server_pct),
                    &format!("{:.0}%", c.postgres_pct),
                    &format!("{:.0}%", c.loadgen_pct),
                    &format!("{:.0}%", c.machine_busy_pct),
                    &format!("{:.3}", c.server_ms_per_request),
                    &format!("{:.3}", c.postgres_ms_per_request),
                ]));
            }
            out.push_str(&tabulate(&table));
        }

        if !self.process.is_empty() {
            out.push_str("\nSERVER PROCESS\n");
            let table: Vec<Vec<String>> = self
                .process
                .iter()
                .map(|f| row(&[&f.name, &format!("{:.2} {}", f.value, f.unit)]))
                .collect();
            out.push_str(&tabulate(&table));
        }

        out.push_str("\nINTEGRITY\n");
        for c in &self.integrity {
            out.push_str(&format!(
                "  {:<4} {} ({} bookings, {} tickets checked)\n",
                if c.passed() { "ok" } else { "FAIL" },
                c.scope,
                c.bookings_checked,
                c.tickets_checked
            ));
            for v in c.violations.iter().take(10) {
                out.push_str(&format!("       VIOLATION: {v}\n"));
            }
        }

        out.push_str("\nGOALS\n");
        for g in &self.goals {
            out.push_str(&format!("  {:<4} {:<55} {}\n", g.verdict, g.goal, g.actual));
        }
        out
    }
}

impl Results {
    fn render_open_loop(&self) -> String {
        let mut out = String::from(
            "\nOPEN LOOP (fixed arrival rate, a share of the closed-loop maximum above; latency from \
             each request's INTENDED send time)\n",
        );
        let mut table = vec![row(&[
            "scenario",
            "load",
            "target/s",
            "achieved/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "answered",
            "late sends",
            "of which loadgen",
            "loadgen lag max ms",
            "unsent",
            "errors",
        ])];
        for o in &self.open_loop {
            table.push(row(&[
                &o.scenario,
                &format!("{:.0}% of {:.0}", o.load * 100.0, o.closed_loop_rate),
                &format!("{:.0}", o.target_rate),
                &format!("{:.0}", o.achieved_rate),
                &ms(o.latency.p50_ms),
                &ms(o.latency.p90_ms),
                &ms(o.latency.p99_ms),
                &ms(o.latency.p999_ms),
                &ms(o.latency.max_ms),
                &format!("{}/{}", o.answered, o.scheduled),
                &o.late_sends.to_string(),
                &o.late_loadgen.to_string(),
                &ms(o.loadgen_lag_max_ms),
                &o.unsent.to_string(),
                &o.errors.to_string(),
            ]));
        }
        out.push_str(&tabulate(&table));
        out
    }

    fn render_lambda(&self, l: &Lambda) -> String {
        let mut out = format!(
            "\nLAMBDA-SHAPED ({} local-api processes, DB_POOL_MAX_SIZE={} each, one request at a time \
             each, through {})\n",
            l.processes, l.pool_per_process, l.proxy
        );
        let ratio = |of: Option<f64>| match of {
            Some(rate) if rate > 0.0 => {
                format!("{:.0}/s, lambda = {:.2} x", rate, l.book_rate / rate)
            }
            _ => "not measured in this run".to_owned(),
        };
        out.push_str(&format!(
            "  book ({} clients, one process each): {:.0} bookings/s\n    direct book (1 local-api, \
             16 connections): {}\n    pgbench book-1 -M prepared: {}\n",
            l.book_clients,
            l.book_rate,
            ratio(l.direct_book_rate),
            ratio(l.ceiling_rate)
        ));
        for lambda in self.herds.iter().filter(|h| h.route == "lambda") {
            let direct = self
                .herds
                .iter()
                .find(|h| h.route == "direct" && h.size == lambda.size);
            let line = |h: &Herd| {
                format!(
                    "all answered {:.0} ms, p50 {} ms, p99 {} ms, {} x 201, {} x 409, {} other, {} \
                     unanswered, as asserted: {}",
                    h.all_answered_ms,
                    ms(h.latency.p50_ms),
                    ms(h.latency.p99_ms),
                    h.created,
                    h.conflicts,
                    h.other.values().sum::<usize>(),
                    h.unanswered,
                    if h.as_asserted() { "yes" } else { "NO" }
                )
            };
            out.push_str(&format!(
                "  herd {} (queued for {} processes):\n    lambda: {}\n    direct: {}\n",
                lambda.size,
                l.herd_processes,
                line(lambda),
                direct.map_or("not run in this run".to_owned(), line)
            ));
        }
        out.push_str(&format!(
            "  memory: {:.1} MB RSS per process at most, {:.0} MB for the whole fleet\n",
            l.rss_per_process_max_mb, l.rss_total_mb
        ));
        out
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn skipped(goal: &str) -> Goal {
    Goal {
        goal: goal.to_owned(),
        actual: "scenario not run".into(),
        verdict: "SKIP",
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart, indented by two.
fn tabulate(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(rate: f64, ceiling: f64) -> Throughput {
        Throughput {
            scenario: "book".into(),
            rate,
            unit: "bookings/s".into(),
            also: None,
            ceiling: None,
            ceiling_rate: None,
            ratio: None,
            latency: Percentiles::default(),
            requests: 10,
            errors: 0,
            statuses: BTreeMap::new(),
            loadgen_cpu_pct: 5.0,
            first_problem: None,
        }
        .against("pgbench book-1", ceiling)
    }

    #[test]
    fn the_book_goal_compares_against_the_ceiling() {
        let mut results = Results {
            throughput: vec![book(900.0, 1000.0)],
            ..Results::default()
        };
        results.judge_goals(5000);
        assert_eq!(results.goals[0].verdict, "PASS");
        assert_eq!(results.goals[1].verdict, "SKIP");
        results.throughput = vec![book(700.0, 1000.0)];
        results.judge_goals(5000);
        assert_eq!(results.goals[0].verdict, "MISS");
    }

    #[test]
    fn a_herd_passes_only_with_one_winner_and_every_other_answer_a_409() {
        let herd = |created, conflicts, unanswered| Herd {
            route: "direct".into(),
            size: 50,
            seat_id: 1,
            created,
            conflicts,
            other: BTreeMap::new(),
            unanswered,
            connect_ms: 1.0,
            all_answered_ms: 5.0,
            latency: Percentiles::default(),
        };
        assert!(herd(1, 49, 0).as_asserted());
        assert!(!herd(2, 48, 0).as_asserted());
        assert!(!herd(1, 48, 1).as_asserted());
        assert!(!herd(0, 50, 0).as_asserted());
    }

    #[test]
    fn the_herd_goal_is_judged_on_the_direct_herd_only() {
        let herd = |route: &str, size, created| Herd {
            route: route.into(),
            size,
            seat_id: 1,
            created,
            conflicts: size - created,
            other: BTreeMap::new(),
            unanswered: 0,
            connect_ms: 1.0,
            all_answered_ms: 5.0,
            latency: Percentiles::default(),
        };
        let mut results = Results {
            herds: vec![herd("direct", 5000, 1), herd("lambda", 5000, 2)],
            ..Results::default()
        };
        results.judge_goals(5000);
        assert_eq!(results.goals[1].verdict, "PASS");
        results.herds = vec![herd("lambda", 5000, 1)];
        results.judge_goals(5000);
        assert_eq!(results.goals[1].verdict, "SKIP");
    }

    #[test]
    fn tables_line_up() {
        let text = tabulate(&[row(&["a", "bbb"]), row(&["cccc", "d"])]);
        assert_eq!(text, "  a     bbb\n  cccc  d\n");
    }
}
