//! A PostgreSQL database of a test's own, dropped when the value is, even when the test panicked.

use tokio_postgres::NoTls;

/// The server test databases are created on (its maintenance database): `TEST_DATABASE_URL`, else
/// the local server.
pub fn database_server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub name: String,
    admin: tokio_postgres::Config,
}

impl TestDb {
    /// A new, empty database named `test_<purpose>_<uuid>` on [`database_server_url`].
    pub async fn create(purpose: &str) -> TestDb {
        TestDb::create_on(&database_server_url(), purpose).await
    }

    /// The same on another server, named by the `postgres://` URL of its maintenance database.
    pub async fn create_on(server_url: &str, purpose: &str) -> TestDb {
        TestDb::try_create_on(server_url, purpose)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must be running for the tests (scripts/services starts it): \
                     {server_url}: {e}"
                )
            })
    }

    /// The same, with the error when the server cannot be reached or refuses.
    pub async fn try_create_on(
        server_url: &str,
        purpose: &str,
    ) -> Result<TestDb, tokio_postgres::Error> {
        TestDb::try_create_from(server_url.parse()?, purpose, None).await
    }

    /// A new database on `admin`'s server, empty or a copy of `template`.
    async fn try_create_from(
        admin: tokio_postgres::Config,
        purpose: &str,
        template: Option<&str>,
    ) -> Result<TestDb, tokio_postgres::Error> {
        let name = format!("test_{purpose}_{}", uuid::Uuid::new_v4().simple());
        let from = template
            .map(|t| format!(" TEMPLATE {t}"))
            .unwrap_or_default();
        try_connect(&admin)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}{from}"))
            .await?;
        Ok(TestDb { name, admin })
    }

    /// `postgres://user@host:port/name`, as a function's `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.url_via(&self.server())
    }

    /// The same through `host:port`, e.g. a connection pooler in front of the server.
    pub fn url_via(&self, server: &str) -> String {
        url_of(&self.admin, server, &self.name)
    }

    /// `host:port` of the server the database is on.
    pub fn server(&self) -> String {
        crate::server_of(&self.admin)
    }

    /// The user the database was created by and is reached as.
    pub fn user(&self) -> &str {
        user_of(&self.admin)
    }

    /// A new connection to it as the server's admin user.
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        try_connect(&config)
            .await
            .unwrap_or_else(|e| panic!("connect to the test database {}: {e}", self.name))
    }

    /// Applies the migrations in `migrations/`, as the `migrate` function does.
    #[cfg(feature = "migrate")]
    pub async fn migrate(&self) {
        migrate(self.url()).await;
    }

    /// A new database with the migrations applied, as [`TestDb::create`] then
    /// [`TestDb::migrate`] would leave it, but copied from a template database that holds
    /// exactly these migrations (`test_template_<hash of migrations/>`, made by the first test
    /// that needs it and kept for the next runs): applying them costs PostgreSQL about 0.2 s of
    /// CPU, a minute of every CI run over the suite, where the copy is one statement.
    #[cfg(feature = "migrate")]
    pub async fn migrated(purpose: &str) -> TestDb {
        let server = database_server_url();
        let copied = async {
            let admin: tokio_postgres::Config = server.parse()?;
            let template = migrated_template(&admin).await?;
            TestDb::try_create_from(admin, purpose, Some(&template)).await
        };
        copied
            .await
            .unwrap_or_else(|e| panic!("a migrated test database on {server}: {e}"))
    }
}

/// Applies the migrations in `migrations/` to the database at `url`.
#[cfg(feature = "migrate")]
async fn migrate(url: String) {
    let settings = seatbook_core::config::Settings::from_lookup(|k| {
        (k == "DATABASE_URL").then(|| url.clone())
    })
    .expect("settings for the test database");
    let pool = seatbook_core::db::pool(&settings.database, 1).expect("a pool");
    seatbook_core::db::migrate(&pool).await.expect("migrate");
}

/// The template database holding the migrations in `migrations/` now, made once: the first
/// caller builds it under an advisory lock while the others wait, and it counts as made only once
/// its comment says so (a build that died half-way is made again). Templates of other
/// migrations are dropped then.
#[cfg(feature = "migrate")]
async fn migrated_template(
    admin: &tokio_postgres::Config,
) -> Result<String, tokio_postgres::Error> {
    /// The advisory lock's key: "seatbook" in ASCII.
    const LOCK: i64 = 0x7365_6174_626f_6f6b;
    const DONE: &str = "migrated";
    let name = format!("test_template_{:016x}", migrations_hash());
    let client = try_connect(admin).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let made: Option<String> = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await?
        .and_then(|row| row.get(0));
    if made.as_deref() != Some(DONE) {
        let stale = client
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_template\\_%'",
                &[],
            )
            .await?;
        for row in stale {
            let stale: String = row.get(0);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"))
                .await?;
        }
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        migrate(url_of(admin, &crate::server_of(admin), &name)).await;
        client
            .batch_execute(&format!("COMMENT ON DATABASE {name} IS '{DONE}'"))
            .await?;
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await?;
    Ok(name)
}

/// A hash of every migration's file name and text.
#[cfg(feature = "migrate")]
fn migrations_hash() -> u64 {
    use std::hash::{Hash, Hasher};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a migration").path())
        .collect();
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        std::fs::read(&file).expect("a migration").hash(&mut hasher);
    }
    hasher.finish()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a runtime of its own on its own thread can, inside a test's runtime.
        // FORCE ends the connections pools still hold.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(async move {
                    try_connect(&admin)
                        .await?
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// `postgres://user@server/name` for the database `name` reached as `admin`'s user.
fn url_of(admin: &tokio_postgres::Config, server: &str, name: &str) -> String {
    format!("postgres://{}@{server}/{name}", user_of(admin))
}

fn user_of(admin: &tokio_postgres::Config) -> &str {
    admin.get_user().unwrap_or("postgres")
}

async fn try_connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
