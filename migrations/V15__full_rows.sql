-- V15: the rows of an event that confirmed bookings have filled, so a best-available pick skips
-- them (decision 25).
--
-- A pick reads an event's rows front to back, under the event's pick lock, until its choice is
-- settled. An on-sale sells a venue from the front, so without this every pick read again every
-- row already sold out in front of the free ones: its cost, and the time the lock is held, grew
-- with the seats sold. A pick that sees a row whose every seat a confirmed booking has records it
-- here; later picks leave it out.
--
-- Only confirmed tickets fill a row: a hold lapses without a write (decision 11), so a row of
-- holds could free itself unseen. A confirmed ticket leaves only by a cancellation, which takes the
-- event's pick lock and deletes the rows it frees in the same transaction; a pick therefore never
-- records a row a committed cancellation has opened, and never skips a row one opens later.
CREATE TABLE full_rows (
    event_id  bigint NOT NULL REFERENCES events (id),
    -- The venue's row (seats.row_index) every seat of which has a confirmed ticket of the event.
    row_index integer NOT NULL CHECK (row_index > 0),
    PRIMARY KEY (event_id, row_index)
);

-- Readers never need it: the map reads tickets themselves.
GRANT SELECT, INSERT, DELETE ON full_rows TO seatbook_writer;
