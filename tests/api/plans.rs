//! What each statement that takes seats costs PostgreSQL, in buffers, in a 40,000-seat arena
//! against a 50-seat hall: the same, plus a small constant. Buffers, not time: they do not depend
//! on the machine, and a plan that reads a whole venue's index shows up as hundreds of them.
//!
//! Counted with `pg_stat_get_xact_blocks_fetched` (every buffer the transaction touched, in every
//! table and index, nested statements of `book()` included) around one statement inside a
//! transaction that is then rolled back, on events without and then with a per-user cap (`book()`
//! has a path for each). Each statement runs several times per session first:
//! PL/pgSQL turns the plans of `book()` generic after five calls, and that generic plan is the
//! one bookings use for the rest of the session.

use crate::helpers::{spawn_app, TestApp};
use booking_fn::statements::{
    CANCEL_SQL, CONFIRM_SQL, FIRST_READ_SEATS, FULL_ROWS_SQL, HOLDERS_SQL, LAYOUT_SQL, LOCK_SQL,
    RELEASE_LAPSED_SQL, TAKEN_SQL, VENUE_SEATS_SQL,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;
use uuid::Uuid;

/// Buffers a statement may touch in the arena beyond what it touches in the hall.
const SLACK: i64 = 10;
/// Calls per statement and venue in a session; the last few are judged.
const CALLS: usize = 9;
const JUDGED: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Statement {
    Book,
    Hold,
    Confirm,
    Cancel,
    Holders,
    ReleaseLapsed,
}

const STATEMENTS: [Statement; 6] = [
    Statement::Book,
    Statement::Hold,
    Statement::Confirm,
    Statement::Cancel,
    Statement::Holders,
    Statement::ReleaseLapsed,
];

#[derive(Clone, Copy, Debug)]
struct Venue {
    event: i64,
    first_seat: i64,
    seats: i64,
}

#[tokio::test]
async fn every_seat_statement_costs_the_same_in_a_40000_seat_arena_as_in_a_50_seat_hall() {
    let app = spawn_app().await;
    let [hall, arena] = venues(&app.db).await;
    // As a venue is right after its creation (no statistics yet), as the planner sees it after
    // ANALYZE, and with generic plans from the first call.
    for (setup, label) in [
        ("", "fresh venue, default plan_cache_mode"),
        (
            "SET plan_cache_mode = force_generic_plan",
            "force_generic_plan",
        ),
        ("ANALYZE", "after ANALYZE, default plan_cache_mode"),
        // Last, as it stays: book() takes its second path (the allowance lock) under a cap.
        (
            "UPDATE events SET max_seats_per_user = 1000000; ANALYZE",
            "events with a per-user cap",
        ),
    ] {
        assert_cost_the_same(&app, setup, label, &STATEMENTS, [hall, arena]).await;
    }
}

/// The same for the statements that price seats (V14), with a price category on every row of
/// both venues: each seat's price is found by key, whatever the venue's size.
#[tokio::test]
async fn booking_seats_priced_by_category_costs_the_same_in_an_arena_as_in_a_hall() {
    let app = spawn_app().await;
    let [hall, arena] = venues(&app.db).await;
    app.db
        .batch_execute(
            "INSERT INTO price_categories (event_id, position, name, price_cents, section)
             SELECT e.id, p, 'Category ' || p, 1000 * p, 'Main'
             FROM events e, generate_series(1, 2) p;
             INSERT INTO category_rows (event_id, row_index, category_position)
             SELECT e.id, r, 1 + r % 2
             FROM events e JOIN venues v ON v.id = e.venue_id, generate_series(1, v.rows) r;",
        )
        .await
        .unwrap();
    for (setup, label) in [
        ("", "priced, fresh venue"),
        ("ANALYZE", "priced, after ANALYZE"),
        (
            "UPDATE events SET max_seats_per_user = 1000000; ANALYZE",
            "priced, events with a per-user cap",
        ),
    ] {
        let priced = [Statement::Book, Statement::Hold, Statement::Confirm];
        assert_cost_the_same(&app, setup, label, &priced, [hall, arena]).await;
    }
}

/// Asserts that each of `statements`, in a new session after `setup`, touches no more than
/// [`SLACK`] buffers more in the arena than in the hall: what both tests above judge, each over its
/// own set-ups and statements.
async fn assert_cost_the_same(
    app: &TestApp,
    setup: &str,
    label: &str,
    statements: &[Statement],
    [hall, arena]: [Venue; 2],
) {
    let db = app.connect().await;
    db.batch_execute(setup).await.unwrap();
    for &statement in statements {
        let mut in_hall = Vec::new();
        let mut in_arena = Vec::new();
        for call in 0..CALLS {
            in_hall.push(buffers(&db, statement, hall, call).await);
            in_arena.push(buffers(&db, statement, arena, call).await);
        }
        let (hall_worst, arena_worst) = (judged_worst(&in_hall), judged_worst(&in_arena));
        eprintln!("{label}: {statement:?} hall {in_hall:?} arena {in_arena:?}");
        assert!(
            arena_worst <= hall_worst + SLACK,
            "{label}: {statement:?} touches {arena_worst} buffers in a 40,000-seat arena and \
             {hall_worst} in a 50-seat hall (calls: arena {in_arena:?}, hall {in_hall:?})"
        );
    }
}

/// The most buffers any of the last [`JUDGED`] of a session's [`CALLS`] touched: the calls that
/// run the plan the session keeps.
fn judged_worst(calls: &[i64]) -> i64 {
    *calls[CALLS - JUDGED..].iter().max().unwrap()
}

/// The best-available pick's reads (pick.rs: the layout, the event's lock, then the free seats
/// front to back, a batch of rows at a time) on an empty venue: a pair is found in the first
/// batch, so the arena costs what the hall does. The booking of the pick is `book()`, judged above.
#[tokio::test]
async fn a_best_available_pick_reads_as_much_of_an_empty_arena_as_of_a_hall() {
    let app = spawn_app().await;
    let [hall, arena] = venues(&app.db).await;
    app.db
        .batch_execute(
            "INSERT INTO sections (venue_id, position, name, first_row, rows, cols)
             SELECT id, 1, 'Main', 1, rows, cols FROM venues
             ON CONFLICT DO NOTHING",
        )
        .await
        .unwrap();
    for (setup, label) in [
        ("", "pick, fresh venue"),
        (
            "SET plan_cache_mode = force_generic_plan",
            "pick, force_generic_plan",
        ),
        ("ANALYZE", "pick, after ANALYZE"),
    ] {
        let db = app.connect().await;
        db.batch_execute(setup).await.unwrap();
        let mut in_hall = Vec::new();
        let mut in_arena = Vec::new();
        for _ in 0..CALLS {
            in_hall.push(pick_buffers(&db, hall).await);
            in_arena.push(pick_buffers(&db, arena).await);
        }
        let (hall_worst, arena_worst) = (judged_worst(&in_hall), judged_worst(&in_arena));
        eprintln!("{label}: hall {in_hall:?} arena {in_arena:?}");
        assert!(
            arena_worst <= hall_worst + SLACK,
            "{label}: a pick of 2 touches {arena_worst} buffers in an empty 40,000-seat arena and \
             {hall_worst} in a 50-seat hall (calls: arena {in_arena:?}, hall {in_hall:?})"
        );
    }
}

/// The buffers of one pick's reads on `venue`'s event as pick.rs makes them, in a transaction
/// rolled back: the lock, the full rows and the claims on the first batch of the rows not full (up
/// to `FIRST_READ_SEATS` seats, one row at least), whose front row must have every seat free. The
/// event's layout and its venue's seats are read before, untimed: a process reads them once.
async fn pick_buffers(db: &Client, venue: Venue) -> i64 {
    let layout = db
        .query_typed_one(LAYOUT_SQL, &[(&venue.event, Type::INT8)])
        .await
        .unwrap();
    let venue_id: i64 = layout.get("venue_id");
    let seats = db
        .query_typed(VENUE_SEATS_SQL, &[(&venue_id, Type::INT8)])
        .await
        .unwrap();
    db.batch_execute("BEGIN").await.unwrap();
    let before = touched(db).await;
    db.execute_typed(LOCK_SQL, &[(&venue.event, Type::INT8)])
        .await
        .unwrap();
    let recorded = db
        .query_typed(FULL_ROWS_SQL, &[(&venue.event, Type::INT8)])
        .await
        .unwrap();
    // Full rows (none of their seats open); nearly full ones are not made here.
    let full: Vec<i32> = recorded.iter().map(|row| row.get(0)).collect();
    assert!(recorded
        .iter()
        .all(|row| row.get::<_, Vec<i64>>(1).is_empty()));
    let first_rows: Vec<i32> = layout.get("section_first_rows");
    let (heights, widths): (Vec<i32>, Vec<i32>) =
        (layout.get("section_rows"), layout.get("section_cols"));
    let mut batch = Vec::new();
    let mut count = 0;
    'sections: for ((first, height), width) in first_rows.iter().zip(&heights).zip(&widths) {
        for r in (*first..first + height).filter(|r| !full.contains(r)) {
            if !batch.is_empty() && count + *width as usize > FIRST_READ_SEATS {
                break 'sections;
            }
            batch.push(r);
            count += *width as usize;
        }
    }
    let ids = seats
        .iter()
        .filter(|s| batch.contains(&s.get::<_, i32>("row_index")))
        .map(|s| s.get::<_, i64>("id"));
    let (lo, hi) = (ids.clone().min().unwrap(), ids.clone().max().unwrap());
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&venue.event, Type::INT8),
        (&lo, Type::INT8),
        (&hi, Type::INT8),
    ];
    let claims = db.query_typed(TAKEN_SQL, &params).await.unwrap();
    let touched = touched(db).await - before;
    db.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(ids.count(), count, "the first batch's seats");
    let front: Vec<i64> = seats
        .iter()
        .filter(|s| s.get::<_, i32>("row_index") == batch[0])
        .map(|s| s.get("id"))
        .collect();
    assert!(
        claims
            .iter()
            .all(|c| !front.contains(&c.get::<_, i64>("seat_id"))),
        "the front row is free, so the pick stops after this batch"
    );
    touched
}

/// An on-sale sells an arena from the front: a pick behind 4,000 sold seats (their rows recorded
/// full, as picks record them) reads what a pick of the empty arena reads, not the sales.
#[tokio::test]
async fn a_best_available_pick_reads_no_more_behind_sold_rows_than_in_an_empty_arena() {
    let app = spawn_app().await;
    let [_, arena] = venues(&app.db).await;
    let [_, sold] = venues_named(&app.db, "sold").await;
    sell_front_rows(&app.db, sold, 20).await;
    app.db
        .execute(
            "INSERT INTO full_rows (event_id, row_index) SELECT $1, generate_series(1, 20)",
            &[&sold.event],
        )
        .await
        .unwrap();
    app.db
        .batch_execute(
            "INSERT INTO sections (venue_id, position, name, first_row, rows, cols)
             SELECT id, 1, 'Main', 1, rows, cols FROM venues
             ON CONFLICT DO NOTHING;
             ANALYZE",
        )
        .await
        .unwrap();
    let db = app.connect().await;
    let (mut empty, mut behind) = (Vec::new(), Vec::new());
    for _ in 0..CALLS {
        empty.push(pick_buffers(&db, arena).await);
        behind.push(pick_buffers(&db, sold).await);
    }
    let (empty_worst, behind_worst) = (judged_worst(&empty), judged_worst(&behind));
    assert!(
        behind_worst <= empty_worst + SLACK,
        "a pick behind 4,000 sold seats touches {behind_worst} buffers, one in an empty arena \
         {empty_worst} (calls: sold {behind:?}, empty {empty:?})"
    );
}

#[tokio::test]
async fn the_seat_map_costs_no_more_per_seat_in_an_arena_than_in_a_hall() {
    let app = spawn_app().await;
    let [hall, arena] = venues(&app.db).await;
    let db = app.connect().await;
    // A few seats sold in each, so the map joins tickets too.
    for venue in [hall, arena] {
        for call in 0..5 {
            book(&db, venue, call, "confirmed", None).await;
        }
    }
    db.batch_execute("ANALYZE").await.unwrap();
    let mut per_seat = Vec::new();
    for venue in [hall, arena] {
        let mut worst = 0;
        for _ in 0..3 {
            db.batch_execute("BEGIN").await.unwrap();
            let before = touched(&db).await;
            let rows = db
                .query_typed(events_fn::AVAILABILITY_SQL, &[(&venue.event, Type::INT8)])
                .await
                .unwrap();
            worst = worst.max(touched(&db).await - before);
            db.batch_execute("ROLLBACK").await.unwrap();
            assert_eq!(rows.len() as i64, venue.seats);
        }
        per_seat.push(worst as f64 / venue.seats as f64);
    }
    assert!(
        per_seat[1] <= per_seat[0],
        "buffers per seat of the map: hall {}, arena {}",
        per_seat[0],
        per_seat[1]
    );
}

/// Confirms bookings of two seats each for every seat of `venue`'s front `rows` rows, as quickly
/// as SQL can (no `book()`: the plans are judged elsewhere).
async fn sell_front_rows(db: &Client, venue: Venue, rows: i32) {
    db.batch_execute("INSERT INTO users (id) VALUES ('plan-user') ON CONFLICT DO NOTHING")
        .await
        .unwrap();
    db.execute(
        "WITH seat AS (
             SELECT id, row_number() OVER (ORDER BY id) - 1 AS n
             FROM seats s WHERE s.venue_id = (SELECT venue_id FROM events WHERE id = $1)
               AND s.row_index <= $2
         ), pair AS (
             SELECT gen_random_uuid() AS id, n / 2 AS k FROM seat WHERE n % 2 = 0
         ), b AS (
             INSERT INTO bookings (id, user_id, event_id, status, total_cents)
             SELECT id, 'plan-user', $1, 'confirmed', 2000 FROM pair
         )
         INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
         SELECT pair.id, $1, seat.id, 1000 FROM seat JOIN pair ON pair.k = seat.n / 2",
        &[&venue.event, &rows],
    )
    .await
    .unwrap();
}

/// An on-sale's map is loaded while the statistics still say the event has no tickets (the last
/// `ANALYZE` came before the sale). Planned from them, seats and tickets were joined by a nested
/// loop comparing every seat with every ticket: 4.1 s a load of a 10,000-seat map in the bench.
/// Judged by the comparisons the plan makes (`Rows Removed by Join Filter` in `EXPLAIN
/// ANALYZE`): no more than the seats.
#[tokio::test]
async fn an_on_sale_map_planned_from_statistics_taken_before_the_sale_stays_linear() {
    let app = spawn_app().await;
    let [_, arena] = venues(&app.db).await;
    app.db.batch_execute("ANALYZE").await.unwrap();
    sell_front_rows(&app.db, arena, 3).await;

    let db = app.connect().await;
    let sql = format!("PREPARE map (bigint) AS {}", events_fn::AVAILABILITY_SQL);
    db.batch_execute(&sql).await.unwrap();
    let plan = db
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE map ({})",
                arena.event
            ),
            &[],
        )
        .await
        .unwrap();
    let plan: serde_json::Value = plan.get(0);
    fn removed(node: &serde_json::Value) -> i64 {
        let own = node["Rows Removed by Join Filter"].as_i64().unwrap_or(0);
        let below = node["Plans"].as_array().into_iter().flatten();
        own + below.map(removed).sum::<i64>()
    }
    let compared = removed(&plan[0]["Plan"]);
    assert!(
        compared <= arena.seats,
        "the map of {} seats with 600 sold compared {compared} seat-ticket pairs: {plan}",
        arena.seats
    );
}

/// A 5 × 10 hall and a 200 × 200 arena, each with an event on sale, made as quickly as SQL can.
async fn venues(db: &Client) -> [Venue; 2] {
    venues_named(db, "").await
}

/// [`venues`], their names ending in `suffix`.
async fn venues_named(db: &Client, suffix: &str) -> [Venue; 2] {
    let rows = db
        .query(
            "WITH v AS (
                 INSERT INTO venues (name, rows, cols)
                 VALUES ('hall' || $1, 5, 10), ('arena' || $1, 200, 200)
                 RETURNING id, name, rows, cols
             ), s AS (
                 INSERT INTO seats (venue_id, row_index, row_label, seat_number)
                 SELECT v.id, r, 'R' || r, n
                 FROM v, generate_series(1, v.rows) r, generate_series(1, v.cols) n
                 RETURNING venue_id, id
             ), e AS (
                 INSERT INTO events (name, starts_at, venue_id, price_cents)
                 SELECT 'at ' || v.name, now() + interval '1 day', v.id, 1000 FROM v
                 RETURNING id, venue_id
             )
             SELECT e.id, (SELECT min(s.id) FROM s WHERE s.venue_id = e.venue_id),
                    (v.rows * v.cols)::bigint
             FROM e JOIN v ON v.id = e.venue_id ORDER BY v.rows * v.cols",
            &[&suffix],
        )
        .await
        .unwrap();
    let venue = |i: usize| Venue {
        event: rows[i].get(0),
        first_seat: rows[i].get(1),
        seats: rows[i].get(2),
    };
    [venue(0), venue(1)]
}

/// The buffers `statement` touches, run once in a transaction that is rolled back: on the
/// `call`-th seat of `venue` (spread over the venue), after whatever set-up it needs.
async fn buffers(db: &Client, statement: Statement, venue: Venue, call: usize) -> i64 {
    let seat = venue.first_seat + (call as i64 * 7919) % venue.seats;
    db.batch_execute("BEGIN").await.unwrap();
    let booking = match statement {
        Statement::Book | Statement::Hold => None,
        Statement::Confirm => Some(book(db, venue, call, "held", Some(60.0)).await),
        Statement::ReleaseLapsed => Some(book(db, venue, call, "held", Some(-1.0)).await),
        Statement::Cancel | Statement::Holders => {
            Some(book(db, venue, call, "confirmed", None).await)
        }
    };
    let before = touched(db).await;
    let seats = vec![seat];
    let user = "plan-user";
    match (statement, booking) {
        (Statement::Book, _) => {
            book(db, venue, call, "confirmed", None).await;
        }
        (Statement::Hold, _) => {
            book(db, venue, call, "held", Some(60.0)).await;
        }
        (Statement::Confirm | Statement::Cancel, Some(id)) => {
            let sql = if statement == Statement::Confirm {
                CONFIRM_SQL
            } else {
                CANCEL_SQL
            };
            let rows = db
                .query_typed(sql, &[(&id, Type::UUID), (&user, Type::TEXT)])
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "{statement:?}: the booking");
        }
        (Statement::Holders | Statement::ReleaseLapsed, Some(_)) => {
            let on_seat: [(&(dyn ToSql + Sync), Type); 2] =
                [(&venue.event, Type::INT8), (&seats, Type::INT8_ARRAY)];
            // The seat's holder, or the lapsed hold's ticket released.
            let found = if statement == Statement::Holders {
                db.query_typed(HOLDERS_SQL, &on_seat).await.unwrap().len() as u64
            } else {
                db.execute_typed(RELEASE_LAPSED_SQL, &on_seat)
                    .await
                    .unwrap()
            };
            assert_eq!(found, 1, "{statement:?}: the seat's one booking");
        }
        (statement, None) => unreachable!("{statement:?} has a booking to work on"),
    }
    let touched = touched(db).await - before;
    db.batch_execute("ROLLBACK").await.unwrap();
    touched
}

/// Books (or holds, for `seconds`) the `call`-th seat of `venue` through `book()`.
async fn book(db: &Client, venue: Venue, call: usize, status: &str, seconds: Option<f64>) -> Uuid {
    let seat = venue.first_seat + (call as i64 * 7919) % venue.seats;
    let row = db
        .query_one(
            "SELECT booking_id FROM book($1, ARRAY[$2]::bigint[], 'plan-user', $3::text::booking_status, $4)",
            &[&venue.event, &seat, &status, &seconds],
        )
        .await
        .unwrap();
    row.get::<_, Option<Uuid>>(0)
        .unwrap_or_else(|| panic!("booked seat {seat} of event {}", venue.event))
}

/// Buffers this transaction has touched so far, in every table and index of the schema.
async fn touched(db: &Client) -> i64 {
    db.query_one(
        "SELECT coalesce(sum(pg_stat_get_xact_blocks_fetched(oid)), 0)::bigint
         FROM pg_class WHERE relnamespace = 'public'::regnamespace",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}
