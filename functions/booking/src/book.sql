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
    SELECT id, venue_id, price_cents, max_seats_per_user, sales_start_at,
           coalesce(sales_end_at, starts_at) AS sales_end_at,
           now() >= coalesce(sales_start_at, '-infinity')
               AND now() < coalesce(sales_end_at, starts_at) AS on_sale
    FROM events WHERE id = $1
), mine AS (
    -- The caller's live seats (confirmed, or held and unexpired) for the event; only under a cap.
    SELECT count(*) AS seats
    FROM bookings b JOIN tickets t ON t.booking_id = b.id
    WHERE b.user_id = $3 AND b.event_id = $1
      AND (b.status = 'confirmed' OR (b.status = 'held' AND b.expires_at > now()))
      AND (SELECT max_seats_per_user FROM event) IS NOT NULL
), allowed AS (
    SELECT e.on_sale
           AND (e.max_seats_per_user IS NULL
                OR (SELECT seats FROM mine) + cardinality($2) <= e.max_seats_per_user) AS ok
    FROM event e
), wanted AS (
    SELECT s.id AS seat_id, s.row_index, s.row_label, s.seat_number
    FROM seats s
    JOIN event e ON s.venue_id = e.venue_id
    WHERE s.id = ANY ($2)
), usr AS (
    INSERT INTO users (id) SELECT $3 FROM allowed WHERE ok ON CONFLICT (id) DO NOTHING
), booking AS (
    INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
    SELECT $3, e.id, $4, e.price_cents * cardinality($2), now() + make_interval(secs => $5)
    FROM event e
    WHERE (SELECT count(*) FROM wanted) = cardinality($2) AND (SELECT ok FROM allowed)
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
    (SELECT count(*) FROM event) > 0 AS event_found,
    (SELECT on_sale FROM event) AS on_sale,
    (SELECT sales_start_at FROM event) AS sales_start_at,
    (SELECT now() < sales_start_at FROM event) IS TRUE AS before_sale,
    (SELECT sales_end_at FROM event) AS sales_end_at,
    (SELECT max_seats_per_user FROM event) AS max_seats_per_user,
    (SELECT seats FROM mine) AS live_seats,
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
LEFT JOIN booking b ON true
LEFT JOIN ticket t ON true
LEFT JOIN wanted w ON w.seat_id = t.seat_id
ORDER BY w.row_index, w.seat_number
