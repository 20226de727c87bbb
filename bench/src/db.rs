//! The bench's own database: created fresh for the run (by the server, at start-up), inspected
//! for the integrity checks, and dropped at the end, so no other data is ever touched.

use crate::Result;
use tokio_postgres::{Client, NoTls};

pub struct BenchDb {
    pub name: String,
    /// The server URL without a database name, e.g. postgres://postgres@127.0.0.1:5432.
    pub base: String,
}

impl BenchDb {
    pub fn new(base: &str) -> BenchDb {
        BenchDb {
            name: format!("seatbook_bench_{}", std::process::id()),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// Drops a leftover database of the same name (a crashed run whose pid was reused).
    pub async fn drop_if_exists(&self) -> Result<()> {
        let admin = connect(&format!("{}/postgres", self.base)).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }

    pub async fn connect(&self) -> Result<Client> {
        connect(&self.url()).await
    }
}

pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Statistics for the planner. Run once at the start of each scenario, before its ceiling, and
/// not again before the service side: both sides of a comparison must plan with the very same
/// statistics. (The scenarios insert tens of thousands of rows a minute, far faster than
/// autoanalyze would follow, and two ANALYZEs of the same data can tip a plan one way or the
/// other: seen with the availability query, whose plan either hash-joins every booking or not.)
pub async fn analyze(pg: &Client) -> Result<()> {
    pg.batch_execute("ANALYZE").await?;
    Ok(())
}

/// Autovacuum off on the bench's own tables: it would otherwise land in one side of a
/// comparison and not the other, and `analyze` above keeps statistics fresh at fixed points.
/// (The tables are insert-only here, so nothing needs vacuuming within a run.)
pub async fn quiet_autovacuum(pg: &Client) -> Result<()> {
    let tables: Vec<String> = pg
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for table in tables {
        pg.batch_execute(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = false)"
        ))
        .await?;
    }
    Ok(())
}

/// Before every measured phase: flush dirty pages now, so a checkpoint does not land inside one
/// side of a comparison only. Needs a superuser, which the bench's PostgreSQL user is; a refusal
/// is not fatal.
pub async fn settle(pg: &Client) {
    if let Err(err) = pg.batch_execute("CHECKPOINT").await {
        eprintln!("note: CHECKPOINT refused ({err}); measurements may include one");
    }
}
