//! Products and plans: what a merchant sells, at what price and on which cadence.

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::billing::period::Interval;
use crate::ids::{PlanId, ProductId};
use crate::money::Money;
use crate::policy::PortalPolicy;

/// The largest `interval_count`: five years of months is already more than any real plan.
pub const MAX_INTERVAL_COUNT: u32 = 60;
pub const MAX_TRIAL_DAYS: u32 = 730;
/// The most units of a product one subscription may hold.
pub const MAX_QUANTITY: u32 = 10_000;

/// How many units of a product one subscription may hold: `1 ≤ min ≤ max ≤ MAX_QUANTITY`
/// (the constructor refuses anything else). The default, `1..=1`, is a product sold one
/// at a time, as every product was before quantities existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantityLimits {
    min: u32,
    max: u32,
}

impl Default for QuantityLimits {
    fn default() -> Self {
        Self { min: 1, max: 1 }
    }
}

impl QuantityLimits {
    pub fn new(min: u32, max: u32) -> Result<Self, DomainError> {
        if !(1..=MAX_QUANTITY).contains(&min) {
            return Err(DomainError::validation(
                "min_quantity",
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        if !(min..=MAX_QUANTITY).contains(&max) {
            return Err(DomainError::validation(
                "max_quantity",
                format!("must be between min_quantity and {MAX_QUANTITY}"),
            ));
        }
        Ok(Self { min, max })
    }

    pub fn min(self) -> u32 {
        self.min
    }

    pub fn max(self) -> u32 {
        self.max
    }

    /// Whether the quantity can be anything but its one allowed value.
    pub fn is_adjustable(self) -> bool {
        self.max > self.min
    }

    /// Refuses a quantity outside the limits (422 on `quantity`).
    pub fn check(self, quantity: u32) -> Result<(), DomainError> {
        if (self.min..=self.max).contains(&quantity) {
            Ok(())
        } else {
            Err(DomainError::validation(
                "quantity",
                format!(
                    "must be between {} and {} for this product",
                    self.min, self.max
                ),
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: Option<String>,
    pub portal_policy: PortalPolicy,
    /// Fulfilled physically: each paid period ships.
    pub shippable: bool,
    pub quantity_limits: QuantityLimits,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub id: PlanId,
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub interval: Interval,
    pub interval_count: u32,
    pub trial_days: u32,
    pub active: bool,
    /// Whether it can ship (changed only through a stock change, which notifies).
    pub stock: crate::stock::Stock,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Checks a plan's billing cadence and trial.
pub fn validate_plan_terms(interval_count: u32, trial_days: u32) -> Result<(), DomainError> {
    if !(1..=MAX_INTERVAL_COUNT).contains(&interval_count) {
        return Err(DomainError::validation(
            "interval_count",
            format!("must be between 1 and {MAX_INTERVAL_COUNT}"),
        ));
    }
    if trial_days > MAX_TRIAL_DAYS {
        return Err(DomainError::validation(
            "trial_days",
            format!("must be at most {MAX_TRIAL_DAYS}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_terms_are_bounded() {
        assert!(validate_plan_terms(1, 0).is_ok());
        assert!(validate_plan_terms(0, 0).is_err());
        assert!(validate_plan_terms(MAX_INTERVAL_COUNT + 1, 0).is_err());
        assert!(validate_plan_terms(1, MAX_TRIAL_DAYS + 1).is_err());
    }

    #[test]
    fn quantity_limits_are_ordered_and_bounded() {
        assert_eq!(
            QuantityLimits::default(),
            QuantityLimits::new(1, 1).unwrap()
        );
        assert!(!QuantityLimits::default().is_adjustable());
        assert!(QuantityLimits::new(0, 1).is_err());
        assert!(QuantityLimits::new(3, 2).is_err());
        assert!(QuantityLimits::new(1, MAX_QUANTITY + 1).is_err());
        let l = QuantityLimits::new(2, 6).unwrap();
        assert!(l.is_adjustable());
        assert!(l.check(1).is_err() && l.check(7).is_err());
        assert!(l.check(2).is_ok() && l.check(6).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn a_checked_quantity_lies_within_the_limits(min in 0u32..20, max in 0u32..20, q in 0u32..25) {
            if let Ok(l) = QuantityLimits::new(min, max) {
                proptest::prop_assert!(l.min() >= 1 && l.min() <= l.max());
                proptest::prop_assert_eq!(l.check(q).is_ok(), (min..=max).contains(&q));
            } else {
                proptest::prop_assert!(min == 0 || max < min);
            }
        }
    }
}
