-- V2: the booking lifecycle: idempotent retries, confirmations that are never lost.
--
-- Cancellations and holds need no new columns: V1 planned for them (bookings.status, expires_at,
-- released_tickets). What is new here is state that must commit atomically with a booking.

-- Idempotency-Key records, per user. The first request with a key inserts its row inside its own
-- booking transaction, so a concurrent retry with the same key blocks on the primary key until
-- that transaction ends, then replays the stored response instead of booking again. A request
-- whose transaction fails for a transient reason rolls its row back and the key stays free.
CREATE TABLE idempotency_keys (
    user_id       text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the canonical request, so the same key with another body is refused (422).
    request_hash  text NOT NULL,
    response_status integer NOT NULL,
    response_body   text NOT NULL,
    -- Location of the booking for a replayed 201.
    location      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Keys are kept at least 24 hours; the notifier's schedule deletes older ones using this index.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- The transactional outbox. A confirmation event is inserted in the same transaction as the
-- confirmed booking, so it exists if and only if the booking does; the notifier function
-- delivers it later (at least once), because Lambda freezes whatever runs after a response.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id      uuid NOT NULL REFERENCES bookings (id),
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- 'pending' until delivered; 'dead' after too many failed attempts (kept for inspection).
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);

-- What the notifier scans: due, pending events in order. Partial, so delivered rows cost nothing.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE status = 'pending';

-- Finding the holds that block a seat: tickets of held bookings are joined to their booking.
CREATE INDEX bookings_held_expiry_idx ON bookings (expires_at) WHERE status = 'held';
