//! Customer credit: a balance per customer and currency that invoices draw from before
//! charging, the ledger changes that move it, and credit notes that give back part of a
//! paid invoice.
//!
//! # Rules
//!
//! * A balance is the sum of its ledger rows and never negative: a credit is granted
//!   (an adjustment, a credit note to the balance) and used up (a debit adjustment, an
//!   invoice), never lent. A debit larger than the balance is refused
//!   (`balance_insufficient`).
//! * An invoice draws on the balance of **its** currency only, after its discounts:
//!   `credit_applied = min(balance, max(0, total))`, shown as one `customer_balance`
//!   line, so `amount_due = max(0, subtotal + discount − credit_applied)`. What the
//!   invoice does not use stays on the balance.
//! * A credit note gives back at most what the invoice was paid and has not yet been
//!   refunded or credited: `paid − refunded − credited` (`credit_note_exceeds_invoice`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::invoice::{self, InvoiceLine, InvoiceStatus, InvoiceTotals, LineKind};
use crate::money::{Currency, MAX_AMOUNT, Money};

/// The longest reason a ledger change, credit note memo or override may carry.
pub const MAX_REASON_CHARS: usize = 500;

/// Where a change of a customer's balance came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceSource {
    /// Granted or debited by the merchant's backend or an agent, with a reason.
    Adjustment,
    /// A credit note that credited part of a paid invoice to the balance.
    CreditNote,
    /// Used up by an invoice before it was charged.
    Invoice,
}

impl BalanceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceSource::Adjustment => "adjustment",
            BalanceSource::CreditNote => "credit_note",
            BalanceSource::Invoice => "invoice",
        }
    }
}

impl FromStr for BalanceSource {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "adjustment" => Ok(BalanceSource::Adjustment),
            "credit_note" => Ok(BalanceSource::CreditNote),
            "invoice" => Ok(BalanceSource::Invoice),
            _ => Err(DomainError::validation(
                "source",
                "must be adjustment, credit_note or invoice",
            )),
        }
    }
}

/// The balance after `change` (signed: a grant is positive, a debit negative). A change of
/// zero or beyond [`MAX_AMOUNT`] is invalid input; a debit beyond the balance is refused.
pub fn adjust_balance(balance: Money, change: Money) -> Result<Money, DomainError> {
    if change.amount == 0 || change.amount.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
        return Err(DomainError::validation(
            "amount",
            format!("must be non-zero and at most {MAX_AMOUNT} minor units either way"),
        ));
    }
    let after = balance.checked_add(change)?;
    if after.amount < 0 {
        return Err(DomainError::Conflict {
            code: "balance_insufficient",
            detail: format!(
                "the debit of {} is more than the customer's balance of {balance}",
                change.negate()
            )
            .into(),
        });
    }
    if after.amount > MAX_AMOUNT {
        return Err(DomainError::Overflow);
    }
    Ok(after)
}

/// How much of `balance` an invoice whose lines total `total` (after discounts) uses:
/// all of what is due, up to the balance; nothing from a balance in another currency.
pub fn credit_to_apply(total: Money, balance: Money) -> Money {
    if balance.currency != total.currency {
        return Money::zero(total.currency);
    }
    Money::new(
        total.amount.max(0).min(balance.amount.max(0)),
        total.currency,
    )
}

/// What an invoice took from the customer's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceApplied {
    /// What the balance gave (zero or positive); the ledger row is its negation.
    pub taken: Money,
    /// The invoice's totals with the `customer_balance` line.
    pub totals: InvoiceTotals,
}

/// Completes an invoice's lines (plan, prorations, one-off items, discounts) with the
/// customer's `balance` in `currency`: appends a `customer_balance` line when the balance
/// pays some of it, and returns what was taken and the final totals. The one function
/// through which every invoice's amount due is reached ([`invoice::totals`] does the
/// sums), whatever its lines are.
pub fn apply_customer_balance(
    currency: Currency,
    lines: &mut Vec<InvoiceLine>,
    balance: Money,
) -> Result<BalanceApplied, DomainError> {
    let before = invoice::totals(currency, lines)?;
    let taken = credit_to_apply(before.total, balance);
    if taken.is_zero() {
        return Ok(BalanceApplied {
            taken,
            totals: before,
        });
    }
    lines.push(InvoiceLine::new(
        LineKind::CustomerBalance,
        "Applied customer balance",
        taken.negate(),
    )?);
    Ok(BalanceApplied {
        taken,
        totals: invoice::totals(currency, lines)?,
    })
}

/// Why a credit note was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditNoteReason {
    Duplicate,
    Fraudulent,
    OrderChange,
    ProductUnsatisfactory,
    Goodwill,
    Other,
}

impl CreditNoteReason {
    pub const ALL: [CreditNoteReason; 6] = [
        CreditNoteReason::Duplicate,
        CreditNoteReason::Fraudulent,
        CreditNoteReason::OrderChange,
        CreditNoteReason::ProductUnsatisfactory,
        CreditNoteReason::Goodwill,
        CreditNoteReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CreditNoteReason::Duplicate => "duplicate",
            CreditNoteReason::Fraudulent => "fraudulent",
            CreditNoteReason::OrderChange => "order_change",
            CreditNoteReason::ProductUnsatisfactory => "product_unsatisfactory",
            CreditNoteReason::Goodwill => "goodwill",
            CreditNoteReason::Other => "other",
        }
    }
}

impl fmt::Display for CreditNoteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CreditNoteReason {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CreditNoteReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation(
                    "reason",
                    "must be duplicate, fraudulent, order_change, product_unsatisfactory, goodwill or other",
                )
            })
    }
}

/// Where the money of a credit note goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditNoteDestination {
    /// Back to the card, through the gateway (a refund of the invoice's payment).
    Refund,
    /// To the customer's credit balance in the invoice's currency.
    Balance,
}

impl CreditNoteDestination {
    pub fn as_str(self) -> &'static str {
        match self {
            CreditNoteDestination::Refund => "refund",
            CreditNoteDestination::Balance => "balance",
        }
    }
}

impl FromStr for CreditNoteDestination {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "refund" => Ok(CreditNoteDestination::Refund),
            "balance" => Ok(CreditNoteDestination::Balance),
            _ => Err(DomainError::validation(
                "destination",
                "must be refund or balance",
            )),
        }
    }
}

/// The amount of a credit note of `requested` minor units on an invoice that was `paid`,
/// of which `refunded` went back through the gateway and `credited` to the balance: a
/// paid invoice only, a positive amount, at most what remains.
pub fn plan_credit_note(
    status: InvoiceStatus,
    paid: Money,
    refunded: Money,
    credited: Money,
    requested: i64,
) -> Result<Money, DomainError> {
    if status != InvoiceStatus::Paid || paid.is_zero() {
        return Err(DomainError::Conflict {
            code: "invoice_not_paid",
            detail: format!(
                "only an invoice paid by a charge can be credited; this one is {status} with {paid} paid"
            )
            .into(),
        });
    }
    if requested <= 0 {
        return Err(DomainError::validation("amount", "must be positive"));
    }
    let remaining = paid.checked_sub(refunded)?.checked_sub(credited)?;
    if requested > remaining.amount {
        return Err(DomainError::Conflict {
            code: "credit_note_exceeds_invoice",
            detail: format!(
                "the credit note of {} is more than what remains uncredited on the invoice ({remaining})",
                Money::new(requested, paid.currency)
            )
            .into(),
        });
    }
    Ok(Money::new(requested, paid.currency))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::billing::discount::{
        DiscountOutcome, DiscountValue, apply_discounts, discount_line,
    };

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR".parse().unwrap())
    }

    fn usd(amount: i64) -> Money {
        Money::new(amount, "USD".parse().unwrap())
    }

    #[test]
    fn balances_never_go_below_zero() {
        assert_eq!(adjust_balance(eur(0), eur(500)), Ok(eur(500)));
        assert_eq!(adjust_balance(eur(500), eur(-500)), Ok(eur(0)));
        let err = adjust_balance(eur(500), eur(-501)).unwrap_err();
        assert_eq!(err.code(), "balance_insufficient");
        assert!(adjust_balance(eur(500), eur(0)).is_err());
        assert!(adjust_balance(eur(0), eur(MAX_AMOUNT + 1)).is_err());
        assert!(adjust_balance(eur(MAX_AMOUNT), eur(1)).is_err());
        assert!(
            adjust_balance(eur(1), usd(1)).is_err(),
            "currencies do not mix"
        );
    }

    #[test]
    fn an_invoice_uses_the_balance_of_its_currency_up_to_what_is_due() {
        assert_eq!(credit_to_apply(eur(1000), eur(300)), eur(300));
        assert_eq!(credit_to_apply(eur(1000), eur(3000)), eur(1000));
        assert_eq!(credit_to_apply(eur(-50), eur(3000)), eur(0));
        assert_eq!(credit_to_apply(eur(1000), usd(3000)), eur(0));

        let mut lines = vec![InvoiceLine::new(LineKind::Plan, "Gold", eur(2000)).unwrap()];
        let applied = apply_customer_balance(eur(0).currency, &mut lines, eur(700)).unwrap();
        assert_eq!(applied.taken, eur(700));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].kind, LineKind::CustomerBalance);
        assert_eq!(applied.totals.total, eur(2000));
        assert_eq!(applied.totals.credit_applied, eur(-700));
        assert_eq!(applied.totals.amount_due, eur(1300));

        let mut lines = vec![InvoiceLine::new(LineKind::Plan, "Gold", eur(2000)).unwrap()];
        let applied = apply_customer_balance(eur(0).currency, &mut lines, usd(700)).unwrap();
        assert_eq!(
            (applied.taken, lines.len()),
            (eur(0), 1),
            "another currency"
        );
        assert_eq!(applied.totals.amount_due, eur(2000));
    }

    #[test]
    fn credit_notes_never_exceed_what_remains() {
        let paid = InvoiceStatus::Paid;
        assert_eq!(
            plan_credit_note(paid, eur(1000), eur(200), eur(300), 500),
            Ok(eur(500))
        );
        let err = plan_credit_note(paid, eur(1000), eur(200), eur(300), 501).unwrap_err();
        assert_eq!(err.code(), "credit_note_exceeds_invoice");
        assert!(plan_credit_note(paid, eur(1000), eur(0), eur(0), 0).is_err());
        let err = plan_credit_note(InvoiceStatus::Open, eur(0), eur(0), eur(0), 1).unwrap_err();
        assert_eq!(err.code(), "invoice_not_paid");
        for reason in CreditNoteReason::ALL {
            assert_eq!(reason.as_str().parse::<CreditNoteReason>(), Ok(reason));
        }
        assert!("because".parse::<CreditNoteReason>().is_err());
    }

    /// One operation on the way to an invoice.
    #[derive(Clone, Debug)]
    enum Op {
        /// A proration item (signed) from a plan or quantity change.
        Proration(i64),
        /// A one-off charge or credit.
        OneOff(i64),
        /// A discount granted to the subscription.
        Discount(DiscountValue),
        /// A grant (positive) or debit (negative) of the customer's balance.
        Balance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (-500_000i64..500_000).prop_map(Op::Proration),
            (-500_000i64..500_000).prop_map(Op::OneOff),
            (1u32..=100).prop_map(|p| Op::Discount(DiscountValue::Percent(p))),
            (1i64..500_000).prop_map(|a| Op::Discount(DiscountValue::Amount(eur(a)))),
            (-500_000i64..1_000_000).prop_map(Op::Balance),
            (1i64..500_000).prop_map(|a| Op::Discount(DiscountValue::Amount(usd(a)))),
        ]
    }

    proptest! {
        /// One invoice carrying a plan, prorations, one-off items, discounts and the
        /// customer's balance, the operations in any order: the lines, the discount and
        /// the credit applied account for the amount due to the minor unit, and what the
        /// invoice did not use stays on the balance.
        #[test]
        fn an_invoice_with_everything_totals_exactly(
            plan in 0i64..1_000_000,
            ops in prop::collection::vec(op(), 0..25),
        ) {
            let currency = eur(0).currency;
            let mut charges = vec![InvoiceLine::new(LineKind::Plan, "Plan", eur(plan)).unwrap()];
            let mut discounts = Vec::new();
            let mut balance = eur(0);
            for op in &ops {
                match op {
                    Op::Proration(a) => charges.push(InvoiceLine::new(LineKind::Proration, "p", eur(*a)).unwrap()),
                    Op::OneOff(a) => charges.push(InvoiceLine::new(LineKind::OneOff, "o", eur(*a)).unwrap()),
                    Op::Discount(d) => discounts.push(*d),
                    Op::Balance(a) => {
                        // A refused debit (or a change of zero) leaves the balance as it was.
                        if let Ok(after) = adjust_balance(balance, eur(*a)) {
                            balance = after;
                        }
                    }
                }
                prop_assert!(balance.amount >= 0);
            }
            let charged: i64 = charges.iter().map(|l| l.amount.amount).sum();
            let subtotal = invoice::totals(currency, &charges).unwrap().subtotal;
            prop_assert_eq!(subtotal.amount, charged);
            let mut lines = charges.clone();
            let mut discount_total = 0i64;
            for (value, outcome) in discounts.iter().zip(apply_discounts(subtotal, discounts.iter()).unwrap()) {
                if let DiscountOutcome::Applied { taken } = outcome {
                    lines.push(discount_line(value, taken).unwrap());
                    discount_total += taken.amount;
                }
            }
            let applied = apply_customer_balance(currency, &mut lines, balance).unwrap();
            let t = applied.totals;
            let credit_applied = applied.taken.amount;
            // sum of lines − discount − credit applied = amount due − what stays in the
            // customer's favour; each part is what it claims to be.
            prop_assert_eq!(t.subtotal.amount, charged);
            prop_assert_eq!(t.discount.amount, -discount_total);
            prop_assert_eq!(t.credit_applied.amount, -credit_applied);
            prop_assert_eq!(charged - discount_total - credit_applied, t.amount_due.amount - t.credit.amount);
            prop_assert_eq!(lines.iter().map(|l| l.amount.amount).sum::<i64>(), t.amount_due.amount - t.credit.amount);
            prop_assert!(t.amount_due.amount >= 0);
            prop_assert!(discount_total >= 0 && discount_total <= charged.max(0));
            // The balance is used before charging, and never beyond what was due.
            let leftover = balance.amount - credit_applied;
            prop_assert!(leftover >= 0 && credit_applied >= 0);
            prop_assert!(t.amount_due.is_zero() || leftover == 0);
            prop_assert!(credit_applied <= (charged - discount_total).max(0));
            // The order in which the charges were added does not change what is due.
            let mut reversed: Vec<InvoiceLine> = charges.iter().rev().cloned().collect();
            for (value, outcome) in discounts.iter().zip(apply_discounts(subtotal, discounts.iter()).unwrap()) {
                if let DiscountOutcome::Applied { taken } = outcome {
                    reversed.push(discount_line(value, taken).unwrap());
                }
            }
            let again = apply_customer_balance(currency, &mut reversed, balance).unwrap();
            prop_assert_eq!(again.totals, t);
        }
    }
}
