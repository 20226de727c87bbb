-- V19: a row that confirmed bookings have nearly filled is recorded with the seats they have not,
-- so a best-available pick reads the claims on those few seats instead of the whole row
-- (decision 25).
--
-- An on-sale of pairs fills each row from its centre and leaves a few seats at its ends (a pair
-- there would strand one, and a pair that strands none ranks first anywhere in the house), so
-- every front row stays open until the whole house is in that state, and every pick read all of
-- them again: 7,692 reads of rows for 4,139 picks in the bench. Now such a row is recorded with
-- `open`, the seats of it no confirmed booking had when a pick read it under the event's pick
-- lock. The record only ever says too much: a later booking or hold of an open seat leaves it
-- listed (the pick reads its claim), holds count as open (they lapse unseen), and a cancellation,
-- the only way a confirmed seat comes back, deletes the row's record in the same transaction
-- under the same lock (cancel_booking(), V16), as it did for full rows. A full row is the record
-- with nothing open, as every existing record is.
ALTER TABLE full_rows ADD COLUMN open bigint[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN full_rows.open IS
    'The seats of the row no confirmed booking had when a pick recorded it (empty: full).';

-- A pick narrows a row's record as its open seats are sold.
GRANT UPDATE ON full_rows TO seatbook_writer;
