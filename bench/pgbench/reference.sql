-- The reference booking: the ceiling `book` is measured against (issue 20). One plain statement,
-- no function, run by pgbench -M prepared (parsed and planned once per session). It writes what a
-- confirmed booking by book() writes (migrations/V12, V14): the user (upsert), one bookings row,
-- one tickets row per seat at its row's category price (by key) or the event's, one
-- 'booking.confirmed' outbox row with the same payload. Each seat is found by primary key alone
-- (a MATERIALIZED CTE the venue condition cannot be pushed into), then checked against the
-- event's venue; every seat or none. $1..$5 are book()'s parameters (event, seat ids, user,
-- status, hold seconds); ceiling.rs writes them as pgbench variables.
WITH event AS MATERIALIZED (
    SELECT id, venue_id, price_cents
    FROM events
    WHERE id = $1
      AND now() >= coalesce(sales_start_at, '-infinity')
      AND now() < coalesce(sales_end_at, starts_at)
      AND max_seats_per_user IS NULL
), wanted AS MATERIALIZED (
    SELECT id AS seat_id, venue_id, row_index FROM seats WHERE id = ANY ($2)
), priced AS MATERIALIZED (
    SELECT w.seat_id,
           coalesce((SELECT pc.price_cents
                     FROM category_rows cr
                     JOIN price_categories pc
                       ON pc.event_id = cr.event_id AND pc.position = cr.category_position
                     WHERE cr.event_id = e.id AND cr.row_index = w.row_index),
                    e.price_cents) AS price_cents
    FROM wanted w JOIN event e ON w.venue_id = e.venue_id
), usr AS (
    INSERT INTO users (id) SELECT $3 FROM event ON CONFLICT (id) DO NOTHING
), booking AS (
    INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
    SELECT $3, e.id, $4::booking_status, (SELECT sum(p.price_cents) FROM priced p),
           now() + make_interval(secs => $5)
    FROM event e
    WHERE (SELECT count(*) FROM priced) = cardinality($2)
    RETURNING id, created_at, total_cents
), ticket AS (
    INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
    SELECT b.id, e.id, p.seat_id, p.price_cents
    FROM booking b, event e, priced p
    ORDER BY p.seat_id
    RETURNING id
), confirmation AS (
    INSERT INTO outbox (booking_id, kind, payload)
    SELECT b.id, 'booking.confirmed', json_build_object(
        'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', $1,
        'user_id', $3, 'seat_ids', $2, 'total_cents', b.total_cents,
        'tickets', (SELECT json_agg(json_build_object('seat_id', p.seat_id,
                                                      'price_cents', p.price_cents)
                                    ORDER BY p.seat_id) FROM priced p),
        'confirmed_at', b.created_at)
    FROM booking b
    WHERE $4 = 'confirmed'
)
SELECT b.id, (SELECT count(*) FROM ticket) AS tickets FROM booking b
