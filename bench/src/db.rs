//! Sessions on the bench's own database, and keeping PostgreSQL's housekeeping out of the
//! measurements.

use crate::Result;
use tokio_postgres::{Client, NoTls};

pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Statistics for the planner, at the start of each scenario, before its ceiling, and not again
/// before the service side: both sides of a comparison must plan with the very same statistics.
/// (The scenarios insert rows far faster than autoanalyze would follow, and two ANALYZEs of the
/// same data can tip a plan either way: seen with the availability query.)
pub async fn analyze(pg: &Client) -> Result<()> {
    Ok(pg.batch_execute("ANALYZE").await?)
}

/// Autovacuum off on the bench's tables: it would land in one side of a comparison and not the
/// other, and `analyze` keeps statistics fresh at fixed points (the tables are insert-only here).
pub async fn quiet_autovacuum(pg: &Client) -> Result<()> {
    let sql = "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
               WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
    for row in pg.query(sql, &[]).await? {
        let table: String = row.get(0);
        pg.batch_execute(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .await?;
    }
    Ok(())
}

/// Before every measured phase: flush dirty pages now, so a checkpoint does not land inside one
/// side of a comparison only. Needs a superuser; a refusal is not fatal.
pub async fn settle(pg: &Client) {
    if let Err(err) = pg.batch_execute("CHECKPOINT").await {
        eprintln!("note: CHECKPOINT refused ({err}); measurements may include one");
    }
}
