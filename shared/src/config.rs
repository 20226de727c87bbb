//! Typed configuration, read once from the environment at cold start.

use secrecy::{ExposeSecret, SecretString};
use std::env;
use std::time::Duration;

/// Where the local default points: the PostgreSQL every development machine here runs.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/seatbook";

/// Where the local default cache points. `REDIS_URL=` (empty) turns the cache off.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The environment variable that turns on dev identity. The deployed stack never sets it.
pub const DEV_IDENTITY_VAR: &str = "SEATBOOK_DEV_IDENTITY";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    /// `None`: no cache; reads go to PostgreSQL and nothing is counted.
    pub cache: Option<CacheSettings>,
    /// Trust `x-dev-user` / `x-dev-groups` headers instead of API Gateway claims. Local only.
    pub dev_identity: bool,
    /// Log as JSON lines (CloudWatch) rather than human-readable text.
    pub json_logs: bool,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// Connections per process. `None` lets the caller choose: a Lambda environment serves one
    /// request at a time and needs at most two; the local server wants more.
    pub pool_max_size: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `redis://` or `rediss://` (TLS, which ElastiCache Serverless requires).
    pub url: SecretString,
    /// Namespace of every key, so several deployments (or tests) can share one Redis.
    pub prefix: String,
    /// How long a cached read lives: the bound on staleness when an invalidation is lost.
    pub ttl: Duration,
    /// The most a Redis command may take before the request goes on without the cache.
    pub timeout: Duration,
}

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
        let url = lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        url.parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: e.to_string(),
            })?;
        let pool_max_size =
            match lookup("DB_POOL_MAX_SIZE") {
                None => None,
                Some(raw) => Some(raw.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(
                    || ConfigError::Invalid {
                        name: "DB_POOL_MAX_SIZE",
                        reason: format!("expected a positive integer, got {raw:?}"),
                    },
                )?),
            };
        Ok(Settings {
            database: DatabaseSettings {
                url: SecretString::from(url),
                pool_max_size,
            },
            cache: cache_settings(&lookup)?,
            dev_identity: flag(lookup(DEV_IDENTITY_VAR).as_deref(), DEV_IDENTITY_VAR)?,
            json_logs: lookup("LOG_FORMAT").as_deref() == Some("json")
                || lookup("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        })
    }
}

impl DatabaseSettings {
    pub fn pg_config(&self) -> tokio_postgres::Config {
        self.url
            .expose_secret()
            .parse()
            .expect("DATABASE_URL was checked when the settings were read")
    }
}

fn cache_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<CacheSettings>, ConfigError> {
    let url = lookup("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    if url.trim().is_empty() {
        return Ok(None);
    }
    redis::Client::open(url.as_str()).map_err(|e| ConfigError::Invalid {
        name: "REDIS_URL",
        reason: e.to_string(),
    })?;
    let prefix = lookup("CACHE_PREFIX").unwrap_or_else(|| "seatbook".to_owned());
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
    }))
}

fn positive(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("expected a positive integer, got {raw:?}"),
            }),
    }
}

fn flag(raw: Option<&str>, name: &'static str) -> Result<bool, ConfigError> {
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
    fn dev_identity_is_off_unless_explicitly_enabled() {
        assert!(!settings(&[]).unwrap().dev_identity);
        assert!(!settings(&[(DEV_IDENTITY_VAR, "0")]).unwrap().dev_identity);
        assert!(
            settings(&[(DEV_IDENTITY_VAR, "true")])
                .unwrap()
                .dev_identity
        );
        assert!(settings(&[(DEV_IDENTITY_VAR, "yes please")]).is_err());
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
    fn a_malformed_database_url_is_rejected_at_start() {
        assert!(settings(&[("DATABASE_URL", "postgres://u@h:notaport/x")]).is_err());
        assert!(settings(&[("DB_POOL_MAX_SIZE", "0")]).is_err());
    }
}
