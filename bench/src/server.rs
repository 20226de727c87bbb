//! The service under test: a `local-api` process on a free port, against the bench's own database.

use crate::http::{self, Conn, Identity};
use crate::Result;
use std::fs::{File, OpenOptions};
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
        Server::start_with(name, bin, database_url, cache, log_dir, &[]).await
    }

    /// [`Server::start`] with `env` on top of the usual settings (the notifier's, for `webhooks`).
    pub async fn start_with(
        name: &str,
        bin: &Path,
        database_url: &str,
        cache: &Cache,
        log_dir: &Path,
        env: &[(&str, String)],
    ) -> Result<Server> {
        let log = log_dir.join(format!("server-{name}.log"));
        File::create(&log)?;
        let port = free_port()?;
        let mut server = Server::spawn(name, port, bin, database_url, cache, &log, env)?;
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// Starts the process, appending its output to `log`, with `env` on top of the usual
    /// settings; not yet ready.
    fn spawn(
        name: &str,
        port: u16,
        bin: &Path,
        database_url: &str,
        cache: &Cache,
        log: &Path,
        env: &[(&str, String)],
    ) -> Result<Server> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
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
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
        Ok(Server {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pid: child.id(),
            log: log.to_owned(),
            child,
        })
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

    /// Asks the server to shut down (it listens for SIGINT), without waiting.
    fn ask_to_stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGINT);
        }
    }

    /// Asks the server to shut down (it listens for SIGINT), then insists.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.ask_to_stop();
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

/// Many small servers, as a Lambda function's execution environments: each `local-api` with its
/// own small pool (`DB_POOL_MAX_SIZE`), all logging to one file. Stopped together on drop, also
/// when the benchmark fails or is interrupted.
pub struct Fleet {
    pub servers: Vec<Server>,
}

impl Fleet {
    pub async fn start(
        size: usize,
        bin: &Path,
        database_url: &str,
        pool_size: usize,
        log: &Path,
    ) -> Result<Fleet> {
        File::create(log)?;
        let mut fleet = Fleet {
            servers: Vec::with_capacity(size),
        };
        let env = [("DB_POOL_MAX_SIZE", pool_size.to_string())];
        for (n, port) in free_ports(size)?.into_iter().enumerate() {
            fleet.servers.push(Server::spawn(
                &format!("lambda-{n}"),
                port,
                bin,
                database_url,
                &Cache::Off,
                log,
                &env,
            )?);
        }
        futures::future::try_join_all(fleet.servers.iter_mut().map(Server::wait_until_ready))
            .await?;
        Ok(fleet)
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.pid).collect()
    }

    /// Asks every server to stop at once, then waits for each.
    pub fn stop(&mut self) {
        for server in &mut self.servers {
            server.ask_to_stop();
        }
        for server in &mut self.servers {
            server.stop();
        }
    }
}

impl Drop for Fleet {
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

/// `n` different free ports (every probe stays open until all are chosen).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let probes = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    probes
        .iter()
        .map(|p| p.local_addr().map(|a| a.port()))
        .collect()
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
