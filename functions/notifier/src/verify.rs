//! Verifying a Seatbook webhook delivery: the Standard Webhooks scheme
//! (https://www.standardwebhooks.com/), so any Standard Webhooks library verifies it too. A Rust
//! receiver can copy this file as it is: it needs only the `hmac` (0.12), `sha2` (0.10) and
//! `base64` (0.22) crates. docs/webhooks.md describes the headers.

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far the signed timestamp may be from the receiver's clock, either way: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Standard base64, padded or not (senders pad; some secrets are written without).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A delivery's three headers, as received.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    /// `webhook-id`: the same for every attempt at one delivery. Deduplicate on it.
    pub id: &'a str,
    /// `webhook-timestamp`: when this attempt was signed, in unix seconds.
    pub timestamp: &'a str,
    /// `webhook-signature`: space-separated `<version>,<base64>` entries.
    pub signature: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The secret is empty, or starts with `whsec_` and the rest is not base64.
    Secret,
    /// The id is empty, or the timestamp is not a whole number of seconds.
    Malformed,
    /// The timestamp is further from `now` than the tolerance: a replay, or a clock far off.
    Expired,
    /// No `v1` signature matches: another key, or a changed id, timestamp or body.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyError::Secret => {
                "the secret is empty, or whsec_ followed by something not base64"
            }
            VerifyError::Malformed => {
                "webhook-id is empty or webhook-timestamp is not unix seconds"
            }
            VerifyError::Expired => "webhook-timestamp is outside the tolerance",
            VerifyError::Mismatch => "no v1 signature matches",
        })
    }
}

impl std::error::Error for VerifyError {}

/// The HMAC key a secret stands for. `whsec_<base64>` (Standard Webhooks' form) is the decoded
/// bytes; any other secret is a raw one, used as its UTF-8 bytes.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).map_err(|_| VerifyError::Secret)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(VerifyError::Secret);
    }
    Ok(key)
}

/// Checks a delivery against the raw request `body`, as received, before any JSON parsing: one
/// `v1` entry of the signature header must be the base64 HMAC-SHA256, under the key of `secret`
/// ([`signing_key`]), of `"{id}.{timestamp}.{body}"`, compared in constant time; and the timestamp
/// must be within `tolerance` of `now`. Entries of other versions (e.g. `v1a`) are ignored.
pub fn verify(
    secret: &str,
    headers: Headers<'_>,
    body: impl AsRef<[u8]>,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let key = signing_key(secret)?;
    let timestamp = headers.timestamp.trim();
    if headers.id.is_empty()
        || timestamp.is_empty()
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VerifyError::Malformed);
    }
    let seconds: u64 = timestamp.parse().map_err(|_| VerifyError::Malformed)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| VerifyError::Expired)?
        .as_secs();
    if now.abs_diff(seconds) > tolerance.as_secs() {
        return Err(VerifyError::Expired);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any size");
    mac.update(format!("{}.{seconds}.", headers.id).as_bytes());
    mac.update(body.as_ref());
    let matches = headers
        .signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
        // verify_slice compares in constant time.
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}
