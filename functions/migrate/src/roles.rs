//! The least-privilege login roles of `migrations/V3__least_privilege_roles.sql`. The migration
//! creates them without LOGIN; after migrating, each role whose secret is configured gets LOGIN and
//! the password in its own Secrets Manager secret: the secret RDS Proxy authenticates that role's
//! functions with (`template.yaml`). The secrets are read on every run, so an `Update` after a
//! secret changed brings the database in line.
//!
//! The password reaches PostgreSQL only as a SCRAM-SHA-256 verifier computed here: the plain text
//! is never in a statement the server could log.

use seatbook_core::db::secret::{DbSecret, SecretError};
use seatbook_core::db::Pool;
use secrecy::ExposeSecret;

/// Each role, and the environment variable holding the ARN of its secret.
pub const ROLES: [(&str, &str); 3] = [
    ("READER_SECRET_ARN", "seatbook_reader"),
    ("WRITER_SECRET_ARN", "seatbook_writer"),
    ("NOTIFIER_SECRET_ARN", "seatbook_notifier"),
];

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("secret {arn} is for user {found:?}, but it is configured as the secret of {role}")]
    WrongUser {
        arn: String,
        role: &'static str,
        found: String,
    },
    #[error("could not get a database connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("could not set the password of {role}: {source}")]
    Alter {
        role: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The roles whose secrets are configured, with their secrets' ARNs.
#[derive(Debug, Clone, Default)]
pub struct RoleSecrets(Vec<(&'static str, String)>);

impl RoleSecrets {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Blank variables count as unset: local runs and the tests migrate without role secrets.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        RoleSecrets(
            ROLES
                .iter()
                .filter_map(|&(variable, role)| {
                    let arn = lookup(variable)?.trim().to_owned();
                    (!arn.is_empty()).then_some((role, arn))
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Gives each configured role LOGIN and its secret's password; returns the roles' names.
    pub async fn apply(&self, pool: &Pool) -> Result<Vec<&'static str>, RoleError> {
        let mut verifiers = Vec::with_capacity(self.0.len());
        // Every secret is read before any role changes: a missing secret changes nothing.
        for (role, arn) in &self.0 {
            let snapshot = DbSecret::from_secrets_manager(arn.clone())
                .current()
                .await?;
            let credentials = &snapshot.credentials;
            if credentials.username != *role {
                return Err(RoleError::WrongUser {
                    arn: arn.clone(),
                    role,
                    found: credentials.username.clone(),
                });
            }
            let password = credentials.password.expose_secret().as_bytes();
            verifiers.push((*role, postgres_protocol::password::scram_sha_256(password)));
        }
        let conn = pool.get().await?;
        for (role, verifier) in &verifiers {
            // ALTER ROLE takes no bind parameters. The role is one of ROLES, and a verifier is
            // `SCRAM-SHA-256$<iterations>:<base64>$<base64>:<base64>`: neither can hold a quote.
            debug_assert!(!verifier.contains('\''));
            conn.batch_execute(&format!(
                "ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}'"
            ))
            .await
            .map_err(|source| RoleError::Alter { role, source })?;
            tracing::info!(role, "role password set from its secret");
        }
        Ok(verifiers.into_iter().map(|(role, _)| role).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_the_roles_whose_secret_is_set_are_configured() {
        let env = HashMap::from([
            ("READER_SECRET_ARN", "arn:aws:secretsmanager:r"),
            ("WRITER_SECRET_ARN", " "),
        ]);
        let secrets = RoleSecrets::from_lookup(|name| env.get(name).map(|v| v.to_string()));
        assert_eq!(
            secrets.0,
            [("seatbook_reader", "arn:aws:secretsmanager:r".to_owned())]
        );
        assert!(RoleSecrets::from_lookup(|_| None).is_empty());
    }
}
