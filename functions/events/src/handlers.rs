use crate::store::{self, Position};
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use seatbook_core::catalog::Event;
use seatbook_core::extract::{Path, Query};
use seatbook_core::http::{json_body, json_response};
use seatbook_core::{ApiError, AppState};
use serde::Deserialize;

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
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
            || async move {
                let page = store::upcoming_page(&db, after, limit, encode_cursor).await?;
                // The page changes when the first of its sales closes (that event drops out of
                // the listing without any write): cached no longer than until then.
                let first_close = page.items.iter().map(|event| event.sales_end_at).min();
                let mut loaded = json_body(Some(page))?;
                loaded.max_age =
                    first_close.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
                Ok(loaded)
            },
        )
        .await?;
    Ok(json_response(body.ok_or_else(|| {
        ApiError::internal("a page always exists")
    })?))
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let db = state.db.clone();
    let body = state
        .read_through(
            |keys| keys.event(id),
            || async move { json_body(store::event(&db, id).await?) },
        )
        .await?;
    found(body, id)
}

pub async fn availability(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let db = state.db.clone();
    let body = state
        .read_through(
            |keys| keys.availability(id),
            || async move {
                let Some((availability, next_lapse)) = store::availability(&db, id).await? else {
                    return json_body(None::<()>);
                };
                let mut loaded = json_body(Some(availability))?;
                // Cached no longer than until the first hold lapses and its seats free up.
                loaded.max_age =
                    next_lapse.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
                Ok(loaded)
            },
        )
        .await?;
    found(body, id)
}

fn found(body: seatbook_core::cache::Body, event_id: i64) -> Result<Response, ApiError> {
    body.map(json_response)
        .ok_or_else(|| ApiError::not_found(format!("event {event_id}")))
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
