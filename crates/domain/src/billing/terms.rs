//! What a subscription is billed: a plan's price and cadence, copied onto the
//! subscription when it starts or changes plan. The copy is deliberate: a merchant who
//! edits a plan's price later does not silently reprice existing subscribers.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::period::Cadence;
use crate::ids::PlanId;
use crate::money::Money;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTerms {
    pub plan_id: PlanId,
    /// The price of one full period; between 0 and [`crate::money::MAX_AMOUNT`].
    pub price: Money,
    pub cadence: Cadence,
}

impl PlanTerms {
    /// Terms with a price checked by [`Money::price`].
    pub fn new(plan_id: PlanId, price: Money, cadence: Cadence) -> Result<Self, DomainError> {
        let price = Money::price(price.amount, price.currency)?;
        Ok(Self {
            plan_id,
            price,
            cadence,
        })
    }
}
