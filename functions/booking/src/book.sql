-- Books every requested seat of one event for one user, or none, in a single statement.
-- $1 event id, $2 seat ids (already de-duplicated, 1..=10), $3 user id,
-- $4 status ('confirmed', or 'held' for a hold), $5 how long a hold lasts in seconds (else NULL).
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
                               OR e.live_seats + cardinality($2) <= e.max_seats_per_user) AS ok
    FROM (
        SELECT id, venue_id, price_cents, max_seats_per_user, sales_start_at,
               coalesce(sales_end_at, starts_at) AS sales_end_at,
               now() < sales_start_at IS TRUE AS before_sale,
               now() >= coalesce(sales_start_at, '-infinity')
                   AND now() < coalesce(sales_end_at, starts_at) AS on_sale,
               CASE WHEN max_seats_per_user IS NOT NULL THEN live_seats($1, $3) END AS live_seats
        FROM events WHERE id = $1
    ) e
), wanted AS (
    SELECT s.id AS seat_id, s.row_index, s.row_label, s.seat_number
    FROM seats s
    JOIN event e ON s.venue_id = e.venue_id
    WHERE s.id = ANY ($2)
), usr AS (
    INSERT INTO users (id) SELECT $3 FROM event WHERE ok ON CONFLICT (id) DO NOTHING
), booking AS (
    INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
    SELECT $3, e.id, $4, e.price_cents * cardinality($2), now() + make_interval(secs => $5)
    FROM event e
    WHERE e.ok AND (SELECT count(*) FROM wanted) = cardinality($2)
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
        'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', $1, 'user_id', $3,
        'seat_ids', $2, 'total_cents', b.total_cents, 'confirmed_at', b.created_at)
    FROM booking b
    WHERE $4 = 'confirmed'
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
