-- V4: the limits that make an on-sale fair. The unique constraint on tickets still decides every
-- seat; these decide whether a request may try at all.

-- The sales window. No start: on sale from creation. No end: until the event starts, which is
-- also the latest a sale can run (a ticket for an event under way is not sold).
ALTER TABLE events
    ADD COLUMN sales_start_at timestamptz,
    ADD COLUMN sales_end_at   timestamptz,
    ADD CONSTRAINT events_sales_end_check CHECK (sales_end_at IS NULL OR sales_end_at <= starts_at),
    ADD CONSTRAINT events_sales_window_check
        CHECK (sales_start_at IS NULL OR sales_start_at < coalesce(sales_end_at, starts_at));

-- Seats one person may have at once for the event: confirmed plus unexpired holds. NULL: no cap.
ALTER TABLE events
    ADD COLUMN max_seats_per_user integer CHECK (max_seats_per_user > 0);

-- One row per (event, user) that booked under a cap, locked by each booking of that user for that
-- event before it counts the user's seats, so two concurrent requests of one user are decided one
-- after the other, while other users (other rows) never wait. The count itself runs in the next
-- statement of the same transaction: under READ COMMITTED a statement's snapshot is taken when it
-- starts, so it sees whatever the previous holder of the lock committed. No foreign key to users:
-- the lock is taken before the booking statement creates the user's row.
CREATE TABLE seat_allowances (
    event_id bigint NOT NULL REFERENCES events (id),
    user_id  text NOT NULL,
    PRIMARY KEY (event_id, user_id)
);
