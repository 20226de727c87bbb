use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use seatbook_core::cached::EventKeys;
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
use utoipa::openapi::schema::{self, ObjectBuilder};
use utoipa::ToSchema;

/// A name as [`VenueName`] and [`EventName`] take it: 1 to 200 characters once trimmed, something
/// besides spaces, and no control characters.
fn name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(200))
        .pattern(Some(
            r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        ))
        .description(Some("Trimmed; unique among venues for a venue."))
}

/// A venue to create: its name and a rectangular seat map.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Main Hall", "rows": 10, "cols": 20}))]
pub struct NewVenue {
    #[schema(schema_with = name)]
    name: String,
    /// Rows, labelled A, B, …
    #[schema(minimum = 1, maximum = 200)]
    rows: i64,
    /// Seats per row, numbered from 1.
    #[schema(minimum = 1, maximum = 200)]
    cols: i64,
}

/// A venue and the size of its seat map.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Venue {
    pub id: i64,
    pub name: String,
    pub rows: i32,
    pub cols: i32,
    pub total_seats: i64,
}

seatbook_core::problems!(VenueProblems:
    BadRequest, Unauthorized, Forbidden, Duplicate, UnsupportedMediaType, PayloadTooLarge,
    Validation, Unavailable, Internal);
seatbook_core::problems!(EventProblems:
    BadRequest, Unauthorized, Forbidden, NotFound, UnsupportedMediaType, PayloadTooLarge,
    Validation, Unavailable, Internal);

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

/// Create a venue
///
/// The venue and its whole seat map, in one statement. Organizers only.
#[utoipa::path(
    post,
    path = "/api/v1/venues",
    operation_id = "create_venue",
    tag = "organizer",
    request_body = NewVenue,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The venue.", body = Venue,
            headers(("Location" = String, description = "The venue's URL.")),
            links(
                ("CreateEvent" = (
                    operation_id = "create_event",
                    request_body = json!({"venue_id": "$response.body#/id"}),
                    description = "Put an event on sale in this venue.",
                )),
            ),
        ),
        VenueProblems,
    ),
)]
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

/// An event to put on sale.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Concert",
    "description": "An evening of music",
    "starts_at": "2031-06-01T19:30:00Z",
    "venue_id": 1,
    "price_cents": 2500,
    "max_seats_per_user": 4
}))]
pub struct NewEvent {
    #[schema(schema_with = name)]
    name: String,
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// When the event starts: in the future.
    #[schema(format = DateTime)]
    starts_at: String,
    venue_id: i64,
    /// The price of one seat, in cents.
    #[schema(minimum = 0, maximum = 100_000_000)]
    price_cents: i64,
    /// When the sale opens (absent: at once); before it closes.
    #[schema(format = DateTime)]
    sales_start_at: Option<String>,
    /// When the sale closes (absent: when the event starts); in the future, not after `starts_at`.
    #[schema(format = DateTime)]
    sales_end_at: Option<String>,
    /// Seats one person may have at once (confirmed and held); absent: no cap.
    #[schema(minimum = 1, maximum = 10_000)]
    max_seats_per_user: Option<i64>,
}

/// Put an event on sale
///
/// In an existing venue, from `sales_start_at` (or now) until `sales_end_at` (or the start).
/// Organizers only.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    operation_id = "create_event",
    tag = "organizer",
    request_body = NewEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The event.", body = Event,
            headers(("Location" = String, description = "The event's URL.")),
            links(
                ("GetEvent" = (operation_id = "get_event", parameters(("id" = "$response.body#/id")))),
                ("GetAvailability" = (operation_id = "get_availability", parameters(("id" = "$response.body#/id")))),
            ),
        ),
        EventProblems,
    ),
)]
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
        // Cached listings, and cached "no such event"s, are stale from now on.
        cache.bump(&cache.keys().catalog_generation(), |_| {}).await;
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/events/{}", event.id))],
        axum::Json(event),
    ))
}
