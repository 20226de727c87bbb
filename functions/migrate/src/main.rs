//! `migrate`: the CloudFormation custom resource that applies the schema migrations (see lib.rs).

use lambda_runtime::{service_fn, LambdaEvent};
use migrate_fn::roles::RoleSecrets;
use migrate_fn::{Migrator, Request};
use seatbook_core::config::Settings;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    seatbook_core::telemetry::init(settings.json_logs);
    // No database I/O here: the database may not be reachable yet, and `handle` retries.
    let migrator = Arc::new(Migrator::new(&settings.database, RoleSecrets::from_env())?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| {
        let migrator = migrator.clone();
        async move {
            migrator
                .handle(event)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
