//! The customer context rules: a plan's monthly value (MRR contribution), payment health
//! and segments. Pure functions; the store gathers the facts, the API renders the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::billing::period::Interval;

/// Integer division rounded half up (both operands non-negative, `den > 0`).
pub fn div_round_half_up(num: i128, den: i128) -> i128 {
    (2 * num + den) / (2 * den)
}

/// The monthly value of a price billed every `count` `interval`s, in minor units:
/// `month`: price / count; `year`: price / (12·count); `week`: price·52 / (12·count);
/// `day`: price·365 / (12·count). One integer division at the end, rounded half up.
pub fn monthly_amount(price: i64, interval: Interval, count: u32) -> i64 {
    let count = i128::from(count.max(1));
    let price = i128::from(price.max(0));
    let (num, den) = match interval {
        Interval::Month => (price, count),
        Interval::Year => (price, 12 * count),
        Interval::Week => (price * 52, 12 * count),
        Interval::Day => (price * 365, 12 * count),
    };
    i64::try_from(div_round_half_up(num, den)).unwrap_or(i64::MAX)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentHealth {
    Ok,
    AtRisk,
    Failing,
}

/// The facts payment health is computed from.
#[derive(Clone, Copy, Debug, Default)]
pub struct PaymentFacts {
    /// Declined or failed payment attempts in the last 30 days.
    pub failed_payments_30d: u32,
    /// Subscriptions currently `past_due` or `unpaid`.
    pub delinquent_subscriptions: u32,
    /// The default card has expired.
    pub default_card_expired: bool,
    /// The default card expires within the next 30 days.
    pub default_card_expiring: bool,
}

/// `failing`: a subscription is past_due/unpaid, or two or more failed payments in the
/// last 30 days. `at_risk`: one failed payment in the last 30 days, or the default card
/// expired or expires within 30 days. `ok` otherwise.
pub fn payment_health(f: PaymentFacts) -> PaymentHealth {
    if f.delinquent_subscriptions > 0 || f.failed_payments_30d >= 2 {
        PaymentHealth::Failing
    } else if f.failed_payments_30d == 1 || f.default_card_expired || f.default_card_expiring {
        PaymentHealth::AtRisk
    } else {
        PaymentHealth::Ok
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    New,
    Loyal,
    HighLtv,
    AtRisk,
    Paused,
    Churned,
}

impl Segment {
    pub const ALL: [Segment; 6] = [
        Self::New,
        Self::Loyal,
        Self::HighLtv,
        Self::AtRisk,
        Self::Paused,
        Self::Churned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Loyal => "loyal",
            Self::HighLtv => "high_ltv",
            Self::AtRisk => "at_risk",
            Self::Paused => "paused",
            Self::Churned => "churned",
        }
    }

    pub fn parse(s: &str) -> Option<Segment> {
        Self::ALL.into_iter().find(|seg| seg.as_str() == s)
    }
}

/// What segments are computed from.
#[derive(Clone, Debug, Default)]
pub struct SegmentFacts {
    pub tenure_days: i64,
    /// Lifetime value per currency code.
    pub ltv: BTreeMap<String, i64>,
    /// The merchant's high_ltv threshold per currency code.
    pub high_ltv_thresholds: BTreeMap<String, i64>,
    pub payment_health: Option<PaymentHealth>,
    pub pending_cancellation: bool,
    /// Subscriptions by status (`paused`, `canceled`, …).
    pub subscriptions_total: u32,
    pub subscriptions_live: u32,
    pub subscriptions_paused: u32,
}

pub const NEW_TENURE_DAYS: i64 = 30;
pub const LOYAL_TENURE_DAYS: i64 = 365;

/// new: tenure < 30 days; loyal: tenure ≥ 365 days; high_ltv: the LTV in some currency
/// reaches the merchant's threshold for that currency; at_risk: payment health is not ok
/// or a cancellation is pending; paused: a subscription is paused; churned: had a
/// subscription and none is live (trialing, active, past_due, paused or unpaid).
pub fn segments(f: &SegmentFacts) -> Vec<Segment> {
    let mut out = Vec::new();
    if f.tenure_days < NEW_TENURE_DAYS {
        out.push(Segment::New);
    }
    if f.tenure_days >= LOYAL_TENURE_DAYS {
        out.push(Segment::Loyal);
    }
    let high = f
        .high_ltv_thresholds
        .iter()
        .any(|(currency, threshold)| f.ltv.get(currency).copied().unwrap_or(0) >= *threshold);
    if high {
        out.push(Segment::HighLtv);
    }
    if f.pending_cancellation || f.payment_health.is_some_and(|h| h != PaymentHealth::Ok) {
        out.push(Segment::AtRisk);
    }
    if f.subscriptions_paused > 0 {
        out.push(Segment::Paused);
    }
    if f.subscriptions_total > 0 && f.subscriptions_live == 0 {
        out.push(Segment::Churned);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_amounts_round_half_up() {
        assert_eq!(monthly_amount(1000, Interval::Month, 1), 1000);
        assert_eq!(monthly_amount(1000, Interval::Month, 3), 333);
        assert_eq!(monthly_amount(2000, Interval::Month, 3), 667);
        assert_eq!(monthly_amount(12000, Interval::Year, 1), 1000);
        assert_eq!(monthly_amount(1006, Interval::Year, 1), 84); // 83.83
        assert_eq!(monthly_amount(1002, Interval::Year, 1), 84); // 83.5 -> 84
        assert_eq!(monthly_amount(100, Interval::Week, 1), 433); // 433.33
        assert_eq!(monthly_amount(10, Interval::Day, 1), 304); // 304.17
    }

    #[test]
    fn payment_health_rule() {
        let ok = PaymentFacts::default();
        assert_eq!(payment_health(ok), PaymentHealth::Ok);
        let one = PaymentFacts {
            failed_payments_30d: 1,
            ..ok
        };
        assert_eq!(payment_health(one), PaymentHealth::AtRisk);
        let expiring = PaymentFacts {
            default_card_expiring: true,
            ..ok
        };
        assert_eq!(payment_health(expiring), PaymentHealth::AtRisk);
        let two = PaymentFacts {
            failed_payments_30d: 2,
            ..ok
        };
        assert_eq!(payment_health(two), PaymentHealth::Failing);
        let past_due = PaymentFacts {
            delinquent_subscriptions: 1,
            ..ok
        };
        assert_eq!(payment_health(past_due), PaymentHealth::Failing);
    }

    #[test]
    fn segment_rules() {
        let mut f = SegmentFacts {
            tenure_days: 10,
            ..Default::default()
        };
        assert_eq!(segments(&f), [Segment::New]);
        f.tenure_days = 400;
        f.ltv.insert("EUR".into(), 5000);
        f.high_ltv_thresholds.insert("USD".into(), 100);
        assert_eq!(segments(&f), [Segment::Loyal]);
        f.high_ltv_thresholds.insert("EUR".into(), 5000);
        f.subscriptions_total = 2;
        assert_eq!(
            segments(&f),
            [Segment::Loyal, Segment::HighLtv, Segment::Churned]
        );
        f.subscriptions_live = 1;
        f.subscriptions_paused = 1;
        f.pending_cancellation = true;
        assert_eq!(
            segments(&f),
            [
                Segment::Loyal,
                Segment::HighLtv,
                Segment::AtRisk,
                Segment::Paused
            ]
        );
    }
}
