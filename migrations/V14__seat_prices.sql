-- V14: each seat at its own price (issue 22): a booking's total is the sum of its seats' prices,
-- each ticket carries its seat's, and the booking.confirmed payload lists them.
--
-- A seat's price is its row's price category for the event (V13's category_rows, then
-- price_categories, both by primary key) or, in no category, the event's price_cents. The lookup
-- is a scalar subquery per requested seat, by key, so a booking still costs the same in an arena
-- as in a hall (tests/api/plans.rs, with categories on every row too). book() is V12's text with
-- only the prices changed; confirm_hold() is V10's with the payload's tickets added.
CREATE OR REPLACE FUNCTION book(
    p_event_id bigint,
    p_seat_ids bigint[],
    p_user_id text,
    p_status booking_status,
    p_hold_seconds double precision
) RETURNS TABLE (
    event_found boolean,
    on_sale boolean,
    sales_start_at timestamptz,
    before_sale boolean,
    sales_end_at timestamptz,
    max_seats_per_user integer,
    live_seats bigint,
    valid_seat_ids bigint[],
    booking_id uuid,
    created_at timestamptz,
    total_cents bigint,
    expires_at timestamptz,
    ticket_id bigint,
    seat_id bigint,
    row_label text,
    seat_number integer,
    price_cents bigint
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
-- A booking never waits long for a lock: it fails with 55P03 (503 and Retry-After) instead.
SET lock_timeout = '2s'
AS $$
-- The result columns are variables too; inside the queries a name means the table's column.
#variable_conflict use_column
DECLARE
    -- When the booking is judged: after any wait for the allowance lock (and, under an
    -- Idempotency-Key, for the key), not when the transaction began.
    v_now timestamptz := clock_timestamp();
BEGIN
    -- The common case: no cap (so no allowance lock to wait for), on sale at v_now, every seat
    -- in the event's venue. Seats by primary key behind a fence, as in V9.
    RETURN QUERY
    WITH event AS MATERIALIZED (
        SELECT ev.id, ev.venue_id, ev.price_cents, ev.sales_start_at,
               coalesce(ev.sales_end_at, ev.starts_at) AS sales_end_at
        FROM events ev
        WHERE ev.id = p_event_id
          AND ev.max_seats_per_user IS NULL
          AND v_now >= coalesce(ev.sales_start_at, '-infinity')
          AND v_now < coalesce(ev.sales_end_at, ev.starts_at)
    ), wanted AS MATERIALIZED (
        SELECT s.id AS seat_id, s.venue_id, s.row_index, s.row_label, s.seat_number
        FROM seats s
        WHERE s.id = ANY (p_seat_ids)
    ), priced AS MATERIALIZED (
        -- The requested seats of the event's venue, each at its row's category price (by key)
        -- or else the event's.
        SELECT w.seat_id, w.row_index, w.row_label, w.seat_number,
               coalesce((SELECT pc.price_cents
                         FROM category_rows cr
                         JOIN price_categories pc
                           ON pc.event_id = cr.event_id AND pc.position = cr.category_position
                         WHERE cr.event_id = e.id AND cr.row_index = w.row_index),
                        e.price_cents) AS price_cents
        FROM wanted w JOIN event e ON w.venue_id = e.venue_id
    ), usr AS (
        INSERT INTO users (id) SELECT p_user_id FROM event ON CONFLICT (id) DO NOTHING
    ), booking AS (
        INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
        SELECT p_user_id, e.id, p_status, (SELECT sum(p.price_cents) FROM priced p),
               CASE WHEN p_hold_seconds IS NOT NULL
                    THEN least(v_now + make_interval(secs => p_hold_seconds), e.sales_end_at) END
        FROM event e
        WHERE (SELECT count(*) FROM priced) = cardinality(p_seat_ids)
        RETURNING id, created_at, total_cents, expires_at
    ), ticket AS (
        -- In seat order: two bookings that share seats meet on the lowest shared one (V8).
        INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
        SELECT b.id, e.id, p.seat_id, p.price_cents
        FROM booking b, event e, priced p
        ORDER BY p.seat_id
        RETURNING id, seat_id, price_cents
    ), confirmation AS (
        INSERT INTO outbox (booking_id, kind, payload)
        SELECT b.id, 'booking.confirmed', json_build_object(
            'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', p_event_id,
            'user_id', p_user_id, 'seat_ids', p_seat_ids, 'total_cents', b.total_cents,
            'tickets', (SELECT json_agg(json_build_object('seat_id', p.seat_id,
                                                          'price_cents', p.price_cents)
                                        ORDER BY p.seat_id) FROM priced p),
            'confirmed_at', b.created_at)
        FROM booking b
        WHERE p_status = 'confirmed'
    )
    SELECT true, true, e.sales_start_at, false, e.sales_end_at, NULL::integer, NULL::bigint,
           p_seat_ids, b.id, b.created_at, b.total_cents, b.expires_at,
           t.id, t.seat_id, p.row_label, p.seat_number, t.price_cents
    FROM booking b, event e, ticket t JOIN priced p ON p.seat_id = t.seat_id
    ORDER BY p.row_index, p.seat_number;
    IF FOUND THEN
        RETURN;
    END IF;

    -- Anything else: V11's path, unchanged (the fast statement wrote nothing).
    -- Under a per-user seat cap, lock the caller's (event, user) allowance row before counting their
    -- seats (see V4). Other users have other rows and never wait on it; an event without a cap
    -- writes and locks nothing.
    INSERT INTO seat_allowances (event_id, user_id)
    SELECT id, p_user_id FROM events WHERE id = p_event_id AND max_seats_per_user IS NOT NULL
    ON CONFLICT (event_id, user_id) DO UPDATE SET user_id = excluded.user_id;
    v_now := clock_timestamp();

    -- Every requested seat or none, in one statement. The insert into tickets is the claim itself,
    -- and the unique constraint tickets_event_seat_key decides every race (23505 -> 409). When the
    -- event does not exist or a seat is not in the event's venue, nothing is inserted and the
    -- first columns say why. A confirmed booking writes its confirmation to the outbox in the same
    -- statement, so the notification exists exactly when the booking does. The fair-sale rules are
    -- decided by PostgreSQL's clock at v_now, not by a read before.
    RETURN QUERY
    WITH event AS (
        -- One row: the event, whether it is on sale now, and (only under a cap) the caller's live
        -- seats for it, confirmed or held and unexpired. `ok`: this request may write.
        SELECT e.*, e.on_sale AND (e.max_seats_per_user IS NULL
                                   OR e.live_seats + cardinality(p_seat_ids) <= e.max_seats_per_user) AS ok
        FROM (
            SELECT ev.id, ev.venue_id, ev.price_cents, ev.max_seats_per_user, ev.sales_start_at,
                   coalesce(ev.sales_end_at, ev.starts_at) AS sales_end_at,
                   v_now < ev.sales_start_at IS TRUE AS before_sale,
                   v_now >= coalesce(ev.sales_start_at, '-infinity')
                       AND v_now < coalesce(ev.sales_end_at, ev.starts_at) AS on_sale,
                   CASE WHEN ev.max_seats_per_user IS NOT NULL THEN (
                       SELECT count(*)
                       FROM bookings b JOIN tickets t ON t.booking_id = b.id
                       WHERE b.user_id = p_user_id AND b.event_id = p_event_id
                         AND (b.status = 'confirmed'
                              OR (b.status = 'held' AND b.expires_at > v_now))
                   ) END AS live_seats
            FROM events ev WHERE ev.id = p_event_id
        ) e
    ), requested AS MATERIALIZED (
        -- Each requested seat by primary key, and nothing else: a fence, so the planner cannot
        -- fold the venue check into the lookup (see the head of this file).
        SELECT s.id AS seat_id, s.venue_id, s.row_index, s.row_label, s.seat_number
        FROM seats s
        WHERE s.id = ANY (p_seat_ids)
    ), wanted AS (
        -- Then checked against the event's venue, row by row, and priced as in the first
        -- statement.
        SELECT r.seat_id, r.row_index, r.row_label, r.seat_number,
               coalesce((SELECT pc.price_cents
                         FROM category_rows cr
                         JOIN price_categories pc
                           ON pc.event_id = cr.event_id AND pc.position = cr.category_position
                         WHERE cr.event_id = e.id AND cr.row_index = r.row_index),
                        e.price_cents) AS price_cents
        FROM requested r
        JOIN event e ON r.venue_id = e.venue_id
    ), usr AS (
        INSERT INTO users (id) SELECT p_user_id FROM event WHERE ok ON CONFLICT (id) DO NOTHING
    ), booking AS (
        INSERT INTO bookings (user_id, event_id, status, total_cents, expires_at)
        SELECT p_user_id, e.id, p_status, (SELECT sum(w.price_cents) FROM wanted w),
               -- A hold never outlasts the sale: it could not be confirmed after it. (least()
               -- skips NULLs: a confirmed booking, with no hold time, has no expiry.)
               CASE WHEN p_hold_seconds IS NOT NULL
                    THEN least(v_now + make_interval(secs => p_hold_seconds), e.sales_end_at) END
        FROM event e
        WHERE e.ok AND (SELECT count(*) FROM wanted) = cardinality(p_seat_ids)
        RETURNING id, created_at, total_cents, expires_at
    ), ticket AS (
        -- In seat order, whatever order the request listed them in: two bookings that share seats
        -- then meet on the lowest shared seat first, where the later one waits for the earlier and
        -- gets 23505 if it commits. Neither can hold a seat the other waits for, so no deadlock.
        INSERT INTO tickets (booking_id, event_id, seat_id, price_cents)
        SELECT b.id, e.id, w.seat_id, w.price_cents
        FROM booking b, event e, wanted w
        ORDER BY w.seat_id
        RETURNING id, seat_id, price_cents
    ), confirmation AS (
        INSERT INTO outbox (booking_id, kind, payload)
        SELECT b.id, 'booking.confirmed', json_build_object(
            'type', 'booking.confirmed', 'booking_id', b.id, 'event_id', p_event_id,
            'user_id', p_user_id, 'seat_ids', p_seat_ids, 'total_cents', b.total_cents,
            'tickets', (SELECT json_agg(json_build_object('seat_id', w.seat_id,
                                                          'price_cents', w.price_cents)
                                        ORDER BY w.seat_id) FROM wanted w),
            'confirmed_at', b.created_at)
        FROM booking b
        WHERE p_status = 'confirmed'
    )
    SELECT
        e.id IS NOT NULL,
        e.on_sale,
        e.sales_start_at,
        e.before_sale,
        e.sales_end_at,
        e.max_seats_per_user,
        e.live_seats,
        (SELECT coalesce(array_agg(w2.seat_id), '{}') FROM wanted w2),
        b.id,
        b.created_at,
        b.total_cents,
        b.expires_at,
        t.id,
        t.seat_id,
        w.row_label,
        w.seat_number,
        t.price_cents
    FROM (SELECT) AS one
    LEFT JOIN event e ON true
    LEFT JOIN booking b ON true
    LEFT JOIN ticket t ON true
    LEFT JOIN wanted w ON w.seat_id = t.seat_id
    ORDER BY w.row_index, w.seat_number;
END
$$;


-- Confirms the caller's hold in one call: 'confirmed' (the outbox row written in the same
-- statement), 'sales_closed' (the sale's window, for the problem's members), or 'not_live' (no such
-- hold of the caller's, or it is no longer held and live: the API reads the booking to say which).
CREATE OR REPLACE FUNCTION confirm_hold(p_booking_id uuid, p_user_id text)
RETURNS TABLE (
    outcome text,
    event_id bigint,
    sales_start_at timestamptz,
    sales_end_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET lock_timeout = '2s'
AS $$
#variable_conflict use_column
DECLARE
    v_event events%ROWTYPE;
    v_now timestamptz;
BEGIN
    SELECT e.* INTO v_event
    FROM bookings b JOIN events e ON e.id = b.event_id
    WHERE b.id = p_booking_id AND b.user_id = p_user_id AND b.status = 'held';
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_live', NULL::bigint, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    -- The same lock a booking of this user for this event takes before counting their seats.
    IF v_event.max_seats_per_user IS NOT NULL THEN
        INSERT INTO seat_allowances (event_id, user_id) VALUES (v_event.id, p_user_id)
        ON CONFLICT (event_id, user_id) DO UPDATE SET user_id = excluded.user_id;
    END IF;
    v_now := clock_timestamp();
    IF NOT (v_now >= coalesce(v_event.sales_start_at, '-infinity')
            AND v_now < coalesce(v_event.sales_end_at, v_event.starts_at)) THEN
        RETURN QUERY SELECT 'sales_closed', v_event.id, v_event.sales_start_at,
                            coalesce(v_event.sales_end_at, v_event.starts_at);
        RETURN;
    END IF;
    -- The row lock taken here orders it against a concurrent release of the lapsed hold.
    RETURN QUERY
    WITH confirmed AS (
        UPDATE bookings SET status = 'confirmed'
        WHERE id = p_booking_id AND user_id = p_user_id AND status = 'held' AND expires_at > v_now
        RETURNING id, event_id, user_id, total_cents
    ), confirmation AS (
        INSERT INTO outbox (booking_id, kind, payload)
        SELECT c.id, 'booking.confirmed', json_build_object(
            'type', 'booking.confirmed', 'booking_id', c.id, 'event_id', c.event_id,
            'user_id', c.user_id, 'total_cents', c.total_cents, 'confirmed_at', v_now,
            'seat_ids', (SELECT array_agg(seat_id ORDER BY seat_id) FROM tickets
                         WHERE booking_id = c.id),
            'tickets', (SELECT json_agg(json_build_object('seat_id', seat_id,
                                                          'price_cents', price_cents)
                                        ORDER BY seat_id)
                        FROM tickets WHERE booking_id = c.id))
        FROM confirmed c
    )
    SELECT coalesce((SELECT 'confirmed' FROM confirmed), 'not_live'), v_event.id,
           v_event.sales_start_at, coalesce(v_event.sales_end_at, v_event.starts_at);
END
$$;
