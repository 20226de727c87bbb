//! The least-privilege roles of migrations/V3, each driven through the functions that log in as
//! it: what the function needs works, and what it has no business doing is refused by PostgreSQL
//! itself (SQLSTATE 42501, insufficient_privilege).

use crate::helpers::spawn_app;
use crate::lambda::{call, organize_event, organizer_claims};
use notifier_fn::{dead_letters, drain, housekeeping, Policy, Webhook, WebhookSettings};
use serde_json::json;
use tokio_postgres::error::SqlState;

/// Runs `sql` in a session of `role` on the test's database; the SQLSTATE it failed with, if any.
async fn as_role(app: &crate::helpers::TestApp, role: &str, sql: &str) -> Option<SqlState> {
    let state = app.lambda_state_as(role);
    let conn = state.db.get().await.expect("a session as the role");
    conn.batch_execute(sql).await.err().map(|e| {
        e.code()
            .cloned()
            .unwrap_or_else(|| panic!("{role}: {sql}: {e}"))
    })
}

#[tokio::test]
async fn the_reader_serves_events_and_metrics_and_can_change_nothing() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(2, 3).await;
    let reader = app.lambda_state_as("seatbook_reader");

    let events_fn = seatbook_core::http::finish(events_fn::routes(), reader.clone());
    for path in [
        format!("/api/v1/events/{event_id}"),
        format!("/api/v1/events/{event_id}/availability"),
        "/api/v1/events".to_owned(),
    ] {
        let (status, body) = call(&events_fn, "GET", &path, None, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let metrics_fn = seatbook_core::http::finish(metrics_fn::routes(), reader);
    let claims = Some(organizer_claims());
    let (status, body) = call(&metrics_fn, "GET", "/api/v1/metrics", claims, None).await;
    assert_eq!(status, 200, "{body}");

    for write in [
        format!(
            "INSERT INTO bookings (user_id, event_id, status) VALUES ('mallory', {event_id}, 'confirmed')"
        ),
        format!("DELETE FROM tickets WHERE event_id = {event_id}"),
        format!("UPDATE events SET price_cents = 0 WHERE id = {event_id}"),
        "DELETE FROM refinery_schema_history".to_owned(),
        "CREATE TABLE loot (id int)".to_owned(),
    ] {
        assert_eq!(
            as_role(&app, "seatbook_reader", &write).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "the reader: {write}"
        );
    }
    // And the seats are still for sale.
    let response = app.book("alice", event_id, &seats[..1]).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn the_writer_books_and_organizes_but_cannot_touch_the_migration_history() {
    let app = spawn_app().await;
    let writer = app.lambda_state_as("seatbook_writer");
    let organizer_fn = seatbook_core::http::finish(organizer_fn::routes(), writer.clone());
    let event_id = organize_event(&organizer_fn, "Writer", 1, 2).await;
    let seat = app.availability(event_id).await["seats"][0]["id"]
        .as_i64()
        .unwrap();

    let booking_fn = seatbook_core::http::finish(booking_fn::routes(&writer), writer);
    let body = json!({"event_id": event_id, "seat_ids": [seat]});
    let alice = Some(json!({"sub": "alice"}));
    let book = |claims| call(&booking_fn, "POST", "/api/v1/bookings", claims, Some(&body));
    let (status, booking) = book(alice.clone()).await;
    assert_eq!(status, 201, "{booking}");
    let (status, problem) = book(Some(json!({"sub": "bob"}))).await;
    assert_eq!(status, 409, "the constraint still arbitrates: {problem}");
    let path = format!("/api/v1/bookings/{}", booking["id"].as_str().unwrap());
    let (status, cancelled) = call(&booking_fn, "DELETE", &path, alice, None).await;
    assert!(status < 300, "cancel as the writer: {status} {cancelled}");

    for forbidden in [
        "DELETE FROM refinery_schema_history",
        "ALTER TABLE tickets DROP CONSTRAINT tickets_event_seat_key",
        "TRUNCATE tickets",
        "CREATE TABLE loot (id int)",
    ] {
        assert_eq!(
            as_role(&app, "seatbook_writer", forbidden).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "the writer: {forbidden}"
        );
    }
}

#[tokio::test]
async fn the_notifier_works_the_outbox_and_sees_nothing_else() {
    let app = spawn_app().await;
    let (event_id, seats) = app.seed_event(1, 2).await;
    assert_eq!(app.book("alice", event_id, &seats[..1]).await.status(), 201);
    let notifier = app.lambda_state_as("seatbook_notifier");

    // Nothing listens on port 9: the delivery fails, and marking it failed is an UPDATE.
    let webhook = Webhook::new(WebhookSettings {
        url: "http://127.0.0.1:9/hook".to_owned(),
        secret: "s".to_owned().into(),
    })
    .unwrap();
    let policy = Policy {
        max_attempts: 1,
        ..Policy::default()
    };
    let report = drain(&notifier.db, &webhook, policy).await.unwrap();
    assert_eq!(report.dead, 1, "{report:?}");
    assert_eq!(dead_letters(&notifier.db).await.unwrap(), 1);
    housekeeping(&notifier.db).await.unwrap();

    for forbidden in [
        "SELECT * FROM bookings".to_owned(),
        "SELECT * FROM tickets".to_owned(),
        format!("DELETE FROM tickets WHERE event_id = {event_id}"),
        "INSERT INTO outbox (booking_id, kind, payload) SELECT booking_id, kind, payload FROM outbox"
            .to_owned(),
        "DELETE FROM outbox".to_owned(),
    ] {
        assert_eq!(
            as_role(&app, "seatbook_notifier", &forbidden).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "the notifier: {forbidden}"
        );
    }
}

#[tokio::test]
async fn each_role_has_exactly_its_table_grants_and_a_new_table_is_nobodys() {
    let app = spawn_app().await;
    let expected: std::collections::BTreeSet<(String, String, String)> = [
        ("seatbook_reader", "venues", "SELECT"),
        ("seatbook_reader", "seats", "SELECT"),
        ("seatbook_reader", "events", "SELECT"),
        ("seatbook_reader", "tickets", "SELECT"),
        ("seatbook_reader", "bookings", "SELECT"),
        ("seatbook_reader", "sections", "SELECT"),
        ("seatbook_reader", "price_categories", "SELECT"),
        ("seatbook_reader", "category_rows", "SELECT"),
        ("seatbook_writer", "venues", "SELECT"),
        ("seatbook_writer", "venues", "INSERT"),
        ("seatbook_writer", "seats", "SELECT"),
        ("seatbook_writer", "seats", "INSERT"),
        ("seatbook_writer", "events", "SELECT"),
        ("seatbook_writer", "events", "INSERT"),
        ("seatbook_writer", "sections", "SELECT"),
        ("seatbook_writer", "sections", "INSERT"),
        ("seatbook_writer", "price_categories", "SELECT"),
        ("seatbook_writer", "price_categories", "INSERT"),
        ("seatbook_writer", "category_rows", "SELECT"),
        ("seatbook_writer", "category_rows", "INSERT"),
        ("seatbook_writer", "users", "SELECT"),
        ("seatbook_writer", "users", "INSERT"),
        ("seatbook_writer", "bookings", "SELECT"),
        ("seatbook_writer", "bookings", "INSERT"),
        ("seatbook_writer", "bookings", "UPDATE"),
        ("seatbook_writer", "tickets", "SELECT"),
        ("seatbook_writer", "tickets", "INSERT"),
        ("seatbook_writer", "tickets", "DELETE"),
        ("seatbook_writer", "released_tickets", "SELECT"),
        ("seatbook_writer", "released_tickets", "INSERT"),
        ("seatbook_writer", "seat_allowances", "SELECT"),
        ("seatbook_writer", "seat_allowances", "INSERT"),
        ("seatbook_writer", "seat_allowances", "UPDATE"),
        ("seatbook_writer", "idempotency_keys", "SELECT"),
        ("seatbook_writer", "idempotency_keys", "INSERT"),
        ("seatbook_writer", "idempotency_keys", "UPDATE"),
        ("seatbook_writer", "outbox", "INSERT"),
        ("seatbook_writer", "full_rows", "SELECT"),
        ("seatbook_writer", "full_rows", "INSERT"),
        ("seatbook_writer", "full_rows", "UPDATE"),
        ("seatbook_writer", "full_rows", "DELETE"),
        ("seatbook_writer", "waitlist_entries", "SELECT"),
        ("seatbook_writer", "waitlist_entries", "INSERT"),
        ("seatbook_writer", "waitlist_entries", "UPDATE"),
        ("seatbook_notifier", "outbox", "SELECT"),
        ("seatbook_notifier", "outbox", "UPDATE"),
        ("seatbook_notifier", "idempotency_keys", "SELECT"),
        ("seatbook_notifier", "idempotency_keys", "DELETE"),
    ]
    .into_iter()
    .map(|(role, table, privilege)| (role.to_owned(), table.to_owned(), privilege.to_owned()))
    .collect();
    // A table made after the migrations, as a later migration would, without any grant.
    app.db
        .batch_execute("CREATE TABLE later_feature (id int)")
        .await
        .unwrap();
    let granted: std::collections::BTreeSet<(String, String, String)> = app
        .db
        .query(
            "SELECT grantee::text, table_name::text, privilege_type::text
             FROM information_schema.role_table_grants
             WHERE table_schema = 'public'
               AND grantee IN ('seatbook_reader', 'seatbook_writer', 'seatbook_notifier')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let extra: Vec<_> = granted.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "grants beyond the list: {extra:?}; listed but not granted: {missing:?}"
    );
    for secret in ["idempotency_keys", "outbox", "users"] {
        assert_eq!(
            as_role(&app, "seatbook_reader", &format!("SELECT * FROM {secret}")).await,
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "the reader reads {secret}"
        );
    }
}
