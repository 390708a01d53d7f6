//! Conditional reads: a `GET` whose `If-None-Match` names the ETag the answer would carry
//! is answered 304 Not Modified with that ETag and no body, so a client that polls a
//! resource it has cached downloads it again only when it changed. One place for every
//! versioned read: a handler only has to send its `ETag`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use tenure_app::versions::names_etag;

pub async fn not_modified(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let if_none_match = (req.method() == Method::GET)
        .then(|| req.headers().get(header::IF_NONE_MATCH))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let res = next.call(req).await?;
    let Some(wanted) = if_none_match else {
        return Ok(res.map_into_boxed_body());
    };
    let current = res
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match current {
        Some(etag) if res.status() == StatusCode::OK && names_etag(&wanted, &etag) => {
            let (req, _) = res.into_parts();
            let answer = HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .finish();
            Ok(ServiceResponse::new(req, answer))
        }
        _ => Ok(res.map_into_boxed_body()),
    }
}
