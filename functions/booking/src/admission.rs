//! The waiting room's gate (issue 23): while an event has a waiting room, a booking or a hold of
//! it needs the caller's admission token for it (`Seatbook-Admission`), checked here without a
//! network call ([`seatbook_core::admission`]). Confirming a hold needs none: the hold was made
//! with one.

use axum::http::HeaderMap;
use seatbook_core::admission::HEADER;
use seatbook_core::cached::queue_key;
use seatbook_core::identity::Caller;
use seatbook_core::{ApiError, AppState};
use utoipa::IntoParams;

/// `Seatbook-Admission`, as an operation's parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // only its documentation is used: the handler reads the header map
pub(crate) struct AdmissionHeader {
    /// For an event with a waiting room: the token of the caller's admission to it
    /// (`GET /api/v1/events/{id}/queue/me`). Without it, or with one that has expired or is
    /// another user's or another event's, the answer is 403 `admission-required`.
    #[param(rename = "Seatbook-Admission", nullable = false)]
    admission: Option<String>,
}

/// Whether the caller may claim seats of `event_id`: yes for an event without a waiting room
/// (or no such event: the claim answers 404), else only with a valid admission. `Ok(true)`: on
/// the strength of an admission.
pub(crate) async fn check(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    event_id: i64,
) -> Result<bool, ApiError> {
    let token = headers.get(HEADER).map(|v| v.to_str().unwrap_or_default());
    let verdict = state
        .admission
        .verify(token, &caller.user_id, event_id)
        .await;
    if verdict.is_ok() {
        return Ok(true);
    }
    // Refused, which matters only where there is a room (known to the process after its first
    // look: nothing changes an event's room).
    let room = state.rooms.event(&state.db, event_id).await?;
    match room {
        Some(event) if event.room.is_some() => verdict.map(|()| true),
        _ => Ok(false),
    }
}

/// The caller has bought with their admission: it no longer counts against the admissions the
/// free seats allow (docs/decisions.md, 26), so the line moves on before it expires. The token
/// stays valid until then. Best effort: if Redis does not answer, the admission counts until it
/// expires.
pub(crate) async fn used(state: &AppState, caller: &Caller, event_id: i64) {
    let Some(cache) = &state.cache else {
        return;
    };
    let admitted = queue_key(cache.keys(), event_id, "admitted");
    let user = caller.user_id.as_str();
    let removed: Result<(), _> = cache
        .query(|pipe| {
            pipe.cmd("ZREM").arg(admitted).arg(user).ignore();
        })
        .await;
    if removed.is_err() {
        tracing::warn!(
            event = event_id,
            "could not take a used admission out of the count"
        );
    }
}
