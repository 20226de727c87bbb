-- V13: venues of sections with wheelchair places, and events with price categories (issue 22).
--
-- A section is a band of consecutive rows of the venue's one grid: seats keep their venue-wide
-- row_index (so seats_venue_position_key, the map's order and every seat id stay as they were),
-- and only the row's label starts again at A in each section. The alternative, a section_id on
-- every seat, would have rewritten the seats of every existing venue to backfill it, and made
-- each seat of the map join its section; a section is found from a seat's row instead, and the
-- sections of a venue are a handful of rows.
CREATE TABLE sections (
    venue_id  bigint NOT NULL REFERENCES venues (id),
    -- Front to back, from 1: the order the organizer gave.
    position  integer NOT NULL CHECK (position > 0),
    name      text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The section's first row as the venue counts rows (seats.row_index); its rows follow.
    first_row integer NOT NULL CHECK (first_row > 0),
    rows      integer NOT NULL CHECK (rows > 0),
    cols      integer NOT NULL CHECK (cols > 0),
    PRIMARY KEY (venue_id, position),
    CONSTRAINT sections_venue_name_key UNIQUE (venue_id, name)
);

-- Every venue so far is one rectangle: one section, "Main", of all its rows.
INSERT INTO sections (venue_id, position, name, first_row, rows, cols)
SELECT id, 1, 'Main', 1, rows, cols FROM venues;

-- Wheelchair places. A constant default: PostgreSQL adds the column without rewriting the table,
-- and every existing seat is an ordinary one.
ALTER TABLE seats ADD COLUMN accessible boolean NOT NULL DEFAULT false;

-- An event's price categories, in the order given: a seat belongs to the first that covers its
-- row. `section` and `row_labels` are kept as the organizer wrote them (NULL rows: the whole
-- section); what a booking reads is category_rows below.
CREATE TABLE price_categories (
    event_id    bigint NOT NULL REFERENCES events (id),
    position    integer NOT NULL CHECK (position > 0),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    section     text NOT NULL,
    row_labels  text[],
    PRIMARY KEY (event_id, position),
    CONSTRAINT price_categories_event_name_key UNIQUE (event_id, name)
);

-- Which category each row of the event's venue is in, resolved once when the event is created
-- (first cover wins); a row with no entry is "Standard" at events.price_cents. Keyed by
-- (event, row): book() finds each requested seat's price by primary key from the seat's row, so
-- a booking costs the same whatever the venue's size. A row per venue row, not per seat (at most
-- a few thousand per event rather than 40,000), as a category always covers whole rows.
CREATE TABLE category_rows (
    event_id          bigint NOT NULL,
    row_index         integer NOT NULL CHECK (row_index > 0),
    category_position integer NOT NULL,
    PRIMARY KEY (event_id, row_index),
    FOREIGN KEY (event_id, category_position) REFERENCES price_categories (event_id, position)
);

-- As V11: each role gets what its functions do. The reader draws the map; the writer's organizer
-- creates venues and events, and its booking function reads prices inside book().
GRANT SELECT ON sections, price_categories, category_rows TO seatbook_reader;
GRANT SELECT, INSERT ON sections, price_categories, category_rows TO seatbook_writer;
