//! The scenarios: each measures the service, measures its ceiling right beside it, and checks
//! integrity before the next one starts.

use crate::ceiling::{self, Pgbench, PgbenchRun, RedisRun, Statement, CLIENTS};
use crate::clients::{booking, Booker, Reader};
use crate::cores;
use crate::fixtures::{Admin, Block, Fixtures, Venue};
use crate::integrity::{self, BookingSeen, Check};
use crate::loadgen::{self, Client, HerdRun, Window};
use crate::loadgen::{micros, Percentiles};
use crate::procs::{self, Nginx, Server};
use crate::report::{CpuUse, Herd, Results, Throughput, VenueBooking};
use crate::{http, Options, Redis, Result};
use hyper::StatusCode;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::Client as Pg;
use Statement::{BookFn, Reference};

mod best;
mod onsale;
mod queue;
mod webhooks;

pub struct Bench {
    pub opts: Options,
    pub fixtures: Fixtures,
    pub database_url: String,
    /// The session the integrity checks run on.
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
}

/// Where a load goes, and the processes whose CPU is the server's.
struct To {
    addr: SocketAddr,
    pids: Vec<u32>,
}

impl Server {
    fn to(&self) -> To {
        To {
            addr: self.addr,
            pids: vec![self.pid],
        }
    }
}

/// CPU seconds at one instant: the server (`pids` together), every `postgres` process, and this
/// process (the load generator).
struct Cpu {
    at: Instant,
    seconds: [f64; 3],
}

impl Cpu {
    fn now(pids: &[u32]) -> Cpu {
        let server = pids.iter().map(|&pid| procs::cpu_seconds(pid)).sum();
        let me = procs::cpu_seconds(std::process::id());
        let seconds = [server, procs::postgres_cpu_seconds(), me];
        Cpu {
            at: Instant::now(),
            seconds,
        }
    }

    /// From this mark to `end`, as `scenario`'s row with `requests` answered.
    fn until(&self, end: &Cpu, scenario: &str, requests: u64) -> CpuUse {
        let elapsed = (end.at - self.at).as_secs_f64();
        let [server, postgres, loadgen] = [0, 1, 2].map(|i| end.seconds[i] - self.seconds[i]);
        let per_request = |s: f64| 1000.0 * s / requests.max(1) as f64;
        CpuUse {
            scenario: scenario.to_owned(),
            server_pct: 100.0 * server / elapsed,
            postgres_pct: 100.0 * postgres / elapsed,
            loadgen_pct: 100.0 * loadgen / elapsed,
            server_ms_per_request: per_request(server),
            postgres_ms_per_request: per_request(postgres),
        }
    }
}

/// Marks of the CPU of `pids` at the window's start and end.
fn watch_cpu(pids: &[u32], window: Window) -> JoinHandle<(Cpu, Cpu)> {
    let pids = pids.to_vec();
    tokio::spawn(async move {
        tokio::time::sleep_until(window.start.into()).await;
        let start = Cpu::now(&pids);
        tokio::time::sleep_until(window.end.into()).await;
        (start, Cpu::now(&pids))
    })
}

/// Events each of the `CLIENTS` clients needs on `venue` to book for `seconds` without running
/// out, at 12,000 bookings/s: more than any run here reaches.
fn events_per_client(venue: &Venue, seconds: f64) -> usize {
    (12_000.0 * seconds / CLIENTS as f64 / venue.seats as f64)
        .ceil()
        .max(1.0) as usize
}

impl Bench {
    /// Statistics for the planner, at the start of each scenario, before its ceiling, and not
    /// again before the service side: both sides of a comparison must plan with the very same
    /// statistics. (The scenarios insert rows far faster than autoanalyze would follow, and two
    /// ANALYZEs of the same data can tip a plan either way: seen with the availability query.)
    async fn analyze(&self) -> Result<()> {
        Ok(self.pg.batch_execute("ANALYZE").await?)
    }

    /// Before every measured phase: flush dirty pages now, so a checkpoint does not land inside
    /// one side of a comparison only. Needs a superuser; a refusal is not fatal.
    async fn settle(&self) {
        if let Err(err) = self.pg.batch_execute("CHECKPOINT").await {
            eprintln!("note: CHECKPOINT refused ({err}); measurements may include one");
        }
    }

    fn window(&self) -> Window {
        Window::after(self.opts.profile.warmup, self.opts.profile.measure)
    }

    async fn pgbench(&mut self, spec: Pgbench) -> Result<PgbenchRun> {
        self.settle().await;
        let (url, dir) = (self.database_url.clone(), self.opts.out_dir.join("pgbench"));
        std::fs::create_dir_all(&dir)?;
        let run = tokio::task::spawn_blocking(move || spec.run(&url, &dir)).await??;
        self.results.pgbench.push(run.clone());
        Ok(run)
    }

    /// redis-benchmark of `args` (`-t get`, or a command), recorded as a ceiling.
    async fn redis_benchmark(&mut self, name: &str, args: &[&str]) -> Result<RedisRun> {
        let (redis, requests) = (self.redis.clone(), self.opts.profile.redis_requests);
        let name = name.to_owned();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let run = move || ceiling::redis_benchmark(&name, &redis, requests, &args);
        let run = tokio::task::spawn_blocking(run).await??;
        self.results.redis.push(run.clone());
        Ok(run)
    }

    /// redis-benchmark GET of one value of `size` bytes: what a cache hit of that size costs
    /// Redis itself.
    async fn redis_get_of_size(&mut self, key: &str, size: usize) -> Result<RedisRun> {
        let key = self.redis.key(key);
        let set = ["SET", key.as_str(), &"x".repeat(size)];
        let output = self.redis.command("redis-cli").args(set).output()?;
        if !output.status.success() {
            return Err(format!("redis-cli SET {key}: {}", output.status).into());
        }
        self.redis_benchmark(&format!("GET {size} B value"), &["GET", &key])
            .await
    }

    fn record(&mut self, check: Check) {
        if !check.passed() {
            eprintln!("INTEGRITY VIOLATION in {}:", check.scope);
            for v in check.violations.iter().take(10) {
                eprintln!("  {v}");
            }
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
        self.record(check);
        Ok(())
    }

    /// [`Bench::check`] of what `bookers` saw and reported.
    async fn check_bookers(
        &mut self,
        scope: &str,
        events: &[i64],
        bookers: Vec<Booker>,
    ) -> Result<()> {
        let (mut seen, mut violations) = (Vec::new(), Vec::new());
        for b in bookers {
            seen.extend(b.seen);
            violations.extend(b.violations);
        }
        self.check(scope, events, &seen, &violations).await
    }

    /// A closed loop of `clients` over the window, with its CPU row; the clients are handed back.
    async fn measure<C: Client>(
        &mut self,
        name: &str,
        to: &To,
        clients: Vec<C>,
    ) -> Result<(Vec<C>, Throughput)> {
        self.settle().await;
        let window = self.window();
        let cpu = watch_cpu(&to.pids, window);
        let (stats, clients) = loadgen::closed_loop(to.addr, clients, window).await?;
        let (start, end) = cpu.await?;
        let cpu = start.until(&end, name, stats.completed);
        let row = Throughput {
            scenario: name.to_owned(),
            rate: stats.completed as f64 / window.seconds(),
            unit: C::UNIT.to_owned(),
            latency: stats.percentiles(),
            requests: stats.completed,
            errors: stats.errors,
            statuses: stats.statuses,
            loadgen_cpu_pct: cpu.loadgen_pct,
            first_problem: stats.first_problem,
            ..Throughput::default()
        };
        self.results.cpu.push(cpu);
        Ok((clients, row))
    }

    /// `book` on the arena (40,000 seats) and on the hall (500): 32 clients each booking their
    /// own free seats one after another, beside pgbench running the reference statement and
    /// `book()` with the same 32 clients on the same kind of seats (`-M prepared`: PostgreSQL's
    /// best for each).
    pub async fn book(&mut self) -> Result<()> {
        let p = &self.opts.profile;
        let pgbench_s = f64::from(p.pgbench_secs);
        let window_s = (p.warmup + p.measure).as_secs_f64();
        let mut admin = Admin::open(self.main.addr).await?;
        let mut runs = Vec::new();
        for venue in [self.fixtures.big.clone(), self.fixtures.hall.clone()] {
            let mut blocks = Vec::new();
            for (side, seconds) in [("reference", pgbench_s), ("book()", pgbench_s)]
                .into_iter()
                .chain([("service", window_s)])
            {
                let label = format!("book {} {side}", venue.label());
                let k = events_per_client(&venue, seconds);
                blocks.push(admin.block(&label, &venue, k).await?);
            }
            runs.push((venue, blocks));
        }
        self.analyze().await?;
        // PostgreSQL on its own cores for both sides, as deployed (cores.rs, decision 32); given
        // back when `split` is dropped, also on an error.
        let split = cores::Split::apply(&[self.main.pid]);
        let cores = match &split {
            Ok(split) => split.to_string(),
            Err(why) => format!("shared by all ({why})"),
        };
        eprintln!("[book] {cores}");
        self.results.settings.insert("cores_book".into(), cores);
        for (venue, blocks) in runs {
            self.book_on(&venue, &blocks).await?;
        }
        drop(split);
        Ok(())
    }

    async fn book_on(&mut self, venue: &Venue, blocks: &[Block]) -> Result<()> {
        let name = format!("book {}", venue.label());
        eprintln!("[{name}] pgbench reference and book() ...");
        let reference = self.book_ceiling(venue, Reference, &blocks[0]).await?;
        let book_fn = self.book_ceiling(venue, BookFn, &blocks[1]).await?;
        eprintln!("[{name}] service ...");
        let service = &blocks[2];
        let booker = |c| {
            let user = format!("bench-book-{}-{c}", venue.seats);
            Booker::new(user, service.client_events(c), venue)
        };
        let clients = (0..CLIENTS).map(booker).collect();
        let (clients, row) = self.measure(&name, &self.main.to(), clients).await?;
        self.results.venues.push(VenueBooking {
            venue_seats: venue.seats,
            service: row.rate,
            reference: reference.tps,
            book_fn: book_fn.tps,
        });
        let ceiling = format!("pgbench {}", reference.name);
        let row = row.against(&ceiling, reference.tps);
        self.results.throughput.push(row);
        self.check_bookers(&name, &service.events(), clients).await
    }

    /// pgbench booking one seat a transaction with `statement` in `block`'s events, and the
    /// integrity check of what it stored.
    async fn book_ceiling(
        &mut self,
        venue: &Venue,
        statement: Statement,
        block: &Block,
    ) -> Result<PgbenchRun> {
        let name = format!("{} {}", statement.label(), venue.label());
        let defines = vec![
            ("event_base", block.base.to_string()),
            ("events_per_client", block.per_client.to_string()),
            ("first_seat", venue.first_seat.to_string()),
            ("seats", venue.seats.to_string()),
            ("i", "0".into()),
            ("status", "confirmed".into()),
        ];
        let spec = Pgbench {
            name: name.clone(),
            protocol: "prepared",
            script: ceiling::booking_script(statement),
            defines,
            seconds: self.opts.profile.pgbench_secs,
        };
        let result = self.pgbench(spec).await?;
        let scope = format!("pgbench {name}");
        let check = integrity::check_ceiling(&self.pg, &scope, block, result.transactions).await?;
        self.record(check);
        Ok(result)
    }

    /// `herd`: N simultaneous requests for one seat; exactly one 201, every other answer a 409.
    /// Against the server with Redis, as deployed: a herd's losers after the winner's commit are
    /// refused from the taken-seat marks there (docs/decisions.md, 18).
    pub async fn herd(&mut self) -> Result<()> {
        let sizes = self.opts.profile.herd_sizes;
        let needed = sizes.iter().max().map_or(0, |n| *n as u64 + 256);
        let limit = procs::raise_nofile(0)?;
        if limit < needed {
            let error = format!("the herds need {needed} open files, the limit is {limit}");
            return Err(error.into());
        }
        self.analyze().await?;
        for (round, &size) in sizes.iter().enumerate() {
            self.settle().await;
            eprintln!("[herd] {size} simultaneous requests for one seat ...");
            let event = self.fixtures.herd_event;
            let seat = self.fixtures.hall.first_seat + round as i64;
            let users: Vec<String> = (0..size).map(|i| format!("herd-{seat}-{i}")).collect();
            let request = |u: &String| booking(&http::Identity::user(u), event, &[seat]);
            let to = self.cached_server().await?;
            // CPU from the first connect to the last answer: what deciding N races costs.
            let before = Cpu::now(&to.pids);
            let run = loadgen::herd(to.addr, users.iter().map(request).collect()).await?;
            let cpu = before.until(&Cpu::now(&to.pids), &format!("herd {size}"), size as u64);
            self.results.cpu.push(cpu);
            // Exactly one 201 (a booking of exactly that seat for its user), every other answer
            // a 409 naming the seat; the check below finds the event holds the winners' only.
            let won =
                |b: &[u8], u: &str| BookingSeen::from_answer(b, event, u, &[seat], "confirmed");
            let (mut herd, winners, mut violations) =
                tally(&run, &users, won, |b| names_seat(b, seat));
            herd.seat_id = seat;
            if !herd.as_asserted() {
                let (created, other, unanswered) = (herd.created, &herd.other, herd.unanswered);
                violations.push(format!(
                    "herd {size}: expected one 201 and {} x 409, got {created} x 201, {} x 409, \
                     other {other:?}, {unanswered} unanswered",
                    size - 1,
                    herd.conflicts
                ));
            }
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
        let (event, seats) = (self.fixtures.read_event, self.fixtures.hall.seats as usize);
        self.analyze().await?;
        eprintln!("[read] pgbench availability, redis-benchmark ...");
        let spec = Pgbench {
            name: "availability".into(),
            protocol: "extended",
            script: ceiling::availability_script(),
            defines: vec![("event_id", event.to_string())],
            seconds: self.opts.profile.pgbench_secs,
        };
        let ceiling = self.pgbench(spec).await?;
        self.redis_benchmark("GET", &["-t", "get"]).await?;
        // The same GET with a value as large as the availability answer: what a cache hit costs
        // Redis itself for this payload (informational; the ratio is against nginx).
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
        let (_, row) = self
            .measure("read-uncached", &self.main.to(), clients)
            .await?;
        let row = row.against("pgbench availability", ceiling.tps);
        self.results.throughput.push(row);

        eprintln!("[read] service, read-cached ...");
        let to = self.cached_server().await?;
        let clients = readers("bench-reader", &path);
        let (_, row) = self.measure("read-cached", &to, clients).await?;
        eprintln!("[read] nginx, the same bytes ...");
        let clients = readers("bench-nginx-reader", procs::NGINX_PLAIN);
        let nginx = self.beside_nginx("nginx plain", clients).await?;
        let row = row.against("nginx plain (same bytes)", nginx);
        self.results.throughput.push(row);
        let sold = self.fixtures.sold.clone();
        self.check("read", &[event], &sold, &[]).await
    }
}

/// A herd's answers, in request order with their `users`: each 201 read by `won` (the booking it
/// must be, else a violation), the 409s `lost` accepts, every other answer by status.
fn tally(
    run: &HerdRun,
    users: &[String],
    won: impl Fn(&[u8], &str) -> Result<BookingSeen, String>,
    lost: impl Fn(&[u8]) -> bool,
) -> (Herd, Vec<BookingSeen>, Vec<String>) {
    let (mut winners, mut violations, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    let (mut conflicts, mut unanswered, mut other) = (0, 0, BTreeMap::new());
    for ((answer, latency), user) in run.answers.iter().zip(users) {
        let Ok(response) = answer else {
            unanswered += 1;
            continue;
        };
        latencies.push(micros(*latency));
        let body = response.body();
        match response.status() {
            StatusCode::CREATED => match won(body, user) {
                Ok(booking) => winners.push(booking),
                Err(v) => violations.push(v),
            },
            StatusCode::CONFLICT if lost(body) => conflicts += 1,
            status => *other.entry(status.as_u16().to_string()).or_default() += 1,
        }
    }
    if let Some(Err(error)) = run.answers.iter().map(|(a, _)| a).find(|a| a.is_err()) {
        let size = users.len();
        violations.push(format!(
            "herd {size}: {unanswered} unanswered, e.g. {error}"
        ));
    }
    let herd = Herd {
        size: users.len(),
        seat_id: 0,
        created: winners.len(),
        conflicts,
        other,
        unanswered,
        connect_ms: run.connect_time.as_secs_f64() * 1000.0,
        all_answered_ms: latencies.iter().copied().max().unwrap_or(0) as f64 / 1000.0,
        latency: Percentiles::from_micros(&latencies),
    };
    (herd, winners, violations)
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
