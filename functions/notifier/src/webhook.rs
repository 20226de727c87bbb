//! The webhook a delivery is POSTed to, and its signature.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is signed too, so a
/// receiver can refuse replays of old deliveries (see [`crate::verify`] and docs/webhooks.md).
pub const SIGNATURE_HEADER: &str = "seatbook-signature";
/// The outbox id: the same for every attempt at one delivery, for the receiver to deduplicate.
pub const DELIVERY_HEADER: &str = "seatbook-delivery";

/// How long one delivery may take, connection included, unless `WEBHOOK_TIMEOUT_SECONDS` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: SecretString,
}

/// Why the notifier cannot deliver: it refuses to start rather than send unsigned deliveries.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "WEBHOOK_URL is set but the webhook signing key is missing or empty: set \
         WEBHOOK_SECRET_ARN (a Secrets Manager secret holding the key) or WEBHOOK_SECRET; \
         the notifier does not send unsigned deliveries"
    )]
    MissingSecret,
    #[error("could not read the webhook signing key: {0}")]
    Secret(#[from] seatbook_core::db::secret::SecretError),
    #[error("could not build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl WebhookSettings {
    /// `WEBHOOK_URL` and `WEBHOOK_SECRET`; `None` when no URL is configured. With a URL, the key
    /// must be there: `WEBHOOK_SECRET`, or `WEBHOOK_SECRET_ARN` for
    /// [`Self::from_env_or_secrets_manager`] to read.
    pub fn from_env() -> Result<Option<Self>, WebhookError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, WebhookError> {
        let Some(url) = lookup("WEBHOOK_URL").filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let secret = lookup("WEBHOOK_SECRET").unwrap_or_default();
        let from_arn = lookup("WEBHOOK_SECRET_ARN").is_some_and(|arn| !arn.trim().is_empty());
        if secret.trim().is_empty() && !from_arn {
            return Err(WebhookError::MissingSecret);
        }
        Ok(Some(WebhookSettings {
            url,
            secret: SecretString::from(secret),
        }))
    }

    /// As deployed: `WEBHOOK_URL`, and the signing key read once from the Secrets Manager secret
    /// `WEBHOOK_SECRET_ARN` (falling back to `WEBHOOK_SECRET` when no ARN is set). An empty key,
    /// wherever it comes from, is an error.
    pub async fn from_env_or_secrets_manager() -> Result<Option<Self>, WebhookError> {
        let Some(mut settings) = Self::from_env()? else {
            return Ok(None);
        };
        if let Some(arn) = std::env::var("WEBHOOK_SECRET_ARN")
            .ok()
            .filter(|arn| !arn.trim().is_empty())
        {
            settings.secret = seatbook_core::db::secret::read_secret_string(&arn).await?;
        }
        if settings.secret.expose_secret().trim().is_empty() {
            return Err(WebhookError::MissingSecret);
        }
        Ok(Some(settings))
    }
}

pub struct Webhook {
    settings: WebhookSettings,
    client: reqwest::Client,
    timeout: Duration,
}

impl Webhook {
    /// A webhook with the default timeout ([`DEFAULT_TIMEOUT`]).
    pub fn new(settings: WebhookSettings) -> Result<Self, WebhookError> {
        Self::with_timeout(settings, DEFAULT_TIMEOUT)
    }

    /// Each delivery gets `timeout` in all. Redirects are not followed: a 3xx is a failed attempt
    /// (a signed delivery goes to the configured URL or nowhere). An empty key is refused.
    pub fn with_timeout(
        settings: WebhookSettings,
        timeout: Duration,
    ) -> Result<Self, WebhookError> {
        if settings.secret.expose_secret().trim().is_empty() {
            return Err(WebhookError::MissingSecret);
        }
        seatbook_core::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Webhook {
            settings,
            client,
            timeout,
        })
    }

    /// The longest one delivery can take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs one delivery; `Err` carries what went wrong, for the outbox's `last_error`.
    pub async fn send(&self, delivery_id: i64, body: &str) -> Result<(), String> {
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header(DELIVERY_HEADER, delivery_id.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(self.settings.secret.expose_secret(), timestamp, body),
            )
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within the timeout of {:?}: {e}", self.timeout)
                } else {
                    format!("request failed: {e}")
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("none");
            Err(format!(
                "webhook answered {status} (Location: {location}); redirects are not followed"
            ))
        } else {
            Err(format!("webhook answered {status}"))
        }
    }
}

pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{verify, VerifyError, DEFAULT_TOLERANCE};
    use std::collections::HashMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The worked example of docs/webhooks.md.
    const EXAMPLE_SECRET: &str = "whsec_5d1c0a7e2f8b4c6d9e0f1a2b3c4d5e6f";
    const EXAMPLE_T: i64 = 1_798_830_000;
    const EXAMPLE_BODY: &str = r#"{"type": "booking.confirmed", "user_id": "alice", "event_id": 42, "seat_ids": [101, 102], "booking_id": "0b6f2a1e-7c3d-4e5f-9a8b-1c2d3e4f5a6b", "total_cents": 9000, "confirmed_at": "2027-01-01T18:59:58.21493+00:00"}"#;
    const EXAMPLE_HEADER: &str =
        "t=1798830000,v1=b3b893c0a5ad66f274eeeb084394df2ce4015fc30370b742f693cf67c77186ec";
    const DOC: &str = include_str!("../../../docs/webhooks.md");

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: printf "1.{}" | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn the_worked_example_in_the_docs_is_a_real_signature_that_verifies() {
        let header = signature(EXAMPLE_SECRET, EXAMPLE_T, EXAMPLE_BODY);
        assert_eq!(header, EXAMPLE_HEADER);
        for shown in [EXAMPLE_SECRET, EXAMPLE_BODY, EXAMPLE_HEADER] {
            assert!(DOC.contains(shown), "docs/webhooks.md shows {shown}");
        }
        assert_eq!(
            verify(
                EXAMPLE_SECRET,
                EXAMPLE_HEADER,
                EXAMPLE_BODY,
                at(EXAMPLE_T + 60),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn the_verification_function_in_the_docs_is_the_one_shipped_and_tested_here() {
        assert!(
            DOC.contains(include_str!("verify.rs")),
            "docs/webhooks.md must show functions/notifier/src/verify.rs verbatim"
        );
    }

    #[test]
    fn verify_accepts_what_the_notifier_signs_within_five_minutes_either_way() {
        let header = signature("k", 1_000_000, "{}");
        for now in [1_000_000, 1_000_300, 999_700] {
            assert_eq!(
                verify("k", &header, "{}", at(now), DEFAULT_TOLERANCE),
                Ok(())
            );
        }
        for now in [1_000_301, 999_699] {
            assert_eq!(
                verify("k", &header, "{}", at(now), DEFAULT_TOLERANCE),
                Err(VerifyError::Expired)
            );
        }
    }

    #[test]
    fn verify_refuses_another_key_a_changed_body_or_a_changed_timestamp() {
        let header = signature("k", 1_000_000, r#"{"a":1}"#);
        let now = at(1_000_000);
        assert_eq!(
            verify("other", &header, r#"{"a":1}"#, now, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("k", &header, r#"{"a":2}"#, now, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        let moved = header.replace("t=1000000", "t=1000001");
        assert_eq!(
            verify("k", &moved, r#"{"a":1}"#, now, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn verify_accepts_any_matching_v1_and_ignores_unknown_entries() {
        let header = signature("k", 1_000_000, "{}");
        let v1 = header.split_once(",v1=").unwrap().1;
        let rotated = format!("t=1000000,v1={},v1={v1},v2=abc", "00".repeat(32));
        assert_eq!(
            verify("k", &rotated, "{}", at(1_000_000), DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn verify_refuses_malformed_headers() {
        for header in [
            "",
            "v1=00",
            "t=1000000",
            "t=abc,v1=00",
            "t=-5,v1=00",
            "t=1000000,v1=0g",
            "t=1000000,v1=+0",
            "t=1000000,v1=abc",
            "t=1000000,v1=",
            "t=1000000;v1=00",
        ] {
            assert_eq!(
                verify("k", header, "{}", at(1_000_000), DEFAULT_TOLERANCE),
                Err(VerifyError::Malformed),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_webhook_url_without_a_signing_key_fails_closed() {
        for vars in [
            &[("WEBHOOK_URL", "https://example.com/hook")][..],
            &[
                ("WEBHOOK_URL", "https://example.com/hook"),
                ("WEBHOOK_SECRET", ""),
            ][..],
            &[
                ("WEBHOOK_URL", "https://example.com/hook"),
                ("WEBHOOK_SECRET", "  "),
                ("WEBHOOK_SECRET_ARN", ""),
            ][..],
        ] {
            let err = WebhookSettings::from_lookup(lookup(vars)).unwrap_err();
            assert!(matches!(err, WebhookError::MissingSecret), "{vars:?}");
            assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");
        }
        let empty = WebhookSettings {
            url: "https://example.com/hook".to_owned(),
            secret: String::new().into(),
        };
        assert!(matches!(
            Webhook::new(empty),
            Err(WebhookError::MissingSecret)
        ));
    }

    #[test]
    fn no_webhook_url_means_no_webhook_and_a_key_or_its_arn_is_enough() {
        assert!(WebhookSettings::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(WebhookSettings::from_lookup(lookup(&[
            ("WEBHOOK_URL", " "),
            ("WEBHOOK_SECRET", "")
        ]))
        .unwrap()
        .is_none());
        let keyed = WebhookSettings::from_lookup(lookup(&[
            ("WEBHOOK_URL", "https://example.com/hook"),
            ("WEBHOOK_SECRET", "s3cret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(keyed.secret.expose_secret(), "s3cret");
        // The key is read from Secrets Manager at start; an empty one is refused then.
        assert!(WebhookSettings::from_lookup(lookup(&[
            ("WEBHOOK_URL", "https://example.com/hook"),
            (
                "WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:k"
            ),
        ]))
        .unwrap()
        .is_some());
    }
}
