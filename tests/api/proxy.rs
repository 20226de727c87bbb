//! The booking herd through a transaction-mode connection pooler, as deployed behind RDS Proxy:
//! PgBouncer (`pool_mode = transaction`, five server connections) hands each transaction to
//! whichever server connection is free, so a statement prepared by name on one would be missing
//! on the next ("prepared statement … does not exist"). Every statement here is unnamed.

use crate::helpers::{spawn_app_with, stampede, Spawn};
use serde_json::json;
use std::collections::HashMap;
use test_support::PgBouncer;

/// Server connections PgBouncer may open per database: far fewer than the clients.
const SERVER_CONNECTIONS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_fifty_simultaneous_bookings_through_pgbouncer_make_exactly_one() {
    let bouncer = PgBouncer::start(SERVER_CONNECTIONS).await;
    let app = spawn_app_with(Spawn {
        database_via: Some(bouncer.address()),
        // Forty client connections from the server, multiplexed onto five server connections.
        env: vec![("DB_POOL_MAX_SIZE", "40".to_owned())],
        ..Spawn::default()
    })
    .await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let seat = seats[3];

    let clients = 250;
    let requests = (0..clients)
        .map(|i| {
            (
                format!("proxy-fan-{i}"),
                json!({"event_id": event_id, "seat_ids": [seat]}),
            )
        })
        .collect();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, body) in stampede(&app, requests).await {
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "no server error through PgBouncer: {status} {body}"
        );
        if status == 409 {
            assert_eq!(body["seat_ids"], json!([seat]), "{body}");
        }
    }
    assert_eq!(by_status.get(&201), Some(&1), "one winner: {by_status:?}");
    assert_eq!(
        by_status.get(&409),
        Some(&(clients - 1)),
        "everyone else 409: {by_status:?}"
    );
    assert_eq!(
        app.tickets_for_seat(event_id, seat).await,
        1,
        "one ticket row"
    );

    // The transactions really shared a handful of server connections.
    let pools = bouncer.admin("SHOW POOLS").await;
    let pool = pools
        .iter()
        .find(|row| row["database"] == app.db_name)
        .expect("PgBouncer pooled the test database");
    let servers: usize = ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]
        .iter()
        .map(|c| pool[*c].parse::<usize>().unwrap())
        .sum();
    assert!(
        (1..=SERVER_CONNECTIONS).contains(&servers),
        "at most {SERVER_CONNECTIONS} server connections: {pool:?}"
    );
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "no prepared-statement errors in PgBouncer's log:\n{log}"
    );
}
