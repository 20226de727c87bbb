//! PostgreSQL access: the pool, the schema migrations, and how database failures become API errors.
//!
//! Every query in this service goes through `query_typed*`, which uses the unnamed statement: nothing
//! is prepared by name, so a connection can be handed between clients by RDS Proxy or PgBouncer in
//! transaction mode without pinning or "prepared statement does not exist" errors. (deadpool's
//! `prepare_cached` would prepare *named* statements: do not use it.)
//!
//! Connections are opened by [`connect`]: plain or TLS (rustls), with the credentials of
//! `DATABASE_URL` or of the Secrets Manager secret in `DB_SECRET_ARN` ([`secret`]).

mod connect;
mod errors;
pub mod secret;

pub use connect::TlsSetupError;
pub use deadpool_postgres::{Object as Connection, Pool};
pub use errors::{is_retryable_conflict, is_unique_violation_on, ResultExt};

use crate::config::{DatabaseSettings, DatabaseSource};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use std::time::Duration;

// Every wait sits inside the request's deadline ([`crate::http::REQUEST_DEADLINE`], itself inside
// the function's timeout): a database that stops answering is a 503 with Retry-After, never a
// Lambda timeout. Statements have their own (lock_timeout in book() and confirm_hold(), and
// statement_timeout / lock_timeout for the service's roles: migrations/V11).

/// How long a request waits for a free connection before it is told to retry (503).
const POOL_WAIT: Duration = Duration::from_secs(2);
/// How long opening a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the pool waits for a new connection. With a secret, opening one can take two attempts
/// and a read of the secret in between (after a rotation).
const CREATE_TIMEOUT_WITH_SECRET: Duration = Duration::from_millis(4500);

mod embedded {
    refinery::embed_migrations!("../migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("could not build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("could not get a database connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] refinery::Error),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
}

/// Builds the pool. No connection is opened until the first request needs one, so a cold start
/// does no network I/O here (with a secret, see [`load_credentials`]).
pub fn pool(settings: &DatabaseSettings, default_max_size: usize) -> Result<Pool, DbSetupError> {
    let (connector, pg) = connect::Connector::new(settings, CONNECT_TIMEOUT)?;
    let manager = Manager::from_connect(
        pg,
        connector,
        ManagerConfig {
            // `Fast` only checks the socket is open; a broken connection fails its query and is
            // dropped rather than costing every checkout a round trip.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let create_timeout = match settings.source {
        DatabaseSource::Url(_) => CONNECT_TIMEOUT,
        DatabaseSource::Secret(_) => CREATE_TIMEOUT_WITH_SECRET,
    };
    Ok(Pool::builder(manager)
        .max_size(settings.pool_max_size.unwrap_or(default_max_size))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(create_timeout))
        .build()?)
}

/// With `DB_SECRET_ARN`, reads the secret now unless this process already has (a Lambda cold
/// start calls this once, so a missing permission or endpoint fails the init, loudly, rather than
/// the first request). Without a secret there is nothing to load.
pub async fn load_credentials(settings: &DatabaseSettings) -> Result<(), DbSetupError> {
    if let DatabaseSource::Secret(s) = &settings.source {
        s.secret.current().await?;
    }
    Ok(())
}

/// Applies every migration in `migrations/` that this database has not seen yet, and returns how
/// many it applied.
///
/// Safe through RDS Proxy or PgBouncer in transaction mode: refinery sends each migration with the
/// simple query protocol, and its one extended-protocol query (reading the history table) is
/// prepared, executed and closed inside a transaction, so it never outlives the server connection.
pub async fn migrate(pool: &Pool) -> Result<usize, DbSetupError> {
    let mut conn = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    let report = embedded::migrations::runner().run_async(client).await?;
    for applied in report.applied_migrations() {
        tracing::info!(migration = %applied, "applied migration");
    }
    Ok(report.applied_migrations().len())
}

/// Applies the migrations up to and including `version` only: for a test that puts data in an
/// older schema and then checks what the later migrations make of it.
pub async fn migrate_to(pool: &Pool, version: i32) -> Result<usize, DbSetupError> {
    let mut conn = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    let report = embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run_async(client)
        .await?;
    Ok(report.applied_migrations().len())
}
