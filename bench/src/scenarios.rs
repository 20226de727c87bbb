//! The scenarios: each measures the service, measures its ceiling right beside it, and checks
//! integrity before the next one starts.

use crate::ceiling::{self, Pgbench, PgbenchRun, RedisRun, Statement, CLIENTS};
use crate::cli::Options;
use crate::clients::{booking, Booker, Lifecycle, Mixed, Reader};
use crate::fixtures::{Admin, Block, Fixtures, Venue, MIXED_CLIENTS};
use crate::http::{Body, Identity};
use crate::integrity::{self, BookingSeen, Check};
use crate::loadgen::{self, Client, HerdRun, KindStats, Window};
use crate::nginx::{self, Nginx};
use crate::redis::Redis;
use crate::report::{CpuUse, Herd, OpenLoop, Results, Throughput, VenueBooking};
use crate::server::{self, Server};
use crate::stats::{micros, Percentiles};
use crate::{db, procstat, Result};
use hyper::{Request, StatusCode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::Client as Pg;
use Statement::{BookFn, Reference};

mod onsale;
mod webhooks;

pub struct Bench {
    pub opts: Options,
    pub fixtures: Fixtures,
    /// The bench database: its URL and name, and the server (host:port) and user it is on.
    pub database_url: String,
    pub database_name: String,
    pub pg_server: String,
    pub pg_user: String,
    pub pg: Pg,
    pub main: Server,
    /// The server with the Redis cache on, started the first time a scenario wants it.
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

/// Where a load goes (client `i` to `addrs[i % n]`), and the processes whose CPU is the server's.
struct To {
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
}

impl Server {
    fn to(&self) -> To {
        To {
            addrs: vec![self.addr],
            pids: vec![self.pid],
        }
    }
}

/// CPU counters at one instant: the server (`pids` together), PostgreSQL, this process (the load
/// generator), and the whole machine (which also shows anyone else's load).
struct Cpu {
    pids: Vec<u32>,
    at: Instant,
    seconds: [f64; 3],
    machine: (u64, u64),
}

impl Cpu {
    fn now(pids: Vec<u32>) -> Cpu {
        let server = pids.iter().map(|&pid| procstat::cpu_seconds(pid)).sum();
        let seconds = [
            server,
            procstat::postgres_cpu_seconds(),
            procstat::cpu_seconds(std::process::id()),
        ];
        Cpu {
            at: Instant::now(),
            seconds,
            machine: procstat::machine_ticks(),
            pids,
        }
    }

    /// From this mark to `end`, as `scenario`'s row with `requests` answered.
    fn until(&self, end: &Cpu, scenario: &str, requests: u64) -> CpuUse {
        let elapsed = (end.at - self.at).as_secs_f64();
        let [server, postgres, loadgen] = [0, 1, 2].map(|i| end.seconds[i] - self.seconds[i]);
        let (busy, total) = (
            end.machine.0 - self.machine.0,
            end.machine.1 - self.machine.1,
        );
        let per_request = |s: f64| 1000.0 * s / requests.max(1) as f64;
        CpuUse {
            scenario: scenario.to_owned(),
            server_pct: 100.0 * server / elapsed,
            postgres_pct: 100.0 * postgres / elapsed,
            loadgen_pct: 100.0 * loadgen / elapsed,
            machine_busy_pct: 100.0 * busy as f64 / total.max(1) as f64,
            server_ms_per_request: per_request(server),
            postgres_ms_per_request: per_request(postgres),
        }
    }

    fn until_now(&self, scenario: &str, requests: u64) -> CpuUse {
        self.until(&Cpu::now(self.pids.clone()), scenario, requests)
    }
}

/// Marks of the CPU of `pids` at the window's start and end.
fn watch_cpu(pids: &[u32], window: Window) -> JoinHandle<(Cpu, Cpu)> {
    let pids = pids.to_vec();
    tokio::spawn(async move {
        tokio::time::sleep_until(window.start.into()).await;
        let start = Cpu::now(pids.clone());
        tokio::time::sleep_until(window.end.into()).await;
        (start, Cpu::now(pids))
    })
}

/// A throughput row for `stats` over `seconds`.
fn throughput(scenario: &str, unit: &str, stats: &KindStats, seconds: f64, cpu: f64) -> Throughput {
    Throughput {
        scenario: scenario.to_owned(),
        rate: stats.completed as f64 / seconds,
        unit: unit.to_owned(),
        latency: stats.percentiles(),
        requests: stats.completed,
        errors: stats.errors(),
        statuses: stats.statuses.clone(),
        loadgen_cpu_pct: cpu,
        first_problem: stats.first_problem.clone(),
        ..Throughput::default()
    }
}

/// Every confirmed booking the clients saw, and every contradiction.
fn gather(bookers: impl IntoIterator<Item = Booker>) -> (Vec<BookingSeen>, Vec<String>) {
    let (mut seen, mut violations) = (Vec::new(), Vec::new());
    for b in bookers {
        if b.ran_out {
            let user = &b.user_id;
            violations.push(format!(
                "{user} ran out of seats inside the window (too few events)"
            ));
        }
        seen.extend(b.seen);
        violations.extend(b.violations);
    }
    (seen, violations)
}

/// Events each of `CLIENTS` clients needs on `venue` to book `seats` seats a booking for
/// `seconds` without running out, at 12,000 bookings/s (half that for several seats): more than
/// any run here reaches.
fn events_per_client(venue: &Venue, seats: usize, seconds: f64) -> usize {
    let rate = if seats > 1 { 6_000.0 } else { 12_000.0 };
    let per_event = (venue.seats / seats as i64) as f64;
    (rate * seconds / CLIENTS as f64 / per_event)
        .ceil()
        .max(1.0) as usize
}

/// The service's connection pool size: DB_POOL_MAX_SIZE, passed through, or local-api's default.
fn pool_size() -> usize {
    let size = std::env::var("DB_POOL_MAX_SIZE")
        .ok()
        .and_then(|v| v.parse().ok());
    size.filter(|n| *n > 0).unwrap_or(16)
}

/// `size` users each asking for the same seat: their ids and their requests.
fn herd_requests(size: usize, event: i64, seat: i64) -> (Vec<String>, Vec<Request<Body>>) {
    let users: Vec<String> = (0..size)
        .map(|i| format!("herd-{event}-{seat}-{i}"))
        .collect();
    let request = |u: &String| booking("/api/v1/bookings", &Identity::user(u), event, &[seat]);
    let requests = users.iter().map(request).collect();
    (users, requests)
}

/// A Lambda execution environment's pool (`LAMBDA_POOL_SIZE` deployed), and PgBouncer's server
/// connections (the direct run's pool, local-api's 16).
const LAMBDA_POOL_SIZE: usize = 2;
const LAMBDA_PROXY_CONNECTIONS: usize = 16;

/// Open-loop rates, as shares of the closed-loop maximum measured just before.
const OPEN_LOOP_LOADS: [f64; 2] = [0.5, 0.8];

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// One venue of a booking scenario: the events of each side, and the informational ceilings
/// (`book()` at the pool's size, and unnamed, `-M extended`) with their protocol.
struct VenueRun {
    venue: Venue,
    seats: usize,
    reference: Block,
    book_fn: Block,
    service: Block,
    what_if: Vec<(Block, &'static str)>,
    open: bool,
}

impl Bench {
    fn window(&self) -> Window {
        Window::after(self.opts.profile.warmup, self.opts.profile.measure)
    }

    async fn pgbench(&mut self, spec: Pgbench) -> Result<PgbenchRun> {
        db::settle(&self.pg).await;
        let (url, dir) = (self.database_url.clone(), self.opts.out_dir.join("pgbench"));
        std::fs::create_dir_all(&dir)?;
        let run = tokio::task::spawn_blocking(move || spec.run(&url, &dir)).await??;
        self.results.pgbench.push(run.clone());
        Ok(run)
    }

    /// redis-benchmark of `args` (`-t get`, or a command), recorded as a ceiling.
    async fn redis_benchmark(&mut self, name: &str, args: &[&str]) -> Result<RedisRun> {
        let (redis, requests) = (self.redis.clone(), self.opts.profile.redis_requests);
        let (name, args) = (
            name.to_owned(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        let run = move || ceiling::redis_benchmark(&name, &redis, requests, &args);
        let run = tokio::task::spawn_blocking(run).await??;
        self.results.redis.push(run.clone());
        Ok(run)
    }

    /// redis-benchmark GET of one value of `size` bytes: what a cache hit of that size costs
    /// Redis itself.
    async fn redis_get_of_size(&mut self, key: &str, size: usize) -> Result<RedisRun> {
        let key = self.redis.key(key);
        let value = "x".repeat(size);
        let set = ["SET", key.as_str(), value.as_str()];
        let output = self.redis.command("redis-cli").args(set).output()?;
        if !output.status.success() {
            return Err(format!("redis-cli SET {key}: {}", output.status).into());
        }
        self.redis_benchmark(&format!("GET {size} B value"), &["GET", &key])
            .await
    }

    async fn record(&mut self, check: Check) {
        if !check.passed() {
            eprintln!("INTEGRITY VIOLATION in {}:", check.scope);
            check
                .violations
                .iter()
                .take(10)
                .for_each(|v| eprintln!("  {v}"));
        }
        self.results.integrity.push(check);
    }

    async fn check(
        &mut self,
        scope: &str,
        events: &[i64],
        seen: &[BookingSeen],
        found: &[String],
    ) -> Result<()> {
        let check = integrity::check(&self.pg, scope, events, seen, found).await?;
        self.record(check).await;
        Ok(())
    }

    /// A closed loop of `clients` over the window: its CPU row, and a throughput row per kind
    /// (after an `all` row when there are several); the clients are handed back.
    async fn measure<C: Client>(
        &mut self,
        name: &str,
        to: &To,
        clients: Vec<C>,
    ) -> Result<(Vec<C>, Vec<Throughput>, CpuUse)> {
        db::settle(&self.pg).await;
        let window = self.window();
        let cpu = watch_cpu(&to.pids, window);
        let load = loadgen::closed_loop(&to.addrs, clients, window).await?;
        let all = KindStats::combined("all", &load.kinds);
        let (start, end) = cpu.await?;
        let cpu = start.until(&end, name, all.completed);
        self.results.cpu.push(cpu.clone());
        let (seconds, several) = (window.seconds(), load.kinds.len() > 1);
        let row = |name: String, kind: &KindStats| {
            throughput(&name, C::UNIT, kind, seconds, cpu.loadgen_pct)
        };
        let mut rows: Vec<Throughput> = several
            .then(|| row(format!("{name} (all)"), &all))
            .into_iter()
            .collect();
        for kind in &load.kinds {
            rows.push(row(
                if several {
                    format!("{name} {}", kind.name)
                } else {
                    name.to_owned()
                },
                kind,
            ));
        }
        Ok((load.clients, rows, cpu))
    }

    /// `book` (1 seat a booking) and `book-multi` (4 seats) on the arena (40,000 seats) and on
    /// the hall (500): 32 clients each booking their own free seats, beside pgbench running the
    /// reference statement and `book()` with the same 32 clients on the same kind of seats
    /// (`-M prepared`: PostgreSQL's best for each).
    pub async fn book(&mut self, seats: usize) -> Result<()> {
        let scenario = if seats == 1 { "book" } else { "book-multi" };
        let p = &self.opts.profile;
        let (pgbench_s, window_s) = (
            f64::from(p.pgbench_secs),
            (p.warmup + p.measure).as_secs_f64(),
        );
        let (started, mut runs) = (Instant::now(), Vec::new());
        let mut admin = Admin::open(self.main.addr).await?;
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
            )
            .await?;
            let mut what_if = Vec::new();
            if open {
                if pool_size() != CLIENTS {
                    what_if.push((block("pool", pool_size(), k).await?, "prepared"));
                }
                what_if.push((block("extended", CLIENTS, k).await?, "extended"));
            }
            runs.push(VenueRun {
                venue,
                seats,
                reference,
                book_fn,
                service,
                what_if,
                open,
            });
        }
        let blocks = runs.iter().flat_map(|r| {
            [r.reference, r.book_fn, r.service]
                .into_iter()
                .chain(r.what_if.iter().map(|w| w.0))
        });
        let events: usize = blocks.map(|b| b.clients * b.per_client).sum();
        eprintln!(
            "[{scenario}] {events} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        db::analyze(&self.pg).await?;
        for run in runs {
            self.book_on(scenario, run).await?;
        }
        Ok(())
    }

    async fn book_on(&mut self, scenario: &str, run: VenueRun) -> Result<()> {
        let (venue, seats) = (&run.venue, run.seats);
        let name = format!("{scenario} {}", venue.label());
        eprintln!("[{name}] pgbench reference and book() ...");
        let reference = self
            .book_ceiling(&run, Reference, &run.reference, "prepared")
            .await?;
        let book_fn = self
            .book_ceiling(&run, BookFn, &run.book_fn, "prepared")
            .await?;
        for (block, protocol) in &run.what_if {
            self.book_ceiling(&run, BookFn, block, protocol).await?;
        }

        eprintln!("[{name}] service ...");
        let booker = |c| {
            let user = format!("bench-{scenario}-{}-{c}", venue.seats);
            Booker::new(user, run.service.client_events(c), venue, seats as i64)
        };
        let clients = (0..CLIENTS).map(booker).collect();
        let (clients, mut rows, cpu) = self.measure(&name, &self.main.to(), clients).await?;
        let mut row = rows
            .remove(0)
            .against(&format!("pgbench {}", reference.name), reference.tps);
        if seats > 1 {
            row.also = Some(format!("{:.0} seats/s", row.rate * seats as f64));
        }
        if row.requests > 0 {
            let figure = format!("server CPU per 1,000 bookings ({name})");
            self.results
                .figure(&figure, cpu.server_ms_per_request, "CPU s");
        }
        let (scenario, venue_seats) = (scenario.to_owned(), venue.seats);
        let (service, reference, book_fn) = (row.rate, reference.tps, book_fn.tps);
        let seats_per_booking = seats;
        self.results.venues.push(VenueBooking {
            scenario,
            seats_per_booking,
            venue_seats,
            service,
            reference,
            book_fn,
        });
        self.results.throughput.push(row);

        // The same clients go on booking their own seats, now at a fixed arrival rate; the
        // integrity check covers every booking of both loops.
        let clients = match run.open {
            true => {
                self.open_loops(&name, &self.main.to(), clients, service)
                    .await?
            }
            false => clients,
        };
        let (seen, violations) = gather(clients);
        self.check(&name, &run.service.events(), &seen, &violations)
            .await
    }

    /// pgbench booking `run.seats` seats a transaction with `statement` in `block`'s events, and
    /// the integrity check of what it stored.
    async fn book_ceiling(
        &mut self,
        run: &VenueRun,
        statement: Statement,
        block: &Block,
        protocol: &'static str,
    ) -> Result<PgbenchRun> {
        let (venue, seats) = (&run.venue, run.seats);
        let mut name = format!("{}-{seats} {}", statement.label(), venue.label());
        if block.clients != CLIENTS {
            name.push_str(&format!(" -c {} (pool size)", block.clients));
        }
        if protocol != "prepared" {
            name.push_str(&format!(" -M {protocol} (unnamed)"));
        }
        let defines = vec![
            ("event_base", block.base.to_string()),
            ("events_per_client", block.per_client.to_string()),
            ("first_seat", venue.first_seat.to_string()),
            ("seats", venue.seats.to_string()),
            ("i", "0".into()),
            ("status", "confirmed".into()),
        ];
        let (script, clients) = (ceiling::booking_script(statement, seats), block.clients);
        let seconds = self.opts.profile.pgbench_secs;
        let spec = Pgbench {
            name: name.clone(),
            protocol,
            script,
            clients,
            defines,
            seconds,
        };
        let result = self.pgbench(spec).await?;
        let scope = format!("pgbench {name}");
        let check =
            integrity::check_ceiling(&self.pg, &scope, block, result.transactions, seats as i64)
                .await?;
        self.record(check).await;
        Ok(result)
    }

    /// Open loop at each of `OPEN_LOOP_LOADS` × the closed-loop maximum just measured, with the
    /// closed loop's clients (handed back for the integrity check).
    async fn open_loops<C: Client>(
        &mut self,
        scenario: &str,
        to: &To,
        mut clients: Vec<C>,
        closed_rate: f64,
    ) -> Result<Vec<C>> {
        for load in OPEN_LOOP_LOADS {
            let (rate, pct) = (closed_rate * load, load * 100.0);
            if rate < 1.0 {
                eprintln!("[{scenario}] no open loop at {rate:.1}/s: the closed loop was too slow");
                continue;
            }
            eprintln!(
                "[{scenario}] open loop at {pct:.0}% of {closed_rate:.0}/s = {rate:.0}/s ..."
            );
            db::settle(&self.pg).await;
            let (connections, window) = (clients.len(), self.window());
            let cpu = watch_cpu(&to.pids, window);
            let run = loadgen::open_loop(&to.addrs, clients, rate, window).await?;
            let (stats, send) = (&run.kinds[0], &run.send);
            let (start, end) = cpu.await?;
            let cpu = start.until(&end, &format!("{scenario} open {pct:.0}%"), stats.completed);
            let lag = send.loadgen_lag.percentiles();
            self.results.open_loop.push(OpenLoop {
                scenario: scenario.to_owned(),
                load,
                closed_loop_rate: closed_rate,
                target_rate: rate,
                achieved_rate: send.answered_in_window as f64 / window.seconds(),
                unit: C::UNIT.to_owned(),
                connections,
                latency: stats.percentiles(),
                scheduled: send.scheduled,
                answered: stats.completed,
                late_sends: send.late,
                late_loadgen: send.late_loadgen,
                loadgen_lag_p99_ms: lag.p99_ms,
                loadgen_lag_max_ms: lag.max_ms,
                unsent: send.scheduled - send.sent,
                errors: stats.errors(),
                loadgen_cpu_pct: cpu.loadgen_pct,
                first_problem: stats.first_problem.clone(),
            });
            self.results.cpu.push(cpu);
            clients = run.clients;
        }
        Ok(clients)
    }

    /// `herd`: N simultaneous requests for one seat; exactly one 201, every other answer a 409.
    /// Against the server with Redis, as deployed: a herd's losers after the winner's commit are
    /// refused from the taken-seat marks there (docs/decisions.md, 18).
    pub async fn herd(&mut self) -> Result<()> {
        let sizes = self.opts.profile.herd_sizes.clone();
        let needed = sizes.iter().max().map_or(0, |n| *n as u64 + 256);
        let limit = procstat::raise_nofile(0)?;
        if limit < needed {
            return Err(format!(
                "the herds need {needed} open files, the limit is {limit} (ulimit -n)"
            )
            .into());
        }
        db::analyze(&self.pg).await?;
        for (round, size) in sizes.into_iter().enumerate() {
            db::settle(&self.pg).await;
            eprintln!("[herd] {size} simultaneous requests for one seat ...");
            let (event, seat) = (
                self.fixtures.herd_event,
                self.fixtures.hall.first_seat + round as i64,
            );
            let (users, requests) = herd_requests(size, event, seat);
            let to = self.cached_server().await?;
            // CPU from the first connect to the last answer: what deciding N races costs.
            let before = Cpu::now(to.pids);
            let run = loadgen::herd(&to.addrs, requests).await?;
            self.results
                .cpu
                .push(before.until_now(&format!("herd {size}"), size as u64));
            let (herd, winners, violations) =
                self.judge_herd("direct", event, seat, &users, &run).await?;
            self.herd_winners.extend(winners);
            self.results.herds.push(herd);
            let winners = self.herd_winners.clone();
            self.check(&format!("herd {size}"), &[event], &winners, &violations)
                .await?;
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
        let (mut winners, mut violations, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut conflicts, mut unanswered, mut first_error) = (0, 0, None);
        let mut other: BTreeMap<String, usize> = BTreeMap::new();
        for (answer, user) in run.answers.iter().zip(users) {
            let response = match &answer.answer {
                Ok(response) => response,
                Err(error) => {
                    unanswered += 1;
                    first_error = first_error.or_else(|| Some(error.clone()));
                    continue;
                }
            };
            latencies.push(micros(answer.latency));
            let body = response.body();
            match response.status() {
                StatusCode::CREATED => {
                    match BookingSeen::from_answer(body, event, user, &[seat], "confirmed") {
                        Ok(booking) => winners.push(booking),
                        Err(v) => violations.push(v),
                    }
                }
                StatusCode::CONFLICT if names_seat(body, seat) => conflicts += 1,
                status => *other.entry(status.as_u16().to_string()).or_default() += 1,
            }
        }
        if let Some(error) = first_error {
            violations.push(format!(
                "{route} herd {size}: {unanswered} unanswered, e.g. {error}"
            ));
        }
        let all_answered_us = latencies.iter().copied().max().unwrap_or(0);
        let herd = Herd {
            route: route.to_owned(),
            size,
            seat_id: seat,
            created: winners.len(),
            conflicts,
            other,
            unanswered,
            connect_ms: run.connect_time.as_secs_f64() * 1000.0,
            all_answered_ms: all_answered_us as f64 / 1000.0,
            latency: Percentiles::from_micros(&latencies),
        };
        if !herd.as_asserted() {
            let (created, conflicts, other) = (herd.created, herd.conflicts, &herd.other);
            violations.push(format!(
                "{route} herd {size}: expected exactly one 201 and {} x 409, got {created} x 201, \
                 {conflicts} x 409, other {other:?}, {unanswered} unanswered",
                size - 1
            ));
        }
        violations.extend(integrity::check_single_winner(&self.pg, event, seat, &winners).await?);
        Ok((herd, winners, violations))
    }

    async fn cached_server(&mut self) -> Result<To> {
        if self.cached.is_none() {
            let env = [
                ("REDIS_URL", self.redis.url.clone()),
                ("CACHE_PREFIX", self.redis.prefix.clone()),
            ];
            let (bin, out) = (&self.server_bin, &self.opts.out_dir);
            self.cached = Some(Server::start("cached", bin, &self.database_url, out, &env).await?);
        }
        Ok(self.cached.as_ref().expect("just started").to())
    }

    /// `read`: one 500-seat event's availability, 32 clients, with the cache off (against
    /// pgbench running the availability query) and on (against nginx serving the same bytes with
    /// the same clients; redis-benchmark GET beside it).
    pub async fn read(&mut self) -> Result<()> {
        let (event, seats) = (
            self.fixtures.read_event(),
            self.fixtures.hall.seats as usize,
        );
        db::analyze(&self.pg).await?;
        eprintln!("[read] pgbench availability, redis-benchmark ...");
        let (script, defines) = (
            ceiling::availability_script(),
            vec![("event_id", event.to_string())],
        );
        let (name, seconds) = ("availability".into(), self.opts.profile.pgbench_secs);
        let spec = Pgbench {
            name,
            protocol: "extended",
            script,
            clients: CLIENTS,
            defines,
            seconds,
        };
        let ceiling = self.pgbench(spec).await?;
        self.redis_benchmark("GET", &["-t", "get"]).await?;
        // The same GET with a value as large as the availability answer: what a cache hit costs
        // Redis itself for this payload (informational; the ratio uses plain `-t get`).
        let path = format!("/api/v1/events/{event}/availability");
        let sample = Admin::open(self.main.addr).await?.get(&path).await?;
        self.redis_get_of_size("payload", sample.len()).await?;

        let readers = |prefix: &str, path: &str| -> Vec<Reader> {
            (0..CLIENTS)
                .map(|c| Reader::new(&format!("{prefix}-{c}"), path, seats))
                .collect()
        };
        eprintln!("[read] service, read-uncached ...");
        let clients = readers("bench-reader", &path);
        let (_, mut rows, _) = self
            .measure("read-uncached", &self.main.to(), clients)
            .await?;
        self.results
            .throughput
            .push(rows.remove(0).against("pgbench availability", ceiling.tps));

        eprintln!("[read] service, read-cached ...");
        let to = self.cached_server().await?;
        let (clients, mut rows, _) = self
            .measure("read-cached", &to, readers("bench-reader", &path))
            .await?;
        eprintln!("[read] nginx, the same bytes ...");
        let nginx = self
            .beside_nginx("nginx plain", readers("bench-nginx-reader", nginx::PLAIN))
            .await?;
        let row = rows.remove(0).against("nginx plain (same bytes)", nginx);
        let closed_rate = row.rate;
        self.results.throughput.push(row);
        self.open_loops("read-cached", &to, clients, closed_rate)
            .await?;
        let sold = self.fixtures.sold.clone();
        self.check("read", &[event], &sold, &[]).await
    }

    /// `mixed`: 80 clients browsing and booking 7:2, cache on (the service as deployed), with
    /// the server's peak RSS taken over this scenario alone.
    pub async fn mixed(&mut self) -> Result<()> {
        eprintln!("[mixed] service ...");
        let to = self.cached_server().await?;
        let pid = to.pids[0];
        self.cached_peak_before_mixed_kib = procstat::rss_kib(pid).0;
        let reset = procstat::reset_peak_rss(pid).is_ok();
        db::analyze(&self.pg).await?;
        let (big, events) = (
            self.fixtures.big.clone(),
            self.fixtures.mixed_events.clone(),
        );
        let browse = Arc::new(self.fixtures.browse_events.clone());
        let mixed = |(c, event): (usize, &i64)| {
            let booker = Booker::new(format!("bench-mixed-{c}"), vec![*event], &big, 1);
            Mixed::new(c, booker, browse.clone())
        };
        let clients = events
            .iter()
            .take(MIXED_CLIENTS)
            .enumerate()
            .map(mixed)
            .collect();
        // VmHWM since the reset covers every instant; VmRSS every 50 ms is the fallback on
        // kernels that refuse the reset.
        let sampled = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn({
            let sampled = sampled.clone();
            async move {
                loop {
                    sampled.fetch_max(procstat::rss_kib(pid).1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let (clients, rows, _) = self.measure("mixed", &to, clients).await?;
        sampler.abort();
        self.results.throughput.extend(rows);
        let peak = Some(procstat::rss_kib(pid).0).filter(|k| reset && *k > 0);
        let peak = peak.unwrap_or(sampled.load(Ordering::Relaxed));
        self.results
            .figure("server peak RSS under mixed", mb(peak), "MB");
        let (seen, violations) = gather(clients.into_iter().map(|m: Mixed| m.booker));
        self.check("mixed", &events, &seen, &violations).await
    }

    /// `lifecycle`: clients holding random seats of one 500-seat event, confirming the hold,
    /// cancelling one confirmed booking in two, and racing plain bookings against it all (cache
    /// off). No ceiling; the integrity check follows every hold and booking to its final state.
    pub async fn lifecycle(&mut self) -> Result<()> {
        eprintln!("[lifecycle] service ...");
        db::analyze(&self.pg).await?;
        let (event, hall) = (self.fixtures.lifecycle_event, self.fixtures.hall.clone());
        let client = |c| Lifecycle::new(c, event, hall.first_seat, hall.seats);
        let clients = (0..self.opts.profile.lifecycle_clients)
            .map(client)
            .collect();
        let (clients, rows, _) = self.measure("lifecycle", &self.main.to(), clients).await?;
        self.results.throughput.extend(rows);
        let (mut claims, mut violations, mut lost) = (Vec::new(), Vec::new(), 0);
        for client in clients {
            claims.extend(client.claims);
            violations.extend(client.violations);
            lost += client.lost;
        }
        let check =
            integrity::check_lifecycle(&self.pg, "lifecycle", event, &claims, lost, &violations);
        let check = check.await?;
        self.record(check).await;
        Ok(())
    }

    /// `lambda`: the service shaped as deployed. Each Lambda execution environment serves one
    /// request at a time with a pool of 2 connections, through RDS Proxy. Here: a fleet of
    /// `local-api` processes (`DB_POOL_MAX_SIZE=2`, cache off like the direct `book` run), all
    /// connecting to PgBouncer in transaction mode. Measured: `book` with each of the 32
    /// closed-loop clients owning one process, and the largest herd queued for
    /// `lambda_herd_processes` processes. The fleet, then PgBouncer, are stopped at the end, also
    /// on failure or Ctrl-C (on drop).
    pub async fn lambda(&mut self) -> Result<()> {
        let herd_processes = self.opts.profile.lambda_herd_processes;
        let processes = CLIENTS.max(herd_processes);
        eprintln!(
            "[lambda] PgBouncer (transaction mode, {LAMBDA_PROXY_CONNECTIONS} server connections) \
             and {processes} local-api processes (DB_POOL_MAX_SIZE={LAMBDA_POOL_SIZE}) ..."
        );
        let server_url = format!("postgres://{}@{}/postgres", self.pg_user, self.pg_server);
        let bouncer =
            test_support::PgBouncer::try_start_on(&server_url, LAMBDA_PROXY_CONNECTIONS).await?;
        let (log, env) = (
            self.opts.out_dir.join("server-lambda.log"),
            [("DB_POOL_MAX_SIZE", LAMBDA_POOL_SIZE.to_string())],
        );
        let url = format!(
            "postgres://{}@{}/{}",
            self.pg_user,
            bouncer.address(),
            self.database_name
        );
        // Declared after PgBouncer, so dropped (stopped) before it.
        let mut fleet = Server::fleet(processes, &self.server_bin, &url, &log, &env).await?;
        let setting = format!(
            "{processes} local-api processes, DB_POOL_MAX_SIZE={LAMBDA_POOL_SIZE} each, one request \
             at a time each, through {} pool_mode=transaction, \
             default_pool_size=max_db_connections={LAMBDA_PROXY_CONNECTIONS}; herd queued for {herd_processes}",
            bouncer.version()
        );
        self.results.settings.insert("lambda".into(), setting);
        let to = To {
            addrs: fleet.iter().map(|s| s.addr).collect(),
            pids: fleet.iter().map(|s| s.pid).chain([bouncer.pid()]).collect(),
        };
        let outcome = self.lambda_runs(&to, herd_processes).await;
        let rss: Vec<(u64, u64)> = fleet.iter().map(|s| procstat::rss_kib(s.pid)).collect();
        let peak = rss.iter().map(|r| r.0).max().unwrap_or(0);
        self.results
            .figure("lambda: RSS per process, at most", mb(peak), "MB");
        self.results.figure(
            "lambda: RSS of the whole fleet",
            mb(rss.iter().map(|r| r.1).sum()),
            "MB",
        );
        server::stop_all(&mut fleet);
        outcome
    }

    async fn lambda_runs(&mut self, fleet: &To, herd_processes: usize) -> Result<()> {
        db::analyze(&self.pg).await?;
        let big = self.fixtures.big.clone();
        let ceiling_name = format!("{}-1 {}", Reference.label(), big.label());
        let ceiling_rate = match self.results.pgbench.iter().find(|p| p.name == ceiling_name) {
            Some(run) => run.tps,
            None => {
                eprintln!("[lambda] pgbench {ceiling_name} (book did not run) ...");
                let k = events_per_client(&big, 1, f64::from(self.opts.profile.pgbench_secs));
                let block = Admin::open(self.main.addr)
                    .await?
                    .block("lambda reference", &big, CLIENTS, k)
                    .await?;
                db::analyze(&self.pg).await?;
                let (service, what_if) = (block, Vec::new());
                let run = VenueRun {
                    venue: big.clone(),
                    seats: 1,
                    reference: block,
                    book_fn: block,
                    service,
                    what_if,
                    open: false,
                };
                self.book_ceiling(&run, Reference, &block, "prepared")
                    .await?
                    .tps
            }
        };

        eprintln!("[lambda] book: {CLIENTS} clients, each with a process of its own ...");
        let events = self.fixtures.lambda_events.clone();
        let booker = |(c, event): (usize, &i64)| {
            Booker::new(format!("bench-lambda-{c}"), vec![*event], &big, 1)
        };
        let clients = events.iter().enumerate().map(booker).collect();
        let to = To {
            addrs: fleet.addrs[..CLIENTS].to_vec(),
            pids: fleet.pids.clone(),
        };
        let (clients, mut rows, _) = self
            .measure("lambda book (server = processes + PgBouncer)", &to, clients)
            .await?;
        let mut row = rows
            .remove(0)
            .against(&format!("pgbench {ceiling_name}"), ceiling_rate);
        row.scenario = "lambda book".into();
        let direct = format!("book {}", big.label());
        let direct = self
            .results
            .throughput
            .iter()
            .find(|t| t.scenario == direct)
            .map(|t| t.rate);
        if let Some(direct) = direct.filter(|d| *d > 0.0) {
            let figure = format!("lambda book / direct book {} ({direct:.0}/s)", big.label());
            self.results.figure(&figure, row.rate / direct, "x");
        }
        self.results.throughput.push(row);
        let (seen, violations) = gather(clients);
        self.check("lambda book", &events, &seen, &violations)
            .await?;

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
        let (event, seat) = (
            self.fixtures.lambda_herd_event,
            self.fixtures.hall.first_seat,
        );
        let (users, requests) = herd_requests(size, event, seat);
        let before = Cpu::now(fleet.pids.clone());
        let run = loadgen::herd(&fleet.addrs[..herd_processes], requests).await?;
        self.results
            .cpu
            .push(before.until_now(&format!("lambda herd {size}"), size as u64));
        let (herd, winners, violations) =
            self.judge_herd("lambda", event, seat, &users, &run).await?;
        self.results.herds.push(herd);
        self.check(
            &format!("lambda herd {size}"),
            &[event],
            &winners,
            &violations,
        )
        .await
    }

    /// Whole-run process figures, taken before the servers stop; nginx is stopped.
    pub fn finish(&mut self) {
        self.nginx = None;
        let main = procstat::rss_kib(self.main.pid).0;
        self.results
            .figure("server peak RSS, whole run (cache off)", mb(main), "MB");
        if let Some(cached) = &self.cached {
            let kib = procstat::rss_kib(cached.pid)
                .0
                .max(self.cached_peak_before_mixed_kib);
            self.results
                .figure("server peak RSS, whole run (cache on)", mb(kib), "MB");
        }
    }
}

/// Whether a 409's problem body names `seat`.
fn names_seat(body: &[u8], seat: i64) -> bool {
    #[derive(serde::Deserialize)]
    struct Problem {
        #[serde(default)]
        seat_ids: Vec<i64>,
    }
    serde_json::from_slice::<Problem>(body).is_ok_and(|p| p.seat_ids.contains(&seat))
}
