//! Store errors, mapped from diesel and pool errors in exactly one function each.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
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
                DatabaseErrorKind::ClosedConnection => {
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

impl StoreError {
    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
