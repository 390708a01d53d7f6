//! Billing periods: when a subscription renews.
//!
//! # Why boundaries are computed from the anchor
//!
//! A monthly subscription that started on January 31st must renew on the last day of
//! February and then on March 31st again. Adding "one month" to the previous boundary
//! would drift to the 28th forever after the first short month, so boundary `k` of a
//! schedule is always `anchor + k × cadence`, computed from the anchor each time, and
//! clamped to the last day of the target month when that month is too short. A yearly
//! schedule anchored on February 29th renews on February 28th in common years and on
//! February 29th again in leap years.
//!
//! Days and weeks are exact multiples of 24 h and 7 × 24 h: times are UTC, which has no
//! daylight-saving jumps. The anchor's time of day (to the nanosecond) is kept.
//!
//! # Range
//!
//! Every computation is checked: a date that leaves the calendar range chrono supports
//! (far beyond year 9000) yields [`DomainError::Validation`] on the field `date`, never a
//! panic. [`MAX_SUPPORTED_YEAR`] documents the range callers should stay in.
//!
//! Periods are half-open `[start, end)`: the instant `end` belongs to the next period, so
//! consecutive periods share a boundary and no instant belongs to two of them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::catalog::MAX_INTERVAL_COUNT;

/// The last calendar year the billing rules promise to handle.
pub const MAX_SUPPORTED_YEAR: i32 = 9000;

/// The unit of a plan's billing cadence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            _ => Err(DomainError::validation(
                "interval",
                "must be one of day, week, month, year",
            )),
        }
    }
}

/// The error for a date computation that leaves the supported calendar.
pub(crate) fn date_out_of_range() -> DomainError {
    DomainError::validation("date", "is outside the supported calendar range")
}

/// A half-open interval of time `[start, end)`; `start < end` holds for every period
/// built by [`Period::new`], the cadence functions or deserialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPeriod")]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RawPeriod {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TryFrom<RawPeriod> for Period {
    type Error = DomainError;

    fn try_from(raw: RawPeriod) -> Result<Self, Self::Error> {
        Period::new(raw.start, raw.end)
    }
}

impl Period {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, DomainError> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(DomainError::validation(
                "period",
                "must end after it starts",
            ))
        }
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// How often a plan bills: every `count` `interval`s (e.g. every 3 months).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawCadence")]
pub struct Cadence {
    interval: Interval,
    count: u32,
}

#[derive(Deserialize)]
struct RawCadence {
    interval: Interval,
    count: u32,
}

impl TryFrom<RawCadence> for Cadence {
    type Error = DomainError;

    fn try_from(raw: RawCadence) -> Result<Self, Self::Error> {
        Cadence::new(raw.interval, raw.count)
    }
}

/// One step of a schedule, in the unit its arithmetic uses.
enum Step {
    Exact(TimeDelta),
    Months(u32),
}

impl Cadence {
    /// `count` must be between 1 and [`MAX_INTERVAL_COUNT`].
    pub fn new(interval: Interval, count: u32) -> Result<Self, DomainError> {
        if !(1..=MAX_INTERVAL_COUNT).contains(&count) {
            return Err(DomainError::validation(
                "interval_count",
                format!("must be between 1 and {MAX_INTERVAL_COUNT}"),
            ));
        }
        Ok(Self { interval, count })
    }

    pub fn monthly() -> Self {
        Self {
            interval: Interval::Month,
            count: 1,
        }
    }

    pub fn interval(self) -> Interval {
        self.interval
    }

    pub fn count(self) -> u32 {
        self.count
    }

    fn step(self) -> Step {
        let count = i64::from(self.count);
        match self.interval {
            // count <= MAX_INTERVAL_COUNT, so these cannot overflow.
            Interval::Day => Step::Exact(TimeDelta::days(count)),
            Interval::Week => Step::Exact(TimeDelta::weeks(count)),
            Interval::Month => Step::Months(self.count),
            Interval::Year => Step::Months(self.count * 12),
        }
    }

    /// Boundary `k` of the schedule anchored at `anchor`: `anchor + k × cadence`, clamped
    /// to the end of a short month. Boundary 0 is the anchor itself.
    pub fn boundary(self, anchor: DateTime<Utc>, k: u32) -> Result<DateTime<Utc>, DomainError> {
        let result = match self.step() {
            Step::Exact(step) => i32::try_from(k)
                .ok()
                .and_then(|k| step.checked_mul(k))
                .and_then(|delta| anchor.checked_add_signed(delta)),
            Step::Months(months) => k
                .checked_mul(months)
                .and_then(|total| anchor.checked_add_months(Months::new(total))),
        };
        result.ok_or_else(date_out_of_range)
    }

    /// Period `k` of the schedule: `[boundary(k), boundary(k + 1))`.
    pub fn period(self, anchor: DateTime<Utc>, k: u32) -> Result<Period, DomainError> {
        let next = k.checked_add(1).ok_or_else(date_out_of_range)?;
        Period::new(self.boundary(anchor, k)?, self.boundary(anchor, next)?)
    }

    /// The first period of a fresh schedule anchored at `anchor`, as when a subscription
    /// starts, its trial ends, or it resumes with a reset anchor.
    pub fn first_period(self, anchor: DateTime<Utc>) -> Result<Period, DomainError> {
        self.period(anchor, 0)
    }

    /// The index `k` of the period that contains `t` (`t >= anchor`).
    pub fn index_containing(
        self,
        anchor: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Result<u32, DomainError> {
        if t < anchor {
            return Err(DomainError::validation(
                "date",
                "is before the start of the billing schedule",
            ));
        }
        let mut k = self.estimate_index(anchor, t)?;
        // The estimate is at most one step off either way; month lengths and the time of
        // day decide the exact side. Boundaries increase strictly, so both loops end.
        while k > 0 && self.boundary(anchor, k)? > t {
            k -= 1;
        }
        loop {
            let next = k.checked_add(1).ok_or_else(date_out_of_range)?;
            if self.boundary(anchor, next)? > t {
                return Ok(k);
            }
            k = next;
        }
    }

    fn estimate_index(self, anchor: DateTime<Utc>, t: DateTime<Utc>) -> Result<u32, DomainError> {
        let estimate = match self.step() {
            Step::Exact(step) => {
                let elapsed = (t - anchor).num_seconds();
                elapsed / step.num_seconds().max(1)
            }
            Step::Months(months) => {
                let elapsed = (i64::from(t.year()) - i64::from(anchor.year())) * 12
                    + i64::from(t.month())
                    - i64::from(anchor.month());
                elapsed.max(0) / i64::from(months.max(1))
            }
        };
        u32::try_from(estimate).map_err(|_| date_out_of_range())
    }

    /// The period of the schedule that contains `t` (`t >= anchor`).
    pub fn period_containing(
        self,
        anchor: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Result<Period, DomainError> {
        self.period(anchor, self.index_containing(anchor, t)?)
    }

    /// The period that follows `current`: it starts where `current` ends and runs to the
    /// next boundary of the schedule. `current` may be a stub (shorter than a full period,
    /// e.g. after a resume that kept the anchor); the next period realigns with the anchor.
    pub fn next_period(
        self,
        anchor: DateTime<Utc>,
        current: &Period,
    ) -> Result<Period, DomainError> {
        let containing = self.period_containing(anchor, current.end)?;
        Period::new(current.end, containing.end)
    }

    /// The rest of the schedule's period that contains `t`: `[t, next boundary)`. This is
    /// the stub period a subscription that resumes mid-period while keeping its anchor
    /// gets before it realigns with its schedule.
    pub fn stub_from(self, anchor: DateTime<Utc>, t: DateTime<Utc>) -> Result<Period, DomainError> {
        Period::new(t, self.period_containing(anchor, t)?.end)
    }
}

impl fmt::Display for Cadence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            write!(f, "every {}", self.interval)
        } else {
            write!(f, "every {} {}s", self.count, self.interval)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 9, 30, 0).unwrap()
    }

    fn boundaries(cadence: Cadence, anchor: DateTime<Utc>, n: u32) -> Vec<DateTime<Utc>> {
        (0..n)
            .map(|k| cadence.boundary(anchor, k).unwrap())
            .collect()
    }

    #[test]
    fn interval_round_trips_as_text() {
        for i in [
            Interval::Day,
            Interval::Week,
            Interval::Month,
            Interval::Year,
        ] {
            assert_eq!(i.as_str().parse::<Interval>().unwrap(), i);
            assert_eq!(i.to_string(), i.as_str());
        }
        assert!("fortnight".parse::<Interval>().is_err());
    }

    #[test]
    fn cadence_count_is_bounded() {
        assert!(Cadence::new(Interval::Month, 0).is_err());
        assert!(Cadence::new(Interval::Month, MAX_INTERVAL_COUNT + 1).is_err());
        assert!(Cadence::new(Interval::Month, MAX_INTERVAL_COUNT).is_ok());
        let bad: Result<Cadence, _> = serde_json::from_str(r#"{"interval":"month","count":0}"#);
        assert!(bad.is_err());
        let good: Cadence = serde_json::from_str(r#"{"interval":"week","count":2}"#).unwrap();
        assert_eq!(good, Cadence::new(Interval::Week, 2).unwrap());
    }

    #[test]
    fn month_end_anchor_clamps_without_drifting() {
        let got = boundaries(Cadence::monthly(), at(2028, 1, 31), 5);
        let want = [
            at(2028, 1, 31),
            at(2028, 2, 29),
            at(2028, 3, 31),
            at(2028, 4, 30),
            at(2028, 5, 31),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn august_31st_anchor() {
        let got = boundaries(Cadence::monthly(), at(2025, 8, 31), 4);
        let want = [
            at(2025, 8, 31),
            at(2025, 9, 30),
            at(2025, 10, 31),
            at(2025, 11, 30),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn leap_day_yearly_anchor_returns_on_leap_years() {
        let yearly = Cadence::new(Interval::Year, 1).unwrap();
        let got = boundaries(yearly, at(2024, 2, 29), 5);
        let want = [
            at(2024, 2, 29),
            at(2025, 2, 28),
            at(2026, 2, 28),
            at(2027, 2, 28),
            at(2028, 2, 29),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn days_and_weeks_are_exact() {
        let anchor = at(2025, 3, 29);
        let weekly = Cadence::new(Interval::Week, 2).unwrap();
        assert_eq!(
            weekly.boundary(anchor, 3).unwrap(),
            anchor + TimeDelta::weeks(6)
        );
        let daily = Cadence::new(Interval::Day, 1).unwrap();
        assert_eq!(
            daily.boundary(anchor, 400).unwrap(),
            anchor + TimeDelta::days(400)
        );
    }

    #[test]
    fn period_containing_on_a_boundary_starts_there() {
        let anchor = at(2028, 1, 31);
        let p = Cadence::monthly()
            .period_containing(anchor, at(2028, 2, 29))
            .unwrap();
        assert_eq!(p, Period::new(at(2028, 2, 29), at(2028, 3, 31)).unwrap());
        let just_before = at(2028, 2, 29) - TimeDelta::nanoseconds(1);
        let p = Cadence::monthly()
            .period_containing(anchor, just_before)
            .unwrap();
        assert_eq!(p.start, anchor);
    }

    #[test]
    fn before_the_anchor_is_an_error() {
        let anchor = at(2028, 1, 31);
        assert!(
            Cadence::monthly()
                .period_containing(anchor, at(2027, 1, 1))
                .is_err()
        );
    }

    #[test]
    fn next_period_after_a_stub_realigns() {
        let anchor = at(2025, 1, 15);
        let stub = Cadence::monthly()
            .stub_from(anchor, at(2025, 3, 2))
            .unwrap();
        assert_eq!(stub, Period::new(at(2025, 3, 2), at(2025, 3, 15)).unwrap());
        let next = Cadence::monthly().next_period(anchor, &stub).unwrap();
        assert_eq!(next, Period::new(at(2025, 3, 15), at(2025, 4, 15)).unwrap());
    }

    #[test]
    fn far_dates_are_errors_not_panics() {
        let yearly = Cadence::new(Interval::Year, MAX_INTERVAL_COUNT).unwrap();
        let anchor = at(9000, 12, 31);
        assert!(yearly.boundary(anchor, u32::MAX).is_err());
        let daily = Cadence::new(Interval::Day, MAX_INTERVAL_COUNT).unwrap();
        assert!(daily.boundary(anchor, u32::MAX).is_err());
        let far = DateTime::<Utc>::MAX_UTC;
        assert!(
            Cadence::monthly()
                .period_containing(at(1970, 1, 1), far)
                .is_err()
        );
        assert!(Period::new(anchor, anchor).is_err());
    }

    #[test]
    fn empty_periods_do_not_deserialize() {
        let json = r#"{"start":"2025-01-01T00:00:00Z","end":"2025-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<Period>(json).is_err());
        let json = r#"{"start":"2025-01-01T00:00:00Z","end":"2025-02-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<Period>(json).is_ok());
    }

    pub(crate) fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let min = at(1970, 1, 1).timestamp();
        let max = Utc
            .with_ymd_and_hms(8990, 12, 31, 0, 0, 0)
            .unwrap()
            .timestamp();
        (min..max).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    pub(crate) fn any_cadence() -> impl Strategy<Value = Cadence> {
        (
            prop_oneof![
                Just(Interval::Day),
                Just(Interval::Week),
                Just(Interval::Month),
                Just(Interval::Year)
            ],
            1..=12u32,
        )
            .prop_map(|(i, c)| Cadence::new(i, c).unwrap())
    }

    proptest! {
        #[test]
        fn consecutive_periods_are_contiguous_and_increasing(
            anchor in any_instant(),
            cadence in any_cadence(),
            first in 0..200u32,
        ) {
            let mut period = cadence.period(anchor, first).unwrap();
            for _ in 0..24 {
                let next = cadence.next_period(anchor, &period).unwrap();
                prop_assert_eq!(next.start, period.end);
                prop_assert!(next.start < next.end);
                prop_assert!(period.start < period.end);
                period = next;
            }
        }

        #[test]
        fn period_k_matches_next_period(anchor in any_instant(), cadence in any_cadence(), k in 0..500u32) {
            let p = cadence.period(anchor, k).unwrap();
            prop_assert_eq!(cadence.next_period(anchor, &p).unwrap(), cadence.period(anchor, k + 1).unwrap());
        }

        #[test]
        fn period_containing_contains_t(
            anchor in any_instant(),
            cadence in any_cadence(),
            offset_secs in 0i64..(5 * 366 * 86_400),
        ) {
            let t = anchor + TimeDelta::seconds(offset_secs);
            let p = cadence.period_containing(anchor, t).unwrap();
            prop_assert!(p.contains(t), "{p:?} does not contain {t}");
            let k = cadence.index_containing(anchor, t).unwrap();
            prop_assert_eq!(cadence.period(anchor, k).unwrap(), p);
        }

        #[test]
        fn month_boundaries_keep_the_anchor_day_when_it_exists(
            anchor in any_instant(),
            k in 0..1000u32,
        ) {
            let b = Cadence::monthly().boundary(anchor, k).unwrap();
            prop_assert_eq!(b.time(), anchor.time());
            let last_day_of_month = b.with_day(b.day() + 1).is_none()
                || (b + TimeDelta::days(1)).month() != b.month();
            prop_assert!(b.day() == anchor.day() || (b.day() < anchor.day() && last_day_of_month));
        }
    }
}
