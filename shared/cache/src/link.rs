//! The connection to Redis, and what keeps a slow or dead Redis from slowing requests down.
//!
//! One multiplexed connection per process, made here rather than by a reconnecting manager so the
//! cache always knows which *run* of the Redis server a reply came from: right after connecting,
//! `INFO server` names the server's `run_id`, which is new after every restart, and a connection
//! never outlives the server process it reached. Every reply is therefore known to belong to one
//! run ([`Run`]), which is what lets values written before a restart be told apart from values
//! written after it ([`crate`] explains why that matters).

use crate::{Error, Settings, Signal};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind};
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// After a failure, requests leave Redis alone this long before the next try.
const BACKOFF: Duration = Duration::from_secs(1);

/// An invalidation is tried this many times at most...
const DELIVERY_TRIES: u32 = 3;
/// ...within one command timeout plus this much in all: a Redis that refuses connections costs a
/// writer a few tens of milliseconds (the waits), a stalled one the timeout plus this.
const DELIVERY_ALLOWANCE: Duration = Duration::from_millis(100);
/// The wait before a retry: this, plus up to as much again at random (so the environments that
/// failed together do not all retry at the same instant).
const RETRY_WAIT: Duration = Duration::from_millis(15);

/// Which run of the Redis server a reply came from: its `run_id`, or empty when the server does not
/// say (then values cannot be fenced by run; see [`RedisLink::session`]).
pub(crate) type Run = Arc<str>;

/// Redis did not answer (or was not asked, just after it failed): go on without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Redis is unavailable")]
pub struct Unavailable;

pub(crate) struct RedisLink {
    client: redis::Client,
    config: AsyncConnectionConfig,
    /// Hears every failure, and every command skipped after one.
    pub(crate) observe: fn(Signal),
    timeout: Duration,
    /// The connection in use, if any: dropped after any failure, made again by the next command.
    session: Mutex<Option<Session>>,
    /// Held while connecting, so concurrent first commands make one connection.
    connecting: tokio::sync::Mutex<()>,
    sessions_made: AtomicU64,
    warned_unfenced: AtomicBool,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not tried (0: try).
    resume_at_ms: AtomicU64,
}

#[derive(Clone)]
struct Session {
    conn: MultiplexedConnection,
    run: Run,
    serial: u64,
}

/// What one command sends.
enum Work<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
}

impl RedisLink {
    pub(crate) fn new(settings: &Settings, observe: fn(Signal)) -> Result<Self, Error> {
        // `ring`, as the rest of the process (idempotent): more than one provider may be built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match &settings.ca_file {
            None => redis::Client::open(settings.url.expose_secret())?,
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|source| Error::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(settings.url.expose_secret(), certificates)?
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout));
        Ok(RedisLink {
            client,
            config,
            observe,
            timeout: settings.timeout,
            session: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            sessions_made: AtomicU64::new(0),
            warned_unfenced: AtomicBool::new(false),
            epoch: Instant::now(),
            resume_at_ms: AtomicU64::new(0),
        })
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, Unavailable> {
        self.available()?;
        self.attempt(&Work::Cmd(cmd), self.timeout)
            .await
            .map(|(value, _)| value)
    }

    pub(crate) async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Unavailable> {
        self.query_pipe_in_run(pipe).await.map(|(value, _)| value)
    }

    /// A pipeline's replies, and the run of the server that gave them.
    pub(crate) async fn query_pipe_in_run<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<(T, Run), Unavailable> {
        self.available()?;
        self.attempt(&Work::Pipe(pipe), self.timeout).await
    }

    /// Runs a Lua script: `EVALSHA`, and only when Redis does not know the script yet, `SCRIPT
    /// LOAD` and `EVALSHA` again (redis::Script does that), all within one timeout.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        self.available()?;
        self.attempt(&Work::Script(script), self.timeout)
            .await
            .map(|(value, _)| value)
    }

    /// Delivers a pipeline that must not be skipped (an invalidation): it is sent even while
    /// requests leave Redis alone after a failure, and tried again after a failure, a few times,
    /// within one command timeout plus [`DELIVERY_ALLOWANCE`] in all.
    pub(crate) async fn deliver<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, Unavailable> {
        let deadline = Instant::now() + self.timeout + DELIVERY_ALLOWANCE;
        for tried in 1..=DELIVERY_TRIES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let limit = left.min(self.timeout);
            if let Ok((replies, _)) = self.attempt::<T>(&Work::Pipe(pipe), limit).await {
                return Ok(replies);
            }
            if tried < DELIVERY_TRIES {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(jittered(RETRY_WAIT).min(left)).await;
            }
        }
        Err(Unavailable)
    }

    /// One try of a pipeline, even while requests leave Redis alone (for work off the request
    /// path, which has no request to slow down).
    pub(crate) async fn try_now(&self, pipe: &redis::Pipeline) -> Result<(), Unavailable> {
        self.attempt::<()>(&Work::Pipe(pipe), self.timeout)
            .await
            .map(|_| ())
    }

    fn available(&self) -> Result<(), Unavailable> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.resume_at_ms.load(Ordering::Relaxed) {
            (self.observe)(Signal::RedisUnavailable);
            return Err(Unavailable);
        }
        Ok(())
    }

    /// One command on the current connection (made first if there is none), within `limit`.
    async fn attempt<T: FromRedisValue>(
        &self,
        work: &Work<'_>,
        limit: Duration,
    ) -> Result<(T, Run), Unavailable> {
        // The connection the command went out on, to drop it if the command fails.
        let used = AtomicU64::new(0);
        let outcome = tokio::time::timeout(limit, async {
            let session = self.session().await?;
            used.store(session.serial, Ordering::Relaxed);
            let mut conn = session.conn.clone();
            let reply = match work {
                Work::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Work::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Work::Script(script) => script.invoke_async(&mut conn).await,
            };
            reply.map(|value| (value, session.run))
        })
        .await;
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no reply within {limit:?}"),
        };
        self.fail(used.load(Ordering::Relaxed), error);
        Err(Unavailable)
    }

    /// The current connection, or a new one and the run of the server it reached.
    async fn session(&self) -> RedisResult<Session> {
        if let Some(session) = self.current() {
            return Ok(session);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(session) = self.current() {
            return Ok(session);
        }
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let info: RedisResult<String> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await;
        let run = match info {
            Ok(info) => run_id(&info),
            // A server that refuses INFO (renamed, or denied by an ACL) is used without fencing.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::NoPerm)
                ) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        let run = run.unwrap_or_else(|| {
            if !self.warned_unfenced.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "Redis does not name its run (INFO server has no run_id): values written \
                     before a Redis restart cannot be told from values written after it"
                );
            }
            String::new()
        });
        let session = Session {
            conn,
            run: Run::from(run),
            serial: self.sessions_made.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *self.session.lock().expect("session poisoned") = Some(session.clone());
        Ok(session)
    }

    fn current(&self) -> Option<Session> {
        self.session.lock().expect("session poisoned").clone()
    }

    /// A command failed: its connection is dropped (the next command connects again, and learns
    /// the server's run again), and requests leave Redis alone for [`BACKOFF`].
    fn fail(&self, serial: u64, error: String) {
        if serial != 0 {
            let mut session = self.session.lock().expect("session poisoned");
            if session.as_ref().is_some_and(|s| s.serial == serial) {
                *session = None;
            }
        }
        (self.observe)(Signal::RedisUnavailable);
        let resume = (self.epoch.elapsed() + BACKOFF).as_millis() as u64;
        let previous = self.resume_at_ms.swap(resume, Ordering::Relaxed);
        if previous == 0 || previous < resume.saturating_sub(2 * BACKOFF.as_millis() as u64) {
            tracing::warn!(%error, "Redis unavailable; serving from PostgreSQL");
        }
    }
}

/// The `run_id` line of `INFO server`.
fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// `base` plus a random part of up to `base` again.
pub(crate) fn jittered(base: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let extra = random % (base.as_micros() as u64).max(1);
    base + Duration::from_micros(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_is_read_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:2f0c9d1e\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info).as_deref(), Some("2f0c9d1e"));
        assert_eq!(run_id("# Server\r\nredis_version:7.0.15\r\n"), None);
        assert_eq!(run_id("run_id:\r\n"), None);
    }

    #[test]
    fn a_retry_waits_its_base_and_at_most_as_much_again() {
        for _ in 0..100 {
            let wait = jittered(RETRY_WAIT);
            assert!(wait >= RETRY_WAIT && wait < 2 * RETRY_WAIT, "{wait:?}");
        }
    }
}
