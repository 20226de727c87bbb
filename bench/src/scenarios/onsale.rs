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
use crate::fixtures::{Admin, Map, Seat};
use crate::http::{self, Body, Conn, Identity};
use crate::loadgen::{micros, Percentiles};
use crate::loadgen::{Client, Window};
use crate::procs::{Nginx, NGINX_GZIP};
use crate::report::{Goal, Throughput};
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
    let body = answer.body();
    Ok(match answer.headers().get(CONTENT_ENCODING) {
        Some(e) if e == "gzip" => serde_json::from_slice(&gunzip(body)?)?,
        _ => serde_json::from_slice(body)?,
    })
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
        let tag = zipped.headers().get(ETAG).cloned();
        let tag = tag.ok_or("a map without ETag")?;
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
        let (addr, pids) = (nginx.addr, nginx.pids());
        let name_cpu = format!("{name} (server = nginx)");
        let (_, row) = self.measure(&name_cpu, &To { addr, pids }, clients).await?;
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
        // booking rates measured here, so this window (ms) is shorter than the others.
        let (rows, cols, readers, bookers, warmup, measure) = match self.opts.quick {
            true => (40, 50, 20, 4, 300, 1500),
            false => (100, 100, 200, 16, 500, 5000),
        };
        let to = self.cached_server().await?;
        let addr = to.addr;
        let mut admin = Admin::open(addr).await?;
        let venue = admin.venue("hot", rows, cols).await?;
        let event = admin.event("on-sale", venue.id).await?;
        let path = format!("/api/v1/events/{event}/availability");
        let seats: Vec<i64> = (venue.first_seat..venue.first_seat + venue.seats).collect();
        let (n, every) = (seats.len(), READ_EVERY.as_millis());
        eprintln!("[hot] {n} seats, {bookers} bookers, {readers} readers every {every} ms ...");
        let ms = Duration::from_millis;
        let window = Window::after(ms(warmup), ms(measure));

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
                let offset = READ_EVERY.mul_f64(r as f64 / readers as f64);
                tokio::spawn(poll_until(addr, path.clone(), window, offset))
            })
            .collect();
        // Watches until every booking could have shown (the bound, and a little more).
        let until = window.end + Duration::from_millis(1300);
        let observer = tokio::spawn(observe(addr, path.clone(), until));

        let [mut bookings, mut own_reads, mut own_missing] = [0u64; 3];
        for task in booker_tasks {
            let [b, r, m] = task.await??;
            (bookings, own_reads, own_missing) = (bookings + b, own_reads + r, own_missing + m);
        }
        let mut polls = Vec::new();
        for task in reader_tasks {
            polls.extend(task.await??);
        }
        let (start, end) = cpu.await?;
        let polled = polls.len() as u64;
        let cpu = start.until(&end, "hot", polled + bookings);
        self.results.cpu.push(cpu);
        let loads_per_s = loads.await?? as f64 / window.seconds();
        let first_seen = observer.await??;

        let booked = booked.lock().expect("booked").clone();
        let staleness: Vec<u64> = booked
            .iter()
            .filter_map(|(seat, at)| {
                Some(micros(first_seen.get(seat)?.saturating_duration_since(*at)))
            })
            .collect();
        let never_seen = booked.len() - staleness.len();
        let staleness = Percentiles::from_micros(&staleness);
        let poll_p99 = Percentiles::from_micros(&polls).p99_ms;
        let bookings_per_s = bookings as f64 / window.seconds();
        self.results.goals.extend([
            Goal::judged(
                "hot: map poll p99 < 50 ms",
                format!("p99 {poll_p99:.1} ms over {polled} polls"),
                poll_p99 < 50.0,
            ),
            Goal::judged(
                "hot: reads cost a few loads/s, not one per booking",
                format!("{loads_per_s:.1} loads/s for {bookings_per_s:.0} bookings/s"),
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

/// An answer the scenario cannot go on from fails it.
fn unexpected(what: &str, answer: &Response<Bytes>) -> crate::Error {
    let body = String::from_utf8_lossy(answer.body());
    format!("hot: {what} answered {}: {body}", answer.status()).into()
}

/// One booker: its own stripe of seats, one at a time, until the window ends; the seats it booked
/// are noted with the time of their 201. Booker 0 also reads the map after each booking, naming
/// the version its 201 gave, and checks its seat shows. Returns the bookings inside the window,
/// and booker 0's own reads and how many of them missed its seat.
async fn book_until(
    addr: SocketAddr,
    booker: usize,
    event: i64,
    seats: Vec<i64>,
    path: String,
    window: Window,
    booked: Arc<Mutex<HashMap<i64, Instant>>>,
) -> Result<[u64; 3]> {
    let mut conn = Conn::open(addr).await?;
    let [mut in_window, mut own_reads, mut own_missing] = [0; 3];
    for seat in seats
        .into_iter()
        .take_while(|_| Instant::now() < window.end)
    {
        let who = Identity::user(&format!("bench-hot-fan-{booker}-{seat}"));
        let request = booking(&who, event, &[seat]);
        let answer = conn.send(request).await?;
        let at = Instant::now();
        if answer.status() != StatusCode::CREATED {
            return Err(unexpected("a booking", &answer));
        }
        booked.lock().expect("booked").insert(seat, at);
        in_window += u64::from(at >= window.start && at < window.end);
        if booker == 0 {
            let version = answer.headers().get("seatbook-event-version").cloned();
            let version = version.ok_or("a 201 without Seatbook-Event-Version")?;
            let name = "seatbook-event-version".parse()?;
            let answer = conn
                .send(http::with(gzip_get(&path, &who), name, version))
                .await?;
            let taken = |s: &Seat| s.id == seat && s.status != "available";
            let shows =
                answer.status() == StatusCode::OK && map_of(&answer)?.seats.iter().any(taken);
            own_reads += 1;
            own_missing += u64::from(!shows);
        }
    }
    Ok([in_window, own_reads, own_missing])
}

/// One reader: a poll every READ_EVERY, as a browser tab would (gzip, `If-None-Match` with the tag
/// of its last answer), timed from when it was due, so a slow answer delays no measurement.
/// Returns the latencies (µs) of the polls due inside the window.
async fn poll_until(
    addr: SocketAddr,
    path: String,
    window: Window,
    offset: Duration,
) -> Result<Vec<u64>> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::user("bench-hot-reader");
    let (mut latencies, mut tag, mut due) = (Vec::new(), None, Instant::now() + offset);
    while due < window.end {
        tokio::time::sleep_until(due.into()).await;
        let mut request = gzip_get(&path, &who);
        if let Some(tag) = &tag {
            request = http::with(request, IF_NONE_MATCH, HeaderValue::clone(tag));
        }
        let answer = conn.send(request).await?;
        let done = Instant::now();
        match answer.status() {
            StatusCode::OK => tag = answer.headers().get(ETAG).cloned(),
            StatusCode::NOT_MODIFIED => {}
            _ => return Err(unexpected("a map poll", &answer)),
        }
        if due >= window.start && done < window.end {
            latencies.push(micros(done - due));
        }
        due += READ_EVERY;
    }
    Ok(latencies)
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
            for seat in map_of(&answer)?.seats {
                if seat.status != "available" {
                    first_seen.entry(seat.id).or_insert(at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(first_seen)
}
