//! The booking herd through a transaction-mode connection pooler, as deployed behind RDS Proxy:
//! PgBouncer (`pool_mode = transaction`, five server connections) hands each transaction to
//! whichever server connection is free, so a statement prepared by name on one would be missing
//! on the next ("prepared statement … does not exist"). Every statement here is unnamed.

use crate::helpers::{spawn_app_with, stampede, Spawn};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// Server connections PgBouncer may open per database: far fewer than the clients.
const SERVER_CONNECTIONS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_fifty_simultaneous_bookings_through_pgbouncer_make_exactly_one() {
    let bouncer = PgBouncer::start().await;
    let app = spawn_app_with(Spawn {
        database_via: Some(bouncer.address()),
        // Forty client connections from the server, multiplexed onto five server connections.
        env: vec![("DB_POOL_MAX_SIZE", "40".to_owned())],
        ..Spawn::default()
    })
    .await;
    let (event_id, seats) = app.seed_event(2, 5).await;
    let seat = seats[3];

    let clients = 250;
    let requests = (0..clients)
        .map(|i| {
            (
                format!("proxy-fan-{i}"),
                json!({"event_id": event_id, "seat_ids": [seat]}),
            )
        })
        .collect();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, body) in stampede(&app, requests).await {
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "no server error through PgBouncer: {status} {body}"
        );
        if status == 409 {
            assert_eq!(body["seat_ids"], json!([seat]), "{body}");
        }
    }
    assert_eq!(by_status.get(&201), Some(&1), "one winner: {by_status:?}");
    assert_eq!(
        by_status.get(&409),
        Some(&(clients - 1)),
        "everyone else 409: {by_status:?}"
    );
    assert_eq!(
        app.tickets_for_seat(event_id, seat).await,
        1,
        "one ticket row"
    );

    // The transactions really shared a handful of server connections.
    let pools = bouncer.admin("SHOW POOLS").await;
    let pool = pools
        .iter()
        .find(|row| row["database"] == app.db_name)
        .expect("PgBouncer pooled the test database");
    let servers: usize = ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"]
        .iter()
        .map(|c| pool[*c].parse::<usize>().unwrap())
        .sum();
    assert!(
        (1..=SERVER_CONNECTIONS).contains(&servers),
        "at most {SERVER_CONNECTIONS} server connections: {pool:?}"
    );
    let log = bouncer.log();
    assert!(
        !log.contains("prepared statement"),
        "no prepared-statement errors in PgBouncer's log:\n{log}"
    );
}

/// PgBouncer in transaction mode on a free port, in front of the test PostgreSQL.
struct PgBouncer {
    port: u16,
    user: String,
    process: Child,
    dir: PathBuf,
}

impl PgBouncer {
    async fn start() -> PgBouncer {
        let binary = pgbouncer_binary();
        let admin: tokio_postgres::Config = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
            .parse()
            .unwrap();
        let upstream_host = match admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let upstream_port = admin.get_ports().first().copied().unwrap_or(5432);
        let user = admin.get_user().unwrap_or("postgres").to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();

        // PgBouncer refuses to run as root: then it switches to `postgres`, which must be able to
        // read these files.
        let dir = std::env::temp_dir().join(format!("seatbook-pgbouncer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, format!("\"{user}\" \"\"\n")).unwrap();
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
                 default_pool_size = {SERVER_CONNECTIONS}\n\
                 max_db_connections = {SERVER_CONNECTIONS}\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                auth = auth_file.display()
            ),
        )
        .unwrap();
        for path in [&dir, &auth_file, &ini] {
            use std::os::unix::fs::PermissionsExt;
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }

        let log = std::fs::File::create(dir.join("pgbouncer.log")).unwrap();
        let mut command = Command::new(&binary);
        if running_as_root() {
            command.args(["-u", "postgres"]);
        }
        let process = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let bouncer = PgBouncer {
            port,
            user: user.clone(),
            process,
            dir,
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
                    return bouncer;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "PgBouncer did not come up on port {port}:\n{}",
                bouncer.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// A `SHOW` command on PgBouncer's admin console, as rows of column → value.
    async fn admin(&self, command: &str) -> Vec<HashMap<String, String>> {
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

fn pgbouncer_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        return PathBuf::from(path);
    }
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer not found: this test needs PgBouncer (Debian package `pgbouncer`; \
                 scripts/services installs it), or set PGBOUNCER to its path"
            )
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
