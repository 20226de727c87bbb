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
        let admin: tokio_postgres::Config = server_url.parse()?;
        let name = format!("test_{purpose}_{}", uuid::Uuid::new_v4().simple());
        try_connect(&admin)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(TestDb { name, admin })
    }

    /// `postgres://user@host:port/name`, as a function's `DATABASE_URL`.
    pub fn url(&self) -> String {
        self.url_via(&self.server())
    }

    /// The same through `host:port`, e.g. a connection pooler in front of the server.
    pub fn url_via(&self, server: &str) -> String {
        format!("postgres://{}@{server}/{}", self.user(), self.name)
    }

    /// `host:port` of the server the database is on.
    pub fn server(&self) -> String {
        crate::server_of(&self.admin)
    }

    /// The user the database was created by and is reached as.
    pub fn user(&self) -> &str {
        self.admin.get_user().unwrap_or("postgres")
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
        let url = self.url();
        let settings = seatbook_core::config::Settings::from_lookup(|k| {
            (k == "DATABASE_URL").then(|| url.clone())
        })
        .expect("settings for the test database");
        let pool = seatbook_core::db::pool(&settings.database, 1).expect("a pool");
        seatbook_core::db::migrate(&pool).await.expect("migrate");
    }

    /// [`TestDb::create`], then [`TestDb::migrate`].
    #[cfg(feature = "migrate")]
    pub async fn migrated(purpose: &str) -> TestDb {
        let db = TestDb::create(purpose).await;
        db.migrate().await;
        db
    }
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

async fn try_connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
