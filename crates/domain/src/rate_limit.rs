//! The generic cell rate algorithm (GCRA) behind request limits, as arithmetic on
//! microseconds, so that the in-memory limiter and the one shared through PostgreSQL
//! count the same way.
//!
//! A bucket remembers one instant, its *theoretical arrival time* (TAT). A request at
//! `now` is allowed when `max(TAT, now) + interval <= now + capacity`, and then moves the
//! TAT to `max(TAT, now) + interval`; a refused one leaves it. So `burst` requests pass at
//! once and then one every `interval`.

use std::time::Duration;

/// One limit in the algorithm's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval_us: i64,
    capacity_us: i64,
}

impl Gcra {
    /// `per_second` sustained with `burst` at once; `None` when `per_second` is 0 (the
    /// limit is off). A burst below the rate is raised to it, so the rate is reachable.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        if per_second == 0 {
            return None;
        }
        let burst = i64::from(burst.max(per_second));
        // At least 1 µs, so a rate above a million per second still counts.
        let interval_us = (1_000_000 / i64::from(per_second)).max(1);
        Some(Self {
            interval_us,
            capacity_us: interval_us * burst,
        })
    }

    /// The time one request adds to the bucket.
    pub fn interval_us(self) -> i64 {
        self.interval_us
    }

    /// How far ahead of now the TAT may be after an allowed request (`interval × burst`).
    pub fn capacity_us(self) -> i64 {
        self.capacity_us
    }

    /// The wait before a request would be allowed, given how far ahead of now the TAT of
    /// a bucket that refused one is.
    pub fn wait_after_refusal(self, tat_ahead_us: i64) -> Duration {
        let wait = tat_ahead_us + self.interval_us - self.capacity_us;
        Duration::from_micros(u64::try_from(wait).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The algorithm on one bucket, as the SQL runs it.
    fn take(g: Gcra, tat: &mut i64, now: i64) -> Result<(), Duration> {
        let next = (*tat).max(now) + g.interval_us();
        if next <= now + g.capacity_us() {
            *tat = next;
            Ok(())
        } else {
            Err(g.wait_after_refusal(*tat - now))
        }
    }

    #[test]
    fn the_burst_passes_then_one_per_interval() {
        let g = Gcra::new(2, 3).unwrap();
        let mut tat = 0;
        for _ in 0..3 {
            assert!(take(g, &mut tat, 0).is_ok());
        }
        let wait = take(g, &mut tat, 0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(take(g, &mut tat, 499_999).is_err());
        assert!(take(g, &mut tat, 500_000).is_ok());
        assert!(take(g, &mut tat, 500_000).is_err());
    }

    #[test]
    fn zero_is_off_and_a_small_burst_is_the_rate() {
        assert_eq!(Gcra::new(0, 10), None);
        assert_eq!(Gcra::new(4, 1), Gcra::new(4, 4));
        assert_eq!(Gcra::new(u32::MAX, 0).unwrap().interval_us(), 1);
    }
}
