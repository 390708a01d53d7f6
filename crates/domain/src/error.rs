//! Rule violations. Each carries a stable machine code; the API maps the variant to an
//! HTTP status in one place and shows the code to integrators.

use std::borrow::Cow;
use std::fmt;

use crate::policy_limit::PolicyLimit;
use crate::subscription::SubscriptionStatus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field of the caller's input breaks a rule.
    #[error("{field} {reason}")]
    Validation {
        field: Cow<'static, str>,
        reason: Cow<'static, str>,
    },
    /// The action is not possible in the resource's current state
    /// (e.g. pausing a canceled subscription).
    #[error("cannot {action} {refusal}")]
    InvalidTransition {
        action: &'static str,
        /// What stands in the way; it gives both the code and the wording.
        refusal: Refusal,
    },
    /// The merchant's policy for this product does not let the caller do this.
    #[error("the merchant's policy does not allow {action}")]
    PolicyForbids {
        action: &'static str,
        /// A stable machine code such as `pause_not_allowed`.
        code: &'static str,
    },
    /// A limit of the product's portal policy refuses the request. `overridable` when the
    /// caller is a merchant's agent, who may exceed it with an `override` and a reason.
    #[error("{}", policy_limit_message(*limit, *overridable))]
    PolicyLimit {
        limit: PolicyLimit,
        overridable: bool,
    },
    #[error("amounts in {expected} and {found} cannot be combined")]
    CurrencyMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("amount out of range")]
    Overflow,
    /// What a field names is refused here, for a reason with its own stable code (a plan
    /// in another currency, or of a product the subscription may not swap to): 422, with
    /// the field in the problem's `errors`.
    #[error("{field} {reason}")]
    FieldRefused {
        field: &'static str,
        code: &'static str,
        reason: Cow<'static, str>,
    },
    /// An id the caller gave names nothing of the resource it was given with (a
    /// scheduled change of another subscription, or one already applied or removed).
    #[error("no such {resource}")]
    NotFound { resource: &'static str },
    /// Any other resource (an invoice, a payment method) is in a state that does not allow
    /// the action.
    #[error("{detail}")]
    Conflict {
        /// A stable machine code such as `invoice_not_paid`.
        code: &'static str,
        detail: Cow<'static, str>,
    },
}

impl DomainError {
    pub fn validation(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::Validation {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The refusal of `action` (a verb phrase whose object follows, such as
    /// "change the plan of") for `refusal`.
    pub fn refused(action: &'static str, refusal: Refusal) -> Self {
        Self::InvalidTransition { action, refusal }
    }

    /// The stable code an integrator can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::InvalidTransition { refusal, .. } => refusal.code(),
            Self::PolicyForbids { code, .. } | Self::Conflict { code, .. } => code,
            Self::PolicyLimit { limit, .. } => limit.code(),
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::FieldRefused { code, .. } => code,
            Self::Overflow => "amount_out_of_range",
            Self::NotFound { .. } => "resource_missing",
        }
    }
}

fn policy_limit_message(limit: PolicyLimit, overridable: bool) -> String {
    if overridable {
        format!(
            "the product's policy does not allow {} (limit `{}`); an `override` with a reason allows it",
            limit.action(),
            limit.as_str()
        )
    } else {
        format!("the merchant's policy does not allow {}", limit.action())
    }
}

/// Why the current state of a subscription (or a support record) refuses an action.
/// The code and the wording come from the same variant, so the message an integrator
/// reads always states the reason the code names; a new reason must be given both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The status alone forbids the action.
    Status(SubscriptionStatus),
    AlreadyPaused,
    NotPaused,
    PauseScheduled,
    CancellationPending,
    NoCancellationPending,
    AlreadyCanceled,
    PlanChangeScheduled,
    SamePlan,
    RenewalPending,
    ChangesScheduled,
    ChangesDue,
    PeriodNotEnded,
    AlreadyPastDue,
    NotPastDue,
    NotTrialing,
    TrialEnded,
    ScheduledChangesInconsistent,
    TicketClosed,
    CancellationRequestNotPending,
    NoRenewalSkipped,
    /// The next renewal was brought forward and paid (send now, keeping the anchor).
    RenewalSentNow,
    /// A send now already covers the next renewal or began the current period.
    AlreadySentNow,
    /// The next renewal is skipped.
    RenewalSkipped,
}

impl Refusal {
    /// The stable machine code, such as `already_paused`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Status(status) => match status {
                SubscriptionStatus::Trialing => "subscription_trialing",
                SubscriptionStatus::Active => "subscription_active",
                SubscriptionStatus::PastDue => "subscription_past_due",
                SubscriptionStatus::Paused => "subscription_paused",
                SubscriptionStatus::Canceled => "subscription_canceled",
                SubscriptionStatus::Unpaid => "subscription_unpaid",
                SubscriptionStatus::Incomplete => "subscription_incomplete",
                SubscriptionStatus::IncompleteExpired => "subscription_incomplete_expired",
            },
            Self::AlreadyPaused => "already_paused",
            Self::NotPaused => "not_paused",
            Self::PauseScheduled => "pause_scheduled",
            Self::CancellationPending => "cancellation_pending",
            Self::NoCancellationPending => "no_cancellation_pending",
            Self::AlreadyCanceled => "already_canceled",
            Self::PlanChangeScheduled => "plan_change_scheduled",
            Self::SamePlan => "same_plan",
            Self::RenewalPending => "renewal_pending",
            Self::ChangesScheduled => "changes_scheduled",
            Self::ChangesDue => "changes_due",
            Self::PeriodNotEnded => "period_not_ended",
            Self::AlreadyPastDue => "already_past_due",
            Self::NotPastDue => "not_past_due",
            Self::NotTrialing => "not_trialing",
            Self::TrialEnded => "trial_ended",
            Self::ScheduledChangesInconsistent => "scheduled_changes_inconsistent",
            Self::TicketClosed => "ticket_closed",
            Self::CancellationRequestNotPending => "cancellation_request_not_pending",
            Self::NoRenewalSkipped => "no_renewal_skipped",
            Self::RenewalSentNow => "renewal_sent_now",
            Self::AlreadySentNow => "already_sent_now",
            Self::RenewalSkipped => "renewal_skipped",
        }
    }
}

/// The object of the refused action, described by what stands in the way.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let object = match self {
            Self::Status(status) => return write!(f, "a subscription that is {}", status.as_str()),
            Self::AlreadyPaused => "a subscription that is already paused",
            Self::NotPaused => "a subscription that is not paused",
            Self::PauseScheduled => "a subscription with a pause already scheduled",
            Self::CancellationPending => "a subscription with a pending cancellation",
            Self::NoCancellationPending => "a subscription without a pending cancellation",
            Self::AlreadyCanceled => "a subscription that is already canceled",
            Self::PlanChangeScheduled => "a subscription with a plan change already scheduled",
            Self::SamePlan => "a subscription to the plan it is already on",
            Self::RenewalPending => "a subscription whose ended period awaits its renewal",
            Self::ChangesScheduled => "a subscription with scheduled changes",
            Self::ChangesDue => "a subscription with scheduled changes due before its renewal",
            Self::PeriodNotEnded => "a subscription whose current period has not ended",
            Self::AlreadyPastDue => "a subscription that is already past due",
            Self::NotPastDue => "a subscription that is not past due",
            Self::NotTrialing => "a subscription that is not in a trial",
            Self::TrialEnded => "a subscription whose trial has already ended",
            Self::ScheduledChangesInconsistent => {
                "a subscription whose scheduled changes are inconsistent"
            }
            Self::TicketClosed => "a closed ticket",
            Self::CancellationRequestNotPending => {
                "a cancellation request that is no longer pending"
            }
            Self::NoRenewalSkipped => "a subscription without a skipped renewal",
            Self::RenewalSentNow => "a subscription whose next renewal was already sent now",
            Self::AlreadySentNow => "a subscription already sent now for this period",
            Self::RenewalSkipped => {
                "a subscription whose next renewal is skipped (unskip it first)"
            }
        };
        f.write_str(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal; the match makes a new variant fail to compile until it is listed.
    fn all() -> Vec<Refusal> {
        let listed = |r: Refusal| match r {
            Refusal::Status(_)
            | Refusal::AlreadyPaused
            | Refusal::NotPaused
            | Refusal::PauseScheduled
            | Refusal::CancellationPending
            | Refusal::NoCancellationPending
            | Refusal::AlreadyCanceled
            | Refusal::PlanChangeScheduled
            | Refusal::SamePlan
            | Refusal::RenewalPending
            | Refusal::ChangesScheduled
            | Refusal::ChangesDue
            | Refusal::PeriodNotEnded
            | Refusal::AlreadyPastDue
            | Refusal::NotPastDue
            | Refusal::NotTrialing
            | Refusal::TrialEnded
            | Refusal::ScheduledChangesInconsistent
            | Refusal::TicketClosed
            | Refusal::CancellationRequestNotPending
            | Refusal::NoRenewalSkipped
            | Refusal::RenewalSentNow
            | Refusal::AlreadySentNow
            | Refusal::RenewalSkipped => r,
        };
        let mut all: Vec<Refusal> = SubscriptionStatus::ALL.map(Refusal::Status).to_vec();
        all.extend(
            [
                Refusal::AlreadyPaused,
                Refusal::NotPaused,
                Refusal::PauseScheduled,
                Refusal::CancellationPending,
                Refusal::NoCancellationPending,
                Refusal::AlreadyCanceled,
                Refusal::PlanChangeScheduled,
                Refusal::SamePlan,
                Refusal::RenewalPending,
                Refusal::ChangesScheduled,
                Refusal::ChangesDue,
                Refusal::PeriodNotEnded,
                Refusal::AlreadyPastDue,
                Refusal::NotPastDue,
                Refusal::NotTrialing,
                Refusal::TrialEnded,
                Refusal::ScheduledChangesInconsistent,
                Refusal::TicketClosed,
                Refusal::CancellationRequestNotPending,
                Refusal::NoRenewalSkipped,
                Refusal::RenewalSentNow,
                Refusal::AlreadySentNow,
                Refusal::RenewalSkipped,
            ]
            .map(listed),
        );
        all
    }

    #[test]
    fn only_a_refusal_for_the_status_blames_the_status() {
        for refusal in all() {
            let detail = DomainError::refused("pause", refusal).to_string();
            for status in SubscriptionStatus::ALL {
                // `incomplete` is a prefix of `incomplete_expired`: compare the whole word.
                let blames =
                    detail.ends_with(&format!("a subscription that is {}", status.as_str()));
                assert_eq!(
                    blames,
                    refusal == Refusal::Status(status),
                    "{}: {detail}",
                    refusal.code()
                );
            }
        }
    }

    #[test]
    fn codes_are_distinct_and_the_error_shows_them() {
        let all = all();
        let codes: std::collections::HashSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
        for refusal in all {
            assert_eq!(
                DomainError::refused("pause", refusal).code(),
                refusal.code()
            );
        }
    }

    #[test]
    fn the_detail_names_the_reason() {
        let detail = |r| DomainError::refused("pause", r).to_string();
        assert_eq!(
            detail(Refusal::CancellationPending),
            "cannot pause a subscription with a pending cancellation"
        );
        assert_eq!(
            detail(Refusal::Status(SubscriptionStatus::PastDue)),
            "cannot pause a subscription that is past_due"
        );
    }
}
