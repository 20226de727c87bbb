//! Database failures as API errors.
//!
//! Expected conflicts are recognised by *constraint name*, never by message text: the booking code
//! asks "was this a unique violation on tickets_event_seat_key?" and anything else stays an internal
//! error (logged, shown as a bare 500).

use crate::error::ApiError;
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// True when `err` is SQLSTATE 23505 (unique_violation) on the named constraint.
pub fn is_unique_violation_on(err: &tokio_postgres::Error, constraint: &str) -> bool {
    is_violation_on(err, &SqlState::UNIQUE_VIOLATION, constraint)
}

fn is_violation_on(err: &tokio_postgres::Error, state: &SqlState, constraint: &str) -> bool {
    err.as_db_error()
        .is_some_and(|db| db.code() == state && db.constraint() == Some(constraint))
}

pub trait ResultExt<T> {
    /// Maps a violation of `constraint` (unique or foreign key) to the error `f` builds; every other
    /// database error becomes an [`ApiError`] the usual way.
    fn on_constraint(self, constraint: &str, f: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> ResultExt<T> for Result<T, tokio_postgres::Error> {
    fn on_constraint(self, constraint: &str, f: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|err| {
            let violated = [SqlState::UNIQUE_VIOLATION, SqlState::FOREIGN_KEY_VIOLATION]
                .iter()
                .any(|state| is_violation_on(&err, state, constraint));
            if violated {
                f()
            } else {
                ApiError::from(err)
            }
        })
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        if is_transient(&err) {
            ApiError::Unavailable(Box::new(err))
        } else {
            ApiError::Internal(Box::new(err))
        }
    }
}

/// Failures a client should retry: the connection broke, or the server is shutting down or full.
fn is_transient(err: &tokio_postgres::Error) -> bool {
    match err.as_db_error() {
        Some(db) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(db.code()),
        None => {
            err.is_closed()
                || std::error::Error::source(err)
                    .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some())
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(err: PoolError) -> Self {
        match err {
            // A database that is unreachable or saturated is worth a retry, not a bug report.
            PoolError::Timeout(_) | PoolError::Backend(_) => ApiError::Unavailable(Box::new(err)),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}
