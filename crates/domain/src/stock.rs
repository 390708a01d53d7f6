//! Stock of a plan (the unit a subscriber receives; a variant is a plan) and what a
//! change of it does to the subscribers' next orders.
//!
//! A plan is `in_stock`, `low`, `out_of_stock` (with an optional `expected_at`, when it
//! is expected back) or `discontinued`. A merchant's change of it is a [`StockChange`]:
//! the new stock, what happens to each affected subscriber's next order
//! ([`NextOrderAction`]: ship it anyway, skip it, or swap to a named substitute plan at
//! the next renewal) and which of those actions the subscriber may pick instead
//! (`choices`). Skipping and swapping are only for stock that cannot ship
//! (`out_of_stock`, `discontinued`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::ids::PlanId;
use crate::subscription::{
    Acting, PlanChangeRequest, ScheduledChange, ScheduledChangeKind, Subscription,
    SubscriptionEvent, SubscriptionStatus, Transition,
};

/// Whether a plan can ship.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockStatus {
    #[default]
    InStock,
    Low,
    OutOfStock,
    Discontinued,
}

impl StockStatus {
    pub const ALL: [Self; 4] = [
        Self::InStock,
        Self::Low,
        Self::OutOfStock,
        Self::Discontinued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStock => "in_stock",
            Self::Low => "low",
            Self::OutOfStock => "out_of_stock",
            Self::Discontinued => "discontinued",
        }
    }

    /// Whether an order of it cannot ship as it is (so skipping or swapping makes sense).
    pub fn unavailable(self) -> bool {
        matches!(self, Self::OutOfStock | Self::Discontinued)
    }
}

impl fmt::Display for StockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StockStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| DomainError::validation("status", "is not a stock status"))
    }
}

/// A plan's stock: its status and, when out of stock, when it is expected back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub status: StockStatus,
    pub expected_at: Option<DateTime<Utc>>,
}

/// What happens to an affected subscriber's next order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextOrderAction {
    /// Nothing changes: the order ships (late, or as the merchant can).
    #[default]
    ShipAnyway,
    /// The next renewal is skipped (a merchant's skip: no invoice, no order).
    Skip,
    /// The subscription moves to the substitute plan at its next renewal (a scheduled
    /// plan change).
    Swap,
}

impl NextOrderAction {
    pub const ALL: [Self; 3] = [Self::ShipAnyway, Self::Skip, Self::Swap];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShipAnyway => "ship_anyway",
            Self::Skip => "skip",
            Self::Swap => "swap",
        }
    }
}

impl fmt::Display for NextOrderAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NextOrderAction {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| DomainError::validation("next_order", "is not a next-order action"))
    }
}

/// A merchant's change of a plan's stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    pub stock: Stock,
    pub next_order: NextOrderAction,
    pub substitute_plan_id: Option<PlanId>,
    /// What the subscriber may pick instead of `next_order` (sorted, no repeats).
    pub choices: Vec<NextOrderAction>,
}

impl StockChange {
    /// Checks the change as a whole, for the plan `plan`: every rule broken, as
    /// `(field, reason)`, empty when it is valid. Choices are sorted and deduplicated.
    pub fn validate(&mut self, plan: PlanId) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let unavailable = self.stock.status.unavailable();
        if self.stock.expected_at.is_some() && self.stock.status != StockStatus::OutOfStock {
            errors.push(("expected_at", "is only for out_of_stock".to_owned()));
        }
        if !unavailable && self.next_order != NextOrderAction::ShipAnyway {
            errors.push((
                "next_order",
                format!(
                    "must be ship_anyway when the plan is {} (skip and swap are for stock that cannot ship)",
                    self.stock.status
                ),
            ));
        }
        self.choices.sort_by_key(|c| *c as u8);
        self.choices.dedup();
        if !unavailable && !self.choices.is_empty() {
            errors.push((
                "choices",
                "are only offered when the plan is out_of_stock or discontinued".to_owned(),
            ));
        }
        let swap_named = self.next_order == NextOrderAction::Swap
            || self.choices.contains(&NextOrderAction::Swap);
        match (self.substitute_plan_id, swap_named) {
            (None, true) => errors.push((
                "substitute_plan_id",
                "is required when swap is the next order or one of the choices".to_owned(),
            )),
            (Some(_), false) => errors.push((
                "substitute_plan_id",
                "is only taken with swap (as next_order or a choice)".to_owned(),
            )),
            (Some(s), true) if s == plan => errors.push((
                "substitute_plan_id",
                "must be another plan than the one out of stock".to_owned(),
            )),
            _ => {}
        }
        errors
    }

    /// Whether a subscriber may pick `choice` (the merchant's own action counts as one).
    pub fn offers(&self, choice: NextOrderAction) -> bool {
        !self.choices.is_empty() && (choice == self.next_order || self.choices.contains(&choice))
    }
}

/// Which subscriptions a stock notice reaches: those still expecting orders.
pub const AFFECTED_STATUSES: [SubscriptionStatus; 4] = [
    SubscriptionStatus::Active,
    SubscriptionStatus::Trialing,
    SubscriptionStatus::PastDue,
    SubscriptionStatus::Paused,
];

impl Subscription {
    /// Moves the subscription to `request.to` at its next renewal, whatever the prices
    /// (a swap for stock that cannot ship): the checks of a plan change for `by`, then a
    /// scheduled plan change due at the end of the current period. Only an `active`
    /// subscription swaps this way (a trial is free to change plan at once).
    pub fn swap_at_next_renewal(
        &self,
        request: &PlanChangeRequest,
        policy: &crate::policy::PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let acting: Acting = by.into();
        if self.status != SubscriptionStatus::Active {
            return Err(self.refuse_status("swap the plan of"));
        }
        self.check_can_change_plan(policy, acting, now)?;
        self.check_plan_allowed(request.to.plan_id, request.product, policy, acting)?;
        self.check_plan_currency(request.to.price.currency)?;
        let mut next = self.clone();
        let kind = ScheduledChangeKind::PlanChange { to: request.to };
        let change = ScheduledChange::new(self.current_period.end, now, acting.actor, kind);
        next.schedule(change.clone());
        let mut events = vec![SubscriptionEvent::PlanChangeScheduled { change }];
        events.extend(next.drop_stale_skips());
        Ok(Transition::new(next, events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GenerateId;

    fn change(status: StockStatus, next: NextOrderAction) -> StockChange {
        StockChange {
            stock: Stock {
                status,
                expected_at: None,
            },
            next_order: next,
            substitute_plan_id: None,
            choices: vec![],
        }
    }

    #[test]
    fn skip_and_swap_only_for_stock_that_cannot_ship() {
        let plan = PlanId::generate();
        for status in StockStatus::ALL {
            let mut c = change(status, NextOrderAction::Skip);
            let errors = c.validate(plan);
            assert_eq!(errors.is_empty(), status.unavailable(), "{status}");
        }
        let mut c = change(StockStatus::Low, NextOrderAction::ShipAnyway);
        assert!(c.validate(plan).is_empty());
    }

    #[test]
    fn expected_at_only_when_out_of_stock() {
        let plan = PlanId::generate();
        for status in StockStatus::ALL {
            let mut c = change(status, NextOrderAction::ShipAnyway);
            c.stock.expected_at = Some(Utc::now());
            let errors = c.validate(plan);
            assert_eq!(
                errors.iter().any(|(f, _)| *f == "expected_at"),
                status != StockStatus::OutOfStock
            );
        }
    }

    #[test]
    fn swap_needs_another_plan_and_only_with_swap() {
        let plan = PlanId::generate();
        let mut c = change(StockStatus::OutOfStock, NextOrderAction::Swap);
        assert_eq!(c.validate(plan)[0].0, "substitute_plan_id");
        c.substitute_plan_id = Some(plan);
        assert_eq!(c.validate(plan)[0].0, "substitute_plan_id");
        c.substitute_plan_id = Some(PlanId::generate());
        assert!(c.validate(plan).is_empty());
        let mut c = change(StockStatus::OutOfStock, NextOrderAction::Skip);
        c.substitute_plan_id = Some(PlanId::generate());
        assert_eq!(c.validate(plan)[0].0, "substitute_plan_id");
        c.choices = vec![NextOrderAction::Swap, NextOrderAction::Swap];
        assert!(c.validate(plan).is_empty());
        assert_eq!(c.choices, vec![NextOrderAction::Swap]);
    }

    #[test]
    fn choices_include_the_merchants_action_once_offered() {
        let mut c = change(StockStatus::OutOfStock, NextOrderAction::Skip);
        assert!(
            !c.offers(NextOrderAction::Skip),
            "no choices: nothing to pick"
        );
        c.choices = vec![NextOrderAction::ShipAnyway];
        assert!(c.offers(NextOrderAction::Skip));
        assert!(c.offers(NextOrderAction::ShipAnyway));
        assert!(!c.offers(NextOrderAction::Swap));
    }
}
