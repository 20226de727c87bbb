-- V3: one database role per kind of function, each allowed only what that function does, so a
-- compromised or buggy read path cannot sell, cancel or delete anything.
--
--   seatbook_reader    events, metrics          SELECT
--   seatbook_writer    booking, organizer       SELECT, INSERT, UPDATE, DELETE on the data tables
--   seatbook_notifier  notifier                 the outbox, and expiring idempotency keys
--
-- The roles are created without LOGIN: the `migrate` function gives each its password (from the
-- role's own Secrets Manager secret, which RDS Proxy also holds) and LOGIN once it has run this.
-- The master user keeps ownership and is used only by `migrate`.

-- Roles belong to the whole cluster, not to this database: several databases on one server (the
-- tests make one per test, concurrently) may each run this migration at the same moment. The loser
-- of a concurrent CREATE ROLE waits for the winner and then fails with unique_violation on
-- pg_authid; either way the role exists afterwards, which is all this needs.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['seatbook_reader', 'seatbook_writer', 'seatbook_notifier'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO seatbook_reader, seatbook_writer, seatbook_notifier;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO seatbook_reader;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO seatbook_writer;
-- Identity columns draw from sequences the writer inserts through.
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO seatbook_writer;
-- Migration bookkeeping is the master user's alone.
REVOKE ALL ON refinery_schema_history FROM seatbook_writer, seatbook_reader;

-- The notifier claims, marks and counts outbox rows (SELECT ... FOR UPDATE needs UPDATE), and
-- deletes idempotency keys past their retention. Nothing else: it never sees bookings or tickets
-- except through the outbox payload.
GRANT SELECT, UPDATE ON outbox TO seatbook_notifier;
GRANT SELECT, DELETE ON idempotency_keys TO seatbook_notifier;

-- Tables later migrations create are readable and writable the same way without each migration
-- having to remember (the notifier's grants stay explicit: it is meant to see little).
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO seatbook_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO seatbook_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO seatbook_writer;
