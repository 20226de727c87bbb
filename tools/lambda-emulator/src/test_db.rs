//! A PostgreSQL database of a test's own on the server `TEST_DATABASE_URL` names (the local
//! server by default), dropped when the value is, even when the test panicked.

use tokio_postgres::NoTls;

pub struct TestDb {
    pub name: String,
    admin: tokio_postgres::Config,
}

impl TestDb {
    /// A new, empty database named `test_<purpose>_<uuid>`.
    pub async fn create(purpose: &str) -> TestDb {
        let admin: tokio_postgres::Config = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
            .parse()
            .expect("TEST_DATABASE_URL");
        let name = format!("test_{purpose}_{}", uuid::Uuid::new_v4().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        TestDb { name, admin }
    }

    /// `postgres://user@host:port/name`, as a function's `DATABASE_URL`.
    pub fn url(&self) -> String {
        let host = match self.admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        format!(
            "postgres://{}@{host}:{}/{}",
            self.admin.get_user().unwrap_or("postgres"),
            self.admin.get_ports().first().copied().unwrap_or(5432),
            self.name
        )
    }

    /// A connection to it as the server's admin user.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url().parse().expect("a database URL")).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop cannot await; a runtime of its own on its own thread can, inside a test's runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(async move {
                    connect(&admin)
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
    }
}

async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .expect("PostgreSQL must be running for the tests (scripts/services starts it)");
    tokio::spawn(connection);
    client
}
