//! The connection to Redis, and what keeps a slow or dead Redis from slowing requests down.

use crate::config::CacheSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::FromRedisValue;
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// After a failure, Redis is left alone this long before the next try.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Unavailable;

pub(crate) struct RedisLink {
    manager: ConnectionManager,
    timeout: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not tried (0: try).
    resume_at_ms: AtomicU64,
}

impl RedisLink {
    pub(crate) fn new(settings: &CacheSettings) -> Result<Self, redis::RedisError> {
        crate::tls::install_crypto_provider();
        let client = match &settings.ca_file {
            None => redis::Client::open(settings.url.expose_secret())?,
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|e| {
                    redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "cannot read REDIS_CA_FILE",
                        format!("{}: {e}", path.display()),
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(settings.url.expose_secret(), certificates)?
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            // Reconnection is retried by the next request after BACKOFF, not in a loop here.
            .set_number_of_retries(1)
            .set_max_delay(settings.timeout);
        Ok(RedisLink {
            manager: ConnectionManager::new_lazy_with_config(client, config)?,
            timeout: settings.timeout,
            epoch: Instant::now(),
            resume_at_ms: AtomicU64::new(0),
        })
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &mut redis::Cmd,
    ) -> Result<T, Unavailable> {
        let mut conn = self.available()?;
        self.settle(tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await)
    }

    pub(crate) async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Unavailable> {
        let mut conn = self.available()?;
        self.settle(tokio::time::timeout(self.timeout, pipe.query_async(&mut conn)).await)
    }

    /// Runs a Lua script: `EVALSHA`, and only when Redis does not know the script yet, `SCRIPT
    /// LOAD` and `EVALSHA` again (redis::Script does that), all within one timeout.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut conn = self.available()?;
        self.settle(tokio::time::timeout(self.timeout, script.invoke_async(&mut conn)).await)
    }

    /// Runs a pipeline whose replies nobody needs; a failure is logged and otherwise ignored.
    pub(crate) async fn pipe_quietly(&self, pipe: &redis::Pipeline) {
        let Ok(mut conn) = self.available() else {
            return;
        };
        let result = tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await;
        let _ = self.settle(result);
    }

    fn available(&self) -> Result<ConnectionManager, Unavailable> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.resume_at_ms.load(Ordering::Relaxed) {
            crate::metrics::publish(crate::metrics::REDIS_UNAVAILABLE, 1.0);
            return Err(Unavailable);
        }
        Ok(self.manager.clone())
    }

    fn settle<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, Unavailable> {
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no reply within {:?}", self.timeout),
        };
        crate::metrics::publish(crate::metrics::REDIS_UNAVAILABLE, 1.0);
        let resume = (self.epoch.elapsed() + BACKOFF).as_millis() as u64;
        let previous = self.resume_at_ms.swap(resume, Ordering::Relaxed);
        if previous == 0 || previous < resume.saturating_sub(2 * BACKOFF.as_millis() as u64) {
            tracing::warn!(%error, "Redis unavailable; serving from PostgreSQL");
        }
        Err(Unavailable)
    }
}
