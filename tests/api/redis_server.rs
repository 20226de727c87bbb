//! A private redis-server for tests that kill, stall and restart it (the shared one stays up).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// For a TLS server: its directory of keys and certificates, and the CA that signed them.
    tls: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            tls: None,
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
            port: free_port(),
            child: None,
            tls: Some(dir),
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

    /// Starts (again) on the same port, empty.
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
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
        if let Some(dir) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
