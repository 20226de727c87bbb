-- pgbench ceiling for `book-multi`: four adjacent seats a booking.
--
-- It runs the very statement the service sends for POST /api/v1/bookings (booking_fn::BOOK_SQL):
-- a call of the `book` function (migrations/V8), which locks the caller's seat allowance under a
-- cap and books every seat or none; one statement, its own transaction. It must stay exactly
-- BOOK_SQL with its $n parameters replaced as bench/src/ceiling.rs (book_params) says: each
-- becomes this script's variable cast to the type the service's query_typed declares for it, the
-- seat array is built from one variable per seat, and a parameter the service binds as NULL is
-- that typed NULL. The unit test the_kept_booking_scripts_run_exactly_book_sql fails otherwise,
-- and the benchmark refuses to run. After a deliberate change to BOOK_SQL:
--   SEATBOOK_BENCH_BLESS=1 cargo test -p seatbook-bench    (rewrites the statement)
--
-- The ceiling runs it with -M prepared (parsed and planned once per session); the informational
-- row runs it with -M extended, unnamed as the service sends it.
--
-- No two transactions ever want the same seat (a unique violation would abort the client):
-- client c books only in event :event_base + c, whose venue's seats start at :first_seat, and
-- :i (from -D i=0; pgbench keeps a client's variables from one transaction to the next) walks
-- those seats upwards. Past the venue's last seat a booking matches no seat and inserts nothing
-- instead of conflicting; the harness compares the stored tickets with pgbench's count.
--
-- -D defines: event_base, first_seat, i=0, status=confirmed.
\set i :i + 1
\set event_id :event_base + :client_id
\set user_id 1000000 + :client_id
\set seat1 :first_seat + 4 * (:i - 1)
\set seat2 :seat1 + 1
\set seat3 :seat1 + 2
\set seat4 :seat1 + 3
SELECT * FROM book(:event_id::bigint, ARRAY[:seat1, :seat2, :seat3, :seat4]::bigint[], :user_id::text, :status::text::booking_status, NULL::float8);
