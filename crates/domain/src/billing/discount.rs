//! Discounts on invoices: how much each active discount of a subscription takes off one
//! invoice.
//!
//! # The rule (the only one)
//!
//! The discounts of a subscription apply in the order given (oldest first) to the
//! invoice's `subtotal` (its plan and proration lines):
//!
//! * a **percent** discount takes `percent` % of the subtotal, rounded half up to the
//!   minor unit (`⌊(subtotal × percent + 50) / 100⌋`), and nothing when the subtotal is
//!   not positive. Every percent discount is computed on the subtotal, not on what
//!   earlier discounts left, so the order only matters at the floor below;
//! * an **amount** discount takes its amount, but only in the invoice's currency: one in
//!   another currency is [`DiscountOutcome::SkippedCurrency`] (not applied and not
//!   consumed; the caller logs it);
//! * whatever the kinds, a discount never takes more than what is left after the earlier
//!   ones, so together they never bring the total below zero: `0 ≤ taken ≤ max(0,
//!   subtotal)`.
//!
//! Every applied discount gives a `discount` line (possibly of zero, which still uses up
//! one of its cycles: a cycle is an invoice, as with Stripe's `repeating` coupons).

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::invoice::{InvoiceLine, LineKind};
use crate::money::{MAX_AMOUNT, Money};

/// What a discount takes off each invoice it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountValue {
    /// 1–100 % of the invoice's subtotal.
    Percent(u32),
    /// A fixed amount (positive, at most [`MAX_AMOUNT`]) in one currency.
    Amount(Money),
}

impl DiscountValue {
    /// Checks the value as a merchant or an offer may grant it.
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            DiscountValue::Percent(p) if !(1..=100).contains(p) => Err(DomainError::validation(
                "percent",
                "must be between 1 and 100",
            )),
            DiscountValue::Amount(m) if !(1..=MAX_AMOUNT).contains(&m.amount) => {
                Err(DomainError::validation(
                    "amount",
                    format!("must be between 1 and {MAX_AMOUNT} minor units"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// A short human label: `20% off`, `5.00 EUR off`.
    pub fn label(&self) -> String {
        match self {
            DiscountValue::Percent(p) => format!("{p}% off"),
            DiscountValue::Amount(m) => format!("{m} off"),
        }
    }
}

/// Checks the number of invoices a discount applies to.
pub fn validate_cycles(cycles: u32) -> Result<(), DomainError> {
    if (1..=MAX_CYCLES).contains(&cycles) {
        Ok(())
    } else {
        Err(DomainError::validation(
            "cycles",
            format!("must be between 1 and {MAX_CYCLES}"),
        ))
    }
}

/// The most invoices one discount may apply to (ten years of monthly invoices).
pub const MAX_CYCLES: u32 = 120;

/// What one discount does to one invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscountOutcome {
    /// Applied: takes `taken` (≥ 0) off the invoice and uses up one cycle.
    Applied { taken: Money },
    /// An amount discount in another currency than the invoice: not applied, not consumed.
    SkippedCurrency,
}

/// `⌊(amount × percent + 50) / 100⌋` for a positive amount: `percent` % rounded half up.
pub fn percent_of(amount: Money, percent: u32) -> Result<Money, DomainError> {
    if amount.amount <= 0 {
        return Ok(Money::zero(amount.currency));
    }
    let raw = (i128::from(amount.amount) * i128::from(percent.min(100)) + 50) / 100;
    let taken = i64::try_from(raw).map_err(|_| DomainError::Overflow)?;
    Ok(Money::new(taken, amount.currency))
}

/// Applies `discounts` (oldest first) to an invoice whose plan and proration lines sum to
/// `subtotal`, by the module's rule. Returns one outcome per discount, in order.
pub fn apply_discounts<'a>(
    subtotal: Money,
    discounts: impl IntoIterator<Item = &'a DiscountValue>,
) -> Result<Vec<DiscountOutcome>, DomainError> {
    let currency = subtotal.currency;
    let mut left = Money::new(subtotal.amount.max(0), currency);
    let mut outcomes = Vec::new();
    for value in discounts {
        let wanted = match value {
            DiscountValue::Percent(p) => percent_of(subtotal, *p)?,
            DiscountValue::Amount(m) if m.currency != currency => {
                outcomes.push(DiscountOutcome::SkippedCurrency);
                continue;
            }
            DiscountValue::Amount(m) => Money::new(m.amount.max(0), currency),
        };
        let taken = Money::new(wanted.amount.min(left.amount), currency);
        left = left.checked_sub(taken)?;
        outcomes.push(DiscountOutcome::Applied { taken });
    }
    Ok(outcomes)
}

/// The invoice line of an applied discount (`−taken`).
pub fn discount_line(value: &DiscountValue, taken: Money) -> Result<InvoiceLine, DomainError> {
    described_discount_line(None, value, taken)
}

/// [`discount_line`] naming where the discount came from: `Discount: Summer sale
/// (SUMMER20): 20% off`.
pub fn described_discount_line(
    description: Option<&str>,
    value: &DiscountValue,
    taken: Money,
) -> Result<InvoiceLine, DomainError> {
    let text = match description {
        Some(d) => format!("Discount: {d}: {}", value.label()),
        None => format!("Discount: {}", value.label()),
    };
    InvoiceLine::new(LineKind::Discount, text, taken.negate())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::billing::invoice::totals;
    use crate::money::Currency;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR".parse::<Currency>().unwrap())
    }

    fn usd(amount: i64) -> Money {
        Money::new(amount, "USD".parse::<Currency>().unwrap())
    }

    fn taken(o: &DiscountOutcome) -> i64 {
        match o {
            DiscountOutcome::Applied { taken } => taken.amount,
            DiscountOutcome::SkippedCurrency => panic!("skipped"),
        }
    }

    #[test]
    fn percent_rounds_half_up_to_the_minor_unit() {
        assert_eq!(percent_of(eur(1999), 20).unwrap().amount, 400); // 399.8
        assert_eq!(percent_of(eur(1234), 50).unwrap().amount, 617); // 617.0
        assert_eq!(percent_of(eur(1), 50).unwrap().amount, 1); // 0.5 → 1
        assert_eq!(percent_of(eur(1), 49).unwrap().amount, 0); // 0.49 → 0
        assert_eq!(percent_of(eur(1010), 15).unwrap().amount, 152); // 151.5 → 152
        assert_eq!(percent_of(eur(0), 20).unwrap().amount, 0);
        assert_eq!(percent_of(eur(-500), 20).unwrap().amount, 0);
    }

    #[test]
    fn percent_of_a_non_positive_subtotal_is_nothing() {
        let out = apply_discounts(eur(-300), &[DiscountValue::Percent(20)]).unwrap();
        assert_eq!(taken(&out[0]), 0);
    }

    #[test]
    fn amounts_take_at_most_what_is_left() {
        let ds = [
            DiscountValue::Percent(50),
            DiscountValue::Amount(eur(800)),
            DiscountValue::Amount(eur(100)),
        ];
        let out = apply_discounts(eur(1000), &ds).unwrap();
        assert_eq!(out.iter().map(taken).collect::<Vec<_>>(), vec![500, 500, 0]);
    }

    #[test]
    fn an_amount_larger_than_the_subtotal_makes_a_zero_total() {
        let out = apply_discounts(eur(1999), &[DiscountValue::Amount(eur(5000))]).unwrap();
        assert_eq!(taken(&out[0]), 1999);
    }

    #[test]
    fn another_currency_is_skipped() {
        let ds = [
            DiscountValue::Amount(usd(100)),
            DiscountValue::Amount(eur(100)),
        ];
        let out = apply_discounts(eur(1000), &ds).unwrap();
        assert_eq!(out[0], DiscountOutcome::SkippedCurrency);
        assert_eq!(taken(&out[1]), 100);
    }

    #[test]
    fn values_are_validated() {
        assert!(DiscountValue::Percent(0).validate().is_err());
        assert!(DiscountValue::Percent(101).validate().is_err());
        assert!(DiscountValue::Percent(100).validate().is_ok());
        assert!(DiscountValue::Amount(eur(0)).validate().is_err());
        assert!(
            DiscountValue::Amount(eur(MAX_AMOUNT + 1))
                .validate()
                .is_err()
        );
        assert!(DiscountValue::Amount(eur(1)).validate().is_ok());
        assert!(validate_cycles(0).is_err());
        assert!(validate_cycles(1).is_ok());
        assert!(validate_cycles(MAX_CYCLES + 1).is_err());
    }

    #[test]
    fn lines_are_negative_discount_lines() {
        let line = discount_line(&DiscountValue::Percent(20), eur(400)).unwrap();
        assert_eq!(line.kind, LineKind::Discount);
        assert_eq!(line.amount, eur(-400));
        assert_eq!(line.description, "Discount: 20% off");
    }

    fn value() -> impl Strategy<Value = DiscountValue> {
        prop_oneof![
            (1u32..=100).prop_map(DiscountValue::Percent),
            (1i64..=MAX_AMOUNT).prop_map(|a| DiscountValue::Amount(eur(a))),
            (1i64..=1000).prop_map(|a| DiscountValue::Amount(usd(a))),
        ]
    }

    proptest! {
        #[test]
        fn discounts_never_take_the_total_below_zero(
            subtotal in -MAX_AMOUNT..=MAX_AMOUNT,
            ds in prop::collection::vec(value(), 0..6),
        ) {
            let out = apply_discounts(eur(subtotal), &ds).unwrap();
            prop_assert_eq!(out.len(), ds.len());
            let mut sum = 0i64;
            let mut lines = vec![InvoiceLine::new(
                if subtotal >= 0 { LineKind::Plan } else { LineKind::Proration },
                "x",
                eur(subtotal),
            ).unwrap()];
            for (o, d) in out.iter().zip(&ds) {
                match (o, d) {
                    (DiscountOutcome::SkippedCurrency, DiscountValue::Amount(m)) => {
                        prop_assert_ne!(m.currency, eur(0).currency);
                    }
                    (DiscountOutcome::SkippedCurrency, _) => prop_assert!(false, "percent skipped"),
                    (DiscountOutcome::Applied { taken }, _) => {
                        prop_assert!(taken.amount >= 0);
                        if let DiscountValue::Percent(p) = d {
                            prop_assert!(taken.amount <= percent_of(eur(subtotal), *p).unwrap().amount);
                        }
                        if let DiscountValue::Amount(m) = d {
                            prop_assert!(taken.amount <= m.amount);
                        }
                        sum += taken.amount;
                        lines.push(discount_line(d, *taken).unwrap());
                    }
                }
            }
            prop_assert!(sum <= subtotal.max(0));
            let t = totals(eur(0).currency, &lines).unwrap();
            prop_assert_eq!(t.discount.amount, -sum);
            if subtotal >= 0 {
                prop_assert!(t.total.amount >= 0);
            } else {
                prop_assert_eq!(sum, 0);
            }
        }

        #[test]
        fn a_lone_percent_is_the_rounded_share(subtotal in 1i64..=MAX_AMOUNT, p in 1u32..=100) {
            let out = apply_discounts(eur(subtotal), &[DiscountValue::Percent(p)]).unwrap();
            let t = taken(&out[0]);
            // |t − subtotal·p/100| ≤ ½, ties up: 100·t − subtotal·p ∈ (−50, 50].
            let diff = 100 * i128::from(t) - i128::from(subtotal) * i128::from(p);
            prop_assert!(diff > -50 && diff <= 50, "diff {}", diff);
        }
    }
}
