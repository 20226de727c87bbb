//! What the api and browser test binaries both stand on, in one place (each includes this file as
//! its `common` module): a server of every function's routes over a test database, and how a seat
//! of a map is named.

use seatbook::DevIdentity;
use seatbook_core::config::Settings;
use seatbook_core::AppState;
use serde_json::Value;
use std::collections::HashMap;
use test_support::redis_url;

/// The settings of a test server over `database_url` with `pool` connections, its cache keys under
/// `prefix` (its database's name: tests sharing one Redis never meet), with `env` set over them.
pub(crate) fn settings_env<'a>(
    database_url: String,
    pool: usize,
    prefix: &str,
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    let mut vars = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url),
        ("DB_POOL_MAX_SIZE".to_owned(), pool.to_string()),
        ("REDIS_URL".to_owned(), redis_url()),
        ("CACHE_PREFIX".to_owned(), prefix.to_owned()),
    ]);
    for (name, value) in env {
        vars.insert(name.to_owned(), value.to_owned());
    }
    vars
}

/// A test server's state from the settings `env`, its database migrated.
pub(crate) async fn prepare(env: &HashMap<String, String>) -> AppState {
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("settings");
    seatbook::prepare(&settings)
        .await
        .expect("prepare database")
}

/// Serves every function's routes over `state` on an ephemeral loopback port: its address, and
/// the task serving it (aborted when the test is done with it).
pub(crate) fn serve(
    state: AppState,
    dev_identity: DevIdentity,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = seatbook::listen("127.0.0.1:0".parse().unwrap()).expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, seatbook::app(state, dev_identity))
            .await
            .expect("serve");
    });
    (address, server)
}

/// Where a seat of a seat map is, as people write it: "Stalls A1" (section, row and number).
pub(crate) fn place(seat: &Value) -> String {
    format!(
        "{} {}{}",
        seat["section"].as_str().unwrap(),
        seat["row"].as_str().unwrap(),
        seat["number"]
    )
}
