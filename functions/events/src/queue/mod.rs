//! The waiting room (issue 23): `POST /api/v1/events/{id}/queue` joins an event's queue,
//! `GET /api/v1/events/{id}/queue/me` shows the caller's entry (and, once admitted, the admission
//! token the booking function asks for), `GET /api/v1/.well-known/jwks.json` the keys that verify
//! such tokens.
//!
//! The queue lives in Redis ([`line`]). It is advanced by the reads themselves: a join or a poll
//! that finds the queue's tick free takes it (for [`line::ADVANCE_EVERY`]), counts the free seats
//! in PostgreSQL and runs one admission step; every other read costs one Redis round trip. No
//! scheduler: while nobody polls nobody needs admitting (docs/decisions.md, 26).

mod line;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use line::{Line, Seen};
use seatbook_cache::{Cache, IfNoneMatch};
use seatbook_core::catalog::EventWaitingRoom;
use seatbook_core::extract::Path;
use seatbook_core::identity::Caller;
use seatbook_core::rooms::RoomEvent;
use seatbook_core::{ApiError, AppState};
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio_postgres::types::Type;
use utoipa::ToSchema;

/// The free seats of an event now: its venue's seats less those booked or under a live hold.
const FREE_SEATS_SQL: &str = "\
SELECT (SELECT count(*) FROM seats WHERE venue_id = e.venue_id)
     - (SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
        WHERE t.event_id = e.id AND (b.status <> 'held' OR b.expires_at > statement_timestamp()))
FROM events e WHERE e.id = $1";

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// In line (before the sale opens, without a position yet).
    Waiting,
    /// Admitted: `admission` has the token to book with.
    Admitted,
    /// No seat is free right now; admission resumes, in order, when seats come back.
    SoldOut,
    /// Admitted, but the admission lapsed unused: joining again queues at the back.
    Expired,
}

/// The caller's entry in an event's queue.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"entry_id": "5b0c2a3e6f1d4c1e9a7b8c9d0e1f2a3b", "state": "waiting", "position": 1204, "ahead": 311, "eta_seconds": 32}))]
pub struct QueueEntry {
    /// The same on every join until the entry is admitted and expires.
    pub entry_id: String,
    pub state: QueueState,
    /// The place in line, from 1; `null` until the sale opens (then those who came early are put
    /// in a random order).
    pub position: Option<i64>,
    /// People still waiting ahead; `null` when not waiting in line.
    pub ahead: Option<i64>,
    /// Seconds until admission at the room's rate, if seats last; `null` when unknown.
    pub eta_seconds: Option<i64>,
    /// Present once admitted (and while unexpired).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub admission: Option<AdmissionToken>,
}

/// An admission: send `token` as `Seatbook-Admission` with bookings and holds of the event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionToken {
    /// A JWT (EdDSA) naming the user, the event and when it expires; its keys are at
    /// `/api/v1/.well-known/jwks.json`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

seatbook_core::problems!(JoinProblems:
    BadRequest, Unauthorized, NotFound, NoWaitingRoom, SalesClosed, Unavailable, Internal);
seatbook_core::problems!(EntryProblems:
    BadRequest, Unauthorized, NotFound, NoWaitingRoom, Unavailable, Internal);
seatbook_core::problems!(KeysProblems: Unavailable, Internal);

/// Join an event's waiting room
///
/// Queues the caller for the event's on-sale (one entry per person: joining again returns the
/// same entry, or, after an admission lapsed, a new one at the back). Before the sale opens
/// everyone waits without a position; when it opens they are put in a random order, and later
/// joiners queue behind them in the order they came.
#[utoipa::path(
    post,
    path = "/api/v1/events/{id}/queue",
    operation_id = "join_queue",
    tag = "events",
    params(("id" = i64, Path, description = "The event's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's entry.", body = QueueEntry,
            headers(("Retry-After" = i64, description = "Seconds until the entry is worth reading again."))),
        JoinProblems,
    ),
)]
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let (event, room) = room_event(&state, id).await?;
    if Utc::now() >= event.sales_end_at {
        return Err(ApiError::SalesClosed {
            reason: "the sale of this event has ended".to_owned(),
            sales_start_at: event.sales_start_at,
            sales_end_at: event.sales_end_at,
        });
    }
    let new_entry = uuid::Uuid::new_v4().simple().to_string();
    let seen = look(&state, &event, room, &caller, Some(&new_entry)).await?;
    let seen = seen.ok_or_else(|| ApiError::internal("a join always finds its entry"))?;
    respond(&state, &event, room, &caller, seen, &HeaderMap::new()).await
}

/// Your place in an event's waiting room
///
/// The caller's entry; once admitted, with the admission token. `Retry-After` says when to look
/// again; `If-None-Match` with the last `ETag` answers 304 while nothing changed.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}/queue/me",
    operation_id = "get_queue_entry",
    tag = "events",
    params(
        ("id" = i64, Path, description = "The event's id."),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` this read answered before: 304 with no body while it still holds."),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's entry.", body = QueueEntry,
            headers(
                ("ETag" = String, description = "The entry's tag, for `If-None-Match`."),
                ("Retry-After" = i64, description = "Seconds until the entry is worth reading again."),
            )),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`.",
            headers(
                ("ETag" = String, description = "The entry's tag."),
                ("Retry-After" = i64, description = "Seconds until the entry is worth reading again."),
            )),
        EntryProblems,
    ),
)]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (event, room) = room_event(&state, id).await?;
    let seen = look(&state, &event, room, &caller, None)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
            "you are not in the queue of event {id}: join it with POST /api/v1/events/{id}/queue"
        ))
        })?;
    respond(&state, &event, room, &caller, seen, &headers).await
}

/// The admission tokens' public keys
///
/// A JWK Set (RFC 7517) of the Ed25519 keys that verify admission tokens, by `kid`: the one that
/// signs now and those whose tokens may still be valid.
#[utoipa::path(
    get,
    path = "/api/v1/.well-known/jwks.json",
    operation_id = "get_admission_keys",
    tag = "events",
    responses(
        (status = 200, description = "The keys.", body = Object),
        KeysProblems,
    ),
)]
pub async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.admission.keys().await?;
    Ok((
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        keys.jwks().to_string(),
    )
        .into_response())
}

/// Event `id` and its room: 404 for no such event, 409 for an event without a room.
async fn room_event(state: &AppState, id: i64) -> Result<(RoomEvent, EventWaitingRoom), ApiError> {
    let event = state
        .rooms
        .event(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {id}")))?;
    let room = event.room.ok_or(ApiError::NoWaitingRoom(id))?;
    Ok((event, room))
}

fn redis(state: &AppState) -> Result<&Cache, ApiError> {
    state
        .cache
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("the waiting room needs Redis (REDIS_URL)".into()))
}

/// The caller's entry (joining first with `join`), after advancing the queue if it is this
/// request's turn to.
async fn look(
    state: &AppState,
    event: &RoomEvent,
    room: EventWaitingRoom,
    caller: &Caller,
    join: Option<&str>,
) -> Result<Option<Seen>, ApiError> {
    let line = Line::new(redis(state)?, event.id);
    let opens_ms = event.sales_start_at.map_or(0, |at| at.timestamp_millis());
    let user = caller.user_id.as_str();
    let unavailable = |_| ApiError::Unavailable("Redis did not answer".into());
    let seen = line.look(user, join, opens_ms).await.map_err(unavailable)?;
    if !seen.as_ref().is_some_and(|seen| seen.due) {
        return Ok(seen);
    }
    advance(state, &line, event.id, room).await;
    line.look(user, None, opens_ms).await.map_err(unavailable)
}

/// One admission step. A failure is logged and left to the next reader's turn.
async fn advance(state: &AppState, line: &Line<'_>, event_id: i64, room: EventWaitingRoom) {
    let free = async {
        let conn = state.db.get().await?;
        let row = conn
            .query_typed_one(FREE_SEATS_SQL, &[(&event_id, Type::INT8)])
            .await?;
        Ok::<i64, ApiError>(row.get(0))
    };
    let free = match free.await {
        Ok(free) => free.max(0),
        Err(err) => {
            tracing::warn!(event = event_id, error = %err, "could not count free seats; the queue waits");
            return;
        }
    };
    let admission = state
        .admission
        .ttl_override
        .unwrap_or(Duration::from_secs(room.admission_ttl_seconds as u64));
    match line
        .advance(
            free,
            room.admit_per_minute,
            admission,
            room.max_admitted_per_free_seat,
        )
        .await
    {
        Ok(0) => {}
        Ok(admitted) => tracing::info!(event = event_id, admitted, free, "admitted from the queue"),
        Err(_) => tracing::warn!(event = event_id, "Redis did not answer; the queue waits"),
    }
}

/// The entry as the API shows it, with `ETag` (304 when `headers` name it) and `Retry-After`.
async fn respond(
    state: &AppState,
    event: &RoomEvent,
    room: EventWaitingRoom,
    caller: &Caller,
    seen: Seen,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (entry, retry_after) = entry(state, event, room, caller, seen).await?;
    let body = serde_json::to_string(&entry).map_err(ApiError::internal)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let tag = format!("{:016x}", hasher.finish());
    let mut response = if IfNoneMatch::from_headers(headers).matches(&tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, "application/json")], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        ETAG,
        HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a valid header"),
    );
    headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
    // Each caller's own: never from a shared cache, always revalidated.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

/// What `seen` means for the caller, and how many seconds until it is worth looking again.
async fn entry(
    state: &AppState,
    event: &RoomEvent,
    room: EventWaitingRoom,
    caller: &Caller,
    seen: Seen,
) -> Result<(QueueEntry, u64), ApiError> {
    let position = (seen.position > 0).then_some(seen.position);
    let mut entry = QueueEntry {
        entry_id: seen.entry_id,
        state: QueueState::Waiting,
        position,
        ahead: None,
        eta_seconds: None,
        admission: None,
    };
    if seen.admitted_until_ms > seen.now_ms {
        let expires_at = (seen.admitted_until_ms / 1000) as u64;
        let issued_at = expires_at.saturating_sub(room.admission_ttl_seconds as u64);
        let token = state
            .admission
            .sign(caller.user_id.as_str(), event.id, issued_at, expires_at)
            .await?;
        entry.state = QueueState::Admitted;
        entry.eta_seconds = Some(0);
        entry.admission = Some(AdmissionToken {
            token,
            expires_at: DateTime::from_timestamp(expires_at as i64, 0).unwrap_or_default(),
        });
        return Ok((entry, 30));
    }
    if seen.admitted_until_ms > 0 {
        entry.state = QueueState::Expired;
        return Ok((entry, 60));
    }
    if seen.free == 0 {
        entry.state = QueueState::SoldOut;
        entry.ahead = (seen.ahead >= 0).then_some(seen.ahead);
        return Ok((entry, 5));
    }
    let Some(_) = position else {
        // Before the sale opens: look again when it does (or in a few seconds).
        let opens_in = event.sales_start_at.map_or(0, |at| {
            (at.timestamp_millis() - seen.now_ms).max(0) / 1000 + 1
        });
        return Ok((entry, opens_in.clamp(1, 5) as u64));
    };
    let ahead = seen.ahead.max(0);
    let eta = ((ahead + 1) * 60 + room.admit_per_minute as i64 - 1) / room.admit_per_minute as i64;
    entry.ahead = Some(ahead);
    entry.eta_seconds = Some(eta);
    Ok((entry, (eta / 2).clamp(1, 5) as u64))
}
