//! The processes the bench starts: `local-api` servers against the bench's database, and nginx
//! beside the cached reads; both stopped on drop. And what /proc says about processes (procfs).

use crate::http::{self, Conn, Identity};
use crate::Result;
use procfs::process::{all_processes, Process, Stat};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that gets `signal` on drop, and SIGKILL if it has not exited 5 s later.
struct Stopped {
    child: Child,
    signal: libc::c_int,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, self.signal) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stopped {
    /// Waits until a GET of `path` on `addr` is answered as `ok` says, for at most `patience`.
    async fn wait_until_serving(
        &mut self,
        addr: SocketAddr,
        path: &str,
        ok: impl Fn(&hyper::Response<bytes::Bytes>) -> bool,
        patience: Duration,
        log: &Path,
    ) -> Result<()> {
        let deadline = Instant::now() + patience;
        let log = log.display();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("exited during start-up ({status}); see {log}").into());
            }
            if let Ok(mut conn) = Conn::open(addr).await {
                let probe = http::get(path, &Identity::user("bench-probe"));
                if conn.send(probe).await.is_ok_and(|r| ok(&r)) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("did not answer within {patience:?}; see {log}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub pid: u32,
    _child: Stopped,
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
        let out = File::create(&log)?;
        let port = test_support::free_port();
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
            .map_err(|e| format!("could not start {bin:?} (build -p local-api): {e}"))?;
        let (addr, pid) = (SocketAddr::from(([127, 0, 0, 1], port)), child.id());
        // It shuts down on SIGINT.
        let mut child = Stopped {
            child,
            signal: libc::SIGINT,
        };
        // Migrating the database comes first.
        let ok = |r: &hyper::Response<_>| r.status().is_success();
        let patience = Duration::from_secs(60);
        child
            .wait_until_serving(addr, "/api/v1/events", ok, patience, &log)
            .await
            .map_err(|e| format!("server {name} {e}"))?;
        Ok(Server {
            addr,
            pid,
            _child: child,
        })
    }
}

pub const NGINX_PLAIN: &str = "/map.json";
pub const NGINX_GZIP: &str = "/map.json.gz";

/// nginx beside the cached reads (issue 20): one worker on a free loopback port serving the very
/// bytes the service serves, fetched from it once: `/map.json`, and `/map.json.gz` served with
/// `Content-Encoding: gzip`. Stopped, and its directory removed, on drop.
pub struct Nginx {
    pub addr: SocketAddr,
    pub version: String,
    // Declared before `dir`: stopped before its directory goes.
    child: Stopped,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Nginx {
    pub async fn start(plain: &[u8], gzip: &[u8]) -> Result<Nginx> {
        let port = test_support::free_port();
        let dir = std::env::temp_dir().join(format!("seatbook-bench-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let dir = TempDir(dir);
        let d = dir.0.display();
        std::fs::create_dir_all(dir.0.join("www"))?;
        std::fs::create_dir_all(dir.0.join("tmp"))?;
        std::fs::write(dir.0.join("www/map.json"), plain)?;
        std::fs::write(dir.0.join("www/map.json.gz"), gzip)?;
        // The worker may run as nobody (when started as root): everything must be readable.
        let mut chmod = Command::new("chmod");
        let _ = chmod.args(["-R", "a+rX"]).arg(&dir.0).status();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .map(|t| format!("{t}_temp_path {d}/tmp/{t};\n"))
            .concat();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\naccess_log off;\ndefault_type application/json;\nsendfile on;\ntcp_nodelay on;\n\
             keepalive_requests 100000000;\nkeepalive_timeout 300s;\n{temp}\
             server {{\nlisten 127.0.0.1:{port};\nroot {d}/www;\n\
             location = {NGINX_GZIP} {{ add_header Content-Encoding gzip; }}\n}}\n}}\n"
        );
        std::fs::write(dir.0.join("nginx.conf"), conf)?;
        let version = Command::new("nginx").arg("-v").output();
        let version = version.map_err(|e| format!("nginx (Debian package nginx-light): {e}"))?;
        let version = String::from_utf8_lossy(&version.stderr).trim().to_owned();
        let mut command = Command::new("nginx");
        // SAFETY: prctl(2) in the child before exec; no allocation, no locks. If the bench dies
        // without cleaning up (SIGKILL), nginx gets SIGTERM instead of living on.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.0.join("nginx.conf"))
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut child = Stopped {
            child,
            signal: libc::SIGTERM,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ok = |r: &hyper::Response<bytes::Bytes>| r.body().len() == plain.len();
        let (patience, log) = (Duration::from_secs(10), dir.0.join("error.log"));
        child
            .wait_until_serving(addr, NGINX_PLAIN, ok, patience, &log)
            .await
            .map_err(|e| format!("nginx {e}"))?;
        Ok(Nginx {
            addr,
            version,
            child,
            _dir: dir,
        })
    }

    /// The master and its worker, for the CPU figures.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.child.child.id();
        let workers = all_stats().into_iter().filter(|s| s.ppid == master as i32);
        [master]
            .into_iter()
            .chain(workers.map(|s| s.pid as u32))
            .collect()
    }
}

fn seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

fn all_stats() -> Vec<Stat> {
    all_processes().map_or(Vec::new(), |all| {
        all.filter_map(|p| p.ok()?.stat().ok()).collect()
    })
}

/// utime + stime of `pid` in seconds (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = Process::new(pid as i32).and_then(|p| p.stat());
    stat.map_or(0.0, |s| seconds(s.utime + s.stime))
}

/// The `postgres` processes of this machine.
fn postgres_stats() -> impl Iterator<Item = Stat> {
    all_stats().into_iter().filter(|s| s.comm == "postgres")
}

/// utime + stime of every `postgres` process in seconds. Backends that exit take their time with
/// them: meaningful across a window in which sessions stay open.
pub fn postgres_cpu_seconds() -> f64 {
    seconds(postgres_stats().map(|s| s.utime + s.stime).sum())
}

/// The pids of every `postgres` process (the split of `crate::cores`).
pub fn postgres_pids() -> Vec<i32> {
    postgres_stats().map(|s| s.pid).collect()
}

/// Raises the soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit) and returns the new
/// soft limit; the servers started afterwards inherit it.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux but not everywhere
pub fn raise_nofile(wanted: u64) -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit/setrlimit to use.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let target = wanted.min(limit.rlim_max as u64);
    if (limit.rlim_cur as u64) < target {
        limit.rlim_cur = target as libc::rlim_t;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur as u64)
}
