-- pgbench ceiling for `book-multi`: four adjacent seats a booking.
--
-- It runs the very transaction the service runs for POST /api/v1/bookings: BEGIN; then, pipelined
-- in one round trip as the service sends them, the seat-cap lock (booking_fn::ALLOWANCE_SQL, which
-- touches nothing for an event without a cap) and the statement of functions/booking/src/book.sql
-- (booking_fn::BOOK_SQL); COMMIT. The statements below must stay exactly ALLOWANCE_SQL and
-- BOOK_SQL with their $n parameters replaced as bench/src/ceiling.rs (book_params) says:
-- each becomes this script's variable cast to the type the service's query_typed declares for it,
-- the seat array is built from one variable per seat, and a parameter the service binds as NULL
-- is that typed NULL. The unit test the_kept_booking_scripts_run_exactly_book_sql fails otherwise,
-- and the benchmark refuses to run. After a deliberate change to the booking SQL:
--   SEATBOOK_BENCH_BLESS=1 cargo test -p seatbook-bench    (rewrites the part from BEGIN; on)
--
-- Run it with -M extended: the service sends unnamed extended-protocol statements, parsed and
-- planned on every execution, and so does pgbench's extended mode.
--
-- No two transactions ever want the same seat (a unique violation would abort the client):
-- client c books only in event :event_base + c, whose venue's seats start at :first_seat, and
-- :i (from -D i=0; pgbench keeps a client's variables from one transaction to the next) walks
-- those seats upwards. Past the venue's last seat a booking matches no seat and inserts nothing
-- instead of conflicting; the harness compares the stored tickets with pgbench's count.
--
-- -D defines: event_base, first_seat, i=0, status=confirmed.
\set i :i + 1
\set event_id :event_base + :client_id
\set user_id 1000000 + :client_id
\set seat1 :first_seat + 4 * (:i - 1)
\set seat2 :seat1 + 1
\set seat3 :seat1 + 2
\set seat4 :seat1 + 3
BEGIN;
\startpipeline
INSERT INTO seat_allowances (event_id, user_id)
SELECT id, :user_id::text FROM events WHERE id = :event_id::bigint AND max_seats_per_user IS NOT NULL
ON CONFLICT (event_id, user_id) DO UPDATE SET user_id = excluded.user_id;
-- Books every requested seat of one event for one user, or none, in a single statement.
-- :event_id::bigint event id, ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[] seat ids (already de-duplicated, 1..=10), :user_id::text user id,
-- :status::text status as text ('confirmed', or 'held' for a hold; see migrations/V7), NULL::float8 how long a hold lasts in seconds (else NULL).
--
-- One round trip, no read-then-write race: the insert into tickets is the claim itself, and the
-- unique constraint tickets_event_seat_key decides every race (23505 -> 409). When the event does
-- not exist or a seat is not in the event's venue, nothing is inserted and the first two columns
-- say why. A confirmed booking writes its confirmation to the outbox in the same statement, so the
-- notification exists exactly when the booking does.
--
-- The fair-sale rules are decided here too, by PostgreSQL's clock (now() is the transaction's
-- start), not by a read before: outside the sales window, or past the caller's seat cap, nothing
-- is written and the result's columns say which rule refused. Under a cap, the caller's
-- seat_allowances row was locked by the transaction's previous statement (ALLOWANCE_SQL), so the
-- count below, taken by this later statement, includes whatever the caller's last concurrent
-- request committed.
WITH event AS (
    -- One row: the event, whether it is on sale now, and (only under a cap) the caller's live
    -- seats for it, confirmed or held and unexpired. `ok`: this request may write.
    SELECT e.*, e.on_sale AND (e.max_seats_per_user IS NULL
                               OR e.live_seats + cardinality(ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[]) <= e.max_seats_per_user) AS ok
    FROM (
        SELECT id, venue_id, price_cents, max_seats_per_user, sales_start_at,
               coalesce(sales_end_at, starts_at) AS sales_end_at,
               now() < sales_start_at IS TRUE AS before_sale,
               now() >= coalesce(sales_start_at, '-infinity')
                   AND now() < coalesce(sales_end_at, starts_at) AS on_sale,
               CASE WHEN max_seats_per_user IS NOT NULL THEN live_seats(:event_id::bigint, :user_id::text) END AS live_seats
        FROM events WHERE id = :event_id::bigint
    ) e
), wanted AS (
    SELECT s.id AS seat_id, s.row_index, s.row_label, s.seat_number
    FROM seats s
    JOIN event e ON s.venue_id = e.venue_id
    WHERE s.id = ANY (ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[])
), usr AS (
    INSERT INTO users (id) SELECT :user_id::text FROM event WHERE ok ON CONFLICT (id) DO NOTHING
), booking AS (
    INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
    SELECT :user_id::text, e.id, :status::text::booking_status, e.price_cents * cardinality(ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[]), now() + make_interval(secs => NULL::float8)
    FROM event e
    WHERE e.ok AND (SELECT count(*) FROM wanted) = cardinality(ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[])
    RETURNING id, created_at, total_cents, expires_at
), ticket AS (
    -- In seat order, whatever order the request listed them in: two bookings that share seats
    -- then meet on the lowest shared seat first, where the later one waits for the earlier and
    -- gets 23505 if it commits. Neither can hold a seat the other waits for, so no deadlock.
    INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
    SELECT b.id, e.id, w.seat_id, e.price_cents
    FROM booking b, event e, wanted w
    ORDER BY w.seat_id
    RETURNING id, seat_id, price_cents
), confirmation AS (
    INSERT INTO outbox (booking_id, kind, payload)
    SELECT b.id, 'booking.confirmed', json_build_object(
        'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', :event_id::bigint, 'user_id', :user_id::text,
        'seat_ids', ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[], 'total_cents', b.total_cents, 'confirmed_at', b.created_at)
    FROM booking b
    WHERE :status::text::booking_status = 'confirmed'
)
SELECT
    e.id IS NOT NULL AS event_found,
    e.on_sale,
    e.sales_start_at,
    e.before_sale,
    e.sales_end_at,
    e.max_seats_per_user,
    e.live_seats,
    (SELECT coalesce(array_agg(seat_id), '{}') FROM wanted) AS valid_seat_ids,
    b.id AS booking_id,
    b.created_at,
    b.total_cents,
    b.expires_at,
    t.id AS ticket_id,
    t.seat_id,
    w.row_label,
    w.seat_number,
    t.price_cents
FROM (SELECT) AS one
LEFT JOIN event e ON true
LEFT JOIN booking b ON true
LEFT JOIN ticket t ON true
LEFT JOIN wanted w ON w.seat_id = t.seat_id
ORDER BY w.row_index, w.seat_number
;
\endpipeline
COMMIT;
