//! PostgreSQL over TLS through the pool, against the local server: Debian's PostgreSQL has
//! `ssl = on` with the self-signed "snakeoil" certificate for `localhost`, which stands in for the
//! RDS CA bundle via `DB_CA_BUNDLE`.

use seatbook_core::config::Settings;
use seatbook_core::db;
use std::collections::HashMap;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The certificate the local server presents, as a file the test can name in `DB_CA_BUNDLE`.
async fn server_certificate() -> String {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running (scripts/services)");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_setting('ssl'), current_setting('ssl_cert_file')",
            &[],
        )
        .await
        .unwrap();
    let (ssl, cert): (String, String) = (row.get(0), row.get(1));
    assert_eq!(
        ssl, "on",
        "this test needs PostgreSQL with ssl = on (Debian's default, with the snakeoil certificate)"
    );
    cert
}

fn pool(vars: &[(&str, &str)]) -> db::Pool {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
    db::pool(&settings.database, 1).unwrap()
}

/// An error with its causes: the reason a TLS handshake failed is a few sources down.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

async fn uses_tls(pool: &db::Pool) -> Result<bool, String> {
    let conn = pool.get().await.map_err(|e| chain(&e))?;
    let row = conn
        .query_typed_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn require_encrypts_and_verifies_the_server_certificate_against_db_ca_bundle() {
    let cert = server_certificate().await;
    let url = "postgres://postgres@localhost:5432/postgres";

    let verified = pool(&[
        ("DATABASE_URL", url),
        ("DB_SSLMODE", "require"),
        ("DB_CA_BUNDLE", &cert),
    ]);
    assert_eq!(uses_tls(&verified).await, Ok(true), "TLS with the bundle");

    // The self-signed certificate is in no built-in root store: without the bundle, no connection.
    let untrusted = pool(&[("DATABASE_URL", url), ("DB_SSLMODE", "require")]);
    let err = uses_tls(&untrusted).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The certificate is for `localhost`: the host name is checked too.
    let wrong_name = pool(&[
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        ("DB_SSLMODE", "require"),
        ("DB_CA_BUNDLE", &cert),
    ]);
    let err = uses_tls(&wrong_name).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // Locally nothing changes: the default URL connects in plain text, as before.
    let local = pool(&[("DATABASE_URL", url)]);
    assert_eq!(uses_tls(&local).await, Ok(false), "plain by default");
}
