use crate::views::{Availability, CategoryAvailability, EventPage, SeatStatus};
use chrono::{DateTime, Utc};
use seatbook_core::catalog::{Event, EventLayout, EVENT_COLUMNS, EVENT_LAYOUT_SQL};
use seatbook_core::db::Pool;
use seatbook_core::domain::{DEFAULT_SECTION, STANDARD};
use seatbook_core::ApiError;
use tokio_postgres::types::{ToSql, Type};

/// An event's seat map: every seat of its venue in row order, its status, and for a seat under a
/// live hold, when the hold lapses. The venue is a scalar subquery, and its seats are asked for in
/// the order of the `seats_venue_position_key` index, so they come by it; the claims are the event's tickets (`tickets_event_seat_key`)
/// with their bookings by primary key. The cost follows the venue's size and the event's sales,
/// not the size of `seats` or `bookings`. Public so the benchmark's ceiling runs the same SQL.
/// Each seat's section and price come from its row ([`EVENT_LAYOUT_SQL`]).
///
/// Seats and claims meet in a `FULL JOIN`, which PostgreSQL can only hash or merge: as a `LEFT
/// JOIN` planned from an `ANALYZE` taken before an on-sale (no tickets for the event, so one was
/// estimated) it became a nested loop comparing every seat with every ticket, and a 10,000-seat
/// map took 4.1 s to load once a few thousand were sold (`scripts/bench --scenarios hot`). Every
/// ticket is for a seat of the event's venue, so the join adds no row; `OFFSET 0` keeps the
/// outer `WHERE` from turning it back into a `LEFT JOIN`.
pub const AVAILABILITY_SQL: &str = "\
SELECT id, row_label, seat_number, status, held_until, row_index, accessible
FROM (
    SELECT s.id, s.row_label, s.seat_number, coalesce(c.status, 'available') AS status,
           c.held_until, s.row_index, s.accessible
    FROM (SELECT * FROM seats WHERE venue_id = (SELECT venue_id FROM events WHERE id = $1)
          ORDER BY row_index, seat_number) s
    FULL JOIN (
        SELECT t.seat_id,
               CASE WHEN b.status <> 'held' THEN 'booked' WHEN b.expires_at > now() THEN 'held' END
                   AS status,
               CASE WHEN b.status = 'held' AND b.expires_at > now() THEN b.expires_at END
                   AS held_until
        FROM tickets t JOIN bookings b ON b.id = t.booking_id
        WHERE t.event_id = $1
    ) c ON c.seat_id = s.id
    OFFSET 0
) map
WHERE id IS NOT NULL
ORDER BY row_index, seat_number";

/// Where a page of the listing starts: strictly after this (starts_at, id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub starts_at: DateTime<Utc>,
    pub id: i64,
}

/// One page of the events still on sale (or not on sale yet), in start order; `cursor` names the position after the page's last event.
pub async fn upcoming_page(
    db: &Pool,
    after: Option<Position>,
    limit: i64,
    cursor: impl Fn(&Event) -> String,
) -> Result<EventPage, ApiError> {
    // One extra row tells whether another page follows.
    let mut items = upcoming(db, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    };
    Ok(EventPage { items, next_cursor })
}

async fn upcoming(db: &Pool, after: Option<Position>, limit: i64) -> Result<Vec<Event>, ApiError> {
    let conn = db.get().await?;
    let rows = conn
        .query_typed(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id
                 WHERE e.starts_at > now()
                   AND coalesce(e.sales_end_at, e.starts_at) > now()
                   AND ($1::timestamptz IS NULL OR (e.starts_at, e.id) > ($1, $2))
                 ORDER BY e.starts_at, e.id
                 LIMIT $3"
            ),
            &[
                (&after.map(|p| p.starts_at), Type::TIMESTAMPTZ),
                (&after.map_or(0, |p| p.id), Type::INT8),
                (&limit, Type::INT8),
            ],
        )
        .await?;
    Ok(rows.iter().map(Event::from_row).collect())
}

pub async fn event(db: &Pool, id: i64) -> Result<Option<Event>, ApiError> {
    let conn = db.get().await?;
    let row = conn
        .query_typed_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM events e JOIN venues v ON v.id = e.venue_id WHERE e.id = $1"),
            &[(&id, Type::INT8)],
        )
        .await?;
    Ok(row.as_ref().map(Event::from_row))
}

/// Every seat of the event's venue, in row order, with its status, and when the earliest live hold
/// lapses (the map changes then without any write). `None`: no such event.
/// A seat whose hold has lapsed is `available`: it is free to whoever asks first.
pub async fn availability(
    db: &Pool,
    event_id: i64,
) -> Result<Option<(Availability, Option<DateTime<Utc>>)>, ApiError> {
    let conn = db.get().await?;
    // Both statements in one round trip (tokio-postgres pipelines them on the connection).
    let event: [(&(dyn ToSql + Sync), Type); 1] = [(&event_id, Type::INT8)];
    let (rows, layout) = tokio::try_join!(
        conn.query_typed(AVAILABILITY_SQL, &event),
        conn.query_typed_opt(EVENT_LAYOUT_SQL, &event),
    )?;
    // Every venue has at least one seat, so an event with no rows does not exist.
    let Some(layout) = layout.filter(|_| !rows.is_empty()) else {
        return Ok(None);
    };
    let layout = Layout(EventLayout::from_row(&layout));
    let seats: Vec<SeatStatus> = rows
        .iter()
        .map(|row| {
            let (category, price_cents) = layout.price(row.get("row_index"));
            SeatStatus {
                id: row.get(0),
                section: layout.section(row.get("row_index")).to_owned(),
                row: row.get(1),
                number: row.get(2),
                category: category.to_owned(),
                price_cents,
                accessible: row.get("accessible"),
                status: row.get(3),
            }
        })
        .collect();
    let next_lapse = rows
        .iter()
        .filter_map(|row| row.get::<_, Option<DateTime<Utc>>>(4))
        .min();
    let count = |status: &str| seats.iter().filter(|s| s.status == status).count();
    let (booked, held) = (count("booked"), count("held"));
    let availability = Availability {
        event_id,
        total_seats: seats.len(),
        available_seats: seats.len() - booked - held,
        booked_seats: booked,
        held_seats: held,
        categories: layout.categories(&seats),
        seats,
    };
    Ok(Some((availability, next_lapse)))
}

/// [`EVENT_LAYOUT_SQL`]'s row: which section and which price category each row of the venue is in.
struct Layout(EventLayout);

impl Layout {
    /// The section of venue row `row`: the last that starts at or before it.
    fn section(&self, row: i32) -> &str {
        let sections = &self.0.sections;
        let after = sections.partition_point(|s| s.first_row <= row);
        after
            .checked_sub(1)
            .map_or(DEFAULT_SECTION, |i| sections[i].name.as_str())
    }

    /// The price category of venue row `row`, and its price.
    fn price(&self, row: i32) -> (&str, i64) {
        let layout = &self.0;
        layout
            .covered
            .binary_search_by_key(&row, |(r, _)| *r)
            .ok()
            .and_then(|i| layout.categories.get(layout.covered[i].1 as usize - 1))
            .map_or((STANDARD, layout.standard_price), |c| {
                (c.name.as_str(), c.price_cents)
            })
    }

    /// Every category in the event's order, then "Standard" if any seat is in it, each with its
    /// available seats.
    fn categories(&self, seats: &[SeatStatus]) -> Vec<CategoryAvailability> {
        let mut categories: Vec<CategoryAvailability> = self
            .0
            .categories
            .iter()
            .map(|c| CategoryAvailability {
                name: c.name.clone(),
                price_cents: c.price_cents,
                available: 0,
            })
            .collect();
        let mut standard = None;
        for seat in seats {
            let entry = match categories.iter_mut().find(|c| c.name == seat.category) {
                Some(entry) => entry,
                None => standard.get_or_insert_with(|| CategoryAvailability {
                    name: STANDARD.to_owned(),
                    price_cents: self.0.standard_price,
                    available: 0,
                }),
            };
            if seat.status == "available" {
                entry.available += 1;
            }
        }
        categories.extend(standard);
        categories
    }
}
