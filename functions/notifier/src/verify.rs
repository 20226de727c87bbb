//! Verifying a Seatbook webhook delivery. A receiver can copy this file as it is: it needs only the
//! `hmac` (0.12) and `sha2` (0.10) crates. docs/webhooks.md describes the header.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far the signed timestamp may be from the receiver's clock, either way: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is not `t=<unix seconds>,v1=<hex>`.
    Malformed,
    /// `t` is further from `now` than the tolerance: a replay, or a clock far off.
    Expired,
    /// No `v1` signature matches: another key, or a changed body or timestamp.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyError::Malformed => "the signature header is not t=<unix seconds>,v1=<hex>",
            VerifyError::Expired => "the signature's timestamp is outside the tolerance",
            VerifyError::Mismatch => "no signature matches the body",
        })
    }
}

impl std::error::Error for VerifyError {}

/// Checks `header_value` (the `Seatbook-Signature` header) against the raw request `body`, as
/// received, before any JSON parsing: `v1` must be the HMAC-SHA256 under `secret` of
/// `"<t>.<body>"`, compared in constant time, and `t` must be within `tolerance` of `now`.
/// Several `v1` entries are accepted (any one may match); other entries are ignored.
pub fn verify(
    secret: impl AsRef<[u8]>,
    header_value: &str,
    body: impl AsRef<[u8]>,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for entry in header_value.split(',') {
        match entry.trim().split_once('=') {
            Some(("t", t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                let seconds: u64 = t.parse().map_err(|_| VerifyError::Malformed)?;
                timestamp = Some((t, seconds));
            }
            Some(("t", _)) => return Err(VerifyError::Malformed),
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(VerifyError::Malformed)?),
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let (t, seconds) = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| VerifyError::Expired)?
        .as_secs();
    if now.abs_diff(seconds) > tolerance.as_secs() {
        return Err(VerifyError::Expired);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any size");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body.as_ref());
    // verify_slice compares in constant time.
    if signatures
        .iter()
        .any(|signature| mac.clone().verify_slice(signature).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.len();
    if digits == 0 || !digits.is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}
