//! The one place that turns failures into HTTP: a status, a stable machine `code` and an
//! RFC 9457 problem+json body. 5xx bodies stay generic; their cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use tenure_app::AppError;
pub use tenure_app::FieldError;
use tenure_app::dto::credits::PolicyLimitDto;
use tenure_domain::DomainError;
use tenure_store::StoreError;
use utoipa::ToSchema;

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "https://docs.tenure.dev/errors/validation_failed",
    "title": "The request is invalid",
    "status": 422,
    "detail": "price.amount must be between 0 and 10000000000000 minor units",
    "code": "validation_failed",
    "errors": [{"field": "price.amount", "message": "must be between 0 and 10000000000000 minor units"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; it ends in the `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine-readable code to branch on.
    pub code: String,
    /// For validation failures: every invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a refusal by the product's portal policy: the limit that refused it. A
    /// merchant's agent may exceed it with `override: {reason}` (docs/billing.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<PolicyLimitDto>,
}

const PROBLEM_TYPE_BASE: &str = "https://docs.tenure.dev/errors/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("no route for this path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 422 with a stable code: the request cannot be carried out as asked.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("the resource changed since it was read (If-Match did not match)")]
    PreconditionFailed,
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request target (path and query) is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes in all")]
    HeadersTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyKeyInUse,
    /// A retry of a request whose response held a secret shown once, which Tenure did
    /// not keep.
    #[error(
        "the original response held a secret, which Tenure does not keep; list the resources (GET /v1/api_keys, GET /v1/webhook_endpoints) to find the one this request created or changed"
    )]
    IdempotentReplayWithheld,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// The body holds something that looks like a card number. The value is never
    /// echoed: only the field's path is named.
    #[error(
        "{field} looks like a card number; Tenure never accepts card numbers, send a payment method token from the gateway instead"
    )]
    CardNumberNotAllowed { field: String },
    /// A charge the caller asked for was declined; the attempt is recorded.
    #[error("{0}")]
    PaymentDeclined(String),
    /// A webhook URL points into the operator's own network (or wherever the target
    /// policy forbids); the message says what kind of address.
    #[error("url {0}")]
    UrlNotAllowed(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the service is temporarily unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
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

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::NotFound(_) => "resource_missing",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::IdempotentReplayWithheld => "idempotent_replay_withheld",
            Self::RateLimited { .. } => "rate_limited",
            Self::CardNumberNotAllowed { .. } => "card_number_not_allowed",
            Self::PaymentDeclined(_) => "payment_declined",
            Self::UrlNotAllowed(_) => "url_not_allowed",
            Self::Domain(err) => err.code(),
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::BAD_REQUEST => "The request is malformed",
            StatusCode::UNAUTHORIZED => "Authentication is required",
            StatusCode::PAYMENT_REQUIRED => "The payment was declined",
            StatusCode::FORBIDDEN => "This credential may not do that",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
            StatusCode::CONFLICT => "The request conflicts with the current state",
            StatusCode::PRECONDITION_FAILED => "Precondition failed",
            StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
            StatusCode::URI_TOO_LONG => "URI too long",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "Request headers too large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
            StatusCode::UNPROCESSABLE_ENTITY => "The request is invalid",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Internal error",
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let detail = if status.is_server_error() {
            // The cause may name tables or hosts; it goes to the log, not to the caller.
            match self {
                Self::Unavailable(_) => "The service is temporarily unavailable; retry shortly.",
                _ => "An internal error occurred; it has been logged.",
            }
            .to_owned()
        } else {
            self.to_string()
        };
        let errors = match self {
            Self::Validation(errors) => errors.clone(),
            Self::CardNumberNotAllowed { field } => vec![FieldError {
                field: field.clone(),
                message: "must not contain a card number".to_owned(),
            }],
            Self::UrlNotAllowed(message) => vec![FieldError {
                field: "url".to_owned(),
                message: message.clone(),
            }],
            Self::Domain(DomainError::Validation { field, reason }) => vec![FieldError {
                field: field.to_string(),
                message: reason.to_string(),
            }],
            Self::Domain(DomainError::FieldRefused { field, reason, .. }) => vec![FieldError {
                field: (*field).to_owned(),
                message: reason.to_string(),
            }],
            _ => Vec::new(),
        };
        let detail = match (self, errors.as_slice()) {
            (Self::Validation(_), [first, ..]) => format!("{} {}", first.field, first.message),
            _ => detail,
        };
        let limit = match self {
            Self::Domain(DomainError::PolicyLimit { limit, .. }) => Some((*limit).into()),
            _ => None,
        };
        Problem {
            problem_type: format!("{PROBLEM_TYPE_BASE}{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail,
            code: self.code().to_owned(),
            errors,
            limit,
        }
    }
}

/// The one place where a use case's failure gets its HTTP meaning.
impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Validation(errors) => ApiError::Validation(errors),
            AppError::NotFound(resource) => ApiError::NotFound(resource),
            AppError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            AppError::Unprocessable { code, detail } => ApiError::Unprocessable { code, detail },
            AppError::Forbidden { code, detail } => ApiError::Forbidden { code, detail },
            AppError::PreconditionFailed => ApiError::PreconditionFailed,
            AppError::PaymentDeclined(detail) => ApiError::PaymentDeclined(detail),
            AppError::Domain(err) => ApiError::Domain(err),
            AppError::TargetNotAllowed(refused) => ApiError::UrlNotAllowed(refused.to_string()),
            // Answered 202 by the portal's pay (routes/billing.rs); anywhere else a 402.
            AppError::PaymentActionRequired { .. } => ApiError::PaymentDeclined(
                "the payment needs the customer's authentication".to_owned(),
            ),
            AppError::BadSignature(detail) => ApiError::BadRequest {
                code: "signature_invalid",
                detail,
            },
            AppError::Unavailable(cause) => ApiError::Unavailable(cause),
            AppError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        AppError::from(err).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation(_)
            | Self::IdempotencyKeyReused
            | Self::CardNumberNotAllowed { .. }
            | Self::UrlNotAllowed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::PaymentDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } | Self::IdempotencyKeyInUse | Self::IdempotentReplayWithheld => {
                StatusCode::CONFLICT
            }
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Domain(err) => match err {
                DomainError::Validation { .. }
                | DomainError::PolicyForbids { .. }
                | DomainError::PolicyLimit { .. }
                | DomainError::CurrencyMismatch { .. }
                | DomainError::FieldRefused { .. }
                | DomainError::Overflow => StatusCode::UNPROCESSABLE_ENTITY,
                DomainError::InvalidTransition { .. } | DomainError::Conflict { .. } => {
                    StatusCode::CONFLICT
                }
                DomainError::NotFound { .. } => StatusCode::NOT_FOUND,
            },
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, cause = ?self, "request failed");
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::Unauthenticated(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
