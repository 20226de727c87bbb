//! A local AWS Lambda Runtime API, enough for `lambda_runtime` 1.x: run a function binary as the
//! Lambda service would (one process = one execution environment), invoke it, and time its cold
//! start. (The example is not compiled as a doctest: `functions/*/tests` and `coldstart` make
//! these very calls.)
//!
//! ```ignore
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lambda_emulator::{Emulator, Function};
//! let lambda = Emulator::launch(Function::new("target/release/events", "events")).await?;
//! let response = lambda
//!     .invoke(&serde_json::json!({"hello": "world"}), std::time::Duration::from_secs(5))
//!     .await?;
//! println!("{response} after an init of {:?}", lambda.timings().init);
//! # Ok(()) }
//! ```
//!
//! Implemented: `GET /2018-06-01/runtime/invocation/next` (long poll; the event with the
//! `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
//! headers), `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`. Not implemented: response streaming, extensions,
//! telemetry, SnapStart.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot};

pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A function binary and the environment it runs in.
#[derive(Debug, Clone)]
pub struct Function {
    pub binary: PathBuf,
    pub name: String,
    pub memory_mb: u32,
    /// Set after the variables Lambda itself sets, so these win.
    pub env: Vec<(String, String)>,
    /// Echo the function's output to this process's stderr as it comes (it is always kept; see
    /// [`Emulator::logs`]).
    pub echo_logs: bool,
}

impl Function {
    pub fn new(binary: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Function {
            binary: binary.into(),
            name: name.into(),
            memory_mb: 256,
            env: Vec::new(),
            echo_logs: std::env::var_os("LAMBDA_EMULATOR_ECHO").is_some(),
        }
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no response within {timeout:?}\n--- function output ---\n{logs}")]
    Timeout { timeout: Duration, logs: String },
    #[error(
        "the function returned an error ({error_type:?}): {body}\n--- function output ---\n{logs}"
    )]
    Function {
        error_type: Option<String>,
        body: String,
        logs: String,
    },
    #[error("the function process exited ({status}); init error: {init_error:?}\n--- function output ---\n{logs}")]
    Exited {
        status: ExitStatus,
        init_error: Option<String>,
        logs: String,
    },
    #[error("the response is not JSON ({0}): {1}")]
    NotJson(serde_json::Error, String),
    #[error("the response is not an API Gateway proxy response (no statusCode): {0}")]
    NotProxyResponse(Value),
}

/// When the execution environment reached each stage, counted from the spawn of its process.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Spawn → the runtime's first `next` request: the init phase.
    pub init: Option<Duration>,
    /// Spawn → the first invocation response.
    pub first_response: Option<Duration>,
}

enum Outcome {
    Response(Bytes),
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
}

struct Queued {
    id: String,
    event: Bytes,
    deadline_ms: u128,
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    spawned_at: OnceLock<Instant>,
    first_next: OnceLock<Instant>,
    first_response: OnceLock<Instant>,
    init_error: Mutex<Option<String>>,
}

/// One function process and the Runtime API it talks to. Dropping it kills the process.
pub struct Emulator {
    address: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Queued>,
    child: Mutex<tokio::process::Child>,
    pid: u32,
    logs: Arc<Mutex<String>>,
    /// The tasks reading the function's stdout and stderr into `logs`, done at end of file.
    collectors: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Starts the Runtime API on 127.0.0.1 (a free port) and spawns `function` against it.
    pub async fn launch(function: Function) -> std::io::Result<Emulator> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{}",
                function.name
            ),
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            spawned_at: OnceLock::new(),
            first_next: OnceLock::new(),
            first_response: OnceLock::new(),
            init_error: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut command = tokio::process::Command::new(&function.binary);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", function.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2030/01/01/[$LATEST]00000000000000000000000000000000",
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("_HANDLER", "bootstrap")
            .envs(function.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot run {}: {e}", function.binary.display()),
            )
        })?;
        let _ = shared.spawned_at.set(spawned_at);
        let pid = child.id().unwrap_or_default();
        let logs = Arc::new(Mutex::new(String::new()));
        let mut collectors = Vec::new();
        if let Some(out) = child.stdout.take() {
            collectors.push(tokio::spawn(collect(out, logs.clone(), function.echo_logs)));
        }
        if let Some(err) = child.stderr.take() {
            collectors.push(tokio::spawn(collect(err, logs.clone(), function.echo_logs)));
        }
        Ok(Emulator {
            address,
            shared,
            queue,
            child: Mutex::new(child),
            pid,
            logs,
            collectors: tokio::sync::Mutex::new(collectors),
            server,
        })
    }

    /// `host:port` of the Runtime API (what `AWS_LAMBDA_RUNTIME_API` says).
    pub fn runtime_api(&self) -> SocketAddr {
        self.address
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn timings(&self) -> Timings {
        let spawned = *self.shared.spawned_at.get().expect("spawned");
        Timings {
            init: self.shared.first_next.get().map(|t| *t - spawned),
            first_response: self.shared.first_response.get().map(|t| *t - spawned),
        }
    }

    /// The process's peak resident set size so far (`VmHWM`), in KiB. Linux only.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Waits until the runtime asks for its first event (the init phase is over).
    pub async fn wait_for_init(&self, timeout: Duration) -> Result<Duration, InvokeError> {
        let started = Instant::now();
        loop {
            if let Some(init) = self.timings().init {
                return Ok(init);
            }
            self.check_alive().await?;
            if started.elapsed() > timeout {
                return Err(InvokeError::Timeout {
                    timeout,
                    logs: self.logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Invokes the function with `event` and returns its JSON response. `timeout` is also the
    /// invocation's deadline as the function sees it.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Value, InvokeError> {
        let raw = self.invoke_raw(event.to_string().into(), timeout).await?;
        serde_json::from_slice(&raw)
            .map_err(|e| InvokeError::NotJson(e, String::from_utf8_lossy(&raw).into_owned()))
    }

    /// Invokes the function with an API Gateway proxy `event` (HTTP API or REST) and decodes its
    /// proxy response: the `statusCode`, and the `body` parsed as JSON (`null` when there is none,
    /// or it is not JSON text).
    pub async fn invoke_http(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<(u16, Value), InvokeError> {
        let response = self.invoke(event, timeout).await?;
        let Some(status) = response["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
        else {
            return Err(InvokeError::NotProxyResponse(response));
        };
        let body = response["body"]
            .as_str()
            .and_then(|body| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn invoke_raw(&self, event: Bytes, timeout: Duration) -> Result<Bytes, InvokeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(id.clone(), tx);
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let _ = self.queue.send(Queued {
            id: id.clone(),
            event,
            deadline_ms,
        });
        let started = Instant::now();
        let outcome = loop {
            match tokio::time::timeout(Duration::from_millis(20), &mut rx).await {
                Ok(Ok(outcome)) => break outcome,
                Ok(Err(_)) => unreachable!("the sender lives in `waiting` until answered"),
                Err(_) => {}
            }
            if let Err(exited) = self.check_alive().await {
                self.shared.waiting.lock().unwrap().remove(&id);
                return Err(exited);
            }
            if started.elapsed() > timeout {
                self.shared.waiting.lock().unwrap().remove(&id);
                return Err(InvokeError::Timeout {
                    timeout,
                    logs: self.logs(),
                });
            }
        };
        match outcome {
            Outcome::Response(body) => Ok(body),
            Outcome::Error { error_type, body } => Err(InvokeError::Function {
                error_type,
                body: String::from_utf8_lossy(&body).into_owned(),
                logs: self.logs(),
            }),
        }
    }

    async fn check_alive(&self) -> Result<(), InvokeError> {
        let status = self.child.lock().unwrap().try_wait();
        match status {
            Ok(Some(status)) => {
                // The process is gone, but what it wrote last may still be in the pipes: read
                // them to their end first (seen under load: an exit reported with no logs). A
                // process it left behind holding them open only costs the wait.
                let collectors = std::mem::take(&mut *self.collectors.lock().await);
                let drained = async {
                    for collector in collectors {
                        let _ = collector.await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
                Err(InvokeError::Exited {
                    status,
                    init_error: self.shared.init_error.lock().unwrap().clone(),
                    logs: self.logs(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.start_kill();
        }
        self.server.abort();
    }
}

async fn collect(stream: impl AsyncRead + Unpin, logs: Arc<Mutex<String>>, echo: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[function] {line}");
        }
        let mut logs = logs.lock().unwrap();
        logs.push_str(&line);
        logs.push('\n');
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.first_next.set(Instant::now());
    let Some(queued) = shared.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", header(&queued.id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&queued.deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&shared.function_arn),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header(&format!(
            "Root=1-00000000-{};Parent=0000000000000000;Sampled=0",
            &queued.id.replace('-', "")[..24]
        )),
    );
    headers.insert("content-type", header("application/json"));
    (StatusCode::OK, headers, queued.event).into_response()
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    let _ = shared.first_response.set(Instant::now());
    match shared.waiting.lock().unwrap().remove(id) {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&shared, &id, Outcome::Response(body))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    answer(&shared, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
