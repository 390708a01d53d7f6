//! Which scope each merchant route requires: one table, read by the merchant extractor
//! to enforce it and by the OpenAPI document to show it (`x-required-scope` and the
//! security requirement's scopes), so the two cannot disagree.
//!
//! A route belongs to the resource of the longest prefix of its template in
//! [`RESOURCES`]; a `GET` needs read access, anything else write access, except the
//! few `POST`s in [`READS`] that change nothing (previews). A merchant route in no group
//! needs an unrestricted key (it fails closed); a unit test keeps every documented
//! merchant operation in a group.

use actix_web::HttpRequest;
use actix_web::http::Method;
use tenure_app::merchants::api_keys::MerchantKey;
use tenure_domain::access::{Access, Resource, Scope};

use crate::error::ApiError;

/// Route template prefixes and their resource; the longest matching prefix wins.
const RESOURCES: &[(&str, Resource)] = &[
    ("/v1/products", Resource::Catalog),
    ("/v1/plans", Resource::Catalog),
    ("/v1/customers", Resource::Customers),
    ("/v1/segment_settings", Resource::Customers),
    ("/v1/customers/{id}/export", Resource::CustomerExports),
    (
        "/v1/customers/{id}/payment_methods",
        Resource::PaymentMethods,
    ),
    ("/v1/subscriptions", Resource::Subscriptions),
    ("/v1/cancellation_requests", Resource::Subscriptions),
    ("/v1/customers/{id}/balances", Resource::Billing),
    ("/v1/customers/{id}/balance_transactions", Resource::Billing),
    ("/v1/customers/{id}/overrides", Resource::Billing),
    ("/v1/invoices", Resource::Billing),
    ("/v1/credit_notes", Resource::Billing),
    ("/v1/subscriptions/{id}/invoice_items", Resource::Billing),
    ("/v1/subscriptions/{id}/discount_grants", Resource::Billing),
    ("/v1/payments", Resource::Billing),
    ("/v1/billing_settings", Resource::Billing),
    ("/v1/dunning_policy", Resource::Billing),
    ("/v1/customer_sessions", Resource::CustomerSessions),
    ("/v1/identity_providers", Resource::PortalSettings),
    ("/v1/cors_settings", Resource::PortalSettings),
    ("/v1/events", Resource::Events),
    ("/v1/events/{id}/redeliver", Resource::Webhooks),
    ("/v1/webhook_endpoints", Resource::Webhooks),
    ("/v1/support_tickets", Resource::Support),
    ("/v1/retention_offers", Resource::Retention),
    ("/v1/coupons", Resource::Coupons),
    ("/v1/promotion_codes", Resource::Coupons),
    ("/v1/metrics", Resource::Metrics),
    ("/v1/api_keys", Resource::ApiKeys),
    ("/v1/audit_events", Resource::AuditEvents),
    ("/v1/gateway_settings", Resource::GatewaySettings),
    ("/v1/test_clocks", Resource::TestClocks),
    ("/v1/orders", Resource::Orders),
];

/// `POST`s that only compute an answer.
const READS: &[&str] = &[
    "/v1/subscriptions/{id}/change_plan/preview",
    "/v1/subscriptions/{id}/change_quantity/preview",
    "/v1/subscriptions/{id}/send_now/preview",
    "/v1/subscriptions/preview",
];

/// The scope `method route` requires (`route` as in the document: `/v1/customers/{id}`);
/// `None` for a route in no group.
pub fn required(method: &Method, route: &str) -> Option<Scope> {
    let resource = RESOURCES
        .iter()
        .filter(|(prefix, _)| {
            route
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, resource)| resource)?;
    let access = if method == Method::GET || method == Method::HEAD || READS.contains(&route) {
        Access::Read
    } else {
        Access::Write
    };
    Some(Scope::new(resource, access))
}

/// Refuses a key without the scope this request's route requires.
pub fn check(req: &HttpRequest, key: MerchantKey) -> Result<(), ApiError> {
    if key.scopes.is_unrestricted() {
        return Ok(());
    }
    let route = req.match_pattern();
    let needed = route
        .as_deref()
        .and_then(|route| required(req.method(), route));
    match needed {
        Some(scope) if key.scopes.allows(scope) => Ok(()),
        Some(scope) => Err(ApiError::Forbidden {
            code: "missing_scope",
            detail: format!(
                "this key is restricted and lacks the scope {scope} that {} {} requires",
                req.method(),
                route.as_deref().unwrap_or_default()
            ),
        }),
        None => Err(ApiError::Forbidden {
            code: "missing_scope",
            detail: "this route needs an unrestricted key".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(method: Method, route: &str) -> Option<String> {
        required(&method, route).map(|s| s.to_string())
    }

    #[test]
    fn the_longest_prefix_and_the_method_decide() {
        assert_eq!(
            scope(Method::GET, "/v1/customers/{id}").as_deref(),
            Some("customers:read")
        );
        assert_eq!(
            scope(Method::POST, "/v1/customers/{id}/payment_methods").as_deref(),
            Some("payment_methods:write")
        );
        assert_eq!(
            scope(Method::POST, "/v1/events/{id}/redeliver").as_deref(),
            Some("webhooks:write")
        );
        // Every preview is a read, as its GET would be.
        for preview in [
            "/v1/subscriptions/{id}/change_plan/preview",
            "/v1/subscriptions/{id}/change_quantity/preview",
            "/v1/subscriptions/{id}/send_now/preview",
            "/v1/subscriptions/preview",
        ] {
            assert_eq!(
                scope(Method::POST, preview).as_deref(),
                Some("subscriptions:read"),
                "{preview}"
            );
        }
        assert_eq!(
            scope(Method::POST, "/v1/subscriptions/{id}/send_now").as_deref(),
            Some("subscriptions:write")
        );
        assert_eq!(scope(Method::GET, "/v1/customersx"), None);
    }

    /// What reaches beyond its resource has a grant of its own: a customer's export
    /// (payment methods, invoices, tickets…) is not `customers:read`, and the portal's
    /// identity providers and CORS origins are not `customer_sessions:write`.
    #[test]
    fn exports_and_portal_settings_need_their_own_scopes() {
        assert_eq!(
            scope(Method::GET, "/v1/customers/{id}/export").as_deref(),
            Some("customer_exports:read")
        );
        assert_eq!(
            scope(Method::POST, "/v1/identity_providers").as_deref(),
            Some("portal_settings:write")
        );
        assert_eq!(
            scope(Method::PUT, "/v1/cors_settings").as_deref(),
            Some("portal_settings:write")
        );
        assert_eq!(
            scope(Method::POST, "/v1/customer_sessions").as_deref(),
            Some("customer_sessions:write")
        );
    }

    /// Every merchant operation of the document is in a group (none needs an
    /// unrestricted key by accident).
    #[test]
    fn every_merchant_operation_requires_a_scope() {
        let doc = serde_json::to_value(crate::openapi_document()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !crate::openapi::is_merchant_path(path) {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                let method: Method = method.to_uppercase().parse().unwrap();
                assert!(required(&method, path).is_some(), "{method} {path}");
                seen += 1;
            }
        }
        assert!(seen > 80, "{seen}");
    }
}
