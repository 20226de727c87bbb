//! The service under test: a `local-api` process on a free port, against the bench's own database.

use crate::http::{self, Conn, Identity};
use crate::Result;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to create the database, migrate and start listening.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// The Redis read-through cache for event reads.
#[derive(Debug, Clone)]
pub enum Cache {
    /// `REDIS_URL=` (empty): the service reads PostgreSQL every time.
    Off,
    /// `REDIS_URL=<url>` and `CACHE_PREFIX=<prefix>`: a prefix of the bench's own, so its keys
    /// never mix with anyone else's and can be deleted afterwards.
    On { redis_url: String, prefix: String },
}

pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    pub async fn start(
        name: &str,
        bin: &Path,
        database_url: &str,
        cache: &Cache,
        log_dir: &Path,
    ) -> Result<Server> {
        let port = free_port()?;
        let log = log_dir.join(format!("server-{name}.log"));
        let out = File::create(&log)?;
        let mut command = Command::new(bin);
        command
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            // The server logs a line per booking: it must go to a file, never to a pipe nobody
            // reads (a full pipe would stall the server and the benchmark with it).
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null());
        match cache {
            Cache::Off => {
                command.env("REDIS_URL", "").env_remove("CACHE_PREFIX");
            }
            Cache::On { redis_url, prefix } => {
                command
                    .env("REDIS_URL", redis_url)
                    .env("CACHE_PREFIX", prefix);
            }
        }
        let child = command
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
        let mut server = Server {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pid: child.id(),
            log,
            child,
        };
        server.wait_until_ready().await?;
        Ok(server)
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_PATIENCE;
        let who = Identity::user("bench-probe");
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "server {} exited during start-up ({status}); see {}",
                    self.name,
                    self.log.display()
                )
                .into());
            }
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if let Ok((status, _)) = conn.send(http::get("/api/v1/events", &who)).await {
                    if status.is_success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server {} did not answer within {STARTUP_PATIENCE:?}; see {}",
                    self.name,
                    self.log.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks the server to shut down (it listens for SIGINT), then insists.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nobody is listening on right now. There is a small window between closing this probe
/// and the server binding it; on a machine running one benchmark at a time that is fine.
fn free_port() -> std::io::Result<u16> {
    let probe = TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}

/// `local-api` next to our own binary: `cargo build --release` puts both in target/release.
pub fn default_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me
        .parent()
        .ok_or("cannot locate the directory of seatbook-bench")?
        .join("local-api");
    if !bin.exists() {
        return Err(format!(
            "{} does not exist: run `cargo build --release -p seatbook` or pass --server-bin",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}
