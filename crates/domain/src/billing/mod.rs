//! Billing arithmetic: periods, the terms a subscription is billed on, and proration;
//! invoices, refunds, dunning, the payment gateway seam and card-number detection.

pub mod coupon;
pub mod credit;
pub mod discount;
pub mod dunning;
pub mod gateway;
pub mod gateway_settings;
pub mod invoice;
pub mod pan;
pub mod period;
pub mod proration;
pub mod terms;

pub use period::{Cadence, Interval, Period};
pub use proration::{Proration, ProrationLine, ProrationLineKind};
pub use terms::PlanTerms;
pub mod payment_method;
