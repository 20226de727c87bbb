//! Typed configuration, read once from the environment at cold start.

use crate::admission::{KeySet, KeySource};
use crate::db::secret::DbSecret;
use secrecy::{ExposeSecret, SecretString};
use std::env;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;

/// Where the local default points: the PostgreSQL every development machine here runs.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/seatbook";

/// Where the local default cache points. `REDIS_URL=` (empty) turns the cache off.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The environment variable `local-api` reads to turn its dev identity off (it is on by default).
/// Lambda binaries have no dev identity to switch on (see `dev_identity`); if they find it set,
/// they say so at cold start and ignore it.
pub const DEV_IDENTITY_VAR: &str = "SEATBOOK_DEV_IDENTITY";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    /// `None`: no cache; reads go to PostgreSQL and nothing is counted.
    pub cache: Option<CacheSettings>,
    /// Log as JSON lines (CloudWatch) rather than human-readable text.
    pub json_logs: bool,
    /// How long a hold reserves its seats (`HOLD_TTL_SECONDS`, default 600).
    pub hold_ttl: Duration,
    /// The per-user write rate limit; `None`: writes are not limited.
    pub rate_limit: Option<RateLimitSettings>,
    /// The waiting room's admission tokens ([`crate::admission`]).
    pub admission: AdmissionSettings,
}

/// Where the admission keys come from, and the tests' knob on admission lifetimes.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// `ADMISSION_KEYS` (the key set's JSON), else `ADMISSION_KEYS_SECRET_ARN` (a Secrets Manager
    /// secret holding it), else a key made up at start that only this process knows.
    pub keys: KeySource,
    /// `WAITING_ROOM_TEST_TTL_SECONDS`, for tests only: every admission lasts this long.
    pub test_ttl: Option<Duration>,
}

/// The per-user write rate limit ([`crate::ratelimit`]): a bucket of `burst` writes that refills
/// at `per_second`, kept in Redis (so it needs the cache's Redis; without one nothing is limited).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// `RATE_LIMIT_PER_USER_PER_SECOND`: the sustained rate, a positive number (`0.5` is one write
    /// every two seconds). Unset, empty or `0` turns the limit off.
    pub per_second: f64,
    /// `RATE_LIMIT_BURST`: how many writes a user may make at once after a pause; a positive
    /// integer, by default twice the rate (rounded up).
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub source: DatabaseSource,
    /// `DB_SSLMODE` (`disable`, `prefer`, `require`), over the URL's `sslmode`. Only `require`
    /// encrypts, and then the server's certificate and name are verified (see [`crate::tls`]).
    pub ssl_mode: Option<SslMode>,
    /// `DB_CA_BUNDLE`: a PEM file whose certificates are trusted besides the built-in roots.
    pub ca_bundle: Option<PathBuf>,
    /// Connections per process. `None` lets the caller choose: a Lambda environment serves one
    /// request at a time and needs at most two; the local server wants more.
    pub pool_max_size: Option<usize>,
}

/// Where the connection details and credentials come from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// `DATABASE_URL`, or the local default when neither it nor `DB_SECRET_ARN` is set.
    Url(SecretString),
    /// `DB_SECRET_ARN` (and no `DATABASE_URL`): credentials from AWS Secrets Manager.
    Secret(SecretSource),
}

#[derive(Debug, Clone)]
pub struct SecretSource {
    /// The secret, read once per process and again after a rotation; shared by every clone of
    /// these settings.
    pub secret: Arc<DbSecret>,
    /// `DB_HOST` (the RDS Proxy endpoint), over the secret's `host` (the instance).
    pub host: Option<String>,
    /// `DB_PORT`, over the secret's `port`; 5432 when neither says.
    pub port: Option<u16>,
    /// `DB_NAME`, over the secret's `dbname`.
    pub dbname: Option<String>,
}

/// The cache's own settings: `REDIS_URL`, `CACHE_PREFIX`, `CACHE_TTL_SECONDS`, `REDIS_TIMEOUT_MS`
/// and `REDIS_CA_FILE` (roots for a Redis whose certificate is not publicly trusted).
pub use seatbook_cache::Settings as CacheSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply an environment of their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database = database_settings(&lookup)?;
        Ok(Settings {
            cache: cache_settings(&lookup, &database)?,
            database,
            json_logs: lookup("LOG_FORMAT").as_deref() == Some("json")
                || lookup("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            hold_ttl: Duration::from_secs(positive(&lookup, "HOLD_TTL_SECONDS", 600)?),
            rate_limit: rate_limit_settings(&lookup)?,
            admission: admission_settings(&lookup)?,
        })
    }
}

impl DatabaseSettings {
    /// The connection configuration without what only the secret knows: for `DATABASE_URL`
    /// all of it; for a secret only the TLS mode (user, password, host, port and database are
    /// filled in at connect time).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config = match &self.source {
            DatabaseSource::Url(url) => url
                .expose_secret()
                .parse()
                .expect("DATABASE_URL was checked when the settings were read"),
            // Credentials from a secret only travel encrypted unless told otherwise.
            DatabaseSource::Secret(_) => {
                let mut config = tokio_postgres::Config::new();
                config.ssl_mode(SslMode::Require);
                config
            }
        };
        if let Some(mode) = self.ssl_mode {
            config.ssl_mode(mode);
        }
        config
    }
}

/// `DATABASE_URL` wins; without it, `DB_SECRET_ARN` with `DB_HOST`, `DB_PORT` and `DB_NAME`;
/// without either, the local default URL. Empty values count as unset (SAM CLI can only blank a
/// variable the template declares, not remove it).
fn database_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<DatabaseSettings, ConfigError> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let source = match (set("DATABASE_URL"), set("DB_SECRET_ARN")) {
        (Some(url), _) => {
            url.parse::<tokio_postgres::Config>()
                .map_err(|e| ConfigError::Invalid {
                    name: "DATABASE_URL",
                    reason: e.to_string(),
                })?;
            DatabaseSource::Url(SecretString::from(url))
        }
        (None, Some(arn)) => DatabaseSource::Secret(SecretSource {
            secret: Arc::new(DbSecret::from_secrets_manager(arn.trim())),
            host: set("DB_HOST"),
            port: parsed("DB_PORT", set("DB_PORT"), "a port number", |_: &u16| true)?,
            dbname: set("DB_NAME"),
        }),
        (None, None) => DatabaseSource::Url(SecretString::from(DEFAULT_DATABASE_URL.to_owned())),
    };
    let ssl_mode = match set("DB_SSLMODE").as_deref().map(str::trim) {
        None => None,
        Some("disable") => Some(SslMode::Disable),
        Some("prefer") => Some(SslMode::Prefer),
        Some("require") => Some(SslMode::Require),
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "DB_SSLMODE",
                reason: format!("expected disable, prefer or require, got {other:?}"),
            })
        }
    };
    let pool_max_size = match lookup("DB_POOL_MAX_SIZE") {
        None => None,
        Some(raw) => Some(
            raw.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "DB_POOL_MAX_SIZE",
                    reason: format!("expected a positive integer, got {raw:?}"),
                })?,
        ),
    };
    Ok(DatabaseSettings {
        source,
        ssl_mode,
        ca_bundle: set("DB_CA_BUNDLE").map(PathBuf::from),
        pool_max_size,
    })
}

/// Keys are namespaced per database by default: two local databases (or two stacks) sharing one
/// Redis must never serve each other's event 1.
fn default_cache_prefix(database: &DatabaseSettings) -> String {
    let dbname = match &database.source {
        DatabaseSource::Url(url) => url
            .expose_secret()
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| c.get_dbname().map(str::to_owned)),
        DatabaseSource::Secret(secret) => secret.dbname.clone(),
    };
    match dbname {
        Some(name) => format!("seatbook-{}", name.replace(['{', '}', ' '], "_")),
        None => "seatbook".to_owned(),
    }
}

fn cache_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    database: &DatabaseSettings,
) -> Result<Option<CacheSettings>, ConfigError> {
    let url = lookup("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    if url.trim().is_empty() {
        return Ok(None);
    }
    seatbook_cache::redis::Client::open(url.as_str()).map_err(|e| ConfigError::Invalid {
        name: "REDIS_URL",
        reason: e.to_string(),
    })?;
    let prefix = lookup("CACHE_PREFIX").unwrap_or_else(|| default_cache_prefix(database));
    if prefix.is_empty() || prefix.contains(['{', '}', ' ']) {
        return Err(ConfigError::Invalid {
            name: "CACHE_PREFIX",
            reason: "must be non-empty, without spaces or braces".to_owned(),
        });
    }
    Ok(Some(CacheSettings {
        url: SecretString::from(url),
        prefix,
        ttl: Duration::from_secs(positive(lookup, "CACHE_TTL_SECONDS", 300)?),
        timeout: Duration::from_millis(positive(lookup, "REDIS_TIMEOUT_MS", 200)?),
        ca_file: lookup("REDIS_CA_FILE")
            .filter(|path| !path.is_empty())
            .map(Into::into),
    }))
}

/// Without admission keys: in a build with dev identity (local-api, `cargo lambda watch`, the
/// tests; never deployed) one well-known key, so that separately running functions agree; in any
/// other build a key made up at start, whose tokens only this process accepts.
fn default_admission_keys() -> KeySet {
    if cfg!(feature = "dev-identity") {
        let dev = r#"{"signing": "dev", "seed": "seatbook local development admission key (never deployed)"}"#;
        KeySet::parse(dev).expect("the development key set is valid")
    } else {
        tracing::warn!(
            "neither ADMISSION_KEYS nor ADMISSION_KEYS_SECRET_ARN is set: admission tokens are \
             signed with a key made up now, which no other process accepts"
        );
        KeySet::ephemeral()
    }
}

fn admission_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<AdmissionSettings, ConfigError> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let keys = match (set("ADMISSION_KEYS"), set("ADMISSION_KEYS_SECRET_ARN")) {
        (Some(json), _) => KeySource::Given(Arc::new(KeySet::parse(&json).map_err(|reason| {
            ConfigError::Invalid {
                name: "ADMISSION_KEYS",
                reason,
            }
        })?)),
        (None, Some(arn)) => KeySource::Secret(arn.trim().to_owned()),
        (None, None) => KeySource::Given(Arc::new(default_admission_keys())),
    };
    let test_ttl = match set("WAITING_ROOM_TEST_TTL_SECONDS") {
        None => None,
        Some(_) => Some(Duration::from_secs(positive(
            lookup,
            "WAITING_ROOM_TEST_TTL_SECONDS",
            1,
        )?)),
    };
    Ok(AdmissionSettings { keys, test_ttl })
}

/// The largest rate accepted: beyond a million writes a second per user a limit means nothing,
/// and the limiter counts in microseconds.
const MAX_RATE_PER_SECOND: f64 = 1_000_000.0;

fn rate_limit_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<RateLimitSettings>, ConfigError> {
    const RATE: &str = "RATE_LIMIT_PER_USER_PER_SECOND";
    const BURST: &str = "RATE_LIMIT_BURST";
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let per_second = parsed(
        RATE,
        set(RATE),
        &format!("a number of writes per second from 0 (off) to {MAX_RATE_PER_SECOND}"),
        |rate: &f64| rate.is_finite() && (0.0..=MAX_RATE_PER_SECOND).contains(rate),
    )?
    .unwrap_or(0.0);
    let burst = parsed(BURST, set(BURST), "a positive integer", |n: &u32| *n > 0)?;
    if per_second == 0.0 {
        // Off; a burst without a rate is still checked above, so a typo never hides.
        return Ok(None);
    }
    Ok(Some(RateLimitSettings {
        per_second,
        burst: burst.unwrap_or_else(|| (2.0 * per_second).ceil().max(1.0) as u32),
    }))
}

fn positive(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    let value = parsed(name, lookup(name), "a positive integer", |n: &u64| *n > 0)?;
    Ok(value.unwrap_or(default))
}

/// The setting `name` from `raw` (`None`: unset, given back as `None`), white space around it
/// ignored, as a `T` that `valid` accepts; anything else is refused at start, naming the setting,
/// what it `expected` and what it got. Shared by the numeric settings here and the notifier's, so
/// they read alike and each refusal says the same kind of thing.
pub fn parsed<T: std::str::FromStr>(
    name: &'static str,
    raw: Option<String>,
    expected: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let value = raw.trim().parse().ok().filter(|value| valid(value));
    value.map(Some).ok_or_else(|| ConfigError::Invalid {
        name,
        reason: format!("expected {expected}, got {raw:?}"),
    })
}

/// A yes/no setting: unset, empty, `0` or `false` is no; `1` or `true` is yes; anything else is
/// an error.
pub fn flag(raw: Option<&str>, name: &'static str) -> Result<bool, ConfigError> {
    match raw.map(str::trim) {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true/false/1/0, got {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_database_password_never_appears_in_debug_output() {
        let s = settings(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_cache_defaults_to_local_redis_and_an_empty_url_turns_it_off() {
        let cache = settings(&[]).unwrap().cache.unwrap();
        assert_eq!(cache.ttl, Duration::from_secs(300));
        assert!(settings(&[("REDIS_URL", "")]).unwrap().cache.is_none());
        let tls = settings(&[
            ("REDIS_URL", "rediss://cache.example:6379"),
            ("CACHE_TTL_SECONDS", "5"),
        ]);
        assert_eq!(tls.unwrap().cache.unwrap().ttl, Duration::from_secs(5));
        assert!(settings(&[("CACHE_TTL_SECONDS", "0")]).is_err());
        assert!(settings(&[("REDIS_URL", "http://nope")]).is_err());
    }

    #[test]
    fn a_database_url_wins_over_a_secret_and_the_secret_is_used_without_one() {
        let local = settings(&[("DB_SECRET_ARN", "arn:aws:secretsmanager:x")]).unwrap();
        assert!(matches!(local.database.source, DatabaseSource::Secret(_)));
        let url = settings(&[
            ("DATABASE_URL", "postgres://u@h/x"),
            ("DB_SECRET_ARN", "arn:aws:secretsmanager:x"),
        ])
        .unwrap();
        assert!(matches!(url.database.source, DatabaseSource::Url(_)));
        // `sam local` blanks the variables it cannot remove.
        let blank = settings(&[("DATABASE_URL", "postgres://u@h/x"), ("DB_SECRET_ARN", "")]);
        assert!(matches!(
            blank.unwrap().database.source,
            DatabaseSource::Url(_)
        ));
        let default = settings(&[("DATABASE_URL", ""), ("DB_SECRET_ARN", " ")]).unwrap();
        assert!(matches!(default.database.source, DatabaseSource::Url(_)));
        assert_eq!(default.database.pg_config().get_dbname(), Some("seatbook"));
    }

    #[test]
    fn a_secret_takes_its_endpoint_from_db_host_and_requires_tls_by_default() {
        let s = settings(&[
            (
                "DB_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:db",
            ),
            ("DB_HOST", "proxy.example"),
            ("DB_PORT", "5432"),
            ("DB_NAME", "seatbook"),
        ])
        .unwrap();
        let DatabaseSource::Secret(secret) = &s.database.source else {
            panic!("expected a secret source");
        };
        assert_eq!(secret.host.as_deref(), Some("proxy.example"));
        assert_eq!(
            (secret.port, secret.dbname.as_deref()),
            (Some(5432), Some("seatbook"))
        );
        assert_eq!(
            secret.secret.id(),
            "arn:aws:secretsmanager:eu-west-1:1:secret:db"
        );
        assert_eq!(s.database.pg_config().get_ssl_mode(), SslMode::Require);
        let plain = settings(&[("DB_SECRET_ARN", "arn"), ("DB_SSLMODE", "disable")]).unwrap();
        assert_eq!(plain.database.pg_config().get_ssl_mode(), SslMode::Disable);
        assert!(settings(&[("DB_SECRET_ARN", "arn"), ("DB_PORT", "proxy")]).is_err());
        assert!(settings(&[("DB_SSLMODE", "verify-full")]).is_err());
    }

    #[test]
    fn db_sslmode_overrides_the_url_and_the_local_default_stays_plain() {
        let local = settings(&[]).unwrap();
        assert_ne!(local.database.pg_config().get_ssl_mode(), SslMode::Require);
        let tls = settings(&[("DB_SSLMODE", "require"), ("DB_CA_BUNDLE", "/b.pem")]).unwrap();
        assert_eq!(tls.database.pg_config().get_ssl_mode(), SslMode::Require);
        assert_eq!(tls.database.ca_bundle, Some(PathBuf::from("/b.pem")));
    }

    #[test]
    fn cache_keys_are_namespaced_by_database_unless_a_prefix_is_given() {
        let prefix = |vars: &[(&str, &str)]| settings(vars).unwrap().cache.unwrap().prefix;
        assert_eq!(prefix(&[]), "seatbook-seatbook");
        assert_eq!(
            prefix(&[("DATABASE_URL", "postgres://u@h/other")]),
            "seatbook-other"
        );
        assert_eq!(prefix(&[("CACHE_PREFIX", "mine")]), "mine");
    }

    #[test]
    fn the_write_rate_limit_is_off_unless_a_rate_is_set() {
        for vars in [
            &[][..],
            &[("RATE_LIMIT_PER_USER_PER_SECOND", "")][..],
            &[("RATE_LIMIT_PER_USER_PER_SECOND", "0")][..],
            &[
                ("RATE_LIMIT_PER_USER_PER_SECOND", "0.0"),
                ("RATE_LIMIT_BURST", "5"),
            ][..],
        ] {
            assert_eq!(settings(vars).unwrap().rate_limit, None, "{vars:?}");
        }
    }

    #[test]
    fn the_burst_defaults_to_twice_the_rate_rounded_up() {
        let limit = |vars: &[(&str, &str)]| settings(vars).unwrap().rate_limit.unwrap();
        let two = limit(&[("RATE_LIMIT_PER_USER_PER_SECOND", "2")]);
        assert_eq!((two.per_second, two.burst), (2.0, 4));
        let slow = limit(&[("RATE_LIMIT_PER_USER_PER_SECOND", " 0.25 ")]);
        assert_eq!((slow.per_second, slow.burst), (0.25, 1));
        let odd = limit(&[("RATE_LIMIT_PER_USER_PER_SECOND", "1.5")]);
        assert_eq!(odd.burst, 3);
        let given = limit(&[
            ("RATE_LIMIT_PER_USER_PER_SECOND", "2"),
            ("RATE_LIMIT_BURST", "10"),
        ]);
        assert_eq!((given.per_second, given.burst), (2.0, 10));
    }

    #[test]
    fn a_malformed_rate_limit_is_rejected_at_start_with_the_setting_named() {
        let error = |vars: &[(&str, &str)]| settings(vars).unwrap_err().to_string();
        for rate in ["-1", "fast", "NaN", "inf", "2/s", "1e7"] {
            let message = error(&[("RATE_LIMIT_PER_USER_PER_SECOND", rate)]);
            assert!(
                message.starts_with("RATE_LIMIT_PER_USER_PER_SECOND is not valid"),
                "{rate}: {message}"
            );
        }
        for burst in ["0", "-3", "2.5", "many"] {
            let message = error(&[
                ("RATE_LIMIT_PER_USER_PER_SECOND", "2"),
                ("RATE_LIMIT_BURST", burst),
            ]);
            assert!(
                message.starts_with("RATE_LIMIT_BURST is not valid"),
                "{burst}: {message}"
            );
        }
        // Even with the limit off, a malformed burst is a typo worth stopping for.
        assert!(settings(&[("RATE_LIMIT_BURST", "ten")]).is_err());
    }

    #[test]
    fn admission_keys_come_from_the_environment_a_secret_or_are_made_up() {
        let made_up = settings(&[]).unwrap().admission;
        assert!(matches!(made_up.keys, KeySource::Given(_)));
        assert_eq!(made_up.test_ttl, None);
        let secret = settings(&[("ADMISSION_KEYS_SECRET_ARN", "arn:x")]).unwrap();
        assert!(matches!(secret.admission.keys, KeySource::Secret(ref arn) if arn == "arn:x"));
        assert!(settings(&[("ADMISSION_KEYS", "{}")]).is_err());
        let fast = settings(&[("WAITING_ROOM_TEST_TTL_SECONDS", "2")]).unwrap();
        assert_eq!(fast.admission.test_ttl, Some(Duration::from_secs(2)));
        assert!(settings(&[("WAITING_ROOM_TEST_TTL_SECONDS", "0")]).is_err());
    }

    #[test]
    fn a_malformed_database_url_is_rejected_at_start() {
        assert!(settings(&[("DATABASE_URL", "postgres://u@h:notaport/x")]).is_err());
        assert!(settings(&[("DB_POOL_MAX_SIZE", "0")]).is_err());
    }
}
