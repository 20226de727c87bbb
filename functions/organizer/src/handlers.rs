use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use seatbook_core::catalog::{Event, EVENT_COLUMNS};
use seatbook_core::db::ResultExt;
use seatbook_core::domain::{
    Description, EventName, MaxSeatsPerUser, PriceCents, SalesWindow, StartsAt, VenueLayout,
    VenueName,
};
use seatbook_core::extract::Json;
use seatbook_core::identity::Organizer;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

#[derive(Deserialize)]
pub struct NewVenue {
    name: String,
    rows: i64,
    cols: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Venue {
    pub id: i64,
    pub name: String,
    pub rows: i32,
    pub cols: i32,
    pub total_seats: i64,
}

/// The venue and its whole seat map in one statement.
const CREATE_VENUE_SQL: &str = "\
WITH venue AS (
    INSERT INTO venues (name, rows, cols) VALUES ($1, $2, $3) RETURNING id, name, rows, cols
), seat AS (
    INSERT INTO seats (venue_id, row_index, row_label, seat_number)
    SELECT venue.id, r.idx, r.label, n
    FROM venue, unnest($4::text[]) WITH ORDINALITY AS r (label, idx), generate_series(1, $3) AS n
    ORDER BY r.idx, n
    RETURNING 1
)
SELECT id, name, rows, cols, (SELECT count(*) FROM seat) AS total_seats FROM venue";

pub async fn create_venue(
    State(state): State<AppState>,
    _: Organizer,
    Json(request): Json<NewVenue>,
) -> Result<impl IntoResponse, ApiError> {
    let name = VenueName::parse(&request.name)?;
    let layout = VenueLayout::parse(request.rows, request.cols)?;
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            CREATE_VENUE_SQL,
            &[
                (&name.as_str(), Type::TEXT),
                (&layout.rows(), Type::INT4),
                (&layout.cols(), Type::INT4),
                (&layout.row_labels(), Type::TEXT_ARRAY),
            ],
        )
        .await
        .on_constraint("venues_name_key", || {
            ApiError::Duplicate(format!("a venue named {:?} already exists", name.as_str()))
        })?;
    let venue = Venue {
        id: row.get("id"),
        name: row.get("name"),
        rows: row.get("rows"),
        cols: row.get("cols"),
        total_seats: row.get("total_seats"),
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/venues/{}", venue.id))],
        axum::Json(venue),
    ))
}

#[derive(Deserialize)]
pub struct NewEvent {
    name: String,
    description: Option<String>,
    starts_at: String,
    venue_id: i64,
    price_cents: i64,
    sales_start_at: Option<String>,
    sales_end_at: Option<String>,
    max_seats_per_user: Option<i64>,
}

pub async fn create_event(
    State(state): State<AppState>,
    _: Organizer,
    Json(request): Json<NewEvent>,
) -> Result<impl IntoResponse, ApiError> {
    let name = EventName::parse(&request.name)?;
    let description = request
        .description
        .as_deref()
        .map(Description::parse)
        .transpose()?;
    let now = Utc::now();
    let starts_at = StartsAt::parse(&request.starts_at, now)?;
    let price = PriceCents::parse(request.price_cents)?;
    let window = SalesWindow::parse(
        request.sales_start_at.as_deref(),
        request.sales_end_at.as_deref(),
        starts_at,
        now,
    )?;
    let cap = request
        .max_seats_per_user
        .map(MaxSeatsPerUser::parse)
        .transpose()?;
    let venue_id = request.venue_id;
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            &format!(
                "WITH e AS (
                    INSERT INTO events (name, description, starts_at, venue_id, price_cents,
                                        sales_start_at, sales_end_at, max_seats_per_user)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *
                 )
                 SELECT {EVENT_COLUMNS} FROM e JOIN venues v ON v.id = e.venue_id"
            ),
            &[
                (&name.as_str(), Type::TEXT),
                (&description.as_ref().map(|d| d.as_str()), Type::TEXT),
                (&starts_at.get(), Type::TIMESTAMPTZ),
                (&venue_id, Type::INT8),
                (&price.get(), Type::INT8),
                (&window.start(), Type::TIMESTAMPTZ),
                (&window.end(), Type::TIMESTAMPTZ),
                (&cap.map(|c| c.get()), Type::INT4),
            ],
        )
        .await
        .on_constraint("events_venue_id_fkey", || {
            ApiError::not_found(format!("venue {venue_id}"))
        })?;
    let event = Event::from_row(&row);
    if let Some(cache) = &state.cache {
        cache.catalog_changed().await;
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/events/{}", event.id))],
        axum::Json(event),
    ))
}
