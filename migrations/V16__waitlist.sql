-- V16: a waitlist for sold-out events that offers the freed seats themselves, in line order, for a
-- limited time (issue 24).
--
-- The line is a table; offering is SQL, so that every way a seat comes back offers it in the same
-- transaction that frees it, and PostgreSQL alone decides who gets what:
--   - a cancellation (cancel_booking, which is now what DELETE /api/v1/bookings/{id} runs);
--   - a lapsed hold a booking collides with (release_lapsed, what the claim path runs on 23505);
--   - a lapsed hold nobody collides with (sweep_waitlist, which the scheduled notifier and
--     local-api's loop run for the events that have a line: decision 28).
-- Each of them takes the event's advisory lock (the best-available pick lock of decision 25)
-- before it frees anything, so offers of one event are made one round at a time and never wait
-- for a pick that waits for them. An offer is a hold (a booking with status 'held') made by book(),
-- so its seats are tickets like any other: the unique constraint on tickets still decides every
-- seat, book()'s per-user cap and sales window apply, the public sees the seats as held, and
-- POST /api/v1/holds/{id}/confirm books them.

-- How long a waitlist offer lasts, per event.
ALTER TABLE events
    ADD COLUMN waitlist_offer_seconds integer NOT NULL DEFAULT 900
        CONSTRAINT events_waitlist_offer_seconds_check
        CHECK (waitlist_offer_seconds BETWEEN 10 AND 86400);

-- An entry's life: waiting in line, then offered seats (a hold), then fulfilled (the hold
-- confirmed) or expired (the offer lapsed); or left (the person left the line, or cancelled the
-- offer's hold).
CREATE TYPE waitlist_state AS ENUM ('waiting', 'offered', 'fulfilled', 'expired', 'left');

CREATE TABLE waitlist_entries (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The line's order is the order of joining: an identity, so two joins in the same instant
    -- still have an order, and the same one in every reading.
    line       bigint GENERATED ALWAYS AS IDENTITY,
    event_id   bigint NOT NULL REFERENCES events (id),
    user_id    text NOT NULL,
    count      integer NOT NULL CHECK (count BETWEEN 1 AND 10),
    -- A price category's name as the event spells it, 'Standard', or NULL: any ordinary seat.
    category   text,
    state      waitlist_state NOT NULL DEFAULT 'waiting',
    joined_at  timestamptz NOT NULL DEFAULT now(),
    -- The offer: a hold of the offered seats for the entry's user.
    hold_id    uuid REFERENCES bookings (id),
    offered_at timestamptz,
    CONSTRAINT waitlist_entries_offer_check
        CHECK (state = 'left' OR (state = 'waiting') = (hold_id IS NULL))
);

-- One live entry per person and event: joining again finds it.
CREATE UNIQUE INDEX waitlist_entries_live_key ON waitlist_entries (event_id, user_id)
    WHERE state IN ('waiting', 'offered');
-- The line itself, front first: what an offer round walks.
CREATE INDEX waitlist_entries_line_idx ON waitlist_entries (event_id, line) WHERE state = 'waiting';
-- A person's entries for an event, newest first (GET .../waitlist/me).
CREATE INDEX waitlist_entries_user_idx ON waitlist_entries (event_id, user_id, line);
-- An offer's entry from its hold (confirming, cancelling, lapsing).
CREATE UNIQUE INDEX waitlist_entries_hold_key ON waitlist_entries (hold_id);
-- An event's holds by expiry: the sweep finds an event's lapsed holds without reading every
-- lapsed hold of every event (bookings_held_expiry_idx). Built under a lock on bookings: a
-- migration to run before an on-sale, not during one.
CREATE INDEX bookings_event_held_idx ON bookings (event_id, expires_at) WHERE status = 'held';

-- The booking function keeps the line (join, leave, offers); nobody deletes from it.
GRANT SELECT, INSERT, UPDATE ON waitlist_entries TO seatbook_writer;

-- Which of `p_pool` (seats just freed) an entry asking for `p_count` seats of `p_category` gets,
-- by the best-available rules of functions/booking/src/best.rs applied to those seats alone:
-- a block side by side in one row, preferring one that strands no single free seat, then the
-- front row, then the block nearest the row's centre, then the lower seat number; with no block,
-- the seats nearest the front and then the centre, apart. Wheelchair places are never offered
-- (an entry cannot ask for them). NULL when the pool has too few of its seats.
CREATE FUNCTION waitlist_pick(p_event_id bigint, p_pool bigint[], p_count integer, p_category text)
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, public
AS $$
WITH event AS (
    SELECT id, venue_id FROM events WHERE id = p_event_id
), free AS (
    SELECT s.id, s.row_index, s.seat_number
    FROM seats s
    JOIN event e ON s.venue_id = e.venue_id
    LEFT JOIN category_rows cr ON cr.event_id = e.id AND cr.row_index = s.row_index
    LEFT JOIN price_categories pc
           ON pc.event_id = cr.event_id AND pc.position = cr.category_position
    WHERE s.id = ANY (p_pool) AND NOT s.accessible
      AND (p_category IS NULL OR lower(coalesce(pc.name, 'Standard')) = lower(p_category))
), centre AS (
    -- Twice each row's centre: its first and last seat's numbers, free or not (as best.rs).
    SELECT s.row_index, min(s.seat_number) + max(s.seat_number) AS twice
    FROM seats s JOIN event e ON s.venue_id = e.venue_id
    WHERE s.row_index IN (SELECT row_index FROM free)
    GROUP BY s.row_index
), run AS (
    -- Runs of free seats side by side: consecutive numbers in a row.
    SELECT row_index, min(seat_number) AS lo, max(seat_number) AS hi
    FROM (SELECT row_index, seat_number,
                 seat_number - row_number() OVER (PARTITION BY row_index ORDER BY seat_number)
                     AS island
          FROM free) f
    GROUP BY row_index, island
), block AS (
    SELECT r.row_index, a AS first
    FROM run r
    JOIN centre c USING (row_index)
    CROSS JOIN LATERAL generate_series(r.lo, r.hi - p_count + 1) AS g (a)
    ORDER BY (a - r.lo = 1 OR r.hi - (a + p_count - 1) = 1),
             r.row_index,
             abs(2 * a + p_count - 1 - c.twice),
             a
    LIMIT 1
)
SELECT CASE
    WHEN (SELECT count(*) FROM free) < p_count THEN NULL
    WHEN EXISTS (SELECT 1 FROM block) THEN (
        SELECT array_agg(f.id ORDER BY f.seat_number)
        FROM free f JOIN block b ON f.row_index = b.row_index
        WHERE f.seat_number BETWEEN b.first AND b.first + p_count - 1)
    ELSE (
        SELECT array_agg(apart.id ORDER BY apart.row_index, apart.seat_number)
        FROM (SELECT f.id, f.row_index, f.seat_number
              FROM free f JOIN centre c USING (row_index)
              ORDER BY f.row_index, abs(2 * f.seat_number - c.twice), f.seat_number
              LIMIT p_count) apart)
END
$$;

-- Offers `p_seat_ids`, seats this transaction has just freed, to the event's line: each waiting
-- entry in line order that the seats still unoffered can satisfy gets a hold on its pick of them
-- (book(), for the event's waitlist_offer_seconds), becomes 'offered', and its offer goes to the
-- outbox as `waitlist.offered`. Never more seats than were freed: each seat is offered once. An
-- entry the offer would take over the per-user cap is passed over (it keeps its place); once the
-- sale has closed nothing is offered. The caller holds the event's advisory lock, taken before it
-- freed the seats, so nothing else offers or picks this event's seats meanwhile; the entries are
-- locked as the line is read, so a person leaving waits for this round (or this round for them).
-- Returns the number of offers made.
CREATE FUNCTION offer_freed(p_event_id bigint, p_seat_ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
AS $$
DECLARE
    v_pool bigint[] := coalesce(p_seat_ids, '{}');
    v_seconds integer;
    v_entry waitlist_entries%ROWTYPE;
    v_ids bigint[];
    v_on_sale boolean;
    v_hold uuid;
    v_expires timestamptz;
    v_offers integer := 0;
BEGIN
    IF cardinality(v_pool) = 0 THEN
        RETURN 0;
    END IF;
    SELECT waitlist_offer_seconds INTO v_seconds FROM events WHERE id = p_event_id;
    FOR v_entry IN
        SELECT * FROM waitlist_entries
        WHERE event_id = p_event_id AND state = 'waiting'
        ORDER BY line
        FOR UPDATE
    LOOP
        EXIT WHEN cardinality(v_pool) = 0;
        CONTINUE WHEN cardinality(v_pool) < v_entry.count;
        v_ids := waitlist_pick(p_event_id, v_pool, v_entry.count, v_entry.category);
        CONTINUE WHEN v_ids IS NULL;
        -- A hold like any other: the cap, the sales window and the unique constraint decide.
        SELECT b.on_sale, b.booking_id, b.expires_at INTO v_on_sale, v_hold, v_expires
        FROM book(p_event_id, v_ids, v_entry.user_id, 'held', v_seconds::double precision) b
        LIMIT 1;
        EXIT WHEN NOT v_on_sale;
        CONTINUE WHEN v_hold IS NULL;
        UPDATE waitlist_entries
        SET state = 'offered', hold_id = v_hold, offered_at = clock_timestamp()
        WHERE id = v_entry.id;
        INSERT INTO outbox (booking_id, kind, payload)
        VALUES (v_hold, 'waitlist.offered', json_build_object(
            'type', 'waitlist.offered', 'entry_id', v_entry.id, 'event_id', p_event_id,
            'user_id', v_entry.user_id, 'hold_id', v_hold, 'seat_ids', v_ids,
            'expires_at', v_expires, 'offered_at', clock_timestamp()));
        v_pool := ARRAY(SELECT unnest(v_pool) EXCEPT SELECT unnest(v_ids));
        v_offers := v_offers + 1;
    END LOOP;
    RETURN v_offers;
END
$$;

-- Cancels booking `p_id` (only `p_owner`'s, unless NULL: an organizer) as CANCEL_SQL did until
-- now (V1's statement, with V15's reopening of the rows a confirmed booking had filled), and offers
-- the freed seats to the event's line in the same transaction. The event's lock is taken for every
-- cancellation, a hold's too, before the statement that frees the seats (and takes its snapshot).
-- A cancelled offer ends its entry ('left': the person declined it). One row (the event) when
-- something was cancelled.
CREATE FUNCTION cancel_booking(p_id uuid, p_owner text)
RETURNS TABLE (event_id bigint, seat_ids bigint[], offers integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET lock_timeout = '2s'
AS $$
#variable_conflict use_column
DECLARE
    v_event bigint;
    v_cancelled bigint;
    v_freed bigint[];
BEGIN
    SELECT b.event_id INTO v_event FROM bookings b
    WHERE b.id = p_id AND (p_owner IS NULL OR b.user_id = p_owner)
      AND b.status IN ('confirmed', 'held');
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Before anything is freed (see the head of this file).
    PERFORM pg_advisory_xact_lock(v_event);
    -- The row lock taken by `live` orders this after the booking's confirmation, whose outbox
    -- row therefore comes first.
    WITH live AS (
        SELECT id, status FROM bookings
        WHERE id = p_id AND (p_owner IS NULL OR user_id = p_owner)
          AND status IN ('confirmed', 'held')
        FOR UPDATE
    ), cancelled AS (
        UPDATE bookings b SET status = 'cancelled'
        FROM live WHERE b.id = live.id
        RETURNING b.id, b.event_id, b.user_id, live.status AS was
    ), gone AS (
        DELETE FROM tickets t USING cancelled c WHERE t.booking_id = c.id RETURNING t.*
    ), archived AS (
        INSERT INTO released_tickets (id, booking_id, event_id, seat_id, price_cents, created_at,
                                      reason)
        SELECT id, booking_id, event_id, seat_id, price_cents, created_at, 'cancelled' FROM gone
    ), reopened AS (
        DELETE FROM full_rows f USING gone g JOIN seats s ON s.id = g.seat_id
        WHERE f.event_id = g.event_id AND f.row_index = s.row_index
    ), cancellation AS (
        INSERT INTO outbox (booking_id, kind, payload)
        SELECT c.id, 'booking.cancelled', json_build_object(
            'type', 'booking.cancelled', 'booking_id', c.id, 'event_id', c.event_id,
            'user_id', c.user_id, 'cancelled_at', now(),
            'seat_ids', (SELECT array_agg(seat_id ORDER BY seat_id) FROM gone))
        FROM cancelled c WHERE c.was = 'confirmed'
    ), declined AS (
        UPDATE waitlist_entries w SET state = 'left'
        FROM cancelled c WHERE w.hold_id = c.id AND w.state = 'offered'
    )
    SELECT c.event_id, (SELECT array_agg(seat_id ORDER BY seat_id) FROM gone)
    INTO v_cancelled, v_freed
    FROM cancelled c;
    IF v_cancelled IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT v_cancelled, coalesce(v_freed, '{}'), offer_freed(v_cancelled, v_freed);
END
$$;

-- Releases the lapsed holds that claim any of `p_seat_ids` (what a booking collided with), as
-- V1's RELEASE_LAPSED_SQL did, and offers every seat they held to the line first: a seat whose
-- hold lapsed goes to whoever waits for it before the booking that found it gets a second try. A
-- lapsed offer's entry becomes 'expired'. Returns the seats released.
CREATE FUNCTION release_lapsed(p_event_id bigint, p_seat_ids bigint[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET lock_timeout = '2s'
AS $$
DECLARE
    v_freed bigint[];
    v_now timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(p_event_id);
    v_now := clock_timestamp();
    -- Locking the hold's row: a concurrent confirmation either wins first or sees this.
    WITH lapsed AS (
        UPDATE bookings b SET status = 'expired'
        WHERE b.status = 'held' AND b.expires_at <= v_now
          AND b.id IN (SELECT booking_id FROM tickets
                       WHERE event_id = p_event_id AND seat_id = ANY (p_seat_ids))
        RETURNING b.id
    ), gone AS (
        DELETE FROM tickets t USING lapsed l WHERE t.booking_id = l.id RETURNING t.*
    ), archived AS (
        INSERT INTO released_tickets (id, booking_id, event_id, seat_id, price_cents, created_at,
                                      reason)
        SELECT id, booking_id, event_id, seat_id, price_cents, created_at, 'expired' FROM gone
    ), lapsed_offers AS (
        UPDATE waitlist_entries w SET state = 'expired'
        FROM lapsed l WHERE w.hold_id = l.id AND w.state = 'offered'
    )
    SELECT array_agg(seat_id ORDER BY seat_id) INTO v_freed FROM gone;
    PERFORM offer_freed(p_event_id, v_freed);
    RETURN coalesce(cardinality(v_freed), 0);
END
$$;

-- The events whose line may have seats coming back without anyone colliding with them: a live
-- entry (waiting, or offered and maybe lapsing), the sale still open, and a hold that has lapsed.
-- For the scheduled sweep, which has no business reading the tables themselves.
CREATE FUNCTION waitlist_events_to_sweep() RETURNS SETOF bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
SELECT e.id
FROM events e
WHERE e.id IN (SELECT w.event_id FROM public.waitlist_entries w
               WHERE w.state IN ('waiting', 'offered'))
  AND now() < coalesce(e.sales_end_at, e.starts_at)
  AND EXISTS (SELECT 1 FROM public.bookings b
              WHERE b.event_id = e.id AND b.status = 'held' AND b.expires_at <= now())
ORDER BY e.id
$$;

-- Releases every lapsed hold of the event and offers their seats to its line (a lapsed offer's
-- entry becomes 'expired' and its seats go to the next in line before the public): what the
-- scheduled notifier (deployed, every minute) and local-api (every 5 s) run for each event of
-- waitlist_events_to_sweep(), each event its own transaction. Holds a confirmation has locked are
-- skipped (SKIP LOCKED): the confirmation decides them. Returns the seats released and the offers
-- made. SECURITY DEFINER: the notifier's role may run this and nothing more of the booking tables.
CREATE FUNCTION sweep_waitlist(p_event_id bigint)
RETURNS TABLE (released bigint, offers integer)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_freed bigint[];
    v_now timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(p_event_id);
    v_now := clock_timestamp();
    WITH lapsed AS (
        SELECT id FROM public.bookings
        WHERE event_id = p_event_id AND status = 'held' AND expires_at <= v_now
        FOR UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE public.bookings b SET status = 'expired'
        FROM lapsed l WHERE b.id = l.id
        RETURNING b.id
    ), gone AS (
        DELETE FROM public.tickets t USING expired x WHERE t.booking_id = x.id RETURNING t.*
    ), archived AS (
        INSERT INTO public.released_tickets (id, booking_id, event_id, seat_id, price_cents,
                                             created_at, reason)
        SELECT id, booking_id, event_id, seat_id, price_cents, created_at, 'expired' FROM gone
    ), lapsed_offers AS (
        UPDATE public.waitlist_entries w SET state = 'expired'
        FROM expired x WHERE w.hold_id = x.id AND w.state = 'offered'
    )
    SELECT array_agg(seat_id ORDER BY seat_id) INTO v_freed FROM gone;
    RETURN QUERY SELECT coalesce(cardinality(v_freed), 0)::bigint,
                        public.offer_freed(p_event_id, v_freed);
END
$$;

REVOKE ALL ON FUNCTION waitlist_events_to_sweep() FROM PUBLIC;
REVOKE ALL ON FUNCTION sweep_waitlist(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION waitlist_events_to_sweep() TO seatbook_notifier;
GRANT EXECUTE ON FUNCTION sweep_waitlist(bigint) TO seatbook_notifier;

-- confirm_hold() is V14's, and a confirmed offer fulfils its entry in the same statement.
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
    ), fulfilled AS (
        UPDATE waitlist_entries w SET state = 'fulfilled'
        FROM confirmed c WHERE w.hold_id = c.id AND w.state = 'offered'
    )
    SELECT coalesce((SELECT 'confirmed' FROM confirmed), 'not_live'), v_event.id,
           v_event.sales_start_at, coalesce(v_event.sales_end_at, v_event.starts_at);
END
$$;

-- Joins the line for `p_count` seats of `p_category` (a category's name, 'Standard', or NULL),
-- or says why not. outcome: 'no_event'; 'sales_closed' (with the window); 'no_category';
-- 'available' (that many matching seats are free now: book them instead); 'existing' (the
-- caller's live entry, unchanged); 'joined'. entry_id names the entry for the last two.
CREATE FUNCTION join_waitlist(p_event_id bigint, p_user_id text, p_count integer,
                              p_category text)
RETURNS TABLE (
    outcome text,
    entry_id uuid,
    available bigint,
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
    v_category text;
    v_free bigint;
    v_entry uuid;
    v_now timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO v_event FROM events WHERE id = p_event_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_event', NULL::uuid, NULL::bigint, NULL::timestamptz,
                            NULL::timestamptz;
        RETURN;
    END IF;
    IF v_now >= coalesce(v_event.sales_end_at, v_event.starts_at) THEN
        RETURN QUERY SELECT 'sales_closed', NULL::uuid, NULL::bigint, v_event.sales_start_at,
                            coalesce(v_event.sales_end_at, v_event.starts_at);
        RETURN;
    END IF;
    SELECT w.id INTO v_entry FROM waitlist_entries w
    WHERE w.event_id = p_event_id AND w.user_id = p_user_id AND w.state IN ('waiting', 'offered');
    IF FOUND THEN
        RETURN QUERY SELECT 'existing', v_entry, NULL::bigint, NULL::timestamptz,
                            NULL::timestamptz;
        RETURN;
    END IF;
    -- The category as the event spells it.
    IF p_category IS NOT NULL THEN
        IF lower(p_category) = 'standard' THEN
            v_category := 'Standard';
        ELSE
            SELECT pc.name INTO v_category FROM price_categories pc
            WHERE pc.event_id = p_event_id AND lower(pc.name) = lower(p_category);
            IF NOT FOUND THEN
                RETURN QUERY SELECT 'no_category', NULL::uuid, NULL::bigint, NULL::timestamptz,
                                    NULL::timestamptz;
                RETURN;
            END IF;
        END IF;
    END IF;
    -- Ordinary seats of that category with no live claim (a lapsed hold's seat is free: the
    -- booking that takes it releases it, offering it to the line first).
    SELECT count(*) INTO v_free
    FROM seats s
    LEFT JOIN category_rows cr ON cr.event_id = p_event_id AND cr.row_index = s.row_index
    LEFT JOIN price_categories pc
           ON pc.event_id = cr.event_id AND pc.position = cr.category_position
    WHERE s.venue_id = v_event.venue_id AND NOT s.accessible
      AND (v_category IS NULL OR coalesce(pc.name, 'Standard') = v_category)
      AND NOT EXISTS (
          SELECT 1 FROM tickets t JOIN bookings b ON b.id = t.booking_id
          WHERE t.event_id = p_event_id AND t.seat_id = s.id
            AND (b.status <> 'held' OR b.expires_at > v_now));
    IF v_free >= p_count THEN
        RETURN QUERY SELECT 'available', NULL::uuid, v_free, NULL::timestamptz,
                            NULL::timestamptz;
        RETURN;
    END IF;
    -- Two joins of one person at once: the unique index lets one in, the other finds it.
    INSERT INTO waitlist_entries (event_id, user_id, count, category)
    VALUES (p_event_id, p_user_id, p_count, v_category)
    ON CONFLICT (event_id, user_id) WHERE state IN ('waiting', 'offered') DO NOTHING
    RETURNING id INTO v_entry;
    IF v_entry IS NOT NULL THEN
        RETURN QUERY SELECT 'joined', v_entry, NULL::bigint, NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT w.id INTO v_entry FROM waitlist_entries w
    WHERE w.event_id = p_event_id AND w.user_id = p_user_id AND w.state IN ('waiting', 'offered');
    RETURN QUERY SELECT 'existing', v_entry, NULL::bigint, NULL::timestamptz, NULL::timestamptz;
END
$$;

-- Leaves the line: a waiting entry becomes 'left'; an offered one too, and its hold is cancelled
-- (cancel_booking), which offers its seats to the next in line. Whether there was a live entry.
CREATE FUNCTION leave_waitlist(p_event_id bigint, p_user_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET lock_timeout = '2s'
AS $$
DECLARE
    v_entry waitlist_entries%ROWTYPE;
BEGIN
    -- Before the hold's seats are freed, as every release takes it.
    PERFORM pg_advisory_xact_lock(p_event_id);
    SELECT * INTO v_entry FROM waitlist_entries
    WHERE event_id = p_event_id AND user_id = p_user_id AND state IN ('waiting', 'offered')
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_entry.state = 'offered' THEN
        PERFORM cancel_booking(v_entry.hold_id, p_user_id);
    END IF;
    UPDATE waitlist_entries SET state = 'left'
    WHERE id = v_entry.id AND state IN ('waiting', 'offered');
    RETURN true;
END
$$;
