//! Agents' overrides: what an agent grants one subscriber beyond the default policy
//! (a goodwill credit or discount, a longer pause, a cancellation without notice, a plan
//! switch the policy does not offer), always with a reason and the agent's name.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::credit::MAX_REASON_CHARS;

/// What an override granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    /// A goodwill credit to the customer's balance.
    Credit,
    /// A goodwill discount on a subscription's next invoices.
    Discount,
    /// A pause beyond what the product's policy lets a subscriber take.
    Pause,
    /// A cancellation outside the policy (without the notice period).
    Cancel,
    /// A plan switch the policy does not offer.
    PlanChange,
    /// A skip the policy does not allow (`allow_skip`, `max_consecutive_skips`).
    Skip,
    /// A renewal sent now where the policy does not allow it (`allow_send_now`).
    SendNow,
}

impl OverrideKind {
    pub const ALL: [OverrideKind; 7] = [
        OverrideKind::Credit,
        OverrideKind::Discount,
        OverrideKind::Pause,
        OverrideKind::Cancel,
        OverrideKind::PlanChange,
        OverrideKind::Skip,
        OverrideKind::SendNow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Credit => "credit",
            OverrideKind::Discount => "discount",
            OverrideKind::Pause => "pause",
            OverrideKind::Cancel => "cancel",
            OverrideKind::PlanChange => "plan_change",
            OverrideKind::Skip => "skip",
            OverrideKind::SendNow => "send_now",
        }
    }
}

impl FromStr for OverrideKind {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OverrideKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation(
                    "kind",
                    "must be credit, discount, pause, cancel, plan_change, skip or send_now",
                )
            })
    }
}

/// The reason an override (or a balance change) gives: required, 1 to
/// [`MAX_REASON_CHARS`] characters on one line.
pub fn reason(field: &'static str, value: &str) -> Result<String, DomainError> {
    crate::text::clean(field, value, MAX_REASON_CHARS, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_reasons_are_required() {
        for kind in OverrideKind::ALL {
            assert_eq!(kind.as_str().parse::<OverrideKind>(), Ok(kind));
        }
        assert!("refund".parse::<OverrideKind>().is_err());
        assert!(reason("override.reason", "  ").is_err());
        assert!(reason("override.reason", &"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert_eq!(reason("reason", " Late box ").unwrap(), "Late box");
    }
}
