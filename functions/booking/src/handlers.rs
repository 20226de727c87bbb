use crate::store;
use crate::views::Booking;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use seatbook_core::domain::SeatSelection;
use seatbook_core::extract::{Json, Path, Query};
use seatbook_core::identity::Caller;
use seatbook_core::{ApiError, AppState};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
pub struct NewBooking {
    event_id: i64,
    seat_ids: Vec<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<NewBooking>,
) -> Result<impl IntoResponse, ApiError> {
    let seats = SeatSelection::parse(request.seat_ids)?;
    let outcome = store::book(&state.db, &caller.user_id, request.event_id, &seats).await;
    if let Some(cache) = &state.cache {
        // Before the response: the booker's next read must not come from a stale cache.
        match &outcome {
            Ok(_) => cache.booking_confirmed(request.event_id).await,
            Err(ApiError::SeatsTaken { .. }) => cache.booking_conflicted().await,
            Err(_) => {}
        }
    }
    let booking = outcome?;
    tracing::info!(booking = %booking.id, event = booking.event_id, seats = seats.len(), "booking confirmed");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/bookings/{}", booking.id))],
        axum::Json(booking),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Booking>, ApiError> {
    store::find(&state.db, &caller.user_id, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("booking {id}")))
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<i64>,
}

#[derive(serde::Serialize)]
pub struct BookingList {
    items: Vec<Booking>,
}

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
    let items = store::list(&state.db, &caller.user_id, limit).await?;
    Ok(axum::Json(BookingList { items }))
}
