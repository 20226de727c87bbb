//! `Idempotency-Key` on `POST /api/v1/bookings`: a retried request gets the original response.
//!
//! The key's row is inserted inside the booking's own transaction. A concurrent request with the
//! same key blocks on that row's primary key until the first transaction ends; then it finds the
//! stored response and replays it. If the first transaction fails for a transient reason, its
//! row goes with it and the retry simply books. Deterministic outcomes (201, 409, 404, 422) are
//! stored and replayed; 5xx are not.

use crate::store::{self, Attempts, Claim};
use axum::http::StatusCode;
use seatbook_core::{ApiError, AppState};
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

pub const HEADER: &str = "idempotency-key";

/// A response as first sent, to be sent again for the same key.
pub struct Stored {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

pub enum Once {
    /// An earlier request with this key already has a response.
    Replayed(Stored),
    /// This request booked (or failed to); its response is stored for replays.
    Fresh {
        outcome: Result<crate::Booking, ApiError>,
        stored: Stored,
    },
}

/// A client-chosen key: 1 to 255 visible ASCII characters.
pub fn parse_key(raw: &axum::http::HeaderValue) -> Result<String, ApiError> {
    raw.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
            )
        })
}

/// The request's identity for key reuse: the same event and the same set of seats.
pub fn fingerprint(hold: bool, event_id: i64, seat_ids: &[i64]) -> String {
    let mut seats = seat_ids.to_vec();
    seats.sort_unstable();
    // Bookings keep the form their stored keys were made with; a hold is another request, so a
    // key reused across the two is refused like any other body.
    let canonical = if hold {
        format!("hold:{event_id}:{seats:?}")
    } else {
        format!("{event_id}:{seats:?}")
    };
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const CLAIM_KEY_SQL: &str = "\
INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body)
VALUES ($1, $2, $3, 0, '')
ON CONFLICT (user_id, key) DO NOTHING
RETURNING 1";

const STORED_SQL: &str = "\
SELECT request_hash, response_status, response_body, location
FROM idempotency_keys WHERE user_id = $1 AND key = $2";

const STORE_SQL: &str = "\
UPDATE idempotency_keys SET response_status = $3, response_body = $4, location = $5
WHERE user_id = $1 AND key = $2";

/// Books once per key. `render` turns an outcome into the response to store.
pub async fn book_once(
    state: &AppState,
    key: &str,
    request_hash: &str,
    claim: &Claim<'_>,
    render: impl Fn(&Result<crate::Booking, ApiError>) -> Stored,
) -> Result<Once, ApiError> {
    let user = claim.user.as_str();
    let contested = &state.contested;
    let mut conn = state.db.get().await?;
    let tx = conn.transaction().await?;
    let claimed = tx
        .query_typed_opt(
            CLAIM_KEY_SQL,
            &[
                (&user, Type::TEXT),
                (&key, Type::TEXT),
                (&request_hash, Type::TEXT),
            ],
        )
        .await?
        .is_some();
    if !claimed {
        // The key's first request has finished (the insert waited for it): replay it.
        let row = tx
            .query_typed_one(STORED_SQL, &[(&user, Type::TEXT), (&key, Type::TEXT)])
            .await?;
        if row.get::<_, String>(0) != request_hash {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used with a different request".to_owned(),
            ));
        }
        let status: i32 = row.get(1);
        return Ok(Once::Replayed(Stored {
            status: StatusCode::from_u16(status as u16).map_err(ApiError::internal)?,
            body: row.get(2),
            location: row.get(3),
        }));
    }

    // The same attempts as without a key, each in a savepoint of this transaction.
    let outcome = match store::attempt(Attempts::Savepoints(&tx), claim, contested, false).await {
        // Not stored: the transaction (and the key's row) is rolled back, and a retry books.
        Err(err) if err.status().is_server_error() => return Err(err),
        outcome => outcome,
    };
    let stored = render(&outcome);
    tx.query_typed(
        STORE_SQL,
        &[
            (&user, Type::TEXT),
            (&key, Type::TEXT),
            (&(stored.status.as_u16() as i32), Type::INT4),
            (&stored.body, Type::TEXT),
            (&stored.location, Type::TEXT),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Once::Fresh { outcome, stored })
}
