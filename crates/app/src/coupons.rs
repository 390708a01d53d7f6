//! Coupons and promotion codes: the merchant's CRUD, and redeeming a code for a
//! subscription (at subscribe or at a plan change), which grants it a discount.
//!
//! A redemption runs in the caller's transaction and locks the code's row, then the
//! coupon's, before it reads any count (`tenure_store::repo::coupons`): two customers
//! racing for the last redemption are serialised there, and the second sees it gone.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::coupon::{
    self as rules, CodeLimits, CouponDuration, CouponTerms, MAX_COUPON_NAME_CHARS, RedemptionFacts,
};
use tenure_domain::billing::discount::DiscountValue;
use tenure_domain::catalog::Plan;
use tenure_domain::customer::validate_metadata;
use tenure_domain::ids::{
    CouponId, CustomerId, GenerateId, MerchantId, PlanId, ProductId, PromotionCodeId,
    SubscriptionId,
};
use tenure_domain::money::{Currency, Money};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::coupons::{self as repo, StoredCoupon, StoredPromotionCode};
use tenure_store::repo::discounts::{self as discounts_repo, Grant, StoredDiscount};
use tenure_store::{Page, PageRequest, StoreError};

use crate::App;
use crate::dto::coupons::{
    CouponDto, CouponDurationDto, CreateCoupon, CreatePromotionCode, PromotionCodeDto,
    UpdateCoupon, UpdatePromotionCode,
};
use crate::dto::retention::DiscountDto;
use crate::error::{AppError, AppResult, Validator, checked};
use crate::events::{EventBatch, EventDraft, record_event};

// ---------------------------------------------------------------------------------------
// Coupons

async fn coupon_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &StoredCoupon,
    before: Option<&StoredCoupon>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let after_dto = CouponDto::render(after, now);
    let before_dto = before.map(|b| CouponDto::render(b, now));
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "coupon",
            resource_id: after.id.to_string(),
            after: &after_dto,
            before: before_dto.as_ref(),
            at: after.updated_at,
        },
    )
    .await
}

/// The terms of a new coupon, every invalid field at once.
fn coupon_terms(body: &CreateCoupon, now: DateTime<Utc>) -> AppResult<(String, CouponTerms)> {
    let mut v = Validator::default();
    let value = match (body.percent_off, body.amount_off, body.currency.as_deref()) {
        (Some(p), None, None) => Some(DiscountValue::Percent(p)),
        (None, Some(a), Some(c)) => match c.parse::<Currency>() {
            Ok(cur) => Some(DiscountValue::Amount(Money::new(a, cur))),
            Err(_) => {
                v.fail("currency", "must be an ISO 4217 currency code");
                None
            }
        },
        (None, Some(_), None) => {
            v.fail("currency", "is required with amount_off");
            None
        }
        (Some(_), _, _) if body.amount_off.is_some() => {
            v.fail("percent_off", "give percent_off or amount_off, not both");
            None
        }
        (Some(_), None, Some(_)) => {
            v.fail("currency", "goes with amount_off only");
            None
        }
        _ => {
            v.fail("percent_off", "give percent_off or amount_off");
            None
        }
    };
    let duration = match (body.duration, body.duration_in_cycles) {
        (CouponDurationDto::Once, None) => Some(CouponDuration::Once),
        (CouponDurationDto::Forever, None) => Some(CouponDuration::Forever),
        (CouponDurationDto::Repeating, Some(cycles)) => Some(CouponDuration::Repeating { cycles }),
        (CouponDurationDto::Repeating, None) => {
            v.fail("duration_in_cycles", "is required for a repeating coupon");
            None
        }
        (_, Some(_)) => {
            v.fail("duration_in_cycles", "goes with a repeating coupon only");
            None
        }
    };
    let name = match &body.name {
        Some(n) => v.check(text::clean("name", n, MAX_COUPON_NAME_CHARS, false)),
        None => value.map(|v| v.label()),
    };
    if let Some(metadata) = &body.metadata {
        v.check(validate_metadata(metadata));
    }
    let applies_to = body.applies_to.clone().unwrap_or_default();
    for (i, p) in applies_to.product_ids.iter().enumerate() {
        if p.parse::<ProductId>().is_err() {
            v.fail(
                format!("applies_to.product_ids[{i}]"),
                "must be an id starting with prod_",
            );
        }
    }
    for (i, p) in applies_to.plan_ids.iter().enumerate() {
        if p.parse::<PlanId>().is_err() {
            v.fail(
                format!("applies_to.plan_ids[{i}]"),
                "must be an id starting with plan_",
            );
        }
    }
    // A missing value or duration (already reported) stands in as a valid one, so that
    // the other fields are still checked and every invalid one reported at once.
    let complete = value.is_some() && duration.is_some();
    let terms = CouponTerms {
        value: value.unwrap_or(DiscountValue::Percent(1)),
        duration: duration.unwrap_or(CouponDuration::Once),
        max_redemptions: body.max_redemptions,
        redeem_by: body.redeem_by,
        product_ids: applies_to.product_ids,
        plan_ids: applies_to.plan_ids,
        first_time_subscribers_only: body.first_time_subscribers_only.unwrap_or(false),
    };
    for e in terms.validate(now) {
        v.check::<()>(Err(e));
    }
    v.finish()?;
    if !complete {
        return Err(AppError::internal("coupon value or duration missing"));
    }
    Ok((checked(name)?, terms))
}

pub async fn create_coupon(
    state: &App,
    merchant: MerchantId,
    body: CreateCoupon,
) -> AppResult<CouponDto> {
    let now = state.now_micros();
    let (name, terms) = coupon_terms(&body, now)?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let coupon = StoredCoupon {
            id: CouponId::generate(),
            name,
            terms,
            times_redeemed: 0,
            internal: false,
            metadata: body.metadata.clone().unwrap_or_default(),
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        repo::insert_coupon(conn, merchant, &coupon).await?;
        coupon_event(conn, merchant, "coupon.created", &coupon, None, now).await?;
        Ok(CouponDto::render(&coupon, now))
    })
    .await
}

pub async fn get_coupon(state: &App, merchant: MerchantId, id: CouponId) -> AppResult<CouponDto> {
    let mut conn = state.db.conn().await?;
    let coupon = repo::get_coupon(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("coupon"))?;
    Ok(CouponDto::render(&coupon, state.now_micros()))
}

pub async fn list_coupons(
    state: &App,
    merchant: MerchantId,
    include_deleted: bool,
    page: PageRequest,
) -> AppResult<Page<CouponDto>> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    let page = repo::list_coupons(&mut conn, merchant, include_deleted, page).await?;
    Ok(Page {
        items: page
            .items
            .iter()
            .map(|c| CouponDto::render(c, now))
            .collect(),
        has_more: page.has_more,
    })
}

/// Renames a coupon or replaces its metadata; what it grants never changes.
pub async fn update_coupon(
    state: &App,
    merchant: MerchantId,
    id: CouponId,
    body: UpdateCoupon,
) -> AppResult<CouponDto> {
    let now = state.now_micros();
    let mut v = Validator::default();
    let name = body
        .name
        .as_deref()
        .map(|n| v.check(text::clean("name", n, MAX_COUPON_NAME_CHARS, false)));
    if let Some(metadata) = &body.metadata {
        v.check(validate_metadata(metadata));
    }
    v.finish()?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_coupon(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("coupon"))?;
        let mut after = before.clone();
        if let Some(name) = name {
            after.name = checked(name)?;
        }
        if let Some(metadata) = &body.metadata {
            after.metadata = metadata.clone();
        }
        if after == before {
            return Ok(CouponDto::render(&after, now));
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_coupon(conn, merchant, &after).await?;
        coupon_event(conn, merchant, "coupon.updated", &after, Some(&before), now).await?;
        Ok(CouponDto::render(&after, now))
    })
    .await
}

/// Deletes a coupon: none of its codes can be redeemed any more; the discounts it granted
/// carry on. The coupon stays readable (`deleted: true`). Deleting twice changes nothing.
pub async fn delete_coupon(
    state: &App,
    merchant: MerchantId,
    id: CouponId,
) -> AppResult<CouponDto> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_coupon(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("coupon"))?;
        if before.deleted_at.is_some() {
            return Ok(CouponDto::render(&before, now));
        }
        let updated_at = next_update_time(before.updated_at, now);
        let after = StoredCoupon {
            deleted_at: Some(updated_at),
            updated_at,
            ..before.clone()
        };
        repo::update_coupon(conn, merchant, &after).await?;
        coupon_event(conn, merchant, "coupon.deleted", &after, Some(&before), now).await?;
        Ok(CouponDto::render(&after, now))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Promotion codes

fn code_taken(err: StoreError) -> AppError {
    match err {
        StoreError::Conflict { constraint } if constraint == repo::ACTIVE_CODE_UNIQUE => {
            AppError::conflict(
                "promotion_code_taken",
                "another active promotion code of this merchant has the same code",
            )
        }
        other => other.into(),
    }
}

async fn code_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &StoredPromotionCode,
    before: Option<&StoredPromotionCode>,
    coupon: &StoredCoupon,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let after_dto = PromotionCodeDto::render(after, coupon, now);
    let before_dto = before.map(|b| PromotionCodeDto::render(b, coupon, now));
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "promotion_code",
            resource_id: after.id.to_string(),
            after: &after_dto,
            before: before_dto.as_ref(),
            at: after.updated_at,
        },
    )
    .await
}

pub async fn create_code(
    state: &App,
    merchant: MerchantId,
    body: CreatePromotionCode,
) -> AppResult<PromotionCodeDto> {
    let now = state.now_micros();
    let mut v = Validator::default();
    let coupon_id = match body.coupon_id.parse::<CouponId>() {
        Ok(id) => Some(id),
        Err(_) => {
            v.fail("coupon_id", "must be an id starting with coupon_");
            None
        }
    };
    let normalized = v.check(rules::normalize_code("code", &body.code));
    v.check(rules::validate_max_redemptions(
        "max_redemptions",
        body.max_redemptions,
    ));
    v.check(rules::validate_max_redemptions(
        "max_redemptions_per_customer",
        body.max_redemptions_per_customer,
    ));
    if body.expires_at.is_some_and(|t| t <= now) {
        v.fail("expires_at", "must be in the future");
    }
    if let Some(metadata) = &body.metadata {
        v.check(validate_metadata(metadata));
    }
    v.finish()?;
    let (coupon_id, normalized) = (checked(coupon_id)?, checked(normalized)?);
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let coupon = match repo::get_coupon(conn, merchant, coupon_id, false).await {
            Ok(c) if !c.internal => c,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(AppError::field("coupon_id", "no such coupon"));
            }
            Err(other) => return Err(other.into()),
        };
        if coupon.deleted_at.is_some() {
            return Err(AppError::field("coupon_id", "the coupon is deleted"));
        }
        let code = StoredPromotionCode {
            id: PromotionCodeId::generate(),
            coupon_id,
            code: body.code.trim().to_owned(),
            normalized_code: normalized,
            limits: CodeLimits {
                active: body.active.unwrap_or(true),
                max_redemptions: body.max_redemptions,
                max_redemptions_per_customer: body.max_redemptions_per_customer,
                expires_at: body.expires_at,
                first_time_subscribers_only: body.first_time_subscribers_only.unwrap_or(false),
            },
            times_redeemed: 0,
            metadata: body.metadata.clone().unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        repo::insert_code(conn, merchant, &code)
            .await
            .map_err(code_taken)?;
        code_event(
            conn,
            merchant,
            "promotion_code.created",
            &code,
            None,
            &coupon,
            now,
        )
        .await?;
        Ok(PromotionCodeDto::render(&code, &coupon, now))
    })
    .await
}

pub async fn get_code(
    state: &App,
    merchant: MerchantId,
    id: PromotionCodeId,
) -> AppResult<PromotionCodeDto> {
    let mut conn = state.db.conn().await?;
    let code = repo::get_code(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("promotion_code"))?;
    let coupon = repo::get_coupon(&mut conn, merchant, code.coupon_id, false).await?;
    Ok(PromotionCodeDto::render(&code, &coupon, state.now_micros()))
}

pub async fn list_codes(
    state: &App,
    merchant: MerchantId,
    coupon: Option<CouponId>,
    code: Option<&str>,
    page: PageRequest,
) -> AppResult<Page<PromotionCodeDto>> {
    let now = state.now_micros();
    let normalized = code.map(|c| c.trim().to_ascii_uppercase());
    let mut conn = state.db.conn().await?;
    let page = repo::list_codes(&mut conn, merchant, coupon, normalized.as_deref(), page).await?;
    let mut ids: Vec<uuid::Uuid> = page.items.iter().map(|c| c.coupon_id.uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let coupons = repo::coupons_by_ids(&mut conn, merchant, &ids).await?;
    let items = page
        .items
        .iter()
        .map(|c| {
            let coupon = coupons
                .iter()
                .find(|k| k.id == c.coupon_id)
                .ok_or_else(|| AppError::internal("coupon of a code missing"))?;
            Ok(PromotionCodeDto::render(c, coupon, now))
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Page {
        items,
        has_more: page.has_more,
    })
}

/// Activates or deactivates a code, or replaces its metadata.
pub async fn update_code(
    state: &App,
    merchant: MerchantId,
    id: PromotionCodeId,
    body: UpdatePromotionCode,
) -> AppResult<PromotionCodeDto> {
    let now = state.now_micros();
    if let Some(metadata) = &body.metadata {
        let mut v = Validator::default();
        v.check(validate_metadata(metadata));
        v.finish()?;
    }
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_code(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("promotion_code"))?;
        let coupon = repo::get_coupon(conn, merchant, before.coupon_id, false).await?;
        let mut after = before.clone();
        if let Some(active) = body.active {
            after.limits.active = active;
        }
        if let Some(metadata) = &body.metadata {
            after.metadata = metadata.clone();
        }
        if after == before {
            return Ok(PromotionCodeDto::render(&after, &coupon, now));
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_code(conn, merchant, &after)
            .await
            .map_err(code_taken)?;
        code_event(
            conn,
            merchant,
            "promotion_code.updated",
            &after,
            Some(&before),
            &coupon,
            now,
        )
        .await?;
        Ok(PromotionCodeDto::render(&after, &coupon, now))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Redemption

/// A code that may be redeemed, with its coupon.
#[derive(Clone, Debug)]
pub struct Redeemable {
    pub code: StoredPromotionCode,
    pub coupon: StoredCoupon,
}

impl Redeemable {
    /// How the discount's invoice line reads: `Summer sale (SUMMER20)`.
    pub fn description(&self) -> String {
        format!("{} ({})", self.coupon.name, self.code.code)
    }
}

/// Who redeems a code, and for what.
#[derive(Clone, Copy, Debug)]
pub struct RedemptionFor<'a> {
    pub customer: CustomerId,
    /// The subscription the code is for, once it exists (a plan change); a new
    /// subscription's customer must have none at all to count as first-time.
    pub subscription: Option<SubscriptionId>,
    pub plan: &'a Plan,
}

/// Checks that `raw` names a code the customer may redeem for the plan now (409 with the
/// refusal's code otherwise; 422 on `promotion_code` for what could never be a code). With
/// `lock`, the code's and the coupon's rows stay locked to the end of the transaction.
pub async fn check_code(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    raw: &str,
    who: RedemptionFor<'_>,
    lock: bool,
    now: DateTime<Utc>,
) -> AppResult<Redeemable> {
    let normalized = rules::normalize_code("promotion_code", raw)?;
    let refused = |r: rules::CodeRefusal| AppError::conflict(r.code(), r.detail());
    let code = repo::find_active_code(conn, merchant, &normalized, lock)
        .await?
        .ok_or_else(|| refused(rules::CodeRefusal::Inactive))?;
    let coupon = repo::get_coupon(conn, merchant, code.coupon_id, lock).await?;
    let customer_redemptions =
        repo::customer_redemptions(conn, merchant, code.id, who.customer).await?;
    let subscribed_before =
        repo::subscribed_before(conn, merchant, who.customer, who.subscription).await?;
    let subscription_has_coupon = match who.subscription {
        Some(subscription) => discounts_repo::active_for_subscription(conn, merchant, subscription)
            .await?
            .iter()
            .any(|d| d.coupon_id == coupon.id),
        None => false,
    };
    let plan_id = who.plan.id.to_string();
    let product_id = who.plan.product_id.to_string();
    let facts = RedemptionFacts {
        now,
        coupon_deleted: coupon.deleted_at.is_some(),
        coupon_times_redeemed: coupon.times_redeemed,
        code_times_redeemed: code.times_redeemed,
        customer_redemptions,
        customer_subscribed_before: subscribed_before,
        subscription_has_coupon,
        plan_id: &plan_id,
        product_id: &product_id,
        currency: who.plan.price.currency,
    };
    rules::check_redemption(&coupon.terms, &code.limits, &facts).map_err(refused)?;
    Ok(Redeemable { code, coupon })
}

/// Redeems a code for an existing subscription in the caller's transaction: checks it
/// (rows locked), counts the redemption and grants the discount. The invoices created
/// after it in the transaction (a new subscription's first one) apply it. The caller
/// records `subscription.discount_applied` ([`discount_applied`]) after the change's own
/// events.
pub async fn redeem_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    raw: &str,
    who: RedemptionFor<'_>,
    subscription: SubscriptionId,
    now: DateTime<Utc>,
) -> AppResult<StoredDiscount> {
    let redeemable = check_code(conn, merchant, raw, who, true, now).await?;
    repo::count_redemption(
        conn,
        merchant,
        redeemable.coupon.id,
        Some(redeemable.code.id),
        now,
    )
    .await?;
    Ok(discounts_repo::grant_from_coupon(
        conn,
        merchant,
        Grant {
            subscription_id: subscription,
            customer_id: who.customer,
            offer_id: None,
            coupon: &redeemable.coupon,
            promotion_code_id: Some(redeemable.code.id),
            description: Some(redeemable.description()),
        },
        now,
    )
    .await?)
}

/// Adds `subscription.discount_applied` for a discount just granted to `batch`.
pub fn discount_applied(batch: &mut EventBatch, discount: &StoredDiscount) -> AppResult<()> {
    let dto = DiscountDto::from(discount);
    batch.add(EventDraft {
        event_type: "subscription.discount_applied",
        resource_type: "subscription",
        resource_id: discount.subscription_id.to_string(),
        after: &dto,
        before: None,
        at: discount.created_at,
    })
}

/// Records `subscription.discount_applied` for a discount just granted.
pub async fn discount_applied_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    discount: &StoredDiscount,
) -> AppResult<()> {
    let mut batch = EventBatch::default();
    discount_applied(&mut batch, discount)?;
    batch.record(conn, merchant).await
}

/// What redeeming `redeemable` would take off an invoice whose plan and proration lines
/// sum to `subtotal`, after the subscription's `existing` discounts (oldest first), by the
/// domain's one rule (`tenure_domain::billing::discount::apply_discounts`).
pub fn preview_discount(
    redeemable: &Redeemable,
    subtotal: Money,
    existing: &[StoredDiscount],
    now: DateTime<Utc>,
) -> AppResult<crate::dto::coupons::DiscountPreviewDto> {
    let values: Vec<DiscountValue> = existing
        .iter()
        .map(|d| d.value)
        .chain(std::iter::once(redeemable.coupon.terms.value))
        .collect();
    let outcomes = tenure_domain::billing::discount::apply_discounts(subtotal, &values)?;
    let taken = |o: &tenure_domain::billing::discount::DiscountOutcome| match o {
        tenure_domain::billing::discount::DiscountOutcome::Applied { taken } => taken.amount,
        tenure_domain::billing::discount::DiscountOutcome::SkippedCurrency => 0,
    };
    let all: i64 = outcomes.iter().map(taken).sum();
    let added = outcomes.last().map_or(0, taken);
    let currency = subtotal.currency;
    Ok(crate::dto::coupons::DiscountPreviewDto {
        promotion_code: redeemable.code.code.clone(),
        coupon: CouponDto::render(&redeemable.coupon, now).into(),
        subtotal: subtotal.into(),
        amount_off: Money::new(added, currency).into(),
        total: Money::new(subtotal.amount - all, currency).into(),
    })
}
