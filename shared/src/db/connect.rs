//! How the pool opens a connection: TLS or not, and whose credentials.
//!
//! deadpool-postgres calls [`Connector::connect`] whenever it needs a new connection. With
//! `DATABASE_URL` that is a plain connect. With `DB_SECRET_ARN` the user and password (and, unless
//! `DB_HOST`/`DB_PORT`/`DB_NAME` say otherwise, the host, port and database) come from the secret
//! read at cold start; if the server refuses the password, the secret was probably rotated: it is
//! read again (once, however many connections noticed) and the connection is retried once.

use super::secret::{DbSecret, Snapshot};
use crate::config::{DatabaseSettings, DatabaseSource};
use deadpool_postgres::Connect;
use secrecy::ExposeSecret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Error, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

type Connected = Result<(Client, JoinHandle<()>), Error>;

pub(crate) struct Connector {
    target: Target,
    /// `Some` when the connection must be encrypted (`sslmode=require`): rustls with verified
    /// certificates. `None` connects in plain text, also for `prefer`, which never tries TLS here.
    tls: Option<MakeRustlsConnect>,
}

enum Target {
    /// Everything is in `DATABASE_URL` (or the local default).
    Url,
    Secret(Box<SecretTarget>),
}

struct SecretTarget {
    secret: Arc<DbSecret>,
    /// Timeouts and TLS mode; no host, user or password.
    base: Config,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up PostgreSQL TLS: {0}")]
pub struct TlsSetupError(#[from] crate::tls::TlsError);

impl Connector {
    /// The connector and the configuration deadpool hands back to it on every connect.
    pub(crate) fn new(
        settings: &DatabaseSettings,
        connect_timeout: Duration,
    ) -> Result<(Connector, Config), TlsSetupError> {
        let mut config = settings.pg_config();
        config.connect_timeout(connect_timeout);
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(MakeRustlsConnect::new(crate::tls::postgres_client_config(
                settings.ca_bundle.as_deref(),
            )?)),
            _ => None,
        };
        let target = match &settings.source {
            DatabaseSource::Url(_) => Target::Url,
            DatabaseSource::Secret(s) => Target::Secret(Box::new(SecretTarget {
                secret: s.secret.clone(),
                base: config.clone(),
                host: s.host.clone(),
                port: s.port,
                dbname: s.dbname.clone(),
            })),
        };
        Ok((Connector { target, tls }, config))
    }

    async fn open(&self, config: &Config) -> Connected {
        // Every statement this service sends is unnamed (`query_typed`, `batch_execute`, simple
        // queries in the migrations), so a connection opened here can sit behind RDS Proxy or
        // PgBouncer in transaction mode. Do not add `prepare()` / `query()` with a statement cache.
        let (client, task) = match &self.tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                (client, tokio::spawn(drive(connection)))
            }
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                (client, tokio::spawn(drive(connection)))
            }
        };
        Ok((client, task))
    }

    async fn connect_with_secret(&self, target: &SecretTarget) -> Connected {
        let secret = &target.secret;
        let snapshot = match secret.current().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::error!(error = %err, "no database credentials");
                // Without credentials there is nothing to connect with. tokio-postgres errors
                // cannot be built outside the crate: this one fails at once (no host) and the
                // cause is in the log line above.
                return self.open(&Config::new()).await;
            }
        };
        match self.open(&target.config_for(&snapshot)).await {
            Err(err) if is_authentication_failure(&err) => {
                tracing::warn!(
                    secret = secret.id(),
                    generation = snapshot.generation,
                    error = %err,
                    "the database refused the credentials; reading the secret again (rotated?)"
                );
                let fresh = match secret.refresh_after(Some(snapshot.generation)).await {
                    Ok(fresh) => fresh,
                    Err(fetch) => {
                        tracing::error!(error = %fetch, "could not read the rotated secret");
                        return Err(err);
                    }
                };
                self.open(&target.config_for(&fresh)).await
            }
            other => other,
        }
    }
}

impl Connect for Connector {
    fn connect(&self, pg_config: &Config) -> Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
        let pg_config = pg_config.clone();
        Box::pin(async move {
            match &self.target {
                Target::Url => self.open(&pg_config).await,
                Target::Secret(target) => self.connect_with_secret(target).await,
            }
        })
    }
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(err) = connection.await {
        tracing::warn!(error = %err, "database connection closed with an error");
    }
}

impl SecretTarget {
    fn config_for(&self, snapshot: &Snapshot) -> Config {
        with_credentials(&self.base, snapshot, (&self.host, self.port, &self.dbname))
    }
}

/// `base` plus the secret's user and password; host, port and database from `DB_HOST`, `DB_PORT`
/// and `DB_NAME` when set (the proxy endpoint), else from the secret (the instance).
fn with_credentials(
    base: &Config,
    snapshot: &Snapshot,
    (host, port, dbname): (&Option<String>, Option<u16>, &Option<String>),
) -> Config {
    let credentials = &snapshot.credentials;
    let mut config = base.clone();
    config
        .user(&credentials.username)
        .password(credentials.password.expose_secret());
    if let Some(host) = host.as_ref().or(credentials.host.as_ref()) {
        config.host(host);
    }
    config.port(port.or(credentials.port).unwrap_or(5432));
    if let Some(dbname) = dbname.as_ref().or(credentials.dbname.as_ref()) {
        config.dbname(dbname);
    }
    config
}

/// 28P01 invalid_password, or 28000 invalid_authorization_specification (what a proxy may answer
/// for credentials it no longer accepts).
pub(crate) fn is_authentication_failure(err: &Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::secret::Credentials;

    fn snapshot(json: &str) -> Snapshot {
        Snapshot {
            generation: 1,
            credentials: Arc::new(serde_json::from_str::<Credentials>(json).unwrap()),
        }
    }

    #[test]
    fn the_proxy_endpoint_in_db_host_wins_over_the_instance_in_the_secret() {
        let s = snapshot(
            r#"{"username":"app","password":"pw","host":"instance.rds","port":5433,"dbname":"fromsecret"}"#,
        );
        let base = Config::new();
        let c = with_credentials(&base, &s, (&Some("proxy.rds".into()), None, &None));
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("proxy.rds".into())]
        );
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_dbname(), Some("fromsecret"));
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));

        let c = with_credentials(&base, &s, (&None, Some(6432), &Some("seatbook".into())));
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("instance.rds".into())]
        );
        assert_eq!(
            (c.get_ports(), c.get_dbname()),
            (&[6432][..], Some("seatbook"))
        );
    }
}
