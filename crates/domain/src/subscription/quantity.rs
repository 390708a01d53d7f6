//! How many units a subscription bills each period, and changing it.
//!
//! The price of a period is the plan's unit price × `quantity`, exact to the minor unit
//! ([`Money::times`], refused beyond `MAX_AMOUNT`). The product's [`QuantityLimits`] bind
//! merchants and customers alike; a product whose limits allow one value only (the
//! default `1..=1`) offers no change.
//!
//! A change applies at once, in both directions, and is prorated exactly like a plan
//! change on the same cadence ([`prorate_change`] from the old period price to the new
//! one): a credit for the unused time at the old quantity and a charge for the rest of the
//! period at the new one. A decrease nets to a credit carried to later invoices, so
//! nothing is lost and nothing needs scheduling. While trialing nothing has been paid:
//! the change is free.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::proration::{Proration, prorate_change};
use crate::billing::terms::PlanTerms;
use crate::catalog::QuantityLimits;
use crate::error::Refusal;
use crate::money::Money;
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::scheduled::ChangeType;
use crate::subscription::state::{Actor, Subscription, SubscriptionStatus, Transition};

/// What a quantity change would do, without doing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantityChangePreview {
    pub from: u32,
    pub to: u32,
    pub effective_at: DateTime<Utc>,
    /// The price of a full period at the new quantity.
    pub period_price: Money,
    /// The proration after the trial; `None` while trialing.
    pub proration: Option<Proration>,
}

impl Subscription {
    /// The terms at this subscription's quantity: one period's price is the plan's
    /// price × `quantity`.
    pub fn billed_terms(&self) -> Result<PlanTerms, DomainError> {
        terms_times(&self.plan, self.quantity)
    }

    /// Whether `actor` may change the quantity at `now`, to any value within `limits`.
    pub fn check_can_change_quantity(
        &self,
        limits: QuantityLimits,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        const ACTION: &str = "change the quantity of";
        match self.status {
            SubscriptionStatus::Trialing | SubscriptionStatus::Active => {}
            _ => return Err(self.refuse_status(ACTION)),
        }
        if !self.current_period.contains(now) {
            return Err(DomainError::refused(ACTION, Refusal::RenewalPending));
        }
        if self.pending(ChangeType::Cancel).is_some() {
            return Err(DomainError::refused(ACTION, Refusal::CancellationPending));
        }
        // The next period was billed at this quantity already.
        if self.renewal_prepaid() {
            return Err(DomainError::refused(ACTION, Refusal::RenewalSentNow));
        }
        if !limits.is_adjustable() {
            return Err(DomainError::PolicyForbids {
                action: "changing the quantity",
                code: "quantity_change_not_allowed",
            });
        }
        Ok(())
    }

    /// What [`Subscription::change_quantity`] would do, after the same checks.
    pub fn preview_quantity_change(
        &self,
        quantity: u32,
        limits: QuantityLimits,
        now: DateTime<Utc>,
    ) -> Result<QuantityChangePreview, DomainError> {
        self.check_can_change_quantity(limits, now)?;
        limits.check(quantity)?;
        if quantity == self.quantity {
            return Err(DomainError::Conflict {
                code: "same_quantity",
                detail: format!("the subscription already has quantity {quantity}").into(),
            });
        }
        let to = terms_times(&self.plan, quantity)?;
        let proration = if self.status == SubscriptionStatus::Trialing {
            None
        } else {
            Some(prorate_change(
                &self.billed_terms()?,
                &to,
                &self.current_period,
                now,
            )?)
        };
        Ok(QuantityChangePreview {
            from: self.quantity,
            to: quantity,
            effective_at: now,
            period_price: to.price,
            proration,
        })
    }

    /// Changes the quantity at once (see the module docs). `actor` is recorded on the
    /// event; the limits bind every actor.
    pub fn change_quantity(
        &self,
        quantity: u32,
        limits: QuantityLimits,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let preview = self.preview_quantity_change(quantity, limits, now)?;
        let mut next = self.clone();
        next.quantity = quantity;
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::QuantityChanged {
                from: preview.from,
                to: preview.to,
                by: actor,
                proration: preview.proration,
            }],
        ))
    }
}

/// `terms` for `quantity` units: same plan and cadence, the price multiplied.
pub fn terms_times(terms: &PlanTerms, quantity: u32) -> Result<PlanTerms, DomainError> {
    Ok(PlanTerms {
        price: terms.price.times(quantity)?,
        ..*terms
    })
}
