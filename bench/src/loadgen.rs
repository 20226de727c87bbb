//! The load generator: closed-loop clients for steady scenarios, open-loop clients at a fixed
//! arrival rate, and the herd (all at once, or queued for a fixed fleet of servers).
//!
//! Closed loop: every client has one connection and one request in flight, sends the next as soon
//! as the previous is answered, and only answers that complete inside the measurement window
//! count. Warm-up answers are still checked and recorded (for the integrity check), just not timed.

use crate::http::{Body, Conn};
use crate::stats::{Latencies, Percentiles};
use crate::Result;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use hyper::{Request, StatusCode};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
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
    /// Answers completed inside the window (open loop: answers to requests intended inside it).
    pub completed: u64,
    latency: Latencies,
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
        self.latency.add(&other.latency);
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

    pub fn percentiles(&self) -> Percentiles {
        self.latency.percentiles()
    }

    pub fn errors(&self) -> u64 {
        self.unexpected + self.transport_errors
    }

    fn note_problem(&mut self, problem: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem());
        }
    }

    /// Counts an answer and checks it with the client (a refused answer is counted unexpected).
    fn answered<C: Client>(
        &mut self,
        client: &mut C,
        kind: usize,
        status: StatusCode,
        body: &Bytes,
    ) {
        *self.statuses.entry(status.as_u16()).or_default() += 1;
        if !client.check_answer(kind, status, body) {
            self.unexpected += 1;
            self.note_problem(|| {
                format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )
            });
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
    closed_loop_to(&[addr], kinds, clients, window).await
}

/// The same, client `i` talking to `addrs[i % addrs.len()]` (in `lambda`, each client owns a
/// server process of its own).
pub async fn closed_loop_to<C: Client>(
    addrs: &[SocketAddr],
    kinds: &[&str],
    clients: Vec<C>,
    window: Window,
) -> Result<LoadResult<C>> {
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            tokio::spawn(run_client(addrs[i % addrs.len()], names, client, window))
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
        let Some(active) = connected(&mut conn, addr, &mut stats[kind]).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let sent = Instant::now();
        let answer = active.send(request).await;
        let done = Instant::now();
        let kind_stats = &mut stats[kind];
        match answer {
            Ok((status, body)) => {
                kind_stats.answered(&mut client, kind, status, &body);
                if sent >= window.start && done <= window.end {
                    kind_stats.completed += 1;
                    kind_stats.latency.record(done - sent);
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

/// The open connection, reopened after a transport error; `None` (counted) when that fails.
async fn connected<'a>(
    conn: &'a mut Option<Conn>,
    addr: SocketAddr,
    stats: &mut KindStats,
) -> Option<&'a mut Conn> {
    if conn.is_none() {
        match Conn::open(addr).await {
            Ok(c) => *conn = Some(c),
            Err(err) => {
                stats.transport_errors += 1;
                stats.note_problem(|| format!("reconnect failed: {err}"));
                return None;
            }
        }
    }
    conn.as_mut()
}

/// A send later than this after its intended time counts as late. tokio's timer has a 1 ms
/// granularity, so a send up to about 1 ms late is the timer, not falling behind.
pub const LATE_AFTER: Duration = Duration::from_millis(2);

/// How long one open-loop request may take before it counts as unanswered.
const OPEN_LOOP_PATIENCE: Duration = Duration::from_secs(60);

/// How the open-loop load generator kept (or did not keep) its schedule.
#[derive(Debug, Default, Clone)]
pub struct SendStats {
    /// Requests whose intended send time fell inside the window.
    pub scheduled: u64,
    /// Of those, the ones sent at all (a backlog still unsent at the drain deadline is not).
    pub sent: u64,
    /// Of those, sent `LATE_AFTER` or more after their intended time, for whatever reason
    /// (mostly: their connection was still waiting for the previous answer).
    pub late: u64,
    /// Of the late ones, those whose connection was free at the intended time: the load
    /// generator itself fell behind (its timer, or no CPU for it).
    pub late_loadgen: u64,
    /// How late sends were whose connection was free at the intended time (the load
    /// generator's own lag).
    pub loadgen_lag: Latencies,
    /// Answers that arrived inside the window, whatever their intended time.
    pub answered_in_window: u64,
}

impl SendStats {
    fn merge(&mut self, other: &SendStats) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.late += other.late;
        self.late_loadgen += other.late_loadgen;
        self.loadgen_lag.add(&other.loadgen_lag);
        self.answered_in_window += other.answered_in_window;
    }

    pub fn unsent(&self) -> u64 {
        self.scheduled - self.sent
    }
}

pub struct OpenLoopResult<C> {
    /// Latency from the intended send time, over requests intended inside the window.
    pub kinds: Vec<KindStats>,
    pub clients: Vec<C>,
    pub send: SendStats,
}

/// The arrival schedule: request `k` of connection `i` (of `n`) is due at
/// `begin + (k·n + i) / rate`, so arrivals are evenly spaced at `rate` across all connections.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    begin: Instant,
    rate: f64,
    connections: usize,
    window: Window,
    /// A backlog of requests intended inside the window is still sent until then; what is left
    /// counts as unsent.
    drain_until: Instant,
}

impl Schedule {
    fn due(&self, connection: usize, k: u64) -> Instant {
        let slot = k as f64 * self.connections as f64 + connection as f64;
        self.begin + Duration::from_secs_f64(slot / self.rate)
    }
}

/// Open loop at a fixed arrival rate (like wrk2 / `oha --rate`): each client owns one
/// connection and sends its requests at their intended times from the schedule, whether or not
/// the server kept up. A request whose connection is still busy at its intended time is sent as
/// soon as the connection is free, and its latency still runs from the intended time, so a
/// stalled server shows up in the percentiles instead of slowing the load down
/// (coordinated omission). The schedule starts as soon as every connection is open and ends at
/// `window.end`; only requests intended inside the window are timed, and their answers are
/// waited for after the window ends.
pub async fn open_loop<C: Client>(
    addr: SocketAddr,
    kinds: &[&str],
    clients: Vec<C>,
    rate: f64,
    window: Window,
) -> Result<OpenLoopResult<C>> {
    if rate <= 0.0 || clients.is_empty() {
        return Err("an open loop needs a positive rate and at least one client".into());
    }
    let conns: Vec<Conn> = stream::iter(0..clients.len())
        .map(|_| Conn::open(addr))
        .buffered(64)
        .try_collect()
        .await?;
    let begin = Instant::now();
    if begin > window.start {
        return Err("opening the open loop's connections took longer than the warm-up".into());
    }
    let schedule = Schedule {
        begin,
        rate,
        connections: clients.len(),
        window,
        drain_until: window.end + (window.end - window.start).max(Duration::from_secs(5)),
    };
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(conns)
        .enumerate()
        .map(|(i, (client, conn))| {
            let names: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            tokio::spawn(run_open_client(addr, names, client, conn, i, schedule))
        })
        .collect();
    let mut merged: Vec<KindStats> = kinds.iter().map(|k| KindStats::named(k)).collect();
    let mut send = SendStats::default();
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (client, stats, part) = task.await??;
        for (total, part) in merged.iter_mut().zip(stats) {
            total.merge(part);
        }
        send.merge(&part);
        clients.push(client);
    }
    Ok(OpenLoopResult {
        kinds: merged,
        clients,
        send,
    })
}

async fn run_open_client<C: Client>(
    addr: SocketAddr,
    kinds: Vec<String>,
    mut client: C,
    conn: Conn,
    me: usize,
    schedule: Schedule,
) -> Result<(C, Vec<KindStats>, SendStats)> {
    let window = schedule.window;
    let mut stats: Vec<KindStats> = kinds.iter().map(|k| KindStats::named(k)).collect();
    let mut send = SendStats::default();
    let mut conn = Some(conn);
    // When this connection's previous answer arrived.
    let mut free_since = schedule.begin;
    for k in 0.. {
        let intended = schedule.due(me, k);
        if intended >= window.end {
            break;
        }
        let timed = intended >= window.start;
        if timed {
            send.scheduled += 1;
        }
        if Instant::now() >= schedule.drain_until {
            // Too far behind: the rest of the schedule is counted, not sent.
            continue;
        }
        tokio::time::sleep_until(intended.into()).await;
        let Some((kind, request)) = client.next_request() else {
            break;
        };
        let Some(active) = connected(&mut conn, addr, &mut stats[kind]).await else {
            continue;
        };
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(intended);
        let was_free = free_since <= intended;
        if timed {
            send.sent += 1;
            if lag >= LATE_AFTER {
                send.late += 1;
                if was_free {
                    send.late_loadgen += 1;
                }
            }
            if was_free {
                send.loadgen_lag.record(lag);
            }
        }
        let answer = tokio::time::timeout(OPEN_LOOP_PATIENCE, active.send(request)).await;
        let done = Instant::now();
        free_since = done;
        let kind_stats = &mut stats[kind];
        match answer {
            Ok(Ok((status, body))) => {
                kind_stats.answered(&mut client, kind, status, &body);
                if timed {
                    kind_stats.completed += 1;
                    kind_stats.latency.record(done - intended);
                }
                if done >= window.start && done <= window.end {
                    send.answered_in_window += 1;
                }
            }
            Ok(Err(err)) => {
                kind_stats.transport_errors += 1;
                kind_stats.note_problem(|| format!("transport: {err}"));
                conn = None;
            }
            Err(_) => {
                kind_stats.transport_errors += 1;
                kind_stats.note_problem(|| format!("no answer within {OPEN_LOOP_PATIENCE:?}"));
                conn = None;
            }
        }
    }
    Ok((client, stats, send))
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
                    Err(_) => return herd_failure("herd was never released".to_owned()),
                };
                let answer = tokio::time::timeout(HERD_PATIENCE, conn.send(request)).await;
                herd_answer(answer, t0.elapsed())
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

/// A herd queued for a fixed fleet of single-request servers (the `lambda` scenario): every
/// request enters one FIFO queue at the same instant; each worker owns one keep-alive
/// connection to its own server (`addrs`, one worker each) and takes the next request from the
/// queue as soon as its previous answer arrived, so each server handles one request at a time
/// and the rest wait for a free one. Latency runs from the release, queueing included.
pub async fn queued_herd(addrs: &[SocketAddr], requests: Vec<Request<Body>>) -> Result<HerdRun> {
    let opening = Instant::now();
    let conns: Vec<Conn> = stream::iter(addrs.iter().copied())
        .map(Conn::open)
        .buffered(64)
        .try_collect()
        .await?;
    let connect_time = opening.elapsed();

    let total = requests.len();
    let queue = Arc::new(Mutex::new(
        requests.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let (release, gate) = watch::channel(None::<Instant>);
    let workers: Vec<_> = conns
        .into_iter()
        .zip(addrs.iter().copied())
        .map(|(conn, addr)| {
            let mut gate = gate.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                let Ok(t0) = gate
                    .wait_for(Option::is_some)
                    .await
                    .map(|t| t.expect("an instant"))
                else {
                    return done;
                };
                let mut conn = Some(conn);
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some((index, request)) = next else {
                        break;
                    };
                    let active = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::open(addr).await {
                            Ok(c) => conn.insert(c),
                            Err(err) => {
                                done.push((index, herd_failure(format!("reconnect: {err}"))));
                                continue;
                            }
                        },
                    };
                    let answer = tokio::time::timeout(HERD_PATIENCE, active.send(request)).await;
                    let answer = herd_answer(answer, t0.elapsed());
                    if answer.error.is_some() {
                        conn = None;
                    }
                    done.push((index, answer));
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(Some(Instant::now()))?;

    let mut answers: Vec<Option<HerdAnswer>> = (0..total).map(|_| None).collect();
    for worker in workers {
        for (index, answer) in worker.await? {
            answers[index] = Some(answer);
        }
    }
    Ok(HerdRun {
        connect_time,
        answers: answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| herd_failure("never taken from the queue".to_owned())))
            .collect(),
    })
}

fn herd_answer(
    answer: std::result::Result<Result<(StatusCode, Bytes)>, tokio::time::error::Elapsed>,
    latency: Duration,
) -> HerdAnswer {
    let (status, body, error) = match answer {
        Ok(Ok((status, body))) => (Some(status), body, None),
        Ok(Err(err)) => (None, Bytes::new(), Some(err.to_string())),
        Err(_) => (
            None,
            Bytes::new(),
            Some(format!("no answer within {HERD_PATIENCE:?}")),
        ),
    };
    HerdAnswer {
        status,
        body,
        latency,
        error,
    }
}

fn herd_failure(error: String) -> HerdAnswer {
    HerdAnswer {
        status: None,
        body: Bytes::new(),
        latency: Duration::ZERO,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spreads_arrivals_evenly_over_the_connections() {
        let begin = Instant::now();
        let schedule = Schedule {
            begin,
            rate: 100.0,
            connections: 4,
            window: Window {
                start: begin,
                end: begin + Duration::from_secs(1),
            },
            drain_until: begin + Duration::from_secs(2),
        };
        // Every 10 ms one arrival, connection after connection.
        let at = |i, k| (schedule.due(i, k) - begin).as_secs_f64();
        assert!((at(0, 0) - 0.00).abs() < 1e-9);
        assert!((at(1, 0) - 0.01).abs() < 1e-9);
        assert!((at(3, 0) - 0.03).abs() < 1e-9);
        assert!((at(0, 1) - 0.04).abs() < 1e-9);
        assert!((at(2, 5) - 0.22).abs() < 1e-9);
    }
}
