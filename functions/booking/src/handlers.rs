use crate::admission::{self, AdmissionHeader};
use crate::claim::{self, Attempts, Claim};
use crate::idempotency::{self, NextAction, Stored};
use crate::lifecycle::{self, Confirmation};
use crate::marks::{self, MarkChange};
use crate::pick;
use crate::reads;
use crate::seatmap;
use crate::views::{Booking, BookingStatus};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use seatbook_core::conditional::EVENT_VERSION_HEADER;
use seatbook_core::domain::{SeatSelection, MAX_SEATS_PER_BOOKING};
use seatbook_core::error::PROBLEM_JSON;
use seatbook_core::extract::{Json, Path, Query};
use seatbook_core::identity::Caller;
use seatbook_core::metrics;
use seatbook_core::{ApiError, AppState};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

/// `Idempotency-Key`, as an operation's parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // only its documentation is used: the handler reads the header map
struct IdempotencyKey {
    /// A key of the caller's choosing: a retry with the same key and the same request gets the
    /// first response again (a 5xx is not kept). The same key with another request is a 422.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    key: Option<String>,
}

/// The seats a booking or a hold asks for: `seat_ids`, or `best_available` (exactly one).
///
/// Read into this shape, then checked; the document states the "exactly one of" rule
/// ([`new_booking_schema`]) that serde cannot.
#[derive(Deserialize)]
pub struct NewBooking {
    event_id: i64,
    #[serde(default, deserialize_with = "given")]
    seat_ids: Option<Option<Vec<i64>>>,
    #[serde(default, deserialize_with = "given")]
    best_available: Option<Option<BestAvailable>>,
}

/// A member that may be left out but, when given, is not `null`: `None` when absent, `Some(None)`
/// for `null` (a 400).
fn given<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The best seats free, chosen by the API: side by side in one row if any such block is free
/// (preferring one that leaves no single seat stranded), nearest the front, then the row's centre.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"count": 4, "category": "Stalls"}))]
pub struct BestAvailable {
    /// How many seats.
    #[schema(minimum = 1, maximum = 10)]
    count: i64,
    /// Only seats of this price category ("Standard": the seats no category covers).
    category: Option<String>,
    /// Only seats of this section of the venue.
    section: Option<String>,
    /// `true`: only wheelchair places; otherwise (the default) no wheelchair place.
    accessible: Option<bool>,
}

// [`NewBooking`]'s members, as the document lists them (the doc comment is the schema's).
/// The members of a booking or a hold.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used.
struct NewBookingMembers {
    event_id: i64,
    #[schema(schema_with = seatbook_core::openapi::seat_ids, required = false)]
    seat_ids: Vec<i64>,
    #[schema(required = false)]
    best_available: BestAvailable,
}

/// A booking's request schema: [`NewBookingMembers`], with `event_id` and exactly one of
/// `seat_ids` and `best_available`.
fn new_booking_schema() -> RefOr<Schema> {
    let RefOr::T(Schema::Object(members)) = <NewBookingMembers as PartialSchema>::schema() else {
        unreachable!("a struct's schema is an object")
    };
    let required = |member: &str| {
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .required(member)
    };
    AllOfBuilder::new()
        .item(members)
        .item(
            OneOfBuilder::new()
                .item(required("seat_ids"))
                .item(required("best_available")),
        )
        .description(Some(
            "The seats a booking or a hold asks for: the event, and either its `seat_ids` or \
             `best_available` (the API chooses); exactly one of the two.",
        ))
        .examples([
            json!({"event_id": 1, "seat_ids": [1, 2]}),
            json!({"event_id": 1, "best_available": {"count": 2}}),
        ])
        .into()
}

impl PartialSchema for NewBooking {
    fn schema() -> RefOr<Schema> {
        new_booking_schema()
    }
}

impl ToSchema for NewBooking {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((BestAvailable::name().into(), BestAvailable::schema()));
        BestAvailable::schemas(schemas);
    }
}

/// What a [`NewBooking`] asks for, checked.
enum Asked {
    Seats(SeatSelection),
    Best(pick::Wanted),
}

impl NewBooking {
    /// The request's identity for its `Idempotency-Key`, and what it asks for: 400 unless exactly
    /// one of `seat_ids` and `best_available` is given (and not `null`), 422 for a selection out
    /// of bounds.
    fn asked(self, hold: bool) -> Result<(String, Asked), ApiError> {
        match (self.seat_ids, self.best_available) {
            (Some(Some(seat_ids)), None) => {
                let fingerprint = idempotency::fingerprint(hold, self.event_id, &seat_ids);
                Ok((fingerprint, Asked::Seats(SeatSelection::parse(seat_ids)?)))
            }
            (None, Some(Some(best))) => {
                let count = usize::try_from(best.count)
                    .ok()
                    .filter(|n| (1..=MAX_SEATS_PER_BOOKING).contains(n))
                    .ok_or_else(|| {
                        ApiError::Unprocessable(format!(
                            "best_available.count must be 1 to {MAX_SEATS_PER_BOOKING}, not {}",
                            best.count
                        ))
                    })?;
                let wanted = pick::Wanted {
                    count,
                    category: best.category,
                    section: best.section,
                    accessible: best.accessible.unwrap_or(false),
                };
                let fingerprint = idempotency::best_fingerprint(hold, self.event_id, &wanted);
                Ok((fingerprint, Asked::Best(wanted)))
            }
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "give seat_ids or best_available, not both".to_owned(),
            )),
            _ => Err(ApiError::BadRequest(
                "give seat_ids (a list of seats) or best_available (an object)".to_owned(),
            )),
        }
    }
}

seatbook_core::problems!(ClaimProblems:
    BadRequest, Unauthorized, AdmissionRequired, NotFound, SeatsTaken, NotEnoughSeats, SalesClosed, SeatLimit,
    UnsupportedMediaType, PayloadTooLarge, Validation, RateLimited, Unavailable, Internal);
seatbook_core::problems!(ListProblems: BadRequest, Unauthorized, Unavailable, Internal);
seatbook_core::problems!(ShowProblems: Unauthorized, NotFound, Unavailable, Internal);
seatbook_core::problems!(CancelProblems: Unauthorized, NotFound, RateLimited, Unavailable, Internal);
seatbook_core::problems!(ConfirmProblems:
    Unauthorized, NotFound, Gone, SalesClosed, RateLimited, Unavailable, Internal);

/// Book seats
///
/// All the requested seats, confirmed at once, or none: a 409 names the seats someone else has.
/// Under an `Idempotency-Key`, a retried request gets the first one's response again.
#[utoipa::path(
    post,
    path = "/api/v1/bookings",
    operation_id = "create_booking",
    tag = "booking",
    params(IdempotencyKey, AdmissionHeader),
    request_body = NewBooking,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The booking, confirmed.", body = Booking,
            headers(
                ("Location" = String, description = "The booking's URL."),
                ("Seatbook-Event-Version" = i64, description = "The event's version after this write: sent back on reads of the event, it makes them show the write."),
                ("Idempotent-Replayed" = String, description = "`true` on the stored response to an earlier request with the same `Idempotency-Key`."),
            ),
            links(
                ("GetBooking" = (operation_id = "get_booking", parameters(("id" = "$response.body#/id")))),
                ("CancelBooking" = (operation_id = "cancel_booking", parameters(("id" = "$response.body#/id")))),
            ),
        ),
        ClaimProblems,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(request): Json<NewBooking>,
) -> Result<Response, ApiError> {
    claim_seats(&state, &caller, &headers, request, None).await
}

/// Hold seats
///
/// Reserves the seats for the caller until `expires_at` (`HOLD_TTL_SECONDS` after now); confirming
/// the hold before then makes it a booking. All the seats or none, as a booking.
#[utoipa::path(
    post,
    path = "/api/v1/holds",
    operation_id = "hold_seats",
    tag = "booking",
    params(IdempotencyKey, AdmissionHeader),
    request_body = NewBooking,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The hold: a booking with status `held`.", body = Booking,
            headers(
                ("Location" = String, description = "The hold's URL (holds are bookings)."),
                ("Seatbook-Event-Version" = i64, description = "The event's version after this write: sent back on reads of the event, it makes them show the write."),
                ("Idempotent-Replayed" = String, description = "`true` on the stored response to an earlier request with the same `Idempotency-Key`."),
            ),
            links(
                ("ConfirmHold" = (operation_id = "confirm_hold", parameters(("id" = "$response.body#/id")))),
                ("CancelHold" = (operation_id = "cancel_booking", parameters(("id" = "$response.body#/id")))),
                ("GetHold" = (operation_id = "get_booking", parameters(("id" = "$response.body#/id")))),
            ),
        ),
        ClaimProblems,
    ),
)]
pub async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(request): Json<NewBooking>,
) -> Result<Response, ApiError> {
    let hold_for = Some(state.hold_ttl);
    claim_seats(&state, &caller, &headers, request, hold_for).await
}

/// A booking or a hold, once per `Idempotency-Key` when one is given.
async fn claim_seats(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    request: NewBooking,
    hold_for: Option<Duration>,
) -> Result<Response, ApiError> {
    let key = headers
        .get(idempotency::HEADER)
        .map(idempotency::parse_key)
        .transpose()?;
    let event_id = request.event_id;
    // An invalid request never reaches the database, with or without a key.
    let (fingerprint, asked) = request.asked(hold_for.is_some())?;
    // Before the key's row: a refusal is not kept, so a retry with a token books.
    let admitted = admission::check(state, caller, headers, event_id).await?;
    let Some(key) = key else {
        let outcome = match &asked {
            Asked::Seats(seats) => {
                let claim = Claim {
                    user: &caller.user_id,
                    event_id,
                    seats,
                    hold_for,
                };
                claim::book(state, &claim).await
            }
            Asked::Best(wanted) => best_available(state, caller, event_id, wanted, hold_for).await,
        };
        let version = after_claim(state, event_id, &outcome).await;
        if admitted && outcome.is_ok() {
            admission::used(state, caller, event_id).await;
        }
        return outcome.map(|booking| with_version(created(booking), version));
    };
    let mut conn = state.db.get().await?;
    let tx =
        match idempotency::try_processing(&mut conn, &caller.user_id, &key, &fingerprint).await? {
            NextAction::ReturnSavedResponse(stored) => return Ok(stored_response(stored, true)),
            NextAction::StartProcessing(tx) => tx,
        };
    // The same attempts as without a key, each in a savepoint of the key's transaction. A pick the
    // seat map cannot settle takes its turn with the connection held (the key's row is locked).
    let (mut turn, mut locked) = (None, false);
    let outcome = match &asked {
        Asked::Seats(seats) => {
            let claim = Claim {
                user: &caller.user_id,
                event_id,
                seats,
                hold_for,
            };
            claim::attempt(Attempts::Savepoints(&tx), &claim, &state.contested, false).await
        }
        Asked::Best(wanted) => {
            let user = &caller.user_id;
            match seatmap::book(state, Some(&tx), user, event_id, wanted, hold_for).await {
                Some(outcome) => outcome,
                None => {
                    (turn, locked) = (pick::turn(state, event_id).await?, true);
                    pick::book(state, &tx, user, event_id, wanted, hold_for).await
                }
            }
        }
    };
    if let Err(err) = &outcome {
        if err.status().is_server_error() {
            // Not stored: the transaction (and the key's row) rolls back, and a retry books.
            return outcome.map(created);
        }
    }
    let stored = render(&outcome);
    idempotency::save_response(tx, &caller.user_id, &key, &stored).await?;
    drop(turn);
    if locked && outcome.is_ok() {
        pick::durable(&conn).await?;
    }
    let version = after_claim(state, event_id, &outcome).await;
    if admitted && outcome.is_ok() {
        admission::used(state, caller, event_id).await;
    }
    Ok(with_version(stored_response(stored, false), version))
}

/// A best-available booking or hold without a key: in a transaction of its own, committed when it
/// books, rolled back (which gives up the event's pick lock) when it does not.
async fn best_available(
    state: &AppState,
    caller: &Caller,
    event_id: i64,
    wanted: &pick::Wanted,
    hold_for: Option<Duration>,
) -> Result<Booking, ApiError> {
    if let Some(outcome) =
        seatmap::book(state, None, &caller.user_id, event_id, wanted, hold_for).await
    {
        return outcome;
    }
    let turn = pick::turn(state, event_id).await?;
    let mut conn = state.db.get().await?;
    let tx = conn.transaction().await?;
    match pick::book(state, &tx, &caller.user_id, event_id, wanted, hold_for).await {
        Ok(booking) => {
            tx.commit().await?;
            drop(turn);
            pick::durable(&conn).await?;
            Ok(booking)
        }
        Err(err) => {
            // A broken connection is not worth the round trip; the pool drops it.
            if !err.status().is_server_error() {
                tx.rollback().await?;
            }
            Err(err)
        }
    }
}

/// Cache and counters, before the response: the booker's next read must not come from a stale
/// cache. Never fails the request. Returns the event's version after the claim, for the
/// response's `Seatbook-Event-Version`.
async fn after_claim(
    state: &AppState,
    event_id: i64,
    outcome: &Result<Booking, ApiError>,
) -> Option<u64> {
    match outcome {
        Ok(booking) => {
            tracing::info!(booking = %booking.id, event = event_id, seats = booking.tickets.len(), status = %booking.status, "seats claimed");
            let figure = match booking.status {
                BookingStatus::Confirmed => metrics::BOOKINGS_CONFIRMED,
                _ => metrics::HOLDS_PLACED,
            };
            metrics::count(figure, 1.0);
        }
        Err(ApiError::SeatsTaken { .. }) => metrics::count(metrics::BOOKING_CONFLICTS, 1.0),
        Err(_) => {}
    }
    let cache = state.cache.as_ref()?;
    match outcome {
        Ok(booking) => {
            let ids = booking.seat_ids();
            // Whoever asks for these seats next is refused from Redis, not by a transaction.
            let confirmed = booking.status == BookingStatus::Confirmed;
            let marks = MarkChange::Set {
                ids: &ids,
                until: booking.claimed_until(),
                booked: confirmed,
            };
            marks::event_changed(cache, event_id, confirmed, marks).await
        }
        Err(ApiError::SeatsTaken { .. }) => {
            marks::conflicted(cache);
            None
        }
        Err(_) => None,
    }
}

/// Names the event's version after a write (`Seatbook-Event-Version`): the writer's reads of the
/// event that send it back are served nothing older, so they show the write.
fn with_version(mut response: Response, version: Option<u64>) -> Response {
    if let Some(version) = version {
        response
            .headers_mut()
            .insert(EVENT_VERSION_HEADER, HeaderValue::from(version));
    }
    response
}

fn location(booking: &Booking) -> String {
    format!("/api/v1/bookings/{}", booking.id)
}

fn created(booking: Booking) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location(&booking))],
        axum::Json(booking),
    )
        .into_response()
}

/// The response a booking outcome is stored as, for replays under its Idempotency-Key.
fn render(outcome: &Result<Booking, ApiError>) -> Stored {
    match outcome {
        Ok(booking) => Stored {
            status: StatusCode::CREATED,
            body: serde_json::to_string(booking).expect("a booking serialises"),
            location: Some(location(booking)),
        },
        Err(err) => Stored {
            status: err.status(),
            body: err.problem_json(),
            location: None,
        },
    }
}

fn stored_response(stored: Stored, replayed: bool) -> Response {
    let content_type = if stored.status.is_success() {
        "application/json"
    } else {
        PROBLEM_JSON
    };
    let mut response = (stored.status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(location) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// One of the caller's bookings
#[utoipa::path(
    get,
    path = "/api/v1/bookings/{id}",
    operation_id = "get_booking",
    tag = "booking",
    params(("id" = Uuid, Path, description = "The booking's (or hold's) id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The booking.", body = Booking),
        ShowProblems,
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Booking>, ApiError> {
    reads::find(&state.db, id, Some(&caller.user_id))
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("booking {id}")))
}

/// Paging through the caller's bookings.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Bookings per page.
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
    /// Where the page starts: a previous page's `next_cursor`, exactly as given.
    #[param(
        pattern = r"^(0|[1-9][0-9]{0,17})\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    cursor: Option<String>,
}

/// A page of the caller's bookings.
#[derive(serde::Serialize, ToSchema)]
pub struct BookingList {
    items: Vec<Booking>,
    /// Where the next page starts; `null` on the last page.
    next_cursor: Option<String>,
}

/// The caller's bookings
///
/// Newest first, a page at a time (keyset on `(created_at, id)`, so a booking made meanwhile does
/// not shift later pages). Holds, cancelled and expired bookings included.
#[utoipa::path(
    get,
    path = "/api/v1/bookings",
    operation_id = "list_bookings",
    tag = "booking",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of bookings.", body = BookingList),
        ListProblems,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<BookingList>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 100".to_owned(),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    // One extra row tells whether another page follows.
    let mut items = reads::list(&state.db, &caller.user_id, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(encode_cursor)
    } else {
        None
    };
    Ok(axum::Json(BookingList { items, next_cursor }))
}

/// A page's cursor: the last booking's `created_at` in microseconds since the epoch, a dot, and its
/// id (hyphenated, lower case), as the event listing's cursors are made.
fn encode_cursor(booking: &Booking) -> String {
    format!("{}.{}", booking.created_at.timestamp_micros(), booking.id)
}

/// Only cursors spelled exactly as [`encode_cursor`] spells them: anything else is a 400.
fn decode_cursor(raw: &str) -> Result<reads::Position, ApiError> {
    let invalid = || ApiError::BadRequest("cursor is not one this API returned".to_owned());
    let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
    let created_at = micros
        .parse()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id: Uuid = id.parse().map_err(|_| invalid())?;
    // `+1.x`, `01.x`, an upper-case, braced or unhyphenated id: one position, spelled in ways the
    // API never issues.
    if format!("{}.{id}", created_at.timestamp_micros()) != raw {
        return Err(invalid());
    }
    Ok(reads::Position { created_at, id })
}

/// Cancel a booking or a hold
///
/// The owner, or any organizer, cancels; the seats are free at once. Cancelling again is harmless
/// and answers the same.
#[utoipa::path(
    delete,
    path = "/api/v1/bookings/{id}",
    operation_id = "cancel_booking",
    tag = "booking",
    params(("id" = Uuid, Path, description = "The booking's (or hold's) id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The booking as it is now.", body = Booking,
            headers(
                ("Seatbook-Event-Version" = i64, description = "The event's version after this cancellation (absent when nothing changed): sent back on reads of the event, it makes them show the write."),
            ),
        ),
        CancelProblems,
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let owner = (!caller.is_organizer).then_some(&caller.user_id);
    let mut version = None;
    let cancelled = lifecycle::cancel(&state.db, id, owner).await?;
    let booking = reads::find(&state.db, id, owner)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("booking {id}")))?;
    if let Some(event_id) = cancelled {
        tracing::info!(booking = %id, event = event_id, "booking cancelled");
        if let Some(cache) = &state.cache {
            let ids = booking.seat_ids();
            state.seen_taken.forget(event_id, &ids);
            let marks = MarkChange::Clear { ids: &ids };
            version = marks::event_changed(cache, event_id, false, marks).await;
        }
    }
    Ok(with_version(axum::Json(booking).into_response(), version))
}

/// Confirm a hold
///
/// A live hold becomes a confirmed booking; a lapsed (or cancelled) one is gone. Confirming twice
/// answers like the first time.
#[utoipa::path(
    post,
    path = "/api/v1/holds/{id}/confirm",
    operation_id = "confirm_hold",
    tag = "booking",
    params(("id" = Uuid, Path, description = "The hold's id.")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The booking, confirmed.", body = Booking,
            headers(
                ("Location" = String, description = "The booking's URL."),
                ("Seatbook-Event-Version" = i64, description = "The event's version after this write: sent back on reads of the event, it makes them show the write."),
            ),
            links(
                ("CancelBooking" = (operation_id = "cancel_booking", parameters(("id" = "$response.body#/id")))),
                ("GetBooking" = (operation_id = "get_booking", parameters(("id" = "$response.body#/id")))),
            ),
        ),
        ConfirmProblems,
    ),
)]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let confirmed = lifecycle::confirm(&state.db, id, &caller.user_id).await?;
    if let Confirmation::SalesClosed {
        sales_start_at,
        sales_end_at,
    } = confirmed
    {
        return Err(ApiError::SalesClosed {
            reason: format!(
                "sales for this event closed at {}; hold {id} can no longer be confirmed",
                sales_end_at.to_rfc3339()
            ),
            sales_start_at,
            sales_end_at,
        });
    }
    let booking = reads::find(&state.db, id, Some(&caller.user_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("hold {id}")))?;
    match (confirmed, booking.status) {
        (Confirmation::Confirmed(event_id), _) => {
            metrics::count(metrics::BOOKINGS_CONFIRMED, 1.0);
            let mut version = None;
            if let Some(cache) = &state.cache {
                let ids = booking.seat_ids();
                let marks = MarkChange::Set {
                    ids: &ids,
                    until: booking.claimed_until(),
                    booked: true,
                };
                version = marks::event_changed(cache, event_id, true, marks).await;
            }
            Ok(with_version(created(booking), version))
        }
        // Confirming twice answers like the first time.
        (_, BookingStatus::Confirmed) => Ok(created(booking)),
        (_, BookingStatus::Expired) => Err(ApiError::Gone(format!(
            "hold {id} expired; its seats may have been taken"
        ))),
        (_, status) => Err(ApiError::Gone(format!("hold {id} is {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bookings_cursor_round_trips_and_only_its_own_spelling_is_accepted() {
        let booking = Booking {
            id: "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap(),
            event_id: 1,
            user_id: "alice".into(),
            status: BookingStatus::Confirmed,
            created_at: chrono::DateTime::from_timestamp_micros(1_900_000_000_123_456).unwrap(),
            expires_at: None,
            total_cents: 0,
            tickets: Vec::new(),
            together: None,
        };
        let cursor = encode_cursor(&booking);
        assert_eq!(
            cursor,
            "1900000000123456.67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        let position = decode_cursor(&cursor).unwrap();
        assert_eq!(
            (position.created_at, position.id),
            (booking.created_at, booking.id)
        );
        for bad in [
            "",
            "abc",
            "1900000000123456",
            "1900000000123456.",
            ".67e55044-10b1-426f-9247-bb680e5fe0c8",
            "x.67e55044-10b1-426f-9247-bb680e5fe0c8",
            "1900000000123456.x",
            "99999999999999999999.67e55044-10b1-426f-9247-bb680e5fe0c8",
            "+1900000000123456.67e55044-10b1-426f-9247-bb680e5fe0c8",
            "01900000000123456.67e55044-10b1-426f-9247-bb680e5fe0c8",
            "1900000000123456.67E55044-10B1-426F-9247-BB680E5FE0C8",
            "1900000000123456.67e5504410b1426f9247bb680e5fe0c8",
            "1900000000123456.{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "1900000000123456.urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            " 1900000000123456.67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
