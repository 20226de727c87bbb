-- pgbench ceiling for the uncached `read`: the one query behind GET
-- /api/v1/events/{id}/availability (events_fn::AVAILABILITY_SQL), run with -M extended like the
-- service's query_typed. Its $1 (INT8, the event) is :event_id::bigint. The unit test
-- the_availability_script_runs_the_service_query fails if this stops being exactly that query;
-- after a deliberate change: SEATBOOK_BENCH_BLESS=1 cargo test -p seatbook-bench
--
-- -D defines: event_id (a 20 x 25 = 500-seat event with 30 % of its seats booked).
SELECT s.id, s.row_label, s.seat_number, coalesce(c.status, 'available') AS status, c.held_until
FROM seats s
LEFT JOIN (
    SELECT t.seat_id,
           CASE WHEN b.status <> 'held' THEN 'booked' WHEN b.expires_at > now() THEN 'held' END
               AS status,
           CASE WHEN b.status = 'held' AND b.expires_at > now() THEN b.expires_at END AS held_until
    FROM tickets t JOIN bookings b ON b.id = t.booking_id
    WHERE t.event_id = :event_id::bigint
) c ON c.seat_id = s.id
WHERE s.venue_id = (SELECT venue_id FROM events WHERE id = :event_id::bigint)
ORDER BY s.row_index, s.seat_number;
