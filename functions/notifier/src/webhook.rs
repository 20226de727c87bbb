//! The webhook a confirmation is POSTed to, and its signature.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is signed too, so a
/// receiver can refuse replays of old deliveries.
pub const SIGNATURE_HEADER: &str = "seatbook-signature";
/// The outbox id: the same for every attempt at one delivery, for the receiver to deduplicate.
pub const DELIVERY_HEADER: &str = "seatbook-delivery";

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: SecretString,
}

impl WebhookSettings {
    /// `WEBHOOK_URL` and `WEBHOOK_SECRET`; `None` when no URL is configured.
    pub fn from_env() -> Option<Self> {
        let url = std::env::var("WEBHOOK_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())?;
        let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_default();
        if secret.is_empty() {
            tracing::warn!("WEBHOOK_SECRET is empty: deliveries are signed with an empty key");
        }
        Some(WebhookSettings {
            url,
            secret: SecretString::from(secret),
        })
    }

    /// As deployed: `WEBHOOK_URL`, and the signing key read once from the Secrets Manager secret
    /// `WEBHOOK_SECRET_ARN` (falling back to `WEBHOOK_SECRET` when no ARN is set).
    pub async fn from_env_or_secrets_manager(
    ) -> Result<Option<Self>, seatbook_core::db::secret::SecretError> {
        let Some(mut settings) = Self::from_env() else {
            return Ok(None);
        };
        if let Some(arn) = std::env::var("WEBHOOK_SECRET_ARN")
            .ok()
            .filter(|arn| !arn.is_empty())
        {
            settings.secret = seatbook_core::db::secret::read_secret_string(&arn).await?;
        }
        Ok(Some(settings))
    }
}

pub struct Webhook {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        seatbook_core::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()?;
        Ok(Webhook { settings, client })
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
            .map_err(|e| format!("request failed: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", response.status()))
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
    use super::signature;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: printf "1.{}" | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
