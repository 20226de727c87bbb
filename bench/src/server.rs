//! The service under test: `local-api` processes on free ports, against the bench's database.

use crate::http::{self, Conn, Identity};
use crate::Result;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to migrate and start listening.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
    log: PathBuf,
    child: Child,
}

impl Server {
    /// `bin` against `database_url`, logging to `<log_dir>/server-<name>.log`, with `env` on top
    /// of the usual settings (`REDIS_URL=`, the cache off, unless `env` says otherwise).
    pub async fn start(
        name: &str,
        bin: &Path,
        database_url: &str,
        log_dir: &Path,
        env: &[(&str, String)],
    ) -> Result<Server> {
        let log = log_dir.join(format!("server-{name}.log"));
        File::create(&log)?;
        let port = test_support::free_port();
        let mut server = Server::spawn(name, port, bin, database_url, &log, env)?;
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// `size` servers logging to one file, as a Lambda function's execution environments; all
    /// started before any is waited for.
    pub async fn fleet(
        size: usize,
        bin: &Path,
        database_url: &str,
        log: &Path,
        env: &[(&str, String)],
    ) -> Result<Vec<Server>> {
        File::create(log)?;
        let mut fleet = test_support::free_ports(size)
            .into_iter()
            .enumerate()
            .map(|(n, port)| {
                Server::spawn(&format!("lambda-{n}"), port, bin, database_url, log, env)
            })
            .collect::<Result<Vec<_>>>()?;
        futures::future::try_join_all(fleet.iter_mut().map(Server::wait_until_ready)).await?;
        Ok(fleet)
    }

    fn spawn(
        name: &str,
        port: u16,
        bin: &Path,
        database_url: &str,
        log: &Path,
        env: &[(&str, String)],
    ) -> Result<Server> {
        let out = OpenOptions::new().append(true).open(log)?;
        // The server logs a line per booking: to a file, never to a pipe nobody reads (a full
        // pipe would stall the server and the benchmark with it).
        let child = Command::new(bin)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", "")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
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
        let (name, log) = (&self.name, self.log.display());
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("server {name} exited during start-up ({status}); see {log}").into(),
                );
            }
            let probe = http::get("/api/v1/events", &Identity::user("bench-probe"));
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if conn
                    .send(probe)
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let waited = STARTUP_PATIENCE;
                return Err(
                    format!("server {name} did not answer within {waited:?}; see {log}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks the server to shut down (it listens for SIGINT), without waiting.
    fn ask_to_stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGINT) };
        }
    }

    /// Asks the server to shut down, then insists after 5 s.
    pub fn stop(&mut self) {
        self.ask_to_stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
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

/// Asks every server to stop at once, then waits for each.
pub fn stop_all(servers: &mut [Server]) {
    servers.iter_mut().for_each(Server::ask_to_stop);
    servers.iter_mut().for_each(Server::stop);
}

/// `local-api` next to our own binary: `cargo build` puts both in the same directory.
pub fn default_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me
        .parent()
        .ok_or("cannot locate the directory of seatbook-bench")?
        .join("local-api");
    if !bin.exists() {
        let shown = bin.display();
        return Err(
            format!("{shown} does not exist: build -p local-api or pass --server-bin").into(),
        );
    }
    Ok(bin)
}
