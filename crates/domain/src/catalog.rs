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

#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: Option<String>,
    pub portal_policy: PortalPolicy,
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
}
