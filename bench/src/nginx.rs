//! nginx beside the cached reads (issue 20): one worker on a free loopback port serving the very
//! bytes the service serves, fetched from it once: `/map.json`, and `/map.json.gz` served with
//! `Content-Encoding: gzip`. Stopped, and its directory removed, on drop.

use crate::http::{self, Conn, Identity};
use crate::Result;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PLAIN: &str = "/map.json";
pub const GZIP: &str = "/map.json.gz";

pub struct Nginx {
    pub addr: SocketAddr,
    pub version: String,
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    pub async fn start(plain: &[u8], gzip: &[u8]) -> Result<Nginx> {
        let port = test_support::free_port();
        let dir = std::env::temp_dir().join(format!("seatbook-bench-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::write(dir.join("www/map.json"), plain)?;
        std::fs::write(dir.join("www/map.json.gz"), gzip)?;
        // The worker may run as nobody (when started as root): everything must be readable.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&dir)
            .status();
        let d = dir.display();
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .map(|t| format!("{t}_temp_path {d}/tmp/{t};\n"))
            .concat();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\naccess_log off;\ndefault_type application/json;\nsendfile on;\ntcp_nodelay on;\n\
             keepalive_requests 100000000;\nkeepalive_timeout 300s;\n{temp}\
             server {{\nlisten 127.0.0.1:{port};\nroot {d}/www;\n\
             location = {GZIP} {{ add_header Content-Encoding gzip; }}\n}}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let version = Command::new("nginx")
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .map_err(|e| format!("nginx is not installed (Debian package nginx-light): {e}"))?;
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
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut nginx = Nginx {
            addr,
            version,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = nginx.child.try_wait()? {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited during start-up ({status}): {log}").into());
            }
            let probe = http::get(PLAIN, &Identity::user("bench-probe"));
            if let Ok(mut conn) = Conn::open(addr).await {
                if conn
                    .send(probe)
                    .await
                    .is_ok_and(|r| r.status().is_success() && r.body().len() == plain.len())
                {
                    return Ok(nginx);
                }
            }
            if Instant::now() > deadline {
                return Err("nginx did not serve the map within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The master and its worker, for the CPU figures.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        [vec![master], crate::procstat::children(master)].concat()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
