//! Which requests read from the streaming replica (`--replica-url`; docs/scaling.md, "A
//! read replica"), decided here once per request rather than by each handler.
//!
//! The rule: a `GET` (or `HEAD`) of a merchant route or a portal route reads from the
//! replica, when the replica is up, not too far behind, and holds the caller's own last
//! write and the position its `Tenure-Consistency-Token` names. Everything else runs on
//! the primary: every write (with the reads inside its transaction, and the rendering of
//! its result), the operator's routes, health checks and the background engine.
//!
//! A read served by the replica gets an [`AppState`] whose database is the replica's pool
//! (the worker's own), in the request's data: every use case the handler calls reads
//! through it, so one request never mixes the two servers' views. After a write by a
//! merchant or a customer, the primary's WAL position is remembered for that caller and
//! answered as `Tenure-Consistency-Token`, which a client sends back on its reads to any
//! process behind the load balancer.

use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use tenure_app::replica::{self, ReadSource, Subject};
use tenure_store::replication::Lsn;

use crate::auth::{Principal, authenticate};
use crate::error::ApiError;
use crate::openapi::renders_livemode;
use crate::state::AppState;

/// The header a write's WAL position is answered in, and a read names the one it must see.
pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("tenure-consistency-token");

/// Whether a request may read from the replica: a read of a merchant's or a customer's.
pub fn reads_from_replica(method: &Method, path: &str) -> bool {
    matches!(*method, Method::GET | Method::HEAD) && renders_livemode(path)
}

/// Whether a request's caller gets a consistency token for what it changed.
pub fn answers_consistency_token(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && renders_livemode(path)
}

/// The state a worker's reads on the replica run with: the worker's state with the
/// replica's pool as its database, ready to be put in a request's data.
#[derive(Clone)]
pub struct ReplicaState(Rc<Extensions>);

impl ReplicaState {
    /// `None` without a replica.
    pub fn of(state: &AppState) -> Option<Self> {
        let replica = state.app.replica.as_ref()?;
        let mut on_replica = state.clone();
        on_replica.app.db = replica.db.clone();
        let mut data = Extensions::new();
        data.insert(web::Data::new(on_replica));
        Some(Self(Rc::new(data)))
    }
}

pub async fn route_reads(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let reads = reads_from_replica(req.method(), req.path());
    let writes = answers_consistency_token(req.method(), req.path());
    if !reads && !writes {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // Checked whether or not this process has a replica, so a client learns of a bad
    // token wherever its request lands.
    let token = if reads {
        match consistency_token(req.headers()) {
            Ok(token) => token,
            Err(err) => return Ok(req.error_response(err)),
        }
    } else {
        None
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(replica) = state.app.replica.clone() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let app = &state.app;
    // The principal was resolved (and cached) by the rate limiter; a refused credential
    // is the handler's to answer.
    let subject = authenticate(req.request()).await.ok().and_then(subject_of);
    if reads {
        let on_replica = replica::source_of_read(app, subject, token).await == ReadSource::Replica
            && match req.app_data::<ReplicaState>().cloned() {
                Some(ReplicaState(data)) => {
                    req.add_data_container(data);
                    true
                }
                None => false,
            };
        let res = next.call(req).await?.map_into_boxed_body();
        if on_replica && res.status() == StatusCode::SERVICE_UNAVAILABLE {
            // The replica failed under this read: the next ones go to the primary until
            // a look finds it back (unless the read only found its pool full).
            replica.failed_read();
        }
        return Ok(res);
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(subject) = subject
        && let Some(position) = replica::after_write(app, subject).await
        && let Ok(value) = HeaderValue::from_str(&position.to_string())
    {
        res.headers_mut().insert(CONSISTENCY_TOKEN, value);
    }
    Ok(res)
}

fn subject_of(principal: Principal) -> Option<Subject> {
    match principal {
        Principal::Merchant(key) => Some(Subject::Merchant(key.merchant)),
        Principal::Customer(session) => Some(Subject::Customer {
            merchant: session.merchant,
            customer: session.customer,
        }),
        Principal::Operator => None,
    }
}

fn consistency_token(headers: &HeaderMap) -> Result<Option<Lsn>, ApiError> {
    let Some(value) = headers.get(&CONSISTENCY_TOKEN) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_consistency_token",
                "Tenure-Consistency-Token must be a token from an earlier response's \
                 Tenure-Consistency-Token header, sent back unchanged",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_of_merchants_and_customers_go_to_the_replica_and_nothing_else() {
        for path in ["/v1/customers", "/v1/subscriptions/sub_1", "/v1/portal/me"] {
            assert!(reads_from_replica(&Method::GET, path), "{path}");
            assert!(!reads_from_replica(&Method::POST, path), "{path}");
            assert!(answers_consistency_token(&Method::POST, path), "{path}");
        }
        for path in [
            "/v1/operator/merchants",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(!reads_from_replica(&Method::GET, path), "{path}");
            assert!(!answers_consistency_token(&Method::POST, path), "{path}");
        }
    }

    #[test]
    fn a_token_is_a_position_as_answered_or_a_bad_request() {
        let mut headers = HeaderMap::new();
        assert_eq!(consistency_token(&headers).unwrap(), None);
        headers.insert(CONSISTENCY_TOKEN, HeaderValue::from_static("16/B374D848"));
        assert_eq!(
            consistency_token(&headers).unwrap().map(|t| t.to_string()),
            Some("16/B374D848".to_owned())
        );
        headers.insert(CONSISTENCY_TOKEN, HeaderValue::from_static("yesterday"));
        assert!(matches!(
            consistency_token(&headers),
            Err(ApiError::BadRequest {
                code: "invalid_consistency_token",
                ..
            })
        ));
    }
}
