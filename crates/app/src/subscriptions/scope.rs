//! Who acts on a subscription and what they do: the request's scope (a merchant, or one
//! of its customers, who sees only their own), the action, and what came of it.

use diesel_async::AsyncPgConnection;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, MerchantId, PlanId, ScheduledChangeId, SubscriptionId,
};
use tenure_domain::subscription::{Actor, CancelRequest, PauseRequest};
use tenure_domain::support::CancellationRequest;
use tenure_store::StoreError;
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription};

use crate::error::{AppError, AppResult};

/// Who is acting: a merchant (server to server) or one of its customers (portal), whose
/// view is limited to their own subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub merchant: MerchantId,
    pub customer: Option<CustomerId>,
}

impl Scope {
    pub fn merchant(merchant: MerchantId) -> Self {
        Self {
            merchant,
            customer: None,
        }
    }

    pub fn customer(merchant: MerchantId, customer: CustomerId) -> Self {
        Self {
            merchant,
            customer: Some(customer),
        }
    }

    pub fn actor(&self) -> Actor {
        if self.customer.is_some() {
            Actor::Customer
        } else {
            Actor::Merchant
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
