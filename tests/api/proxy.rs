//! The booking herd through a transaction-mode connection pooler, as deployed behind RDS Proxy:
//! PgBouncer (`pool_mode = transaction`, five server connections) hands each transaction to
//! whichever server connection is free, so a statement prepared by name on one would be missing
//! on the next ("prepared statement … does not exist"). Every statement here is unnamed.

use crate::helpers::{assert_one_winner, one_seat_requests, spawn_app_with, stampede, Spawn};
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

    let requests = one_seat_requests("proxy-fan", 250, event_id, seat);
    let results = stampede(&app, requests).await;
    // No server error through PgBouncer, nor anything else.
    assert_one_winner(&app, event_id, seat, &results).await;

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
