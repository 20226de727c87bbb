//! The results: what was measured, the stdout tables, the goals, and results.json.

use crate::ceiling::{PgbenchRun, RedisRun};
use crate::integrity::Check;
use crate::stats::Percentiles;
use crate::Result;
use comfy_table::Table;
use serde::Serialize;
use std::collections::BTreeMap;

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
        let cpu_model = read("/proc/cpuinfo").lines().find_map(|l| {
            Some(
                l.strip_prefix("model name")?
                    .split_once(':')?
                    .1
                    .trim()
                    .to_owned(),
            )
        });
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model.unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            loadavg_at_start: read("/proc/loadavg").trim().to_owned(),
            postgres: String::new(),
        }
    }
}

/// One throughput figure beside its ceiling.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// The rate as a share of `closed_loop_rate` (0.5, 0.8), the maximum measured just before.
    pub load: f64,
    pub closed_loop_rate: f64,
    pub target_rate: f64,
    /// Answers that arrived inside the window, per second.
    pub achieved_rate: f64,
    pub unit: String,
    pub connections: usize,
    /// From the intended send time to the answer, over requests intended inside the window.
    pub latency: Percentiles,
    /// Requests intended inside the window, and how many of them were answered.
    pub scheduled: u64,
    pub answered: u64,
    /// Sent 2 ms or more late, and of those the ones whose connection was free: the load
    /// generator itself was behind; how late those were.
    pub late_sends: u64,
    pub late_loadgen: u64,
    pub loadgen_lag_p99_ms: f64,
    pub loadgen_lag_max_ms: f64,
    /// Intended inside the window and never sent (a backlog left at the drain deadline).
    pub unsent: u64,
    pub errors: u64,
    pub loadgen_cpu_pct: f64,
    pub first_problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Herd {
    /// `direct` (one server) or `lambda` (queued for the fleet, through PgBouncer).
    pub route: String,
    pub size: usize,
    pub seat_id: i64,
    pub created: usize,
    pub conflicts: usize,
    pub other: BTreeMap<String, usize>,
    pub unanswered: usize,
    pub connect_ms: f64,
    /// From release until the last answer arrived.
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

impl Goal {
    pub fn judged(goal: &str, actual: String, pass: bool) -> Goal {
        Goal {
            goal: goal.to_owned(),
            actual,
            verdict: if pass { "PASS" } else { "MISS" },
        }
    }

    fn ratio(goal: &str, pair: Option<(f64, f64)>, min: f64) -> Goal {
        match pair {
            Some((a, b)) if b > 0.0 => Goal::judged(
                goal,
                format!("{a:.0}/s / {b:.0}/s = {:.2}", a / b),
                a / b >= min,
            ),
            _ => Goal::skipped(goal),
        }
    }

    fn skipped(goal: &str) -> Goal {
        Goal {
            goal: goal.to_owned(),
            actual: "scenario not run".into(),
            verdict: "SKIP",
        }
    }
}

impl Results {
    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        let (name, unit) = (name.to_owned(), unit.to_owned());
        self.process.push(Figure { name, value, unit });
    }

    fn find(&self, scenario: &str) -> Option<&Throughput> {
        self.throughput.iter().find(|t| t.scenario == scenario)
    }

    /// The largest and smallest venue of a booking scenario.
    fn venue_pair(&self, scenario: &str) -> Option<(&VenueBooking, &VenueBooking)> {
        let runs = || self.venues.iter().filter(|v| v.scenario == scenario);
        Some((
            runs().max_by_key(|v| v.venue_seats)?,
            runs().min_by_key(|v| v.venue_seats)?,
        ))
    }

    /// The issues' goals, each PASS, MISS or SKIP (scenario not run); goals a scenario judged
    /// itself (`hot`) follow.
    pub fn judge_goals(&mut self, herd_target: usize) {
        let pair = self.venue_pair("book");
        let (b, s) = pair.map_or(("@40k".into(), "@500".into()), |(b, s)| {
            (size_label(b.venue_seats), size_label(s.venue_seats))
        });
        let two = pair.filter(|(b, s)| b.venue_seats != s.venue_seats);
        let mut goals = vec![
            Goal::ratio(
                &format!("book() {b} >= 0.9 x book() {s} (pgbench)"),
                two.map(|(b, s)| (b.book_fn, s.book_fn)),
                0.9,
            ),
            Goal::ratio(
                &format!("book {b} >= 0.8 x reference {b}"),
                pair.map(|(b, _)| (b.service, b.reference)),
                0.8,
            ),
        ];
        for (scenario, shape) in [("read-cached", "plain"), ("poll-gzip", "gzip")] {
            let t = self
                .find(scenario)
                .and_then(|t| Some((t.rate, t.ceiling_rate?)));
            goals.push(Goal::ratio(
                &format!("{scenario} >= 0.5 x nginx ({shape})"),
                t,
                0.5,
            ));
        }
        let herd_goal = format!("herd {herd_target}: one winner, the rest 409, p99 < 500 ms");
        let direct = self.herds.iter().filter(|h| h.route == "direct");
        goals.push(match direct.max_by_key(|h| h.size) {
            Some(h) => Goal::judged(
                &if h.size == herd_target {
                    herd_goal
                } else {
                    format!("{herd_goal} (quick run: checked on herd {})", h.size)
                },
                format!(
                    "{} winner(s), {} x 409, {} other, {} unanswered, p99 {:.0} ms",
                    h.created,
                    h.conflicts,
                    h.other.values().sum::<usize>(),
                    h.unanswered,
                    h.latency.p99_ms
                ),
                h.as_asserted() && h.latency.p99_ms < 500.0,
            ),
            None => Goal::skipped(&herd_goal),
        });
        let rss = "server RSS < 64 MB under mixed";
        goals.push(
            match self
                .process
                .iter()
                .find(|f| f.name == "server peak RSS under mixed")
            {
                Some(f) => Goal::judged(rss, format!("peak {:.1} MB", f.value), f.value < 64.0),
                None => Goal::skipped(rss),
            },
        );
        goals.append(&mut self.goals);
        self.goals = goals;
    }

    pub fn integrity_passed(&self) -> bool {
        self.integrity.iter().all(Check::passed)
    }

    pub fn write_json(&self, path: &std::path::Path) -> Result<()> {
        Ok(std::fs::write(path, serde_json::to_vec_pretty(self)?)?)
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
        let mut section = |title: &str, table: Table, after: String| {
            if !table.is_empty() {
                out.push_str(&format!("\n{title}\n{}{after}", lines(&table)));
            }
        };
        section(
            "THROUGHPUT (service over HTTP) beside its CEILING (same SQL / same bytes, same machine)",
            table(&self.throughput, &[
                ("scenario", &|t| t.scenario.clone()),
                ("service", &|t| {
                    let also = t.also.as_ref().map_or(String::new(), |a| format!(" ({a})"));
                    format!("{:.0} {}{also}", t.rate, t.unit)
                }),
                ("ceiling", &|t| match (&t.ceiling, t.ceiling_rate) {
                    (Some(name), Some(rate)) => format!("{rate:.0}/s {name}"),
                    _ => "-".into(),
                }),
                ("ratio", &|t| t.ratio.map_or("-".into(), |r| format!("{r:.2}"))),
                ("p50 ms", &|t| ms(t.latency.p50_ms)),
                ("p95 ms", &|t| ms(t.latency.p95_ms)),
                ("p99 ms", &|t| ms(t.latency.p99_ms)),
                ("answers", &|t| t.requests.to_string()),
                ("errors", &|t| t.errors.to_string()),
                ("loadgen cpu", &|t| format!("{:.0}%", t.loadgen_cpu_pct)),
            ]),
            String::new(),
        );
        section(
            "BOOKING BY VENUE SIZE (service: closed loop, 32 clients; ceilings: pgbench -M prepared, \
             32 clients, the same kind of seats)",
            table(&self.venues, &[
                ("scenario", &|v| v.scenario.clone()),
                ("venue", &|v| format!("{} seats", v.venue_seats)),
                ("service/s", &|v| format!("{:.0}", v.service)),
                ("reference/s", &|v| format!("{:.0}", v.reference)),
                ("book()/s", &|v| format!("{:.0}", v.book_fn)),
                ("service / reference", &|v| ratio(v.service, v.reference)),
                ("book() / reference", &|v| ratio(v.book_fn, v.reference)),
            ]),
            self.venue_ratios(),
        );
        section(
            "OPEN LOOP (fixed arrival rate, a share of the closed-loop maximum above; latency from \
             each request's INTENDED send time)",
            table(&self.open_loop, &[
                ("scenario", &|o| o.scenario.clone()),
                ("load", &|o| format!("{:.0}% of {:.0}", o.load * 100.0, o.closed_loop_rate)),
                ("target/s", &|o| format!("{:.0}", o.target_rate)),
                ("achieved/s", &|o| format!("{:.0}", o.achieved_rate)),
                ("p50 ms", &|o| ms(o.latency.p50_ms)),
                ("p90 ms", &|o| ms(o.latency.p90_ms)),
                ("p99 ms", &|o| ms(o.latency.p99_ms)),
                ("p99.9 ms", &|o| ms(o.latency.p999_ms)),
                ("max ms", &|o| ms(o.latency.max_ms)),
                ("answered", &|o| format!("{}/{}", o.answered, o.scheduled)),
                ("late sends", &|o| o.late_sends.to_string()),
                ("of which loadgen", &|o| o.late_loadgen.to_string()),
                ("loadgen lag max ms", &|o| ms(o.loadgen_lag_max_ms)),
                ("unsent", &|o| o.unsent.to_string()),
                ("errors", &|o| o.errors.to_string()),
            ]),
            String::new(),
        );
        let pgbench = self.pgbench.iter().map(|p| {
            let (l, name) = (&p.latency, format!("pgbench {}", p.name));
            let (rate, count) = (format!("{:.0} tx/s", p.tps), p.transactions.to_string());
            vec![name, rate, ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms), count]
        });
        let redis = self.redis.iter().map(|r| {
            let (name, rate) = (
                format!("redis-benchmark {}", r.name),
                format!("{:.0} req/s", r.rps),
            );
            [name, rate]
                .into_iter()
                .chain(["-"; 4].map(String::from))
                .collect()
        });
        let header = ["ceiling", "rate", "p50 ms", "p95 ms", "p99 ms", "count"];
        section(
            "CEILINGS",
            grid(&header, pgbench.chain(redis)),
            String::new(),
        );
        section(
            "HERD (N simultaneous POSTs for one seat, connections opened first)",
            table(
                &self.herds,
                &[
                    ("herd", &|h| h.size.to_string()),
                    ("route", &|h| h.route.clone()),
                    ("201", &|h| h.created.to_string()),
                    ("409", &|h| h.conflicts.to_string()),
                    ("other", &|h| {
                        if h.other.is_empty() {
                            "0".into()
                        } else {
                            format!("{:?}", h.other)
                        }
                    }),
                    ("unanswered", &|h| h.unanswered.to_string()),
                    ("connect ms", &|h| format!("{:.0}", h.connect_ms)),
                    ("all answered ms", &|h| format!("{:.0}", h.all_answered_ms)),
                    ("p50 ms", &|h| ms(h.latency.p50_ms)),
                    ("p99 ms", &|h| ms(h.latency.p99_ms)),
                    ("as asserted", &|h| {
                        (if h.as_asserted() { "yes" } else { "NO" }).into()
                    }),
                ],
            ),
            String::new(),
        );
        section(
            "CPU during each window (% of one core; machine: % of all cores, anyone's load included)",
            table(&self.cpu, &[
                ("scenario", &|c| c.scenario.clone()),
                ("server", &|c| format!("{:.0}%", c.server_pct)),
                ("PostgreSQL", &|c| format!("{:.0}%", c.postgres_pct)),
                ("load generator", &|c| format!("{:.0}%", c.loadgen_pct)),
                ("machine busy", &|c| format!("{:.0}%", c.machine_busy_pct)),
                ("server ms/req", &|c| format!("{:.3}", c.server_ms_per_request)),
                ("PostgreSQL ms/req", &|c| format!("{:.3}", c.postgres_ms_per_request)),
            ]),
            String::new(),
        );
        let figures = self
            .process
            .iter()
            .map(|f| vec![f.name.clone(), format!("{:.2} {}", f.value, f.unit)]);
        section("SERVER PROCESS", grid(&[], figures), String::new());

        out.push_str("\nINTEGRITY\n");
        for c in &self.integrity {
            let verdict = if c.passed() { "ok" } else { "FAIL" };
            let (scope, b, t) = (&c.scope, c.bookings_checked, c.tickets_checked);
            out.push_str(&format!(
                "  {verdict:<4} {scope} ({b} bookings, {t} tickets checked)\n"
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
            let Some((big, small)) = self.venue_pair(scenario) else {
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
            let two = big.venue_seats != small.venue_seats;
            let mut line = |what: String, value: String, goal: String| {
                out.push_str(&format!("  {scenario}: {what} = {value} ({goal})\n"))
            };
            if two {
                let value = ratio(big.book_fn, small.book_fn);
                line(
                    format!("book() {b} / book() {s}"),
                    value,
                    goal("goal >= 0.9"),
                );
            }
            let value = ratio(big.service, big.reference);
            line(
                format!("service {b} / reference {b}"),
                value,
                goal("goal >= 0.8"),
            );
            if two {
                let value = ratio(small.service, small.reference);
                line(
                    format!("service {s} / reference {s}"),
                    value,
                    "no goal".into(),
                );
            }
        }
        out
    }
}

/// `@40k`, `@500`: a venue named by its size.
pub fn size_label(seats: i64) -> String {
    match seats >= 1000 && seats % 1000 == 0 {
        true => format!("@{}k", seats / 1000),
        false => format!("@{seats}"),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// Milliseconds; `-` for none.
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

/// A column: its header, and its cell for a row.
type Column<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

/// A table of `rows`.
fn table<T>(rows: &[T], columns: &[Column<T>]) -> Table {
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    grid(
        &header,
        rows.iter()
            .map(|row| columns.iter().map(|(_, cell)| cell(row)).collect()),
    )
}

/// A borderless table, indented by one space (comfy-table's padding), columns two spaces apart.
fn grid(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header);
    }
    rows.for_each(|row| {
        table.add_row(row);
    });
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(seats: i64, service: f64, reference: f64, book_fn: f64) -> VenueBooking {
        let scenario = "book".into();
        VenueBooking {
            scenario,
            seats_per_booking: 1,
            venue_seats: seats,
            service,
            reference,
            book_fn,
        }
    }

    fn herd(route: &str, size: usize, created: usize, unanswered: usize) -> Herd {
        Herd {
            route: route.into(),
            size,
            seat_id: 1,
            created,
            conflicts: size - created - unanswered,
            other: BTreeMap::new(),
            unanswered,
            connect_ms: 1.0,
            all_answered_ms: 5.0,
            latency: Percentiles::default(),
        }
    }

    fn verdicts(results: &mut Results) -> Vec<&str> {
        results.judge_goals(5000);
        results.goals.iter().map(|g| g.verdict).collect()
    }

    #[test]
    fn the_goals_compare_venue_sizes_the_reference_and_the_direct_herd() {
        let big = venue(40_000, 900.0, 1000.0, 950.0);
        let mut results = Results {
            venues: vec![big, venue(500, 1000.0, 1100.0, 1000.0)],
            herds: vec![herd("direct", 5000, 1, 0), herd("lambda", 5000, 2, 0)],
            ..Results::default()
        };
        assert_eq!(
            verdicts(&mut results)[..5],
            ["PASS", "PASS", "SKIP", "SKIP", "PASS"]
        );
        assert!(results.goals[0]
            .goal
            .starts_with("book() @40k >= 0.9 x book() @500"));
        results.venues[0] = venue(40_000, 700.0, 1000.0, 300.0);
        results.herds[0].latency.p99_ms = 600.0;
        assert_eq!(
            verdicts(&mut results)[..5],
            ["MISS", "MISS", "SKIP", "SKIP", "MISS"]
        );
        results.venues.truncate(1);
        results.herds.remove(0);
        assert_eq!(
            verdicts(&mut results)[..5],
            ["SKIP", "MISS", "SKIP", "SKIP", "SKIP"]
        );
    }

    #[test]
    fn a_herd_passes_only_with_one_winner_and_every_other_answer_a_409() {
        assert!(herd("direct", 50, 1, 0).as_asserted());
        assert!(!herd("direct", 50, 2, 0).as_asserted());
        assert!(!herd("direct", 50, 1, 1).as_asserted());
        assert!(!herd("direct", 50, 0, 0).as_asserted());
    }

    #[test]
    fn tables_line_up() {
        let rows = [
            vec!["a".to_owned(), "bbb".into()],
            vec!["cccc".into(), "d".into()],
        ];
        assert_eq!(
            lines(&grid(&[], rows.into_iter())),
            " a     bbb\n cccc  d\n"
        );
    }
}
