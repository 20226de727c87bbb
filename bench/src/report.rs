//! The results: what was measured, the stdout tables, the goals, and results.json.

use crate::ceiling::{PgbenchRun, RedisRun};
use crate::integrity::Check;
use crate::loadgen::Percentiles;
use comfy_table::Table;
use procfs::Current;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// CPUs, kernel and load average at the start; PostgreSQL's version.
    pub machine: String,
    pub postgres: String,
    pub started_at: String,
    pub quick: bool,
    pub settings: BTreeMap<String, String>,
    pub throughput: Vec<Throughput>,
    /// `book` per venue size, beside both pgbench ceilings.
    pub venues: Vec<VenueBooking>,
    pub pgbench: Vec<PgbenchRun>,
    pub redis: Vec<RedisRun>,
    pub herds: Vec<Herd>,
    pub cpu: Vec<CpuUse>,
    pub figures: Vec<Figure>,
    pub integrity: Vec<Check>,
    pub goals: Vec<Goal>,
}

/// One throughput figure beside its ceiling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub scenario: String,
    pub rate: f64,
    pub unit: String,
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

/// `book` on one venue: the service (closed loop) and both ceilings of the same run.
#[derive(Debug, Clone, Serialize)]
pub struct VenueBooking {
    pub venue_seats: i64,
    pub service: f64,
    /// pgbench -M prepared of the one-statement reference booking (bench/pgbench/reference.sql).
    pub reference: f64,
    /// pgbench -M prepared of `book()` as the service calls it.
    pub book_fn: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Herd {
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

/// Where the CPU went during one measurement window (% of one core).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub scenario: String,
    pub server_pct: f64,
    pub postgres_pct: f64,
    pub loadgen_pct: f64,
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

    pub fn ratio(goal: &str, pair: Option<(f64, f64)>, min: f64) -> Goal {
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
    pub fn new(quick: bool) -> Results {
        let cpu = procfs::CpuInfo::current().ok();
        let cpu = cpu.and_then(|c| Some(c.model_name(0)?.to_owned()));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let load = procfs::LoadAverage::current().map(|l| (l.one, l.five, l.fifteen));
        let machine = format!(
            "{} x {}, kernel {}, load at start {:?}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu.unwrap_or_default(),
            kernel.trim(),
            load.unwrap_or_default(),
        );
        Results {
            machine,
            started_at: chrono::Utc::now().to_rfc3339(),
            quick,
            ..Results::default()
        }
    }

    pub fn figure(&mut self, name: &str, value: f64, unit: &str) {
        let (name, unit) = (name.to_owned(), unit.to_owned());
        self.figures.push(Figure { name, value, unit });
    }

    /// The arena's and the hall's `book` rows (the largest venue and the smallest).
    fn venue_pair(&self) -> Option<(&VenueBooking, &VenueBooking)> {
        let big = self.venues.iter().max_by_key(|v| v.venue_seats)?;
        let small = self.venues.iter().min_by_key(|v| v.venue_seats)?;
        Some((big, small))
    }

    /// The issues' goals, each PASS, MISS or SKIP (scenario not run); goals a scenario judged
    /// itself (`hot`) follow.
    pub fn judge_goals(&mut self, herd_target: usize) {
        let pair = self.venue_pair();
        let two = pair.filter(|(b, s)| b.venue_seats != s.venue_seats);
        let mut goals = vec![
            Goal::ratio(
                "book() @40k >= 0.9 x book() @500 (pgbench)",
                two.map(|(b, s)| (b.book_fn, s.book_fn)),
                0.9,
            ),
            Goal::ratio(
                "book @40k >= 0.8 x reference @40k",
                pair.map(|(b, _)| (b.service, b.reference)),
                0.8,
            ),
        ];
        for (scenario, shape) in [("read-cached", "plain"), ("poll-gzip", "gzip")] {
            let t = self.throughput.iter().find(|t| t.scenario == scenario);
            let t = t.and_then(|t| Some((t.rate, t.ceiling_rate?)));
            let goal = format!("{scenario} >= 0.5 x nginx ({shape})");
            goals.push(Goal::ratio(&goal, t, 0.5));
        }
        let herd_goal = format!("herd {herd_target}: one winner, the rest 409, p99 < 500 ms");
        goals.push(match self.herds.iter().max_by_key(|h| h.size) {
            Some(h) => {
                let quick = format!(" (quick run: checked on herd {})", h.size);
                let goal = herd_goal + if h.size == herd_target { "" } else { &quick };
                let (other, p99) = (h.other.values().sum::<usize>(), h.latency.p99_ms);
                let actual = format!(
                    "{} winner(s), {} x 409, {other} other, {} unanswered, p99 {p99:.0} ms",
                    h.created, h.conflicts, h.unanswered
                );
                Goal::judged(&goal, actual, h.as_asserted() && p99 < 500.0)
            }
            None => Goal::skipped(&herd_goal),
        });
        goals.append(&mut self.goals);
        self.goals = goals;
    }

    pub fn integrity_passed(&self) -> bool {
        self.integrity.iter().all(Check::passed)
    }

    /// Everything a reader needs on stdout, as plain-text tables.
    pub fn render(&self) -> String {
        let quick = if self.quick { QUICK } else { "" };
        let settings = self.settings.iter().map(|(k, v)| format!("{k}={v}"));
        let settings = settings.collect::<Vec<_>>().join(", ");
        let (machine, postgres) = (&self.machine, &self.postgres);
        let mut out =
            format!("\nseatbook benchmark{quick}: {machine}\n{postgres}\nsettings: {settings}\n");
        section(
            &mut out,
            "THROUGHPUT (service over HTTP) beside its CEILING (same SQL / same bytes, same machine)",
            table(&self.throughput, &[
                ("scenario", &|t| t.scenario.clone()),
                ("service", &|t| format!("{:.0} {}", t.rate, t.unit)),
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
        );
        section(
            &mut out,
            &format!(
                "BOOKING BY VENUE SIZE (service: closed loop, 32 clients; ceilings: pgbench -M \
                 prepared, 32 clients, the same kind of seats; cores: {})",
                self.settings.get("cores_book").map_or("-", String::as_str)
            ),
            table(
                &self.venues,
                &[
                    ("venue", &|v| format!("{} seats", v.venue_seats)),
                    ("service/s", &|v| format!("{:.0}", v.service)),
                    ("reference/s", &|v| format!("{:.0}", v.reference)),
                    ("book()/s", &|v| format!("{:.0}", v.book_fn)),
                    ("service / reference", &|v| ratio(v.service, v.reference)),
                    ("book() / reference", &|v| ratio(v.book_fn, v.reference)),
                ],
            ),
        );
        let pair = self.venue_pair();
        if let Some((big, small)) = pair.filter(|(b, s)| b.venue_seats != s.venue_seats) {
            let r = ratio(big.book_fn, small.book_fn);
            out.push_str(&format!(
                "  book() @40k / book() @500 = {r} (goal >= 0.9)\n"
            ));
        }
        let pgbench = self.pgbench.iter().map(|p| {
            let (name, rate) = (format!("pgbench {}", p.name), format!("{:.0} tx/s", p.tps));
            vec![name, rate, ms(p.latency_ms), p.transactions.to_string()]
        });
        let redis = self.redis.iter().map(|r| {
            let name = format!("redis-benchmark {}", r.name);
            vec![name, format!("{:.0} req/s", r.rps)]
        });
        let header = ["ceiling", "rate", "latency avg ms", "transactions"];
        section(&mut out, "CEILINGS", grid(&header, pgbench.chain(redis)));
        let herds: [Column<Herd>; 10] = [
            ("herd", &|h| h.size.to_string()),
            ("201", &|h| h.created.to_string()),
            ("409", &|h| h.conflicts.to_string()),
            ("other", &|h| h.other.values().sum::<usize>().to_string()),
            ("unanswered", &|h| h.unanswered.to_string()),
            ("connect ms", &|h| format!("{:.0}", h.connect_ms)),
            ("all answered ms", &|h| format!("{:.0}", h.all_answered_ms)),
            ("p50 ms", &|h| ms(h.latency.p50_ms)),
            ("p99 ms", &|h| ms(h.latency.p99_ms)),
            ("as asserted", &|h| {
                (if h.as_asserted() { "yes" } else { "NO" }).into()
            }),
        ];
        let title = "HERD (N simultaneous POSTs for one seat, connections opened first)";
        section(&mut out, title, table(&self.herds, &herds));
        let cpu: [Column<CpuUse>; 6] = [
            ("scenario", &|c| c.scenario.clone()),
            ("server", &|c| format!("{:.0}%", c.server_pct)),
            ("PostgreSQL", &|c| format!("{:.0}%", c.postgres_pct)),
            ("load generator", &|c| format!("{:.0}%", c.loadgen_pct)),
            ("server ms/req", &|c| {
                format!("{:.3}", c.server_ms_per_request)
            }),
            ("PostgreSQL ms/req", &|c| {
                format!("{:.3}", c.postgres_ms_per_request)
            }),
        ];
        let title =
            "CPU during each window (% of one core; per request: ms of CPU per answer counted)";
        section(&mut out, title, table(&self.cpu, &cpu));
        let figures = self
            .figures
            .iter()
            .map(|f| vec![f.name.clone(), format!("{:.2} {}", f.value, f.unit)]);
        section(&mut out, "FIGURES", grid(&[], figures));

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
}

const QUICK: &str = " (QUICK: not a measurement)";

/// A titled table, without comfy-table's trailing padding; nothing when it has no rows.
fn section(out: &mut String, title: &str, table: Table) {
    if !table.is_empty() {
        let lines: String = table
            .lines()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        out.push_str(&format!("\n{title}\n{lines}"));
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

/// A column: its header, and its cell for a row.
type Column<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

/// A table of `rows`.
fn table<T>(rows: &[T], columns: &[Column<T>]) -> Table {
    let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let cells = |row: &T| columns.iter().map(|(_, cell)| cell(row)).collect();
    grid(&header, rows.iter().map(cells))
}

/// A borderless table, indented by one space (comfy-table's padding), columns two spaces apart.
fn grid(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    if !header.is_empty() {
        table.set_header(header);
    }
    table.add_rows(rows);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(venue_seats: i64, service: f64, reference: f64, book_fn: f64) -> VenueBooking {
        VenueBooking {
            venue_seats,
            service,
            reference,
            book_fn,
        }
    }

    fn herd(size: usize, created: usize, unanswered: usize) -> Herd {
        Herd {
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
        results.goals.clear();
        results.judge_goals(5000);
        results.goals.iter().map(|g| g.verdict).collect()
    }

    #[test]
    fn the_goals_compare_venue_sizes_the_reference_and_the_herd() {
        let big = venue(40_000, 900.0, 1000.0, 950.0);
        let mut results = Results {
            venues: vec![big, venue(500, 1000.0, 1100.0, 1000.0)],
            herds: vec![herd(5000, 1, 0)],
            ..Results::default()
        };
        let all = ["PASS", "PASS", "SKIP", "SKIP", "PASS"];
        assert_eq!(verdicts(&mut results), all);
        results.venues[0] = venue(40_000, 700.0, 1000.0, 300.0);
        results.herds[0].latency.p99_ms = 600.0;
        assert_eq!(
            verdicts(&mut results),
            ["MISS", "MISS", "SKIP", "SKIP", "MISS"]
        );
        results.venues.truncate(1);
        results.herds.clear();
        assert_eq!(
            verdicts(&mut results),
            ["SKIP", "MISS", "SKIP", "SKIP", "SKIP"]
        );
    }

    #[test]
    fn a_herd_passes_only_with_one_winner_and_every_other_answer_a_409() {
        assert!(herd(50, 1, 0).as_asserted());
        assert!(!herd(50, 2, 0).as_asserted());
        assert!(!herd(50, 1, 1).as_asserted());
        assert!(!herd(50, 0, 0).as_asserted());
    }
}
