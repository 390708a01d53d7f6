//! Subscriber metrics of a period (docs/metrics.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// Start of the period (RFC 3339, inclusive). Default: 30 days before `to`.
    // A string parsed by the use case (for its field error); documented as the instant it is.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End of the period (RFC 3339, exclusive). Default: now; a later instant is taken as
    /// now.
    #[param(format = DateTime)]
    pub to: Option<String>,
}

/// The figures of one currency; never summed with another currency's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"currency": "EUR", "mrr": 3000, "mrr_at_start": 4000,
    "active_subscriptions": 3, "active_subscribers": 2, "active_subscribers_at_start": 3,
    "new_subscribers": 1, "churned_subscribers": 2, "churned_mrr": 2000,
    "logo_churn_rate": "0.6667", "revenue_churn_rate": "0.5000", "arpu": 1500, "ltv_estimate": 2250}))]
pub struct CurrencyMetricsDto {
    #[schema(example = "EUR")]
    pub currency: String,
    /// MRR at the end of the period (minor units): the monthly value of every `active`
    /// and `past_due` subscription at `to`.
    pub mrr: i64,
    /// MRR at `from`.
    pub mrr_at_start: i64,
    /// Paying (`active`, `past_due`) subscriptions at `to`.
    pub active_subscriptions: i64,
    /// Customers with a paying subscription at `to`.
    pub active_subscribers: i64,
    /// Customers with a paying subscription at `from`.
    pub active_subscribers_at_start: i64,
    /// Customers paying at `to` who were not paying at `from` (new, converted from a
    /// trial, resumed or reactivated within the period).
    pub new_subscribers: i64,
    /// Customers paying at `from` whose subscriptions had all ended (canceled) by `to`.
    pub churned_subscribers: i64,
    /// The MRR at `from` of the churned subscribers.
    pub churned_mrr: i64,
    /// `churned_subscribers / active_subscribers_at_start`, a decimal string with four
    /// places; null without subscribers at the start.
    #[schema(example = "0.2500")]
    pub logo_churn_rate: Option<String>,
    /// `churned_mrr / mrr_at_start`, four places; null when `mrr_at_start` is 0.
    #[schema(example = "0.2500")]
    pub revenue_churn_rate: Option<String>,
    /// Average revenue per subscriber: `mrr / active_subscribers`, minor units rounded half
    /// up; null without subscribers.
    pub arpu: Option<i64>,
    /// `arpu / monthly logo churn rate` (the period's rate scaled to 30 days), minor
    /// units; null when nothing churned.
    pub ltv_estimate: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseMetricsDto {
    /// Subscriptions paused at `to`.
    pub paused: i64,
    /// Pauses that began in the period (`subscription.paused` events).
    pub pauses_started: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SaveOfferMetricsDto {
    /// Retention offers presented in the period.
    pub presented: i64,
    /// Of those, accepted.
    pub accepted: i64,
    /// Of those, declined (the rest are still undecided).
    pub declined: i64,
    /// `accepted / presented`, four places; null when nothing was presented.
    #[schema(example = "0.5000")]
    pub acceptance_rate: Option<String>,
}

/// Subscriber metrics of a period, per currency and merchant-wide.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "metrics", "from": "2026-10-26T00:00:00Z", "to": "2026-11-25T00:00:00Z",
    "currencies": [{"currency": "EUR", "mrr": 9534, "mrr_at_start": 7034, "active_subscriptions": 4,
        "active_subscribers": 3, "active_subscribers_at_start": 3, "new_subscribers": 1,
        "churned_subscribers": 1, "churned_mrr": 2000, "logo_churn_rate": "0.3333",
        "revenue_churn_rate": "0.2843", "arpu": 3178, "ltv_estimate": 9534}],
    "pauses": {"paused": 1, "pauses_started": 1},
    "cancellation_reasons": {"too_expensive": 2, "unused": 1},
    "save_offers": {"presented": 3, "accepted": 1, "declined": 1, "acceptance_rate": "0.3333"}}))]
pub struct MetricsDto {
    /// Always `metrics`.
    pub object: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub to: DateTime<Utc>,
    /// One entry per currency with paying subscriptions at `from` or `to`, by code.
    pub currencies: Vec<CurrencyMetricsDto>,
    pub pauses: PauseMetricsDto,
    /// Cancellation requests made in the period, by reason.
    #[schema(value_type = Object, example = json!({"too_expensive": 2, "unused": 1}))]
    pub cancellation_reasons: BTreeMap<String, i64>,
    pub save_offers: SaveOfferMetricsDto,
}
