-- V18: leaving a waitlist locks the offer's hold before the entry, as everything else does.
--
-- confirm_hold() (V16) locks the hold's booking row, then updates its waitlist entry; so do
-- cancel_booking(), release_lapsed() and sweep_waitlist(). V16's leave_waitlist() locked the entry
-- first and the hold after it (inside cancel_booking()), so a person confirming an offer while
-- leaving the line could deadlock the two: PostgreSQL broke it after a second by failing one (503).
-- Now the hold's row comes first, then the entry: whichever of the two gets the hold first goes
-- through, and the other sees what it did (a confirmed hold is not live to cancel; a left entry is
-- not offered to fulfil). Otherwise V16's function.
CREATE OR REPLACE FUNCTION leave_waitlist(p_event_id bigint, p_user_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public
SET lock_timeout = '2s'
AS $$
DECLARE
    v_entry waitlist_entries%ROWTYPE;
BEGIN
    -- Before the hold's seats are freed, as every release takes it.
    PERFORM pg_advisory_xact_lock(p_event_id);
    PERFORM 1 FROM bookings
    WHERE id = (SELECT hold_id FROM waitlist_entries
                WHERE event_id = p_event_id AND user_id = p_user_id AND state = 'offered')
    FOR UPDATE;
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
