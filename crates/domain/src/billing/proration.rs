//! Proration: what a subscriber pays or gets back when they change plan mid-period.
//!
//! # The rounding rule (the only one)
//!
//! Time is measured in whole seconds: `elapsed = ⌊(at − start)⌋ s` and
//! `total = ⌊(end − start)⌋ s`. For a price `p` (integer minor units, `0 ≤ p`):
//!
//! ```text
//! used(p)   = ⌊p × elapsed / total⌋      computed in i128, so it never overflows
//! unused(p) = p − used(p)
//! ```
//!
//! Only `used` is ever rounded, and `unused` is defined as the rest, so
//! `used + unused == p` exactly: no minor unit is created or lost. Rounding `used` down
//! means the subscriber is credited at most one minor unit more than the exact share of
//! the old plan, and charged at most one minor unit more than the exact share of the new
//! one — the same rule applied to both sides.
//!
//! # Lines of a plan change
//!
//! Changing from plan A to plan B at `at` inside the current period `[start, end)`:
//!
//! * a **credit** line of `−unused(price A)` for the rest of the period on A;
//! * a **charge** line for B. When B bills on the same cadence as A, the subscriber keeps
//!   the period and pays `unused(price B)` for its rest. When the cadence differs, the
//!   remainder of the old period has no meaning on B's schedule, so B's schedule starts
//!   afresh at `at` and the charge is one full period of B.
//!
//! The sum of the lines is due now when it is positive. When it is negative (a cheaper
//! plan applied at once), the difference becomes `credit_carried`: a balance in the
//! customer's favour that later invoices consume. It is never dropped, so
//! `sum(lines) == amount_due_now − credit_carried` always holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::period::Period;
use crate::billing::terms::PlanTerms;
use crate::ids::PlanId;
use crate::money::{MAX_AMOUNT, Money};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProrationLineKind {
    /// Money given back to the subscriber (negative amount).
    Credit,
    /// Money owed by the subscriber (positive amount).
    Charge,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProrationLine {
    pub kind: ProrationLineKind,
    pub plan_id: PlanId,
    /// Negative for credits, positive (or zero) for charges.
    pub amount: Money,
    /// The stretch of time the line pays for or gives back.
    pub period: Period,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proration {
    /// The instant the change takes effect.
    pub at: DateTime<Utc>,
    pub lines: Vec<ProrationLine>,
    /// `max(0, sum of lines)`: what the subscriber is invoiced now.
    pub amount_due_now: Money,
    /// `max(0, −sum of lines)`: credit added to the customer's balance.
    pub credit_carried: Money,
}

impl Proration {
    /// The signed sum of all lines.
    pub fn net(&self) -> Result<Money, DomainError> {
        self.amount_due_now.checked_sub(self.credit_carried)
    }
}

/// A price split at an instant: the part that belongs to elapsed time and the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub used: Money,
    pub unused: Money,
}

/// `⌊amount × elapsed / total⌋`, the rounding rule of this module. `elapsed` is clamped to
/// `0..=total`; `total` must be positive and `amount` within `0..=MAX_AMOUNT`.
pub fn used_part(amount: i64, elapsed_secs: i64, total_secs: i64) -> Result<i64, DomainError> {
    if !(0..=MAX_AMOUNT).contains(&amount) {
        return Err(DomainError::Overflow);
    }
    if total_secs <= 0 {
        return Err(DomainError::validation(
            "period",
            "must last at least one second",
        ));
    }
    let elapsed = i128::from(elapsed_secs.clamp(0, total_secs));
    let used = (i128::from(amount) * elapsed).div_euclid(i128::from(total_secs));
    // used <= amount, so it fits in an i64.
    i64::try_from(used).map_err(|_| DomainError::Overflow)
}

/// Splits `price` at `at` inside `period` by the module's rounding rule.
pub fn split(price: Money, period: &Period, at: DateTime<Utc>) -> Result<Split, DomainError> {
    if !period.contains(at) {
        return Err(DomainError::validation(
            "at",
            "must fall inside the current period",
        ));
    }
    let elapsed = (at - period.start).num_seconds();
    let total = period.duration().num_seconds();
    let used = used_part(price.amount, elapsed, total)?;
    Ok(Split {
        used: Money::new(used, price.currency),
        unused: Money::new(price.amount - used, price.currency),
    })
}

/// The proration of switching from `from` to `to` at `at`, inside `period` (the current
/// period of the subscription, billed on `from`). `to_period` is the period the charge
/// covers: the rest of `period` on the same cadence, or `to`'s first period from `at`.
pub fn prorate_change(
    from: &PlanTerms,
    to: &PlanTerms,
    period: &Period,
    at: DateTime<Utc>,
) -> Result<Proration, DomainError> {
    if from.price.currency != to.price.currency {
        return Err(DomainError::CurrencyMismatch {
            expected: from.price.currency.code(),
            found: to.price.currency.code(),
        });
    }
    let rest = Period::new(at, period.end)?;
    let old = split(from.price, period, at)?;
    let credit = ProrationLine {
        kind: ProrationLineKind::Credit,
        plan_id: from.plan_id,
        amount: old.unused.negate(),
        period: rest,
    };
    let (charge_amount, charge_period) = if from.cadence == to.cadence {
        (split(to.price, period, at)?.unused, rest)
    } else {
        (to.price, to.cadence.first_period(at)?)
    };
    let charge = ProrationLine {
        kind: ProrationLineKind::Charge,
        plan_id: to.plan_id,
        amount: charge_amount,
        period: charge_period,
    };
    let net = charge.amount.checked_add(credit.amount)?;
    let currency = net.currency;
    Ok(Proration {
        at,
        lines: vec![credit, charge],
        amount_due_now: Money::new(net.amount.max(0), currency),
        credit_carried: Money::new((-net.amount).max(0), currency),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::billing::period::{Cadence, Interval};
    use crate::ids::GenerateId;
    use crate::money::Currency;

    fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    fn terms(amount: i64, cadence: Cadence) -> PlanTerms {
        PlanTerms::new(PlanId::generate(), Money::new(amount, eur()), cadence).unwrap()
    }

    fn april() -> Period {
        Period::new(
            Utc.with_ymd_and_hms(2025, 4, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2025, 5, 1, 0, 0, 0).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn upgrade_half_way_through_a_month() {
        let a = terms(1000, Cadence::monthly());
        let b = terms(3000, Cadence::monthly());
        let half = april().start + TimeDelta::days(15);
        let p = prorate_change(&a, &b, &april(), half).unwrap();
        assert_eq!(p.lines[0].kind, ProrationLineKind::Credit);
        assert_eq!(p.lines[0].amount.amount, -500);
        assert_eq!(p.lines[1].amount.amount, 1500);
        assert_eq!(p.amount_due_now.amount, 1000);
        assert!(p.credit_carried.is_zero());
        assert_eq!(p.lines[1].period, Period::new(half, april().end).unwrap());
    }

    #[test]
    fn rounding_floors_the_used_part() {
        // 1000 over 3 s, 1 s elapsed: used 333.33 → 333, unused 667.
        let s = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let p = Period::new(s, s + TimeDelta::seconds(3)).unwrap();
        let split = split(Money::new(1000, eur()), &p, s + TimeDelta::seconds(1)).unwrap();
        assert_eq!((split.used.amount, split.unused.amount), (333, 667));
    }

    #[test]
    fn cheaper_plan_now_carries_credit() {
        let a = terms(3000, Cadence::monthly());
        let b = terms(1000, Cadence::monthly());
        let p = prorate_change(&a, &b, &april(), april().start).unwrap();
        assert!(p.amount_due_now.is_zero());
        assert_eq!(p.credit_carried.amount, 2000);
        assert_eq!(p.net().unwrap().amount, -2000);
    }

    #[test]
    fn a_different_cadence_charges_a_full_new_period() {
        let a = terms(1000, Cadence::monthly());
        let b = terms(10_000, Cadence::new(Interval::Year, 1).unwrap());
        let at = april().start + TimeDelta::days(10);
        let p = prorate_change(&a, &b, &april(), at).unwrap();
        assert_eq!(p.lines[1].amount.amount, 10_000);
        assert_eq!(p.lines[1].period.start, at);
        assert_eq!(p.lines[1].period.end, at + TimeDelta::days(365));
    }

    #[test]
    fn mixed_currencies_and_outside_instants_are_refused() {
        let a = terms(1000, Cadence::monthly());
        let mut b = terms(1000, Cadence::monthly());
        b.price.currency = "USD".parse().unwrap();
        assert_eq!(
            prorate_change(&a, &b, &april(), april().start)
                .unwrap_err()
                .code(),
            "currency_mismatch"
        );
        let c = terms(2000, Cadence::monthly());
        assert!(prorate_change(&a, &c, &april(), april().end).is_err());
        assert!(prorate_change(&a, &c, &april(), april().start - TimeDelta::seconds(1)).is_err());
    }

    proptest! {
        #[test]
        fn no_money_is_created_or_lost(
            pa in 0..=MAX_AMOUNT,
            pb in 0..=MAX_AMOUNT,
            start_secs in 0i64..200_000_000_000,
            len_secs in 1i64..(5 * 366 * 86_400),
            at_frac in 0.0f64..1.0,
            same_cadence in any::<bool>(),
        ) {
            let start = DateTime::from_timestamp(start_secs, 0).unwrap();
            let period = Period::new(start, start + TimeDelta::seconds(len_secs)).unwrap();
            let offset = ((len_secs as f64) * at_frac) as i64;
            let at = start + TimeDelta::seconds(offset.min(len_secs - 1));
            let a = terms(pa, Cadence::monthly());
            let b = terms(pb, if same_cadence { Cadence::monthly() } else { Cadence::new(Interval::Week, 1).unwrap() });

            let old = split(a.price, &period, at).unwrap();
            let p = prorate_change(&a, &b, &period, at).unwrap();
            let credit = p.lines[0].amount.amount;
            let charge = p.lines[1].amount.amount;
            prop_assert_eq!(-credit + old.used.amount, pa);
            prop_assert!(old.used.amount >= 0 && old.unused.amount >= 0);
            prop_assert!((0..=pb).contains(&charge));
            if same_cadence {
                let new = split(b.price, &period, at).unwrap();
                prop_assert_eq!(charge, new.unused.amount);
                prop_assert_eq!(charge + (pb - charge), pb);
                prop_assert_eq!(new.used.amount + new.unused.amount, pb);
            } else {
                prop_assert_eq!(charge, pb);
            }
            let sum: i64 = p.lines.iter().map(|l| l.amount.amount).sum();
            prop_assert_eq!(sum, p.amount_due_now.amount - p.credit_carried.amount);
            prop_assert!(p.amount_due_now.amount >= 0 && p.credit_carried.amount >= 0);
            prop_assert!(p.amount_due_now.is_zero() || p.credit_carried.is_zero());
        }

        #[test]
        fn used_part_is_monotonic_in_time(
            p in 0..=MAX_AMOUNT,
            total in 1i64..(5 * 366 * 86_400),
            e1 in 0i64..(5 * 366 * 86_400),
            e2 in 0i64..(5 * 366 * 86_400),
        ) {
            let (lo, hi) = if e1 <= e2 { (e1, e2) } else { (e2, e1) };
            let a = used_part(p, lo, total).unwrap();
            let b = used_part(p, hi, total).unwrap();
            prop_assert!(0 <= a && a <= b && b <= p);
            prop_assert_eq!(used_part(p, total, total).unwrap(), p);
            prop_assert_eq!(used_part(p, 0, total).unwrap(), 0);
        }
    }
}
