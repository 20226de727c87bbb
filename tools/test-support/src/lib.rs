//! What the tests start, once: a scratch PostgreSQL database ([`TestDb`]), a private
//! redis-server ([`RedisServer`]) or a faulty route to one ([`RedisRoute`]), PgBouncer
//! ([`PgBouncer`]), moto's Secrets Manager ([`Moto`]), free ports ([`free_port`], [`free_ports`]) and
//! API Gateway events ([`gateway_event`], [`sample_event`]).
//!
//! The servers default to the local ones `scripts/services` starts; `TEST_DATABASE_URL` and
//! `TEST_REDIS_URL` point the tests elsewhere.

mod db;
mod gateway;
mod moto;
mod pgbouncer;
mod redis_server;

pub use db::{database_server_url, TestDb};
pub use gateway::{gateway_event, sample_event};
pub use moto::Moto;
pub use pgbouncer::PgBouncer;
pub use redis_server::{redis_url, RedisRoute, RedisServer};

/// A loopback port nobody listens on right now (there is a short window before the caller binds
/// it, fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// `n` different loopback ports nobody listens on right now: every probe stays open until all
/// are chosen.
pub fn free_ports(n: usize) -> Vec<u16> {
    let probes: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    probes
        .iter()
        .map(|p| p.local_addr().unwrap().port())
        .collect()
}

/// The `host` of a PostgreSQL configuration's first TCP host, 127.0.0.1 when it names none.
fn host_of(config: &tokio_postgres::Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    }
}

/// `host:port` of a PostgreSQL configuration's server.
fn server_of(config: &tokio_postgres::Config) -> String {
    format!(
        "{}:{}",
        host_of(config),
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// An executable: the path in `var` when set, else `name` in the first directory of `PATH`, then
/// of `dirs`, that holds it.
fn find_executable(
    var: &str,
    name: &str,
    dirs: impl IntoIterator<Item = std::path::PathBuf>,
) -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
