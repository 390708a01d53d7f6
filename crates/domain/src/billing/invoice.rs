//! Invoices: statuses and their transitions, line items, totals and refunds.
//!
//! # Statuses
//!
//! ```text
//!   draft ──finalize──▶ open ──pay──▶ paid
//!     │                  │ ╲
//!     └──void──▶ void ◀──┘  mark_uncollectible──▶ uncollectible ──pay──▶ paid
//!                 ▲                                   │
//!                 └───────────────void────────────────┘
//! ```
//!
//! `paid` and `void` are final. Refunds do not change the status of a paid invoice; they
//! raise its `amount_refunded`.
//!
//! # Totals
//!
//! Every line is in the invoice's one currency, and sums use checked integer arithmetic:
//! `subtotal` is the sum of plan, proration and one-off lines, `discount` the
//! (non-positive) sum of discount lines, `total = subtotal + discount`, and
//! `credit_applied` the (non-positive) customer balance the invoice drew on
//! ([`crate::billing::credit::apply_customer_balance`]). When `total + credit_applied` is
//! negative (a proration credit larger than the charges) nothing is due and the
//! difference is the customer's credit: `amount_due − credit == total + credit_applied`
//! always holds. [`totals`] is the one place this arithmetic lives; every line kind,
//! whoever adds it (a coupon's discount too), flows through it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::money::{Currency, MAX_AMOUNT, Money};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Void,
    Uncollectible,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 5] = [
        InvoiceStatus::Draft,
        InvoiceStatus::Open,
        InvoiceStatus::Paid,
        InvoiceStatus::Void,
        InvoiceStatus::Uncollectible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
            InvoiceStatus::Uncollectible => "uncollectible",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, InvoiceStatus::Paid | InvoiceStatus::Void)
    }

    fn transition(
        self,
        action: &'static str,
        allowed: &[InvoiceStatus],
        to: InvoiceStatus,
    ) -> Result<InvoiceStatus, DomainError> {
        if allowed.contains(&self) {
            Ok(to)
        } else {
            Err(DomainError::Conflict {
                code: "invalid_invoice_transition",
                detail: format!("cannot {action} an invoice that is {self}").into(),
            })
        }
    }

    /// draft → open: the invoice is complete and may be charged.
    pub fn finalize(self) -> Result<InvoiceStatus, DomainError> {
        self.transition("finalize", &[InvoiceStatus::Draft], InvoiceStatus::Open)
    }

    /// open or uncollectible → paid.
    pub fn pay(self) -> Result<InvoiceStatus, DomainError> {
        self.transition(
            "pay",
            &[InvoiceStatus::Open, InvoiceStatus::Uncollectible],
            InvoiceStatus::Paid,
        )
    }

    /// draft, open or uncollectible → void: the invoice is cancelled and never charged.
    pub fn void(self) -> Result<InvoiceStatus, DomainError> {
        self.transition(
            "void",
            &[
                InvoiceStatus::Draft,
                InvoiceStatus::Open,
                InvoiceStatus::Uncollectible,
            ],
            InvoiceStatus::Void,
        )
    }

    /// open → uncollectible: dunning gave up; a later payment may still settle it.
    pub fn mark_uncollectible(self) -> Result<InvoiceStatus, DomainError> {
        self.transition(
            "mark uncollectible",
            &[InvoiceStatus::Open],
            InvoiceStatus::Uncollectible,
        )
    }

    /// Whether a payment may be attempted now.
    pub fn is_payable(self) -> bool {
        matches!(self, InvoiceStatus::Open | InvoiceStatus::Uncollectible)
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvoiceStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InvoiceStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation(
                    "status",
                    "must be one of draft, open, paid, void, uncollectible",
                )
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// A plan's price for a period: not negative.
    Plan,
    /// A proration charge (positive) or credit (negative) after a plan change.
    Proration,
    /// A discount: not positive.
    Discount,
    /// A one-off charge (positive) or credit (negative) a merchant or an agent added.
    OneOff,
    /// The customer's credit balance the invoice drew on before charging: not positive.
    CustomerBalance,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Plan => "plan",
            LineKind::Proration => "proration",
            LineKind::Discount => "discount",
            LineKind::OneOff => "one_off",
            LineKind::CustomerBalance => "customer_balance",
        }
    }
}

impl FromStr for LineKind {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plan" => Ok(LineKind::Plan),
            "proration" => Ok(LineKind::Proration),
            "discount" => Ok(LineKind::Discount),
            "one_off" => Ok(LineKind::OneOff),
            "customer_balance" => Ok(LineKind::CustomerBalance),
            _ => Err(DomainError::validation(
                "kind",
                "must be plan, proration, discount, one_off or customer_balance",
            )),
        }
    }
}

/// One line of an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub kind: LineKind,
    pub description: String,
    pub amount: Money,
    /// Units the line bills: a plan line's subscription quantity (then `amount` is the
    /// unit price × `quantity`), 1 for every other line.
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

impl InvoiceLine {
    /// A line whose sign fits its kind and whose size is within [`MAX_AMOUNT`].
    pub fn new(
        kind: LineKind,
        description: impl Into<String>,
        amount: Money,
    ) -> Result<Self, DomainError> {
        if amount.amount.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
            return Err(DomainError::Overflow);
        }
        let sign_ok = match kind {
            LineKind::Plan => amount.amount >= 0,
            LineKind::Discount | LineKind::CustomerBalance => amount.amount <= 0,
            LineKind::Proration | LineKind::OneOff => true,
        };
        if !sign_ok {
            return Err(DomainError::validation(
                "lines.amount",
                match kind {
                    LineKind::Plan => "of a plan line must not be negative",
                    LineKind::CustomerBalance => "of a customer balance line must not be positive",
                    _ => "of a discount line must not be positive",
                },
            ));
        }
        Ok(Self {
            kind,
            description: description.into(),
            amount,
            quantity: 1,
        })
    }

    /// This line as billing `quantity` units (at least 1).
    pub fn with_quantity(self, quantity: u32) -> Self {
        Self {
            quantity: quantity.max(1),
            ..self
        }
    }

    /// The price of one unit, when the line bills several: exact, since a plan line's
    /// amount is the unit price × `quantity`.
    pub fn unit_amount(&self) -> Money {
        Money::new(
            self.amount.amount / i64::from(self.quantity.max(1)),
            self.amount.currency,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceTotals {
    /// Plan, proration and one-off lines.
    pub subtotal: Money,
    /// Discount lines (zero or negative).
    pub discount: Money,
    /// `subtotal + discount`; may be negative.
    pub total: Money,
    /// The customer balance line (zero or negative): credit used before charging.
    pub credit_applied: Money,
    /// `max(0, total + credit_applied)`: what the customer is charged.
    pub amount_due: Money,
    /// `max(0, −(total + credit_applied))`: what the invoice leaves in the customer's
    /// favour.
    pub credit: Money,
}

/// Sums the lines of an invoice in `currency`. Every line must be in that currency.
pub fn totals(currency: Currency, lines: &[InvoiceLine]) -> Result<InvoiceTotals, DomainError> {
    let mut subtotal = Money::zero(currency);
    let mut discount = Money::zero(currency);
    let mut credit_applied = Money::zero(currency);
    for line in lines {
        if line.amount.currency != currency {
            return Err(DomainError::CurrencyMismatch {
                expected: currency.code(),
                found: line.amount.currency.code(),
            });
        }
        match line.kind {
            LineKind::Discount => discount = discount.checked_add(line.amount)?,
            LineKind::CustomerBalance => {
                credit_applied = credit_applied.checked_add(line.amount)?
            }
            LineKind::Plan | LineKind::Proration | LineKind::OneOff => {
                subtotal = subtotal.checked_add(line.amount)?
            }
        }
    }
    let total = subtotal.checked_add(discount)?;
    let net = total.checked_add(credit_applied)?;
    let (amount_due, credit) = if net.amount >= 0 {
        (net, Money::zero(currency))
    } else {
        (Money::zero(currency), net.negate())
    };
    Ok(InvoiceTotals {
        subtotal,
        discount,
        total,
        credit_applied,
        amount_due,
        credit,
    })
}

/// What a refund does to a paid invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundPlan {
    /// The amount to give back now.
    pub amount: Money,
    /// `amount_refunded` after the refund.
    pub refunded_after: Money,
    /// What stays refundable afterwards (`paid − refunded_after`): the payment credit the
    /// refund leaves on the invoice.
    pub remaining: Money,
}

impl RefundPlan {
    pub fn is_full(&self) -> bool {
        self.remaining.is_zero()
    }
}

/// Plans a refund of `requested` (everything still refundable when `None`) of an invoice
/// that has received `paid` and given back `refunded` so far. A refund is never more than
/// `paid − refunded` and never zero or negative. [`plan_refund_after_credits`] also
/// counts what credit notes moved to the customer's balance.
pub fn plan_refund(
    status: InvoiceStatus,
    paid: Money,
    refunded: Money,
    requested: Option<i64>,
) -> Result<RefundPlan, DomainError> {
    plan_refund_after_credits(
        status,
        paid,
        refunded,
        Money::zero(paid.currency),
        requested,
    )
}

/// [`plan_refund`] of an invoice of which credit notes already moved `credited` to the
/// customer's balance: that part was given back once and cannot be refunded too, so a
/// refund is never more than `paid − refunded − credited`.
pub fn plan_refund_after_credits(
    status: InvoiceStatus,
    paid: Money,
    refunded: Money,
    credited: Money,
    requested: Option<i64>,
) -> Result<RefundPlan, DomainError> {
    if status != InvoiceStatus::Paid || paid.is_zero() {
        return Err(DomainError::Conflict {
            code: "invoice_not_paid",
            detail: format!("only a paid invoice can be refunded; this one is {status}").into(),
        });
    }
    let refundable = paid.checked_sub(refunded)?.checked_sub(credited)?;
    if refundable.amount <= 0 {
        return Err(DomainError::Conflict {
            code: "invoice_fully_refunded",
            detail: "the invoice has been refunded or credited in full already".into(),
        });
    }
    let amount = match requested {
        None => refundable,
        Some(amount) if amount <= 0 => {
            return Err(DomainError::validation("amount", "must be positive"));
        }
        Some(amount) if amount > refundable.amount => {
            return Err(DomainError::validation(
                "amount",
                format!(
                    "must not exceed what is left to refund ({} minor units)",
                    refundable.amount
                ),
            ));
        }
        Some(amount) => Money::new(amount, paid.currency),
    };
    let refunded_after = refunded.checked_add(amount)?;
    Ok(RefundPlan {
        amount,
        refunded_after,
        remaining: paid.checked_sub(refunded_after)?.checked_sub(credited)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR".parse().unwrap())
    }

    #[test]
    fn transitions_follow_the_diagram() {
        use InvoiceStatus::*;
        assert_eq!(Draft.finalize(), Ok(Open));
        assert_eq!(Open.pay(), Ok(Paid));
        assert_eq!(Uncollectible.pay(), Ok(Paid));
        assert_eq!(Open.mark_uncollectible(), Ok(Uncollectible));
        for from in [Draft, Open, Uncollectible] {
            assert_eq!(from.void(), Ok(Void));
        }
        for from in [Paid, Void] {
            assert!(from.is_final());
            assert!(from.pay().is_err());
            assert!(from.void().is_err());
            assert!(from.finalize().is_err());
            assert!(from.mark_uncollectible().is_err());
        }
        let err = Draft.pay().unwrap_err();
        assert_eq!(err.code(), "invalid_invoice_transition");
        assert_eq!(err.to_string(), "cannot pay an invoice that is draft");
        for status in InvoiceStatus::ALL {
            assert_eq!(status.as_str().parse::<InvoiceStatus>(), Ok(status));
        }
        assert!("paid ".parse::<InvoiceStatus>().is_err());
    }

    #[test]
    fn a_line_of_several_units_shows_the_exact_unit_price() {
        let one = InvoiceLine::new(LineKind::Proration, "p", eur(-333)).unwrap();
        assert_eq!((one.quantity, one.unit_amount()), (1, eur(-333)));
        let three = InvoiceLine::new(LineKind::Plan, "Beans × 3", eur(2997))
            .unwrap()
            .with_quantity(3);
        assert_eq!((three.quantity, three.unit_amount()), (3, eur(999)));
        assert_eq!(three.clone().with_quantity(0).quantity, 1, "never zero");
    }

    #[test]
    fn lines_keep_their_sign() {
        assert!(InvoiceLine::new(LineKind::Plan, "p", eur(-1)).is_err());
        assert!(InvoiceLine::new(LineKind::Discount, "d", eur(1)).is_err());
        assert!(InvoiceLine::new(LineKind::Proration, "c", eur(-1)).is_ok());
        assert!(InvoiceLine::new(LineKind::Plan, "p", eur(MAX_AMOUNT + 1)).is_err());
    }

    #[test]
    fn totals_sum_lines_in_one_currency() {
        let lines = vec![
            InvoiceLine::new(LineKind::Plan, "Gold", eur(2000)).unwrap(),
            InvoiceLine::new(LineKind::Proration, "Unused Silver", eur(-500)).unwrap(),
            InvoiceLine::new(LineKind::Discount, "10%", eur(-150)).unwrap(),
        ];
        let t = totals("EUR".parse().unwrap(), &lines).unwrap();
        assert_eq!(t.subtotal, eur(1500));
        assert_eq!(t.discount, eur(-150));
        assert_eq!(t.total, eur(1350));
        assert_eq!(t.amount_due, eur(1350));
        assert_eq!(t.credit, eur(0));

        let credit = vec![
            InvoiceLine::new(LineKind::Proration, "Unused Gold", eur(-900)).unwrap(),
            InvoiceLine::new(LineKind::Proration, "Silver", eur(400)).unwrap(),
        ];
        let t = totals("EUR".parse().unwrap(), &credit).unwrap();
        assert_eq!((t.amount_due, t.credit), (eur(0), eur(500)));

        let usd = Money::new(1, "USD".parse().unwrap());
        let mixed = vec![InvoiceLine::new(LineKind::Plan, "x", usd).unwrap()];
        assert!(matches!(
            totals("EUR".parse().unwrap(), &mixed),
            Err(DomainError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn refunds_never_exceed_what_is_left() {
        let paid = InvoiceStatus::Paid;
        let full = plan_refund(paid, eur(1000), eur(0), None).unwrap();
        assert_eq!(full.amount, eur(1000));
        assert!(full.is_full());
        let part = plan_refund(paid, eur(1000), eur(300), Some(200)).unwrap();
        assert_eq!(
            (part.amount, part.refunded_after, part.remaining),
            (eur(200), eur(500), eur(500))
        );
        assert_eq!(
            plan_refund(paid, eur(1000), eur(300), None).unwrap().amount,
            eur(700)
        );
        assert!(plan_refund(paid, eur(1000), eur(300), Some(701)).is_err());
        assert!(plan_refund(paid, eur(1000), eur(300), Some(0)).is_err());
        assert!(plan_refund(paid, eur(1000), eur(300), Some(-5)).is_err());
        assert_eq!(
            plan_refund(paid, eur(1000), eur(1000), None)
                .unwrap_err()
                .code(),
            "invoice_fully_refunded"
        );
        assert_eq!(
            plan_refund(InvoiceStatus::Open, eur(0), eur(0), None)
                .unwrap_err()
                .code(),
            "invoice_not_paid"
        );
    }

    proptest! {
        #[test]
        fn refunds_in_any_sequence_stay_within_the_payment(
            paid in 1i64..1_000_000,
            requests in prop::collection::vec(prop::option::of(-10i64..400_000), 1..20),
        ) {
            let mut refunded = eur(0);
            for requested in requests {
                if let Ok(plan) = plan_refund(InvoiceStatus::Paid, eur(paid), refunded, requested) {
                    prop_assert!(plan.amount.amount > 0);
                    refunded = plan.refunded_after;
                    prop_assert_eq!(plan.remaining.amount, paid - refunded.amount);
                }
                prop_assert!(refunded.amount <= paid);
            }
        }

        #[test]
        fn totals_balance(amounts in prop::collection::vec((0u8..5, -1_000_000i64..1_000_000), 0..30)) {
            let kinds = [
                LineKind::Plan,
                LineKind::Proration,
                LineKind::Discount,
                LineKind::OneOff,
                LineKind::CustomerBalance,
            ];
            let lines: Vec<InvoiceLine> = amounts
                .into_iter()
                .filter_map(|(kind, amount)| {
                    let kind = kinds[usize::from(kind)];
                    let amount = match kind {
                        LineKind::Plan => amount.abs(),
                        LineKind::Discount | LineKind::CustomerBalance => -amount.abs(),
                        LineKind::Proration | LineKind::OneOff => amount,
                    };
                    InvoiceLine::new(kind, "x", eur(amount)).ok()
                })
                .collect();
            let t = totals("EUR".parse().unwrap(), &lines).unwrap();
            let sum: i64 = lines.iter().map(|l| l.amount.amount).sum();
            prop_assert_eq!(t.total.amount + t.credit_applied.amount, sum);
            prop_assert_eq!(t.amount_due.amount - t.credit.amount, sum);
            prop_assert!(t.amount_due.amount >= 0 && t.credit.amount >= 0);
        }
    }
}

/// An invoice as stored: what was billed, and what has been paid and refunded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    pub id: crate::ids::InvoiceId,
    /// Gapless per merchant, starting at 1.
    pub number: i64,
    pub customer_id: crate::ids::CustomerId,
    pub subscription_id: Option<crate::ids::SubscriptionId>,
    pub period: Option<crate::billing::period::Period>,
    pub status: InvoiceStatus,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub totals: InvoiceTotals,
    pub amount_paid: Money,
    pub amount_refunded: Money,
    pub attempt_count: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub paid_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the billing engine charges it next (`None`: not scheduled, e.g. paid, or
    /// dunning gave up).
    pub next_payment_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A charge attempt against an invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: crate::ids::PaymentId,
    pub invoice_id: crate::ids::InvoiceId,
    pub customer_id: crate::ids::CustomerId,
    pub payment_method_id: Option<crate::ids::PaymentMethodId>,
    pub amount: Money,
    pub status: PaymentStatus,
    pub gateway: String,
    pub gateway_ref: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub idempotency_key: String,
    pub amount_refunded: Money,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Succeeded,
    /// The issuer declined.
    Declined,
    /// The gateway failed to process it (retryable).
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Failed => "failed",
        }
    }

    pub fn of(outcome: &crate::billing::gateway::ChargeOutcome) -> Self {
        use crate::billing::gateway::ChargeOutcome;
        match outcome {
            ChargeOutcome::Succeeded { .. } => PaymentStatus::Succeeded,
            ChargeOutcome::Declined { .. } => PaymentStatus::Declined,
            ChargeOutcome::Failed { .. } => PaymentStatus::Failed,
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "succeeded" => Ok(PaymentStatus::Succeeded),
            "declined" => Ok(PaymentStatus::Declined),
            "failed" => Ok(PaymentStatus::Failed),
            _ => Err(DomainError::validation(
                "status",
                "must be succeeded, declined or failed",
            )),
        }
    }
}

/// A refund of (part of) a paid invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: crate::ids::RefundId,
    pub invoice_id: crate::ids::InvoiceId,
    pub payment_id: crate::ids::PaymentId,
    pub amount: Money,
    pub gateway_ref: String,
    pub reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}
