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
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

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
    /// `ADMISSION_KEYS`, or without any source a development key (dev-identity builds) or one
    /// made up at start (see `config::default_admission_keys`).
    Given(Arc<KeySet>),
    /// `ADMISSION_KEYS_SECRET_ARN`: read on first use, again every few minutes, and at once
    /// (at most every 30 s) when a token names a key the process does not know.
    Secret(String),
}

/// A key set read from Secrets Manager is read again when it is this old, so a rotation reaches
/// warm functions too.
const REREAD_AFTER: Duration = Duration::from_secs(300);
/// A token naming a kid the process does not know makes it read the secret again, at most this
/// often (a new key may have been added since).
const UNKNOWN_KID_REREAD_AFTER: Duration = Duration::from_secs(30);

/// The admission keys of a process, loaded on first use.
pub struct Admission {
    source: KeySource,
    current: RwLock<Option<(Arc<KeySet>, Instant)>>,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
    /// `WAITING_ROOM_TEST_TTL_SECONDS`: every admission lasts this long, whatever the event says
    /// (tests only: an event's own TTL is a minute at least).
    pub ttl_override: Option<Duration>,
}

impl Admission {
    pub fn new(source: KeySource, ttl_override: Option<Duration>) -> Self {
        ring::install();
        let current = match &source {
            KeySource::Given(keys) => Some((keys.clone(), Instant::now())),
            KeySource::Secret(_) => None,
        };
        Admission {
            source,
            current: RwLock::new(current),
            reading: tokio::sync::Mutex::new(()),
            ttl_override,
        }
    }

    /// The key set, read from Secrets Manager first if that is where it is (and it has not been
    /// read lately).
    pub async fn keys(&self) -> Result<Arc<KeySet>, ApiError> {
        self.read_if_older(REREAD_AFTER).await
    }

    async fn read_if_older(&self, age: Duration) -> Result<Arc<KeySet>, ApiError> {
        let fresh = |current: &Option<(Arc<KeySet>, Instant)>| match (&self.source, current) {
            (KeySource::Given(_), Some((keys, _))) => Some(keys.clone()),
            (KeySource::Secret(_), Some((keys, at))) if at.elapsed() < age => Some(keys.clone()),
            _ => None,
        };
        if let Some(keys) = fresh(&self.current.read().expect("not poisoned")) {
            return Ok(keys);
        }
        let _one_at_a_time = self.reading.lock().await;
        if let Some(keys) = fresh(&self.current.read().expect("not poisoned")) {
            return Ok(keys);
        }
        let KeySource::Secret(arn) = &self.source else {
            unreachable!("given keys are always current")
        };
        let read = crate::db::secret::read_secret_string(arn).await;
        let keys = match read {
            Ok(raw) => {
                use secrecy::ExposeSecret;
                KeySet::parse(raw.expose_secret())
                    .map(Arc::new)
                    .map_err(|reason| {
                        ApiError::internal(format!(
                            "the admission keys secret is malformed: {reason}"
                        ))
                    })
            }
            Err(err) => Err(ApiError::Unavailable(err.into())),
        };
        let mut current = self.current.write().expect("not poisoned");
        match (keys, current.as_ref()) {
            (Ok(keys), _) => {
                *current = Some((keys.clone(), Instant::now()));
                Ok(keys)
            }
            // Secrets Manager is away: the keys this process has still verify and sign.
            (Err(err), Some((keys, _))) => {
                tracing::warn!(error = %err, "could not read the admission keys again; keeping the ones read before");
                Ok(keys.clone())
            }
            (Err(err), None) => Err(err),
        }
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
        let Some(kid) = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) else {
            return refuse(Refusal::BadSignature);
        };
        let mut keys = self.keys().await?;
        if keys.verifying(&kid).is_none() {
            // Perhaps a key added since this process read the set.
            keys = self.read_if_older(UNKNOWN_KID_REREAD_AFTER).await?;
        }
        let Some(key) = keys.verifying(&kid) else {
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
