//! The local development server: every Lambda function's routes, served over plain HTTP under the
//! same paths API Gateway uses, through the very same handlers.

use axum::Router;
use seatbook_core::config::Settings;
use seatbook_core::{db, http, AppState};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// Connections for the local server; a Lambda environment uses far fewer.
pub const LOCAL_POOL_SIZE: usize = 16;

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

/// All functions' routes in one router, as API Gateway would route them.
pub fn app(state: AppState) -> Router {
    let routes = booking_fn::routes()
        .merge(events_fn::routes())
        .merge(organizer_fn::routes())
        .merge(metrics_fn::routes());
    http::finish(routes, state)
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
    let state = AppState::from_settings(settings, LOCAL_POOL_SIZE)?;
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
