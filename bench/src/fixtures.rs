//! The data every scenario runs on, created through the API itself (organizer routes): one
//! 200 x 200 arena (40,000 seats) and one realistic 20 x 25 hall (500 seats); the booking
//! scenarios run on both, each booking client (pgbench's or the service's) in events of its own
//! (`Block`), so no booking ever collides. Hall events serve reads and herds; 30 % of the read
//! event's seats are sold beforehand so availability has bookings to join.

use crate::ceiling::CLIENTS;
use crate::clients::booking;
use crate::http::{self, Body, Conn, Identity};
use crate::integrity::BookingSeen;
use crate::Result;
use bytes::Bytes;
use chrono::{Duration as Days, Utc};
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

const FIXTURE_USER: &str = "bench-fixture";

#[derive(Debug, Clone)]
pub struct Venue {
    pub id: i64,
    pub first_seat: i64,
    pub seats: i64,
}

impl Venue {
    /// `@40k`, `@500`: how the report names a venue by its size.
    pub fn label(&self) -> String {
        match self.seats % 1000 {
            0 => format!("@{}k", self.seats / 1000),
            _ => format!("@{}", self.seats),
        }
    }
}

/// Consecutive events on one venue: client `c` (of `CLIENTS`) owns `per_client` of them from
/// `base + c * per_client`, which a pgbench script computes from its `client_id`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub base: i64,
    pub per_client: usize,
}

impl Block {
    pub fn client_events(&self, client: usize) -> Vec<i64> {
        let first = self.base + (client * self.per_client) as i64;
        (first..first + self.per_client as i64).collect()
    }

    pub fn events(&self) -> Vec<i64> {
        (self.base..self.base + (CLIENTS * self.per_client) as i64).collect()
    }
}

#[derive(Debug)]
pub struct Fixtures {
    pub big: Venue,
    pub hall: Venue,
    /// The hall event the reads read (30 % sold).
    pub read_event: i64,
    pub herd_event: i64,
    /// The bookings that sold the read event's seats.
    pub sold: Vec<BookingSeen>,
}

#[derive(Deserialize)]
pub struct Map {
    pub seats: Vec<Seat>,
}

#[derive(Deserialize)]
pub struct Seat {
    pub id: i64,
    pub status: String,
}

/// An organizer's connection to the API.
pub struct Admin {
    conn: Conn,
    who: Identity,
    starts_at: String,
}

impl Admin {
    pub async fn open(addr: SocketAddr) -> Result<Admin> {
        let (conn, who) = (
            Conn::open(addr).await?,
            Identity::organizer("bench-organizer"),
        );
        Ok(Admin {
            conn,
            who,
            starts_at: (Utc::now() + Days::days(30)).to_rfc3339(),
        })
    }

    /// Sends `request`; its body if the answer is `expected`.
    pub async fn call(&mut self, request: Request<Body>, expected: StatusCode) -> Result<Bytes> {
        let answer = self.conn.send(request).await?;
        let (status, body) = (answer.status(), String::from_utf8_lossy(answer.body()));
        if status != expected {
            return Err(format!("set-up: expected {expected}, got {status}: {body}").into());
        }
        Ok(answer.into_body())
    }

    async fn create(&mut self, path: &str, body: serde_json::Value) -> Result<i64> {
        let request = http::post(path, &self.who, &body);
        let created = self.call(request, StatusCode::CREATED).await?;
        let id = serde_json::from_slice::<serde_json::Value>(&created)?["id"].as_i64();
        Ok(id.ok_or("a created thing without an id")?)
    }

    /// A `rows` x `cols` venue, its seats learned through a throwaway event's availability.
    pub async fn venue(&mut self, label: &str, rows: i64, cols: i64) -> Result<Venue> {
        let name = format!("bench {label} {}", std::process::id());
        let body = json!({ "name": name, "rows": rows, "cols": cols });
        let id = self.create("/api/v1/venues", body).await?;
        let probe = self.event(&format!("{label} seat map"), id).await?;
        let map = self
            .get(&format!("/api/v1/events/{probe}/availability"))
            .await?;
        let map: Map = serde_json::from_slice(&map)?;
        let first_seat = map.seats.first().ok_or("a venue without seats")?.id;
        // The seat streams rely on a venue's seat ids being consecutive in row-major order.
        let ids = map.seats.iter().map(|s| s.id);
        if !ids.eq(first_seat..first_seat + rows * cols) {
            return Err(format!("venue {label}: seat ids are not consecutive").into());
        }
        Ok(Venue {
            id,
            first_seat,
            seats: rows * cols,
        })
    }

    /// The body of a GET of `path` answered 200.
    pub async fn get(&mut self, path: &str) -> Result<Bytes> {
        self.call(http::get(path, &self.who), StatusCode::OK).await
    }

    pub async fn event(&mut self, label: &str, venue: i64) -> Result<i64> {
        let starts_at = self.starts_at.clone();
        let body = json!({ "name": format!("bench {label}"), "starts_at": starts_at,
                           "venue_id": venue, "price_cents": 2500 });
        self.create("/api/v1/events", body).await
    }

    /// An event on `venue` with the members of `extra` besides (e.g. a `waiting_room`).
    pub async fn event_with(
        &mut self,
        label: &str,
        venue: i64,
        extra: serde_json::Value,
    ) -> Result<i64> {
        let mut body = json!({ "name": format!("bench {label}"), "starts_at": self.starts_at,
                               "venue_id": venue, "price_cents": 2500 });
        for (member, value) in extra.as_object().into_iter().flatten() {
            body[member] = value.clone();
        }
        self.create("/api/v1/events", body).await
    }

    /// `CLIENTS * per_client` events with consecutive ids on `venue`.
    pub async fn block(&mut self, label: &str, venue: &Venue, per_client: usize) -> Result<Block> {
        let mut ids = Vec::with_capacity(CLIENTS * per_client);
        for k in 0..CLIENTS * per_client {
            ids.push(self.event(&format!("{label} {k}"), venue.id).await?);
        }
        if ids.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(format!("{label}: event ids are not consecutive").into());
        }
        Ok(Block {
            base: ids[0],
            per_client,
        })
    }
}

pub async fn create(addr: SocketAddr) -> Result<Fixtures> {
    let mut admin = Admin::open(addr).await?;
    let big = admin.venue("arena", 200, 200).await?;
    let hall = admin.venue("hall", 20, 25).await?;
    let read_event = admin.event("show", hall.id).await?;
    let herd_event = admin.event("herd", hall.id).await?;

    // Sell 30 % of the read event: 3 seats in every 10, in bookings of 10 seats.
    let who = Identity::user(FIXTURE_USER);
    let sold_seats: Vec<i64> = (0..hall.seats)
        .filter(|n| n % 10 < 3)
        .map(|n| hall.first_seat + n)
        .collect();
    let mut sold = Vec::new();
    for seats in sold_seats.chunks(10) {
        let request = booking(&who, read_event, seats);
        let created = admin.call(request, StatusCode::CREATED).await?;
        let booking =
            BookingSeen::from_answer(&created, read_event, FIXTURE_USER, seats, "confirmed");
        sold.push(booking?);
    }
    Ok(Fixtures {
        big,
        hall,
        read_event,
        herd_event,
        sold,
    })
}
