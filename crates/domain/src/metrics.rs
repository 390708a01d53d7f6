//! The arithmetic of subscriber metrics (docs/metrics.md): exact rates as decimal strings
//! and money ratios in integer minor units. No floats: every figure is computed from
//! integers with one rounding (half up) at the end.

use crate::context::div_round_half_up;

/// Decimal places of every rate (`"0.2500"` is 25 %).
pub const RATE_PLACES: u32 = 4;

/// Seconds in the 30-day month used to scale churn to a monthly rate.
pub const MONTH_SECS: i128 = 30 * 86_400;

/// `num / den` as a decimal string with [`RATE_PLACES`] places, rounded half up;
/// `None` when `den` is not positive (the rate is undefined) or `num` is negative.
pub fn rate(num: i64, den: i64) -> Option<String> {
    if den <= 0 || num < 0 {
        return None;
    }
    let scale = 10i128.pow(RATE_PLACES);
    let scaled = div_round_half_up(i128::from(num) * scale, i128::from(den));
    let whole = scaled / scale;
    let frac = scaled % scale;
    Some(format!(
        "{whole}.{frac:0width$}",
        width = RATE_PLACES as usize
    ))
}

/// Average revenue per subscriber: `mrr / subscribers` in minor units, rounded half up;
/// `None` without subscribers.
pub fn arpu(mrr: i64, subscribers: i64) -> Option<i64> {
    if subscribers <= 0 || mrr < 0 {
        return None;
    }
    i64::try_from(div_round_half_up(i128::from(mrr), i128::from(subscribers))).ok()
}

/// The lifetime value estimate `ARPU / monthly logo churn rate`, where the monthly rate
/// is the period's `churned / active_at_start` scaled from `period_secs` to 30 days:
/// `arpu · active_at_start · period_secs / (churned · 30 days)`, rounded half up.
/// `None` when nothing churned (the estimate is unbounded) or an input is missing.
pub fn ltv_estimate(
    arpu: Option<i64>,
    active_at_start: i64,
    churned: i64,
    period_secs: i64,
) -> Option<i64> {
    let arpu = arpu?;
    if churned <= 0 || active_at_start <= 0 || period_secs <= 0 || arpu < 0 {
        return None;
    }
    let num = i128::from(arpu)
        .checked_mul(i128::from(active_at_start))?
        .checked_mul(i128::from(period_secs))?;
    let den = i128::from(churned).checked_mul(MONTH_SECS)?;
    i64::try_from(div_round_half_up(num, den)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_are_exact_decimal_strings() {
        assert_eq!(rate(1, 4).as_deref(), Some("0.2500"));
        assert_eq!(rate(1, 3).as_deref(), Some("0.3333"));
        assert_eq!(rate(2, 3).as_deref(), Some("0.6667"));
        assert_eq!(rate(0, 7).as_deref(), Some("0.0000"));
        assert_eq!(rate(3, 3).as_deref(), Some("1.0000"));
        assert_eq!(rate(1, 0), None);
        // Half up at the fifth place: 1/32 = 0.03125.
        assert_eq!(rate(1, 32).as_deref(), Some("0.0313"));
    }

    #[test]
    fn arpu_and_ltv() {
        assert_eq!(arpu(3001, 2), Some(1501));
        assert_eq!(arpu(100, 0), None);
        // 30-day period, 4 active at start, 1 churned: monthly churn 0.25, LTV = 4 × ARPU.
        assert_eq!(ltv_estimate(Some(1500), 4, 1, 30 * 86_400), Some(6000));
        // A 60-day period halves the monthly churn rate: LTV doubles.
        assert_eq!(ltv_estimate(Some(1500), 4, 1, 60 * 86_400), Some(12_000));
        assert_eq!(ltv_estimate(Some(1500), 4, 0, 30 * 86_400), None);
        assert_eq!(ltv_estimate(None, 4, 1, 30 * 86_400), None);
    }

    proptest! {
        #[test]
        fn rate_matches_the_rational(num in 0i64..1_000_000, den in 1i64..1_000_000) {
            let text = rate(num, den).unwrap();
            let (whole, frac) = text.split_once('.').unwrap();
            prop_assert_eq!(frac.len(), RATE_PLACES as usize);
            let scaled: i128 = format!("{whole}{frac}").parse().unwrap();
            // |scaled/10^4 - num/den| <= 1/2 · 10^-4
            let diff = (scaled * i128::from(den) - i128::from(num) * 10_000).abs();
            prop_assert!(2 * diff <= i128::from(den));
        }

        #[test]
        fn ltv_never_panics(arpu in any::<i64>(), a in any::<i64>(), c in any::<i64>(), s in any::<i64>()) {
            let _ = ltv_estimate(Some(arpu), a, c, s);
        }
    }
}
