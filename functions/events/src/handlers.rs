use crate::store::{self, Position};
use crate::views::{Availability, EventPage};
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use seatbook_cache::{CacheKey, Keys, Loaded};
use seatbook_core::cached::EventKeys;
use seatbook_core::catalog::Event;
use seatbook_core::conditional::{Conditional, ConditionalHeaders};
use seatbook_core::db::Pool;
use seatbook_core::extract::{Path, Query};
use seatbook_core::http::json_body;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::IntoParams;

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// Paging through the listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Events per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// Where the page starts: a previous page's `next_cursor`, exactly as given.
    #[param(pattern = r"^(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})$")]
    cursor: Option<String>,
}

seatbook_core::problems!(ListProblems: BadRequest, Unavailable, Internal);
seatbook_core::problems!(ShowProblems: BadRequest, NotFound, Unavailable, Internal);

/// Upcoming events, a page at a time
///
/// Events whose sale has not closed yet, in start order (then by id). A page's `next_cursor`,
/// passed as `cursor`, gives the next page; an event created meanwhile does not shift later pages.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "list_events",
    tag = "events",
    params(ListParams, ("If-None-Match" = Option<String>, Header, description = "An `ETag` this read answered before: 304 with no body while it still holds.")),
    responses(
        (status = 200, description = "A page of events.", body = EventPage,
            headers(
                ("ETag" = String, description = "The representation's tag (weak: the same for gzip and plain), for `If-None-Match`."),
                ("Vary" = String, description = "`accept-encoding, seatbook-event-version`."),
            ),
            links(
                ("GetFirstAvailability" = (
                    operation_id = "get_availability",
                    parameters(("id" = "$response.body#/items/0/id")),
                    description = "The seat map of the page's first event.",
                )),
            ),
        ),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`.",
            headers(("ETag" = String, description = "The representation's tag."))),
        ListProblems,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    conditional: Conditional,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let conditional = conditional.without_event_version();
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = params.cursor;
    let after = cursor.as_deref().map(decode_cursor).transpose()?;
    let db = state.db.clone();
    let body = state
        .read_through(
            |keys| keys.listing(limit, cursor.as_deref()),
            conditional.accept,
            || async move {
                let page = store::upcoming_page(&db, after, limit, encode_cursor).await?;
                // The page changes when the first of its sales closes (that event drops out of
                // the listing without any write): cached no longer than until then.
                let first_close = page.items.iter().map(|event| event.sales_end_at).min();
                json_until(page, first_close)
            },
        )
        .await?;
    Ok(conditional.respond(body.ok_or_else(|| ApiError::internal("a page always exists"))?))
}

/// One event
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    operation_id = "get_event",
    tag = "events",
    params(("id" = i64, Path, description = "The event's id."), ConditionalHeaders),
    responses(
        (status = 200, description = "The event.", body = Event,
            headers(
                ("ETag" = String, description = "The representation's tag (weak: the same for gzip and plain), for `If-None-Match`."),
                ("Vary" = String, description = "`accept-encoding, seatbook-event-version`."),
            ),
        ),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`.",
            headers(("ETag" = String, description = "The representation's tag."))),
        ShowProblems,
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    conditional: Conditional,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    read_event(
        &state,
        &conditional,
        id,
        |keys| keys.event(id),
        |db| async move { json_body(store::event(&db, id).await?) },
    )
    .await
}

/// An event's seat map
///
/// Every seat of the event's venue in row order, with its status. A seat whose hold has lapsed is
/// `available`.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}/availability",
    operation_id = "get_availability",
    tag = "events",
    params(("id" = i64, Path, description = "The event's id."), ConditionalHeaders),
    responses(
        (status = 200, description = "The event's seats.", body = Availability,
            headers(
                ("ETag" = String, description = "The representation's tag (weak: the same for gzip and plain), for `If-None-Match`."),
                ("Vary" = String, description = "`accept-encoding, seatbook-event-version`."),
            ),
            links(
                ("HoldSeat" = (
                    operation_id = "hold_seats",
                    request_body = json!({"event_id": "$response.body#/event_id", "seat_ids": ["$response.body#/seats/0/id"]}),
                    description = "Hold the map's first seat.",
                )),
                ("BookSeat" = (
                    operation_id = "create_booking",
                    request_body = json!({"event_id": "$response.body#/event_id", "seat_ids": ["$response.body#/seats/0/id"]}),
                    description = "Book the map's first seat.",
                )),
            ),
        ),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`.",
            headers(("ETag" = String, description = "The representation's tag."))),
        ShowProblems,
    ),
)]
pub async fn availability(
    State(state): State<AppState>,
    conditional: Conditional,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    read_event(
        &state,
        &conditional,
        id,
        |keys| keys.availability(id),
        |db| async move {
            let Some((availability, next_lapse)) = store::availability(&db, id).await? else {
                return json_body(None::<()>);
            };
            // Cached no longer than until the first hold lapses and its seats free up.
            json_until(availability, next_lapse)
        },
    )
    .await
}

/// Something of event `id` (cached under `key`) as `conditional` asks for it: `load` reads it from
/// PostgreSQL when the cache cannot serve it, and finds nothing (a 404) for an unknown event.
async fn read_event<F, Fut>(
    state: &AppState,
    conditional: &Conditional,
    id: i64,
    key: impl FnOnce(&Keys) -> CacheKey,
    load: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Pool) -> Fut,
    Fut: Future<Output = Result<Loaded, ApiError>>,
{
    let db = state.db.clone();
    let body = state
        .read_through(key, conditional.accept, || load(db))
        .await?;
    body.map(|served| conditional.respond(served))
        .ok_or_else(|| ApiError::not_found(format!("event {id}")))
}

/// `value` as a loaded JSON body that changes by itself at `at` (a sale closing, a hold lapsing).
fn json_until(value: impl Serialize, at: Option<DateTime<Utc>>) -> Result<Loaded, ApiError> {
    let mut loaded = json_body(Some(value))?;
    loaded.max_age = until(at);
    Ok(loaded)
}

/// A loaded value's `max_age` when it changes by itself at `at`: no bound of its own for `None`,
/// zero once `at` has passed.
fn until(at: Option<DateTime<Utc>>) -> Option<std::time::Duration> {
    at.map(|at| (at - Utc::now()).to_std().unwrap_or_default())
}

/// Cursors are opaque to clients: `<starts_at in µs since the epoch>.<event id>`.
fn encode_cursor(event: &Event) -> String {
    format!("{}.{}", event.starts_at.timestamp_micros(), event.id)
}

fn decode_cursor(raw: &str) -> Result<Position, ApiError> {
    let invalid = || ApiError::BadRequest("cursor is not one this API returned".to_owned());
    let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
    let starts_at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = id.parse().map_err(|_| invalid())?;
    // Only the exact spelling the API issues: `+1.5`, `01.5` and `1.5` name one position, and
    // each spelling would otherwise be a cache key of its own (a free cache miss per variant).
    if format!("{}.{id}", starts_at.timestamp_micros()) != raw {
        return Err(invalid());
    }
    Ok(Position { starts_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_rejected() {
        let event = Event {
            id: 42,
            name: "n".into(),
            description: None,
            starts_at: DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap(),
            venue_id: 1,
            venue_name: "v".into(),
            price_cents: 0,
            sales_start_at: None,
            sales_end_at: DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap(),
            max_seats_per_user: None,
            waitlist_offer_seconds: 900,
            waiting_room: None,
        };
        let position = decode_cursor(&encode_cursor(&event)).unwrap();
        assert_eq!((position.starts_at, position.id), (event.starts_at, 42));
        for bad in [
            "",
            "abc",
            "1.x",
            "x.1",
            "99999999999999999999.1",
            // Spellings of a real position that the API never issues.
            "+1900000000123456.42",
            "01900000000123456.42",
            "1900000000123456.042",
            "1900000000123456.+42",
            " 1900000000123456.42",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
