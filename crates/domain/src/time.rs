//! Time as Tenure keeps it. PostgreSQL stores microseconds, so every time a use case
//! writes is cut to microseconds first: the response to a change and a later read of it
//! then agree to the digit. An update time is also a resource's version (its ETag), so
//! it moves strictly forward with every change.

use chrono::{DateTime, Duration, SubsecRound, Utc};

/// `t` to the microsecond, as PostgreSQL keeps it.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The update time of a changed resource: strictly after the previous one, so that
/// versions change even when two updates land within one clock tick.
pub fn next_update_time(previous: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if now > previous {
        now
    } else {
        previous + Duration::microseconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_are_kept_and_nanoseconds_cut() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate_to_micros(t).timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn an_update_time_always_moves_forward() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            next_update_time(t, t + Duration::seconds(1)),
            t + Duration::seconds(1)
        );
        assert_eq!(next_update_time(t, t), t + Duration::microseconds(1));
        assert_eq!(
            next_update_time(t, t - Duration::seconds(5)),
            t + Duration::microseconds(1)
        );
    }
}
