//! The scenarios: each measures the service, measures its ceiling right beside it, and checks
//! integrity before the next one starts.

use crate::ceiling::{self, Pgbench, PgbenchRun, Statement, CLIENTS};
use crate::cli::Options;
use crate::clients::{Booker, Lifecycle, Mixed, Reader, SeatStream, LIFECYCLE_KINDS, MIXED_KINDS};
use crate::fixtures::{Admin, Block, Fixtures, Venue, MIXED_CLIENTS};
use crate::http::{self, Conn, Identity};
use crate::integrity::{self, BookingSeen, Check};
use crate::loadgen::{self, HerdRun, KindStats, LoadResult, Window};
use crate::nginx::{self, Nginx};
use crate::pgbouncer::PgBouncer;
use crate::procstat;
use crate::redis::Redis;
use crate::report::{CpuUse, Herd, Lambda, OpenLoop, Results, Throughput, VenueBooking};
use crate::server::{Cache, Fleet, Server};
use crate::stats::{micros, Percentiles};
use crate::{db, Result};
use hyper::StatusCode;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

mod onsale;
mod webhooks;

pub struct Bench {
    pub opts: Options,
    pub fixtures: Fixtures,
    pub database_url: String,
    /// The PostgreSQL server without a database name, and the bench database's name.
    pub pg_base: String,
    pub database_name: String,
    pub pg: Client,
    pub main: Server,
    /// Started the first time a scenario wants the Redis cache on.
    pub cached: Option<Server>,
    pub server_bin: PathBuf,
    pub redis: Redis,
    pub results: Results,
    pub herd_winners: Vec<BookingSeen>,
    /// Started the first time a cached read is measured beside it.
    pub nginx: Option<Nginx>,
    /// Peak RSS of the cached server before its peak was reset for `mixed`.
    pub cached_peak_before_mixed_kib: u64,
}

/// Where the CPU went inside a measurement window: the server, PostgreSQL, the load generator
/// (this process), and the machine as a whole (which also shows anyone else's load).
struct CpuWindow {
    server_s: f64,
    postgres_s: f64,
    loadgen_s: f64,
    machine_busy_pct: f64,
    seconds: f64,
}

impl CpuWindow {
    fn loadgen_pct(&self) -> f64 {
        100.0 * self.loadgen_s / self.seconds
    }
}

/// CPU counters at one instant (`server_s`: all of `pids` together).
struct CpuMark {
    pids: Vec<u32>,
    at: std::time::Instant,
    server_s: f64,
    postgres_s: f64,
    loadgen_s: f64,
    machine: (u64, u64),
}

impl CpuMark {
    fn now(pids: Vec<u32>) -> CpuMark {
        CpuMark {
            at: std::time::Instant::now(),
            server_s: pids
                .iter()
                .map(|&pid| procstat::cpu_seconds(pid).unwrap_or(0.0))
                .sum(),
            pids,
            postgres_s: procstat::postgres_cpu_seconds(),
            loadgen_s: procstat::own_cpu_seconds(),
            machine: procstat::machine_ticks(),
        }
    }

    fn until_now(self) -> CpuWindow {
        let end = CpuMark::now(self.pids.clone());
        let (busy, total) = (
            end.machine.0 - self.machine.0,
            end.machine.1 - self.machine.1,
        );
        CpuWindow {
            server_s: end.server_s - self.server_s,
            postgres_s: end.postgres_s - self.postgres_s,
            loadgen_s: end.loadgen_s - self.loadgen_s,
            machine_busy_pct: 100.0 * busy as f64 / total.max(1) as f64,
            seconds: (end.at - self.at).as_secs_f64(),
        }
    }
}

fn watch_cpu(pids: Vec<u32>, window: Window) -> JoinHandle<CpuWindow> {
    tokio::spawn(async move {
        tokio::time::sleep_until(window.start.into()).await;
        let start = CpuMark::now(pids);
        tokio::time::sleep_until(window.end.into()).await;
        start.until_now()
    })
}

fn throughput(
    scenario: &str,
    unit: &str,
    stats: &KindStats,
    window: Window,
    cpu: &CpuWindow,
) -> Throughput {
    Throughput {
        latency: stats.percentiles(),
        errors: stats.errors(),
        statuses: stats.statuses.clone(),
        first_problem: stats.first_problem.clone(),
        ..throughput_row(
            scenario,
            unit,
            stats.completed as f64 / window.seconds(),
            stats.completed,
            cpu,
        )
    }
}

/// A throughput row without latencies or statuses.
fn throughput_row(
    scenario: &str,
    unit: &str,
    rate: f64,
    requests: u64,
    cpu: &CpuWindow,
) -> Throughput {
    Throughput {
        scenario: scenario.to_owned(),
        rate,
        unit: unit.to_owned(),
        also: None,
        ceiling: None,
        ceiling_rate: None,
        ratio: None,
        latency: Percentiles::default(),
        requests,
        errors: 0,
        statuses: BTreeMap::new(),
        loadgen_cpu_pct: cpu.loadgen_pct(),
        first_problem: None,
    }
}

/// What the booking clients recorded: every confirmed booking and every contradiction.
fn gather(bookers: Vec<Booker>) -> (Vec<BookingSeen>, Vec<String>) {
    let mut seen = Vec::new();
    let mut violations = Vec::new();
    for booker in bookers {
        if booker.ran_out {
            violations.push(format!(
                "{} ran out of seats inside the window (the scenario needs more events)",
                booker.user_id
            ));
        }
        seen.extend(booker.seen);
        violations.extend(booker.violations);
    }
    (seen, violations)
}

/// More bookings per second than any run here reaches (1 seat a booking; half that for 4).
const MAX_BOOKINGS_PER_S: f64 = 12_000.0;

/// Events each of `CLIENTS` clients needs on `venue` to book `seats` seats a booking for
/// `seconds` at `MAX_BOOKINGS_PER_S` without running out.
fn events_per_client(venue: &Venue, seats: usize, seconds: f64) -> usize {
    let rate = MAX_BOOKINGS_PER_S / if seats > 1 { 2.0 } else { 1.0 };
    let bookings = rate * seconds / CLIENTS as f64;
    let per_event = (venue.seats / seats as i64) as f64;
    (bookings / per_event).ceil().max(1.0) as usize
}

/// One venue of a booking scenario: the events of each side.
struct VenueRun {
    venue: Venue,
    reference: Block,
    book_fn: Block,
    service: Block,
    /// Informational ceilings: `book()` at the pool's size, and unnamed (`-M extended`).
    what_if: Vec<(Block, &'static str)>,
    open: bool,
}

impl VenueRun {
    fn events(&self) -> usize {
        let blocks = [&self.reference, &self.book_fn, &self.service];
        let what_if = self.what_if.iter().map(|(b, _)| b);
        blocks
            .into_iter()
            .chain(what_if)
            .map(|b| b.clients * b.per_client)
            .sum()
    }
}

/// The service's connection pool size: DB_POOL_MAX_SIZE, passed through, or local-api's default.
fn pool_size() -> usize {
    std::env::var("DB_POOL_MAX_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(16)
}

/// `size` users each asking for the same seat: their ids and their requests.
fn herd_requests(
    prefix: &str,
    size: usize,
    event: i64,
    seat: i64,
) -> Result<(Vec<String>, Vec<hyper::Request<http::Body>>)> {
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": event,
        "seat_ids": [seat],
    }))?;
    let users: Vec<String> = (0..size).map(|i| format!("{prefix}-{i}")).collect();
    let requests = users
        .iter()
        .map(|u| http::post_json("/api/v1/bookings", &Identity::user(u), body.clone()))
        .collect();
    Ok((users, requests))
}

/// A Lambda execution environment's pool (`LAMBDA_POOL_SIZE` / `DB_POOL_MAX_SIZE` deployed).
const LAMBDA_POOL_SIZE: usize = 2;
/// PgBouncer's server connections for `lambda`: the direct run's pool (local-api's 16).
const LAMBDA_PROXY_CONNECTIONS: usize = 16;

/// Open-loop rates, as shares of the closed-loop maximum measured just before.
const OPEN_LOOP_LOADS: [f64; 2] = [0.5, 0.8];

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    seat_ids: Vec<i64>,
}

impl Bench {
    fn window(&self) -> Window {
        Window::after(self.opts.profile.warmup, self.opts.profile.measure)
    }

    fn pgbench_dir(&self) -> PathBuf {
        self.opts.out_dir.join("pgbench")
    }

    async fn pgbench(&mut self, spec: Pgbench) -> Result<PgbenchRun> {
        db::settle(&self.pg).await;
        let url = self.database_url.clone();
        let dir = self.pgbench_dir();
        std::fs::create_dir_all(&dir)?;
        let run = tokio::task::spawn_blocking(move || spec.run(&url, &dir)).await??;
        self.results.pgbench.push(run.clone());
        Ok(run)
    }

    fn cpu_row(&mut self, scenario: &str, cpu: &CpuWindow, requests: u64) {
        let pct = |seconds: f64| 100.0 * seconds / cpu.seconds;
        self.results.cpu.push(CpuUse {
            scenario: scenario.to_owned(),
            server_pct: pct(cpu.server_s),
            postgres_pct: pct(cpu.postgres_s),
            loadgen_pct: pct(cpu.loadgen_s),
            machine_busy_pct: cpu.machine_busy_pct,
            server_ms_per_request: 1000.0 * cpu.server_s / requests.max(1) as f64,
            postgres_ms_per_request: 1000.0 * cpu.postgres_s / requests.max(1) as f64,
        });
    }

    /// redis-benchmark GET of one value of `size` bytes (under `key`), recorded as a ceiling: what
    /// a cache hit of that size costs Redis itself.
    async fn redis_get_of_size(&mut self, key: &str, size: usize) -> Result<ceiling::RedisRun> {
        let redis = self.redis.clone();
        let requests = self.opts.profile.redis_requests;
        let key = redis.key(key);
        let payload = "x".repeat(size);
        let run = tokio::task::spawn_blocking(move || {
            ceiling::redis_benchmark(
                "SET",
                &redis.host,
                redis.port,
                1,
                &["SET".into(), key.clone(), payload],
            )?;
            ceiling::redis_benchmark(
                &format!("GET {size} B value"),
                &redis.host,
                redis.port,
                requests,
                &["GET".into(), key],
            )
        })
        .await??;
        self.results.redis.push(run.clone());
        Ok(run)
    }

    async fn record(&mut self, check: Check) {
        if !check.passed() {
            eprintln!("INTEGRITY VIOLATION in {}:", check.scope);
            for v in check.violations.iter().take(10) {
                eprintln!("  {v}");
            }
        }
        self.results.integrity.push(check);
    }

    /// `book` (1 seat a booking) and `book-multi` (4 seats) on the arena (40,000 seats) and on
    /// the hall (500): 32 clients each booking their own free seats, beside pgbench running the
    /// reference statement and `book()` with the same 32 clients on the same kind of seats
    /// (`-M prepared`: PostgreSQL's best for each).
    pub async fn book(&mut self, seats: usize) -> Result<()> {
        let scenario = if seats == 1 { "book" } else { "book-multi" };
        let p = &self.opts.profile;
        let pgbench_s = f64::from(p.pgbench_secs);
        let window_s = (p.warmup + p.measure).as_secs_f64();
        let started = std::time::Instant::now();
        let mut admin = Admin::open(self.main.addr).await?;
        let mut runs = Vec::new();
        for venue in [self.fixtures.big.clone(), self.fixtures.hall.clone()] {
            // Open loops (and the informational ceilings) on the arena only.
            let open = seats == 1 && venue.id == self.fixtures.big.id;
            let k = events_per_client(&venue, seats, pgbench_s);
            let label = format!("{scenario} {}", venue.label());
            let mut block = async |what: &str, clients, per_client| {
                admin
                    .block(&format!("{label} {what}"), &venue, clients, per_client)
                    .await
            };
            let reference = block("reference", CLIENTS, k).await?;
            let book_fn = block("book()", CLIENTS, k).await?;
            let service_s = if open { 3.0 * window_s } else { window_s };
            let service = block(
                "service",
                CLIENTS,
                events_per_client(&venue, seats, service_s),
            );
            let service = service.await?;
            let mut what_if = Vec::new();
            if open {
                if pool_size() != CLIENTS {
                    what_if.push((block("pool", pool_size(), k).await?, "prepared"));
                }
                what_if.push((block("extended", CLIENTS, k).await?, "extended"));
            }
            runs.push(VenueRun {
                venue,
                reference,
                book_fn,
                service,
                what_if,
                open,
            });
        }
        let events: usize = runs.iter().map(VenueRun::events).sum();
        eprintln!(
            "[{scenario}] {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        db::analyze(&self.pg).await?;
        for run in runs {
            self.book_on(scenario, seats, run).await?;
        }
        Ok(())
    }

    async fn book_on(&mut self, scenario: &str, seats: usize, run: VenueRun) -> Result<()> {
        let venue = run.venue.clone();
        let name = format!("{scenario} {}", venue.label());
        eprintln!("[{name}] pgbench reference and book() ...");
        let reference = self
            .book_ceiling(
                Statement::Reference,
                seats,
                &venue,
                &run.reference,
                "prepared",
            )
            .await?;
        let book_fn = self
            .book_ceiling(Statement::BookFn, seats, &venue, &run.book_fn, "prepared")
            .await?;
        for (block, protocol) in &run.what_if {
            self.book_ceiling(Statement::BookFn, seats, &venue, block, protocol)
                .await?;
        }

        eprintln!("[{name}] service ...");
        db::settle(&self.pg).await;
        let clients: Vec<Booker> = (0..CLIENTS)
            .map(|c| {
                let events = run.service.client_events(c);
                Booker::new(
                    format!("bench-{scenario}-{}-{c}", venue.seats),
                    SeatStream::new(events, venue.first_seat, venue.seats, seats as i64),
                )
            })
            .collect();
        let window = self.window();
        let cpu = watch_cpu(vec![self.main.pid], window);
        let load = loadgen::closed_loop(self.main.addr, &["book"], clients, window).await?;
        let cpu = cpu.await?;
        let mut row = throughput(&name, "bookings/s", &load.kinds[0], window, &cpu)
            .against(&format!("pgbench {}", reference.name), reference.tps);
        if seats > 1 {
            row.also = Some(format!("{:.0} seats/s", row.rate * seats as f64));
        }
        let bookings = load.kinds[0].completed as f64;
        if bookings > 0.0 {
            self.results.figure(
                &format!("server CPU per 1,000 bookings ({name})"),
                cpu.server_s / bookings * 1000.0,
                "CPU s",
            );
        }
        self.cpu_row(&name, &cpu, load.kinds[0].completed);
        let closed_rate = row.rate;
        self.results.throughput.push(row);
        self.results.venues.push(VenueBooking {
            scenario: scenario.to_owned(),
            seats_per_booking: seats,
            venue_seats: venue.seats,
            service: closed_rate,
            reference: reference.tps,
            book_fn: book_fn.tps,
        });

        // The same clients go on booking their own seats, now at a fixed arrival rate; the
        // integrity check below covers every booking of both loops.
        let clients = if run.open {
            let (addr, pid) = (self.main.addr, self.main.pid);
            self.open_loops(
                &name,
                "bookings/s",
                addr,
                pid,
                "book",
                load.clients,
                closed_rate,
            )
            .await?
        } else {
            load.clients
        };
        let (seen, violations) = gather(clients);
        let events = run.service.events();
        let check = integrity::check(&self.pg, &name, &events, &seen, &violations).await?;
        self.record(check).await;
        Ok(())
    }

    /// pgbench booking `seats` seats a transaction with `statement` in `block`'s events, and the
    /// integrity check of what it stored.
    async fn book_ceiling(
        &mut self,
        statement: Statement,
        seats: usize,
        venue: &Venue,
        block: &Block,
        protocol: &'static str,
    ) -> Result<PgbenchRun> {
        let mut name = format!("{}-{seats} {}", statement.label(), venue.label());
        if block.clients != CLIENTS {
            name.push_str(&format!(" -c {} (pool size)", block.clients));
        }
        if protocol != "prepared" {
            name.push_str(&format!(" -M {protocol} (unnamed)"));
        }
        let run = self
            .pgbench(Pgbench {
                name: name.clone(),
                protocol,
                script: ceiling::booking_script(statement, seats),
                clients: block.clients,
                defines: vec![
                    ("event_base", block.base.to_string()),
                    ("events_per_client", block.per_client.to_string()),
                    ("first_seat", venue.first_seat.to_string()),
                    ("seats", venue.seats.to_string()),
                    ("i", "0".into()),
                    ("status", "confirmed".into()),
                ],
                seconds: self.opts.profile.pgbench_secs,
            })
            .await?;
        let scope = format!("pgbench {name}");
        let check =
            integrity::check_ceiling(&self.pg, &scope, block, run.transactions, seats as i64)
                .await?;
        self.record(check).await;
        Ok(run)
    }

    /// Open loop at each of `OPEN_LOOP_LOADS` × the closed-loop maximum just measured, with the
    /// closed loop's clients (handed back for the integrity check).
    #[allow(clippy::too_many_arguments)]
    async fn open_loops<C: loadgen::Client>(
        &mut self,
        scenario: &str,
        unit: &str,
        addr: std::net::SocketAddr,
        pid: u32,
        kind: &str,
        mut clients: Vec<C>,
        closed_rate: f64,
    ) -> Result<Vec<C>> {
        for load in OPEN_LOOP_LOADS {
            let rate = closed_rate * load;
            let label = format!("{scenario} open {:.0}%", load * 100.0);
            if rate < 1.0 {
                eprintln!("[{scenario}] no open loop at {rate:.1}/s: the closed loop was too slow");
                continue;
            }
            eprintln!(
                "[{scenario}] open loop at {:.0}% of {closed_rate:.0}/s = {rate:.0}/s ...",
                load * 100.0
            );
            db::settle(&self.pg).await;
            let connections = clients.len();
            let window = self.window();
            let cpu = watch_cpu(vec![pid], window);
            let run = loadgen::open_loop(addr, &[kind], clients, rate, window).await?;
            let cpu = cpu.await?;
            clients = run.clients;
            let stats = &run.kinds[0];
            let send = &run.send;
            self.cpu_row(&label, &cpu, stats.completed);
            let lag = send.loadgen_lag.percentiles();
            self.results.open_loop.push(OpenLoop {
                scenario: scenario.to_owned(),
                load,
                closed_loop_rate: closed_rate,
                target_rate: rate,
                achieved_rate: send.answered_in_window as f64 / window.seconds(),
                unit: unit.to_owned(),
                connections,
                latency: stats.percentiles(),
                scheduled: send.scheduled,
                answered: stats.completed,
                late_sends: send.late,
                late_loadgen: send.late_loadgen,
                loadgen_lag_p99_ms: lag.p99_ms,
                loadgen_lag_max_ms: lag.max_ms,
                unsent: send.unsent(),
                errors: stats.errors(),
                loadgen_cpu_pct: cpu.loadgen_pct(),
                first_problem: stats.first_problem.clone(),
            });
        }
        Ok(clients)
    }

    /// `herd`: N simultaneous requests for one seat; exactly one 201, every other answer a 409,
    /// against the server with Redis (the marks are half the design).
    pub async fn herd(&mut self) -> Result<()> {
        let sizes = self.opts.profile.herd_sizes.clone();
        let largest = sizes.iter().copied().max().unwrap_or(0) as u64;
        let limit = procstat::raise_nofile(0)?;
        if limit < largest + 256 {
            return Err(format!(
                "a herd of {largest} needs {} open files, the limit is {limit} (ulimit -n)",
                largest + 256
            )
            .into());
        }
        db::analyze(&self.pg).await?;
        for (round, size) in sizes.into_iter().enumerate() {
            db::settle(&self.pg).await;
            eprintln!("[herd] {size} simultaneous requests for one seat ...");
            let event = self.fixtures.herd_event;
            let seat = self.fixtures.hall.first_seat + round as i64;
            let (users, requests) = herd_requests(&format!("herd-{size}"), size, event, seat)?;
            // Against the server with Redis, as deployed: a herd's losers after the winner's commit
            // are refused from the taken-seat marks there (docs/decisions.md, 18).
            let (addr, pid) = self.cached_server().await?;
            // CPU from the first connect to the last answer: what deciding N races costs.
            let before = CpuMark::now(vec![pid]);
            let run = loadgen::herd(addr, requests).await?;
            let cpu = before.until_now();
            self.cpu_row(&format!("herd {size}"), &cpu, size as u64);

            let (herd, winners, violations) =
                self.judge_herd("direct", event, seat, &users, &run).await?;
            self.herd_winners.extend(winners);
            self.results.herds.push(herd);
            let check = integrity::check(
                &self.pg,
                &format!("herd {size}"),
                &[event],
                &self.herd_winners,
                &violations,
            )
            .await?;
            self.record(check).await;
            // Let the closed connections drain before the next, larger herd.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// A herd's answers against its assertions: exactly one 201 (a booking of exactly that seat
    /// for its user), every other answer a 409 naming the seat, all answered; and in the database
    /// the seat has exactly one ticket, the winner's.
    async fn judge_herd(
        &self,
        route: &str,
        event: i64,
        seat: i64,
        users: &[String],
        run: &HerdRun,
    ) -> Result<(Herd, Vec<BookingSeen>, Vec<String>)> {
        let size = users.len();
        let mut winners = Vec::new();
        let mut violations = Vec::new();
        let mut conflicts = 0;
        let mut other: BTreeMap<String, usize> = BTreeMap::new();
        let mut unanswered = 0;
        let mut latencies = Vec::with_capacity(size);
        let mut first_error = None;
        for (answer, user) in run.answers.iter().zip(users) {
            let Some(status) = answer.status else {
                unanswered += 1;
                first_error = first_error.or_else(|| answer.error.clone());
                continue;
            };
            latencies.push(micros(answer.latency));
            match status {
                StatusCode::CREATED => {
                    match BookingSeen::from_created(&answer.body, event, user, &[seat]) {
                        Ok(booking) => winners.push(booking),
                        Err(v) => violations.push(v),
                    }
                }
                StatusCode::CONFLICT
                    if serde_json::from_slice::<Problem>(&answer.body)
                        .is_ok_and(|p| p.seat_ids.contains(&seat)) =>
                {
                    conflicts += 1
                }
                status => *other.entry(status.as_u16().to_string()).or_default() += 1,
            }
        }
        if let Some(error) = first_error {
            violations.push(format!(
                "{route} herd {size}: {unanswered} unanswered, e.g. {error}"
            ));
        }
        let all_answered = Duration::from_micros(latencies.iter().copied().max().unwrap_or(0));
        let herd = Herd {
            route: route.to_owned(),
            size,
            seat_id: seat,
            created: winners.len(),
            conflicts,
            other,
            unanswered,
            connect_ms: run.connect_time.as_secs_f64() * 1000.0,
            all_answered_ms: all_answered.as_secs_f64() * 1000.0,
            latency: Percentiles::from_micros(&latencies),
        };
        if !herd.as_asserted() {
            violations.push(format!(
                "{route} herd {size}: expected exactly one 201 and {} x 409, got {} x 201, {} x 409, \
                 other {:?}, {unanswered} unanswered",
                size - 1,
                herd.created,
                herd.conflicts,
                herd.other
            ));
        }
        violations.extend(integrity::check_single_winner(&self.pg, event, seat, &winners).await?);
        Ok((herd, winners, violations))
    }

    async fn cached_server(&mut self) -> Result<(std::net::SocketAddr, u32)> {
        if self.cached.is_none() {
            let cache = Cache::On {
                redis_url: self.redis.url.clone(),
                prefix: self.redis.prefix.clone(),
            };
            let server = Server::start(
                "cached",
                &self.server_bin,
                &self.database_url,
                &cache,
                &self.opts.out_dir,
            )
            .await?;
            self.cached = Some(server);
        }
        let server = self.cached.as_ref().expect("just started");
        Ok((server.addr, server.pid))
    }

    /// `read`: one 500-seat event's availability, 32 clients, with the cache off (against
    /// pgbench running the availability query) and on (against nginx serving the same bytes with
    /// the same clients; redis-benchmark GET beside it).
    pub async fn read(&mut self) -> Result<()> {
        let event = self.fixtures.read_event();
        let seats = self.fixtures.hall.seats as usize;
        db::analyze(&self.pg).await?;
        eprintln!("[read] pgbench availability, redis-benchmark ...");
        let ceiling = self
            .pgbench(Pgbench {
                name: "availability".into(),
                protocol: "extended",
                script: ceiling::availability_script(),
                clients: CLIENTS,
                defines: vec![("event_id", event.to_string())],
                seconds: self.opts.profile.pgbench_secs,
            })
            .await?;
        let redis = self.redis.clone();
        let requests = self.opts.profile.redis_requests;
        let get = tokio::task::spawn_blocking(move || {
            ceiling::redis_benchmark(
                "GET",
                &redis.host,
                redis.port,
                requests,
                &["-t".into(), "get".into()],
            )
        })
        .await??;
        self.results.redis.push(get);

        // The same GET with a value as large as the availability answer: what a cache hit costs
        // Redis itself for this payload (informational; the ratio uses plain `-t get`).
        let (_, sample) = Conn::open(self.main.addr)
            .await?
            .send(http::get(
                &format!("/api/v1/events/{event}/availability"),
                &Identity::user("bench-reader"),
            ))
            .await?;
        self.redis_get_of_size("payload", sample.len()).await?;

        for cached in [false, true] {
            let (scenario, addr, pid) = if cached {
                let (addr, pid) = self.cached_server().await?;
                ("read-cached", addr, pid)
            } else {
                ("read-uncached", self.main.addr, self.main.pid)
            };
            eprintln!("[read] service, {scenario} ...");
            db::settle(&self.pg).await;
            let readers = |prefix: &str, path: &str| -> Vec<Reader> {
                (0..CLIENTS)
                    .map(|c| Reader::new(&format!("{prefix}-{c}"), path.to_owned(), seats))
                    .collect()
            };
            let path = format!("/api/v1/events/{event}/availability");
            let clients = readers("bench-reader", &path);
            let window = self.window();
            let cpu = watch_cpu(vec![pid], window);
            let load = loadgen::closed_loop(addr, &["availability"], clients, window).await?;
            let cpu = cpu.await?;
            self.cpu_row(scenario, &cpu, load.kinds[0].completed);
            let row = throughput(scenario, "req/s", &load.kinds[0], window, &cpu);
            let row = if cached {
                eprintln!("[read] nginx, the same bytes ...");
                let clients = readers("bench-nginx-reader", nginx::PLAIN);
                let nginx = self.beside_nginx("nginx plain", clients).await?;
                row.against("nginx plain (same bytes)", nginx)
            } else {
                row.against("pgbench availability", ceiling.tps)
            };
            let closed_rate = row.rate;
            self.results.throughput.push(row);
            if cached {
                self.open_loops(
                    scenario,
                    "req/s",
                    addr,
                    pid,
                    "availability",
                    load.clients,
                    closed_rate,
                )
                .await?;
            }
        }
        let sold = self.fixtures.sold.clone();
        let check = integrity::check(&self.pg, "read", &[event], &sold, &[]).await?;
        self.record(check).await;
        Ok(())
    }

    /// `mixed`: 80 clients browsing and booking 7:2, cache on (the service as deployed), with
    /// the server's peak RSS taken over this scenario alone.
    pub async fn mixed(&mut self) -> Result<()> {
        eprintln!("[mixed] service ...");
        let (addr, pid) = self.cached_server().await?;
        self.cached_peak_before_mixed_kib = procstat::peak_rss_kib(pid).unwrap_or(0);
        let reset = procstat::reset_peak_rss(pid).is_ok();
        db::analyze(&self.pg).await?;
        db::settle(&self.pg).await;
        let big = self.fixtures.big.clone();
        let browse = Arc::new(self.fixtures.browse_events.clone());
        let clients: Vec<Mixed> = self
            .fixtures
            .mixed_events
            .iter()
            .take(MIXED_CLIENTS)
            .enumerate()
            .map(|(c, event)| {
                let booker = Booker::new(
                    format!("bench-mixed-{c}"),
                    SeatStream::new(vec![*event], big.first_seat, big.seats, 1),
                );
                Mixed::new(c, booker, browse.clone())
            })
            .collect();
        let window = self.window();
        let cpu = watch_cpu(vec![pid], window);
        let rss = watch_rss(pid, window);
        let load: LoadResult<Mixed> =
            loadgen::closed_loop(addr, &MIXED_KINDS, clients, window).await?;
        let cpu = cpu.await?;
        let sampled_peak = rss.await?;
        let all = KindStats::combined("all", &load.kinds);
        self.cpu_row("mixed", &cpu, all.completed);
        self.results
            .throughput
            .push(throughput("mixed (all)", "req/s", &all, window, &cpu));
        for kind in &load.kinds {
            let name = format!("mixed {}", kind.name);
            self.results
                .throughput
                .push(throughput(&name, "req/s", kind, window, &cpu));
        }
        // VmHWM since the reset covers every instant; the 50 ms samples are the fallback on
        // kernels that refuse the reset.
        let peak = if reset {
            procstat::peak_rss_kib(pid).unwrap_or(sampled_peak)
        } else {
            sampled_peak
        };
        self.results
            .figure("server peak RSS under mixed", mb(peak), "MB");

        let (seen, violations) = gather(load.clients.into_iter().map(Mixed::into_booker).collect());
        let events = self.fixtures.mixed_events.clone();
        let check = integrity::check(&self.pg, "mixed", &events, &seen, &violations).await?;
        self.record(check).await;
        Ok(())
    }

    /// `lifecycle`: clients holding random seats of one 500-seat event, confirming the hold,
    /// cancelling one confirmed booking in two, and racing plain bookings against it all (cache
    /// off). No ceiling; the integrity check follows every hold and booking to its final state.
    pub async fn lifecycle(&mut self) -> Result<()> {
        eprintln!("[lifecycle] service ...");
        db::analyze(&self.pg).await?;
        db::settle(&self.pg).await;
        let event = self.fixtures.lifecycle_event;
        let hall = self.fixtures.hall.clone();
        let clients: Vec<Lifecycle> = (0..self.opts.profile.lifecycle_clients)
            .map(|c| Lifecycle::new(c, event, hall.first_seat, hall.seats))
            .collect();
        let window = self.window();
        let cpu = watch_cpu(vec![self.main.pid], window);
        let load = loadgen::closed_loop(self.main.addr, &LIFECYCLE_KINDS, clients, window).await?;
        let cpu = cpu.await?;
        let all = KindStats::combined("all", &load.kinds);
        self.cpu_row("lifecycle", &cpu, all.completed);
        self.results
            .throughput
            .push(throughput("lifecycle (all)", "req/s", &all, window, &cpu));
        for kind in &load.kinds {
            let name = format!("lifecycle {}", kind.name);
            self.results
                .throughput
                .push(throughput(&name, "req/s", kind, window, &cpu));
        }

        let mut claims = Vec::new();
        let mut violations = Vec::new();
        let mut lost = 0;
        for client in load.clients {
            claims.extend(client.claims);
            violations.extend(client.violations);
            lost += client.lost;
        }
        let check =
            integrity::check_lifecycle(&self.pg, "lifecycle", event, &claims, lost, &violations)
                .await?;
        self.record(check).await;
        Ok(())
    }

    /// `lambda`: the service shaped as deployed. Each Lambda execution environment serves one
    /// request at a time with a pool of 2 connections, through RDS Proxy. Here: a fleet of
    /// `local-api` processes (`DB_POOL_MAX_SIZE=2`, cache off like the direct `book` run), all
    /// connecting to PgBouncer in transaction mode (`LAMBDA_PROXY_CONNECTIONS` server
    /// connections, as many as the direct run's pool). Measured: `book` with each of the 32
    /// closed-loop clients owning one process, and the largest herd queued for
    /// `lambda_herd_processes` processes. The fleet and PgBouncer are stopped at the end, also on
    /// failure or Ctrl-C (on drop).
    pub async fn lambda(&mut self) -> Result<()> {
        let herd_processes = self.opts.profile.lambda_herd_processes;
        let processes = CLIENTS.max(herd_processes);
        eprintln!(
            "[lambda] PgBouncer (transaction mode, {LAMBDA_PROXY_CONNECTIONS} server connections) \
             and {processes} local-api processes (DB_POOL_MAX_SIZE={LAMBDA_POOL_SIZE}) ..."
        );
        let mut bouncer = PgBouncer::start(&self.pg_base, LAMBDA_PROXY_CONNECTIONS).await?;
        let log = self.opts.out_dir.join("server-lambda.log");
        // Declared after PgBouncer, so dropped (stopped) before it.
        let mut fleet = Fleet::start(
            processes,
            &self.server_bin,
            &bouncer.url_for(&self.database_name),
            LAMBDA_POOL_SIZE,
            &log,
        )
        .await?;
        let outcome = self.lambda_runs(&fleet, &bouncer, herd_processes).await;
        fleet.stop();
        bouncer.stop();
        outcome
    }

    async fn lambda_runs(
        &mut self,
        fleet: &Fleet,
        bouncer: &PgBouncer,
        herd_processes: usize,
    ) -> Result<()> {
        db::analyze(&self.pg).await?;
        let big = self.fixtures.big.clone();
        let ceiling_name = format!("{}-1 {}", Statement::Reference.label(), big.label());
        let ceiling_rate = match self.results.pgbench.iter().find(|p| p.name == ceiling_name) {
            Some(run) => run.tps,
            None => {
                eprintln!("[lambda] pgbench {ceiling_name} (book did not run) ...");
                let k = events_per_client(&big, 1, f64::from(self.opts.profile.pgbench_secs));
                let mut admin = Admin::open(self.main.addr).await?;
                let block = admin.block("lambda reference", &big, CLIENTS, k).await?;
                db::analyze(&self.pg).await?;
                self.book_ceiling(Statement::Reference, 1, &big, &block, "prepared")
                    .await?
                    .tps
            }
        };

        eprintln!("[lambda] book: {CLIENTS} clients, each with a process of its own ...");
        db::settle(&self.pg).await;
        let events = self.fixtures.lambda_events.clone();
        let clients: Vec<Booker> = events
            .iter()
            .enumerate()
            .map(|(c, event)| {
                Booker::new(
                    format!("bench-lambda-{c}"),
                    SeatStream::new(vec![*event], big.first_seat, big.seats, 1),
                )
            })
            .collect();
        let addrs = fleet.addrs();
        let mut pids = fleet.pids();
        pids.push(bouncer.pid);
        let window = self.window();
        let cpu = watch_cpu(pids.clone(), window);
        let load = loadgen::closed_loop_to(&addrs[..CLIENTS], &["book"], clients, window).await?;
        let cpu = cpu.await?;
        let row = throughput("lambda book", "bookings/s", &load.kinds[0], window, &cpu)
            .against(&format!("pgbench {ceiling_name}"), ceiling_rate);
        let book_rate = row.rate;
        self.cpu_row(
            "lambda book (server = processes + PgBouncer)",
            &cpu,
            load.kinds[0].completed,
        );
        self.results.throughput.push(row);
        let (seen, violations) = gather(load.clients);
        let check = integrity::check(&self.pg, "lambda book", &events, &seen, &violations).await?;
        self.record(check).await;

        let size = self
            .opts
            .profile
            .herd_sizes
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        eprintln!(
            "[lambda] herd: {size} bookings of one seat queued for {herd_processes} processes ..."
        );
        db::settle(&self.pg).await;
        let event = self.fixtures.lambda_herd_event;
        let seat = self.fixtures.hall.first_seat;
        let (users, requests) = herd_requests(&format!("lambda-herd-{size}"), size, event, seat)?;
        let before = CpuMark::now(pids);
        let run = loadgen::queued_herd(&addrs[..herd_processes], requests).await?;
        let cpu = before.until_now();
        self.cpu_row(&format!("lambda herd {size}"), &cpu, size as u64);
        let (herd, winners, violations) =
            self.judge_herd("lambda", event, seat, &users, &run).await?;
        self.results.herds.push(herd);
        let check = integrity::check(
            &self.pg,
            &format!("lambda herd {size}"),
            &[event],
            &winners,
            &violations,
        )
        .await?;
        self.record(check).await;

        let peaks: Vec<u64> = fleet
            .pids()
            .iter()
            .map(|&pid| procstat::peak_rss_kib(pid).unwrap_or(0))
            .collect();
        let now: u64 = fleet
            .pids()
            .iter()
            .map(|&pid| procstat::rss_kib(pid).unwrap_or(0))
            .sum();
        self.results.lambda = Some(Lambda {
            processes: fleet.servers.len(),
            book_clients: CLIENTS,
            herd_processes,
            pool_per_process: LAMBDA_POOL_SIZE,
            proxy: format!(
                "{} pool_mode=transaction, default_pool_size=max_db_connections={}",
                bouncer.version, bouncer.server_connections
            ),
            proxy_server_connections: bouncer.server_connections,
            book_rate,
            direct_book_rate: self
                .results
                .throughput
                .iter()
                .find(|t| t.scenario == format!("book {}", big.label()))
                .map(|t| t.rate),
            ceiling_rate: Some(ceiling_rate),
            rss_per_process_max_mb: mb(peaks.iter().copied().max().unwrap_or(0)),
            rss_total_mb: mb(now),
        });
        Ok(())
    }

    /// Whole-run process figures, taken before the servers stop; nginx is stopped.
    pub fn finish(&mut self) {
        if let Some(mut nginx) = self.nginx.take() {
            nginx.stop();
        }
        if let Ok(kib) = procstat::peak_rss_kib(self.main.pid) {
            self.results
                .figure("server peak RSS, whole run (cache off)", mb(kib), "MB");
        }
        if let Some(cached) = &self.cached {
            if let Ok(kib) = procstat::peak_rss_kib(cached.pid) {
                let kib = kib.max(self.cached_peak_before_mixed_kib);
                self.results
                    .figure("server peak RSS, whole run (cache on)", mb(kib), "MB");
            }
        }
    }
}

/// The largest VmRSS seen every 50 ms through the window (warm-up included).
fn watch_rss(pid: u32, window: Window) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while std::time::Instant::now() < window.end {
            peak = peak.max(procstat::rss_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    })
}
