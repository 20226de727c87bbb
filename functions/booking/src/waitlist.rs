//! An event's waitlist: joining it, reading one's place, leaving it. The line and its offers live
//! in PostgreSQL (migrations/V16): every way a seat comes back (a cancellation, a lapsed hold a
//! booking collides with, the scheduled sweep of lapsed holds) offers it to the line in the
//! transaction that frees it, as a hold the entry's person confirms through
//! `POST /api/v1/holds/{id}/confirm`. This module only asks and shows.

use crate::marks::{self, MarkChange};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seatbook_core::domain::MAX_SEATS_PER_BOOKING;
use seatbook_core::extract::{Json, Path};
use seatbook_core::identity::Caller;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// Joins the line, or says why not (the `join_waitlist` function of migrations/V16).
const JOIN_SQL: &str = "\
SELECT outcome, entry_id, available, sales_start_at, sales_end_at
FROM join_waitlist($1, $2, $3, $4)";

/// Leaves the line, cancelling an offer's hold (whose seats go to the next in line).
const LEAVE_SQL: &str = "SELECT leave_waitlist($1, $2)";

/// Whether the event exists: what tells "not in its line" (204) from "no such event" (404).
const EVENT_EXISTS_SQL: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)";

/// The caller's newest entry for the event. An offer reads as it stands now: fulfilled once its
/// hold is confirmed, expired once its time is up (even before the sweep releases its seats).
const ENTRY_SQL: &str = "\
SELECT w.id, w.event_id, w.count, w.category, w.joined_at, w.hold_id, b.expires_at,
       CASE WHEN w.state <> 'offered' THEN w.state::text
            WHEN b.status = 'confirmed' THEN 'fulfilled'
            WHEN b.status = 'held' AND b.expires_at > now() THEN 'offered'
            WHEN b.status = 'cancelled' THEN 'left'
            ELSE 'expired' END AS state,
       CASE WHEN w.state = 'waiting' THEN (
           SELECT count(*) FROM waitlist_entries o
           WHERE o.event_id = w.event_id AND o.state = 'waiting' AND o.line <= w.line)
       END AS position,
       ARRAY(SELECT seat_id FROM tickets WHERE booking_id = w.hold_id
             UNION ALL
             SELECT seat_id FROM released_tickets WHERE booking_id = w.hold_id
             ORDER BY 1) AS seats
FROM waitlist_entries w LEFT JOIN bookings b ON b.id = w.hold_id
WHERE w.event_id = $1 AND w.user_id = $2
ORDER BY w.line DESC
LIMIT 1";

/// A place asked for in an event's waitlist.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"count": 2, "category": "Stalls"}))]
pub struct JoinWaitlist {
    /// How many seats, offered together when they come back side by side.
    #[schema(minimum = 1, maximum = 10)]
    count: i64,
    /// Only seats of this price category ("Standard": the seats no category covers); absent or
    /// null: any seat.
    #[schema(min_length = 1, max_length = 100)]
    category: Option<String>,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitlistState {
    /// In line.
    Waiting,
    /// Seats are held for the caller until `offer.expires_at`: confirm the hold to book them.
    Offered,
    /// The offer was confirmed.
    Fulfilled,
    /// The offer lapsed; its seats went to the next in line.
    Expired,
    /// The caller left the line (or cancelled the offer's hold).
    Left,
}

impl WaitlistState {
    fn parse(raw: &str) -> Result<Self, ApiError> {
        Ok(match raw {
            "waiting" => WaitlistState::Waiting,
            "offered" => WaitlistState::Offered,
            "fulfilled" => WaitlistState::Fulfilled,
            "expired" => WaitlistState::Expired,
            "left" => WaitlistState::Left,
            other => return Err(ApiError::internal(format!("waitlist state {other:?}"))),
        })
    }
}

/// Seats offered to an entry: a hold of the caller's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Offer {
    /// The hold: `POST /api/v1/holds/{hold_id}/confirm` books the seats.
    hold_id: Uuid,
    /// The offered seats' ids.
    seats: Vec<i64>,
    /// When the offer lapses.
    expires_at: DateTime<Utc>,
}

/// A place in an event's waitlist.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitlistEntry {
    entry_id: Uuid,
    event_id: i64,
    state: WaitlistState,
    /// Place in line while waiting (1: next); `null` otherwise.
    position: Option<i64>,
    /// Seats asked for.
    count: i32,
    /// The price category asked for as the event spells it; `null`: any seat.
    category: Option<String>,
    joined_at: DateTime<Utc>,
    /// The seats offered, once they are; `null` while waiting.
    offer: Option<Offer>,
}

impl WaitlistEntry {
    fn from_row(row: &Row) -> Result<Self, ApiError> {
        let hold: Option<Uuid> = row.get("hold_id");
        let expires: Option<DateTime<Utc>> = row.get("expires_at");
        Ok(WaitlistEntry {
            entry_id: row.get("id"),
            event_id: row.get("event_id"),
            state: WaitlistState::parse(row.get("state"))?,
            position: row.get("position"),
            count: row.get("count"),
            category: row.get("category"),
            joined_at: row.get("joined_at"),
            offer: hold.zip(expires).map(|(hold_id, expires_at)| Offer {
                hold_id,
                seats: row.get("seats"),
                expires_at,
            }),
        })
    }
}

async fn entry(
    state: &AppState,
    event_id: i64,
    caller: &Caller,
) -> Result<Option<WaitlistEntry>, ApiError> {
    let row = in_line(state, ENTRY_SQL, event_id, caller).await?;
    row.as_ref().map(WaitlistEntry::from_row).transpose()
}

/// The row (if any) of `sql` about `caller`'s place in `event_id`'s line: `$1` the event, `$2` the
/// caller, as every statement of this module but the join takes them.
async fn in_line(
    state: &AppState,
    sql: &str,
    event_id: i64,
    caller: &Caller,
) -> Result<Option<Row>, ApiError> {
    let conn = state.db.get().await?;
    let user = caller.user_id.as_str();
    let params: [(&(dyn ToSql + Sync), Type); 2] = [(&event_id, Type::INT8), (&user, Type::TEXT)];
    Ok(conn.query_typed_opt(sql, &params).await?)
}

/// 204 when the event exists (the caller is just not in its line), else 404.
async fn not_in_line(state: &AppState, event_id: i64) -> Result<Response, ApiError> {
    let conn = state.db.get().await?;
    let exists: bool = conn
        .query_typed_one(EVENT_EXISTS_SQL, &[(&event_id, Type::INT8)])
        .await?
        .get(0);
    if exists {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("event {event_id}")))
    }
}

fn location(event_id: i64) -> String {
    format!("/api/v1/events/{event_id}/waitlist/me")
}

seatbook_core::problems!(JoinProblems:
    BadRequest, Unauthorized, NotFound, SeatsAvailable, SalesClosed, UnsupportedMediaType,
    PayloadTooLarge, Validation, RateLimited, Unavailable, Internal);
seatbook_core::problems!(EntryProblems: BadRequest, Unauthorized, NotFound, Unavailable, Internal);
seatbook_core::problems!(LeaveProblems:
    BadRequest, Unauthorized, NotFound, RateLimited, Unavailable, Internal);

/// Join an event's waitlist
///
/// For a sold-out event: when seats come back (a cancellation, a hold that lapsed, an offer that
/// lapsed), the first entry in line they can satisfy is offered them, as a hold of the caller's
/// for the event's `waitlist_offer_seconds`. Joining again answers the same entry (200). Refused
/// while enough matching seats are free (book them), and once the sale has closed.
#[utoipa::path(
    post,
    path = "/api/v1/events/{id}/waitlist",
    operation_id = "join_waitlist",
    tag = "booking",
    params(("id" = i64, Path, description = "The event's id.")),
    request_body = JoinWaitlist,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new entry, waiting.", body = WaitlistEntry,
            headers(("Location" = String, description = "The caller's entry's URL."))),
        (status = 200, description = "The caller's entry, already in line (or offered seats).",
            body = WaitlistEntry),
        JoinProblems,
    ),
)]
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<i64>,
    Json(request): Json<JoinWaitlist>,
) -> Result<Response, ApiError> {
    let count = i32::try_from(request.count)
        .ok()
        .filter(|n| (1..=MAX_SEATS_PER_BOOKING as i32).contains(n))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "count must be 1 to {MAX_SEATS_PER_BOOKING}, not {}",
                request.count
            ))
        })?;
    let category = match request.category.as_deref().map(str::trim) {
        Some(name) if name.is_empty() || name.chars().count() > 100 => {
            return Err(ApiError::Unprocessable(
                "category must be a category's name, 1 to 100 characters".to_owned(),
            ))
        }
        other => other,
    };
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            JOIN_SQL,
            &[
                (&event_id, Type::INT8),
                (&caller.user_id.as_str(), Type::TEXT),
                (&count, Type::INT4),
                (&category, Type::TEXT),
            ],
        )
        .await?;
    drop(conn);
    let status = match row.get::<_, &str>("outcome") {
        "joined" => StatusCode::CREATED,
        "existing" => StatusCode::OK,
        "no_event" => return Err(ApiError::not_found(format!("event {event_id}"))),
        "no_category" => {
            return Err(ApiError::Unprocessable(format!(
                "event {event_id} has no price category named {:?}",
                category.unwrap_or_default()
            )))
        }
        "available" => {
            return Err(ApiError::SeatsAvailable {
                available: row.get::<_, i64>("available") as usize,
                requested: count as usize,
            })
        }
        _ => {
            let closes: DateTime<Utc> = row.get("sales_end_at");
            return Err(ApiError::SalesClosed {
                reason: format!(
                    "sales for this event closed at {}: its waitlist is closed",
                    closes.to_rfc3339()
                ),
                sales_start_at: row.get("sales_start_at"),
                sales_end_at: closes,
            });
        }
    };
    let entry = entry(&state, event_id, &caller)
        .await?
        .ok_or_else(|| ApiError::internal("a joined entry was not found"))?;
    if status == StatusCode::CREATED {
        tracing::info!(event = event_id, entry = %entry.entry_id, "joined the waitlist");
    }
    Ok((
        status,
        [(header::LOCATION, location(event_id))],
        axum::Json(entry),
    )
        .into_response())
}

/// The caller's place in an event's waitlist
///
/// The caller's newest entry for the event: waiting (with its place in line), offered (with the
/// offer), fulfilled, expired or left; 204 when the caller never joined its line.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}/waitlist/me",
    operation_id = "get_waitlist_entry",
    tag = "booking",
    params(("id" = i64, Path, description = "The event's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's entry.", body = WaitlistEntry),
        (status = 204, description = "The caller has never joined this event's line."),
        EntryProblems,
    ),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<i64>,
) -> Result<Response, ApiError> {
    match entry(&state, event_id, &caller).await? {
        Some(entry) => Ok(axum::Json(entry).into_response()),
        None => not_in_line(&state, event_id).await,
    }
}

/// Leave an event's waitlist
///
/// Leaves the line; an offer not yet confirmed is given up, and its seats go to the next in line.
/// Leaving a line one is not in changes nothing and answers the same.
#[utoipa::path(
    delete,
    path = "/api/v1/events/{id}/waitlist/me",
    operation_id = "leave_waitlist",
    tag = "booking",
    params(("id" = i64, Path, description = "The event's id.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Not in the line (any more)."),
        LeaveProblems,
    ),
)]
pub async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<i64>,
) -> Result<Response, ApiError> {
    let left = in_line(&state, LEAVE_SQL, event_id, &caller)
        .await?
        .ok_or_else(|| ApiError::internal("leave_waitlist answers one row"))?;
    if !left.get::<_, bool>(0) {
        return not_in_line(&state, event_id).await;
    }
    if let Some(cache) = &state.cache {
        // An offer given up changes the seat map: its cached reads are stale.
        marks::event_changed(cache, event_id, false, MarkChange::Clear { ids: &[] }).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
