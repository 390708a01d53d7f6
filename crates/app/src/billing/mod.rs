//! Billing: payment methods, invoices and their payments and refunds, the invoicing of
//! each period, charging through the gateway, prorations of plan changes, and the
//! merchant's billing settings (dunning policy, upcoming-invoice notices).

pub mod charging;
pub mod credits;
pub mod gateway_events;
pub mod gateways;
pub mod invoice_items;
pub mod invoices;
pub mod invoicing;
pub mod payment_methods;
pub mod prorations;
pub mod refunds;
pub mod settings;
