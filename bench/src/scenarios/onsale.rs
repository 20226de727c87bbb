//! Reads as they come during an on-sale, against the cached server:
//!
//! - `poll`: the 500-seat hall's map read as pollers read it: gzip-accepting (against nginx
//!   serving the same gzip bytes), and conditional (`If-None-Match` with the tag the last answer
//!   carried: 304, no body; against redis-benchmark GET of a value as large as the gzip body).
//! - `hot`: one 10,000-seat event selling as fast as its bookers can book, while hundreds of
//!   readers poll its map every 200 ms (gzip, `If-None-Match`). Reported: the readers' latency
//!   (timed from when each poll was due), the map loads PostgreSQL served for reads, staleness
//!   (from a booking's 201 to the first map an observer got that shows the seat taken), and
//!   whether the booker's own reads, naming the version its 201 gave, always show its seats.

use super::{watch_cpu, Bench, To};
use crate::ceiling::CLIENTS;
use crate::clients::{booking, Reader};
use crate::fixtures::{Admin, Map};
use crate::http::{self, Body, Conn, Identity};
use crate::loadgen::{Client, Window};
use crate::procs::{Nginx, NGINX_GZIP};
use crate::report::{Goal, Throughput};
use crate::stats::{micros, Percentiles};
use crate::Result;
use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each `hot` reader polls the map.
const READ_EVERY: Duration = Duration::from_millis(200);

fn gunzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(body.len() * 12);
    flate2::read::GzDecoder::new(body).read_to_end(&mut plain)?;
    Ok(plain)
}

/// A map answer's seats, unzipped when it came gzipped: a read the cache does not hold (one
/// naming a newer version) is served as it is.
fn map_of(answer: &Response<Bytes>) -> Result<Map> {
    let zipped = answer
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|e| e == "gzip");
    let body = answer.body();
    Ok(serde_json::from_slice(&if zipped {
        gunzip(body)?
    } else {
        body.to_vec()
    })?)
}

fn gzip() -> HeaderValue {
    HeaderValue::from_static("gzip")
}

fn gzip_get(path: &str, who: &Identity) -> Request<Body> {
    http::with(http::get(path, who), ACCEPT_ENCODING, gzip())
}

impl Bench {
    /// The read event's map from the cached server, plain and gzip (checked to be the same), and
    /// the gzip answer's tag.
    async fn read_event_map(&mut self) -> Result<(Vec<u8>, Vec<u8>, HeaderValue)> {
        let addr = self.cached_server().await?.addr;
        let path = format!("/api/v1/events/{}/availability", self.fixtures.read_event);
        let who = Identity::user("bench-poller");
        let mut conn = Conn::open(addr).await?;
        let plain = conn.send(http::get(&path, &who)).await?.into_body();
        let zipped = conn.send(gzip_get(&path, &who)).await?;
        if zipped.status() != StatusCode::OK || gunzip(zipped.body())? != plain {
            return Err("the gzip answer does not unzip to the plain one".into());
        }
        let tag = zipped
            .headers()
            .get(ETAG)
            .cloned()
            .ok_or("a map without ETag")?;
        Ok((plain.to_vec(), zipped.into_body().to_vec(), tag))
    }

    /// nginx (one worker) measured with `clients` (the service's clients, pointed at nginx's copy
    /// of the read event's map): the same load generator, connections and window. Its rate, also
    /// as a row.
    pub(super) async fn beside_nginx<C: Client>(
        &mut self,
        name: &str,
        clients: Vec<C>,
    ) -> Result<f64> {
        if self.nginx.is_none() {
            let (plain, zipped, _) = self.read_event_map().await?;
            let nginx = Nginx::start(&plain, &zipped).await?;
            let (version, addr, p, z) = (&nginx.version, nginx.addr, plain.len(), zipped.len());
            eprintln!("{version} on {addr}, serving {p} B plain and {z} B gzip");
            self.nginx = Some(nginx);
        }
        let nginx = self.nginx.as_ref().expect("just started");
        let to = To {
            addr: nginx.addr,
            pids: nginx.pids(),
        };
        let (_, row) = self
            .measure(&format!("{name} (server = nginx)"), &to, clients)
            .await?;
        let rate = row.rate;
        let scenario = name.to_owned();
        self.results.throughput.push(Throughput { scenario, ..row });
        Ok(rate)
    }

    /// `poll`: cached reads as pollers make them (gzip; `If-None-Match` → 304).
    pub async fn poll(&mut self) -> Result<()> {
        let path = format!("/api/v1/events/{}/availability", self.fixtures.read_event);
        let to = self.cached_server().await?;
        let (plain, zipped, tag) = self.read_event_map().await?;
        for (what, bytes, unit) in [
            ("plain", plain.len(), "B"),
            ("gzip", zipped.len(), "B"),
            ("304", 0, "B (headers only)"),
        ] {
            self.results
                .figure(&format!("poll: bytes per poll, {what}"), bytes as f64, unit);
        }
        // What Redis serves for a value of the size a gzip hit fetches.
        let get = self.redis_get_of_size("gzip-payload", zipped.len()).await?;
        let pollers = |prefix: &str, path: &str, tag: Option<&HeaderValue>| -> Vec<Reader> {
            let poller = |c| {
                let reader =
                    Reader::new(&format!("{prefix}-{c}"), path, 0).header(ACCEPT_ENCODING, gzip());
                match tag {
                    Some(tag) => reader
                        .header(IF_NONE_MATCH, tag.clone())
                        .expect(StatusCode::NOT_MODIFIED, 0),
                    None => reader.expect(StatusCode::OK, zipped.len()),
                }
            };
            (0..CLIENTS).map(poller).collect()
        };

        eprintln!("[poll] service, poll-gzip ...");
        let clients = pollers("bench-poller", &path, None);
        let (_, row) = self.measure("poll-gzip", &to, clients).await?;
        eprintln!("[poll] nginx, the same gzip bytes ...");
        let clients = pollers("bench-nginx-poller", NGINX_GZIP, None);
        let nginx = self.beside_nginx("nginx gzip", clients).await?;
        let row = row.against("nginx gzip (same bytes)", nginx);
        self.results.throughput.push(row);

        eprintln!("[poll] service, poll-304 ...");
        let clients = pollers("bench-poller", &path, Some(&tag));
        let (_, row) = self.measure("poll-304", &to, clients).await?;
        let row = row.against(&format!("redis-benchmark {}", get.name), get.rps);
        self.results.throughput.push(row);
        Ok(())
    }

    /// `hot`: one big event on sale, bookers and pollers at once.
    pub async fn hot(&mut self) -> Result<()> {
        // The event must not sell out inside the window: 10,000 seats last about 7 s at the
        // booking rates measured here, so this window is shorter than the others.
        let quick = self.opts.quick;
        let ((rows, cols), readers, bookers) = if quick {
            ((40, 50), 20, 4)
        } else {
            ((100, 100), 200, 16)
        };
        let (warmup, measure) = match quick {
            true => (Duration::from_millis(300), Duration::from_millis(1500)),
            false => (Duration::from_millis(500), Duration::from_secs(5)),
        };
        let to = self.cached_server().await?;
        let addr = to.addr;
        let mut admin = Admin::open(addr).await?;
        let venue = admin.venue("hot", rows, cols).await?;
        let event = admin.event("on-sale", venue.id).await?;
        let path = format!("/api/v1/events/{event}/availability");
        let plain = admin.get(&path).await?;
        let seats: Vec<i64> = (venue.first_seat..venue.first_seat + venue.seats).collect();
        let every = READ_EVERY.as_millis();
        let (n, b) = (seats.len(), plain.len());
        eprintln!("[hot] {n} seats ({b} B plain), {bookers} bookers, {readers} readers every {every} ms ...");
        let window = Window::after(warmup, measure);

        let cpu = watch_cpu(&to.pids, window);
        let loads = tokio::spawn(loads_over(addr, window));
        let booked: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
        let booker_tasks: Vec<_> = (0..bookers)
            .map(|b| {
                let mine: Vec<i64> = seats.iter().skip(b).step_by(bookers).copied().collect();
                let (path, booked) = (path.clone(), booked.clone());
                tokio::spawn(book_until(addr, b, event, mine, path, window, booked))
            })
            .collect();
        let reader_tasks: Vec<_> = (0..readers)
            .map(|r| {
                tokio::spawn(poll_until(
                    addr,
                    path.clone(),
                    window,
                    READ_EVERY.mul_f64(r as f64 / readers as f64),
                ))
            })
            .collect();
        // Watches until every booking could have shown (the bound, and a little more).
        let observer = tokio::spawn(observe(
            addr,
            path.clone(),
            window.end + Duration::from_millis(1300),
        ));

        let (mut booking_latency, mut own_latency) = (Vec::new(), Vec::new());
        let [mut in_window, mut booking_errors, mut own_reads, mut own_missing] = [0u64; 4];
        for task in booker_tasks {
            let done = task.await??;
            booking_latency.extend(done.latency_us);
            own_latency.extend(done.own_latency_us);
            in_window += done.in_window;
            booking_errors += done.errors;
            own_reads += done.own_reads;
            own_missing += done.own_missing;
        }
        let mut polls = Polls::default();
        for task in reader_tasks {
            let p = task.await??;
            polls.latency_us.extend(p.latency_us);
            polls
                .counts
                .iter_mut()
                .zip(p.counts)
                .for_each(|(a, b)| *a += b);
            polls.first_problem = polls.first_problem.or(p.first_problem);
        }
        let (start, end) = cpu.await?;
        let cpu = start.until(&end, "hot", polls.counts[0] + in_window);
        self.results.cpu.push(cpu);
        let loaded = loads.await??;
        let first_seen = observer.await??;

        let booked = booked.lock().expect("booked").clone();
        let staleness: Vec<u64> = booked
            .iter()
            .filter_map(|(seat, at)| {
                Some(micros(first_seen.get(seat)?.saturating_duration_since(*at)))
            })
            .collect();
        let never_seen = booked.len() - staleness.len();
        let (staleness, readers_p) = (
            Percentiles::from_micros(&staleness),
            Percentiles::from_micros(&polls.latency_us),
        );
        let (bookings_p, own_p) = (
            Percentiles::from_micros(&booking_latency),
            Percentiles::from_micros(&own_latency),
        );
        let [polled, answers, not_modified, bytes, poll_errors] = polls.counts.map(|c| c as f64);
        let (seconds, bookings) = (window.seconds(), in_window as f64);
        let loads_per_s = loaded as f64 / seconds;
        for (name, value, unit) in [
            ("bookings/s", bookings / seconds, "/s"),
            ("booking p99", bookings_p.p99_ms, "ms"),
            ("map polls/s", polled / seconds, "/s"),
            ("map poll p50", readers_p.p50_ms, "ms"),
            ("map poll p99", readers_p.p99_ms, "ms"),
            ("map poll max", readers_p.max_ms, "ms"),
            (
                "polls answered 304",
                100.0 * not_modified / answers.max(1.0),
                "%",
            ),
            ("bytes per poll, plain", plain.len() as f64, "B"),
            ("bytes per poll, gzip + 304", bytes / answers.max(1.0), "B"),
            ("map loads from PostgreSQL for reads", loads_per_s, "/s"),
            ("bookings per map load", bookings / loaded.max(1) as f64, ""),
            ("staleness p50", staleness.p50_ms, "ms"),
            ("staleness p99", staleness.p99_ms, "ms"),
            ("staleness max", staleness.max_ms, "ms"),
            ("booked seats never seen taken", never_seen as f64, ""),
            ("booker's own reads", own_reads as f64, ""),
            ("booker's own read p99", own_p.p99_ms, "ms"),
            (
                "own reads missing the booker's seat",
                own_missing as f64,
                "",
            ),
        ] {
            self.results.figure(&format!("hot: {name}"), value, unit);
        }
        self.results.goals.extend([
            Goal::judged(
                "hot: map poll p99 < 50 ms",
                format!("p99 {:.1} ms over {polled} polls", readers_p.p99_ms),
                readers_p.p99_ms < 50.0,
            ),
            Goal::judged(
                "hot: reads cost a few loads/s, not one per booking",
                format!(
                    "{loads_per_s:.1} loads/s for {:.0} bookings/s",
                    bookings / seconds
                ),
                loads_per_s <= 6.0,
            ),
            Goal::judged(
                "hot: staleness p99 <= 1 s",
                format!(
                    "p99 {:.0} ms, max {:.0} ms, {never_seen} never seen",
                    staleness.p99_ms, staleness.max_ms
                ),
                staleness.p99_ms <= 1000.0 && never_seen == 0,
            ),
            Goal::judged(
                "hot: the booker's own reads show its seats",
                format!("{own_missing} of {own_reads} missed"),
                own_missing == 0 && own_reads > 0,
            ),
        ]);
        if booking_errors > 0 || poll_errors > 0.0 {
            let first = &polls.first_problem;
            let message = format!("hot: {booking_errors} booking errors, {poll_errors} poll errors (first: {first:?})");
            return Err(message.into());
        }
        Ok(())
    }
}

/// The cache's `loads` over the window, from /api/v1/metrics.
async fn loads_over(addr: SocketAddr, window: Window) -> Result<u64> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::organizer("bench-hot-metrics");
    let read = async |conn: &mut Conn| -> Result<u64> {
        let answer = conn.send(http::get("/api/v1/metrics", &who)).await?;
        let metrics: serde_json::Value = serde_json::from_slice(answer.body())?;
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
struct Booked {
    latency_us: Vec<u64>,
    in_window: u64,
    errors: u64,
    own_latency_us: Vec<u64>,
    own_reads: u64,
    own_missing: u64,
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
    let mut done = Booked::default();
    for seat in seats
        .into_iter()
        .take_while(|_| Instant::now() < window.end)
    {
        let who = Identity::user(&format!("bench-hot-fan-{booker}-{seat}"));
        let sent = Instant::now();
        let answer = conn
            .send(booking("/api/v1/bookings", &who, event, &[seat]))
            .await?;
        let at = Instant::now();
        if answer.status() != StatusCode::CREATED {
            done.errors += 1;
            eprintln!(
                "[hot] booking: {}: {}",
                answer.status(),
                String::from_utf8_lossy(answer.body())
            );
            continue;
        }
        booked.lock().expect("booked").insert(seat, at);
        if at >= window.start && at < window.end {
            done.in_window += 1;
            done.latency_us.push(micros(at - sent));
        }
        if booker == 0 {
            let version = answer.headers().get("seatbook-event-version").cloned();
            let version = version.ok_or("a 201 without Seatbook-Event-Version")?;
            let asked = Instant::now();
            let request = http::with(
                gzip_get(&path, &who),
                "seatbook-event-version".parse()?,
                version,
            );
            let answer = conn.send(request).await?;
            done.own_latency_us.push(micros(asked.elapsed()));
            done.own_reads += 1;
            let shows = answer.status() == StatusCode::OK
                && map_of(&answer)?
                    .seats
                    .iter()
                    .any(|s| s.id == seat && s.status != "available");
            done.own_missing += u64::from(!shows);
        }
    }
    Ok(done)
}

#[derive(Default)]
struct Polls {
    latency_us: Vec<u64>,
    /// In the window, answers, 304s, bytes, errors.
    counts: [u64; 5],
    first_problem: Option<String>,
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
    let (mut polls, mut tag, mut due) = (
        Polls::default(),
        None::<HeaderValue>,
        Instant::now() + offset,
    );
    while due < window.end {
        tokio::time::sleep_until(due.into()).await;
        let mut request = gzip_get(&path, &who);
        if let Some(tag) = &tag {
            request = http::with(request, IF_NONE_MATCH, tag.clone());
        }
        let answer = conn.send(request).await?;
        let done = Instant::now();
        polls.counts[1] += 1;
        polls.counts[3] += answer.body().len() as u64;
        match answer.status() {
            StatusCode::OK => tag = answer.headers().get(ETAG).cloned(),
            StatusCode::NOT_MODIFIED => polls.counts[2] += 1,
            other => {
                polls.counts[4] += 1;
                let body = String::from_utf8_lossy(answer.body());
                polls
                    .first_problem
                    .get_or_insert_with(|| format!("{other}: {body}"));
            }
        }
        if due >= window.start && done < window.end {
            polls.counts[0] += 1;
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
        let answer = conn.send(gzip_get(&path, &who)).await?;
        let at = Instant::now();
        if answer.status() == StatusCode::OK {
            for seat in map_of(&answer)?
                .seats
                .iter()
                .filter(|s| s.status != "available")
            {
                first_seen.entry(seat.id).or_insert(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(first_seen)
}
