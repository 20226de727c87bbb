//! Admission to an event's waiting room (issue 23): the token the queue hands an admitted buyer,
//! and its check where seats are claimed.
//!
//! The token is a JWT signed with Ed25519 (`alg` EdDSA, a `kid` naming the key): `sub` the user,
//! `event` the event, `exp` when the admission ends. Any function verifies it with the public
//! keys it holds, without a network call, so people already admitted keep booking while Redis
//! (where the queue lives) is down. The keys ([`keys`]) come from `ADMISSION_KEYS` locally and
//! from Secrets Manager deployed; the public ones are served at
//! `GET /api/v1/.well-known/jwks.json`.

pub mod keys;
mod ring;

use crate::domain::UserId;
use crate::error::ApiError;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
pub use keys::KeySet;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The request header that carries the token.
pub const HEADER: &str = "seatbook-admission";

/// The token's audience: a token of this service meant for nothing else.
const AUDIENCE: &str = "seatbook-admission";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    event: i64,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Why a claim on seats of an event with a waiting room is refused (403 `admission-required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this event has a waiting room: join its queue and send the admission token it gives as Seatbook-Admission")]
    Missing,
    #[error("the admission token has expired: join the queue again")]
    Expired,
    #[error("the admission token is another user's")]
    OtherUser,
    #[error("the admission token is for another event")]
    OtherEvent,
    #[error("the admission token's signature is not valid (or it is not an admission token)")]
    BadSignature,
}

impl Refusal {
    /// The problem's `reason` member.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Expired => "expired",
            Refusal::OtherUser => "other-user",
            Refusal::OtherEvent => "other-event",
            Refusal::BadSignature => "bad-signature",
        }
    }
}

/// Where the keys come from ([`crate::config::Settings::admission`]).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `ADMISSION_KEYS`, or a key made up at start when no source is set.
    Given(Arc<KeySet>),
    /// `ADMISSION_KEYS_SECRET_ARN`: read on first use, then kept for the process's life (a
    /// rotation reaches a function with its next cold start; see docs/decisions.md).
    Secret(String),
}

/// The admission keys of a process, loaded on first use.
pub struct Admission {
    source: KeySource,
    loaded: tokio::sync::OnceCell<Arc<KeySet>>,
    /// `WAITING_ROOM_TEST_TTL_SECONDS`: every admission lasts this long, whatever the event says
    /// (tests only: an event's own TTL is a minute at least).
    pub ttl_override: Option<Duration>,
}

impl Admission {
    pub fn new(source: KeySource, ttl_override: Option<Duration>) -> Self {
        ring::install();
        Admission {
            source,
            loaded: tokio::sync::OnceCell::new(),
            ttl_override,
        }
    }

    /// The key set, read from Secrets Manager first if that is where it is.
    pub async fn keys(&self) -> Result<&Arc<KeySet>, ApiError> {
        self.loaded
            .get_or_try_init(|| async {
                match &self.source {
                    KeySource::Given(keys) => Ok(keys.clone()),
                    KeySource::Secret(arn) => {
                        let raw = crate::db::secret::read_secret_string(arn)
                            .await
                            .map_err(|e| ApiError::Unavailable(e.into()))?;
                        use secrecy::ExposeSecret;
                        KeySet::parse(raw.expose_secret())
                            .map(Arc::new)
                            .map_err(|reason| {
                                ApiError::internal(format!(
                                    "the admission keys secret is malformed: {reason}"
                                ))
                            })
                    }
                }
            })
            .await
    }

    /// A token admitting `user` to `event_id` from `issued_at` until `expires_at` (seconds since
    /// the Unix epoch). Ed25519 signatures are deterministic: the same admission is the same token.
    pub async fn sign(
        &self,
        user: &str,
        event_id: i64,
        issued_at: u64,
        expires_at: u64,
    ) -> Result<String, ApiError> {
        let keys = self.keys().await?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid().to_owned());
        let claims = Claims {
            sub: user.to_owned(),
            event: event_id,
            aud: AUDIENCE.to_owned(),
            iat: issued_at,
            exp: expires_at,
        };
        jsonwebtoken::encode(&header, &claims, keys.signing()).map_err(ApiError::internal)
    }

    /// Whether `token` admits `user` to `event_id` now.
    pub async fn verify(
        &self,
        token: Option<&str>,
        user: &UserId,
        event_id: i64,
    ) -> Result<(), ApiError> {
        let refuse = |refusal| Err(ApiError::AdmissionRequired(refusal));
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return refuse(Refusal::Missing);
        };
        let keys = self.keys().await?;
        let Some(key) = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| keys.verifying(header.kid.as_deref()?))
        else {
            return refuse(Refusal::BadSignature);
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        // An admission ends when it says, not a minute later.
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let claims = match jsonwebtoken::decode::<Claims>(token, key, &validation) {
            Ok(data) => data.claims,
            Err(e) if *e.kind() == ErrorKind::ExpiredSignature => return refuse(Refusal::Expired),
            Err(_) => return refuse(Refusal::BadSignature),
        };
        // jsonwebtoken takes `exp` as the last valid second; an admission ends at its start.
        if claims.exp <= now_secs() {
            return refuse(Refusal::Expired);
        }
        if claims.sub != user.as_str() {
            return refuse(Refusal::OtherUser);
        }
        if claims.event != event_id {
            return refuse(Refusal::OtherEvent);
        }
        Ok(())
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
