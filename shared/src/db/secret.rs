//! Database credentials kept in AWS Secrets Manager.
//!
//! Deployed, a function does not know the database password: `DB_SECRET_ARN` names a secret whose
//! value is the JSON RDS (or `AWS::SecretsManager::SecretTargetAttachment`) writes:
//! `{"username", "password", "host", "port", "dbname", "engine"}`. The secret is read once per
//! execution environment, at cold start, and kept in memory. When PostgreSQL (or RDS Proxy) later
//! rejects the password (SQLSTATE 28P01: the secret was rotated), the connector asks for a
//! [`DbSecret::refresh_after`] and tries once more with what Secrets Manager holds now.

use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a secret's current value comes from: Secrets Manager, or a fake in tests.
pub trait FetchSecret: Send + Sync + 'static {
    /// The secret's current `SecretString`.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>>;
}

/// The database credentials of one secret, as this process last read them.
pub struct DbSecret {
    id: String,
    source: Box<dyn FetchSecret>,
    current: RwLock<Option<Snapshot>>,
    /// One refresh at a time: concurrent connection attempts that all saw the old password wait for
    /// the same fetch instead of each calling Secrets Manager.
    refreshing: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

/// One reading of the secret. `generation` counts readings, so a caller can say which one failed.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub credentials: Arc<Credentials>,
}

/// The fields of the secret this service uses. Unknown fields (`engine`, `dbInstanceIdentifier`)
/// are ignored.
#[derive(Deserialize)]
pub struct Credentials {
    pub username: String,
    #[serde(deserialize_with = "secret_string")]
    pub password: SecretString,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    #[serde(default)]
    pub dbname: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {id} from Secrets Manager: {source}")]
    Fetch {
        id: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "secret {id} is not the expected JSON {{\"username\", \"password\", \"host\"?, \"port\"?, \"dbname\"?}}: {reason}"
    )]
    Malformed { id: String, reason: String },
}

impl DbSecret {
    /// The secret `arn` in AWS Secrets Manager. Nothing is fetched until first needed.
    pub fn from_secrets_manager(arn: impl Into<String>) -> Self {
        let arn = arn.into();
        Self::with_source(arn.clone(), SecretsManager::new(arn))
    }

    /// A secret read through `source`; `id` names it in logs and errors.
    pub fn with_source(id: impl Into<String>, source: impl FetchSecret) -> Self {
        DbSecret {
            id: id.into(),
            source: Box::new(source),
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many times the secret has been read from its source.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The credentials in memory, reading the secret first if this process has not yet.
    pub async fn current(&self) -> Result<Snapshot, SecretError> {
        if let Some(snapshot) = self.cached() {
            return Ok(snapshot);
        }
        self.refresh_after(None).await
    }

    /// Reads the secret again because the credentials of `stale` were refused, unless another
    /// caller already replaced them: then their newer reading is returned without a fetch.
    pub async fn refresh_after(&self, stale: Option<u64>) -> Result<Snapshot, SecretError> {
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(snapshot) = self.cached() {
            if Some(snapshot.generation) != stale {
                return Ok(snapshot);
            }
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let raw = self
            .source
            .fetch()
            .await
            .map_err(|source| SecretError::Fetch {
                id: self.id.clone(),
                source,
            })?;
        let credentials: Credentials =
            serde_json::from_str(&raw).map_err(|e| SecretError::Malformed {
                id: self.id.clone(),
                reason: describe_without_values(&e),
            })?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let generation = current.as_ref().map_or(1, |s| s.generation + 1);
        let snapshot = Snapshot {
            generation,
            credentials: Arc::new(credentials),
        };
        *current = Some(snapshot.clone());
        tracing::info!(secret = %self.id, generation, "read database credentials");
        Ok(snapshot)
    }

    fn cached(&self) -> Option<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSecret").field("id", &self.id).finish()
    }
}

/// What is wrong with the secret's JSON, without serde's message: that may quote a value, and a
/// value here may be the password.
fn describe_without_values(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
        serde_json::error::Category::Data => {
            "a field is missing or has the wrong type (need string username and password)"
        }
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

fn secret_string<'de, D: serde::Deserializer<'de>>(de: D) -> Result<SecretString, D::Error> {
    String::deserialize(de).map(SecretString::from)
}

/// `"port": 5432` (what RDS writes) or `"port": "5432"`.
fn port<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    match Option::<Port>::deserialize(de)? {
        None => Ok(None),
        Some(Port::Number(n)) => Ok(Some(n)),
        Some(Port::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("port is not a port number")),
    }
}

/// The real source: `GetSecretValue` through the AWS SDK.
///
/// The SDK is configured from the environment Lambda gives every function ([`sdk_config`]). Its
/// HTTPS client is hyper + rustls on the `ring` provider, the same TLS stack as the rest of the
/// process: the SDK's default client would compile in aws-lc.
struct SecretsManager {
    arn: String,
    client: tokio::sync::OnceCell<aws_sdk_secretsmanager::Client>,
}

impl SecretsManager {
    fn new(arn: String) -> Self {
        SecretsManager {
            arn,
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_secretsmanager::Client {
        self.client
            .get_or_init(|| async {
                let config = sdk_config(|name| std::env::var(name).ok(), https_client());
                aws_sdk_secretsmanager::Client::from_conf(config)
            })
            .await
    }
}

/// hyper + rustls on `ring`, the process's one TLS stack.
fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    crate::tls::install_crypto_provider();
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK's configuration from what Lambda puts in every function's environment: `AWS_REGION`
/// and the execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`), which stay valid for the execution environment's life; and, for a local
/// endpoint, `AWS_ENDPOINT_URL_SECRETS_MANAGER` or `AWS_ENDPOINT_URL`. Not aws-config's provider
/// chains (profiles, SSO, instance metadata, STS): Lambda needs none of them, and they cost every
/// CI run a minute of compiling (decision 22). Missing settings fail the fetch, which says which.
fn sdk_config(
    env: impl Fn(&str) -> Option<String>,
    http: impl aws_sdk_secretsmanager::config::HttpClient + 'static,
) -> aws_sdk_secretsmanager::Config {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let env = |name: &str| env(name).filter(|value| !value.is_empty());
    let mut config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(
            env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .map(Region::new),
        )
        .http_client(http);
    if let (Some(key), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        let session_token = env("AWS_SESSION_TOKEN");
        config = config.credentials_provider(Credentials::new(
            key,
            secret,
            session_token,
            None,
            "environment",
        ));
    }
    if let Some(url) = env("AWS_ENDPOINT_URL_SECRETS_MANAGER").or_else(|| env("AWS_ENDPOINT_URL")) {
        config = config.endpoint_url(url);
    }
    config.build()
}

impl FetchSecret for SecretsManager {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let output = self
                .client()
                .await
                .get_secret_value()
                .secret_id(&self.arn)
                .send()
                .await
                .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
            output.secret_string().map(str::to_owned).ok_or_else(|| {
                "the secret has no SecretString (binary secrets are not supported)".into()
            })
        })
    }
}

/// Reads a plain-text secret (such as the webhook signing key) from Secrets Manager, once.
pub async fn read_secret_string(arn: &str) -> Result<SecretString, SecretError> {
    SecretsManager::new(arn.to_owned())
        .fetch()
        .await
        .map(SecretString::from)
        .map_err(|source| SecretError::Fetch {
            id: arn.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::sync::Mutex;

    /// Hands out the queued values in order, then repeats the last one.
    struct Queue(Mutex<Vec<String>>);

    impl FetchSecret for Queue {
        fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send + '_>> {
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut values = self.0.lock().unwrap();
                if values.len() > 1 {
                    Ok(values.remove(0))
                } else {
                    values.first().cloned().ok_or_else(|| "empty".into())
                }
            })
        }
    }

    fn secret(values: &[&str]) -> Arc<DbSecret> {
        Arc::new(DbSecret::with_source(
            "test-secret",
            Queue(Mutex::new(values.iter().map(|s| s.to_string()).collect())),
        ))
    }

    #[test]
    fn the_secret_rds_writes_is_understood_and_never_printed() {
        let c: Credentials = serde_json::from_str(
            r#"{"engine":"postgres","host":"db.abc.eu-west-1.rds.amazonaws.com","port":5432,
                "username":"seatbook","password":"hunter2","dbname":"seatbook",
                "dbInstanceIdentifier":"x"}"#,
        )
        .unwrap();
        assert_eq!(c.username, "seatbook");
        assert_eq!(c.password.expose_secret(), "hunter2");
        assert_eq!(c.port, Some(5432));
        assert_eq!(c.dbname.as_deref(), Some("seatbook"));
        assert!(!format!("{c:?}").contains("hunter2"));

        let minimal: Credentials =
            serde_json::from_str(r#"{"username":"u","password":"p","port":"6432"}"#).unwrap();
        assert_eq!((minimal.host, minimal.port), (None, Some(6432)));
    }

    #[tokio::test]
    async fn a_malformed_secret_is_an_error_that_does_not_echo_it() {
        for raw in [
            r#"{"username":"u","passwd":"hunter2"}"#,
            r#"{"username":"u","password":["hunter2"]}"#,
            r#"{"username":"hunter2","password":424242}"#,
            r#"{"username":"u","password":"hunter2"#,
        ] {
            let err = secret(&[raw]).current().await.unwrap_err().to_string();
            assert!(err.contains("test-secret"), "{err}");
            assert!(!err.contains("hunter2") && !err.contains("424242"), "{err}");
        }
    }

    #[tokio::test]
    async fn the_secret_is_read_once_and_kept() {
        let s = secret(&[r#"{"username":"u","password":"one"}"#]);
        for _ in 0..5 {
            let snap = s.current().await.unwrap();
            assert_eq!(snap.credentials.password.expose_secret(), "one");
        }
        assert_eq!(s.fetches(), 1);
    }

    #[tokio::test]
    async fn many_refused_connections_cause_one_refresh() {
        let s = secret(&[
            r#"{"username":"u","password":"old"}"#,
            r#"{"username":"u","password":"new"}"#,
        ]);
        let stale = s.current().await.unwrap().generation;
        // Ten connection attempts were all refused with the old password at once.
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.refresh_after(Some(stale)).await.unwrap() })
            })
            .collect();
        for task in tasks {
            let snap = task.await.unwrap();
            assert_eq!(snap.credentials.password.expose_secret(), "new");
            assert_eq!(snap.generation, stale + 1);
        }
        assert_eq!(s.fetches(), 2, "one read at start, one refresh");
        // A later refusal of the new password reads again.
        s.refresh_after(Some(stale + 1)).await.unwrap();
        assert_eq!(s.fetches(), 3);
    }

    fn sdk_config_from(vars: &[(&str, &str)]) -> aws_sdk_secretsmanager::Config {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sdk_config(|name| vars.get(name).cloned(), https_client())
    }

    // The credentials cannot be read back from a `Config`; the Secrets Manager tests against
    // moto (functions/booking/tests/secrets_manager.rs) sign with them.
    #[test]
    fn the_region_is_lambdas_and_an_empty_setting_counts_as_missing() {
        let region = |vars: &[(&str, &str)]| {
            sdk_config_from(vars)
                .region()
                .map(|r| r.as_ref().to_owned())
        };
        assert_eq!(
            region(&[("AWS_REGION", "eu-west-1")]).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region(&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-east-2")]).as_deref(),
            Some("us-east-2")
        );
        assert_eq!(region(&[]), None);
    }
}
