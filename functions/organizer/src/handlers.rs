use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use seatbook_core::cached::EventKeys;
use seatbook_core::catalog::{Event, EVENT_COLUMNS};
use seatbook_core::db::ResultExt;
use seatbook_core::domain::{
    CategoryRequest, Description, EventName, MaxSeatsPerUser, PriceCategories, PriceCents,
    SalesWindow, SeatMap, Section, StartsAt, VenueLayout, VenueName, VenueSection as SectionRows,
    WaitingRoom, WaitlistOfferSeconds,
};
use seatbook_core::extract::Json;
use seatbook_core::identity::Organizer;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::types::Type;
use utoipa::openapi::schema::{self, AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

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

/// A venue to create: its name, and either one rectangle of seats (`rows` and `cols`) or its
/// `sections`, front to back.
///
/// Read into this shape, then parsed into a [`SeatMap`]; the document states the "exactly one of"
/// rule ([`new_venue_schema`]) that serde cannot.
#[derive(Deserialize)]
pub struct NewVenue {
    name: String,
    #[serde(default, deserialize_with = "given")]
    rows: Option<Option<i64>>,
    #[serde(default, deserialize_with = "given")]
    cols: Option<Option<i64>>,
    #[serde(default, deserialize_with = "given")]
    sections: Option<Option<Vec<NewSection>>>,
}

/// A member that may be left out but, when given, is not `null`: `None` when absent, `Some(None)`
/// for `null` (refused by [`seat_map`]).
fn given<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// [`NewVenue`]'s members, as the document lists them (the doc comment is the schema's).
/// The members of a venue to create.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used.
struct NewVenueMembers {
    #[schema(schema_with = name)]
    name: String,
    /// Rows, labelled A, B, … (with `cols`, instead of `sections`: one section, "Main").
    #[schema(minimum = 1, maximum = 200, required = false)]
    rows: i64,
    /// Seats per row, numbered from 1 (with `rows`).
    #[schema(minimum = 1, maximum = 200, required = false)]
    cols: i64,
    /// The venue's sections, front to back (instead of `rows` and `cols`): names unique in the
    /// venue (ignoring case), at most 40,000 seats in all.
    #[schema(min_items = 1, max_items = 20, required = false)]
    sections: Vec<NewSection>,
}

/// A venue's request schema: [`NewVenueMembers`], with `name` and exactly one of `sections` or
/// the pair `rows` and `cols` (so: `sections` or `rows`, and `sections` or `cols`, each exactly
/// once).
fn new_venue_schema() -> RefOr<Schema> {
    let exactly_one_of = |a: &str, b: &str| {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(schema::SchemaType::AnyValue)
                    .required(a),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(schema::SchemaType::AnyValue)
                    .required(b),
            )
    };
    let RefOr::T(Schema::Object(members)) = <NewVenueMembers as PartialSchema>::schema() else {
        unreachable!("a struct's schema is an object")
    };
    AllOfBuilder::new()
        .item(members)
        .item(exactly_one_of("sections", "rows"))
        .item(exactly_one_of("sections", "cols"))
        .description(Some(
            "A venue to create: its name, and either one rectangle of seats (`rows` and `cols`) \
             or its `sections`, front to back; exactly one of the two.",
        ))
        .examples([json!({"name": "Main Hall", "rows": 10, "cols": 20})])
        .into()
}

impl PartialSchema for NewVenue {
    fn schema() -> RefOr<Schema> {
        new_venue_schema()
    }
}

impl ToSchema for NewVenue {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((NewSection::name().into(), NewSection::schema()));
        NewSection::schemas(schemas);
    }
}

/// One section of a venue: its own grid, rows A, B, … within it.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Stalls", "rows": 10, "cols": 20, "accessible": [{"row": "A", "number": 1}]}))]
pub struct NewSection {
    /// Unique in the venue (ignoring case); 1 to 100 characters once trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    #[schema(minimum = 1, maximum = 200)]
    rows: i64,
    #[schema(minimum = 1, maximum = 200)]
    cols: i64,
    /// The wheelchair places: seats of this section, each once.
    #[serde(default)]
    accessible: Vec<SeatPlace>,
}

/// A seat named by its row (within its section) and number.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeatPlace {
    #[schema(schema_with = row_label)]
    pub row: String,
    #[schema(minimum = 1)]
    pub number: i64,
}

/// A venue and its seat map.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Venue {
    pub id: i64,
    pub name: String,
    /// Rows in all its sections.
    pub rows: i32,
    /// Seats in its widest row.
    pub cols: i32,
    pub total_seats: i64,
    /// Front to back.
    pub sections: Vec<VenueSection>,
}

/// A section of a venue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VenueSection {
    pub name: String,
    pub rows: i32,
    pub cols: i32,
    /// Its wheelchair places.
    pub accessible: Vec<SeatPlace>,
}

seatbook_core::problems!(VenueProblems:
    BadRequest, Unauthorized, Forbidden, Duplicate, UnsupportedMediaType, PayloadTooLarge,
    Validation, Unavailable, Internal);
seatbook_core::problems!(EventProblems:
    BadRequest, Unauthorized, Forbidden, NotFound, UnsupportedMediaType, PayloadTooLarge,
    Validation, Unavailable, Internal);

/// The venue, its sections and its whole seat map in one statement. `$4`..`$7`: each section's
/// name, first row (as the venue counts rows), rows and seats per row; `$8`, `$9`: each row of the
/// venue's label and seats; `$10`, `$11`: the wheelchair places' venue rows and seat numbers.
const CREATE_VENUE_SQL: &str = "\
WITH venue AS (
    INSERT INTO venues (name, rows, cols) VALUES ($1, $2, $3) RETURNING id, name, rows, cols
), section AS (
    INSERT INTO sections (venue_id, position, name, first_row, rows, cols)
    SELECT venue.id, s.position, s.name, s.first_row, s.rows, s.cols
    FROM venue, unnest($4::text[], $5::int4[], $6::int4[], $7::int4[])
                WITH ORDINALITY AS s (name, first_row, rows, cols, position)
    RETURNING 1
), seat AS (
    INSERT INTO seats (venue_id, row_index, row_label, seat_number, accessible)
    SELECT venue.id, r.idx, r.label, n,
           (r.idx, n) IN (SELECT * FROM unnest($10::int4[], $11::int4[]))
    FROM venue, unnest($8::text[], $9::int4[]) WITH ORDINALITY AS r (label, cols, idx),
         generate_series(1, r.cols) AS n
    ORDER BY r.idx, n
    RETURNING 1
)
SELECT id, name, rows, cols, (SELECT count(*) FROM seat) AS total_seats,
       (SELECT count(*) FROM section) AS sections
FROM venue";

/// Create a venue
///
/// The venue, its sections and its whole seat map, in one statement: either one rectangle of
/// `rows` × `cols` (one section, "Main"), or `sections`, front to back, each its own grid with rows
/// A, B, … and maybe wheelchair places. Organizers only.
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
    let map = seat_map(request.rows, request.cols, request.sections)?;
    let names: Vec<&str> = map.sections().iter().map(|s| s.name().as_str()).collect();
    let rows: Vec<i32> = map.sections().iter().map(|s| s.layout().rows()).collect();
    let cols: Vec<i32> = map.sections().iter().map(|s| s.layout().cols()).collect();
    let (row_labels, row_cols) = map.venue_rows();
    let (accessible_rows, accessible_numbers) = map.accessible_places();
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            CREATE_VENUE_SQL,
            &[
                (&name.as_str(), Type::TEXT),
                (&map.rows(), Type::INT4),
                (&map.widest(), Type::INT4),
                (&names, Type::TEXT_ARRAY),
                (&map.first_rows(), Type::INT4_ARRAY),
                (&rows, Type::INT4_ARRAY),
                (&cols, Type::INT4_ARRAY),
                (&row_labels, Type::TEXT_ARRAY),
                (&row_cols, Type::INT4_ARRAY),
                (&accessible_rows, Type::INT4_ARRAY),
                (&accessible_numbers, Type::INT4_ARRAY),
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
        sections: map
            .sections()
            .iter()
            .map(|section| VenueSection {
                name: section.name().as_str().to_owned(),
                rows: section.layout().rows(),
                cols: section.layout().cols(),
                accessible: section
                    .accessible()
                    .map(|(row, number)| SeatPlace {
                        row,
                        number: number.into(),
                    })
                    .collect(),
            })
            .collect(),
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/venues/{}", venue.id))],
        axum::Json(venue),
    ))
}

/// The seat map a venue request describes: `sections`, or `rows` and `cols` (one section); a
/// request with both, or neither, or half a rectangle, does not have the documented shape (400).
fn seat_map(
    rows: Option<Option<i64>>,
    cols: Option<Option<i64>>,
    sections: Option<Option<Vec<NewSection>>>,
) -> Result<SeatMap, ApiError> {
    for (member, null) in [
        ("rows", rows == Some(None)),
        ("cols", cols == Some(None)),
        ("sections", matches!(sections, Some(None))),
    ] {
        if null {
            return Err(ApiError::BadRequest(format!(
                "{member} must not be null: give either sections, or rows and cols, and leave \
                 the others out"
            )));
        }
    }
    let (rows, cols, sections) = (rows.flatten(), cols.flatten(), sections.flatten());
    match (rows, cols, sections) {
        (Some(rows), Some(cols), None) => Ok(SeatMap::one_grid(VenueLayout::parse(rows, cols)?)),
        (None, None, Some(sections)) => {
            let sections = sections
                .iter()
                .map(|s| {
                    let places: Vec<(&str, i64)> = s
                        .accessible
                        .iter()
                        .map(|p| (p.row.as_str(), p.number))
                        .collect();
                    Section::parse(&s.name, s.rows, s.cols, &places)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SeatMap::parse(sections)?)
        }
        (_, _, Some(_)) => Err(ApiError::BadRequest(
            "a venue has either sections or rows and cols, not both".to_owned(),
        )),
        _ => Err(ApiError::BadRequest(
            "a venue needs either sections, or rows and cols (both)".to_owned(),
        )),
    }
}

/// An event to put on sale.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Concert",
    "description": "An evening of music",
    "starts_at": "2031-06-01T19:30:00Z",
    "venue_id": 1,
    "price_cents": 2500,
    "max_seats_per_user": 4,
    "categories": [
        {"name": "Front", "price_cents": 4500, "section": "Main", "rows": ["A", "B"]}
    ]
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
    /// The price of a seat no category covers (category "Standard"), in cents: every seat's
    /// price when there are no `categories`.
    #[schema(minimum = 0, maximum = 100_000_000)]
    price_cents: i64,
    /// Price categories, in order: a seat is in the first one that covers it, and in "Standard"
    /// (at `price_cents`) when none does. Names unique in the event (ignoring case).
    #[schema(max_items = 50)]
    categories: Option<Vec<NewCategory>>,
    /// When the sale opens (absent: at once); before it closes.
    #[schema(format = DateTime)]
    sales_start_at: Option<String>,
    /// When the sale closes (absent: when the event starts); in the future, not after `starts_at`.
    #[schema(format = DateTime)]
    sales_end_at: Option<String>,
    /// Seats one person may have at once (confirmed and held); absent: no cap.
    #[schema(minimum = 1, maximum = 10_000)]
    max_seats_per_user: Option<i64>,
    /// How long a waitlist offer of this event's seats lasts, in seconds (absent: 900).
    #[schema(minimum = 10, maximum = 86_400)]
    waitlist_offer_seconds: Option<i64>,
    /// A waiting room for the on-sale; absent: none.
    waiting_room: Option<NewWaitingRoom>,
}

/// An event's waiting room: who may book is admitted from a queue, in order, at most
/// `admit_per_minute` a minute and never more at once than `max_admitted_per_free_seat` times the
/// free seats; an admission lasts `admission_ttl_seconds`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"admit_per_minute": 600, "admission_ttl_seconds": 600}))]
pub struct NewWaitingRoom {
    #[schema(minimum = 1, maximum = 1_000_000)]
    admit_per_minute: i64,
    #[schema(minimum = 60, maximum = 3600, default = 600)]
    admission_ttl_seconds: Option<i64>,
    #[schema(minimum = 1, maximum = 100, default = 2)]
    max_admitted_per_free_seat: Option<i64>,
}

/// A price category: a section of the venue, or some of its rows, at a price.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Front", "price_cents": 4500, "section": "Main", "rows": ["A", "B"]}))]
pub struct NewCategory {
    /// 1 to 100 characters once trimmed; not "Standard", which names the seats no category covers.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// The price of each of its seats, in cents.
    #[schema(minimum = 0, maximum = 100_000_000)]
    price_cents: i64,
    /// The name of a section of the event's venue.
    section: String,
    #[schema(schema_with = row_labels)]
    rows: Option<Vec<String>>,
}

/// [`NewCategory::rows`]: 1 or more row labels, or null.
fn row_labels() -> schema::Array {
    schema::ArrayBuilder::new()
        .schema_type(schema::SchemaType::from_iter([
            schema::Type::Array,
            schema::Type::Null,
        ]))
        .items(row_label())
        .min_items(Some(1))
        .description(Some(
            "Rows of that section (labels as in the section: A, B, …), each once; absent or null: \
             the whole section.",
        ))
        .build()
}

/// A row's label within its section: A, B, …, Z, AA, …
fn row_label() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(schema::Type::String)
        .pattern(Some("^[A-Z]{1,3}$"))
}

/// Put an event on sale
///
/// In an existing venue, from `sales_start_at` (or now) until `sales_end_at` (or the start), at
/// one price or in price `categories` (each naming a section of the venue and maybe some of its
/// rows). Organizers only.
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
    let offer_seconds = request
        .waitlist_offer_seconds
        .map(WaitlistOfferSeconds::parse)
        .transpose()?
        .unwrap_or(WaitlistOfferSeconds::DEFAULT);
    let room = request
        .waiting_room
        .as_ref()
        .map(|r| {
            WaitingRoom::parse(
                r.admit_per_minute,
                r.admission_ttl_seconds,
                r.max_admitted_per_free_seat,
            )
        })
        .transpose()?;
    let venue_id = request.venue_id;
    let conn = state.db.get().await?;
    let categories = match request.categories.as_deref() {
        None | Some([]) => PriceCategories::default(),
        Some(requested) => {
            let venue = venue_sections(&conn, venue_id).await?;
            let requested: Vec<CategoryRequest> = requested
                .iter()
                .map(|c| CategoryRequest {
                    name: &c.name,
                    price_cents: c.price_cents,
                    section: &c.section,
                    rows: c.rows.as_deref(),
                })
                .collect();
            PriceCategories::parse(&requested, &venue)?
        }
    };
    let list = categories.categories();
    let names: Vec<&str> = list.iter().map(|c| c.name().as_str()).collect();
    let prices: Vec<i64> = list.iter().map(|c| c.price().get()).collect();
    let sections: Vec<&str> = list.iter().map(|c| c.section()).collect();
    // Row labels are capital letters, so a comma joins them safely (arrays of text arrays must be
    // rectangular in PostgreSQL).
    let rows: Vec<Option<String>> = list.iter().map(|c| c.rows().map(|r| r.join(","))).collect();
    let (covered_rows, row_categories) = categories.row_categories();
    let row = conn
        .query_typed_one(
            &format!(
                "WITH e AS (
                    INSERT INTO events (name, description, starts_at, venue_id, price_cents,
                                        sales_start_at, sales_end_at, max_seats_per_user,
                                        waitlist_offer_seconds, room_admit_per_minute,
                                        room_admission_ttl_seconds,
                                        room_max_admitted_per_free_seat)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $15, $16, $17, $18) RETURNING *
                 ), category AS (
                    INSERT INTO price_categories (event_id, position, name, price_cents, section,
                                                  row_labels)
                    SELECT e.id, c.position, c.name, c.price_cents, c.section,
                           string_to_array(c.row_labels, ',')
                    FROM e, unnest($9::text[], $10::int8[], $11::text[], $12::text[])
                            WITH ORDINALITY AS c (name, price_cents, section, row_labels, position)
                 ), category_row AS (
                    INSERT INTO category_rows (event_id, row_index, category_position)
                    SELECT e.id, r.row_index, r.position
                    FROM e, unnest($13::int4[], $14::int4[]) AS r (row_index, position)
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
                (&names, Type::TEXT_ARRAY),
                (&prices, Type::INT8_ARRAY),
                (&sections, Type::TEXT_ARRAY),
                (&rows, Type::TEXT_ARRAY),
                (&covered_rows, Type::INT4_ARRAY),
                (&row_categories, Type::INT4_ARRAY),
                (&offer_seconds.get(), Type::INT4),
                (&room.map(|r| r.admit_per_minute()), Type::INT4),
                (&room.map(|r| r.admission_ttl_seconds()), Type::INT4),
                (&room.map(|r| r.max_admitted_per_free_seat()), Type::INT4),
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

/// The sections of venue `id`, front to back, as price categories name them; 404 for no venue.
async fn venue_sections(
    conn: &tokio_postgres::Client,
    id: i64,
) -> Result<Vec<SectionRows>, ApiError> {
    let rows = conn
        .query_typed(
            "SELECT name, first_row, rows FROM sections WHERE venue_id = $1 ORDER BY position",
            &[(&id, Type::INT8)],
        )
        .await?;
    if rows.is_empty() {
        // Every venue has a section (V13 gave the older ones theirs).
        return Err(ApiError::not_found(format!("venue {id}")));
    }
    Ok(rows
        .iter()
        .map(|row| SectionRows {
            name: row.get("name"),
            first_row: row.get("first_row"),
            rows: row.get("rows"),
        })
        .collect())
}
