//! nginx beside the cached reads (issue 20): one worker on a free loopback port serving the very
//! bytes the service serves, fetched from it once: `/map.json` (plain) and `/map.json.gz` (the
//! gzip copy, served with `Content-Encoding: gzip`). Measured with the bench's own load generator.
//! Stopped, and its directory removed, on drop (also when the run fails or is interrupted).

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
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
        let conf = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               default_type application/json;\n\
               sendfile on;\n\
               tcp_nodelay on;\n\
               keepalive_requests 100000000;\n\
               keepalive_timeout 300s;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 root {d}/www;\n\
                 location = {GZIP} {{ add_header Content-Encoding gzip; }}\n\
               }}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let version = Command::new("nginx")
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .map_err(|e| format!("nginx is not installed (Debian package nginx-light): {e}"))?;
        let mut command = Command::new("nginx");
        // SAFETY: prctl(2) in the child before exec; no allocation, no locks. If the bench dies
        // without running its clean-up (SIGKILL), nginx gets SIGTERM instead of living on.
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
        let mut nginx = Nginx {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            child,
            dir,
        };
        nginx.wait_until_ready(plain.len()).await?;
        Ok(nginx)
    }

    async fn wait_until_ready(&mut self, plain_len: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let who = Identity::user("bench-probe");
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited during start-up ({status}): {log}").into());
            }
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if let Ok((status, body)) = conn.send(http::get(PLAIN, &who)).await {
                    if status.is_success() && body.len() == plain_len {
                        return Ok(());
                    }
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
        let mut pids = vec![master];
        pids.extend(crate::procstat::children(master));
        pids
    }

    pub fn stop(&mut self) {
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

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
