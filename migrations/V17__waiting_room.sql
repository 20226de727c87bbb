-- V17: an event's waiting room (issue 23). All three NULL: no waiting room, the event sells as
-- before. Set: bookings and holds of the event need an admission token, handed out by the queue
-- (in Redis, not here) at most `room_admit_per_minute` a minute, each valid for
-- `room_admission_ttl_seconds`, and never more at once than `room_max_admitted_per_free_seat`
-- times the free seats. The columns only say what the organizer chose; nothing in PostgreSQL
-- enforces admission (the booking function checks the token before it books).
ALTER TABLE events
    ADD COLUMN room_admit_per_minute integer CHECK (room_admit_per_minute >= 1),
    ADD COLUMN room_admission_ttl_seconds integer
        CHECK (room_admission_ttl_seconds BETWEEN 60 AND 3600),
    ADD COLUMN room_max_admitted_per_free_seat integer
        CHECK (room_max_admitted_per_free_seat BETWEEN 1 AND 100),
    ADD CONSTRAINT events_waiting_room_whole CHECK (
        (room_admit_per_minute IS NULL) = (room_admission_ttl_seconds IS NULL)
        AND (room_admit_per_minute IS NULL) = (room_max_admitted_per_free_seat IS NULL)
    );
