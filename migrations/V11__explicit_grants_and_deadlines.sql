-- V11: each role gets exactly what its functions do, table by table, and every session of the
-- service's roles has deadlines.
--
-- V3 granted by wildcard: the reader could read idempotency_keys (stored responses), the outbox
-- (every booking's payload) and users; the writer could DELETE from outbox, events and
-- released_tickets; and ALTER DEFAULT PRIVILEGES handed every future table to both. Review found
-- it (issue 19). From here on, a grant is written for each table and each role, next to what
-- needs it, and a new table is nobody's until a migration says otherwise. tests/api/roles.rs reads
-- information_schema.role_table_grants and holds each role to exactly this list.

ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM seatbook_reader, seatbook_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM seatbook_writer;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM seatbook_reader, seatbook_writer, seatbook_notifier;

-- The reader (events and metrics functions): the catalog and the seat map. Metrics come from
-- pg_stat_user_tables, which needs no grant.
GRANT SELECT ON venues, seats, events, tickets, bookings TO seatbook_reader;

-- The writer (booking and organizer functions).
GRANT SELECT, INSERT ON venues, seats, events TO seatbook_writer;       -- organizing
GRANT SELECT, INSERT ON users TO seatbook_writer;                        -- first booking of a user
GRANT SELECT, INSERT, UPDATE ON bookings TO seatbook_writer;             -- status changes, never deleted
GRANT SELECT, INSERT, DELETE ON tickets TO seatbook_writer;              -- a released seat's ticket moves out
GRANT SELECT, INSERT ON released_tickets TO seatbook_writer;             -- history, never changed
GRANT SELECT, INSERT, UPDATE ON seat_allowances TO seatbook_writer;      -- the per-user lock (upsert)
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO seatbook_writer;     -- the notifier expires them
GRANT INSERT ON outbox TO seatbook_writer;                               -- written, never read back

-- The notifier: the outbox it delivers and the keys it expires (and V5's column grant on
-- outbox.locked_until, which the REVOKE above took and this gives back).
GRANT SELECT, UPDATE ON outbox TO seatbook_notifier;
GRANT SELECT, DELETE ON idempotency_keys TO seatbook_notifier;

-- Deadlines for every session of the service's roles, so that no statement outlives the
-- function's timeout (book() and confirm_hold() also set lock_timeout themselves, which holds
-- whoever runs them). Per database (IN DATABASE): several databases on one server, as in the
-- tests, each set their own row of pg_db_role_setting and never race on one.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['seatbook_reader', 'seatbook_writer', 'seatbook_notifier'] LOOP
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L',
                       role_name, current_database(), '4s');
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET lock_timeout = %L',
                       role_name, current_database(), '2s');
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
                       role_name, current_database(), '10s');
    END LOOP;
END
$$;
