//! The load generator: closed-loop clients for steady scenarios, the herd, and latency
//! percentiles (HdrHistogram, 3 significant digits: each within 0.1 % of the exact sample).
//!
//! Closed loop: every client has one connection and one request in flight, sends the next as soon
//! as the previous is answered, and only answers that complete inside the window count. Warm-up
//! answers are still checked and recorded (for the integrity check), just not timed.

use crate::http::{Body, Conn};
use crate::Result;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One simulated client's behaviour.
pub trait Client: Send + 'static {
    /// What its rate counts.
    const UNIT: &'static str = "req/s";
    /// The next request; `None` retires the client.
    fn next_request(&mut self) -> Option<Request<Body>>;
    /// Sees every answer; false when it is not what the scenario expects.
    fn check_answer(&mut self, status: StatusCode, body: &Bytes) -> bool;
}

/// The measurement window: answers completing between `start` and `end` count.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn after(warmup: Duration, measure: Duration) -> Window {
        let start = Instant::now() + warmup;
        Window {
            start,
            end: start + measure,
        }
    }

    pub fn seconds(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// What a load's requests did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Answers completed inside the window.
    pub completed: u64,
    latency: Latencies,
    /// Over the whole run, warm-up included.
    pub statuses: BTreeMap<u16, u64>,
    /// Unexpected answers and transport errors.
    pub errors: u64,
    pub first_problem: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.completed += other.completed;
        self.latency.add(&other.latency);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.first_problem = self.first_problem.take().or(other.first_problem);
    }

    pub fn percentiles(&self) -> Percentiles {
        self.latency.percentiles()
    }

    fn problem(&mut self, problem: impl FnOnce() -> String) {
        self.errors += 1;
        self.first_problem.get_or_insert_with(problem);
    }
}

/// How long one request may take before it counts as unanswered.
const PATIENCE: Duration = Duration::from_secs(60);

/// Closed loop: each client on a connection of its own to `addr` until `window.end`. The clients
/// are handed back so the scenario can read what they recorded.
pub async fn closed_loop<C: Client>(
    addr: SocketAddr,
    clients: Vec<C>,
    window: Window,
) -> Result<(Stats, Vec<C>)> {
    let conns: Vec<Conn> = stream::iter(vec![addr; clients.len()])
        .map(Conn::open)
        .buffered(64)
        .try_collect()
        .await?;
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(conns)
        .map(|(client, conn)| tokio::spawn(run_client(addr, client, conn, window)))
        .collect();
    let (mut stats, mut clients) = (Stats::default(), Vec::new());
    for task in tasks {
        let (client, part) = task.await?;
        stats.merge(part);
        clients.push(client);
    }
    Ok((stats, clients))
}

async fn run_client<C: Client>(
    addr: SocketAddr,
    mut client: C,
    conn: Conn,
    window: Window,
) -> (C, Stats) {
    let (mut stats, mut conn) = (Stats::default(), Some(conn));
    while Instant::now() < window.end {
        let Some(request) = client.next_request() else {
            break;
        };
        if conn.is_none() {
            match Conn::open(addr).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    stats.problem(|| format!("reconnect failed: {err}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let sent = Instant::now();
        let active = conn.as_mut().expect("connected above");
        match tokio::time::timeout(PATIENCE, active.send(request)).await {
            Ok(Ok(answer)) => {
                let (status, body, done) = (answer.status(), answer.body(), Instant::now());
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if !client.check_answer(status, body) {
                    let body = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    stats.problem(|| format!("{status}: {body}"));
                }
                if sent >= window.start && done <= window.end {
                    stats.completed += 1;
                    stats.latency.record(done - sent);
                }
            }
            Ok(Err(err)) => {
                stats.problem(|| format!("transport: {err}"));
                conn = None;
            }
            Err(_) => {
                stats.problem(|| format!("no answer within {PATIENCE:?}"));
                conn = None;
            }
        }
    }
    (client, stats)
}

/// A herd: how long it took to open the connections, and every answer (in request order) with
/// the time from the release to its arrival.
pub struct HerdRun {
    pub connect_time: Duration,
    pub answers: Vec<(Result<Response<Bytes>, String>, Duration)>,
}

/// Opens a connection per request first, then releases every request at the same instant, so
/// what is timed is the server deciding N races, not the connect storm (bounded by the accept
/// queue).
pub async fn herd(addr: SocketAddr, requests: Vec<Request<Body>>) -> Result<HerdRun> {
    let opening = Instant::now();
    let conns: Vec<Conn> = stream::iter(vec![addr; requests.len()])
        .map(Conn::open)
        .buffered(256)
        .try_collect()
        .await?;
    let connect_time = opening.elapsed();
    let (release, gate) = watch::channel(None::<Instant>);
    let tasks: Vec<_> = conns
        .into_iter()
        .zip(requests)
        .map(|(mut conn, request)| {
            let mut gate = gate.clone();
            tokio::spawn(async move {
                let t0 = match gate.wait_for(Option::is_some).await {
                    Ok(t0) => t0.expect("an instant"),
                    Err(_) => return (Err("never released".into()), Duration::ZERO),
                };
                let answer = match tokio::time::timeout(PATIENCE, conn.send(request)).await {
                    Ok(answer) => answer.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {PATIENCE:?}")),
                };
                (answer, t0.elapsed())
            })
        })
        .collect();
    // Let every task reach the gate before opening it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(Some(Instant::now()))?;
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await?);
    }
    Ok(HerdRun {
        connect_time,
        answers,
    })
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn from_micros(samples: &[u64]) -> Percentiles {
        let mut latencies = Latencies::default();
        samples.iter().for_each(|&us| latencies.record_us(us));
        latencies.percentiles()
    }
}

/// Microseconds; the histogram grows as larger values arrive, so one per client stays small.
#[derive(Debug, Clone)]
struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies(Histogram::new(3).expect("3 significant digits"))
    }
}

impl Latencies {
    fn record(&mut self, latency: Duration) {
        self.record_us(micros(latency));
    }

    fn record_us(&mut self, us: u64) {
        self.0.record(us).expect("an auto-resizing histogram");
    }

    fn add(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("an auto-resizing histogram");
    }

    fn percentiles(&self) -> Percentiles {
        let h = &self.0;
        let at = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        match h.is_empty() {
            true => Percentiles::default(),
            false => Percentiles {
                p50_ms: at(0.50),
                p95_ms: at(0.95),
                p99_ms: at(0.99),
                max_ms: h.max() as f64 / 1000.0,
            },
        }
    }
}

pub fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_histograms_precision_and_histograms_add_up() {
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        let p = Percentiles::from_micros(&(1..=1000).map(|ms| ms * 1000).collect::<Vec<_>>());
        assert!(close(p.p50_ms, 500.0) && close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.p95_ms, 950.0) && close(p.max_ms, 1000.0), "{p:?}");
        assert_eq!(Percentiles::from_micros(&[]), Percentiles::default());
        let (mut a, mut b) = (Latencies::default(), Latencies::default());
        a.record(Duration::from_millis(1));
        b.record(Duration::from_secs(90));
        a.add(&b);
        let p = a.percentiles();
        assert!(close(p.p50_ms, 1.0) && close(p.max_ms, 90_000.0), "{p:?}");
    }
}
