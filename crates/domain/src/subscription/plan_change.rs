//! Changing plan.
//!
//! # When a change applies
//!
//! A change to a plan whose price is not lower than the current one (an upgrade, or a
//! sideways move) applies at once, with proration (see
//! [`crate::billing::proration`]): the subscriber gets the better plan now and pays the
//! difference for the rest of the period. A change to a cheaper plan (a downgrade)
//! applies at the end of the current period, as a scheduled change the subscriber can
//! remove: they keep what they paid for, and nobody is refunded money mid-period. While
//! trialing, any change applies at once and costs nothing: no money has changed hands.
//!
//! A scheduled plan change swaps the terms the *next renewal* bills. If the new plan's
//! cadence differs, its schedule is anchored at the end of the current period, where
//! billing on the new plan begins.
//!
//! # Who may change to what
//!
//! The target is a plan of the subscription's product (another variant, cadence or
//! tier), or of a product the subscription's product lets its subscribers swap to
//! ([`crate::catalog::Product::swappable_product_ids`]); a plan of any other product is
//! refused to everyone (422 `product_not_swappable`), merchants included: what a product
//! may become is part of the catalog, not of the portal. A swap keeps the quantity, which
//! must lie within the new product's limits (422 `quantity_outside_product_limits`).
//!
//! A customer needs the policy's `allow_plan_change` and, on the same product, a target
//! the policy lists ([`PortalPolicy::allows_switch_to`]); so does a merchant's agent
//! unless it overrides them with a reason; a merchant's backend may move a subscription
//! to any plan of those products. Everyone needs the same currency (422
//! `currency_mismatch` on `plan_id`), a plan other than the current one, and a
//! subscription that is `trialing` or `active`, inside its current period (not waiting
//! for a renewal), with no cancellation and no other plan change pending (remove the
//! pending one first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::proration::{Proration, prorate_change};
use crate::billing::terms::PlanTerms;
use crate::catalog::QuantityLimits;
use crate::error::Refusal;
use crate::ids::PlanId;
use crate::money::Currency;
use crate::policy::{PolicyActor, PolicyLimit, PortalPolicy};
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::scheduled::{ChangeType, ScheduledChange, ScheduledChangeKind};
use crate::subscription::state::{Acting, Subscription, SubscriptionStatus, Transition};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChangeRequest {
    pub to: PlanTerms,
    /// Where `to`'s product stands to the subscription's (the caller knows the catalog).
    pub product: TargetProduct,
}

/// The product of a plan a subscription would change to, seen from the subscription's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetProduct {
    /// The subscription's own product: another of its variants, cadences or tiers.
    Same,
    /// A product the subscription's product lets its subscribers swap to, with its
    /// quantity limits (the subscription's quantity must lie within them).
    Swappable(QuantityLimits),
    /// Any other product: refused to everyone.
    Unrelated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanChangeTiming {
    Now,
    PeriodEnd,
}

/// What a plan change would do, without doing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChangePreview {
    pub timing: PlanChangeTiming,
    pub effective_at: DateTime<Utc>,
    /// The invoice lines of an immediate change after the trial; `None` otherwise.
    pub proration: Option<Proration>,
}

impl Subscription {
    /// Whether `by` may change this subscription's plan at `now`, to any plan.
    pub fn check_can_change_plan(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.check_change_plan(policy, by.into().held, now)
            .map(drop)
    }

    /// [`Self::check_can_change_plan`], with the limit an overriding agent exceeds.
    fn check_change_plan(
        &self,
        policy: &PortalPolicy,
        held: PolicyActor,
        now: DateTime<Utc>,
    ) -> Result<Option<PolicyLimit>, DomainError> {
        const ACTION: &str = "change the plan of";
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
        if self.pending(ChangeType::PlanChange).is_some() {
            return Err(DomainError::refused(ACTION, Refusal::PlanChangeScheduled));
        }
        // The next period was billed on this plan already.
        if self.renewal_prepaid() {
            return Err(DomainError::refused(ACTION, Refusal::RenewalSentNow));
        }
        if !policy.allow_plan_change {
            return held.exceed(PolicyLimit::AllowPlanChange);
        }
        Ok(None)
    }

    /// Whether `by` may pick `plan` as the target.
    pub fn check_plan_allowed(
        &self,
        plan: PlanId,
        product: TargetProduct,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
    ) -> Result<(), DomainError> {
        self.check_plan(plan, product, policy, by.into().held)
            .map(drop)
    }

    /// [`Self::check_plan_allowed`], with the limit an overriding agent exceeds.
    fn check_plan(
        &self,
        plan: PlanId,
        product: TargetProduct,
        policy: &PortalPolicy,
        held: PolicyActor,
    ) -> Result<Option<PolicyLimit>, DomainError> {
        if plan == self.plan.plan_id {
            return Err(DomainError::refused(
                "change the plan of",
                Refusal::SamePlan,
            ));
        }
        match product {
            TargetProduct::Same => {}
            TargetProduct::Unrelated => {
                return Err(DomainError::FieldRefused {
                    field: "plan_id",
                    code: "product_not_swappable",
                    reason: "belongs to a product this subscription's product does not let its subscribers swap to (its swappable_product_ids)".into(),
                });
            }
            TargetProduct::Swappable(limits) => {
                if limits.check(self.quantity).is_err() {
                    return Err(DomainError::FieldRefused {
                        field: "plan_id",
                        code: "quantity_outside_product_limits",
                        reason: format!(
                            "belongs to a product sold {}..={} at a time, and the subscription holds {}: change the quantity first",
                            limits.min(),
                            limits.max(),
                            self.quantity
                        )
                        .into(),
                    });
                }
            }
        }
        if !policy.allows_switch_to(plan, product) {
            return held.exceed(PolicyLimit::SwitchablePlanIds);
        }
        Ok(None)
    }

    /// Whether a plan billed in `currency` can replace this subscription's plan: money
    /// already paid and credited cannot be combined across currencies (422
    /// `currency_mismatch` on `plan_id`).
    pub fn check_plan_currency(&self, currency: Currency) -> Result<(), DomainError> {
        if currency != self.plan.price.currency {
            return Err(DomainError::FieldRefused {
                field: "plan_id",
                code: "currency_mismatch",
                reason: format!(
                    "is billed in {}, and the subscription in {}: a plan change stays in the subscription's currency",
                    currency.code(),
                    self.plan.price.currency.code()
                )
                .into(),
            });
        }
        Ok(())
    }

    /// What [`Subscription::change_plan`] would do, after the same checks.
    pub fn preview_plan_change(
        &self,
        request: &PlanChangeRequest,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<PlanChangePreview, DomainError> {
        self.checked_plan_change(request, policy, by.into().held, now)
            .map(|(preview, _)| preview)
    }

    /// The preview of a change and the limits an overriding agent exceeds with it.
    fn checked_plan_change(
        &self,
        request: &PlanChangeRequest,
        policy: &PortalPolicy,
        held: PolicyActor,
        now: DateTime<Utc>,
    ) -> Result<(PlanChangePreview, Vec<PolicyLimit>), DomainError> {
        let mut exceeded: Vec<PolicyLimit> = self
            .check_change_plan(policy, held, now)?
            .into_iter()
            .collect();
        let not_offered = self.check_plan(request.to.plan_id, request.product, policy, held)?;
        // No plan is offered when the policy forbids changes: that is the one limit exceeded.
        if exceeded.is_empty() {
            exceeded.extend(not_offered);
        }
        let to = PlanTerms::new(request.to.plan_id, request.to.price, request.to.cadence)?;
        self.check_plan_currency(to.price.currency)?;
        let preview = if self.status == SubscriptionStatus::Trialing {
            PlanChangePreview {
                timing: PlanChangeTiming::Now,
                effective_at: now,
                proration: None,
            }
        } else if to.price.amount >= self.plan.price.amount {
            PlanChangePreview {
                timing: PlanChangeTiming::Now,
                effective_at: now,
                // At the subscription's quantity on both sides.
                proration: Some(prorate_change(
                    &self.billed_terms()?,
                    &crate::subscription::quantity::terms_times(&to, self.quantity)?,
                    &self.current_period,
                    now,
                )?),
            }
        } else {
            PlanChangePreview {
                timing: PlanChangeTiming::PeriodEnd,
                effective_at: self.current_period.end,
                proration: None,
            }
        };
        Ok((preview, exceeded))
    }

    /// Changes the plan as `by` may. The limits an overriding agent exceeds are in the
    /// transition's `overridden`.
    pub fn change_plan(
        &self,
        request: &PlanChangeRequest,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let Acting { actor, held } = by.into();
        let (preview, exceeded) = self.checked_plan_change(request, policy, held, now)?;
        let to = request.to;
        let mut next = self.clone();
        let mut events = Vec::new();
        let event = match preview.timing {
            PlanChangeTiming::Now => {
                let from = next.plan;
                next.plan = to;
                if preview.proration.is_some() && from.cadence != to.cadence {
                    // The proration charged a full period of the new cadence from now.
                    next.billing_anchor = now;
                    next.current_period = to.cadence.first_period(now)?;
                }
                SubscriptionEvent::PlanChanged {
                    from,
                    to,
                    proration: preview.proration,
                }
            }
            PlanChangeTiming::PeriodEnd => {
                let kind = ScheduledChangeKind::PlanChange { to };
                let change = ScheduledChange::new(preview.effective_at, now, actor, kind);
                next.schedule(change.clone());
                SubscriptionEvent::PlanChangeScheduled { change }
            }
        };
        events.push(event);
        events.extend(next.drop_stale_skips());
        Ok(Transition::new(next, events).exceeding(exceeded))
    }

    /// Applies a scheduled plan change (see the module docs).
    pub(crate) fn switch_plan_at_renewal(&mut self, to: PlanTerms) -> SubscriptionEvent {
        let from = self.plan;
        if from.cadence != to.cadence {
            self.billing_anchor = self.current_period.end;
        }
        self.plan = to;
        SubscriptionEvent::PlanChanged {
            from,
            to,
            proration: None,
        }
    }
}
