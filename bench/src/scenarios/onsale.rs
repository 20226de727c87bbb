//! Reads as they come during an on-sale, against the cached server:
//!
//! - `poll`: the 500-seat hall's map read the way pollers read it: gzip-accepting (against
//!   redis-benchmark GET of a value as large as the gzip body), and conditional (`If-None-Match`
//!   with the tag the last answer carried: 304, no body). Bytes per poll before and after.
//! - `hot`: one 10,000-seat event selling as fast as its bookers can book, while hundreds of
//!   readers poll its map every 200 ms (gzip, `If-None-Match`). Reported: the readers' latency
//!   (open loop: timed from when each poll was due), the map loads PostgreSQL served for reads
//!   (per second, and bookings per load), staleness (from a booking's 201 to the first map an
//!   observer got that shows the seat taken), and whether the booker's own reads, naming the
//!   version its 201 gave, always show its seats.

use super::{throughput, watch_cpu, Bench};
use crate::ceiling;
use crate::http::{self, Body, Conn, Identity};
use crate::loadgen::{self, Client, Window};
use crate::nginx::{self, Nginx};
use crate::report::Goal;
use crate::stats::{micros, Percentiles};
use crate::Result;
use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, ETAG, IF_NONE_MATCH};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The map of an event, as far as these scenarios look at it.
#[derive(Deserialize)]
struct Map {
    seats: Vec<SeatState>,
}

#[derive(Deserialize)]
struct SeatState {
    id: i64,
    status: String,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

/// A map answer's seats, unzipped when it came gzipped: a read the cache does not hold (one
/// naming a newer version) is served as it is.
fn map_of(headers: &hyper::HeaderMap, body: &[u8]) -> Result<Map> {
    let zipped = headers
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|e| e == "gzip");
    let plain = if zipped { gunzip(body)? } else { body.to_vec() };
    Ok(serde_json::from_slice(&plain)?)
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(body.len() * 12);
    flate2::read::GzDecoder::new(body).read_to_end(&mut plain)?;
    Ok(plain)
}

fn with_header(
    mut request: Request<Body>,
    name: hyper::header::HeaderName,
    value: HeaderValue,
) -> Request<Body> {
    request.headers_mut().insert(name, value);
    request
}

fn gzip_get(path: &str, who: &Identity) -> Request<Body> {
    with_header(
        http::get(path, who),
        ACCEPT_ENCODING,
        HeaderValue::from_static("gzip"),
    )
}

/// A poller for `poll`: gzip every time, or a conditional read that names the tag it was given.
struct Poller {
    path: String,
    who: Identity,
    if_none_match: Option<HeaderValue>,
    /// The length of every answer: nothing changes the read event while it is polled.
    expected_len: usize,
}

impl Client for Poller {
    fn next_request(&mut self) -> Option<(usize, Request<Body>)> {
        let request = gzip_get(&self.path, &self.who);
        Some((
            0,
            match &self.if_none_match {
                Some(tag) => with_header(request, IF_NONE_MATCH, tag.clone()),
                None => request,
            },
        ))
    }

    fn check_answer(&mut self, _kind: usize, status: StatusCode, body: &Bytes) -> bool {
        match self.if_none_match {
            Some(_) => status == StatusCode::NOT_MODIFIED && body.is_empty(),
            None => status == StatusCode::OK && body.len() == self.expected_len,
        }
    }
}

impl Bench {
    /// nginx (one worker) serving the read event's map exactly as the cached server serves it,
    /// plain and gzip; started once, on first use.
    async fn nginx(&mut self) -> Result<&Nginx> {
        if self.nginx.is_none() {
            let (addr, _) = self.cached_server().await?;
            let path = format!("/api/v1/events/{}/availability", self.fixtures.read_event());
            let who = Identity::user("bench-nginx");
            let mut conn = Conn::open(addr).await?;
            let (_, _, plain) = conn.send_with_headers(http::get(&path, &who)).await?;
            let (status, _, zipped) = conn.send_with_headers(gzip_get(&path, &who)).await?;
            if status != StatusCode::OK || gunzip(&zipped)? != plain {
                return Err("nginx: the gzip answer does not unzip to the plain one".into());
            }
            let nginx = Nginx::start(&plain, &zipped).await?;
            eprintln!(
                "{} on {}, serving {} B plain and {} B gzip",
                nginx.version,
                nginx.addr,
                plain.len(),
                zipped.len()
            );
            self.nginx = Some(nginx);
        }
        Ok(self.nginx.as_ref().expect("just started"))
    }

    /// nginx measured with `clients` (the service's clients, pointed at nginx's copy): the same
    /// load generator, connections and window as the service. Its rate, also as a row.
    pub(super) async fn beside_nginx<C: Client>(
        &mut self,
        name: &str,
        clients: Vec<C>,
    ) -> Result<f64> {
        let nginx = self.nginx().await?;
        let (addr, pids) = (nginx.addr, nginx.pids());
        let window = self.window();
        let cpu = watch_cpu(pids, window);
        let load = loadgen::closed_loop(addr, &["GET"], clients, window).await?;
        let cpu = cpu.await?;
        self.cpu_row(
            &format!("{name} (server = nginx)"),
            &cpu,
            load.kinds[0].completed,
        );
        let row = throughput(name, "req/s", &load.kinds[0], window, &cpu);
        let rate = row.rate;
        self.results.throughput.push(row);
        Ok(rate)
    }

    /// `poll`: cached reads as pollers make them (gzip; `If-None-Match` → 304).
    pub async fn poll(&mut self) -> Result<()> {
        let event = self.fixtures.read_event();
        let (addr, pid) = self.cached_server().await?;
        let path = format!("/api/v1/events/{event}/availability");
        let who = Identity::user("bench-poller");
        let mut conn = Conn::open(addr).await?;
        let (_, _, plain) = conn.send_with_headers(http::get(&path, &who)).await?;
        let (status, headers, zipped) = conn.send_with_headers(gzip_get(&path, &who)).await?;
        if status != StatusCode::OK || gunzip(&zipped)? != plain {
            return Err("poll: the gzip answer does not unzip to the plain one".into());
        }
        let tag = headers.get(ETAG).cloned().ok_or("poll: no ETag")?;
        self.results
            .figure("poll: bytes per poll, plain", plain.len() as f64, "B");
        self.results
            .figure("poll: bytes per poll, gzip", zipped.len() as f64, "B");
        self.results
            .figure("poll: bytes per poll, 304", 0.0, "B (headers only)");

        // What Redis serves for a value of the size a gzip hit fetches.
        let get = self.redis_get_of_size("gzip-payload", zipped.len()).await?;
        let pollers = |prefix: &str, path: &str, tag: Option<&HeaderValue>| -> Vec<Poller> {
            (0..ceiling::CLIENTS)
                .map(|c| Poller {
                    path: path.to_owned(),
                    who: Identity::user(&format!("{prefix}-{c}")),
                    if_none_match: tag.cloned(),
                    expected_len: zipped.len(),
                })
                .collect()
        };

        for conditional in [false, true] {
            let scenario = if conditional { "poll-304" } else { "poll-gzip" };
            eprintln!("[poll] service, {scenario} ...");
            let clients = pollers("bench-poller", &path, conditional.then_some(&tag));
            let window = self.window();
            let cpu = watch_cpu(vec![pid], window);
            let load = loadgen::closed_loop(addr, &["availability"], clients, window).await?;
            let cpu = cpu.await?;
            self.cpu_row(scenario, &cpu, load.kinds[0].completed);
            let row = throughput(scenario, "req/s", &load.kinds[0], window, &cpu);
            let row = if conditional {
                row.against(&format!("redis-benchmark {}", get.name), get.rps)
            } else {
                eprintln!("[poll] nginx, the same gzip bytes ...");
                let clients = pollers("bench-nginx-poller", nginx::GZIP, None);
                let nginx = self.beside_nginx("nginx gzip", clients).await?;
                row.against("nginx gzip (same bytes)", nginx)
            };
            self.results.throughput.push(row);
        }
        Ok(())
    }

    /// `hot`: one big event on sale, bookers and pollers at once.
    pub async fn hot(&mut self) -> Result<()> {
        let quick = self.opts.quick;
        // The event must not sell out before the window ends: 10,000 seats last about 7 s at the
        // booking rates measured here, so this window is shorter than the others.
        let (rows, cols) = if quick { (40, 50) } else { (100, 100) };
        let (warmup, measure) = if quick {
            (Duration::from_millis(300), Duration::from_millis(1500))
        } else {
            (Duration::from_millis(500), Duration::from_secs(5))
        };
        let readers = if quick { 20 } else { 200 };
        let bookers = if quick { 4 } else { 16 };
        let (addr, pid) = self.cached_server().await?;
        let admin = Identity::organizer("bench-hot");
        let mut conn = Conn::open(addr).await?;
        let venue: Created = created(
            &mut conn,
            http::post_json(
                "/api/v1/venues",
                &admin,
                serde_json::to_vec(&json!({"name": format!("bench hot {}", std::process::id()), "rows": rows, "cols": cols}))?,
            ),
        )
        .await?;
        let event: Created = created(
            &mut conn,
            http::post_json(
                "/api/v1/events",
                &admin,
                serde_json::to_vec(&json!({"name": "bench on-sale", "starts_at": "2035-01-01T20:00:00Z", "venue_id": venue.id, "price_cents": 4500}))?,
            ),
        )
        .await?;
        let path = format!("/api/v1/events/{}/availability", event.id);
        let (_, _, plain) = conn.send_with_headers(http::get(&path, &admin)).await?;
        let map: Map = serde_json::from_slice(&plain)?;
        let seats: Vec<i64> = map.seats.iter().map(|s| s.id).collect();
        eprintln!(
            "[hot] {} seats ({} B plain), {bookers} bookers, {readers} readers every {} ms ...",
            seats.len(),
            plain.len(),
            READ_EVERY.as_millis()
        );

        let window = Window::after(warmup, measure);
        let cpu = watch_cpu(vec![pid], window);
        let loads = tokio::spawn(loads_over(addr, window));
        let booked: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let booker_tasks: Vec<_> = (0..bookers)
            .map(|b| {
                let mine: Vec<i64> = seats.iter().skip(b).step_by(bookers).copied().collect();
                let (path, booked) = (path.clone(), booked.clone());
                tokio::spawn(book_until(addr, b, event.id, mine, path, window, booked))
            })
            .collect();
        let reader_tasks: Vec<_> = (0..readers)
            .map(|r| {
                let offset = READ_EVERY.mul_f64(r as f64 / readers as f64);
                tokio::spawn(poll_until(addr, path.clone(), window, offset))
            })
            .collect();
        // Watches until every booking could have shown (the bound, and a little more).
        let observer = tokio::spawn(observe(
            addr,
            path.clone(),
            window.end + Duration::from_millis(1300),
        ));

        let mut booking_latency = Vec::new();
        let mut bookings_in_window = 0u64;
        let mut own = OwnReads::default();
        let mut booking_errors = 0u64;
        for task in booker_tasks {
            let done = task.await??;
            booking_latency.extend(done.latency_us);
            bookings_in_window += done.in_window;
            booking_errors += done.errors;
            own.merge(done.own);
        }
        let mut polls = Polls::default();
        for task in reader_tasks {
            polls.merge(task.await??);
        }
        let cpu = cpu.await?;
        let loaded = loads.await??;
        let first_seen = observer.await??;

        let seconds = window.seconds();
        let booked = booked.lock().expect("booked").clone();
        let mut staleness: Vec<u64> = Vec::with_capacity(booked.len());
        let mut never_seen = 0u64;
        for (seat, at) in &booked {
            match first_seen.get(seat) {
                Some(seen) => staleness.push(micros(seen.saturating_duration_since(*at))),
                None => never_seen += 1,
            }
        }
        let staleness = Percentiles::from_micros(&staleness);
        let readers_p = Percentiles::from_micros(&polls.latency_us);
        let bookings_p = Percentiles::from_micros(&booking_latency);
        let own_p = Percentiles::from_micros(&own.latency_us);
        self.cpu_row("hot", &cpu, polls.in_window + bookings_in_window);
        let bytes_per_poll = polls.bytes as f64 / polls.answers.max(1) as f64;
        let loads_per_s = loaded as f64 / seconds;
        let figures = [
            ("hot: bookings/s", bookings_in_window as f64 / seconds, "/s"),
            ("hot: booking p99", bookings_p.p99_ms, "ms"),
            ("hot: map polls/s", polls.in_window as f64 / seconds, "/s"),
            ("hot: map poll p50", readers_p.p50_ms, "ms"),
            ("hot: map poll p99", readers_p.p99_ms, "ms"),
            ("hot: map poll max", readers_p.max_ms, "ms"),
            (
                "hot: polls answered 304",
                100.0 * polls.not_modified as f64 / polls.answers.max(1) as f64,
                "%",
            ),
            ("hot: bytes per poll, plain", plain.len() as f64, "B"),
            ("hot: bytes per poll, gzip + 304", bytes_per_poll, "B"),
            (
                "hot: map loads from PostgreSQL for reads",
                loads_per_s,
                "/s",
            ),
            (
                "hot: bookings per map load",
                bookings_in_window as f64 / (loaded.max(1)) as f64,
                "",
            ),
            ("hot: staleness p50", staleness.p50_ms, "ms"),
            ("hot: staleness p99", staleness.p99_ms, "ms"),
            ("hot: staleness max", staleness.max_ms, "ms"),
            ("hot: booked seats never seen taken", never_seen as f64, ""),
            ("hot: booker's own reads", own.reads as f64, ""),
            ("hot: booker's own read p99", own_p.p99_ms, "ms"),
            (
                "hot: own reads missing the booker's seat",
                own.missing as f64,
                "",
            ),
        ];
        for (name, value, unit) in figures {
            self.results.figure(name, value, unit);
        }
        let mut goal = |goal: &str, actual: String, pass: bool| {
            self.results.goals.push(Goal {
                goal: goal.to_owned(),
                actual,
                verdict: if pass { "PASS" } else { "MISS" },
            })
        };
        goal(
            "hot: map poll p99 < 50 ms",
            format!(
                "p99 {:.1} ms over {} polls",
                readers_p.p99_ms, polls.in_window
            ),
            readers_p.p99_ms < 50.0,
        );
        goal(
            "hot: reads cost a few loads/s, not one per booking",
            format!(
                "{loads_per_s:.1} loads/s for {:.0} bookings/s",
                bookings_in_window as f64 / seconds
            ),
            loads_per_s <= 6.0,
        );
        goal(
            "hot: staleness p99 <= 1 s",
            format!(
                "p99 {:.0} ms, max {:.0} ms, {never_seen} never seen",
                staleness.p99_ms, staleness.max_ms
            ),
            staleness.p99_ms <= 1000.0 && never_seen == 0,
        );
        goal(
            "hot: the booker's own reads show its seats",
            format!("{} of {} missed", own.missing, own.reads),
            own.missing == 0 && own.reads > 0,
        );
        if booking_errors > 0 || polls.errors > 0 {
            return Err(format!(
                "hot: {booking_errors} booking errors, {} poll errors (first: {:?})",
                polls.errors, polls.first_problem
            )
            .into());
        }
        Ok(())
    }
}

/// How often each reader polls the map.
const READ_EVERY: Duration = Duration::from_millis(200);

async fn created(conn: &mut Conn, request: Request<Body>) -> Result<Created> {
    let (status, _, body) = conn.send_with_headers(request).await?;
    if status != StatusCode::CREATED {
        return Err(format!("hot set-up: {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The cache's `loads` over the window, from /api/v1/metrics.
async fn loads_over(addr: SocketAddr, window: Window) -> Result<u64> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::organizer("bench-hot-metrics");
    let read = async |conn: &mut Conn| -> Result<u64> {
        let (_, body) = conn.send(http::get("/api/v1/metrics", &who)).await?;
        let metrics: serde_json::Value = serde_json::from_slice(&body)?;
        metrics["cache"]["loads"]
            .as_u64()
            .ok_or_else(|| "metrics without cache.loads".into())
    };
    tokio::time::sleep_until(window.start.into()).await;
    let before = read(&mut conn).await?;
    tokio::time::sleep_until(window.end.into()).await;
    Ok(read(&mut conn).await? - before)
}

#[derive(Default)]
struct OwnReads {
    reads: u64,
    missing: u64,
    latency_us: Vec<u64>,
}

impl OwnReads {
    fn merge(&mut self, other: OwnReads) {
        self.reads += other.reads;
        self.missing += other.missing;
        self.latency_us.extend(other.latency_us);
    }
}

struct Booked {
    latency_us: Vec<u64>,
    in_window: u64,
    errors: u64,
    own: OwnReads,
}

/// One booker: its own stripe of seats, one at a time, until the window ends. Booker 0 also reads
/// the map after each booking, naming the version its 201 gave, and checks its seat shows.
async fn book_until(
    addr: SocketAddr,
    booker: usize,
    event: i64,
    seats: Vec<i64>,
    path: String,
    window: Window,
    booked: Arc<Mutex<HashMap<i64, Instant>>>,
) -> Result<Booked> {
    let mut conn = Conn::open(addr).await?;
    let mut done = Booked {
        latency_us: Vec::new(),
        in_window: 0,
        errors: 0,
        own: OwnReads::default(),
    };
    for seat in seats {
        if Instant::now() >= window.end {
            break;
        }
        let who = Identity::user(&format!("bench-hot-fan-{booker}-{seat}"));
        let body = serde_json::to_vec(&json!({"event_id": event, "seat_ids": [seat]}))?;
        let sent = Instant::now();
        let (status, headers, answer) = conn
            .send_with_headers(http::post_json("/api/v1/bookings", &who, body))
            .await?;
        let at = Instant::now();
        if status != StatusCode::CREATED {
            done.errors += 1;
            eprintln!(
                "[hot] booking: {status}: {}",
                String::from_utf8_lossy(&answer)
            );
            continue;
        }
        booked.lock().expect("booked").insert(seat, at);
        if at >= window.start && at < window.end {
            done.in_window += 1;
            done.latency_us.push(micros(at - sent));
        }
        if booker == 0 {
            let version = headers
                .get("seatbook-event-version")
                .cloned()
                .ok_or("a 201 without Seatbook-Event-Version")?;
            let asked = Instant::now();
            let request = with_header(
                gzip_get(&path, &who),
                "seatbook-event-version".parse()?,
                version,
            );
            let (status, headers, zipped) = conn.send_with_headers(request).await?;
            done.own.latency_us.push(micros(asked.elapsed()));
            done.own.reads += 1;
            let shows = status == StatusCode::OK
                && map_of(&headers, &zipped)?
                    .seats
                    .iter()
                    .any(|s| s.id == seat && s.status != "available");
            if !shows {
                done.own.missing += 1;
            }
        }
    }
    Ok(done)
}

#[derive(Default)]
struct Polls {
    latency_us: Vec<u64>,
    in_window: u64,
    answers: u64,
    not_modified: u64,
    bytes: u64,
    errors: u64,
    first_problem: Option<String>,
}

impl Polls {
    fn merge(&mut self, other: Polls) {
        self.latency_us.extend(other.latency_us);
        self.in_window += other.in_window;
        self.answers += other.answers;
        self.not_modified += other.not_modified;
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }
}

/// One reader: a poll every READ_EVERY, as a browser tab would (gzip, `If-None-Match` with the tag
/// of its last answer), timed from when it was due, so a slow answer delays no measurement.
async fn poll_until(
    addr: SocketAddr,
    path: String,
    window: Window,
    offset: Duration,
) -> Result<Polls> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::user("bench-hot-reader");
    let mut polls = Polls::default();
    let mut tag: Option<HeaderValue> = None;
    let mut due = Instant::now() + offset;
    while due < window.end {
        tokio::time::sleep_until(due.into()).await;
        let mut request = gzip_get(&path, &who);
        if let Some(tag) = &tag {
            request = with_header(request, IF_NONE_MATCH, tag.clone());
        }
        let (status, headers, body) = conn.send_with_headers(request).await?;
        let done = Instant::now();
        polls.answers += 1;
        polls.bytes += body.len() as u64;
        match status {
            StatusCode::OK => tag = headers.get(ETAG).cloned(),
            StatusCode::NOT_MODIFIED => polls.not_modified += 1,
            other => {
                polls.errors += 1;
                polls
                    .first_problem
                    .get_or_insert_with(|| format!("{other}: {}", String::from_utf8_lossy(&body)));
            }
        }
        if due >= window.start && done < window.end {
            polls.in_window += 1;
            polls.latency_us.push(micros(done - due));
        }
        due += READ_EVERY;
    }
    Ok(polls)
}

/// The observer: reads the whole map every 25 ms until `until`, and notes when each seat was
/// first seen taken.
async fn observe(addr: SocketAddr, path: String, until: Instant) -> Result<HashMap<i64, Instant>> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::user("bench-hot-observer");
    let mut first_seen = HashMap::new();
    while Instant::now() < until {
        let (status, headers, zipped) = conn.send_with_headers(gzip_get(&path, &who)).await?;
        let at = Instant::now();
        if status == StatusCode::OK {
            let map = map_of(&headers, &zipped)?;
            for seat in map.seats.iter().filter(|s| s.status != "available") {
                first_seen.entry(seat.id).or_insert(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(first_seen)
}
