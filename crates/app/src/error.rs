//! What can go wrong in a use case, in the use case's own terms. No HTTP status lives
//! here: `tenure-api` maps each case to one in a single `From`, and the engine decides
//! from it whether a round goes on.

use serde::{Deserialize, Serialize};
use tenure_domain::DomainError;
use tenure_store::StoreError;

use crate::outbound::TargetRefused;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// The field, as a dotted path into the request body (`price.amount`) or a query
    /// parameter name.
    #[schema(example = "price.amount")]
    pub field: String,
    #[schema(example = "must be between 0 and 10000000000000 minor units")]
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input names invalid fields; every one is listed.
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    /// The named resource does not exist for this caller (another tenant's is the same).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The current state refuses the change; `code` is stable for callers to branch on.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The caller's credential may not do this (a key asking for more than it holds);
    /// `code` is stable.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// The request cannot be carried out as asked, whatever the resource's state (the
    /// sandbox gateway in live mode); `code` is stable.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// The caller's expected version (`If-Match`) is no longer the current one.
    #[error("the resource changed since it was read (If-Match did not match)")]
    PreconditionFailed,
    /// A charge the caller asked for was declined; the attempt is recorded.
    #[error("{0}")]
    PaymentDeclined(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// An outbound URL (a webhook endpoint's) points where the operator's policy does not
    /// let requests go: loopback, private, link-local… addresses.
    #[error("url {0}")]
    TargetNotAllowed(#[from] TargetRefused),
    /// The charge waits for the customer to authenticate it (3-D Secure) in the frontend
    /// with the gateway's library; nothing is recorded until the gateway settles it.
    #[error("the payment needs the customer's authentication")]
    PaymentActionRequired {
        invoice_id: String,
        provider: &'static str,
        client_secret: String,
        publishable_key: String,
    },
    /// A request that must be signed (a gateway's event) is not, or not by the key it
    /// should be, or too long ago; nothing was read from it.
    #[error("{0}")]
    BadSignature(String),
    /// The database cannot be reached: retry later; a background round stops here.
    #[error("the service is temporarily unavailable")]
    Unavailable(String),
    /// A bug or an unexpected state; the cause is for the log only.
    #[error("internal error")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// Maps a store error for a lookup of `resource`: a missing row is that resource's
    /// `NotFound`.
    pub fn from_store(resource: &'static str) -> impl Fn(StoreError) -> AppError {
        move |err| match err {
            StoreError::NotFound => AppError::NotFound(resource),
            other => other.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AppError::NotFound("resource"),
            StoreError::UnknownCursor => {
                AppError::field("starting_after", "names nothing in this list")
            }
            StoreError::Conflict { constraint } => AppError::Conflict {
                code: "conflict",
                detail: format!("the change conflicts with existing data ({constraint})"),
            },
            StoreError::Contended => AppError::conflict(
                "concurrent_update",
                "another request changed this resource at the same time; retry",
            ),
            StoreError::Unavailable(cause) => AppError::Unavailable(cause),
            other => {
                AppError::Internal(format!("{other}: {:?}", std::error::Error::source(&other)))
            }
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        StoreError::from(err).into()
    }
}

/// Collects every invalid field of a request, so a caller fixes them all in one round.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the value of a successful check; records the failure of another.
    pub fn check<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(DomainError::Validation { field, reason }) => {
                self.errors.push(FieldError {
                    field: field.into_owned(),
                    message: reason.into_owned(),
                });
                None
            }
            Err(other) => {
                self.errors.push(FieldError {
                    field: "body".to_owned(),
                    message: other.to_string(),
                });
                None
            }
        }
    }

    /// Like [`Self::check`] for a rule that names several invalid fields at once.
    pub fn check_all<T>(&mut self, result: Result<T, Vec<DomainError>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                for error in errors {
                    self.check::<()>(Err(error));
                }
                None
            }
        }
    }

    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> AppResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
    }
}

/// Unwraps a value that [`Validator::check`] accepted, once [`Validator::finish`] passed.
pub fn checked<T>(value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::internal("validated value missing"))
}
