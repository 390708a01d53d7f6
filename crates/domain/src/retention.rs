//! Retention offers: what a merchant offers a customer who starts a cancellation, who is
//! eligible, and in which order offers are shown. Pure rules; unit-tested below.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::context::Segment;
use crate::money::Money;
use crate::subscription::cancellation::CancellationReason;

pub const MAX_OFFER_DAYS: u32 = 365;
pub const MAX_OFFER_CYCLES: u32 = 36;

/// What an accepted offer does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfferKind {
    /// `percent` off the next `cycles` invoices.
    DiscountPercent { percent: u32, cycles: u32 },
    /// A fixed `amount` off the next `cycles` invoices (same currency as the plan).
    DiscountAmount { amount: Money, cycles: u32 },
    /// Pause now for `days` instead of cancelling.
    PauseInstead { days: u32 },
    /// Switch to another plan (of the same product) instead of cancelling.
    SwitchPlan { plan_id: String },
    /// Extend a trial by `days`.
    ExtendTrial { days: u32 },
}

impl OfferKind {
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |reason: &str| Err(DomainError::validation("kind", reason.to_owned()));
        match self {
            Self::DiscountPercent { percent, cycles } => {
                if !(1..=100).contains(percent) {
                    return bad("percent must be 1..=100");
                }
                if !(1..=MAX_OFFER_CYCLES).contains(cycles) {
                    return bad("cycles must be 1..=36");
                }
            }
            Self::DiscountAmount { amount, cycles } => {
                if amount.amount <= 0 || amount.amount > crate::money::MAX_AMOUNT {
                    return bad("amount must be positive");
                }
                if !(1..=MAX_OFFER_CYCLES).contains(cycles) {
                    return bad("cycles must be 1..=36");
                }
            }
            Self::PauseInstead { days } | Self::ExtendTrial { days } => {
                if !(1..=MAX_OFFER_DAYS).contains(days) {
                    return bad("days must be 1..=365");
                }
            }
            Self::SwitchPlan { plan_id } => {
                if plan_id.parse::<crate::ids::PlanId>().is_err() {
                    return bad("plan_id must be a plan id (plan_…)");
                }
            }
        }
        Ok(())
    }

    /// The offer's value to the customer in minor units of the plan's currency, used to
    /// order offers of equal priority: a discount's total over its cycles, a pause or
    /// trial extension's days at the plan's monthly price (days × monthly / 30), a plan
    /// switch 0.
    pub fn value(&self, monthly_price: Option<Money>) -> i64 {
        let Some(price) = monthly_price else {
            return 0;
        };
        let p = i128::from(price.amount.max(0));
        let v: i128 = match self {
            Self::DiscountPercent { percent, cycles } => {
                p * i128::from(*percent) * i128::from(*cycles) / 100
            }
            Self::DiscountAmount { amount, cycles } if amount.currency == price.currency => {
                i128::from(amount.amount.min(price.amount)) * i128::from(*cycles)
            }
            Self::DiscountAmount { .. } | Self::SwitchPlan { .. } => 0,
            Self::PauseInstead { days } | Self::ExtendTrial { days } => p * i128::from(*days) / 30,
        };
        i64::try_from(v).unwrap_or(i64::MAX)
    }
}

/// An LTV range in one currency (inclusive bounds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LtvRange {
    pub currency: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// Who may see an offer. Every condition that is set must hold; an empty list or an
/// absent bound does not restrict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Eligibility {
    pub min_tenure_days: Option<i64>,
    pub max_tenure_days: Option<i64>,
    /// The customer's LTV in that currency (0 when none) lies in the range.
    pub ltv: Option<LtvRange>,
    /// The customer carries any of these tags.
    pub tags: Vec<String>,
    /// The customer is in any of these segments.
    pub segments: Vec<Segment>,
    /// The cancellation reason is one of these.
    pub reasons: Vec<CancellationReason>,
    /// The subscription's plan is one of these (plan ids).
    pub plan_ids: Vec<String>,
}

/// At most this many entries in each list of an eligibility rule.
pub const MAX_ELIGIBILITY_ENTRIES: usize = 50;
pub const MAX_OFFER_NAME_CHARS: usize = 200;

impl Eligibility {
    /// Checks the bounds and lists and normalises the tags (like customer tags), so that
    /// a rule compares exactly against what customers carry.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let bad = |field: &'static str, reason: &str| {
            Err(DomainError::validation(
                format!("eligibility.{field}"),
                reason.to_owned(),
            ))
        };
        for (field, v) in [
            ("min_tenure_days", self.min_tenure_days),
            ("max_tenure_days", self.max_tenure_days),
        ] {
            if v.is_some_and(|d| !(0..=36_500).contains(&d)) {
                return bad(field, "must be between 0 and 36500 days");
            }
        }
        if let (Some(min), Some(max)) = (self.min_tenure_days, self.max_tenure_days)
            && min > max
        {
            return bad("max_tenure_days", "must not be less than min_tenure_days");
        }
        if let Some(ltv) = &self.ltv {
            if ltv.currency.parse::<crate::money::Currency>().is_err() {
                return bad(
                    "ltv.currency",
                    "must be an upper-case ISO 4217 code such as EUR",
                );
            }
            for (field, v) in [("ltv.min", ltv.min), ("ltv.max", ltv.max)] {
                const LIMIT: i64 = crate::money::MAX_AMOUNT;
                // A range check, not `abs()`: `i64::MIN.abs()` overflows.
                if v.is_some_and(|a| !(-LIMIT..=LIMIT).contains(&a)) {
                    return bad(field, "is out of range");
                }
            }
            if let (Some(min), Some(max)) = (ltv.min, ltv.max)
                && min > max
            {
                return bad("ltv.max", "must not be less than ltv.min");
            }
        }
        let too_many = format!("must have at most {MAX_ELIGIBILITY_ENTRIES} entries");
        if self.tags.len() > MAX_ELIGIBILITY_ENTRIES {
            return bad("tags", &too_many);
        }
        self.tags = crate::customer::normalize_tags(&self.tags)
            .map_err(|e| DomainError::validation("eligibility.tags", e.to_string()))?;
        if self.segments.len() > MAX_ELIGIBILITY_ENTRIES
            || self.reasons.len() > MAX_ELIGIBILITY_ENTRIES
            || self.plan_ids.len() > MAX_ELIGIBILITY_ENTRIES
        {
            return bad("body", &too_many);
        }
        self.segments.sort();
        self.segments.dedup();
        self.reasons.sort_by_key(|r| r.as_str());
        self.reasons.dedup();
        for (i, plan) in self.plan_ids.iter().enumerate() {
            if plan.parse::<crate::ids::PlanId>().is_err() {
                return Err(DomainError::validation(
                    format!("eligibility.plan_ids[{i}]"),
                    "must be a plan id (plan_…)",
                ));
            }
        }
        self.plan_ids.sort();
        self.plan_ids.dedup();
        Ok(self)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionOffer {
    pub id: String,
    pub name: String,
    pub kind: OfferKind,
    pub eligibility: Eligibility,
    pub active: bool,
    pub priority: i32,
}

/// What eligibility is decided on.
#[derive(Clone, Debug, Default)]
pub struct CustomerFacts {
    pub tenure_days: i64,
    pub ltv: BTreeMap<String, i64>,
    pub tags: Vec<String>,
    pub segments: Vec<Segment>,
    pub reason: Option<CancellationReason>,
    pub plan_id: String,
    /// The subscription's plan price per month.
    pub monthly_price: Option<Money>,
    /// The subscription is trialing (only then can a trial be extended).
    pub trialing: bool,
}

pub fn is_eligible(offer: &RetentionOffer, c: &CustomerFacts) -> bool {
    let e = &offer.eligibility;
    if !offer.active {
        return false;
    }
    if e.min_tenure_days.is_some_and(|min| c.tenure_days < min)
        || e.max_tenure_days.is_some_and(|max| c.tenure_days > max)
    {
        return false;
    }
    if let Some(range) = &e.ltv {
        let ltv = c.ltv.get(&range.currency).copied().unwrap_or(0);
        if range.min.is_some_and(|min| ltv < min) || range.max.is_some_and(|max| ltv > max) {
            return false;
        }
    }
    if !e.tags.is_empty() && !e.tags.iter().any(|t| c.tags.contains(t)) {
        return false;
    }
    if !e.segments.is_empty() && !e.segments.iter().any(|s| c.segments.contains(s)) {
        return false;
    }
    if !e.reasons.is_empty() && !c.reason.is_some_and(|r| e.reasons.contains(&r)) {
        return false;
    }
    if !e.plan_ids.is_empty() && !e.plan_ids.contains(&c.plan_id) {
        return false;
    }
    match &offer.kind {
        OfferKind::ExtendTrial { .. } => c.trialing,
        OfferKind::SwitchPlan { plan_id } => *plan_id != c.plan_id,
        OfferKind::DiscountAmount { amount, .. } => c
            .monthly_price
            .is_some_and(|p| p.currency == amount.currency),
        _ => true,
    }
}

/// The offers a customer is eligible for, best first: higher priority first, then higher
/// value (see [`OfferKind::value`]), then by id for a stable order.
pub fn rank<'a>(offers: &'a [RetentionOffer], c: &CustomerFacts) -> Vec<&'a RetentionOffer> {
    let mut out: Vec<&RetentionOffer> = offers.iter().filter(|o| is_eligible(o, c)).collect();
    sort_best_first(&mut out, c.monthly_price);
    out
}

/// Orders offers best first (the order of [`rank`]) without judging eligibility, e.g.
/// to list again the offers presented earlier.
pub fn sort_best_first(offers: &mut [&RetentionOffer], monthly_price: Option<Money>) {
    offers.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| {
                b.kind
                    .value(monthly_price)
                    .cmp(&a.kind.value(monthly_price))
            })
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// What became of one presentation of an offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    /// Shown to the customer; no decision yet.
    Presented,
    Accepted,
    Declined,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Presented => "presented",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
        }
    }
}

impl std::str::FromStr for OutcomeStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Presented, Self::Accepted, Self::Declined]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation("outcome", "must be presented, accepted or declined")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR".parse::<Currency>().expect("EUR"))
    }

    fn offer(id: &str, priority: i32, kind: OfferKind, eligibility: Eligibility) -> RetentionOffer {
        RetentionOffer {
            id: id.into(),
            name: id.into(),
            kind,
            eligibility,
            active: true,
            priority,
        }
    }

    fn facts(
        tenure: i64,
        ltv_eur: i64,
        reason: CancellationReason,
        tags: &[&str],
    ) -> CustomerFacts {
        CustomerFacts {
            tenure_days: tenure,
            ltv: [("EUR".to_owned(), ltv_eur)].into_iter().collect(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            segments: vec![],
            reason: Some(reason),
            plan_id: "plan_a".into(),
            monthly_price: Some(eur(1000)),
            trialing: false,
        }
    }

    /// tenure × LTV × reason × tags against one offer with all four conditions.
    #[test]
    fn eligibility_table() {
        use CancellationReason::*;
        let o = offer(
            "o",
            0,
            OfferKind::DiscountPercent {
                percent: 20,
                cycles: 3,
            },
            Eligibility {
                min_tenure_days: Some(90),
                max_tenure_days: Some(730),
                ltv: Some(LtvRange {
                    currency: "EUR".into(),
                    min: Some(10_000),
                    max: None,
                }),
                tags: vec!["vip".into(), "beta".into()],
                reasons: vec![TooExpensive, Unused],
                ..Default::default()
            },
        );
        #[rustfmt::skip]
        let table: &[(i64, i64, CancellationReason, &[&str], bool)] = &[
            // tenure, ltv,   reason,          tags,             eligible
            (90,   10_000, TooExpensive,    &["vip"],          true),
            (730,  50_000, Unused,          &["beta", "x"],    true),
            (89,   10_000, TooExpensive,    &["vip"],          false), // too new
            (731,  10_000, TooExpensive,    &["vip"],          false), // too old
            (100,  9_999,  TooExpensive,    &["vip"],          false), // LTV too low
            (100,  10_000, SwitchedService, &["vip"],          false), // other reason
            (100,  10_000, TooExpensive,    &[],               false), // no tag
            (100,  10_000, TooExpensive,    &["other"],        false), // wrong tag
        ];
        for (tenure, ltv, reason, tags, expected) in table {
            let c = facts(*tenure, *ltv, *reason, tags);
            assert_eq!(
                is_eligible(&o, &c),
                *expected,
                "{tenure} {ltv} {reason:?} {tags:?}"
            );
        }
        // No LTV in the range's currency counts as 0.
        let mut c = facts(100, 10_000, TooExpensive, &["vip"]);
        c.ltv.clear();
        assert!(!is_eligible(&o, &c));
        // Inactive offers are never shown.
        let inactive = RetentionOffer {
            active: false,
            ..o.clone()
        };
        assert!(!is_eligible(
            &inactive,
            &facts(100, 10_000, TooExpensive, &["vip"])
        ));
    }

    #[test]
    fn kind_specific_rules() {
        let c = facts(10, 0, CancellationReason::Other, &[]);
        let trial = offer(
            "t",
            0,
            OfferKind::ExtendTrial { days: 7 },
            Eligibility::default(),
        );
        assert!(!is_eligible(&trial, &c));
        assert!(is_eligible(
            &trial,
            &CustomerFacts {
                trialing: true,
                ..c.clone()
            }
        ));
        let same = offer(
            "s",
            0,
            OfferKind::SwitchPlan {
                plan_id: "plan_a".into(),
            },
            Eligibility::default(),
        );
        assert!(!is_eligible(&same, &c));
        let usd = offer(
            "u",
            0,
            OfferKind::DiscountAmount {
                amount: Money::new(100, "USD".parse().expect("USD")),
                cycles: 1,
            },
            Eligibility::default(),
        );
        assert!(!is_eligible(&usd, &c));
    }

    #[test]
    fn ranking_by_priority_then_value() {
        let any = Eligibility::default();
        let offers = vec![
            offer(
                "a",
                0,
                OfferKind::DiscountPercent {
                    percent: 10,
                    cycles: 1,
                },
                any.clone(),
            ), // 100
            offer(
                "b",
                0,
                OfferKind::DiscountPercent {
                    percent: 50,
                    cycles: 3,
                },
                any.clone(),
            ), // 1500
            offer("c", 5, OfferKind::PauseInstead { days: 30 }, any.clone()), // 1000
            offer(
                "d",
                0,
                OfferKind::DiscountAmount {
                    amount: eur(300),
                    cycles: 2,
                },
                any.clone(),
            ), // 600
            offer(
                "e",
                9,
                OfferKind::PauseInstead { days: 30 },
                Eligibility {
                    tags: vec!["vip".into()],
                    ..any
                },
            ),
        ];
        let c = facts(10, 0, CancellationReason::TooExpensive, &[]);
        let ids: Vec<&str> = rank(&offers, &c).iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "d", "a"]);
    }

    #[test]
    fn eligibility_validates_and_normalises() {
        let e = Eligibility {
            min_tenure_days: Some(10),
            max_tenure_days: Some(5),
            ..Default::default()
        };
        assert!(e.validated().is_err());
        let e = Eligibility {
            ltv: Some(LtvRange {
                currency: "eur".into(),
                min: None,
                max: None,
            }),
            ..Default::default()
        };
        assert!(e.validated().is_err());
        let e = Eligibility {
            plan_ids: vec!["nope".into()],
            ..Default::default()
        };
        assert!(e.validated().is_err());
        // Extreme bounds are refused, never overflowed (found by Schemathesis).
        for (min, max) in [
            (Some(0), Some(i64::MIN)),
            (Some(i64::MIN), None),
            (None, Some(i64::MAX)),
        ] {
            let e = Eligibility {
                ltv: Some(LtvRange {
                    currency: "EUR".into(),
                    min,
                    max,
                }),
                ..Default::default()
            };
            assert!(e.validated().is_err(), "{min:?}..{max:?}");
        }
        let e = Eligibility {
            tags: vec![" VIP ".into(), "vip".into()],
            ..Default::default()
        }
        .validated()
        .expect("valid");
        assert_eq!(e.tags, ["vip"]);
    }

    #[test]
    fn kinds_validate() {
        assert!(
            OfferKind::DiscountPercent {
                percent: 0,
                cycles: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            OfferKind::DiscountPercent {
                percent: 101,
                cycles: 1
            }
            .validate()
            .is_err()
        );
        assert!(OfferKind::PauseInstead { days: 0 }.validate().is_err());
        assert!(
            OfferKind::SwitchPlan {
                plan_id: "nope".into()
            }
            .validate()
            .is_err()
        );
        assert!(
            OfferKind::DiscountAmount {
                amount: eur(500),
                cycles: 2
            }
            .validate()
            .is_ok()
        );
    }
}
