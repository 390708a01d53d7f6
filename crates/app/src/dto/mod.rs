//! Request and response bodies. They are separate from store rows and convert to and
//! from domain types; each derives `ToSchema` so the OpenAPI document shows exactly what
//! is served.

/// The wire form of a domain enum, as a schema whose `enum` lists exactly the domain's
/// variants: the `From` match is exhaustive, so a new domain variant fails to compile
/// until it is here too. Variants serialize in snake_case, as the domain's `as_str` does.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $dto:ident from $domain:ty { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $dto {
            $($variant),+
        }

        impl From<$domain> for $dto {
            fn from(value: $domain) -> Self {
                match value {
                    $(<$domain>::$variant => Self::$variant),+
                }
            }
        }
    };
}

pub mod access;
pub mod billing;
pub mod catalog;
pub mod common;
pub mod context;
pub mod coupons;
pub mod credits;
pub mod customers;
pub mod events;
pub mod gdpr;
pub mod metrics;
pub mod orders;
pub mod renewals;
pub mod retention;
pub mod sessions;
pub mod stock;
pub mod subscriptions;
pub mod support;
pub mod test_clocks;
pub mod timestamps;
pub mod webhooks;

pub use common::{InMode, ListParams, ListResponse, MoneyDto};
