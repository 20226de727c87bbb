//! The local development server: every Lambda function's routes, served over plain HTTP under the
//! same paths API Gateway uses, through the very same handlers; and the API's OpenAPI document,
//! assembled from every function's operations ([`openapi`]).

pub mod openapi;

use axum::Router;
use seatbook_core::config::Settings;
use seatbook_core::{db, http, AppState};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// Connections for the local server unless `DB_POOL_MAX_SIZE` says otherwise (a Lambda
/// environment uses far fewer): two per core of this machine, the PostgreSQL wiki's rule of thumb
/// for a database on the same machine, as it is in development and load tests, within 4..=16.
/// More only make each booking cost PostgreSQL more, and the bookers wait for a connection
/// instead: on one PostgreSQL core, 0.44-0.52 ms of its CPU a booking with 4 connections, 0.49-0.52
/// with 6, 0.50-0.62 with 8, 0.57-0.58 with 16 (scripts/bench, decision 32).
pub fn local_pool_size() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (2 * cores).clamp(4, 16)
}

/// Binds the server socket with a deep accept queue: an on-sale opens thousands of connections in
/// the same instant, and a shallow queue turns that burst into SYN retries a second later.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// All functions' routes in one router, as API Gateway would route them. With `dev_identity`,
/// `x-dev-user` / `x-dev-groups` headers stand in for the JWT authorizer's claims.
pub fn app(state: AppState, dev_identity: DevIdentity) -> Router {
    let routes = booking_fn::routes(&state)
        .merge(events_fn::routes())
        .merge(organizer_fn::routes())
        .merge(metrics_fn::routes());
    let app = http::finish(routes, state);
    match dev_identity {
        DevIdentity::On => seatbook_core::dev_identity::trust_dev_headers(app),
        DevIdentity::Off => app,
    }
}

/// Whether callers are trusted by their `x-dev-user` / `x-dev-groups` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevIdentity {
    On,
    Off,
}

/// Set to `true` to serve dev identity on an address other hosts can reach.
pub const ALLOW_REMOTE_VAR: &str = "LOCAL_API_ALLOW_REMOTE_DEV_IDENTITY";

/// Refuses an address other hosts can reach while dev identity is on, unless `allow_remote`:
/// anyone who can reach such a server can act as any user, organizers included.
pub fn check_bind(
    host: std::net::IpAddr,
    dev_identity: DevIdentity,
    allow_remote: bool,
) -> Result<(), String> {
    if dev_identity == DevIdentity::Off || host.is_loopback() || allow_remote {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {host} with dev identity on: anyone who can reach it could act as \
         any user by sending an x-dev-user header. Listen on 127.0.0.1 (the default), or set \
         {}=false to require API Gateway claims, or {ALLOW_REMOTE_VAR}=true if you really mean it.",
        seatbook_core::config::DEV_IDENTITY_VAR
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "PostgreSQL is not reachable at {target} ({cause}).\n\
         Start it, e.g. on Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
         or point DATABASE_URL at a running server."
    )]
    NoDatabase {
        target: String,
        cause: tokio_postgres::Error,
    },
    #[error(transparent)]
    Setup(#[from] seatbook_core::state::SetupError),
    #[error(transparent)]
    Migrate(#[from] db::DbSetupError),
    #[error("could not create the database: {0}")]
    Create(tokio_postgres::Error),
}

/// Makes sure the configured database exists and is migrated, then returns the state to serve.
pub async fn prepare(settings: &Settings) -> Result<AppState, StartError> {
    let config = settings.database.pg_config();
    if let Err(cause) = config.connect(NoTls).await {
        let missing = cause.code() == Some(&SqlState::INVALID_CATALOG_NAME);
        if !missing {
            return Err(StartError::NoDatabase {
                target: describe(&config),
                cause,
            });
        }
        create_database(&config).await?;
    }
    let state = AppState::from_settings(settings, local_pool_size())?;
    db::migrate(&state.db).await?;
    Ok(state)
}

async fn create_database(config: &tokio_postgres::Config) -> Result<(), StartError> {
    let name = config.get_dbname().unwrap_or("postgres").to_owned();
    let mut admin = config.clone();
    admin.dbname("postgres");
    let (client, connection) =
        admin
            .connect(NoTls)
            .await
            .map_err(|cause| StartError::NoDatabase {
                target: describe(config),
                cause,
            })?;
    tokio::spawn(connection);
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another process created it first.
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(StartError::Create(e)),
    }
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::{check_bind, DevIdentity};

    #[test]
    fn dev_identity_is_served_only_on_loopback_unless_explicitly_allowed() {
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let lan: std::net::IpAddr = "192.168.1.20".parse().unwrap();
        for loopback in ["127.0.0.1", "::1"] {
            assert!(check_bind(loopback.parse().unwrap(), DevIdentity::On, false).is_ok());
        }
        assert!(check_bind(any, DevIdentity::On, false).is_err());
        assert!(check_bind(lan, DevIdentity::On, false).is_err());
        assert!(check_bind(any, DevIdentity::On, true).is_ok());
        assert!(check_bind(any, DevIdentity::Off, false).is_ok());
    }
}
