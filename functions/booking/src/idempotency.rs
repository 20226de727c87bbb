//! `Idempotency-Key` on `POST /api/v1/bookings`: a retried request gets the original response.
//!
//! The key's row is inserted inside the booking's own transaction. A concurrent request with the
//! same key blocks on that row's primary key until the first transaction ends; then it finds the
//! stored response and replays it. If the first transaction fails for a transient reason, its
//! row goes with it and the retry simply books. Deterministic outcomes (201, 409, 404, 422) are
//! stored and replayed; 5xx are not.

use axum::http::StatusCode;
use seatbook_core::domain::UserId;
use seatbook_core::ApiError;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};

pub const HEADER: &str = "idempotency-key";

/// A response as first sent, to be sent again for the same key.
pub struct Stored {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

/// What to do with a request under a key.
pub enum NextAction<'c> {
    /// The key is this request's: book in this transaction (it holds the key's row), then
    /// [`save_response`].
    StartProcessing(Transaction<'c>),
    /// An earlier request with this key already has a response: send it again.
    ReturnSavedResponse(Stored),
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
    hex_sha256(&canonical)
}

/// [`fingerprint`] for a best-available request: the event, how many seats, and of what.
pub fn best_fingerprint(hold: bool, event_id: i64, wanted: &crate::pick::Wanted) -> String {
    let kind = if hold { "hold" } else { "book" };
    let canonical = format!(
        "best:{kind}:{event_id}:{}:{:?}:{:?}:{}",
        wanted.count, wanted.category, wanted.section, wanted.accessible
    );
    hex_sha256(&canonical)
}

fn hex_sha256(canonical: &str) -> String {
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

/// Claims `key` for this request, or finds the response an earlier request with it left. The
/// insert of the key's row waits while another transaction holds it, so two requests with one key
/// are decided one after the other.
pub async fn try_processing<'c>(
    conn: &'c mut Client,
    user: &UserId,
    key: &str,
    request_hash: &str,
) -> Result<NextAction<'c>, ApiError> {
    let user = user.as_str();
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
    if claimed {
        return Ok(NextAction::StartProcessing(tx));
    }
    // The key's first request has finished (the insert waited for it).
    let row = tx
        .query_typed_one(STORED_SQL, &[(&user, Type::TEXT), (&key, Type::TEXT)])
        .await?;
    if row.get::<_, String>(0) != request_hash {
        return Err(ApiError::Unprocessable(
            "this Idempotency-Key was used with a different request".to_owned(),
        ));
    }
    let status: i32 = row.get(1);
    Ok(NextAction::ReturnSavedResponse(Stored {
        status: StatusCode::from_u16(status as u16).map_err(ApiError::internal)?,
        body: row.get(2),
        location: row.get(3),
    }))
}

/// Stores the response a request under `key` is answered with, and commits its transaction (the
/// booking and the key's row together). A 5xx is not stored: drop the transaction instead, and
/// the key stays free for a retry.
pub async fn save_response(
    tx: Transaction<'_>,
    user: &UserId,
    key: &str,
    stored: &Stored,
) -> Result<(), ApiError> {
    tx.query_typed(
        STORE_SQL,
        &[
            (&user.as_str(), Type::TEXT),
            (&key, Type::TEXT),
            (&(stored.status.as_u16() as i32), Type::INT4),
            (&stored.body, Type::TEXT),
            (&stored.location, Type::TEXT),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
