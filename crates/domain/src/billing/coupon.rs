//! Coupons and promotion codes: what a coupon grants (a [`DiscountValue`] for a
//! [`CouponDuration`]), what restricts it, and the one check that decides whether a
//! customer may redeem a code now ([`check_redemption`]).
//!
//! A coupon is the merchant's definition of a discount; a promotion code is a
//! customer-facing word for one coupon, with limits of its own. Redeeming a code grants
//! the subscription a discount (`subscription_discounts`) that refers to both; the invoice
//! arithmetic stays in [`crate::billing::discount`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::discount::{DiscountValue, MAX_CYCLES, validate_cycles};
use crate::money::Currency;

/// How many invoices a coupon's discount applies to. A cycle is an invoice (whatever the
/// plan's cadence), as for retention-offer discounts: a yearly plan's `repeating` coupon
/// of 3 cycles takes off three yearly invoices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "duration")]
pub enum CouponDuration {
    /// The first invoice only.
    Once,
    /// The next `cycles` invoices (1..=[`MAX_CYCLES`]).
    Repeating { cycles: u32 },
    /// Every invoice while the subscription lasts.
    Forever,
}

impl CouponDuration {
    /// The invoices the discount applies to; `None` for ever.
    pub fn cycles(self) -> Option<u32> {
        match self {
            CouponDuration::Once => Some(1),
            CouponDuration::Repeating { cycles } => Some(cycles),
            CouponDuration::Forever => None,
        }
    }

    pub fn validate(self) -> Result<(), DomainError> {
        match self {
            CouponDuration::Repeating { cycles } => validate_cycles(cycles).map_err(|_| {
                DomainError::validation(
                    "duration_in_cycles",
                    format!("must be between 1 and {MAX_CYCLES} for a repeating coupon"),
                )
            }),
            _ => Ok(()),
        }
    }
}

/// The most redemptions a coupon or code may be limited to.
pub const MAX_REDEMPTIONS: u32 = 1_000_000_000;
/// The most products or plans a coupon may be restricted to.
pub const MAX_APPLIES_TO: usize = 100;
/// The longest coupon name.
pub const MAX_COUPON_NAME_CHARS: usize = 200;
/// The longest promotion code.
pub const MAX_CODE_CHARS: usize = 64;

/// What a coupon grants and to whom; fixed once created (only its name and metadata
/// change), so every discount granted from it means the same thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CouponTerms {
    pub value: DiscountValue,
    pub duration: CouponDuration,
    /// Redemptions in all, over every code of the coupon; `None` is unlimited.
    pub max_redemptions: Option<u32>,
    /// No redemption at or after this instant.
    pub redeem_by: Option<DateTime<Utc>>,
    /// Products (`prod_…` as given) whose plans it applies to; with `plan_ids`, a plan
    /// qualifies when either list names it or its product. Both empty: every plan.
    pub product_ids: Vec<String>,
    pub plan_ids: Vec<String>,
    /// Only for a customer who never subscribed before.
    pub first_time_subscribers_only: bool,
}

/// Checks a limit of redemptions (at least one).
pub fn validate_max_redemptions(
    field: &'static str,
    value: Option<u32>,
) -> Result<(), DomainError> {
    match value {
        Some(n) if !(1..=MAX_REDEMPTIONS).contains(&n) => Err(DomainError::validation(
            field,
            format!("must be between 1 and {MAX_REDEMPTIONS}"),
        )),
        _ => Ok(()),
    }
}

impl CouponTerms {
    /// Checks the terms as a merchant creates them at `now`: every invalid field.
    pub fn validate(&self, now: DateTime<Utc>) -> Vec<DomainError> {
        let mut errors = Vec::new();
        if let Err(e) = self.value.validate() {
            errors.push(match e {
                DomainError::Validation { field, reason } if field == "percent" => {
                    DomainError::validation("percent_off", reason)
                }
                DomainError::Validation { field, reason } if field == "amount" => {
                    DomainError::validation("amount_off", reason)
                }
                other => other,
            });
        }
        if let Err(e) = self.duration.validate() {
            errors.push(e);
        }
        if let Err(e) = validate_max_redemptions("max_redemptions", self.max_redemptions) {
            errors.push(e);
        }
        if self.redeem_by.is_some_and(|t| t <= now) {
            errors.push(DomainError::validation(
                "redeem_by",
                "must be in the future",
            ));
        }
        if self.product_ids.len() > MAX_APPLIES_TO {
            errors.push(DomainError::validation(
                "applies_to.product_ids",
                format!("at most {MAX_APPLIES_TO}"),
            ));
        }
        if self.plan_ids.len() > MAX_APPLIES_TO {
            errors.push(DomainError::validation(
                "applies_to.plan_ids",
                format!("at most {MAX_APPLIES_TO}"),
            ));
        }
        errors
    }

    /// Whether a plan (of `product_id`) qualifies.
    pub fn applies_to(&self, plan_id: &str, product_id: &str) -> bool {
        (self.product_ids.is_empty() && self.plan_ids.is_empty())
            || self.product_ids.iter().any(|p| p == product_id)
            || self.plan_ids.iter().any(|p| p == plan_id)
    }
}

/// Normalises a promotion code as the customer typed it: trimmed, compared without case
/// (`summer20` is `SUMMER20`). Refuses what could never be a code: empty, longer than
/// [`MAX_CODE_CHARS`], or characters other than letters, digits, `-` and `_`.
pub fn normalize_code(field: &'static str, code: &str) -> Result<String, DomainError> {
    let trimmed = code.trim();
    if trimmed.is_empty() {
        return Err(DomainError::validation(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_CODE_CHARS {
        return Err(DomainError::validation(
            field,
            format!("must be at most {MAX_CODE_CHARS} characters"),
        ));
    }
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(DomainError::validation(
            field,
            "may hold only letters, digits, '-' and '_'",
        ));
    }
    Ok(trimmed.to_ascii_uppercase())
}

/// A promotion code's own limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeLimits {
    pub active: bool,
    pub max_redemptions: Option<u32>,
    /// Redemptions by one customer (Stripe's "once per customer" is 1).
    pub max_redemptions_per_customer: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub first_time_subscribers_only: bool,
}

/// What a redemption is checked against, read in the redeeming transaction with the
/// coupon and code rows locked (so the counts cannot move until it commits).
#[derive(Clone, Debug)]
pub struct RedemptionFacts<'a> {
    pub now: DateTime<Utc>,
    /// Whether the coupon was deleted (no new redemptions).
    pub coupon_deleted: bool,
    pub coupon_times_redeemed: u32,
    pub code_times_redeemed: u32,
    /// Redemptions of this code by this customer so far.
    pub customer_redemptions: u32,
    /// Whether the customer has (or had) a subscription besides the one the code is for.
    pub customer_subscribed_before: bool,
    pub plan_id: &'a str,
    pub product_id: &'a str,
    pub currency: Currency,
}

/// Why a code cannot be redeemed; each is a stable problem `code` (answered as 409).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRefusal {
    /// No such code, the code was deactivated, or its coupon deleted.
    Inactive,
    /// Past the code's `expires_at` or the coupon's `redeem_by`.
    Expired,
    /// The code's or the coupon's `max_redemptions` are used up.
    Exhausted,
    /// The customer used up their redemptions of this code.
    AlreadyRedeemed,
    /// The coupon is restricted to other products or plans.
    NotApplicable,
    /// Only for customers who never subscribed before.
    FirstTimeOnly,
    /// An `amount_off` coupon in another currency than the plan's.
    CurrencyMismatch,
}

impl CodeRefusal {
    pub fn code(self) -> &'static str {
        match self {
            CodeRefusal::Inactive => "promotion_code_invalid",
            CodeRefusal::Expired => "promotion_code_expired",
            CodeRefusal::Exhausted => "promotion_code_exhausted",
            CodeRefusal::AlreadyRedeemed => "promotion_code_already_redeemed",
            CodeRefusal::NotApplicable => "promotion_code_not_applicable",
            CodeRefusal::FirstTimeOnly => "promotion_code_first_time_only",
            CodeRefusal::CurrencyMismatch => "promotion_code_currency_mismatch",
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            CodeRefusal::Inactive => "this promotion code does not exist or is no longer active",
            CodeRefusal::Expired => "this promotion code has expired",
            CodeRefusal::Exhausted => "this promotion code has been used up",
            CodeRefusal::AlreadyRedeemed => "this customer already used this promotion code",
            CodeRefusal::NotApplicable => "this promotion code does not apply to this plan",
            CodeRefusal::FirstTimeOnly => "this promotion code is for first-time subscribers only",
            CodeRefusal::CurrencyMismatch => {
                "this promotion code takes off an amount in another currency than the plan's"
            }
        }
    }
}

impl From<CodeRefusal> for DomainError {
    fn from(r: CodeRefusal) -> Self {
        DomainError::Conflict {
            code: r.code(),
            detail: r.detail().into(),
        }
    }
}

/// Whether the code (of the coupon) may be redeemed for the plan in `facts`. The first
/// refusal in this order wins: inactive, expired, exhausted, already redeemed by the
/// customer, first-time only, not for this plan, another currency.
pub fn check_redemption(
    coupon: &CouponTerms,
    code: &CodeLimits,
    facts: &RedemptionFacts<'_>,
) -> Result<(), CodeRefusal> {
    if !code.active || facts.coupon_deleted {
        return Err(CodeRefusal::Inactive);
    }
    let past = |t: Option<DateTime<Utc>>| t.is_some_and(|t| facts.now >= t);
    if past(code.expires_at) || past(coupon.redeem_by) {
        return Err(CodeRefusal::Expired);
    }
    let used_up = |max: Option<u32>, used: u32| max.is_some_and(|m| used >= m);
    if used_up(code.max_redemptions, facts.code_times_redeemed)
        || used_up(coupon.max_redemptions, facts.coupon_times_redeemed)
    {
        return Err(CodeRefusal::Exhausted);
    }
    if used_up(
        code.max_redemptions_per_customer,
        facts.customer_redemptions,
    ) {
        return Err(CodeRefusal::AlreadyRedeemed);
    }
    if (code.first_time_subscribers_only || coupon.first_time_subscribers_only)
        && facts.customer_subscribed_before
    {
        return Err(CodeRefusal::FirstTimeOnly);
    }
    if !coupon.applies_to(facts.plan_id, facts.product_id) {
        return Err(CodeRefusal::NotApplicable);
    }
    if let DiscountValue::Amount(m) = coupon.value
        && m.currency != facts.currency
    {
        return Err(CodeRefusal::CurrencyMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::money::Money;

    fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn coupon() -> CouponTerms {
        CouponTerms {
            value: DiscountValue::Percent(20),
            duration: CouponDuration::Once,
            max_redemptions: None,
            redeem_by: None,
            product_ids: vec![],
            plan_ids: vec![],
            first_time_subscribers_only: false,
        }
    }

    fn code() -> CodeLimits {
        CodeLimits {
            active: true,
            max_redemptions: None,
            max_redemptions_per_customer: None,
            expires_at: None,
            first_time_subscribers_only: false,
        }
    }

    fn facts() -> RedemptionFacts<'static> {
        RedemptionFacts {
            now: t(10),
            coupon_deleted: false,
            coupon_times_redeemed: 0,
            code_times_redeemed: 0,
            customer_redemptions: 0,
            customer_subscribed_before: false,
            plan_id: "plan_a",
            product_id: "prod_a",
            currency: eur(),
        }
    }

    #[test]
    fn a_plain_code_is_redeemable() {
        assert_eq!(check_redemption(&coupon(), &code(), &facts()), Ok(()));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let inactive = CodeLimits {
            active: false,
            ..code()
        };
        assert_eq!(
            check_redemption(&coupon(), &inactive, &facts()),
            Err(CodeRefusal::Inactive)
        );
        let deleted = RedemptionFacts {
            coupon_deleted: true,
            ..facts()
        };
        assert_eq!(
            check_redemption(&coupon(), &code(), &deleted),
            Err(CodeRefusal::Inactive)
        );
        let expired = CodeLimits {
            expires_at: Some(t(10)),
            ..code()
        };
        assert_eq!(
            check_redemption(&coupon(), &expired, &facts()),
            Err(CodeRefusal::Expired)
        );
        let past_redeem_by = CouponTerms {
            redeem_by: Some(t(9)),
            ..coupon()
        };
        assert_eq!(
            check_redemption(&past_redeem_by, &code(), &facts()),
            Err(CodeRefusal::Expired)
        );
        let limited = CouponTerms {
            max_redemptions: Some(2),
            ..coupon()
        };
        let two = RedemptionFacts {
            coupon_times_redeemed: 2,
            ..facts()
        };
        assert_eq!(
            check_redemption(&limited, &code(), &two),
            Err(CodeRefusal::Exhausted)
        );
        let once_each = CodeLimits {
            max_redemptions_per_customer: Some(1),
            ..code()
        };
        let used = RedemptionFacts {
            customer_redemptions: 1,
            ..facts()
        };
        assert_eq!(
            check_redemption(&coupon(), &once_each, &used),
            Err(CodeRefusal::AlreadyRedeemed)
        );
        let first_time = CodeLimits {
            first_time_subscribers_only: true,
            ..code()
        };
        let returning = RedemptionFacts {
            customer_subscribed_before: true,
            ..facts()
        };
        assert_eq!(
            check_redemption(&coupon(), &first_time, &returning),
            Err(CodeRefusal::FirstTimeOnly)
        );
        let other_product = CouponTerms {
            product_ids: vec!["prod_b".into()],
            ..coupon()
        };
        assert_eq!(
            check_redemption(&other_product, &code(), &facts()),
            Err(CodeRefusal::NotApplicable)
        );
        let usd = CouponTerms {
            value: DiscountValue::Amount(Money::new(500, "USD".parse().unwrap())),
            ..coupon()
        };
        assert_eq!(
            check_redemption(&usd, &code(), &facts()),
            Err(CodeRefusal::CurrencyMismatch)
        );
    }

    #[test]
    fn restrictions_are_a_union_of_products_and_plans() {
        let c = CouponTerms {
            product_ids: vec!["prod_b".into()],
            plan_ids: vec!["plan_a".into()],
            ..coupon()
        };
        assert!(c.applies_to("plan_a", "prod_a"));
        assert!(c.applies_to("plan_x", "prod_b"));
        assert!(!c.applies_to("plan_x", "prod_a"));
    }

    #[test]
    fn codes_are_normalised_without_case() {
        assert_eq!(normalize_code("code", " summer-20 ").unwrap(), "SUMMER-20");
        assert!(normalize_code("code", "").is_err());
        assert!(normalize_code("code", "a b").is_err());
        assert!(normalize_code("code", &"x".repeat(MAX_CODE_CHARS + 1)).is_err());
    }

    #[test]
    fn terms_are_validated() {
        let bad = CouponTerms {
            value: DiscountValue::Percent(0),
            duration: CouponDuration::Repeating { cycles: 0 },
            max_redemptions: Some(0),
            redeem_by: Some(t(9)),
            ..coupon()
        };
        let fields: Vec<String> = bad
            .validate(t(10))
            .into_iter()
            .map(|e| match e {
                DomainError::Validation { field, .. } => field.into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            fields,
            vec![
                "percent_off",
                "duration_in_cycles",
                "max_redemptions",
                "redeem_by"
            ]
        );
        assert!(coupon().validate(t(10)).is_empty());
        assert_eq!(CouponDuration::Forever.cycles(), None);
        assert_eq!(CouponDuration::Once.cycles(), Some(1));
    }

    proptest! {
        #[test]
        fn a_limit_of_n_admits_exactly_n(max in 1u32..50, used in 0u32..60) {
            let c = CouponTerms { max_redemptions: Some(max), ..coupon() };
            let f = RedemptionFacts { coupon_times_redeemed: used, ..facts() };
            prop_assert_eq!(check_redemption(&c, &code(), &f).is_ok(), used < max);
        }
    }
}
