//! Who acts on a subscription and what they do: the request's scope (a merchant, or one
//! of its customers, who sees only their own), the action, and what came of it.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, MerchantId, PlanId, ScheduledChangeId, SubscriptionId,
};
use tenure_domain::policy::PolicyLimit;
use tenure_domain::subscription::{Acting, Actor, CancelRequest, PauseRequest, SendNowAnchor};
use tenure_domain::support::CancellationRequest;
use tenure_store::StoreError;
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription};

use crate::error::{AppError, AppResult};

/// Who is acting: a merchant (server to server) or one of its customers (portal), whose
/// view is limited to their own subscriptions. A merchant request that names an agent
/// (`Tenure-Agent`) or carries an `override` acts as an agent, held to the product's
/// policy unless it overrides it ([`Acting`]).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub merchant: MerchantId,
    pub customer: Option<CustomerId>,
    /// Whether the merchant request names an agent.
    pub agent: bool,
    /// Whether the request overrides the policy (with a reason, checked before).
    pub overriding: bool,
}

impl Scope {
    pub fn merchant(merchant: MerchantId) -> Self {
        Self {
            merchant,
            customer: None,
            agent: false,
            overriding: false,
        }
    }

    /// A merchant request naming an agent when `named`.
    pub fn merchant_agent(merchant: MerchantId, named: bool) -> Self {
        Self {
            agent: named,
            ..Self::merchant(merchant)
        }
    }

    pub fn customer(merchant: MerchantId, customer: CustomerId) -> Self {
        Self {
            customer: Some(customer),
            ..Self::merchant(merchant)
        }
    }

    /// This scope with the policy overridden (a merchant's only: the portal takes no
    /// override).
    pub(crate) fn overriding(self) -> Self {
        Self {
            overriding: true,
            ..self
        }
    }

    /// Whether the request is held to the edit cutoff of upcoming orders: a customer is,
    /// and an agent unless overriding; a merchant's backend is not (it is the merchant's
    /// own fulfilment that locked the order, and it knows whether it may change it).
    pub fn held_to_order_cutoff(&self) -> bool {
        self.customer.is_some() || (self.agent && !self.overriding)
    }

    /// Who records as having asked for a change.
    pub fn actor(&self) -> Actor {
        self.acting().actor
    }

    /// Who acts, as the product's policy holds them: a customer to every limit, an agent
    /// unless overriding, a merchant's backend to none.
    pub fn acting(&self) -> Acting {
        if self.customer.is_some() {
            Actor::Customer.into()
        } else if self.agent || self.overriding {
            Acting::agent(self.overriding)
        } else {
            Actor::Merchant.into()
        }
    }

    /// Whether this caller may see `s`; another customer's subscription is a 404.
    pub(crate) fn sees(&self, s: &StoredSubscription) -> bool {
        self.customer.is_none_or(|c| c == s.customer_id)
    }
}

/// A lifecycle action on one subscription.
#[derive(Debug, Clone)]
pub enum Action {
    Pause(PauseRequest),
    Resume,
    Cancel(CancelRequest),
    ChangePlan(PlanId),
    ChangeQuantity(u32),
    /// Skip the first coming renewal not skipped yet.
    Skip,
    /// Take back the last skip.
    Unskip,
    /// Bring the next renewal forward to now.
    SendNow(SendNowAnchor),
    RemoveScheduledChange(ScheduledChangeId),
    WithdrawRequest(CancellationRequestId),
    ApproveRequest(CancellationRequestId),
    DeclineRequest(CancellationRequestId, String),
}

/// The result of an action: the subscription after it, and the cancellation request it
/// created or changed.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub subscription: StoredSubscription,
    pub cancellation_request: Option<CancellationRequest>,
    /// False only when the subscription had no discount before the action and the
    /// action grants none: its response then skips reading discounts.
    pub may_have_discounts: bool,
    /// The policy limits an overriding agent exceeded with the action.
    pub overridden: Vec<PolicyLimit>,
    /// When the action was taken: the test clock's time for a customer on one (read with
    /// the locked row), for what the caller does next in the same transaction.
    pub now: DateTime<Utc>,
}

pub(crate) fn subscription_not_found(err: StoreError) -> AppError {
    AppError::from_store("subscription")(err)
}

/// The subscription `id` as `scope` may see it: another customer's is as absent as one
/// that does not exist.
pub(crate) async fn visible(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<StoredSubscription> {
    let s = repo::get(conn, scope.merchant, id, false)
        .await
        .map_err(subscription_not_found)?;
    if !scope.sees(&s) {
        return Err(AppError::NotFound("subscription"));
    }
    Ok(s)
}
