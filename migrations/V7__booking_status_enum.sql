-- V7: a booking's status as a PostgreSQL enum, the one place in SQL that names the statuses.
--
-- Until now the column was text with a CHECK, and the queries matched string literals against
-- it: a misspelt literal ('confimed') compared false and silently matched nothing. Compared with
-- an enum, an unknown label is an error when the statement is parsed (22P02), so a typo fails the
-- first test that runs the query. The Rust side mirrors this list (booking-fn's BookingStatus);
-- a test holds the two equal. The functions send and read the status as text (`$n::booking_status`,
-- `status::text`): a custom type's OID differs per database, and reading one would make
-- tokio-postgres look it up with a named statement, which the proxy rule forbids.
--
-- The statuses, in the order a booking can move through them:
--   held       seats reserved until expires_at (a hold is a booking that is not paid yet)
--   confirmed  seats sold
--   cancelled  seats given back by the buyer or an organizer (tickets moved to released_tickets)
--   expired    a hold that lapsed and whose seats someone else claimed (likewise released)
CREATE TYPE booking_status AS ENUM ('held', 'confirmed', 'cancelled', 'expired');

-- The old CHECKs and the partial index compare the column with text; they are rebuilt against the
-- enum. ALTER COLUMN TYPE rewrites bookings under an exclusive lock: a migration to run before an
-- on-sale, not during one.
DROP INDEX bookings_held_expiry_idx;
ALTER TABLE bookings
    DROP CONSTRAINT bookings_status_check,
    DROP CONSTRAINT bookings_check;
ALTER TABLE bookings ALTER COLUMN status TYPE booking_status USING status::booking_status;
ALTER TABLE bookings
    ADD CONSTRAINT bookings_hold_expires_check CHECK (status <> 'held' OR expires_at IS NOT NULL);
CREATE INDEX bookings_held_expiry_idx ON bookings (expires_at) WHERE status = 'held';
