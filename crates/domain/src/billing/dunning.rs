//! Dunning: when a failed renewal payment is retried, what happens when retries run out,
//! and when a card counts as expiring soon.
//!
//! # The retry schedule
//!
//! `retry_after_days` are offsets, in days, from the **first** failed attempt of an
//! invoice: the default `[1, 3, 5]` retries one, three and five days after that failure,
//! so a customer is charged at most four times (the renewal and three retries) over five
//! days. Offsets are strictly increasing, so the schedule is the same whether or not a
//! worker ran late. When the last retry fails too, the subscription goes to
//! `final_state`: `canceled`, or `unpaid` (kept, not renewed, until the customer pays).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The most retries a policy may schedule.
pub const MAX_RETRIES: usize = 8;
/// The latest a retry may be scheduled, in days after the first failure.
pub const MAX_RETRY_DAY: u32 = 60;

/// Who asked for a charge, which decides what a decline does to the invoice's schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChargeMode {
    /// The renewal engine, on the schedule: a decline schedules the next retry of the
    /// policy, or ends dunning when none is left.
    Scheduled,
    /// A charge a request sends itself and answers with: the first invoice of a signup
    /// (an earlier version also charged this way when a new default card was set). A
    /// decline leaves the schedule as it was, which for a signup is none: a first payment
    /// is not dunned.
    Immediate,
    /// The merchant (`POST /v1/invoices/{id}/pay`): like `Immediate`, and it also charges
    /// what dunning no longer does (an uncollectible invoice, an open one of a canceled
    /// subscription).
    Manual,
}

impl ChargeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeMode::Scheduled => "scheduled",
            ChargeMode::Immediate => "immediate",
            ChargeMode::Manual => "manual",
        }
    }
}

impl std::str::FromStr for ChargeMode {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ChargeMode::Scheduled,
            ChargeMode::Immediate,
            ChargeMode::Manual,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| DomainError::validation("mode", "is not a charge mode"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningFinalState {
    Canceled,
    Unpaid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningPolicy {
    /// Days after the first failed attempt at which to retry; strictly increasing.
    pub retry_after_days: Vec<u32>,
    /// Where the subscription ends up when the last retry fails.
    pub final_state: DunningFinalState,
}

impl Default for DunningPolicy {
    fn default() -> Self {
        Self {
            retry_after_days: vec![1, 3, 5],
            final_state: DunningFinalState::Canceled,
        }
    }
}

impl DunningPolicy {
    /// A policy whose schedule is valid: at most [`MAX_RETRIES`] offsets, each between 1
    /// and [`MAX_RETRY_DAY`], strictly increasing. An empty schedule is allowed (no
    /// retries: the first failure is final).
    pub fn new(
        retry_after_days: Vec<u32>,
        final_state: DunningFinalState,
    ) -> Result<Self, DomainError> {
        let policy = Self {
            retry_after_days,
            final_state,
        };
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        let days = &self.retry_after_days;
        if days.len() > MAX_RETRIES {
            return Err(DomainError::validation(
                "retry_after_days",
                format!("must have at most {MAX_RETRIES} entries"),
            ));
        }
        if days.iter().any(|d| !(1..=MAX_RETRY_DAY).contains(d)) {
            return Err(DomainError::validation(
                "retry_after_days",
                format!("each entry must be between 1 and {MAX_RETRY_DAY} days"),
            ));
        }
        if days.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DomainError::validation(
                "retry_after_days",
                "must be strictly increasing (days after the first failure)",
            ));
        }
        Ok(())
    }

    /// How many payment attempts an invoice gets in total.
    pub fn max_attempts(&self) -> usize {
        self.retry_after_days.len() + 1
    }

    /// When to try again after `attempts_made` failed attempts (1 after the renewal
    /// charge failed), given the instant of the **first** failure. `None` when the
    /// schedule is exhausted (or nothing has failed yet): apply `final_state`.
    pub fn next_retry(
        &self,
        attempts_made: u32,
        first_failed_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        let days = *self.retry_after_days.get(index)?;
        first_failed_at.checked_add_signed(Duration::days(i64::from(days)))
    }
}

/// The first instant at which a card is no longer valid: cards are valid through the last
/// day of their expiry month, so this is midnight UTC at the start of the next month.
/// `None` for a month outside 1–12 or a year chrono cannot represent.
pub fn card_expires_at(exp_month: u32, exp_year: i32) -> Option<DateTime<Utc>> {
    if !(1..=12).contains(&exp_month) {
        return None;
    }
    let (year, month) = if exp_month == 12 {
        (exp_year.checked_add(1)?, 1)
    } else {
        (exp_year, exp_month + 1)
    };
    let date = NaiveDate::from_ymd_opt(year, month, 1)?;
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?))
}

/// Whether the card has expired at `now`. An invalid expiry counts as expired.
pub fn is_expired(exp_month: u32, exp_year: i32, now: DateTime<Utc>) -> bool {
    card_expires_at(exp_month, exp_year).is_none_or(|end| now >= end)
}

/// Whether the card stops being valid within `days` days of `now` (an expired card does
/// too). A card that expires in November 2026 is valid through November 30th, so on
/// November 1st it expires within 30 days, on October 31st not yet.
pub fn expires_within(exp_month: u32, exp_year: i32, now: DateTime<Utc>, days: u32) -> bool {
    match card_expires_at(exp_month, exp_year) {
        None => true,
        Some(end) => now
            .checked_add_signed(Duration::days(i64::from(days)))
            .is_none_or(|horizon| end <= horizon),
    }
}

/// The default "expiring soon" horizon for payment methods.
pub const EXPIRING_SOON_DAYS: u32 = 30;

/// A card's expiry month as one number, `year * 12 + month - 1`, so that a range of
/// months is a range of integers (what the store's index on payment methods keys by).
pub fn expiry_month_index(exp_month: u32, exp_year: i32) -> i64 {
    i64::from(exp_year) * 12 + i64::from(exp_month) - 1
}

/// The expiry months ([`expiry_month_index`]) of the cards that are still valid at `now`
/// and stop being valid within `days` days: exactly those for which
/// `expires_within(..) && !is_expired(..)` holds. Empty (`lo > hi`) when no month ends
/// in that window.
pub fn expiry_months_ending_within(now: DateTime<Utc>, days: u32) -> (i64, i64) {
    let month_of_now = expiry_month_index(now.month(), now.year());
    let horizon = now
        .checked_add_signed(Duration::days(i64::from(days)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    // A card of month k is valid until the first instant of month k + 1: still valid at
    // `now` when k >= now's month, ended by the horizon when k + 1 <= the horizon's month.
    (
        month_of_now,
        expiry_month_index(horizon.month(), horizon.year()) - 1,
    )
}

/// The current month as (month, year), handy for tests and validation.
pub fn month_of(now: DateTime<Utc>) -> (u32, i32) {
    (now.month(), now.year())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn default_policy_retries_after_one_three_and_five_days() {
        let p = DunningPolicy::default();
        assert_eq!(p.retry_after_days, vec![1, 3, 5]);
        assert_eq!(p.final_state, DunningFinalState::Canceled);
        assert_eq!(p.max_attempts(), 4);
        let failed = at(2026, 11, 25, 10);
        assert_eq!(p.next_retry(0, failed), None);
        assert_eq!(p.next_retry(1, failed), Some(at(2026, 11, 26, 10)));
        assert_eq!(p.next_retry(2, failed), Some(at(2026, 11, 28, 10)));
        assert_eq!(p.next_retry(3, failed), Some(at(2026, 11, 30, 10)));
        assert_eq!(p.next_retry(4, failed), None);
        assert_eq!(p.next_retry(u32::MAX, failed), None);
    }

    #[test]
    fn policies_are_validated() {
        use DunningFinalState::*;
        assert!(DunningPolicy::new(vec![], Unpaid).is_ok());
        assert!(DunningPolicy::new(vec![2, 4, 8, 16], Unpaid).is_ok());
        assert!(DunningPolicy::new(vec![0, 1], Canceled).is_err());
        assert!(DunningPolicy::new(vec![3, 3], Canceled).is_err());
        assert!(DunningPolicy::new(vec![5, 1], Canceled).is_err());
        assert!(DunningPolicy::new(vec![61], Canceled).is_err());
        assert!(DunningPolicy::new((1..=9).collect(), Canceled).is_err());
        let json = serde_json::to_value(DunningPolicy::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"retry_after_days": [1, 3, 5], "final_state": "canceled"})
        );
    }

    proptest! {
        #[test]
        fn the_expiry_window_holds_exactly_the_cards_expiring_soon(
            month in 1u32..=12,
            year in 2024i32..2030,
            offset_hours in 0i64..(24 * 365 * 6),
            days in 0u32..90,
        ) {
            let now = at(2024, 1, 1, 0) + Duration::hours(offset_hours);
            let (lo, hi) = expiry_months_ending_within(now, days);
            let k = expiry_month_index(month, year);
            prop_assert_eq!(
                (lo..=hi).contains(&k),
                expires_within(month, year, now, days) && !is_expired(month, year, now)
            );
        }
    }

    #[test]
    fn cards_are_valid_through_the_last_day_of_their_month() {
        assert_eq!(card_expires_at(11, 2026), Some(at(2026, 12, 1, 0)));
        assert_eq!(card_expires_at(12, 2026), Some(at(2027, 1, 1, 0)));
        assert_eq!(card_expires_at(2, 2028), Some(at(2028, 3, 1, 0)));
        assert_eq!(card_expires_at(0, 2026), None);
        assert_eq!(card_expires_at(13, 2026), None);

        assert!(!is_expired(11, 2026, at(2026, 11, 30, 23)));
        assert!(is_expired(11, 2026, at(2026, 12, 1, 0)));
        assert!(is_expired(13, 2026, at(2000, 1, 1, 0)));

        assert!(expires_within(11, 2026, at(2026, 11, 1, 0), 30));
        assert!(!expires_within(11, 2026, at(2026, 10, 31, 23), 30));
        assert!(expires_within(11, 2020, at(2026, 1, 1, 0), 30), "expired");
        assert!(!expires_within(12, 2034, at(2026, 11, 25, 0), 30));
    }

    proptest! {
        #[test]
        fn retries_are_strictly_later_and_end(days in prop::collection::btree_set(1u32..=60, 0..=8)) {
            let policy = DunningPolicy::new(days.into_iter().collect(), DunningFinalState::Unpaid).unwrap();
            let failed = at(2026, 1, 31, 12);
            let mut previous = failed;
            for n in 1..=u32::try_from(policy.retry_after_days.len()).unwrap() {
                let next = policy.next_retry(n, failed).unwrap();
                prop_assert!(next > previous);
                previous = next;
            }
            prop_assert_eq!(policy.next_retry(u32::try_from(policy.max_attempts()).unwrap(), failed), None);
        }

        #[test]
        fn expiring_soon_is_monotonic_in_time(month in 1u32..=12, year in 2020i32..2040, day_offset in 0i64..8000, days in 0u32..120) {
            let now = at(2020, 1, 1, 0) + Duration::days(day_offset);
            let later = now + Duration::days(1);
            if expires_within(month, year, now, days) {
                prop_assert!(expires_within(month, year, later, days));
            }
            if is_expired(month, year, now) {
                prop_assert!(expires_within(month, year, now, days));
            }
        }
    }
}
