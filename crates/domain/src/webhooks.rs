//! Webhook rules, free of I/O: the event catalogue an endpoint may subscribe to, retry
//! schedules with jitter, and when an endpoint counts as failing for good.

use chrono::{DateTime, Duration, Utc};

use crate::error::DomainError;
use crate::ids::{EventId, WebhookDeliveryId, WebhookEndpointId};

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// The merchant disabled it.
    Manual,
    /// Tenure disabled it after uninterrupted failure (see [`should_disable`]).
    Failing,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Failing => "failing",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "manual" => Some(Self::Manual),
            "failing" => Some(Self::Failing),
            _ => None,
        }
    }
}

/// Where a merchant receives events. Its `Debug` output leaves the secrets out, so an
/// endpoint can be logged safely.
#[derive(Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub url: String,
    pub description: Option<String>,
    pub enabled_events: Vec<String>,
    pub retry_schedule_secs: Vec<u32>,
    /// The current signing secret, `whsec_` + base64 of 32 random bytes.
    pub secret: String,
    /// The secret before the last rotation; it keeps signing until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<DisabledReason>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("enabled_events", &self.enabled_events)
            .field("retry_schedule_secs", &self.retry_schedule_secs)
            .field("secret", &"[redacted]")
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .field("disabled_reason", &self.disabled_reason)
            .field("failing_since", &self.failing_since)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

impl WebhookEndpoint {
    pub fn disabled(&self) -> bool {
        self.disabled_reason.is_some()
    }

    /// The secrets that sign a request sent at `now`: the current one, and during a
    /// rotation's overlap the previous one too.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && until > now
        {
            secrets.push(previous);
        }
        secrets
    }

    /// When the previous secret stops signing, if a rotation is in its overlap.
    pub fn secret_overlap_ends_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous_secret_expires_at.filter(|until| *until > now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
    /// The endpoint was disabled before the delivery succeeded.
    Canceled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "canceled" => Some(Self::Canceled),
            _ => None,
        }
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: WebhookDeliveryId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_response_status: Option<u16>,
    pub last_latency_ms: Option<u32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One HTTP request of a delivery and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    pub succeeded: bool,
    pub response_status: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
}

/// Every event type Tenure emits (docs/events.md describes each one). An endpoint
/// subscribes to `*` or to a list of these.
/// Whether Tenure emits events of `event_type` (the catalogue in docs/events.md).
pub fn is_known_event_type(event_type: &str) -> bool {
    EVENT_TYPES.contains(&event_type)
}

pub const EVENT_TYPES: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.erased",
    "customer.balance_changed",
    "product.created",
    "product.updated",
    "product.archived",
    "plan.created",
    "plan.updated",
    "plan.archived",
    "subscription.created",
    "subscription.paused",
    "subscription.pause_scheduled",
    "subscription.resumed",
    "subscription.resume_scheduled",
    "subscription.cancellation_requested",
    "subscription.cancellation_withdrawn",
    "subscription.cancel_scheduled",
    "subscription.canceled",
    "subscription.plan_changed",
    "subscription.plan_change_scheduled",
    "subscription.quantity_changed",
    "subscription.scheduled_change_removed",
    "subscription.renewal_skip_scheduled",
    "subscription.renewal_skip_removed",
    "subscription.renewal_skipped",
    "subscription.stock_notice",
    "subscription.stock_choice_made",
    "subscription.sent_now",
    "subscription.renewal_prepaid",
    "subscription.trial_ended",
    "subscription.trial_extended",
    "subscription.renewed",
    "subscription.past_due",
    "subscription.unpaid",
    "subscription.recovered",
    "subscription.activated",
    "subscription.incomplete_expired",
    "subscription.access_ending",
    "subscription.discount_applied",
    "cancellation_request.created",
    "cancellation_request.withdrawn",
    "cancellation_request.approved",
    "cancellation_request.declined",
    "cancellation_request.completed",
    "support_ticket.created",
    "support_ticket.updated",
    "retention_offer.created",
    "retention_offer.updated",
    "retention_offer.deactivated",
    "retention_offer.accepted",
    "retention_offer.declined",
    "coupon.created",
    "coupon.updated",
    "coupon.deleted",
    "promotion_code.created",
    "promotion_code.updated",
    "invoice.upcoming",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.marked_uncollectible",
    "invoice.voided",
    "invoice.refunded",
    "invoice_item.created",
    "invoice_item.deleted",
    "credit_note.created",
    "override.created",
    "payment.disputed",
    "payment_method.attached",
    "payment_method.updated",
    "payment_method.detached",
    "payment_method.expiring",
    "webhook_endpoint.disabled",
    "test_clock.advancing",
    "test_clock.ready",
    "address.created",
    "address.updated",
    "address.deleted",
    "subscription.shipping_address_updated",
    "order.created",
    "order.updated",
    "order.paid",
    "order.held",
    "order.released",
    "order.fulfilled",
    "order.shipped",
    "order.delivered",
    "order.canceled",
    "order.upcoming",
];

/// Subscribes to every event type, including ones added later.
pub const ALL_EVENTS: &str = "*";

/// The default retry schedule: the delay before each retry after a failed attempt, about
/// three days in all (9 attempts).
pub const DEFAULT_RETRY_SCHEDULE_SECS: &[u32] = &[60, 300, 1800, 7200, 18000, 36000, 86400, 86400];

/// At most this many retries per delivery.
pub const MAX_RETRIES: usize = 20;
/// No single retry delay beyond a week.
pub const MAX_RETRY_DELAY_SECS: u32 = 7 * 24 * 3600;
/// At most this many event types on one endpoint.
pub const MAX_ENABLED_EVENTS: usize = 100;
/// How long a rotated-out secret keeps signing by default, and at most.
pub const DEFAULT_SECRET_OVERLAP_SECS: u32 = 24 * 3600;
pub const MAX_SECRET_OVERLAP_SECS: u32 = 7 * 24 * 3600;

/// Checks and normalises (sorts, dedupes) an endpoint's subscriptions.
pub fn validate_enabled_events(events: &[String]) -> Result<Vec<String>, DomainError> {
    if events.is_empty() {
        return Err(DomainError::validation(
            "enabled_events",
            "must list at least one event type, or \"*\" for all",
        ));
    }
    if events.len() > MAX_ENABLED_EVENTS {
        return Err(DomainError::validation(
            "enabled_events",
            format!("must list at most {MAX_ENABLED_EVENTS} event types"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        if event != ALL_EVENTS && !is_known_event_type(event) {
            return Err(DomainError::validation(
                format!("enabled_events[{i}]"),
                "is not a known event type (see docs/events.md), nor \"*\"",
            ));
        }
        out.push(event.clone());
    }
    if out.iter().any(|e| e == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_owned()]);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether an endpoint subscribed to `enabled` receives events of `event_type`.
pub fn subscribes_to(enabled: &[String], event_type: &str) -> bool {
    enabled.iter().any(|e| e == ALL_EVENTS || e == event_type)
}

/// Checks a merchant-chosen retry schedule.
pub fn validate_retry_schedule(schedule: &[u32]) -> Result<Vec<u32>, DomainError> {
    if schedule.len() > MAX_RETRIES {
        return Err(DomainError::validation(
            "retry_schedule_secs",
            format!("must have at most {MAX_RETRIES} entries"),
        ));
    }
    if let Some(i) = schedule
        .iter()
        .position(|&s| s == 0 || s > MAX_RETRY_DELAY_SECS)
    {
        return Err(DomainError::validation(
            format!("retry_schedule_secs[{i}]"),
            format!("must be between 1 and {MAX_RETRY_DELAY_SECS} seconds"),
        ));
    }
    Ok(schedule.to_vec())
}

/// What to do after attempt number `attempts` (1-based) of a delivery failed: retry at
/// the returned time, or give up (`None`) once the schedule is exhausted. `jitter` is a
/// number in [-1, 1]; the delay moves by up to ±10 % of itself, so that retries of many
/// deliveries that failed together do not arrive together.
pub fn next_retry(
    schedule: &[u32],
    attempts: u32,
    failed_at: DateTime<Utc>,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let base = f64::from(*schedule.get(index)?);
    let jitter = jitter.clamp(-1.0, 1.0);
    let millis = (base * 1000.0 * (1.0 + 0.1 * jitter)).round().max(0.0);
    // At most a week plus 10 %, well inside i64.
    #[allow(clippy::cast_possible_truncation)]
    let millis = millis as i64;
    Some(failed_at + Duration::milliseconds(millis))
}

/// The automatic disabling rule: when a delivery has exhausted its retry schedule and no
/// attempt to the endpoint has succeeded since that delivery's first attempt (the
/// endpoint has been failing at least since then), the endpoint is disabled. With the
/// default schedule that is about three days of uninterrupted failure.
pub fn should_disable(
    failing_since: Option<DateTime<Utc>>,
    exhausted_delivery_first_attempt: DateTime<Utc>,
) -> bool {
    failing_since.is_some_and(|since| since <= exhausted_delivery_first_attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GenerateId;

    #[test]
    fn enabled_events_are_checked_and_normalised() {
        let ok = validate_enabled_events(&[
            "customer.updated".to_owned(),
            "customer.created".to_owned(),
            "customer.updated".to_owned(),
        ])
        .unwrap();
        assert_eq!(ok, ["customer.created", "customer.updated"]);
        assert_eq!(
            validate_enabled_events(&["*".to_owned(), "customer.created".to_owned()]).unwrap(),
            ["*"]
        );
        assert!(validate_enabled_events(&[]).is_err());
        assert!(validate_enabled_events(&["customer.deleted".to_owned()]).is_err());
        // The cancellation workflow's events can be chosen one by one, not only via `*`.
        assert!(
            validate_enabled_events(&[
                "cancellation_request.created".to_owned(),
                "support_ticket.updated".to_owned(),
            ])
            .is_ok()
        );
        assert!(subscribes_to(&["*".to_owned()], "plan.created"));
        assert!(!subscribes_to(&["plan.updated".to_owned()], "plan.created"));
    }

    #[test]
    fn retries_follow_the_schedule_with_bounded_jitter() {
        let t = Utc::now();
        let schedule = [60, 300];
        assert_eq!(next_retry(&schedule, 0, t, 0.0), None);
        assert_eq!(
            next_retry(&schedule, 1, t, 0.0),
            Some(t + Duration::seconds(60))
        );
        assert_eq!(
            next_retry(&schedule, 2, t, 1.0),
            Some(t + Duration::seconds(330))
        );
        assert_eq!(
            next_retry(&schedule, 2, t, -5.0),
            Some(t + Duration::seconds(270))
        );
        assert_eq!(next_retry(&schedule, 3, t, 0.0), None);
        assert!(validate_retry_schedule(&[0]).is_err());
        assert!(validate_retry_schedule(&[1; 21]).is_err());
        assert!(validate_retry_schedule(DEFAULT_RETRY_SCHEDULE_SECS).is_ok());
    }

    #[test]
    fn the_catalogue_page_lists_every_event_type() {
        let page = include_str!("../../../docs/events.md");
        for event in EVENT_TYPES {
            assert!(
                page.contains(&format!("| `{event}` |")),
                "docs/events.md lacks {event}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output_and_sign_during_the_overlap() {
        let now = Utc::now();
        let endpoint = WebhookEndpoint {
            id: WebhookEndpointId::generate(),
            url: "https://example.com/".to_owned(),
            description: None,
            enabled_events: vec!["*".to_owned()],
            retry_schedule_secs: vec![60],
            secret: "whsec_c2VjcmV0LW5ldw==".to_owned(),
            previous_secret: Some("whsec_c2VjcmV0LW9sZA==".to_owned()),
            previous_secret_expires_at: Some(now + Duration::hours(1)),
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let debug = format!("{endpoint:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert_eq!(endpoint.signing_secrets(now).len(), 2);
        assert_eq!(
            endpoint.signing_secrets(now + Duration::hours(2)),
            ["whsec_c2VjcmV0LW5ldw=="]
        );
    }

    #[test]
    fn endpoints_are_disabled_only_after_uninterrupted_failure() {
        let t = Utc::now();
        assert!(should_disable(
            Some(t - Duration::days(3)),
            t - Duration::days(3)
        ));
        assert!(!should_disable(
            Some(t - Duration::days(1)),
            t - Duration::days(3)
        ));
        assert!(!should_disable(None, t));
    }
}
