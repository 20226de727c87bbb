-- V1: the booking core.
--
-- The one invariant the whole product rests on is "no seat is sold twice for the same event". It is
-- enforced here, by PostgreSQL, through the named constraint tickets_event_seat_key below, and nowhere else:
-- the application takes no locks and serialises nothing; concurrent bookings race on the unique index
-- and the loser gets SQLSTATE 23505, which the API turns into 409 Conflict.
--
-- Lifecycle planning (cancellations, holds that expire): a ticket row *is* the claim on a seat, so
-- releasing a seat means moving its ticket out of `tickets` into `released_tickets`, which keeps the
-- history. A hold is a booking with status 'held' and an `expires_at`; its tickets claim the seats until
-- then, and a later booking may take over an expired hold's tickets inside its own transaction, so no
-- background job is needed for correctness.

-- People, identified by the identity provider's subject (Cognito `sub`); rows are created on first use.
CREATE TABLE users (
    id         text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE venues (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rows       integer NOT NULL CHECK (rows > 0),
    cols       integer NOT NULL CHECK (cols > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT venues_name_key UNIQUE (name)
);

-- Seats are generated with their venue. row_index orders rows (1 = A, 27 = AA); row_label is what a
-- ticket shows.
CREATE TABLE seats (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    venue_id    bigint NOT NULL REFERENCES venues (id),
    row_index   integer NOT NULL CHECK (row_index > 0),
    row_label   text NOT NULL,
    seat_number integer NOT NULL CHECK (seat_number > 0),
    -- Also the index behind "all seats of a venue, in order" (availability).
    CONSTRAINT seats_venue_position_key UNIQUE (venue_id, row_index, seat_number)
);

CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    starts_at   timestamptz NOT NULL,
    venue_id    bigint NOT NULL,
    -- Money is integer cents: no floating point anywhere near a price.
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_venue_id_fkey FOREIGN KEY (venue_id) REFERENCES venues (id)
);

-- The upcoming-events listing walks this index in (starts_at, id) order, keyset-paged.
CREATE INDEX events_starts_at_idx ON events (starts_at, id);

-- A booking is the unit a customer buys: all of its seats or none.
-- status: 'confirmed' (paid seats), 'held' (reserved until expires_at), 'cancelled' and 'expired'
-- (seats released, history kept).
CREATE TABLE bookings (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     text NOT NULL REFERENCES users (id),
    event_id    bigint NOT NULL REFERENCES events (id),
    status      text NOT NULL CHECK (status IN ('confirmed', 'held', 'cancelled', 'expired')),
    total_cents bigint NOT NULL CHECK (total_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Only holds expire; the value is kept after a hold is confirmed, cancelled or expired.
    expires_at  timestamptz,
    CHECK (status <> 'held' OR expires_at IS NOT NULL)
);

-- "My bookings, newest first".
CREATE INDEX bookings_user_created_idx ON bookings (user_id, created_at DESC, id);

-- One row per seat a booking currently claims.
CREATE TABLE tickets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id  uuid NOT NULL REFERENCES bookings (id),
    event_id    bigint NOT NULL REFERENCES events (id),
    seat_id     bigint NOT NULL REFERENCES seats (id),
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- THE arbiter: one claim per seat per event. Matched by name in the booking code (23505 -> 409).
    CONSTRAINT tickets_event_seat_key UNIQUE (event_id, seat_id)
);

CREATE INDEX tickets_booking_idx ON tickets (booking_id);

-- Tickets whose seat was given back (cancellation, expired hold). Same shape as tickets, without the
-- unique claim, so history survives and the seat can be sold again.
CREATE TABLE released_tickets (
    id          bigint PRIMARY KEY,
    booking_id  uuid NOT NULL REFERENCES bookings (id),
    event_id    bigint NOT NULL REFERENCES events (id),
    seat_id     bigint NOT NULL REFERENCES seats (id),
    price_cents bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    released_at timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL CHECK (reason IN ('cancelled', 'expired'))
);

CREATE INDEX released_tickets_booking_idx ON released_tickets (booking_id);
