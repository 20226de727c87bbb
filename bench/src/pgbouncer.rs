//! PgBouncer in transaction mode on a free port: the bench's stand-in for RDS Proxy (the
//! `lambda` scenario). The same approach as tests/api/proxy.rs.

use crate::Result;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

pub struct PgBouncer {
    pub port: u16,
    /// Server connections PgBouncer may open to the database (`default_pool_size` and
    /// `max_db_connections`).
    pub server_connections: usize,
    pub version: String,
    pub pid: u32,
    user: String,
    process: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer in front of the PostgreSQL at `pg_base` (a URL without a database name),
    /// pooling every database in transaction mode onto at most `server_connections` server
    /// connections each.
    pub async fn start(pg_base: &str, server_connections: usize) -> Result<PgBouncer> {
        let binary = binary()?;
        let upstream: tokio_postgres::Config = format!("{pg_base}/postgres").parse()?;
        let host = match upstream.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let upstream_port = upstream.get_ports().first().copied().unwrap_or(5432);
        let user = upstream.get_user().unwrap_or("postgres").to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();

        // As root PgBouncer switches to `postgres`, which must be able to read these files.
        let dir = std::env::temp_dir().join(format!(
            "seatbook-bench-pgbouncer-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, format!("\"{user}\" \"\"\n"))?;
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={host} port={upstream_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 admin_users = {user}\n\
                 pool_mode = transaction\n\
                 max_client_conn = 10000\n\
                 default_pool_size = {server_connections}\n\
                 max_db_connections = {server_connections}\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                auth = auth_file.display()
            ),
        )?;
        for path in [&dir, &auth_file, &ini] {
            use std::os::unix::fs::PermissionsExt;
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "PgBouncer".to_owned());

        let log = std::fs::File::create(dir.join("pgbouncer.log"))?;
        let mut command = Command::new(&binary);
        if running_as_root() {
            command.args(["-u", "postgres"]);
        }
        let process = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut bouncer = PgBouncer {
            port,
            server_connections,
            version,
            pid: process.id(),
            user: user.clone(),
            process,
            dir,
        };

        let started = Instant::now();
        loop {
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(port)
                .user(&user)
                .dbname("postgres");
            if let Ok((client, connection)) = config.connect(NoTls).await {
                tokio::spawn(connection);
                if client.simple_query("SELECT 1").await.is_ok() {
                    return Ok(bouncer);
                }
            }
            if let Ok(Some(status)) = bouncer.process.try_wait() {
                return Err(format!(
                    "PgBouncer exited during start-up ({status}):\n{}",
                    bouncer.log()
                )
                .into());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "PgBouncer did not come up on port {port}:\n{}",
                    bouncer.log()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of `database` through PgBouncer (trust authentication, the upstream's user).
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// Stops PgBouncer (its server connections close with it) and removes its files; also done
    /// on drop.
    pub fn stop(&mut self) {
        if !matches!(self.process.try_wait(), Ok(Some(_))) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        return Ok(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "pgbouncer not found: the lambda scenario needs PgBouncer (Debian package `pgbouncer`; \
             scripts/services installs it), or set PGBOUNCER to its path"
                .into()
        })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
