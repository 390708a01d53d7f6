//! Products and plans.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::catalog::{self, Plan, Product, QuantityLimits, Variant};
use tenure_domain::ids::{GenerateId, MerchantId, PlanId, ProductId};
use tenure_domain::money::Money;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::catalog as repo;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::catalog::{
    CreatePlan, CreateProduct, PlanDto, PortalPolicyInput, ProductDto, UpdatePlan, UpdateProduct,
    VariantInput,
};
use crate::dto::common::parse_field_id;
use crate::error::{AppError, AppResult};
use crate::error::{Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::versions::check_if_match;

const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 2000;

/// Applies the fields present in `input` to `policy` and validates the result.
fn apply_policy(
    v: &mut Validator,
    mut policy: PortalPolicy,
    input: &PortalPolicyInput,
) -> Option<PortalPolicy> {
    if let Some(x) = input.allow_pause {
        policy.allow_pause = x;
    }
    if let Some(x) = input.allow_cancel {
        policy.allow_cancel = x;
    }
    if let Some(x) = input.cancellation_mode {
        policy.cancellation_mode = x.into();
    }
    if let Some(x) = input.immediate_cancel_timing {
        policy.immediate_cancel_timing = x.into();
    }
    if let Some(x) = input.notice_rule {
        policy.notice_rule = x.into();
    }
    if let Some(x) = input.notice_period_days {
        policy.notice_period_days = x;
    }
    if let Some(x) = input.max_pause_days {
        policy.max_pause_days = x;
    }
    if let Some(x) = input.keep_access_while_paused {
        policy.keep_access_while_paused = x;
    }
    if let Some(x) = input.allow_plan_change {
        policy.allow_plan_change = x;
    }
    if let Some(x) = input.allow_skip {
        policy.allow_skip = x;
    }
    if let Some(x) = input.max_consecutive_skips {
        policy.max_consecutive_skips = x;
    }
    if let Some(x) = input.allow_send_now {
        policy.allow_send_now = x;
    }
    if let Some(ids) = &input.switchable_plan_ids {
        let mut parsed = Vec::with_capacity(ids.len());
        for (i, raw) in ids.iter().enumerate() {
            match raw.parse::<PlanId>() {
                Ok(id) => parsed.push(id),
                Err(_) => v.fail(
                    format!("portal_policy.switchable_plan_ids[{i}]"),
                    "must be a plan id (plan_…)",
                ),
            }
        }
        policy.switchable_plan_ids = parsed;
    }
    v.check(policy.validate()).map(|()| policy)
}

/// Refuses every listed switchable plan that is not among `known`, the plans of the
/// product that the listed ids name: another merchant's plan, another product's, or a
/// typo would otherwise silently turn plan switching off.
fn refuse_unknown_switchable_plans(v: &mut Validator, policy: &PortalPolicy, known: &[PlanId]) {
    for (i, id) in policy.switchable_plan_ids.iter().enumerate() {
        if !known.contains(id) {
            v.fail(
                format!("portal_policy.switchable_plan_ids[{i}]"),
                "must be a plan of this product",
            );
        }
    }
}

/// Parses the products listed in `swappable_product_ids` for `product` (each a product
/// id, not `product` itself, none twice); that they exist is checked in the transaction
/// ([`refuse_unknown_products`]).
fn parse_swappable(v: &mut Validator, product: ProductId, raw: &[String]) -> Vec<ProductId> {
    let mut parsed = Vec::with_capacity(raw.len());
    for (i, id) in raw.iter().enumerate() {
        match id.parse::<ProductId>() {
            Ok(id) => parsed.push(id),
            Err(_) => v.fail(
                format!("swappable_product_ids[{i}]"),
                "must be a product id (prod_…)",
            ),
        }
    }
    v.check(catalog::validate_swappable_products(product, &parsed));
    parsed
}

/// Refuses every listed product the merchant does not have.
async fn refuse_unknown_products(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    listed: &[ProductId],
) -> AppResult<()> {
    if listed.is_empty() {
        return Ok(());
    }
    let known = repo::existing_products(conn, merchant, listed).await?;
    let mut v = Validator::default();
    for (i, id) in listed.iter().enumerate() {
        if !known.contains(id) {
            v.fail(format!("swappable_product_ids[{i}]"), "no such product");
        }
    }
    v.finish()
}

/// Checks a variant's fields (every invalid one reported).
fn parse_variant(v: &mut Validator, input: &VariantInput) -> Option<Variant> {
    v.check_all(Variant::new(
        &input.name,
        input.sku.as_deref(),
        &input.options.clone().unwrap_or_default(),
    ))
}

/// A SKU names one product's goods: refused when a plan of another product carries it.
/// The check holds the merchant's lock on the SKU until the caller's transaction (which
/// writes the plan) ends, so two plans of different products written at once with the
/// same SKU cannot both pass it.
async fn refuse_sku_of_another_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: &Plan,
) -> AppResult<()> {
    let Some(sku) = plan.variant.as_ref().and_then(|v| v.sku.as_deref()) else {
        return Ok(());
    };
    repo::lock_sku(conn, merchant, sku).await?;
    let products = repo::products_with_sku(conn, merchant, sku, plan.id).await?;
    if let Some(other) = products.iter().find(|p| **p != plan.product_id) {
        return Err(AppError::field(
            "variant.sku",
            format!("already names the goods of another product ({other})"),
        ));
    }
    Ok(())
}

pub async fn create_product(
    state: &App,
    merchant: MerchantId,
    input: CreateProduct,
) -> AppResult<Product> {
    let mut v = Validator::default();
    let name = v.check(text::clean("name", &input.name, NAME_MAX, false));
    let description = v.check(text::clean_opt(
        "description",
        input.description.as_deref(),
        DESCRIPTION_MAX,
        true,
    ));
    let policy = apply_policy(
        &mut v,
        PortalPolicy::default(),
        &input.portal_policy.unwrap_or_default(),
    );
    if let Some(policy) = &policy {
        // A new product has no plans yet: switchable plans are set once it has some.
        refuse_unknown_switchable_plans(&mut v, policy, &[]);
    }
    let limits = v.check(QuantityLimits::new(
        input.min_quantity.unwrap_or(1),
        input.max_quantity.unwrap_or(1),
    ));
    let id = ProductId::generate();
    let swappable = parse_swappable(
        &mut v,
        id,
        input.swappable_product_ids.as_deref().unwrap_or_default(),
    );
    v.finish()?;
    let now = state.now();
    let product = Product {
        id,
        name: checked(name)?,
        description: checked(description)?,
        portal_policy: checked(policy)?,
        shippable: input.shippable.unwrap_or(false),
        quantity_limits: checked(limits)?,
        swappable_product_ids: swappable,
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        refuse_unknown_products(conn, merchant, &product.swappable_product_ids).await?;
        repo::insert_product(conn, merchant, &product).await?;
        product_event(conn, merchant, "product.created", &product, None).await
    })
    .await?;
    Ok(product)
}

async fn product_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    product: &Product,
    before: Option<&Product>,
) -> AppResult<()> {
    let before = before.map(ProductDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "product",
            resource_id: product.id.to_string(),
            after: &ProductDto::from(product),
            before: before.as_ref(),
            at: product.updated_at,
        },
    )
    .await
}

pub async fn get_product(state: &App, merchant: MerchantId, id: ProductId) -> AppResult<Product> {
    let mut conn = state.db.conn().await?;
    repo::get_product(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("product"))
}

pub async fn list_products(
    state: &App,
    merchant: MerchantId,
    include_archived: bool,
    page: PageRequest,
) -> AppResult<Page<Product>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_products(&mut conn, merchant, include_archived, page).await?)
}

pub async fn update_product(
    state: &App,
    merchant: MerchantId,
    id: ProductId,
    input: UpdateProduct,
    if_match: Option<String>,
) -> AppResult<Product> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_product(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("product"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut v = Validator::default();
        let mut after = before.clone();
        if let Some(name) = &input.name {
            after.name = v
                .check(text::clean("name", name, NAME_MAX, false))
                .unwrap_or_default();
        }
        if let Some(description) = &input.description {
            after.description = v
                .check(text::clean_opt(
                    "description",
                    description.as_deref(),
                    DESCRIPTION_MAX,
                    true,
                ))
                .flatten();
        }
        if let Some(input) = &input.portal_policy
            && let Some(policy) = apply_policy(&mut v, after.portal_policy.clone(), input)
        {
            if input.switchable_plan_ids.is_some() {
                let listed = &policy.switchable_plan_ids;
                let known = repo::plans_of_product(conn, merchant, id, listed).await?;
                refuse_unknown_switchable_plans(&mut v, &policy, &known);
            }
            after.portal_policy = policy;
        }
        if let Some(shippable) = input.shippable {
            after.shippable = shippable;
        }
        if input.min_quantity.is_some() || input.max_quantity.is_some() {
            let current = after.quantity_limits;
            if let Some(limits) = v.check(QuantityLimits::new(
                input.min_quantity.unwrap_or(current.min()),
                input.max_quantity.unwrap_or(current.max()),
            )) {
                after.quantity_limits = limits;
            }
        }
        if let Some(raw) = &input.swappable_product_ids {
            after.swappable_product_ids = parse_swappable(&mut v, id, raw);
        }
        v.finish()?;
        if input.swappable_product_ids.is_some() {
            refuse_unknown_products(conn, merchant, &after.swappable_product_ids).await?;
        }
        if after == before {
            return Ok(after);
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_product(conn, merchant, &after).await?;
        product_event(conn, merchant, "product.updated", &after, Some(&before)).await?;
        Ok(after)
    })
    .await
    .inspect(|product| state.portal_terms.forget(merchant, product.id))
}

pub async fn archive_product(
    state: &App,
    merchant: MerchantId,
    id: ProductId,
    if_match: Option<String>,
) -> AppResult<Product> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_product(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("product"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        if before.archived_at.is_some() {
            return Ok(before);
        }
        let mut after = before.clone();
        after.archived_at = Some(now);
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_product(conn, merchant, &after).await?;
        product_event(conn, merchant, "product.archived", &after, Some(&before)).await?;
        Ok(after)
    })
    .await
    .inspect(|product| state.portal_terms.forget(merchant, product.id))
}

async fn plan_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    plan: &Plan,
    before: Option<&Plan>,
) -> AppResult<()> {
    let before = before.map(PlanDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "plan",
            resource_id: plan.id.to_string(),
            after: &PlanDto::from(plan),
            before: before.as_ref(),
            at: plan.updated_at,
        },
    )
    .await
}

pub async fn create_plan(state: &App, merchant: MerchantId, input: CreatePlan) -> AppResult<Plan> {
    let mut v = Validator::default();
    let product_id =
        parse_field_id::<tenure_domain::ids::ProductTag>(&input.product_id, "product_id");
    let product_id = match product_id {
        Ok(id) => Some(id),
        Err(_) => {
            v.fail("product_id", "must be a product id (prod_…)");
            None
        }
    };
    let name = v.check(text::clean("name", &input.name, NAME_MAX, false));
    let price = v.check(Money::price(input.price.amount, input.price.currency));
    let interval_count = input.interval_count.unwrap_or(1);
    let trial_days = input.trial_days.unwrap_or(0);
    v.check(catalog::validate_plan_terms(interval_count, trial_days));
    let variant = input.variant.as_ref().map(|i| parse_variant(&mut v, i));
    v.finish()?;
    let product_id = checked(product_id)?;
    let now = state.now();
    let plan = Plan {
        id: PlanId::generate(),
        product_id,
        name: checked(name)?,
        price: checked(price)?,
        interval: input.interval.into(),
        interval_count,
        trial_days,
        active: true,
        stock: Default::default(),
        variant: variant.map(checked).transpose()?,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let product = repo::get_product(conn, merchant, product_id, false)
            .await
            .map_err(|e| match e {
                tenure_store::StoreError::NotFound => {
                    AppError::field("product_id", "no such product")
                }
                other => other.into(),
            })?;
        if product.archived_at.is_some() {
            return Err(AppError::field("product_id", "the product is archived"));
        }
        refuse_sku_of_another_product(conn, merchant, &plan).await?;
        repo::insert_plan(conn, merchant, &plan).await?;
        plan_event(conn, merchant, "plan.created", &plan, None).await
    })
    .await?;
    state.portal_terms.forget(merchant, plan.product_id);
    Ok(plan)
}

pub async fn get_plan(state: &App, merchant: MerchantId, id: PlanId) -> AppResult<Plan> {
    let mut conn = state.db.conn().await?;
    repo::get_plan(&mut conn, merchant, id)
        .await
        .map_err(AppError::from_store("plan"))
}

pub async fn list_plans(
    state: &App,
    merchant: MerchantId,
    filter: repo::PlanFilter,
    page: PageRequest,
) -> AppResult<Page<Plan>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_plans(&mut conn, merchant, &filter, page).await?)
}

/// Changes a plan's name, trial or active flag. `archive` is `active: false`.
pub async fn update_plan(
    state: &App,
    merchant: MerchantId,
    id: PlanId,
    input: UpdatePlan,
    if_match: Option<String>,
) -> AppResult<Plan> {
    let mut v = Validator::default();
    let name = input
        .name
        .as_deref()
        .and_then(|n| v.check(text::clean("name", n, NAME_MAX, false)));
    if let Some(trial_days) = input.trial_days {
        v.check(catalog::validate_plan_terms(1, trial_days));
    }
    let variant = input
        .variant
        .as_ref()
        .map(|set| set.as_ref().map(|i| parse_variant(&mut v, i)));
    v.finish()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_plan(conn, merchant, id)
            .await
            .map_err(AppError::from_store("plan"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut after = before.clone();
        if let Some(name) = name {
            after.name = name;
        }
        if let Some(active) = input.active {
            after.active = active;
        }
        if let Some(trial_days) = input.trial_days {
            after.trial_days = trial_days;
        }
        if let Some(variant) = variant {
            after.variant = variant.map(checked).transpose()?;
            refuse_sku_of_another_product(conn, merchant, &after).await?;
        }
        if after == before {
            return Ok(after);
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_plan(conn, merchant, &after).await?;
        let event = if before.active && !after.active {
            "plan.archived"
        } else {
            "plan.updated"
        };
        plan_event(conn, merchant, event, &after, Some(&before)).await?;
        Ok(after)
    })
    .await
    .inspect(|plan| state.portal_terms.forget(merchant, plan.product_id))
}

/// Plans a customer may subscribe or switch to: active plans of active products.
pub async fn purchasable_plans(
    state: &App,
    merchant: MerchantId,
) -> AppResult<Vec<(Plan, Product)>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_purchasable_plans(&mut conn, merchant, None).await?)
}
