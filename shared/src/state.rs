//! What every handler can reach, built once per process (per Lambda execution environment).

use crate::config::Settings;
use crate::db::{self, DbSetupError, Pool};
use crate::identity::IdentityMode;

#[derive(Clone)]
pub struct AppState {
    pub db: Pool,
    pub identity: IdentityMode,
}

impl AppState {
    /// Builds the state from settings; `default_pool_size` applies when `DB_POOL_MAX_SIZE` is unset.
    pub fn from_settings(
        settings: &Settings,
        default_pool_size: usize,
    ) -> Result<Self, DbSetupError> {
        let identity = if settings.dev_identity {
            tracing::warn!(
                "DEV IDENTITY IS ON: callers are trusted by their x-dev-user / x-dev-groups headers. \
                 Never enable {} in a deployed stack.",
                crate::config::DEV_IDENTITY_VAR
            );
            IdentityMode::DevHeaders
        } else {
            IdentityMode::GatewayClaims
        };
        Ok(AppState {
            db: db::pool(&settings.database, default_pool_size)?,
            identity,
        })
    }
}
