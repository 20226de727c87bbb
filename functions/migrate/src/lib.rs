//! The `migrate` function: the CloudFormation custom resource (`Custom::Migrations` in
//! `template.yaml`) that applies the schema migrations embedded in the binary (`migrations/`,
//! through [`seatbook_core::db::migrate`]) before the API takes traffic.
//!
//! - `Create` / `Update`: apply the pending migrations. The database may not be reachable yet on
//!   a first deploy (the RDS Proxy target registers late, the secret's endpoint may still be
//!   coming up), so connecting is retried until shortly before the invocation's deadline
//!   (the function timeout is 300 s). A failing migration is not retried: it fails the deploy.
//!   Then each least-privilege role ([`roles`]) gets LOGIN and the password in its own secret.
//! - `Delete`: answer `SUCCESS` without touching the database; the schema goes with the database.
//!
//! Migrations are expand-only (docs/deploy.md, "Migrations"): a database may hold migrations
//! newer than this binary (a deploy that migrated, then rolled back to the previous code, whose
//! `Update` re-runs this function at its older version). Those are left in place and logged, not
//! a failure ([`migrate`]); refinery's default would fail the rollback on a "missing migration".
//!
//! Either way the result is PUT to the request's `ResponseURL` (a pre-signed S3 URL), as
//! CloudFormation requires: without that PUT the stack would wait for the resource's timeout.

pub mod roles;

use lambda_runtime::LambdaEvent;
use roles::{RoleError, RoleSecrets};
use seatbook_core::config::DatabaseSettings;
use seatbook_core::db::{self, secret::SecretError, DbSetupError, Pool};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

mod embedded {
    // The same files `seatbook_core::db` embeds: the workspace's `migrations/`.
    refinery::embed_migrations!("../../migrations");
}

/// What [`migrate`] did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations applied by this run (`V<version>__<name>`).
    pub applied: Vec<String>,
    /// Migrations the database has applied that this binary does not embed: a newer release's,
    /// left in place (expand-only). A rollback meets these.
    pub unknown: Vec<String>,
    /// Migrations this binary embeds that the database has not applied and that refinery will not
    /// apply because a newer one is recorded (a hole in the history). Never left silently: the
    /// run reports `FAILED` naming them.
    pub skipped: Vec<String>,
}

/// Applies every migration this binary embeds that the database has not seen yet. Unlike
/// [`seatbook_core::db::migrate`], a migration the database has applied but this binary does not
/// know (a newer release's, after a rollback) is logged and kept, not an error: refinery's
/// `set_abort_missing(false)`. A known migration whose recorded checksum differs still fails
/// (`abort_divergent` stays on): that is an edited migration, never a rollback.
///
/// Like `seatbook_core::db::migrate`, safe through RDS Proxy: each migration goes with the simple
/// query protocol, and each extended-protocol query runs inside a transaction.
pub async fn migrate(pool: &Pool) -> Result<Migrated, DbSetupError> {
    let mut conn = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut conn;
    let runner = embedded::migrations::runner().set_abort_missing(false);
    let report = runner.run_async(client).await?;
    let mut migrated = Migrated::default();
    for applied in report.applied_migrations() {
        tracing::info!(migration = %applied, "applied migration");
        migrated.applied.push(applied.to_string());
    }
    // After the run: on a fresh database the history table exists only now.
    let recorded = runner.get_applied_migrations_async(client).await?;
    let known = runner.get_migrations();
    for old in &recorded {
        if !known.iter().any(|m| m.version() == old.version()) {
            tracing::warn!(
                migration = %old,
                "the database has a migration this binary does not know (a newer release's); \
                 kept: migrations are expand-only"
            );
            migrated.unknown.push(old.to_string());
        }
    }
    for missing in known {
        if !recorded.iter().any(|m| m.version() == missing.version()) {
            migrated.skipped.push(missing.to_string());
        }
    }
    Ok(migrated)
}

/// The one physical resource this custom resource stands for. Constant, so an `Update` never
/// looks like a replacement to CloudFormation.
pub const PHYSICAL_RESOURCE_ID: &str = "seatbook-schema-migrations";

/// Kept free at the end of the invocation for reporting to CloudFormation.
pub const RESPONSE_MARGIN: Duration = Duration::from_secs(15);

/// The longest pause between two connection attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// CloudFormation caps the whole response body at 4096 bytes.
const MAX_REASON_CHARS: usize = 1500;

/// A custom resource request, as CloudFormation sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Absent on `Create`.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The body PUT to the `ResponseURL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("could not PUT the response to CloudFormation: {0}")]
    Send(#[from] reqwest::Error),
    #[error("CloudFormation's response URL answered {0}")]
    Status(reqwest::StatusCode),
}

pub struct Migrator {
    database: DatabaseSettings,
    roles: RoleSecrets,
    pool: Pool,
    http: reqwest::Client,
}

/// What can stop a run: setting up the database and migrating, or configuring the roles.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Setup(#[from] DbSetupError),
    #[error(transparent)]
    Roles(#[from] RoleError),
}

impl Migrator {
    /// Builds the pool (one connection: migrations run one at a time) and the HTTPS client
    /// (rustls on `ring`); neither connects yet.
    pub fn new(
        database: &DatabaseSettings,
        roles: RoleSecrets,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        seatbook_core::tls::install_crypto_provider();
        Ok(Migrator {
            database: database.clone(),
            roles,
            pool: db::pool(database, 1)?,
            // The response URL is S3, reached through the VPC's gateway endpoint: a connection
            // that does not open in 5 s will not open (the endpoint or its route is gone), and
            // waiting longer only delays CloudFormation's own timeout.
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Handles one request and reports it to CloudFormation; returns what was reported.
    pub async fn handle(&self, event: LambdaEvent<Request>) -> Result<Response, ReportError> {
        let (request, context) = event.into_parts();
        tracing::info!(
            request_type = ?request.request_type,
            stack = %request.stack_id,
            resource = %request.logical_resource_id,
            "custom resource request"
        );
        let outcome = match request.request_type {
            RequestType::Delete => {
                Ok("Nothing to undo: the schema stays with the database.".to_owned())
            }
            RequestType::Create | RequestType::Update => {
                let stop = context
                    .deadline()
                    .checked_sub(RESPONSE_MARGIN)
                    .unwrap_or_else(SystemTime::now);
                self.migrate_before(stop).await
            }
        };
        let response = Response {
            status: if outcome.is_ok() {
                Status::Success
            } else {
                Status::Failed
            },
            reason: truncate(match outcome {
                Ok(done) => done,
                Err(failure) => format!(
                    "{failure} (log stream {}/{})",
                    context.env_config.log_group, context.env_config.log_stream
                ),
            }),
            physical_resource_id: request
                .physical_resource_id
                .clone()
                .unwrap_or_else(|| PHYSICAL_RESOURCE_ID.to_owned()),
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
        };
        match response.status {
            Status::Success => tracing::info!(reason = %response.reason, "reporting SUCCESS"),
            Status::Failed => tracing::error!(reason = %response.reason, "reporting FAILED"),
        }
        self.report(&request.response_url, &response).await?;
        Ok(response)
    }

    /// Applies the migrations, retrying while the database cannot be reached, until `stop`.
    async fn migrate_before(&self, stop: SystemTime) -> Result<String, String> {
        let mut delay = Duration::from_secs(1);
        for attempt in 1.. {
            let result = async {
                db::load_credentials(&self.database).await?;
                let migrated = migrate(&self.pool).await?;
                let roles = self.roles.apply(&self.pool).await?;
                Ok::<_, StepError>((migrated, roles))
            }
            .await;
            match result {
                Ok((migrated, _)) if !migrated.skipped.is_empty() => {
                    return Err(format!(
                        "Migrations not applied: {} (the database records a newer migration; \
                         apply them by hand, see docs/deploy.md)",
                        migrated.skipped.join(", ")
                    ))
                }
                Ok((migrated, roles)) => {
                    let mut done = match migrated.applied.len() {
                        0 => "The schema is up to date; no migration to apply.".to_owned(),
                        n => format!("Applied {n} migration(s)."),
                    };
                    if !migrated.unknown.is_empty() {
                        done.push_str(&format!(
                            " Kept {} newer than this release (expand-only): {}.",
                            migrated.unknown.len(),
                            migrated.unknown.join(", ")
                        ));
                    }
                    if !roles.is_empty() {
                        done.push_str(&format!(" Passwords set for {}.", roles.join(", ")));
                    }
                    return Ok(done);
                }
                Err(err) if unreachable(&err) && SystemTime::now() + delay < stop => {
                    tracing::warn!(attempt, error = %chain(&err), ?delay, "database not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
                Err(err) => {
                    return Err(format!(
                        "Migrations not applied after {attempt} attempt(s): {}",
                        chain(&err)
                    ))
                }
            }
        }
        unreachable!("the loop only ends by returning")
    }

    /// PUTs `response` to the pre-signed URL. No `Content-Type`: S3 checks the signature against
    /// the headers CloudFormation signed, and a content type was not among them.
    async fn report(&self, url: &str, response: &Response) -> Result<(), ReportError> {
        let body = serde_json::to_vec(response).expect("a response serialises");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.http.put(url).body(body.clone()).send().await;
            match result {
                Ok(answer) if answer.status().is_success() => return Ok(()),
                Ok(answer) if !answer.status().is_server_error() || attempt == 3 => {
                    return Err(ReportError::Status(answer.status()))
                }
                Err(err) if attempt == 3 => return Err(err.into()),
                Ok(answer) => {
                    tracing::warn!(status = %answer.status(), "response URL failed; retrying")
                }
                Err(err) => tracing::warn!(error = %err, "response URL failed; retrying"),
            }
            tokio::time::sleep(Duration::from_secs(attempt)).await;
        }
    }
}

/// The failures that may pass: no connection yet, or Secrets Manager not reachable yet.
fn unreachable(err: &StepError) -> bool {
    matches!(
        err,
        StepError::Setup(DbSetupError::Connect(_))
            | StepError::Setup(DbSetupError::Secret(SecretError::Fetch { .. }))
            | StepError::Roles(RoleError::Connect(_))
            | StepError::Roles(RoleError::Secret(SecretError::Fetch { .. }))
    )
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(mut reason: String) -> String {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloudformation_request_parses() {
        let create: Request = serde_json::from_str(
            r#"{"RequestType":"Create","ServiceToken":"arn:aws:lambda:eu-west-1:1:function:m",
                "ResponseURL":"https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x?sig=1",
                "StackId":"arn:aws:cloudformation:eu-west-1:1:stack/seatbook/guid",
                "RequestId":"unique-id","LogicalResourceId":"Migrations",
                "ResourceType":"Custom::Migrations",
                "ResourceProperties":{"ServiceToken":"arn","Version":"3","RunToken":"initial"}}"#,
        )
        .unwrap();
        assert_eq!(create.request_type, RequestType::Create);
        assert_eq!(create.physical_resource_id, None);
        let delete: Request = serde_json::from_str(
            r#"{"RequestType":"Delete","ResponseURL":"u","StackId":"s","RequestId":"r",
                "LogicalResourceId":"Migrations","PhysicalResourceId":"p"}"#,
        )
        .unwrap();
        assert_eq!(delete.physical_resource_id.as_deref(), Some("p"));
    }

    #[test]
    fn the_response_has_the_field_names_cloudformation_reads() {
        let response = Response {
            status: Status::Failed,
            reason: "why".into(),
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "r".into(),
            logical_resource_id: "l".into(),
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"Status": "FAILED", "Reason": "why", "PhysicalResourceId": "p",
                               "StackId": "s", "RequestId": "r", "LogicalResourceId": "l"})
        );
    }

    #[test]
    fn long_reasons_are_cut_to_fit_the_response_limit() {
        let cut = truncate("é".repeat(5000));
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert_eq!(truncate("short".into()), "short");
    }
}
