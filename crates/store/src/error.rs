//! Store errors, mapped from diesel and pool errors in exactly one function each.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A list's `starting_after` names nothing in that list.
    #[error("the cursor names no item of this list")]
    UnknownCursor,
    /// A unique or foreign-key constraint refused the write; the name says which.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// Another transaction holds what we need (serialization failure, deadlock, lock
    /// timeout); retrying the whole request is safe.
    #[error("concurrent update")]
    Contended,
    /// The database cannot be reached or the pool has no connection to give.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed")]
    Query(#[source] DieselError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict {
                        constraint: info.constraint_name().unwrap_or("unknown").to_owned(),
                    }
                }
                DatabaseErrorKind::SerializationFailure => StoreError::Contended,
                // SQLSTATE 40P01, which diesel reports as `Unknown`: PostgreSQL aborted this
                // transaction to break a lock cycle; retrying it is safe.
                _ if info.message().starts_with("deadlock detected") => StoreError::Contended,
                // The server went away mid-statement: the connection is gone, not the
                // request wrong, so the caller gets a retryable 503.
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                _ if is_server_going_away(info.message()) => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                _ => StoreError::Query(DieselError::DatabaseError(kind, info)),
            },
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("broken transaction".to_owned())
            }
            other => StoreError::Query(other),
        }
    }
}

/// PostgreSQL's "operator intervention" errors (SQLSTATE class 57: an administrator
/// terminated the backend, the server is shutting down or starting up). diesel reports
/// them as `Unknown` without the SQLSTATE, so they are recognised by their messages.
fn is_server_going_away(message: &str) -> bool {
    const MESSAGES: [&str; 5] = [
        "terminating connection due to",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
    ];
    MESSAGES.iter().any(|m| message.starts_with(m))
}

impl StoreError {
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminated_or_closed_connection_is_unavailable_not_a_query_error() {
        for (kind, message) in [
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            (
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
        ] {
            let err = StoreError::from(DieselError::DatabaseError(
                kind,
                Box::new(message.to_owned()),
            ));
            assert!(
                matches!(err, StoreError::Unavailable(_)),
                "{message}: {err:?}"
            );
        }
        let deadlock = StoreError::from(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("deadlock detected".to_owned()),
        ));
        assert!(matches!(deadlock, StoreError::Contended));
        let syntax = StoreError::from(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error at or near \"x\"".to_owned()),
        ));
        assert!(matches!(syntax, StoreError::Query(_)));
    }
}
