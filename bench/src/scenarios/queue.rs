//! `queue`: the waiting room's queue (issue 23, docs/decisions.md 26). 100,000 people join one
//! event's queue through the 32 connections: every position 1..100,000 must be handed out exactly
//! once (no duplicate, no gap). The join rate is set beside redis-benchmark of one `ZADD` (the
//! heart of a join) and the poll rate (`GET …/queue/me`, a Lua read of the entry) beside
//! redis-benchmark `GET`, on the same cores.
//!
//! Then an on-sale twice, the same crowd on the same 100 seats: once a free-for-all (everyone
//! reads the map and books a free seat, again after each 409), once behind a waiting room
//! (everyone joins, polls as `Retry-After` says, and books the same way once admitted). Reported:
//! the admission rate beside `admit_per_minute`, the time from the open to the last seat sold,
//! and the 409s per booking of each.

use super::{Bench, CLIENTS};
use crate::fixtures::Admin;
use crate::http::{self, Body, Conn, Identity};
use crate::integrity::Check;
use crate::loadgen::{micros, Client, Percentiles};
use crate::report::Throughput;
use crate::Result;
use bytes::Bytes;
use hyper::{Request, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The on-sale: this many buyers on a 10 × 10 hall, the room admitting this many a minute.
const CROWD: usize = 300;
const ADMIT_PER_MINUTE: i64 = 1200;

/// Reads one user's entry over and over.
struct Poller {
    who: Identity,
    path: String,
}

impl Client for Poller {
    fn next_request(&mut self) -> Option<Request<Body>> {
        Some(http::get(&self.path, &self.who))
    }

    fn check_answer(&mut self, status: StatusCode, _: &Bytes) -> bool {
        status == StatusCode::OK
    }
}

/// What one connection's joins saw: positions, latencies (µs), statuses.
type Joined = (Vec<i64>, Vec<u64>, BTreeMap<u16, u64>);

/// Joins users `q-<i>` for every `i` < `total` with `i % CLIENTS == client`, one at a time.
async fn join_share(addr: SocketAddr, event: i64, client: usize, total: usize) -> Result<Joined> {
    let mut conn = Conn::open(addr).await?;
    let path = format!("/api/v1/events/{event}/queue");
    let (mut positions, mut latencies, mut statuses) = (Vec::new(), Vec::new(), BTreeMap::new());
    for i in (client..total).step_by(CLIENTS) {
        let started = Instant::now();
        let answer = conn
            .send(http::post(
                &path,
                &Identity::user(&format!("q-{i}")),
                &json!({}),
            ))
            .await?;
        latencies.push(micros(started.elapsed()));
        *statuses.entry(answer.status().as_u16()).or_default() += 1;
        let entry: serde_json::Value = serde_json::from_slice(answer.body()).unwrap_or_default();
        positions.extend(entry["position"].as_i64());
    }
    Ok((positions, latencies, statuses))
}

impl Bench {
    pub async fn queue(&mut self) -> Result<()> {
        let total = if self.opts.quick { 5_000 } else { 100_000 };
        let to = self.cached_server().await?;
        let mut admin = Admin::open(to.addr).await?;
        let venue = admin.venue("queue", 10, 10).await?;
        // One admission a minute: the line stays put while it is measured.
        let room = json!({"waiting_room": {"admit_per_minute": 1}});
        let event = admin.event_with("queue", venue.id, room).await?;

        eprintln!("[queue] redis-benchmark ZADD and GET ...");
        let key = self.redis.key("bench-queue-zset");
        let zadd = [
            "-r",
            "1000000",
            "ZADD",
            key.as_str(),
            "__rand_int__",
            "m:__rand_int__",
        ];
        let zadd = self.redis_benchmark("ZADD", &zadd).await?;
        let get = self.redis_benchmark("GET", &["-t", "get"]).await?;

        eprintln!("[queue] {total} joins over {CLIENTS} connections ...");
        let started = Instant::now();
        let shares: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(join_share(to.addr, event, c, total)))
            .collect();
        let (mut positions, mut latencies, mut statuses) =
            (Vec::new(), Vec::new(), BTreeMap::new());
        for share in shares {
            let (p, l, s) = share.await??;
            positions.extend(p);
            latencies.extend(l);
            for (status, n) in s {
                *statuses.entry(status).or_insert(0) += n;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        positions.sort_unstable();
        let mut violations = Vec::new();
        if positions.len() != total {
            violations.push(format!(
                "{} of {total} joins answered a position",
                positions.len()
            ));
        }
        let expected = 1..=total as i64;
        if !positions.iter().copied().eq(expected) {
            let dup = positions.windows(2).filter(|w| w[0] == w[1]).count();
            let (lo, hi) = (positions.first(), positions.last());
            violations.push(format!(
                "positions are not exactly 1..{total}: {dup} duplicates, from {lo:?} to {hi:?}"
            ));
        }
        self.record(Check {
            scope: format!("queue: {total} joins, positions 1..{total}"),
            bookings_checked: total,
            tickets_checked: 0,
            violations,
        });
        let errors = statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        let row = Throughput {
            scenario: "queue-join".into(),
            rate: total as f64 / seconds,
            unit: "joins/s".into(),
            latency: Percentiles::from_micros(&latencies),
            requests: total as u64,
            errors,
            statuses,
            ..Throughput::default()
        };
        let row = row.against(&format!("redis-benchmark {}", zadd.name), zadd.rps);
        self.results.throughput.push(row);

        eprintln!("[queue] polls of the entries ...");
        let path = format!("/api/v1/events/{event}/queue/me");
        let pollers = (0..CLIENTS)
            .map(|c| Poller {
                who: Identity::user(&format!("q-{c}")),
                path: path.clone(),
            })
            .collect();
        let (_, row) = self.measure("queue-poll", &to, pollers).await?;
        let row = row.against(&format!("redis-benchmark {}", get.name), get.rps);
        self.results.throughput.push(row);
        self.queue_onsale(to.addr).await
    }

    /// The same crowd on the same seats, without the room and with it.
    async fn queue_onsale(&mut self, addr: SocketAddr) -> Result<()> {
        let mut admin = Admin::open(addr).await?;
        let venue = admin.venue("queue on-sale", 10, 10).await?;
        let free_for_all = admin
            .event_with("free-for-all", venue.id, json!({}))
            .await?;
        let room = json!({"waiting_room": {"admit_per_minute": ADMIT_PER_MINUTE}});
        let roomed = admin.event_with("waiting room", venue.id, room).await?;
        for (label, event, queued) in [
            ("without room", free_for_all, false),
            ("with room", roomed, true),
        ] {
            eprintln!("[queue] on-sale {label}: {CROWD} buyers, 100 seats ...");
            // User names have no spaces.
            let slug = label.replace(' ', "-");
            let started = Instant::now();
            let buyers: Vec<_> = (0..CROWD)
                .map(|b| tokio::spawn(buy(addr, event, format!("{slug}-{b}"), queued, started)))
                .collect();
            let (mut booked, mut conflicts, mut unavailable) = (0u64, 0u64, 0u64);
            let mut admitted = Vec::new();
            let mut sold_out_at = Duration::ZERO;
            for buyer in buyers {
                let bought = buyer.await??;
                conflicts += bought.conflicts;
                unavailable += bought.unavailable;
                admitted.extend(bought.admitted_at);
                if let Some(at) = bought.booked_at {
                    booked += 1;
                    sold_out_at = sold_out_at.max(at);
                }
            }
            self.results.figure(
                &format!("queue on-sale {label}: seats sold"),
                booked as f64,
                "bookings",
            );
            self.results.figure(
                &format!("queue on-sale {label}: open to sold out"),
                sold_out_at.as_secs_f64(),
                "s",
            );
            self.results.figure(
                &format!("queue on-sale {label}: 409s per booking"),
                conflicts as f64 / booked.max(1) as f64,
                "409/booking",
            );
            self.results.figure(
                &format!("queue on-sale {label}: 503s (asked again)"),
                unavailable as f64,
                "answers",
            );
            if queued {
                admitted.sort();
                // The room's first two seconds' worth is admitted at the opening (its slack); the
                // rest at its rate: as seen by the buyers, who poll as Retry-After says.
                let slack = (ADMIT_PER_MINUTE as f64 / 30.0).max(1.0);
                if let (Some(first), Some(last)) = (admitted.first(), admitted.last()) {
                    let span = (*last - *first).as_secs_f64().max(0.001);
                    let rate = (admitted.len() as f64 - slack).max(0.0) / span;
                    self.results.figure(
                        &format!("queue on-sale {label}: admitted after the slack"),
                        rate,
                        "admissions/s",
                    );
                    self.results.figure(
                        &format!("queue on-sale {label}: admit_per_minute / 60"),
                        ADMIT_PER_MINUTE as f64 / 60.0,
                        "admissions/s",
                    );
                }
                self.results.figure(
                    &format!("queue on-sale {label}: admitted"),
                    admitted.len() as f64,
                    "people",
                );
            }
        }
        Ok(())
    }
}

/// What one buyer of the on-sale went through.
struct Bought {
    booked_at: Option<Duration>,
    admitted_at: Option<Duration>,
    conflicts: u64,
    /// 503s (answered again after `Retry-After`).
    unavailable: u64,
}

/// One buyer: (with `queued`) joins and polls until admitted, then reads the map and books a free
/// seat, again after a 409, until booked or no seat is left.
async fn buy(
    addr: SocketAddr,
    event: i64,
    user: String,
    queued: bool,
    started: Instant,
) -> Result<Bought> {
    let mut conn = Conn::open(addr).await?;
    let who = Identity::user(&user);
    let mut bought = Bought {
        booked_at: None,
        admitted_at: None,
        conflicts: 0,
        unavailable: 0,
    };
    let mut token = None;
    if queued {
        let join = conn
            .send(http::post(
                &format!("/api/v1/events/{event}/queue"),
                &who,
                &json!({}),
            ))
            .await?;
        let mut answer = join;
        loop {
            let entry: serde_json::Value =
                serde_json::from_slice(answer.body()).unwrap_or_default();
            match entry["state"].as_str() {
                Some("admitted") => {
                    token = entry["admission"]["token"].as_str().map(str::to_owned);
                    bought.admitted_at = Some(started.elapsed());
                    break;
                }
                // Sold out for good once nothing is held any more: the bench's bookings are
                // confirmed at once, so no seat comes back.
                Some("sold_out") if seats_left(&mut conn, &who, event).await? == 0 => {
                    return Ok(bought)
                }
                Some(_) => {}
                // Redis slow or away (503 with Retry-After): as a client would, wait and ask again.
                None if answer.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    bought.unavailable += 1
                }
                None => {
                    return Err(format!(
                        "queue answer {}: {}",
                        answer.status(),
                        String::from_utf8_lossy(answer.body())
                    )
                    .into())
                }
            }
            let wait = answer
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1u64);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            answer = conn
                .send(http::get(&format!("/api/v1/events/{event}/queue/me"), &who))
                .await?;
        }
    }
    loop {
        let map = conn
            .send(http::get(
                &format!("/api/v1/events/{event}/availability"),
                &who,
            ))
            .await?;
        let map: serde_json::Value = serde_json::from_slice(map.body()).unwrap_or_default();
        let free: Vec<i64> = map["seats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == "available")
            .filter_map(|s| s["id"].as_i64())
            .collect();
        if free.is_empty() {
            return Ok(bought);
        }
        // A random free seat, as a person picks one.
        let pick = free[uuid::Uuid::new_v4().as_u128() as usize % free.len()];
        let mut request = http::post(
            "/api/v1/bookings",
            &who,
            &json!({"event_id": event, "seat_ids": [pick]}),
        );
        if let Some(token) = &token {
            request = http::with(
                request,
                "seatbook-admission".parse().expect("a header name"),
                token.parse()?,
            );
        }
        let answer = conn.send(request).await?;
        match answer.status() {
            StatusCode::CREATED => {
                bought.booked_at = Some(started.elapsed());
                return Ok(bought);
            }
            StatusCode::CONFLICT => bought.conflicts += 1,
            StatusCode::SERVICE_UNAVAILABLE => bought.unavailable += 1,
            other => {
                return Err(format!(
                    "booking {other}: {}",
                    String::from_utf8_lossy(answer.body())
                )
                .into())
            }
        }
    }
}

/// The seats of `event` the map shows available.
async fn seats_left(conn: &mut Conn, who: &Identity, event: i64) -> Result<u64> {
    let map = conn
        .send(http::get(
            &format!("/api/v1/events/{event}/availability"),
            who,
        ))
        .await?;
    let map: serde_json::Value = serde_json::from_slice(map.body()).unwrap_or_default();
    Ok(map["available_seats"].as_u64().unwrap_or(0))
}
