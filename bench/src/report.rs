//! The results: what was measured, the stdout tables, the goals, and results.json.

use crate::ceiling::{PgbenchRun, RedisRun};
use crate::integrity::Check;
use crate::stats::Percentiles;
use crate::Result;
use comfy_table::Table;
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
    /// `book` and `book-multi` per venue size, beside both pgbench ceilings.
    pub venues: Vec<VenueBooking>,
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

/// A booking scenario on one venue: the service (closed loop) and both ceilings of the same run.
#[derive(Debug, Clone, Serialize)]
pub struct VenueBooking {
    pub scenario: String,
    pub seats_per_booking: usize,
    pub venue_seats: i64,
    pub service: f64,
    /// pgbench -M prepared of the one-statement reference booking (bench/pgbench/reference.sql).
    pub reference: f64,
    /// pgbench -M prepared of `book()` as the service calls it.
    pub book_fn: f64,
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
    /// pgbench `reference-1 @40k` (`-M prepared`, 32 clients) in the same run.
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

    /// The issues' goals, each PASS, MISS or SKIP (scenario not run); goals a scenario judged
    /// itself (`hot`) follow.
    pub fn judge_goals(&mut self, herd_target: usize) {
        let book: Vec<&VenueBooking> = self
            .venues
            .iter()
            .filter(|v| v.scenario == "book")
            .collect();
        let big = book.iter().max_by_key(|v| v.venue_seats);
        let small = book.iter().min_by_key(|v| v.venue_seats);
        let (b, s) = (
            big.map_or("@40k".into(), |v| size_label(v.venue_seats)),
            small.map_or("@500".into(), |v| size_label(v.venue_seats)),
        );
        let pair = |f: fn(&VenueBooking) -> f64| big.zip(small).map(|(b, s)| (f(b), f(s)));
        let mut goals = vec![
            ratio_goal(
                &format!("book() {b} >= 0.9 x book() {s} (pgbench)"),
                pair(|v| v.book_fn).filter(|_| book.len() > 1),
                0.9,
            ),
            ratio_goal(
                &format!("book {b} >= 0.8 x reference {b}"),
                big.map(|v| (v.service, v.reference)),
                0.8,
            ),
        ];
        for (scenario, shape) in [("read-cached", "plain"), ("poll-gzip", "gzip")] {
            let t = self.find(scenario);
            goals.push(ratio_goal(
                &format!("{scenario} >= 0.5 x nginx ({shape})"),
                t.and_then(|t| Some((t.rate, t.ceiling_rate?))),
                0.5,
            ));
        }
        let herd_goal = format!("herd {herd_target}: one winner, the rest 409, p99 < 500 ms");
        let direct = self.herds.iter().filter(|h| h.route == "direct");
        goals.push(match direct.max_by_key(|h| h.size) {
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
                verdict: verdict(h.as_asserted() && h.latency.p99_ms < 500.0),
            },
            None => skipped(&herd_goal),
        });
        let rss = "server RSS < 64 MB under mixed";
        goals.push(match self.find_figure("server peak RSS under mixed") {
            Some(mb) => Goal {
                goal: rss.into(),
                actual: format!("peak {mb:.1} MB"),
                verdict: verdict(mb < 64.0),
            },
            None => skipped(rss),
        });
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
        let m = &self.machine;
        let quick = if self.quick {
            " (QUICK: not a measurement)"
        } else {
            ""
        };
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut out = format!(
            "\nseatbook benchmark{quick}: {} x {}, kernel {}, load at start {}\n{}\nsettings: {}\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.loadavg_at_start,
            m.postgres,
            settings.join(", ")
        );
        let mut section = |title: &str, table: Table| {
            if !table.is_empty() {
                out.push_str(&format!("\n{title}\n{}", lines(&table)));
            }
        };
        section(
            "THROUGHPUT (service over HTTP) beside its CEILING (same SQL / same bytes, same machine)",
            table(
                &["scenario", "service", "ceiling", "ratio", "p50 ms", "p95 ms", "p99 ms", "answers", "errors", "loadgen cpu"],
                self.throughput.iter().map(|t| {
                    let also = t.also.as_ref().map_or(String::new(), |a| format!(" ({a})"));
                    vec![
                        t.scenario.clone(),
                        format!("{:.0} {}{also}", t.rate, t.unit),
                        match (&t.ceiling, t.ceiling_rate) {
                            (Some(name), Some(rate)) => format!("{rate:.0}/s {name}"),
                            _ => "-".into(),
                        },
                        t.ratio.map_or("-".into(), |r| format!("{r:.2}")),
                        ms(t.latency.p50_ms),
                        ms(t.latency.p95_ms),
                        ms(t.latency.p99_ms),
                        t.requests.to_string(),
                        t.errors.to_string(),
                        format!("{:.0}%", t.loadgen_cpu_pct),
                    ]
                }),
            ),
        );
        section(
            "BOOKING BY VENUE SIZE (service: closed loop, 32 clients; ceilings: pgbench -M prepared, \
             32 clients, the same kind of seats)",
            table(
                &["scenario", "venue", "service/s", "reference/s", "book()/s", "service / reference", "book() / reference"],
                self.venues.iter().map(|v| {
                    vec![
                        v.scenario.clone(),
                        format!("{} seats", v.venue_seats),
                        format!("{:.0}", v.service),
                        format!("{:.0}", v.reference),
                        format!("{:.0}", v.book_fn),
                        ratio(v.service, v.reference),
                        ratio(v.book_fn, v.reference),
                    ]
                }),
            ),
        );
        out.push_str(&self.venue_ratios());
        let mut section = |title: &str, table: Table| {
            if !table.is_empty() {
                out.push_str(&format!("\n{title}\n{}", lines(&table)));
            }
        };
        section(
            "OPEN LOOP (fixed arrival rate, a share of the closed-loop maximum above; latency from \
             each request's INTENDED send time)",
            table(
                &["scenario", "load", "target/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "answered", "late sends", "of which loadgen", "loadgen lag max ms", "unsent", "errors"],
                self.open_loop.iter().map(|o| {
                    vec![
                        o.scenario.clone(),
                        format!("{:.0}% of {:.0}", o.load * 100.0, o.closed_loop_rate),
                        format!("{:.0}", o.target_rate),
                        format!("{:.0}", o.achieved_rate),
                        ms(o.latency.p50_ms),
                        ms(o.latency.p90_ms),
                        ms(o.latency.p99_ms),
                        ms(o.latency.p999_ms),
                        ms(o.latency.max_ms),
                        format!("{}/{}", o.answered, o.scheduled),
                        o.late_sends.to_string(),
                        o.late_loadgen.to_string(),
                        ms(o.loadgen_lag_max_ms),
                        o.unsent.to_string(),
                        o.errors.to_string(),
                    ]
                }),
            ),
        );
        let pgbench = self.pgbench.iter().map(|p| {
            vec![
                format!("pgbench {}", p.name),
                format!("{:.0} tx/s", p.tps),
                ms(p.latency.p50_ms),
                ms(p.latency.p95_ms),
                ms(p.latency.p99_ms),
                p.transactions.to_string(),
            ]
        });
        let redis = self.redis.iter().map(|r| {
            let mut row = vec![
                format!("redis-benchmark {}", r.name),
                format!("{:.0} req/s", r.rps),
            ];
            row.extend(["-"; 4].map(String::from));
            row
        });
        section(
            "CEILINGS",
            table(
                &["ceiling", "rate", "p50 ms", "p95 ms", "p99 ms", "count"],
                pgbench.chain(redis),
            ),
        );
        section(
            "HERD (N simultaneous POSTs for one seat, connections opened first)",
            table(
                &[
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
                ],
                self.herds.iter().map(|h| {
                    vec![
                        h.size.to_string(),
                        h.route.clone(),
                        h.created.to_string(),
                        h.conflicts.to_string(),
                        if h.other.is_empty() {
                            "0".into()
                        } else {
                            format!("{:?}", h.other)
                        },
                        h.unanswered.to_string(),
                        format!("{:.0}", h.connect_ms),
                        format!("{:.0}", h.all_answered_ms),
                        ms(h.latency.p50_ms),
                        ms(h.latency.p99_ms),
                        (if h.as_asserted() { "yes" } else { "NO" }).into(),
                    ]
                }),
            ),
        );
        if let Some(lambda) = &self.lambda {
            out.push_str(&self.render_lambda(lambda));
        }
        let mut section = |title: &str, table: Table| {
            if !table.is_empty() {
                out.push_str(&format!("\n{title}\n{}", lines(&table)));
            }
        };
        section(
            "CPU during each window (% of one core; machine: % of all cores, anyone's load included)",
            table(
                &["scenario", "server", "PostgreSQL", "load generator", "machine busy", "server ms/req", "PostgreSQL ms/req"],
                self.cpu.iter().map(|c| {
                    vec![
                        c.scenario.clone(),
                        format!("{:.0}%", c.server_pct),
                        format!("{:.0}%", c.postgres_pct),
                        format!("{:.0}%", c.loadgen_pct),
                        format!("{:.0}%", c.machine_busy_pct),
                        format!("{:.3}", c.server_ms_per_request),
                        format!("{:.3}", c.postgres_ms_per_request),
                    ]
                }),
            ),
        );
        let figures = self
            .process
            .iter()
            .map(|f| vec![f.name.clone(), format!("{:.2} {}", f.value, f.unit)]);
        section("SERVER PROCESS", table(&[], figures));

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
            out.push_str(&format!("  {:<4} {:<58} {}\n", g.verdict, g.goal, g.actual));
        }
        out
    }

    /// The venue-size ratios of each booking scenario, with the goals of issue 20 for `book`.
    fn venue_ratios(&self) -> String {
        let mut out = String::new();
        for scenario in ["book", "book-multi"] {
            let runs: Vec<&VenueBooking> = self
                .venues
                .iter()
                .filter(|v| v.scenario == scenario)
                .collect();
            let (Some(big), Some(small)) = (
                runs.iter().max_by_key(|v| v.venue_seats),
                runs.iter().min_by_key(|v| v.venue_seats),
            ) else {
                continue;
            };
            let (b, s) = (size_label(big.venue_seats), size_label(small.venue_seats));
            let goal = |g: &str| {
                if scenario == "book" {
                    g.to_owned()
                } else {
                    "no goal".into()
                }
            };
            if big.venue_seats != small.venue_seats {
                out.push_str(&format!(
                    "  {scenario}: book() {b} / book() {s} = {} ({})\n",
                    ratio(big.book_fn, small.book_fn),
                    goal("goal >= 0.9")
                ));
            }
            out.push_str(&format!(
                "  {scenario}: service {b} / reference {b} = {} ({})\n",
                ratio(big.service, big.reference),
                goal("goal >= 0.8")
            ));
            if big.venue_seats != small.venue_seats {
                out.push_str(&format!(
                    "  {scenario}: service {s} / reference {s} = {} (no goal)\n",
                    ratio(small.service, small.reference)
                ));
            }
        }
        out
    }

    fn render_lambda(&self, l: &Lambda) -> String {
        let mut out = format!(
            "\nLAMBDA-SHAPED ({} local-api processes, DB_POOL_MAX_SIZE={} each, one request at a time \
             each, through {})\n",
            l.processes, l.pool_per_process, l.proxy
        );
        let versus = |of: Option<f64>| match of {
            Some(rate) if rate > 0.0 => {
                format!("{rate:.0}/s, lambda = {:.2} x", l.book_rate / rate)
            }
            _ => "not measured in this run".to_owned(),
        };
        out.push_str(&format!(
            "  book ({} clients, one process each): {:.0} bookings/s\n    direct book (1 local-api, \
             16 connections): {}\n    pgbench reference-1 -M prepared: {}\n",
            l.book_clients,
            l.book_rate,
            versus(l.direct_book_rate),
            versus(l.ceiling_rate)
        ));
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
        for lambda in self.herds.iter().filter(|h| h.route == "lambda") {
            let direct = self
                .herds
                .iter()
                .find(|h| h.route == "direct" && h.size == lambda.size);
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

/// `@40k`, `@500`: a venue named by its size.
pub fn size_label(seats: i64) -> String {
    if seats >= 1000 && seats % 1000 == 0 {
        format!("@{}k", seats / 1000)
    } else {
        format!("@{seats}")
    }
}

fn ratio_goal(goal: &str, pair: Option<(f64, f64)>, min: f64) -> Goal {
    match pair {
        Some((a, b)) if b > 0.0 => Goal {
            goal: goal.to_owned(),
            actual: format!("{a:.0}/s / {b:.0}/s = {:.2}", a / b),
            verdict: verdict(a / b >= min),
        },
        _ => skipped(goal),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
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
    if v == 0.0 {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A table's lines without comfy-table's trailing padding.
fn lines(table: &Table) -> String {
    table
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

/// A borderless table, indented by one space (comfy-table's padding), columns two spaces apart.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    for row in rows {
        table.add_row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(seats: i64, service: f64, reference: f64, book_fn: f64) -> VenueBooking {
        VenueBooking {
            scenario: "book".into(),
            seats_per_booking: 1,
            venue_seats: seats,
            service,
            reference,
            book_fn,
        }
    }

    fn verdicts(results: &Results) -> Vec<&str> {
        results.goals.iter().map(|g| g.verdict).collect()
    }

    #[test]
    fn the_booking_goals_compare_venue_sizes_and_the_reference() {
        let mut results = Results {
            venues: vec![
                venue(40_000, 900.0, 1000.0, 950.0),
                venue(500, 1000.0, 1100.0, 1000.0),
            ],
            ..Results::default()
        };
        results.judge_goals(5000);
        assert_eq!(verdicts(&results)[..3], ["PASS", "PASS", "SKIP"]);
        assert!(results.goals[0]
            .goal
            .starts_with("book() @40k >= 0.9 x book() @500"));
        results.venues = vec![
            venue(40_000, 700.0, 1000.0, 300.0),
            venue(500, 1.0, 1.0, 1000.0),
        ];
        results.judge_goals(5000);
        assert_eq!(verdicts(&results)[..2], ["MISS", "MISS"]);
        results.venues.truncate(1);
        results.judge_goals(5000);
        assert_eq!(verdicts(&results)[..2], ["SKIP", "MISS"]);
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
        assert_eq!(results.goals[4].verdict, "PASS");
        results.herds[0].latency.p99_ms = 600.0;
        results.judge_goals(5000);
        assert_eq!(results.goals[4].verdict, "MISS");
        results.herds = vec![herd("lambda", 5000, 1)];
        results.judge_goals(5000);
        assert_eq!(results.goals[4].verdict, "SKIP");
    }

    #[test]
    fn tables_line_up() {
        let rows = [
            vec!["a".to_owned(), "bbb".into()],
            vec!["cccc".into(), "d".into()],
        ];
        let text = lines(&table(&[], rows.into_iter()));
        assert_eq!(text, " a     bbb\n cccc  d\n");
    }
}
