//! The load generator: closed-loop clients for steady scenarios, and the herd.
//!
//! Closed loop: every client has one connection and one request in flight, sends the next as soon
//! as the previous is answered, and only answers that complete inside the measurement window
//! count. Warm-up answers are still checked and recorded (for the integrity check), just not timed.

use crate::http::{Body, Conn};
use crate::stats::{micros, Percentiles};
use crate::Result;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use hyper::{Request, StatusCode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One simulated client's behaviour.
pub trait Client: Send + 'static {
    /// The next request and the index of the kind it counts under; `None` retires the client.
    fn next_request(&mut self) -> Option<(usize, Request<Body>)>;
    /// Sees every answer; returns false when it is not what the scenario expects.
    fn check_answer(&mut self, kind: usize, status: StatusCode, body: &Bytes) -> bool;
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

/// What one kind of request did.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    pub name: String,
    /// Answers completed inside the window.
    pub completed: u64,
    latencies_us: Vec<u64>,
    /// Over the whole run, warm-up included.
    pub statuses: BTreeMap<u16, u64>,
    pub unexpected: u64,
    pub transport_errors: u64,
    pub first_problem: Option<String>,
}

impl KindStats {
    fn named(name: &str) -> KindStats {
        KindStats {
            name: name.to_owned(),
            ..KindStats::default()
        }
    }

    fn merge(&mut self, other: KindStats) {
        self.completed += other.completed;
        self.latencies_us.extend(other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.unexpected += other.unexpected;
        self.transport_errors += other.transport_errors;
        if self.first_problem.is_none() {
            self.first_problem = other.first_problem;
        }
    }

    /// All kinds as one (the mixed scenario's overall line).
    pub fn combined(name: &str, kinds: &[KindStats]) -> KindStats {
        let mut all = KindStats::named(name);
        for kind in kinds {
            all.merge(kind.clone());
        }
        all
    }

    pub fn percentiles(&mut self) -> Percentiles {
        Percentiles::from_micros(&mut self.latencies_us)
    }

    pub fn errors(&self) -> u64 {
        self.unexpected + self.transport_errors
    }

    fn note_problem(&mut self, problem: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem());
        }
    }
}

pub struct LoadResult<C> {
    pub kinds: Vec<KindStats>,
    /// The clients, handed back so the scenario can read what they recorded.
    pub clients: Vec<C>,
}

/// Runs `clients` against `addr` until `window.end`.
pub async fn closed_loop<C: Client>(
    addr: SocketAddr,
    kinds: &[&str],
    clients: Vec<C>,
    window: Window,
) -> Result<LoadResult<C>> {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            tokio::spawn(run_client(addr, names, client, window))
        })
        .collect();
    let mut merged: Vec<KindStats> = kinds.iter().map(|k| KindStats::named(k)).collect();
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (client, stats) = task.await??;
        for (total, part) in merged.iter_mut().zip(stats) {
            total.merge(part);
        }
        clients.push(client);
    }
    Ok(LoadResult {
        kinds: merged,
        clients,
    })
}

async fn run_client<C: Client>(
    addr: SocketAddr,
    kinds: Vec<String>,
    mut client: C,
    window: Window,
) -> Result<(C, Vec<KindStats>)> {
    let mut stats: Vec<KindStats> = kinds.iter().map(|k| KindStats::named(k)).collect();
    let mut conn = Some(Conn::open(addr).await?);
    while Instant::now() < window.end {
        let Some((kind, request)) = client.next_request() else {
            break;
        };
        let active = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(addr).await {
                Ok(c) => conn.insert(c),
                Err(err) => {
                    stats[kind].transport_errors += 1;
                    stats[kind].note_problem(|| format!("reconnect failed: {err}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let answer = active.send(request).await;
        let done = Instant::now();
        let kind_stats = &mut stats[kind];
        match answer {
            Ok((status, body)) => {
                *kind_stats.statuses.entry(status.as_u16()).or_default() += 1;
                if !client.check_answer(kind, status, &body) {
                    kind_stats.unexpected += 1;
                    kind_stats.note_problem(|| {
                        format!(
                            "{status}: {}",
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        )
                    });
                }
                if sent >= window.start && done <= window.end {
                    kind_stats.completed += 1;
                    kind_stats.latencies_us.push(micros(done - sent));
                }
            }
            Err(err) => {
                kind_stats.transport_errors += 1;
                kind_stats.note_problem(|| format!("transport: {err}"));
                conn = None;
            }
        }
    }
    Ok((client, stats))
}

/// One herd request's fate.
#[derive(Debug)]
pub struct HerdAnswer {
    pub status: Option<StatusCode>,
    pub body: Bytes,
    /// From the moment the herd was released to the moment this answer was complete.
    pub latency: Duration,
    pub error: Option<String>,
}

/// A herd: how long it took to open the connections, and every answer.
pub struct HerdRun {
    pub connect_time: Duration,
    pub answers: Vec<HerdAnswer>,
}

/// How long a herd request may take before it counts as unanswered.
const HERD_PATIENCE: Duration = Duration::from_secs(60);

/// Opens one connection per request first, then releases all requests at the same instant.
///
/// Opening first is what makes the herd simultaneous: the connect storm (bounded by the accept
/// queue) is over before the clock starts, and what is timed is the server deciding N races.
pub async fn herd(addr: SocketAddr, requests: Vec<Request<Body>>) -> Result<HerdRun> {
    let opening = Instant::now();
    let conns: Vec<Conn> = stream::iter(0..requests.len())
        .map(|_| Conn::open(addr))
        .buffer_unordered(256)
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
                    Ok(t0) => t0.expect("released with an instant"),
                    Err(_) => return Err("herd was never released".to_owned()),
                };
                let answer = tokio::time::timeout(HERD_PATIENCE, conn.send(request)).await;
                let latency = t0.elapsed();
                Ok((answer, latency))
            })
        })
        .collect();
    // Let every task reach the gate before opening it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(Some(Instant::now()))?;

    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        let answer = match task.await? {
            Ok((Ok(Ok((status, body))), latency)) => HerdAnswer {
                status: Some(status),
                body,
                latency,
                error: None,
            },
            Ok((Ok(Err(err)), latency)) => HerdAnswer {
                status: None,
                body: Bytes::new(),
                latency,
                error: Some(err.to_string()),
            },
            Ok((Err(_), latency)) => HerdAnswer {
                status: None,
                body: Bytes::new(),
                latency,
                error: Some(format!("no answer within {HERD_PATIENCE:?}")),
            },
            Err(err) => HerdAnswer {
                status: None,
                body: Bytes::new(),
                latency: Duration::ZERO,
                error: Some(err),
            },
        };
        answers.push(answer);
    }
    Ok(HerdRun {
        connect_time,
        answers,
    })
}
