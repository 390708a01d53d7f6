//! How long records that only grow (events, webhook deliveries and their attempts) are
//! kept before the background purge removes them (docs/events.md, "Retention").

use crate::DomainError;

/// A retention period in whole days, within the bounds an operator or merchant may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionDays(u16);

impl RetentionDays {
    /// A week: enough for any webhook retry schedule and a weekend's investigation.
    pub const MIN: u16 = 7;
    /// Ten years.
    pub const MAX: u16 = 3650;
    /// The operator's default unless configured (`--retention-days`).
    pub const DEFAULT: RetentionDays = RetentionDays(90);

    pub fn new(days: u32) -> Result<Self, DomainError> {
        u16::try_from(days)
            .ok()
            .filter(|d| (Self::MIN..=Self::MAX).contains(d))
            .map(Self)
            .ok_or_else(|| {
                DomainError::validation(
                    "retention_days",
                    format!("must be between {} and {} days", Self::MIN, Self::MAX),
                )
            })
    }

    pub fn days(self) -> u16 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert!(RetentionDays::new(6).is_err());
        assert_eq!(RetentionDays::new(7).unwrap().days(), 7);
        assert_eq!(RetentionDays::new(3650).unwrap().days(), 3650);
        assert!(RetentionDays::new(3651).is_err());
        assert!(RetentionDays::new(u32::MAX).is_err());
    }
}
