//! Billing arithmetic: periods, the terms a subscription is billed on, and proration.

pub mod period;
pub mod proration;
pub mod terms;

pub use period::{Cadence, Interval, Period};
pub use proration::{Proration, ProrationLine, ProrationLineKind};
pub use terms::PlanTerms;
