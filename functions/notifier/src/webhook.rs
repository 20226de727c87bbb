//! The webhook a delivery is POSTed to, and its Standard Webhooks signature.

use crate::verify::signing_key;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// The outbox id: the same for every attempt at one delivery, for the receiver to deduplicate on.
pub const ID_HEADER: &str = "webhook-id";
/// When this attempt was signed, in unix seconds: every attempt is signed afresh.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (see [`crate::verify`] and
/// docs/webhooks.md).
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How long one delivery may take, connection included, unless `WEBHOOK_TIMEOUT_SECONDS` says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    /// `whsec_<base64 key>`, or a raw key used as its UTF-8 bytes.
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
    #[error(
        "the webhook signing key starts with whsec_ but the rest is not base64 of a key: write \
         it as whsec_<base64> (Standard Webhooks), or as a raw key without the prefix"
    )]
    InvalidSecret,
    #[error("could not read the webhook signing key: {0}")]
    Secret(#[from] seatbook_core::db::secret::SecretError),
    #[error("could not build the webhook HTTP client: {0}")]
    Client(reqwest::Error),
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

/// A configured webhook. Cloning it is cheap: the clones share one HTTP client (and its
/// connections) and one key.
#[derive(Clone)]
pub struct Webhook {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    key: SecretSlice<u8>,
    client: reqwest::Client,
    timeout: Duration,
}

impl Webhook {
    /// A webhook with the default timeout ([`DEFAULT_TIMEOUT`]).
    pub fn new(settings: WebhookSettings) -> Result<Self, WebhookError> {
        Self::with_timeout(settings, DEFAULT_TIMEOUT)
    }

    /// Each delivery gets `timeout` in all. Redirects are not followed: a 3xx is a failed attempt
    /// (a signed delivery goes to the configured URL or nowhere). An empty key is refused, and so
    /// is a `whsec_` one that is not base64.
    pub fn with_timeout(
        settings: WebhookSettings,
        timeout: Duration,
    ) -> Result<Self, WebhookError> {
        let secret = settings.secret.expose_secret();
        if secret.trim().is_empty() {
            return Err(WebhookError::MissingSecret);
        }
        let key = signing_key(secret).map_err(|_| WebhookError::InvalidSecret)?;
        seatbook_core::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookError::Client(e.without_url()))?;
        Ok(Webhook {
            inner: Arc::new(Inner {
                url: settings.url,
                key: key.into(),
                client,
                timeout,
            }),
        })
    }

    /// The longest one delivery can take.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// POSTs one delivery; `Err` carries what went wrong, for the outbox's `last_error` and the
    /// logs. It never contains the webhook's URL, which often carries a token of its own.
    pub async fn send(&self, delivery_id: i64, body: &str) -> Result<(), String> {
        let inner = &*self.inner;
        let id = delivery_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let response = inner
            .client
            .post(&inner.url)
            .header("content-type", "application/json")
            .header(ID_HEADER, &id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(inner.key.expose_secret(), &id, timestamp, body),
            )
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| self.request_failed(e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map_or_else(|| "none".to_owned(), origin_only);
            Err(format!(
                "webhook answered {status} (Location: {location}); redirects are not followed"
            ))
        } else {
            Err(format!("webhook answered {status}"))
        }
    }

    /// What went wrong with a request, with its causes, and without the URL: reqwest puts the
    /// whole URL in its errors (`without_url` takes it out), and the causes are scrubbed of it too.
    fn request_failed(&self, error: reqwest::Error) -> String {
        let timed_out = error.is_timeout();
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        let message = scrub_url(&message, &self.inner.url);
        if timed_out {
            format!(
                "no answer within the timeout of {:?}: {message}",
                self.inner.timeout
            )
        } else {
            format!("request failed: {message}")
        }
    }
}

/// `message` with the webhook URL, and its path and query, replaced by `<webhook URL>`.
fn scrub_url(message: &str, url: &str) -> String {
    let mut scrubbed = message.replace(url, "<webhook URL>");
    if let Ok(parsed) = reqwest::Url::parse(url) {
        let path_and_query = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_owned(),
        };
        for secretive in [path_and_query.as_str(), parsed.path()] {
            if secretive.len() > 1 {
                scrubbed = scrubbed.replace(secretive, "<webhook URL>");
            }
        }
        if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
            scrubbed = scrubbed.replace(query, "<webhook URL>");
        }
    }
    scrubbed
}

/// A redirect's target as its scheme and host only: a redirect to the same URL over HTTPS would
/// otherwise copy the webhook's own path (and any token in it) into `last_error`.
fn origin_only(location: &str) -> String {
    match reqwest::Url::parse(location) {
        Ok(url) => format!("{}/…", url.origin().ascii_serialization()),
        Err(_) => "a path on the same host, not shown".to_owned(),
    }
}

/// The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256, under `key`, of
/// `"{id}.{timestamp}.{body}"`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{verify, Headers, VerifyError, DEFAULT_TOLERANCE};
    use std::collections::HashMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The worked example of docs/webhooks.md.
    const EXAMPLE_SECRET: &str = "whsec_PtA8CpQeRZxADQBaC547Aza+QlYIp4FaVDWRMujBf8M=";
    const EXAMPLE_ID: &str = "4242";
    const EXAMPLE_T: i64 = 1_798_830_000;
    const EXAMPLE_BODY: &str = r#"{"type": "booking.confirmed", "user_id": "alice", "event_id": 42, "seat_ids": [101, 102], "booking_id": "0b6f2a1e-7c3d-4e5f-9a8b-1c2d3e4f5a6b", "total_cents": 9000, "confirmed_at": "2027-01-01T18:59:58.21493+00:00"}"#;
    const EXAMPLE_SIGNATURE: &str = "v1,4Fkd7+GPC8isMkfQ+5I4fszKinK4NW7Wug+sA2vfSUQ=";
    const DOC: &str = include_str!("../../../docs/webhooks.md");

    /// The test vector of the Standard Webhooks reference libraries (their "sign function works"
    /// test), checked independently with
    /// `openssl dgst -sha256 -mac HMAC -macopt hexkey:<key as hex> -binary | base64`.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_T: i64 = 1_614_265_330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds as u64)
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> Headers<'a> {
        Headers {
            id,
            timestamp,
            signature,
        }
    }

    fn signed(secret: &str, id: &str, t: i64, body: &str) -> String {
        signature(&signing_key(secret).unwrap(), id, t, body)
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_one_by_the_specifications_test_vector() {
        assert_eq!(
            signed(SPEC_SECRET, SPEC_ID, SPEC_T, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let spec = headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
        assert_eq!(
            verify(
                SPEC_SECRET,
                spec,
                SPEC_BODY,
                at(SPEC_T + 60),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
        // Padding is optional in a secret: whsec_AAEC and whsec_AAECAw (unpadded) both decode.
        assert_eq!(signing_key("whsec_AAECAw").unwrap(), [0, 1, 2, 3]);
        assert_eq!(signing_key("whsec_AAECAw==").unwrap(), [0, 1, 2, 3]);
    }

    #[test]
    fn a_secret_without_the_whsec_prefix_is_a_raw_key_and_a_bad_whsec_one_is_refused() {
        assert_eq!(signing_key("s3cret").unwrap(), b"s3cret");
        assert_eq!(signing_key("whsec_AAEC").unwrap(), [0, 1, 2]);
        for bad in ["", "whsec_", "whsec_not base64!", "whsec_A"] {
            assert_eq!(signing_key(bad), Err(VerifyError::Secret), "{bad:?}");
        }
        let settings = |secret: &str| WebhookSettings {
            url: "https://example.com/hook".to_owned(),
            secret: secret.to_owned().into(),
        };
        assert!(matches!(
            Webhook::new(settings("whsec_%%%")),
            Err(WebhookError::InvalidSecret)
        ));
        assert!(Webhook::new(settings("a-raw-key")).is_ok());
        assert!(Webhook::new(settings(EXAMPLE_SECRET)).is_ok());
    }

    #[test]
    fn the_worked_example_in_the_docs_is_a_real_signature_that_verifies() {
        let signature = signed(EXAMPLE_SECRET, EXAMPLE_ID, EXAMPLE_T, EXAMPLE_BODY);
        assert_eq!(signature, EXAMPLE_SIGNATURE);
        for shown in [
            EXAMPLE_SECRET,
            EXAMPLE_BODY,
            EXAMPLE_SIGNATURE,
            "webhook-id: 4242",
            "webhook-timestamp: 1798830000",
        ] {
            assert!(DOC.contains(shown), "docs/webhooks.md shows {shown}");
        }
        assert_eq!(
            verify(
                EXAMPLE_SECRET,
                headers(EXAMPLE_ID, "1798830000", EXAMPLE_SIGNATURE),
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
        let signature = signed("k", "7", 1_000_000, "{}");
        let sent = headers("7", "1000000", &signature);
        for now in [1_000_000, 1_000_300, 999_700] {
            assert_eq!(verify("k", sent, "{}", at(now), DEFAULT_TOLERANCE), Ok(()));
        }
        for now in [1_000_301, 999_699] {
            assert_eq!(
                verify("k", sent, "{}", at(now), DEFAULT_TOLERANCE),
                Err(VerifyError::Expired)
            );
        }
    }

    #[test]
    fn verify_refuses_another_key_or_a_changed_id_timestamp_or_body() {
        let signature = signed("k", "7", 1_000_000, r#"{"a":1}"#);
        let now = at(1_000_000);
        let check = |secret: &str, id: &str, t: &str, body: &str| {
            verify(
                secret,
                headers(id, t, &signature),
                body,
                now,
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(check("k", "7", "1000000", r#"{"a":1}"#), Ok(()));
        for (secret, id, t, body) in [
            ("other", "7", "1000000", r#"{"a":1}"#),
            ("k", "8", "1000000", r#"{"a":1}"#),
            ("k", "7", "1000001", r#"{"a":1}"#),
            ("k", "7", "1000000", r#"{"a":2}"#),
        ] {
            assert_eq!(
                check(secret, id, t, body),
                Err(VerifyError::Mismatch),
                "{secret} {id} {t} {body}"
            );
        }
    }

    #[test]
    fn verify_accepts_any_matching_v1_among_several_and_ignores_other_versions() {
        let good = signed("k", "7", 1_000_000, "{}");
        let other = signed("another key", "7", 1_000_000, "{}");
        let encoded = good.strip_prefix("v1,").unwrap();
        let now = at(1_000_000);
        for accepted in [
            format!("{other} {good}"),
            format!("v1a,{encoded} v2,xyz {good}"),
            format!("v1,not-base64 garbage {good} {other}"),
        ] {
            assert_eq!(
                verify(
                    "k",
                    headers("7", "1000000", &accepted),
                    "{}",
                    now,
                    DEFAULT_TOLERANCE
                ),
                Ok(()),
                "{accepted}"
            );
        }
        for refused in [
            other.clone(),
            format!("v1a,{encoded}"),
            format!("v2,{encoded}"),
            encoded.to_owned(),
            format!("v1,{}", &encoded[..20]),
            "v1,".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                verify(
                    "k",
                    headers("7", "1000000", &refused),
                    "{}",
                    now,
                    DEFAULT_TOLERANCE
                ),
                Err(VerifyError::Mismatch),
                "{refused}"
            );
        }
    }

    #[test]
    fn verify_refuses_a_missing_id_a_timestamp_that_is_not_unix_seconds_or_a_bad_secret() {
        let signature = signed("k", "7", 1_000_000, "{}");
        let now = at(1_000_000);
        for (id, t) in [
            ("", "1000000"),
            ("7", ""),
            ("7", "abc"),
            ("7", "-5"),
            ("7", "1e6"),
            ("7", "99999999999999999999999"),
        ] {
            assert_eq!(
                verify(
                    "k",
                    headers(id, t, &signature),
                    "{}",
                    now,
                    DEFAULT_TOLERANCE
                ),
                Err(VerifyError::Malformed),
                "{id:?} {t:?}"
            );
        }
        assert_eq!(
            verify(
                "whsec_!",
                headers("7", "1000000", &signature),
                "{}",
                now,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Secret)
        );
    }

    #[test]
    fn an_error_message_never_carries_the_webhook_url_or_its_path_or_query() {
        let url = "https://hooks.example.com/t/0ps3cr3t?token=abc123";
        let message = format!(
            "error sending request for url ({url}): GET /t/0ps3cr3t?token=abc123 and /t/0ps3cr3t"
        );
        let scrubbed = scrub_url(&message, url);
        for secret in ["0ps3cr3t", "abc123", "hooks.example.com/t"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert_eq!(
            origin_only("https://hooks.example.com/t/0ps3cr3t?token=abc123"),
            "https://hooks.example.com/…"
        );
        assert!(!origin_only("/t/0ps3cr3t").contains("0ps3cr3t"));
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
