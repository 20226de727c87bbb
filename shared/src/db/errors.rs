//! Database failures as API errors.
//!
//! Expected conflicts are recognised by *constraint name*, never by message text: the booking code
//! asks "was this a unique violation on tickets_event_seat_key?" and anything else stays an internal
//! error (logged, shown as a bare 500) unless it is transient: the connection broke, the server is
//! shutting down, starting up or full, or PostgreSQL gave up a transaction to break a deadlock or
//! a serialization conflict. Those are 503 with `Retry-After` (after the caller's own retries, where
//! it has any: see [`is_retryable_conflict`]).

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

/// True when PostgreSQL aborted the transaction to break a deadlock (40P01) or because it could not
/// serialize it against a concurrent one (40001). Nothing the transaction did remains, and running
/// it again, a moment later, may well succeed.
pub fn is_retryable_conflict(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(is_retryable_state)
}

fn is_retryable_state(code: &SqlState) -> bool {
    *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
}

/// The server cannot take the request now, but will: it is shutting down or restarting (also after
/// another backend crashed), starting up, or out of connection slots; or the request ran out of
/// time waiting for a lock (`lock_timeout`, 55P03) or running (`statement_timeout`, 57014), which
/// keeps every request inside the function's deadline.
fn is_unavailable_state(code: &SqlState) -> bool {
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
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

/// Failures a client should retry: the connection broke, the server is shutting down, starting up
/// or full, or the transaction lost a deadlock or a serialization conflict.
fn is_transient(err: &tokio_postgres::Error) -> bool {
    match err.as_db_error() {
        Some(db) => is_unavailable_state(db.code()) || is_retryable_state(db.code()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlocks_and_serialization_failures_are_retryable_conflicts() {
        assert_eq!(SqlState::T_R_DEADLOCK_DETECTED.code(), "40P01");
        assert_eq!(SqlState::T_R_SERIALIZATION_FAILURE.code(), "40001");
        for code in ["40P01", "40001"] {
            assert!(is_retryable_state(&SqlState::from_code(code)), "{code}");
            assert!(!is_unavailable_state(&SqlState::from_code(code)), "{code}");
        }
        // A broken rule is not a conflict to retry, and neither is a missing table.
        for code in ["23505", "23503", "40002", "42P01", "XX000"] {
            assert!(!is_retryable_state(&SqlState::from_code(code)), "{code}");
        }
    }

    #[test]
    fn a_server_going_down_or_coming_up_is_unavailable_not_broken() {
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections, and the
        // deadlines: lock_not_available (lock_timeout), query_canceled (statement_timeout)
        for code in ["57P01", "57P02", "57P03", "53300", "55P03", "57014"] {
            assert!(is_unavailable_state(&SqlState::from_code(code)), "{code}");
        }
        for code in ["23505", "40001", "42601"] {
            assert!(!is_unavailable_state(&SqlState::from_code(code)), "{code}");
        }
    }
}
