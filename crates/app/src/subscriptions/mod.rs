//! The subscription lifecycle for merchants and customers: subscribe, pause, resume,
//! cancel (request or immediate), change plan, remove scheduled changes, and the
//! cancellation requests with their support tickets.
//!
//! Every mutation runs in one transaction: lock the subscription row, check `If-Match`,
//! apply the domain transition under the product's portal policy, save the new state
//! (which rewrites its scheduled-change rows), record each domain event, and apply the
//! events' side effects on cancellation requests and tickets.

mod acting;
mod persist;
mod plans;
mod requests;
mod scope;
mod views;

pub(crate) use acting::plan_change_request;
pub use acting::{
    Subscribed, act, act_in_tx, act_on_request, act_overriding, change_plan_with_code, create,
    create_with_code, create_with_quantity, preview_plan_change, preview_plan_change_overriding,
    preview_plan_change_with_code, preview_quantity_change, preview_send_now, preview_subscription,
    remove_change_overriding, subscribe,
};
pub use persist::{apply_due_in_tx, expire_incomplete_in_tx, persist_system};
pub use plans::{policy_of, purchasable_plan, terms_of};
pub use requests::post_to_ticket;
pub use scope::{Action, ActionOutcome, Scope};
pub use views::{
    get, list, merchant_outcome_view, merchant_view, merchant_views, portal_get,
    portal_outcome_view, portal_view, portal_views,
};
