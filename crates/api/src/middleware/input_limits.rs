//! Input that no handler should have to meet is refused before anything else looks at
//! the request (nor its credential):
//!
//! - A request target (path and query) over [`MAX_TARGET_BYTES`]: 414 `uri_too_long`;
//!   headers over [`MAX_HEADER_BYTES`] in all: 431 `headers_too_large`. No operation
//!   needs either (lists page with cursors), and a limit well inside what the HTTP layer
//!   parses means the answer is a problem like every other.
//! - A query string with an encoded NUL (`%00`): PostgreSQL text cannot hold it, so it
//!   could only ever fail, deep inside a query. 422 `validation_failed` on `query`.
//! - A query parameter the operation does not document (a misspelt or foreign filter such
//!   as `customer=` for `customer_id=`): ignoring it would answer an unfiltered list as if
//!   it were filtered. 422 `validation_failed` naming the parameter, with the ones the
//!   operation takes.
//! - Oversized request bodies: a declared `Content-Length` above [`MAX_BODY_BYTES`] is
//!   answered 413 at once, without reading a byte of the body. Bodies without a length
//!   (chunked, or HTTP/2 streams) are capped as they stream in: the JSON extractor and
//!   the idempotency layer stop at the limit, and routes that take no body at all have
//!   theirs drained here, up to the limit and without keeping it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use futures_util::StreamExt;

use super::fallback::RouteTable;
use crate::error::{ApiError, FieldError};
use crate::extract::MAX_BODY_BYTES;

/// The longest request target (path and query) served.
pub const MAX_TARGET_BYTES: usize = 16 * 1024;
/// The most header bytes (names and values) a request may carry in all.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The header with which the server's connection guard (`tenure-server`'s `transport`)
/// marks the stand-in for a head too large to hand over: its value is the refusal's code.
pub const TRANSPORT_REFUSAL_HEADER: &str = "tenure-transport-refusal";

/// The request's head, if it is over a limit.
fn oversized_head(req: &ServiceRequest) -> Option<ApiError> {
    match req
        .headers()
        .get(TRANSPORT_REFUSAL_HEADER)
        .map(|value| value.as_bytes())
    {
        Some(b"headers_too_large") => {
            return Some(ApiError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES,
            });
        }
        Some(_) => {
            return Some(ApiError::UriTooLong {
                limit: MAX_TARGET_BYTES,
            });
        }
        None => {}
    }
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Some(ApiError::UriTooLong {
            limit: MAX_TARGET_BYTES,
        });
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers > MAX_HEADER_BYTES).then_some(ApiError::HeadersTooLarge {
        limit: MAX_HEADER_BYTES,
    })
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    }
}

pub async fn input_limits(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Some(refusal) = oversized_head(&req) {
        return Ok(req.error_response(refusal));
    }
    if has_encoded_nul(req.query_string()) {
        return Ok(req.error_response(ApiError::Validation(vec![FieldError {
            field: "query".to_owned(),
            message: "must not contain the NUL character (%00)".to_owned(),
        }])));
    }
    let table = req.app_data::<web::Data<RouteTable>>().cloned();
    // Outside /v1 (health probes) a cache-busting query is harmless, and left alone.
    if !req.query_string().is_empty()
        && req.path().starts_with("/v1/")
        && let Some((unknown, known)) = table.as_ref().and_then(|t| {
            t.unknown_query_parameter(req.method().as_str(), req.path(), req.query_string())
        })
    {
        let expected = if known.is_empty() {
            "this operation takes no query parameters".to_owned()
        } else {
            format!("this operation takes {}", known.join(", "))
        };
        return Ok(req.error_response(ApiError::Validation(vec![FieldError {
            field: unknown,
            message: format!("is not a query parameter here: {expected}"),
        }])));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Ok(req.error_response(too_large()));
    }
    let no_body = table.is_some_and(|table| table.takes_no_body(req.method().as_str(), req.path()));
    if no_body && declared.is_none_or(|len| len > 0) {
        // Nothing will read this body; make sure it is not a way around the limit.
        let mut payload = req.take_payload();
        let mut seen = 0usize;
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else {
                return Ok(req.error_response(ApiError::bad_request(
                    "invalid_body",
                    "the request body could not be read",
                )));
            };
            seen += chunk.len();
            if seen > MAX_BODY_BYTES {
                return Ok(req.error_response(too_large()));
            }
        }
        req.set_payload(Payload::None);
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn has_encoded_nul(query: &str) -> bool {
    query
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

#[cfg(test)]
mod tests {
    #[test]
    fn encoded_nul_is_found() {
        assert!(super::has_encoded_nul("email=a%00b"));
        assert!(!super::has_encoded_nul("email=a%2500b&x=%100"));
    }
}
