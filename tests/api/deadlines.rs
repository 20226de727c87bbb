//! Every request is answered in time, with a status that says what to do: a database that
//! cannot serve it is a 503 with `Retry-After` well inside the function's timeout, never a hang.

use crate::helpers::{assert_problem, spawn_app};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_booking_blocked_by_a_table_lock_answers_503_in_time_and_succeeds_once_it_is_gone() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 4).await;
    let locker = app.connect().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE tickets IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        app.book("patient", event_id, &seats[..1]),
    )
    .await
    .expect("answered, not left hanging");
    let took = started.elapsed();
    let retry_after = response.headers().get("retry-after").cloned();
    assert_problem(response, 503).await;
    assert!(retry_after.is_some(), "503 says when to retry");
    assert!(took < Duration::from_secs(5), "answered in {took:?}");

    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        app.book("patient", event_id, &seats[..1]).await.status(),
        201
    );
}
