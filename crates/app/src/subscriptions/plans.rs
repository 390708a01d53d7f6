//! The plan and policy lookups every subscription change starts from: a plan's terms, a
//! plan the product still sells, the product's portal policy.

use diesel_async::AsyncPgConnection;
use tenure_domain::billing::period::Cadence;
use tenure_domain::catalog::{Plan, Product, QuantityLimits};
use tenure_domain::ids::{MerchantId, PlanId, ProductId};
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::PlanTerms;
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;

use crate::error::{AppError, AppResult};

/// The terms of `plan` for a subscription.
pub fn terms_of(plan: &Plan) -> AppResult<PlanTerms> {
    let cadence = Cadence::new(plan.interval, plan.interval_count)?;
    Ok(PlanTerms::new(plan.id, plan.price, cadence)?)
}

/// Loads a plan a subscription may start on or switch to: active, of an active product.
pub async fn purchasable_plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan_id: PlanId,
) -> AppResult<Plan> {
    Ok(purchasable_plan_of_product(conn, merchant, plan_id)
        .await?
        .0)
}

/// [`purchasable_plan`] and its product.
pub async fn purchasable_plan_of_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan_id: PlanId,
) -> AppResult<(Plan, Product)> {
    let plan = catalog_repo::get_plan(conn, merchant, plan_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::field("plan_id", "no such plan"),
            other => other.into(),
        })?;
    let product = catalog_repo::get_product(conn, merchant, plan.product_id, false).await?;
    if !plan.active || product.archived_at.is_some() {
        return Err(AppError::field(
            "plan_id",
            "the plan is not active (or its product is archived)",
        ));
    }
    Ok((plan, product))
}

/// The product's quantity limits, read inside the change's transaction.
pub async fn quantity_limits_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> AppResult<QuantityLimits> {
    Ok(catalog_repo::get_product(conn, merchant, product, false)
        .await?
        .quantity_limits)
}

pub async fn policy_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> AppResult<PortalPolicy> {
    Ok(catalog_repo::get_product(conn, merchant, product, false)
        .await?
        .portal_policy)
}
