-- V6: the caller's live seats for an event (the per-person cap of V4), as a PL/pgSQL function.
--
-- The booking statement is sent unnamed (proxy-safe), so PostgreSQL plans it on every execution;
-- counting inline made it plan a bookings-tickets join each time even for the events without a
-- cap, which doubled its planning time. PL/pgSQL caches the plan of its query per session, so the
-- count is planned once per connection and the booking statement only plans a function call.
-- The plan is generic after a few calls; it is the same either way (bookings by user_id through
-- bookings_user_created_idx, then tickets by tickets_booking_idx), whatever the venue's size.
--
-- STABLE: it runs in the calling statement's snapshot, which the booking transaction takes only
-- after locking the caller's seat_allowances row (see V4), so it counts what the caller's last
-- concurrent request committed.
CREATE FUNCTION live_seats(p_event_id bigint, p_user_id text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public
AS $$
BEGIN
    RETURN (
        SELECT count(*)
        FROM bookings b JOIN tickets t ON t.booking_id = b.id
        WHERE b.user_id = p_user_id AND b.event_id = p_event_id
          AND (b.status = 'confirmed' OR (b.status = 'held' AND b.expires_at > now()))
    );
END
$$;
