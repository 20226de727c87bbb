//! PostgreSQL access: the pool, the schema migrations, and how database failures become API errors.
//!
//! Every query in this service goes through `query_typed*`, which uses the unnamed statement: nothing
//! is prepared by name, so a connection can be handed between clients by RDS Proxy or PgBouncer in
//! transaction mode without pinning or "prepared statement does not exist" errors.

mod errors;

pub use deadpool_postgres::{Object as Connection, Pool};
pub use errors::{is_unique_violation_on, ResultExt};

use crate::config::DatabaseSettings;
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;

/// How long a request waits for a free connection before it is told to retry (503).
const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long opening a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Builds the pool. No connection is opened until the first request needs one, so a cold start
/// does no network I/O here.
pub fn pool(settings: &DatabaseSettings, default_max_size: usize) -> Result<Pool, DbSetupError> {
    let mut pg = settings.pg_config();
    pg.connect_timeout(CONNECT_TIMEOUT);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            // `Fast` only checks the socket is open; a broken connection fails its query and is
            // dropped rather than costing every checkout a round trip.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.pool_max_size.unwrap_or(default_max_size))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()?)
}

/// Applies every migration in `migrations/` that this database has not seen yet.
pub async fn migrate(pool: &Pool) -> Result<(), DbSetupError> {
    let mut conn = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    let report = embedded::migrations::runner().run_async(client).await?;
    for applied in report.applied_migrations() {
        tracing::info!(migration = %applied, "applied migration");
    }
    Ok(())
}
