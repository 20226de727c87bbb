//! A private redis-server for tests that kill, stall and restart it (the shared one stays up), and
//! that restart it from a snapshot of its data.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Redis every test shares: `TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// For a TLS server: its directory of keys and certificates, and the CA that signed them.
    tls: Option<std::path::PathBuf>,
    /// For a server that keeps its data: the directory of its snapshot (`dump.rdb`).
    data: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = RedisServer {
            port: crate::free_port(),
            child: None,
            tls: None,
            data: None,
        };
        server.restart();
        server
    }

    /// A server that keeps its data across restarts, as of its last [`RedisServer::save`]: it
    /// never saves by itself, so a restart after a kill comes back with exactly that snapshot (what
    /// a crash between two RDB saves, or a failover to a replica that lagged, leaves).
    pub fn start_persistent() -> Self {
        let dir =
            std::env::temp_dir().join(format!("seatbook-redis-data-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port: crate::free_port(),
            child: None,
            tls: None,
            data: Some(dir),
        };
        server.restart();
        server
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 from a CA made for it.
    pub fn start_tls() -> Self {
        let dir = std::env::temp_dir().join(format!("seatbook-redis-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stderr(Stdio::null())
                .status()
                .expect("openssl must be installed (scripts/services installs it)");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=seatbook-test-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]);
        let mut server = RedisServer {
            port: crate::free_port(),
            child: None,
            tls: Some(dir),
            data: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA certificate a TLS server's certificate chains to.
    pub fn ca_file(&self) -> String {
        let dir = self.tls.as_ref().expect("a TLS server");
        dir.join("ca.crt").display().to_string()
    }

    /// Starts (again) on the same port: empty, or for a persistent server from its last snapshot.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(dir) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args([
                    "--tls-cert-file",
                    &dir.join("server.crt").display().to_string(),
                    "--tls-key-file",
                    &dir.join("server.key").display().to_string(),
                    "--tls-ca-cert-file",
                    &dir.join("ca.crt").display().to_string(),
                    "--tls-auth-clients",
                    "no",
                ]),
        };
        if let Some(dir) = &self.data {
            command.args([
                "--dir",
                &dir.display().to_string(),
                "--dbfilename",
                "dump.rdb",
            ]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            // Accepting connections, and for a persistent server, done loading its snapshot.
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && (self.tls.is_some() || self.command(&["PING"]).is_ok())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Runs one command on a connection of its own (not over TLS), e.g. `["CLIENT", "KILL",
    /// "TYPE", "normal"]`. An error while the server is still loading its snapshot is an error.
    pub fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }

    /// Writes the snapshot a restart comes back with (`SAVE`).
    pub fn save(&self) {
        self.command(&["SAVE"]).expect("SAVE");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
        for dir in [&self.tls, &self.data].into_iter().flatten() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A TCP path to a Redis that one environment alone uses, and that the test can stall or cut
/// while Redis itself stays up for everyone else (a network fault between one Lambda environment
/// and Redis).
pub struct RedisRoute {
    port: u16,
    mode: tokio::sync::watch::Sender<Route>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Route {
    Open,
    /// Bytes are read and dropped both ways: commands time out and never reach Redis.
    Stalled,
    /// Connections are closed, and new ones closed as soon as they are accepted.
    Cut,
}

impl RedisRoute {
    /// A route to the Redis at `redis_url` (`redis://host:port`).
    pub async fn to(redis_url: &str) -> Self {
        let upstream = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, watching) = tokio::sync::watch::channel(Route::Open);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watching.borrow() == Route::Cut {
                    continue; // dropped: closed at once
                }
                let (upstream, watching) = (upstream.clone(), watching.clone());
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                        carry(client, server, watching).await;
                    }
                });
            }
        });
        RedisRoute { port, mode, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stall(&self) {
        self.mode.send_replace(Route::Stalled);
    }

    pub fn cut(&self) {
        self.mode.send_replace(Route::Cut);
    }

    /// Open again. Connections that were stalled are closed (what was dropped on them cannot be
    /// made up), so the client reconnects.
    pub fn heal(&self) {
        self.mode.send_replace(Route::Open);
    }
}

impl Drop for RedisRoute {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn carry(
    mut client: tokio::net::TcpStream,
    mut server: tokio::net::TcpStream,
    mut mode: tokio::sync::watch::Receiver<Route>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut stalled = *mode.borrow() == Route::Stalled;
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                if *mode.borrow() == Route::Stalled {
                    stalled = true;
                } else if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if *mode.borrow() == Route::Stalled {
                    stalled = true;
                } else if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => {
                let now = *mode.borrow_and_update();
                match (changed, now) {
                    (Err(_), _) | (_, Route::Cut) => return,
                    (_, Route::Stalled) => stalled = true,
                    (_, Route::Open) if stalled => return,
                    (_, Route::Open) => {}
                }
            }
        }
    }
}
