//! Test clocks: a merchant's own simulated time, as Stripe has them. A customer created on
//! a clock lives in the clock's time (its `frozen_time`) for good: everything that
//! happens to it, whether a request or the engine's rounds, takes the clock's time as
//! "now", and the clock only moves when the merchant advances it.
//!
//! Advancing is a state: the clock is `advancing` towards a target while the engine
//! steps through the due work of its customers in order, then `ready` at the target.

use chrono::{DateTime, Months, TimeZone, Utc};

use crate::DomainError;
use crate::ids::TestClockId;

/// How far one advance may move a clock: two years, enough for two periods of the
/// longest cadence (yearly) as Stripe allows, and a bound on the work one advance does.
pub const MAX_ADVANCE_MONTHS: u32 = 24;

/// The characters a clock's name may have.
pub const MAX_NAME_CHARS: usize = 300;

/// The earliest and latest times a clock may show: far enough from the limits of the
/// date arithmetic (periods, retries, notices) that nothing computed from them overflows.
pub fn earliest_frozen_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub fn latest_frozen_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Which work a round of the engine does: the real-time work of every customer without
/// a clock, or the work of one clock's customers (at the clock's time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkScope {
    RealTime,
    Clock(TestClockId),
}

/// Where a clock is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStatus {
    /// At rest at its `frozen_time`: it may be advanced.
    Ready,
    /// Moving towards `target`; `frozen_time` shows how far the engine has come.
    Advancing { target: DateTime<Utc> },
}

impl ClockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Advancing { .. } => "advancing",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TestClock {
    pub id: TestClockId,
    pub name: Option<String>,
    pub frozen_time: DateTime<Utc>,
    pub status: ClockStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A clock's `frozen_time` on creation: within the clocks' range.
pub fn validate_frozen_time(at: DateTime<Utc>) -> Result<DateTime<Utc>, DomainError> {
    if at < earliest_frozen_time() || at >= latest_frozen_time() {
        return Err(DomainError::validation(
            "frozen_time",
            "must lie between 2000-01-01 and 2100-01-01",
        ));
    }
    Ok(crate::time::truncate_to_micros(at))
}

impl TestClock {
    /// Starts moving the clock to `target`: forward only, at most
    /// [`MAX_ADVANCE_MONTHS`] from where it stands, and not while it is advancing.
    pub fn advance(&self, target: DateTime<Utc>) -> Result<TestClock, DomainError> {
        if let ClockStatus::Advancing { .. } = self.status {
            return Err(DomainError::Conflict {
                code: "test_clock_advancing",
                detail: "the test clock is advancing; wait until its status is ready".into(),
            });
        }
        let target = validate_frozen_time(target)?;
        if target <= self.frozen_time {
            return Err(DomainError::validation(
                "frozen_time",
                "must be later than the clock's current frozen_time (a clock never goes back)",
            ));
        }
        let limit = self
            .frozen_time
            .checked_add_months(Months::new(MAX_ADVANCE_MONTHS))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if target > limit {
            return Err(DomainError::validation(
                "frozen_time",
                format!(
                    "may be at most {MAX_ADVANCE_MONTHS} months after the clock's current frozen_time per advance"
                ),
            ));
        }
        Ok(TestClock {
            status: ClockStatus::Advancing { target },
            ..self.clone()
        })
    }

    /// Whether the clock may be deleted: not while the engine moves it.
    pub fn ensure_deletable(&self) -> Result<(), DomainError> {
        match self.status {
            ClockStatus::Ready => Ok(()),
            ClockStatus::Advancing { .. } => Err(DomainError::Conflict {
                code: "test_clock_advancing",
                detail: "the test clock is advancing; delete it once its status is ready".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GenerateId;
    use proptest::prelude::*;

    fn clock_at(at: DateTime<Utc>) -> TestClock {
        TestClock {
            id: TestClockId::generate(),
            name: None,
            frozen_time: at,
            status: ClockStatus::Ready,
            created_at: at,
            updated_at: at,
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 31, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_clock_advances_forward_within_two_years() {
        let clock = clock_at(start());
        let target = start().checked_add_months(Months::new(24)).unwrap();
        let advancing = clock.advance(target).unwrap();
        assert_eq!(advancing.status, ClockStatus::Advancing { target });
        assert_eq!(advancing.frozen_time, start());
        assert!(
            clock
                .advance(target + chrono::Duration::microseconds(1))
                .is_err()
        );
        assert!(clock.advance(start()).is_err());
    }

    #[test]
    fn an_advancing_clock_refuses_another_advance_and_deletion() {
        let advancing = clock_at(start())
            .advance(start() + chrono::Duration::days(1))
            .unwrap();
        let err = advancing
            .advance(start() + chrono::Duration::days(2))
            .unwrap_err();
        assert_eq!(err.code(), "test_clock_advancing");
        assert_eq!(
            advancing.ensure_deletable().unwrap_err().code(),
            "test_clock_advancing"
        );
    }

    #[test]
    fn frozen_times_outside_the_range_are_refused() {
        assert!(
            validate_frozen_time(earliest_frozen_time() - chrono::Duration::seconds(1)).is_err()
        );
        assert!(validate_frozen_time(latest_frozen_time()).is_err());
        assert!(validate_frozen_time(start()).is_ok());
    }

    proptest! {
        /// Whatever the target, an accepted advance goes forward, by at most the bound.
        #[test]
        fn accepted_advances_move_forward_within_the_bound(secs in -100_000_000i64..200_000_000) {
            let clock = clock_at(start());
            let target = start() + chrono::Duration::seconds(secs);
            if let Ok(next) = clock.advance(target) {
                let ClockStatus::Advancing { target: to } = next.status else {
                    panic!("an accepted advance is advancing");
                };
                prop_assert!(to > clock.frozen_time);
                prop_assert!(to <= start().checked_add_months(Months::new(MAX_ADVANCE_MONTHS)).unwrap());
            } else {
                prop_assert!(secs <= 0 || target > start().checked_add_months(Months::new(MAX_ADVANCE_MONTHS)).unwrap());
            }
        }
    }
}
