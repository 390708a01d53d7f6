//! Bodies of the renewal engine's routes: the upcoming invoice preview, the dunning
//! policy and the billing settings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::billing::dunning::{MAX_RETRIES, MAX_RETRY_DAY};
use tenure_domain::billing::invoice::{InvoiceLine, InvoiceTotals};
use tenure_domain::billing::period::Period;
use tenure_domain::data_retention::RetentionDays;
use tenure_domain::subscription::PlanTerms;
use tenure_store::repo::renewals::BillingSettings;
use tenure_store::repo::subscriptions::StoredSubscription;
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    Array, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};

use crate::dto::MoneyDto;
use crate::dto::billing::{InvoiceLineDto, InvoiceStatusDto};

/// The invoice the next renewal will create (a draft preview; nothing is stored).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpcomingInvoiceDto {
    /// Always `upcoming_invoice`.
    pub object: String,
    pub subscription_id: String,
    pub customer_id: String,
    pub plan_id: String,
    /// Always `draft`: the invoice the renewal creates starts as one.
    pub status: InvoiceStatusDto,
    #[schema(value_type = String, example = "EUR")]
    pub currency: tenure_domain::money::Currency,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_start: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_end: DateTime<Utc>,
    /// When the invoice is created and charged: the start of its period.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub date: DateTime<Utc>,
    pub lines: Vec<InvoiceLineDto>,
    pub subtotal: MoneyDto,
    pub discount: MoneyDto,
    pub total: MoneyDto,
    /// The customer's credit balance as it stands now, used before charging (zero or
    /// negative); the renewal uses what the balance holds then.
    pub credit_applied: MoneyDto,
    pub amount_due: MoneyDto,
}

impl UpcomingInvoiceDto {
    pub fn render(
        s: &StoredSubscription,
        terms: &PlanTerms,
        period: Period,
        lines: &[InvoiceLine],
        totals: &InvoiceTotals,
    ) -> Self {
        Self {
            object: "upcoming_invoice".to_owned(),
            subscription_id: s.subscription.id.to_string(),
            customer_id: s.customer_id.to_string(),
            plan_id: terms.plan_id.to_string(),
            status: InvoiceStatusDto::Draft,
            currency: terms.price.currency,
            period_start: period.start,
            period_end: period.end,
            date: period.start,
            lines: lines.iter().map(InvoiceLineDto::from).collect(),
            subtotal: totals.subtotal.into(),
            discount: totals.discount.into(),
            total: totals.total.into(),
            credit_applied: totals.credit_applied.into(),
            amount_due: totals.amount_due.into(),
        }
    }
}

/// What happens after a renewal payment fails.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DunningPolicyDto {
    /// Always `dunning_policy`.
    pub object: String,
    /// Days after the first failed attempt at which the charge is retried.
    pub retry_after_days: Vec<u32>,
    /// Where the subscription ends when the last retry fails.
    pub final_state: DunningFinalStateDto,
    /// `null` while the defaults apply.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<&BillingSettings> for DunningPolicyDto {
    fn from(s: &BillingSettings) -> Self {
        Self {
            object: "dunning_policy".to_owned(),
            retry_after_days: s.dunning_policy.retry_after_days.clone(),
            final_state: s.dunning_policy.final_state.into(),
            updated_at: s.updated_at,
        }
    }
}

wire_enum! {
    /// `canceled` or `unpaid`.
    DunningFinalStateDto from tenure_domain::billing::dunning::DunningFinalState { Canceled, Unpaid }
}

/// A new dunning policy: 1–60 days, strictly increasing, at most 8 retries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"retry_after_days": [1, 3, 7], "final_state": "canceled"}))]
pub struct PutDunningPolicy {
    #[schema(schema_with = retry_after_days_schema)]
    pub retry_after_days: Vec<u32>,
    /// Parsed by the use case (for its field error).
    #[schema(value_type = DunningFinalStateDto, example = "canceled")]
    pub final_state: String,
}

/// Written by hand so that the bounds of the entries, which the attribute syntax cannot
/// give, come from the dunning rules themselves.
fn retry_after_days_schema() -> Array {
    let day = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(1))
        .maximum(Some(MAX_RETRY_DAY));
    ArrayBuilder::new()
        .items(day)
        .max_items(Some(MAX_RETRIES))
        .description(Some(
            "Days after the first failure at which to retry, strictly increasing.",
        ))
        .build()
}

/// Billing settings of the merchant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BillingSettingsDto {
    /// Always `billing_settings`.
    pub object: String,
    /// Days before each renewal that `invoice.upcoming` is sent (0: never).
    pub upcoming_notice_days: u32,
    /// Days before each renewal of a subscription that ships that `order.upcoming` is
    /// sent (0: never; default 3).
    #[schema(maximum = 60)]
    pub order_notice_days: u32,
    /// Hours before each renewal after which subscribers may no longer change its order
    /// (`order_edit_cutoff_passed`); 0: no cutoff (the default).
    #[schema(maximum = 1440)]
    pub order_cutoff_hours: u32,
    /// The merchant's own retention period in days, or null to follow the operator's
    /// default: events (but `subscription.*` ones) and settled webhook deliveries older
    /// than this are removed.
    #[schema(minimum = 7, maximum = 3650)]
    pub retention_days: Option<u32>,
    /// The period that applies: `retention_days`, or the operator's default.
    #[schema(minimum = 7, maximum = 3650)]
    pub effective_retention_days: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl BillingSettingsDto {
    /// The settings as the merchant sees them, `default_retention` being the operator's.
    pub fn new(s: &BillingSettings, default_retention: RetentionDays) -> Self {
        Self {
            object: "billing_settings".to_owned(),
            upcoming_notice_days: s.upcoming_notice_days,
            order_notice_days: s.orders.notice_days,
            order_cutoff_hours: s.orders.cutoff_hours,
            retention_days: s.retention_days.map(|d| u32::from(d.days())),
            effective_retention_days: u32::from(
                s.retention_days.unwrap_or(default_retention).days(),
            ),
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"upcoming_notice_days": 7, "retention_days": 180,
    "order_notice_days": 3, "order_cutoff_hours": 48}))]
pub struct PutBillingSettings {
    /// 0–60.
    #[schema(maximum = 60)]
    pub upcoming_notice_days: u32,
    /// Days before a renewal that `order.upcoming` is sent, 0–60 (0: never); omitted
    /// leaves it as it is.
    #[schema(maximum = 60)]
    pub order_notice_days: Option<u32>,
    /// Hours before a renewal after which its order is locked for subscribers, 0–1440 (0:
    /// no cutoff), at most `order_notice_days × 24` so the notice comes first; omitted
    /// leaves it as it is.
    #[schema(maximum = 1440)]
    pub order_cutoff_hours: Option<u32>,
    /// Days events and settled webhook deliveries are kept (7–3650); null returns to the
    /// operator's default; omitted leaves it as it is.
    #[serde(default, deserialize_with = "super::customers::double_option")]
    #[schema(value_type = Option<u32>, minimum = 7, maximum = 3650)]
    pub retention_days: Option<Option<u32>>,
}
