//! PgBouncer in transaction mode on a free port: what stands in for RDS Proxy. It hands each
//! transaction to whichever server connection is free.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{NoTls, SimpleQueryMessage};

pub struct PgBouncer {
    port: u16,
    user: String,
    process: Child,
    dir: PathBuf,
    binary: PathBuf,
}

impl PgBouncer {
    /// In front of the test PostgreSQL ([`crate::database_server_url`]), pooling every database
    /// onto at most `server_connections` server connections each.
    pub async fn start(server_connections: usize) -> PgBouncer {
        PgBouncer::start_on(&crate::database_server_url(), server_connections).await
    }

    /// The same in front of the server of a `postgres://` URL.
    pub async fn start_on(server_url: &str, server_connections: usize) -> PgBouncer {
        PgBouncer::try_start_on(server_url, server_connections)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PgBouncer::start_on`], with what went wrong as an error instead of a panic.
    pub async fn try_start_on(
        server_url: &str,
        server_connections: usize,
    ) -> Result<PgBouncer, String> {
        let binary = pgbouncer_binary()?;
        let admin: tokio_postgres::Config = server_url
            .parse()
            .map_err(|e| format!("a postgres:// URL: {e}"))?;
        let upstream_host = crate::host_of(&admin);
        let upstream_port = admin.get_ports().first().copied().unwrap_or(5432);
        let user = admin.get_user().unwrap_or("postgres").to_owned();
        let port = crate::free_port();

        // PgBouncer refuses to run as root: then it switches to `postgres`, which must be able to
        // read these files.
        let dir = std::env::temp_dir().join(format!("seatbook-pgbouncer-{}", uuid::Uuid::new_v4()));
        let io = |e: std::io::Error| format!("PgBouncer's files in {}: {e}", dir.display());
        std::fs::create_dir_all(&dir).map_err(io)?;
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, format!("\"{user}\" \"\"\n")).map_err(io)?;
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={upstream_host} port={upstream_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 admin_users = {user}\n\
                 pool_mode = transaction\n\
                 max_client_conn = 1000\n\
                 default_pool_size = {server_connections}\n\
                 max_db_connections = {server_connections}\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                auth = auth_file.display()
            ),
        )
        .map_err(io)?;
        for path in [&dir, &auth_file, &ini] {
            use std::os::unix::fs::PermissionsExt;
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        }

        let log = std::fs::File::create(dir.join("pgbouncer.log")).map_err(io)?;
        let mut command = Command::new(&binary);
        if running_as_root() {
            command.args(["-u", "postgres"]);
        }
        let process = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let bouncer = PgBouncer {
            port,
            user: user.clone(),
            process,
            dir,
            binary,
        };

        let started = Instant::now();
        loop {
            // (Config::port appends: build the configuration afresh.)
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
            if started.elapsed() >= Duration::from_secs(20) {
                return Err(format!(
                    "PgBouncer did not come up on port {port}:\n{}",
                    bouncer.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its process id (for CPU figures).
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The first line of `pgbouncer --version`, e.g. `PgBouncer 1.18.0`.
    pub fn version(&self) -> String {
        Command::new(&self.binary)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "PgBouncer".to_owned())
    }

    /// `host:port` to reach the databases through.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// A `SHOW` command on PgBouncer's admin console, as rows of column → value.
    pub async fn admin(&self, command: &str) -> Vec<HashMap<String, String>> {
        let (client, connection) = format!(
            "host=127.0.0.1 port={} user={} dbname=pgbouncer",
            self.port, self.user
        )
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .connect(NoTls)
        .await
        .expect("PgBouncer admin console");
        tokio::spawn(connection);
        client
            .simple_query(command)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_owned(), row.get(i).unwrap_or("").to_owned()))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pgbouncer_binary() -> Result<PathBuf, String> {
    let sbin = [PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")];
    crate::find_executable("PGBOUNCER", "pgbouncer", sbin).ok_or_else(|| {
        "pgbouncer not found: this needs PgBouncer (Debian package `pgbouncer`; \
         scripts/services installs it), or set PGBOUNCER to its path"
            .to_owned()
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
