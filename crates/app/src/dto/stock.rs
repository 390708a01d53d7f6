//! A plan's stock, the merchant's stock change and its progress, and the notice a
//! subscriber gets (docs/orders.md, "Stock").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::stock::{NextOrderAction, Stock, StockStatus};
use tenure_store::repo::stock::{Recipient, StockNotice};
use utoipa::ToSchema;

wire_enum! {
    /// Whether the plan can ship.
    StockStatusDto from StockStatus { InStock, Low, OutOfStock, Discontinued }
}

wire_enum! {
    /// What happens to a subscriber's next order.
    NextOrderActionDto from NextOrderAction { ShipAnyway, Skip, Swap }
}

impl From<StockStatusDto> for StockStatus {
    fn from(value: StockStatusDto) -> Self {
        match value {
            StockStatusDto::InStock => Self::InStock,
            StockStatusDto::Low => Self::Low,
            StockStatusDto::OutOfStock => Self::OutOfStock,
            StockStatusDto::Discontinued => Self::Discontinued,
        }
    }
}

impl From<NextOrderActionDto> for NextOrderAction {
    fn from(value: NextOrderActionDto) -> Self {
        match value {
            NextOrderActionDto::ShipAnyway => Self::ShipAnyway,
            NextOrderActionDto::Skip => Self::Skip,
            NextOrderActionDto::Swap => Self::Swap,
        }
    }
}

/// A plan's stock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StockDto {
    pub status: StockStatusDto,
    /// When an `out_of_stock` plan is expected back, if known.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub expected_at: Option<DateTime<Utc>>,
}

impl From<Stock> for StockDto {
    fn from(s: Stock) -> Self {
        Self {
            status: s.status.into(),
            expected_at: s.expected_at,
        }
    }
}

/// A change of a plan's stock: every active subscriber of the plan is notified
/// (`subscription.stock_notice`) in batches after the answer, and `next_order` is applied
/// to each one's next order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "out_of_stock", "expected_at": "2027-01-15T00:00:00Z",
    "next_order": "swap", "substitute_plan_id": "plan_01jf9zd8f4e3a8r7m2k4t5n6bc",
    "choices": ["skip", "ship_anyway"]}))]
pub struct ChangeStock {
    pub status: StockStatusDto,
    /// Only with `out_of_stock`.
    pub expected_at: Option<DateTime<Utc>>,
    /// Default `ship_anyway`; `skip` and `swap` only when the plan is `out_of_stock` or
    /// `discontinued`.
    pub next_order: Option<NextOrderActionDto>,
    /// The plan `swap` moves to at the next renewal: another plan in the same currency.
    /// Required when `swap` is `next_order` or one of `choices`, refused otherwise.
    pub substitute_plan_id: Option<String>,
    /// What the subscriber may pick in the portal instead of `next_order` (none by
    /// default: the merchant's action stands).
    #[serde(default)]
    pub choices: Vec<NextOrderActionDto>,
}

/// A stock change and how far its notices have gone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StockNoticeDto {
    pub id: String,
    /// Always `stock_notice`.
    pub object: String,
    pub plan_id: String,
    pub stock: StockDto,
    pub next_order: NextOrderActionDto,
    pub substitute_plan_id: Option<String>,
    pub choices: Vec<NextOrderActionDto>,
    /// Subscribers notified so far.
    pub notified: i64,
    /// When every affected subscriber was notified (or a newer change superseded it).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub done_at: Option<DateTime<Utc>>,
    /// The newer stock change of the plan that ended this one's notices.
    pub superseded_by: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&StockNotice> for StockNoticeDto {
    fn from(n: &StockNotice) -> Self {
        Self {
            id: n.id.to_string(),
            object: "stock_notice".to_owned(),
            plan_id: n.plan_id.to_string(),
            stock: n.change.stock.into(),
            next_order: n.change.next_order.into(),
            substitute_plan_id: n.change.substitute_plan_id.map(|p| p.to_string()),
            choices: n.change.choices.iter().map(|c| (*c).into()).collect(),
            notified: n.notified,
            done_at: n.done_at,
            superseded_by: n.superseded_by.map(|s| s.to_string()),
            created_at: n.created_at,
        }
    }
}

/// What a stock notice told one subscriber, and what it did to their next order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionStockNoticeDto {
    /// Always `subscription_stock_notice`.
    pub object: String,
    pub notice_id: String,
    pub subscription_id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub stock: StockDto,
    /// What happens to the next order now: the subscriber's choice, else the merchant's
    /// action as applied.
    pub next_order: NextOrderActionDto,
    /// The merchant's action.
    pub merchant_action: NextOrderActionDto,
    /// Why the merchant's action could not apply to this subscription (the refusal's
    /// code, e.g. `subscription_paused`); the next order then ships as it is.
    pub not_applied_code: Option<String>,
    pub substitute_plan_id: Option<String>,
    /// What the subscriber may pick (`POST …/stock_choice`); empty when nothing is offered
    /// or a newer stock change replaced this notice.
    pub choices: Vec<NextOrderActionDto>,
    pub choice: Option<NextOrderActionDto>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub chosen_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub notified_at: DateTime<Utc>,
}

impl SubscriptionStockNoticeDto {
    pub fn render(notice: &StockNotice, r: &Recipient) -> Self {
        let offered: Vec<NextOrderActionDto> = if notice.superseded_by.is_some() {
            Vec::new()
        } else {
            NextOrderAction::ALL
                .into_iter()
                .filter(|c| notice.change.offers(*c))
                .map(Into::into)
                .collect()
        };
        Self {
            object: "subscription_stock_notice".to_owned(),
            notice_id: notice.id.to_string(),
            subscription_id: r.subscription_id.to_string(),
            customer_id: r.customer_id.to_string(),
            plan_id: notice.plan_id.to_string(),
            stock: notice.change.stock.into(),
            next_order: r.choice.unwrap_or(r.applied).into(),
            merchant_action: notice.change.next_order.into(),
            not_applied_code: r.not_applied_code.clone(),
            substitute_plan_id: notice.change.substitute_plan_id.map(|p| p.to_string()),
            choices: offered,
            choice: r.choice.map(Into::into),
            chosen_at: r.chosen_at,
            notified_at: r.notified_at,
        }
    }
}

/// A subscription's stock: its plan's, and the latest notice of that plan it received.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionStockDto {
    /// Always `subscription_stock`.
    pub object: String,
    pub subscription_id: String,
    pub plan_id: String,
    /// The plan's stock now.
    pub stock: StockDto,
    /// The latest stock notice of the plan that reached the subscription, if any.
    pub notice: Option<SubscriptionStockNoticeDto>,
}

/// A subscriber's pick among a stock notice's `choices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"choice": "skip"}))]
pub struct StockChoice {
    pub choice: NextOrderActionDto,
}
