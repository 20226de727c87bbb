-- V5: outbox deliveries whose progress survives a notifier that stops mid-run, delivered in order
-- per booking, and purged once delivered and past their retention.

-- A delivery is leased, not held in a transaction: the notifier claims one row in a short
-- statement (attempts + 1, locked_until = now() + lease), sends it outside any transaction, and
-- records the outcome in another short statement, which clears the lease. A notifier that dies
-- while sending leaves the row pending under a lease that lapses; a later run takes it again.
ALTER TABLE outbox ADD COLUMN locked_until timestamptz;

-- Deliveries are ordered per booking: a row is due only when no earlier row of its booking is
-- still pending (delivered or dead ones do not hold it back). This finds those earlier rows.
CREATE INDEX outbox_booking_pending_idx ON outbox (booking_id, id) WHERE status = 'pending';

-- What the purge scans: delivered rows by age.
CREATE INDEX outbox_delivered_idx ON outbox (delivered_at) WHERE status = 'delivered';

-- The notifier purges delivered rows past their retention through this function alone: it has no
-- DELETE on outbox, so pending and dead rows (kept for a person to inspect) are out of its reach.
-- SECURITY DEFINER runs it as its owner (the migrating user); the search path is pinned so that
-- nothing the caller creates can stand in for what it names.
CREATE FUNCTION purge_delivered_outbox(retention interval) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    purged bigint;
BEGIN
    IF retention IS NULL OR retention < interval '0' THEN
        RAISE EXCEPTION 'retention must be a non-negative interval, got %', retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM public.outbox WHERE status = 'delivered' AND delivered_at < now() - retention;
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END
$$;

REVOKE ALL ON FUNCTION purge_delivered_outbox(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_delivered_outbox(interval) TO seatbook_notifier;

-- The notifier claims and releases leases. Its table-wide SELECT, UPDATE on outbox (V3) already
-- covers a new column; granted here by name as well, so the lease never depends on that grant's
-- form.
GRANT SELECT (locked_until), UPDATE (locked_until) ON outbox TO seatbook_notifier;
