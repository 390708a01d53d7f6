//! Time comes from a [`Clock`] so that tests can move it forward and watch renewals,
//! scheduled cancellations and pause ends happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock shifted by an offset that tests (and `tenure serve --test-clock`) can
/// advance. Time still flows, so ordering by creation time keeps working.
#[derive(Debug, Default, Clone)]
pub struct TestClock {
    offset_micros: Arc<AtomicI64>,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// Moves the clock to `to` if that is in its future; a clock never goes back.
    pub fn advance_to(&self, to: DateTime<Utc>) {
        let ahead = to - self.now();
        if ahead > Duration::zero() {
            self.advance(ahead);
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::microseconds(self.offset_micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_forward_only() {
        let clock = TestClock::new();
        let start = clock.now();
        clock.advance(Duration::days(31));
        assert!(clock.now() - start >= Duration::days(31));
        let later = clock.now();
        clock.advance_to(start);
        assert!(clock.now() >= later);
    }
}
