//! `queue`: the waiting room's queue (issue 23, docs/decisions.md 26). 100,000 people join one
//! event's queue through the 32 connections: every position 1..100,000 must be handed out exactly
//! once (no duplicate, no gap). The join rate is set beside redis-benchmark of one `ZADD` (the
//! heart of a join) and the poll rate (`GET …/queue/me`, a Lua read of the entry) beside
//! redis-benchmark `GET`, on the same cores.

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
use std::time::Instant;

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
        Ok(())
    }
}
