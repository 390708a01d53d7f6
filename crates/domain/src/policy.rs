//! The portal policy a merchant sets on each product: what a subscriber may do for
//! themselves. The API enforces it and the portal shows it as `available_actions`, from
//! the same functions, so the buttons a frontend renders are exactly the ones that work.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::ids::PlanId;
pub use crate::policy_limit::PolicyLimit;
use crate::subscription::TargetProduct;

/// How a subscriber's cancellation is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CancellationMode {
    /// The subscriber gives a reason, a support ticket opens, and the subscription runs on
    /// through the notice period.
    #[default]
    Request,
    /// The subscriber confirms and the subscription ends (now or at period end).
    Immediate,
}

/// When an `immediate`-mode cancellation takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImmediateCancelTiming {
    #[default]
    Now,
    PeriodEnd,
}

/// How a `request`-mode cancellation's `effective_at` is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoticeRule {
    /// The later of (request time + notice period) and the end of the current period:
    /// the subscriber always gets what they paid for and the merchant its notice.
    #[default]
    LaterOfNoticeAndPeriodEnd,
    /// Exactly request time + notice period, even mid-period.
    NoticeOnly,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalPolicy {
    pub allow_pause: bool,
    pub allow_cancel: bool,
    pub cancellation_mode: CancellationMode,
    pub immediate_cancel_timing: ImmediateCancelTiming,
    pub notice_rule: NoticeRule,
    pub notice_period_days: u32,
    /// The longest pause a subscriber may take; `None` means unbounded.
    pub max_pause_days: Option<u32>,
    /// Whether a paused subscriber keeps access to the service.
    pub keep_access_while_paused: bool,
    pub allow_plan_change: bool,
    /// Plans a subscriber may switch to. Empty means every active plan of the product.
    pub switchable_plan_ids: Vec<PlanId>,
    /// Whether a subscriber may skip coming renewals (no invoice, no charge, no order for
    /// the period). Off unless the merchant turns it on: a skipped period is not paid.
    #[serde(default)]
    pub allow_skip: bool,
    /// The most renewals a subscriber may skip in a row (those already passed since the
    /// last billed renewal count too); `None` means up to [`MAX_PENDING_SKIPS`] ahead.
    #[serde(default = "default_max_consecutive_skips")]
    pub max_consecutive_skips: Option<u32>,
    /// Whether a subscriber may bring the next renewal (its charge, and its order for a
    /// product that ships) forward to now ("send now"). Off unless the merchant turns it
    /// on: an order out of the schedule needs a fulfilment ready for it, and a reset of
    /// the anchor gives up the rest of the current period.
    #[serde(default)]
    pub allow_send_now: bool,
}

/// How many renewals may be skipped ahead at once, by anyone: a year of monthly ones.
pub const MAX_PENDING_SKIPS: u32 = 12;

fn default_max_consecutive_skips() -> Option<u32> {
    Some(2)
}

/// Upper bounds that keep dates inside what every calendar computation handles.
pub const MAX_NOTICE_PERIOD_DAYS: u32 = 366;
pub const MAX_PAUSE_DAYS_LIMIT: u32 = 3 * 366;

impl Default for PortalPolicy {
    fn default() -> Self {
        Self {
            allow_pause: true,
            allow_cancel: true,
            cancellation_mode: CancellationMode::Request,
            immediate_cancel_timing: ImmediateCancelTiming::Now,
            notice_rule: NoticeRule::LaterOfNoticeAndPeriodEnd,
            notice_period_days: 0,
            max_pause_days: Some(90),
            keep_access_while_paused: false,
            allow_plan_change: true,
            switchable_plan_ids: Vec::new(),
            allow_skip: false,
            max_consecutive_skips: default_max_consecutive_skips(),
            allow_send_now: false,
        }
    }
}

impl PortalPolicy {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.notice_period_days > MAX_NOTICE_PERIOD_DAYS {
            return Err(DomainError::validation(
                "portal_policy.notice_period_days",
                format!("must be at most {MAX_NOTICE_PERIOD_DAYS}"),
            ));
        }
        match self.max_consecutive_skips {
            Some(0) => {
                return Err(DomainError::validation(
                    "portal_policy.max_consecutive_skips",
                    "must be at least 1 (set allow_skip to false to forbid skipping)",
                ));
            }
            Some(n) if n > MAX_PENDING_SKIPS => {
                return Err(DomainError::validation(
                    "portal_policy.max_consecutive_skips",
                    format!("must be at most {MAX_PENDING_SKIPS}"),
                ));
            }
            _ => {}
        }
        match self.max_pause_days {
            Some(0) => Err(DomainError::validation(
                "portal_policy.max_pause_days",
                "must be at least 1 (set allow_pause to false to forbid pausing)",
            )),
            Some(days) if days > MAX_PAUSE_DAYS_LIMIT => Err(DomainError::validation(
                "portal_policy.max_pause_days",
                format!("must be at most {MAX_PAUSE_DAYS_LIMIT}"),
            )),
            _ => Ok(()),
        }
    }

    /// May a subscriber switch to `plan`, of `product`? On this policy's own product,
    /// `switchable_plan_ids` (when not empty) lists the plans allowed; every plan of a
    /// product it may swap to is allowed; an unrelated product's never.
    pub fn allows_switch_to(&self, plan: PlanId, product: TargetProduct) -> bool {
        self.allow_plan_change
            && match product {
                TargetProduct::Same => {
                    self.switchable_plan_ids.is_empty() || self.switchable_plan_ids.contains(&plan)
                }
                TargetProduct::Swappable(_) => true,
                TargetProduct::Unrelated => false,
            }
    }
}

/// Whom a policy check holds to the product's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyActor {
    /// A subscriber (the portal): held to every limit.
    Customer,
    /// A merchant's agent (a merchant request naming `Tenure-Agent`, or one that carries
    /// an `override`): held to every limit unless `overriding`, and then every limit the
    /// request exceeds is allowed and reported, to be recorded as an override.
    Agent { overriding: bool },
    /// A merchant's backend without an agent, or Tenure itself: held to none.
    System,
}

impl PolicyActor {
    /// Holds the actor to `limit`, which the request exceeds: `Ok(None)` when it does not
    /// bind them, `Ok(Some(limit))` when an overriding agent exceeds it, else the refusal
    /// (which tells an agent that an override would allow it).
    pub fn exceed(self, limit: PolicyLimit) -> Result<Option<PolicyLimit>, DomainError> {
        match self {
            PolicyActor::System => Ok(None),
            PolicyActor::Agent { overriding: true } => Ok(Some(limit)),
            PolicyActor::Agent { overriding: false } => Err(DomainError::PolicyLimit {
                limit,
                overridable: true,
            }),
            PolicyActor::Customer => Err(DomainError::PolicyLimit {
                limit,
                overridable: false,
            }),
        }
    }

    /// Whether the limits shape what the request gets (a subscriber's open-ended pause
    /// ends after `max_pause_days`): for everyone they bind and who does not override.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            PolicyActor::Customer | PolicyActor::Agent { overriding: false }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GenerateId;

    #[test]
    fn defaults_follow_the_design() {
        let p = PortalPolicy::default();
        assert!(p.allow_pause && p.allow_cancel && p.allow_plan_change);
        assert!(!p.allow_skip);
        assert!(!p.allow_send_now);
        assert_eq!(p.cancellation_mode, CancellationMode::Request);
        assert!(p.validate().is_ok());
    }

    #[test]
    fn validation_bounds() {
        let p = PortalPolicy {
            max_pause_days: Some(0),
            ..PortalPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = PortalPolicy {
            notice_period_days: 10_000,
            ..PortalPolicy::default()
        };
        assert!(p.validate().is_err());
        for bad in [0, MAX_PENDING_SKIPS + 1] {
            let p = PortalPolicy {
                max_consecutive_skips: Some(bad),
                ..PortalPolicy::default()
            };
            assert!(p.validate().is_err());
        }
    }

    #[test]
    fn switchable_plans_restrict_when_listed() {
        let a = PlanId::generate();
        let b = PlanId::generate();
        let mut p = PortalPolicy::default();
        let swap = TargetProduct::Swappable(crate::catalog::QuantityLimits::default());
        assert!(p.allows_switch_to(a, TargetProduct::Same));
        assert!(!p.allows_switch_to(a, TargetProduct::Unrelated));
        assert!(p.allows_switch_to(a, swap));
        p.switchable_plan_ids = vec![b];
        assert!(!p.allows_switch_to(a, TargetProduct::Same));
        assert!(p.allows_switch_to(b, TargetProduct::Same));
        assert!(
            p.allows_switch_to(a, swap),
            "the list names this product's plans only"
        );
        p.allow_plan_change = false;
        assert!(!p.allows_switch_to(b, TargetProduct::Same));
        assert!(!p.allows_switch_to(a, swap));
    }

    #[test]
    fn limits_bind_customers_and_agents_unless_they_override() {
        for limit in PolicyLimit::ALL {
            assert_eq!(PolicyLimit::parse(limit.as_str()), Some(limit));
            // The wire name is the serde name (a DTO mirrors the enum).
            assert_eq!(
                serde_json::to_value(limit).unwrap(),
                serde_json::json!(limit.as_str())
            );
            assert_eq!(PolicyActor::System.exceed(limit), Ok(None));
            assert_eq!(
                PolicyActor::Agent { overriding: true }.exceed(limit),
                Ok(Some(limit))
            );
            let refused = PolicyActor::Agent { overriding: false }
                .exceed(limit)
                .unwrap_err();
            assert_eq!(refused.code(), limit.code());
            assert!(refused.to_string().contains("override"), "{refused}");
            let refused = PolicyActor::Customer.exceed(limit).unwrap_err();
            assert_eq!(refused.code(), limit.code());
            assert!(!refused.to_string().contains("override"), "{refused}");
        }
        assert_eq!(PolicyLimit::parse("max_pause"), None);
        assert!(PolicyActor::Customer.is_held());
        assert!(PolicyActor::Agent { overriding: false }.is_held());
        assert!(!PolicyActor::Agent { overriding: true }.is_held());
        assert!(!PolicyActor::System.is_held());
    }
}

#[cfg(test)]
mod stored_policies {
    use super::*;

    #[test]
    fn a_policy_stored_before_skips_existed_reads_with_their_defaults() {
        let mut stored = serde_json::to_value(PortalPolicy::default()).unwrap();
        let object = stored.as_object_mut().unwrap();
        object.remove("allow_skip");
        object.remove("max_consecutive_skips");
        object.remove("allow_send_now");
        let read: PortalPolicy = serde_json::from_value(stored).unwrap();
        assert_eq!(read, PortalPolicy::default());
    }
}
