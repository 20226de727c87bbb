//! `webhooks`: how fast the notifier delivers a backlog of booking events. N confirmed bookings
//! (`book()`, on a fresh arena event) leave N outbox rows; a server with the notifier on
//! (`WEBHOOK_URL`, 32 in flight) delivers them to a local receiver that takes 20 ms a request.
//! Ceiling: 32 in flight / 20 ms = 1,600 deliveries/s. Every booking's webhook must arrive.

use super::{Bench, Cpu};
use crate::fixtures::Admin;
use crate::integrity::Check;
use crate::procs::Server;
use crate::report::Throughput;
use crate::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver spends on each delivery.
const RECEIVER_DELAY: Duration = Duration::from_millis(20);
/// `WEBHOOK_CONCURRENCY`, set explicitly: the notifier's default.
const IN_FLIGHT: usize = 32;
const SECRET: &str = "whsec_c2VhdGJvb2stYmVuY2gtd2ViaG9vay1zZWNyZXQ=";

/// The receiver's tally: distinct `webhook-id`s, requests, first arrival and last answer.
#[derive(Default)]
struct Tally {
    ids: HashSet<i64>,
    requests: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Serves POSTs on a loopback port: each waits `RECEIVER_DELAY`, is counted, and answered 204.
async fn receiver(tally: Arc<Mutex<Tally>>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tally = tally.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let tally = tally.clone();
                async move {
                    let arrived = Instant::now();
                    let id = request
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
                    tokio::time::sleep(RECEIVER_DELAY).await;
                    let mut t = tally.lock().expect("tally");
                    t.requests += 1;
                    t.first.get_or_insert(arrived);
                    t.last = Some(Instant::now());
                    t.ids.extend(id);
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(url)
}

impl Bench {
    pub async fn webhooks(&mut self) -> Result<()> {
        let n = self.opts.profile.webhooks;
        let big = self.fixtures.big.clone();
        let event = Admin::open(self.main.addr)
            .await?
            .event("webhooks", big.id)
            .await?;
        // Only this backlog is due: what earlier scenarios left pending is set aside, and vacuumed
        // out of the notifier's partial indexes.
        let sql = "UPDATE outbox SET status = 'dead', last_error = 'set aside by seatbook-bench'
                   WHERE status = 'pending'";
        let set_aside = self.pg.execute(sql, &[]).await?;
        self.pg.batch_execute("VACUUM ANALYZE outbox").await?;
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let env = [
            ("WEBHOOK_URL", receiver(tally.clone()).await?),
            ("WEBHOOK_SECRET", SECRET.to_owned()),
            ("WEBHOOK_CONCURRENCY", IN_FLIGHT.to_string()),
        ];
        // Started first: its loop drains every 5 s, the first time before the backlog exists.
        let (bin, url, out) = (&self.server_bin, &self.database_url, &self.opts.out_dir);
        let server = Server::start("webhooks", bin, url, out, &env).await?;
        eprintln!("[webhooks] {set_aside} earlier outbox rows set aside; {n} bookings ...");
        // One statement on a session of its own, as the service books: on the integrity session
        // (enable_nestloop = off) each call would be JIT-compiled (see main.rs).
        let booked: i64 = crate::connect(&self.database_url)
            .await?
            .query_one(
                "SELECT count(b.booking_id) FROM generate_series(0::bigint, $3::bigint - 1) g,
                 LATERAL book($1::bigint, ARRAY[$2::bigint + g], 'bench-webhooks-' || g,
                              'confirmed', NULL) b",
                &[&event, &big.first_seat, &(n as i64)],
            )
            .await?
            .get(0);
        let sql = "SELECT o.id FROM outbox o JOIN bookings b ON b.id = o.booking_id WHERE b.event_id = $1";
        let rows = self.pg.query(sql, &[&event]).await?;
        let ours: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        eprintln!("[webhooks] {booked} booked; notifier: {IN_FLIGHT} in flight, receiver {RECEIVER_DELAY:?} ...");
        let deadline = Instant::now() + Duration::from_secs(30) + RECEIVER_DELAY * n as u32;
        let delivered = || tally.lock().expect("tally").ids.len();
        while delivered() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let cpu = Cpu::now(&[server.pid]);
        while delivered() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Anything sent twice would have arrived by now too.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Before the server stops: its CPU time, and its sessions', go with it.
        let end = Cpu::now(&[server.pid]);
        drop(server);
        let t = std::mem::take(&mut *tally.lock().expect("tally"));
        let delivered = t.ids.len() as u64;
        let cpu = cpu.until(&end, "webhooks (server = notifier)", delivered);
        let seconds = t
            .last
            .zip(t.first)
            .map_or(0.0, |(b, a)| (b - a).as_secs_f64());
        let row = Throughput {
            scenario: "webhooks".into(),
            rate: delivered as f64 / seconds.max(1e-9),
            unit: "deliveries/s".into(),
            requests: delivered,
            loadgen_cpu_pct: cpu.loadgen_pct,
            ..Throughput::default()
        };
        let ceiling = IN_FLIGHT as f64 / RECEIVER_DELAY.as_secs_f64();
        let row = row.against(&format!("{IN_FLIGHT} in flight x 20 ms"), ceiling);
        self.results.throughput.push(row);
        self.results.cpu.push(cpu);
        let twice = (t.requests - delivered) as f64;
        self.results
            .figure("webhooks: deliveries sent more than once", twice, "");

        let mut violations = Vec::new();
        if ours.len() != n || t.ids != ours {
            let hit = t.ids.intersection(&ours).count();
            let other = t.ids.difference(&ours).count();
            let rows = ours.len();
            violations.push(format!("{hit} of the {n} bookings' webhooks delivered ({other} other ids, {rows} outbox rows)"));
        }
        let sql = "SELECT count(*) FROM outbox o JOIN bookings b ON b.id = o.booking_id
                   WHERE b.event_id = $1 AND o.status <> 'delivered'";
        let not_delivered: i64 = self.pg.query_one(sql, &[&event]).await?.get(0);
        if not_delivered > 0 {
            violations.push(format!("{not_delivered} outbox rows not marked delivered"));
        }
        self.record(Check {
            scope: "webhooks".into(),
            bookings_checked: n,
            tickets_checked: n,
            violations,
        });
        Ok(())
    }
}
