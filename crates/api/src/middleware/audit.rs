//! The audit trail (docs/keys.md): every state-changing request made with a merchant's
//! secret key (POST, PUT, PATCH, DELETE on a merchant route) is recorded once the handler
//! has answered, with the key, the `Tenure-Agent` it named, the route's template, the
//! resource, the request id, the idempotency key, the status and the redacted body. The
//! handler runs as that actor (`tenure_app::audit::acting`), so the events it records
//! name the key and agent too.
//!
//! It sits inside the idempotency layer: a replay changes nothing and is not recorded
//! again (the first entry has the idempotency key). The row is written after the use
//! case's transaction has committed and before the response leaves: a client never sees
//! a success that has no entry unless the database fails in between, which is logged
//! as an error. Sharing the use case's transaction would mean handing a connection
//! through every use case; one insert after it costs the same round trip.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use tenure_app::audit::{self, NewAuditEvent};
use tenure_domain::DomainError;
use tenure_domain::access::Agent;
use tenure_store::repo::events::EventActor;

use crate::auth::{Principal, authenticate};
use crate::error::ApiError;
use crate::middleware::fallback::RouteTable;
use crate::middleware::idempotency::{IDEMPOTENCY_KEY, NotFinal};
use crate::middleware::request_id::RequestId;
use crate::openapi::is_merchant_path;
use crate::state::AppState;

/// The header a merchant's backend names itself in.
pub const AGENT_HEADER: &str = "tenure-agent";

/// Whether a merchant request names an agent: it then acts as one, held to the product's
/// portal policy unless it overrides it (`tenure_app::subscriptions::Scope::acting`). The
/// header's value was checked by [`audit`] before the handler ran.
pub fn names_agent(req: &actix_web::HttpRequest) -> bool {
    req.headers().contains_key(AGENT_HEADER)
}

fn is_change(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

pub async fn audit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !is_merchant_path(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // A credential that is not a merchant's is the handler's to refuse (401 or 403),
    // before anything about the request is judged.
    let key = match authenticate(req.request()).await {
        Ok(Principal::Merchant(key)) => key,
        _ => return Ok(next.call(req).await?.map_into_boxed_body()),
    };
    let agent = match req.headers().get(AGENT_HEADER).map(|value| {
        value
            .to_str()
            .map_err(|_| {
                DomainError::validation("Tenure-Agent", "must be printable ASCII characters")
            })
            .and_then(Agent::parse)
    }) {
        None => None,
        Some(Ok(agent)) => Some(agent),
        Some(Err(err)) => {
            // A bad header is no answer to the request: a retry with the same
            // Idempotency-Key and a valid header must run.
            let mut res = req.error_response(ApiError::Domain(err));
            res.response_mut().extensions_mut().insert(NotFinal);
            return Ok(res);
        }
    };
    // Reads are not recorded; nor is a request no route takes (a 404 or 405 that
    // changed nothing, whose body must not be read first).
    let served = is_change(req.method())
        && req
            .app_data::<web::Data<RouteTable>>()
            .is_some_and(|routes| routes.serves(req.method().as_str(), req.path()));
    let Some(route) = req.match_pattern().filter(|_| served) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(ApiError::internal("application state missing")));
    };
    let body = match crate::extract::read_capped(req.take_payload()).await {
        Ok(body) => body,
        Err(err) => return Ok(req.error_response(err)),
    };
    let request_body = serde_json::from_slice::<serde_json::Value>(&body).ok();
    req.set_payload(Payload::from(body));
    let actor = EventActor {
        api_key: key.key.uuid(),
        agent: agent.map(|a| a.as_str().to_owned()),
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default(),
    };
    let method = req.method().to_string();
    let idempotency_key = req
        .headers()
        .get(&IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());

    let res = audit::acting(actor.clone(), next.call(req)).await?;
    let status = res.status();
    // The path's parameters are known once the request has been routed.
    let path_id = res.request().match_info().get("id").map(str::to_owned);
    // The resource is the one the path names, else (a creation) the one the response
    // names, so that an erasure finds every entry about a customer's resources.
    let (res, resource_id) = if status == StatusCode::CREATED && path_id.is_none() {
        let (http_req, res) = res.into_parts();
        let (res, body) = res.into_parts();
        let body = actix_web::body::to_bytes(body)
            .await
            .map_err(|_| ApiError::internal("response body could not be buffered"))?;
        let created = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned));
        let res = res.set_body(body).map_into_boxed_body();
        (ServiceResponse::new(http_req, res), created)
    } else {
        (res.map_into_boxed_body(), path_id)
    };
    let entry = NewAuditEvent {
        merchant: key.merchant,
        actor,
        method,
        route,
        resource_id,
        idempotency_key,
        status: status.as_u16(),
        request_body,
        at: state.now(),
    };
    if let Err(err) = audit::record(&state.app, entry).await {
        tracing::error!(error = %err, status = status.as_u16(), "could not record the audit event of a merchant request");
    }
    Ok(res)
}
