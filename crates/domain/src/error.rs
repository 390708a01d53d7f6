//! Rule violations. Each carries a stable machine code; the API maps the variant to an
//! HTTP status in one place and shows the code to integrators.

use std::borrow::Cow;

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
    #[error("cannot {action} a subscription that is {from}")]
    InvalidTransition {
        from: &'static str,
        action: &'static str,
        /// A stable machine code such as `already_paused`.
        code: &'static str,
    },
    /// The merchant's policy for this product does not let the caller do this.
    #[error("the merchant's policy does not allow {action}")]
    PolicyForbids {
        action: &'static str,
        /// A stable machine code such as `pause_not_allowed`.
        code: &'static str,
    },
    #[error("amounts in {expected} and {found} cannot be combined")]
    CurrencyMismatch {
        expected: &'static str,
        found: &'static str,
    },
    #[error("amount out of range")]
    Overflow,
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

    /// The stable code an integrator can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::InvalidTransition { code, .. }
            | Self::PolicyForbids { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::Overflow => "amount_out_of_range",
        }
    }
}
