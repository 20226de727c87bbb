//! The load generator: closed-loop clients for steady scenarios, open-loop clients at a fixed
//! arrival rate, and the herd (all at once, or queued for a fixed fleet of servers).
//!
//! Closed loop: every client has one connection and one request in flight, sends the next as soon
//! as the previous is answered, and only answers that complete inside the window count. Warm-up
//! answers are still checked and recorded (for the integrity check), just not timed.

use crate::http::{Body, Conn};
use crate::stats::{Latencies, Percentiles};
use crate::Result;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use hyper::{Request, Response, StatusCode};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One simulated client's behaviour.
pub trait Client: Send + 'static {
    /// The kinds of request it sends, in report order.
    const KINDS: &'static [&'static str];
    /// What its rate counts.
    const UNIT: &'static str = "req/s";
    /// The next request and the index of the kind it counts under; `None` retires the client.
    fn next_request(&mut self) -> Option<(usize, Request<Body>)>;
    /// Sees every answer; false when it is not what the scenario expects.
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
    fn named(kinds: &[&str]) -> Vec<KindStats> {
        kinds
            .iter()
            .map(|k| KindStats {
                name: k.to_string(),
                ..KindStats::default()
            })
            .collect()
    }

    fn merge(&mut self, other: &KindStats) {
        self.completed += other.completed;
        self.latency.add(&other.latency);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.unexpected += other.unexpected;
        self.transport_errors += other.transport_errors;
        if self.first_problem.is_none() {
            self.first_problem.clone_from(&other.first_problem);
        }
    }

    /// All kinds as one (a scenario's overall line).
    pub fn combined(name: &str, kinds: &[KindStats]) -> KindStats {
        let mut all = KindStats::named(&[name]).remove(0);
        kinds.iter().for_each(|kind| all.merge(kind));
        all
    }

    pub fn percentiles(&self) -> Percentiles {
        self.latency.percentiles()
    }

    pub fn errors(&self) -> u64 {
        self.unexpected + self.transport_errors
    }

    fn problem(&mut self, problem: impl FnOnce() -> String) {
        self.transport_errors += 1;
        self.first_problem.get_or_insert_with(problem);
    }
}

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
    /// How late sends were whose connection was free at the intended time.
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
}

pub struct LoadResult<C> {
    pub kinds: Vec<KindStats>,
    /// The clients, handed back so the scenario can read what they recorded.
    pub clients: Vec<C>,
    /// Open loop only.
    pub send: SendStats,
}

/// A send later than this after its intended time counts as late. tokio's timer has a 1 ms
/// granularity, so up to about 1 ms late is the timer, not falling behind.
pub const LATE_AFTER: Duration = Duration::from_millis(2);

/// How long one request may take before it counts as unanswered.
const PATIENCE: Duration = Duration::from_secs(60);

/// The open-loop arrival schedule: request `k` of connection `i` (of `n`) is due at
/// `begin + (k·n + i) / rate`, so arrivals are evenly spaced at `rate` across all connections.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    begin: Instant,
    rate: f64,
    connections: usize,
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

/// Closed loop: client `i` talks to `addrs[i % addrs.len()]` until `window.end` (in `lambda`,
/// each client owns a server process of its own).
pub async fn closed_loop<C: Client>(
    addrs: &[SocketAddr],
    clients: Vec<C>,
    window: Window,
) -> Result<LoadResult<C>> {
    run(addrs, clients, window, None).await
}

/// Open loop at a fixed arrival rate (like wrk2 / `oha --rate`): each client owns one connection
/// and sends at the intended times of the schedule, whether or not the server kept up. A request
/// whose connection is still busy is sent once it is free, and its latency still runs from the
/// intended time, so a stalled server shows in the percentiles instead of slowing the load down
/// (coordinated omission). Only requests intended inside the window are timed; their answers are
/// waited for after it ends.
pub async fn open_loop<C: Client>(
    addrs: &[SocketAddr],
    clients: Vec<C>,
    rate: f64,
    window: Window,
) -> Result<LoadResult<C>> {
    if rate <= 0.0 || clients.is_empty() {
        return Err("an open loop needs a positive rate and at least one client".into());
    }
    run(addrs, clients, window, Some(rate)).await
}

async fn run<C: Client>(
    addrs: &[SocketAddr],
    clients: Vec<C>,
    window: Window,
    rate: Option<f64>,
) -> Result<LoadResult<C>> {
    let targets: Vec<SocketAddr> = (0..clients.len()).map(|i| addrs[i % addrs.len()]).collect();
    let conns: Vec<Conn> = stream::iter(targets.clone())
        .map(Conn::open)
        .buffered(64)
        .try_collect()
        .await?;
    let begin = Instant::now();
    if rate.is_some() && begin > window.start {
        return Err("opening the open loop's connections took longer than the warm-up".into());
    }
    let schedule = rate.map(|rate| Schedule {
        begin,
        rate,
        connections: clients.len(),
        drain_until: window.end + (window.end - window.start).max(Duration::from_secs(5)),
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(conns)
        .enumerate()
        .map(|(i, (client, conn))| {
            let kinds = KindStats::named(C::KINDS);
            let schedule = schedule.map(|s| (i, s));
            tokio::spawn(run_client(
                targets[i], kinds, client, conn, window, schedule,
            ))
        })
        .collect();
    let mut result = LoadResult {
        kinds: KindStats::named(C::KINDS),
        clients: Vec::new(),
        send: SendStats::default(),
    };
    for task in tasks {
        let (client, kinds, send) = task.await??;
        result
            .kinds
            .iter_mut()
            .zip(&kinds)
            .for_each(|(total, part)| total.merge(part));
        result.send.merge(&send);
        result.clients.push(client);
    }
    Ok(result)
}

async fn run_client<C: Client>(
    addr: SocketAddr,
    mut stats: Vec<KindStats>,
    mut client: C,
    conn: Conn,
    window: Window,
    schedule: Option<(usize, Schedule)>,
) -> Result<(C, Vec<KindStats>, SendStats)> {
    let mut send = SendStats::default();
    let mut conn = Some(conn);
    // When this connection's previous answer arrived.
    let mut free_since = schedule.map_or_else(Instant::now, |(_, s)| s.begin);
    for k in 0.. {
        // Open loop: the intended time, which latency is counted from.
        let intended = match schedule {
            Some((me, s)) => s.due(me, k),
            None => Instant::now(),
        };
        if intended >= window.end {
            break;
        }
        let timed = intended >= window.start;
        if let Some((_, s)) = schedule {
            send.scheduled += u64::from(timed);
            if Instant::now() >= s.drain_until {
                continue; // too far behind: the rest of the schedule is counted, not sent
            }
            tokio::time::sleep_until(intended.into()).await;
        }
        let Some((kind, request)) = client.next_request() else {
            break;
        };
        if conn.is_none() {
            match Conn::open(addr).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    stats[kind].problem(|| format!("reconnect failed: {err}"));
                    if schedule.is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            }
        }
        let sent = Instant::now();
        // Closed loop: timed from the send.
        let (from, timed) = match schedule {
            Some(_) => (intended, timed),
            None => (sent, sent >= window.start),
        };
        if schedule.is_some() && timed {
            let lag = sent.saturating_duration_since(intended);
            let was_free = free_since <= intended;
            send.sent += 1;
            send.late += u64::from(lag >= LATE_AFTER);
            send.late_loadgen += u64::from(lag >= LATE_AFTER && was_free);
            if was_free {
                send.loadgen_lag.record(lag);
            }
        }
        let active = conn.as_mut().expect("connected above");
        let answer = tokio::time::timeout(PATIENCE, active.send(request)).await;
        let done = Instant::now();
        free_since = done;
        let stats = &mut stats[kind];
        match answer {
            Ok(Ok(answer)) => {
                let (status, body) = (answer.status(), answer.body());
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if !client.check_answer(kind, status, body) {
                    stats.unexpected += 1;
                    let body = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    stats
                        .first_problem
                        .get_or_insert_with(|| format!("{status}: {body}"));
                }
                let in_window = done >= window.start && done <= window.end;
                let counted = match schedule {
                    Some(_) => timed,
                    None => timed && done <= window.end,
                };
                if counted {
                    stats.completed += 1;
                    stats.latency.record(done - from);
                }
                send.answered_in_window += u64::from(schedule.is_some() && in_window);
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
    Ok((client, stats, send))
}

/// One herd request's fate.
#[derive(Debug)]
pub struct HerdAnswer {
    pub answer: Result<Response<Bytes>, String>,
    /// From the moment the herd was released to the moment this answer was complete.
    pub latency: Duration,
}

/// A herd: how long it took to open the connections, and every answer (in request order).
pub struct HerdRun {
    pub connect_time: Duration,
    pub answers: Vec<HerdAnswer>,
}

/// Opens the connections first, then releases every request at the same instant, so what is
/// timed is the server deciding N races, not the connect storm (bounded by the accept queue).
/// Direct (`addrs` of one): a connection per request. Queued (the `lambda` fleet): one worker
/// with one connection per address, all taking the next request from one FIFO queue as soon as
/// their previous answer arrived, so each server handles one request at a time. Latency runs
/// from the release, queueing included.
pub async fn herd(addrs: &[SocketAddr], requests: Vec<Request<Body>>) -> Result<HerdRun> {
    let total = requests.len();
    let direct = addrs.len() == 1;
    let targets: Vec<SocketAddr> = if direct {
        vec![addrs[0]; total]
    } else {
        addrs.to_vec()
    };
    let opening = Instant::now();
    let mut conns: Vec<(usize, Conn)> = stream::iter(targets.iter().copied().enumerate())
        .map(|(i, addr)| async move { Ok::<_, crate::Error>((i, Conn::open(addr).await?)) })
        .buffer_unordered(256)
        .try_collect()
        .await?;
    let connect_time = opening.elapsed();
    conns.sort_by_key(|(i, _)| *i);

    // Direct: a queue of one request per worker; queued: one queue for all.
    let mut queues: Vec<VecDeque<(usize, Request<Body>)>> = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        if direct || queues.is_empty() {
            queues.push(VecDeque::new());
        }
        queues.last_mut().expect("a queue").push_back((i, request));
    }
    let queues: std::sync::Arc<Vec<Mutex<VecDeque<_>>>> =
        std::sync::Arc::new(queues.into_iter().map(Mutex::new).collect());
    let (release, gate) = watch::channel(None::<Instant>);
    let workers: Vec<_> = conns
        .into_iter()
        .map(|(w, conn)| {
            let (mut gate, queues, addr) = (gate.clone(), queues.clone(), targets[w]);
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
                let queue = &queues[if direct { w } else { 0 }];
                loop {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some((index, request)) = next else {
                        break;
                    };
                    let answer = match conn.take() {
                        Some(c) => Ok(c),
                        None => Conn::open(addr)
                            .await
                            .map_err(|e| format!("reconnect: {e}")),
                    };
                    let answer = match answer {
                        Ok(mut c) => {
                            let sent = tokio::time::timeout(HERD_PATIENCE, c.send(request)).await;
                            match sent {
                                Ok(Ok(answer)) => {
                                    conn = Some(c);
                                    Ok(answer)
                                }
                                Ok(Err(e)) => Err(e.to_string()),
                                Err(_) => Err(format!("no answer within {HERD_PATIENCE:?}")),
                            }
                        }
                        Err(e) => Err(e),
                    };
                    done.push((
                        index,
                        HerdAnswer {
                            answer,
                            latency: t0.elapsed(),
                        },
                    ));
                }
                done
            })
        })
        .collect();
    // Let every worker reach the gate before opening it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(Some(Instant::now()))?;

    let mut answers: Vec<Option<HerdAnswer>> = (0..total).map(|_| None).collect();
    for worker in workers {
        for (index, answer) in worker.await? {
            answers[index] = Some(answer);
        }
    }
    let never = || HerdAnswer {
        answer: Err("never sent".into()),
        latency: Duration::ZERO,
    };
    Ok(HerdRun {
        connect_time,
        answers: answers
            .into_iter()
            .map(|a| a.unwrap_or_else(never))
            .collect(),
    })
}

/// How long a herd request may take before it counts as unanswered.
const HERD_PATIENCE: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spreads_arrivals_evenly_over_the_connections() {
        let begin = Instant::now();
        let end = begin + Duration::from_secs(2);
        let schedule = Schedule {
            begin,
            rate: 100.0,
            connections: 4,
            drain_until: end,
        };
        // Every 10 ms one arrival, connection after connection.
        let at = |i, k| (schedule.due(i, k) - begin).as_secs_f64();
        for (i, k, t) in [
            (0, 0, 0.0),
            (1, 0, 0.01),
            (3, 0, 0.03),
            (0, 1, 0.04),
            (2, 5, 0.22),
        ] {
            assert!((at(i, k) - t).abs() < 1e-9);
        }
    }
}
