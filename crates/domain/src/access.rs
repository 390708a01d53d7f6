//! What a merchant's secret key may do, and who says they are using it.
//!
//! A key is either unrestricted (every merchant route, as the first key from the
//! operator is) or restricted to a set of scopes, like Stripe's restricted keys: each
//! scope names a resource and an access level, `customers:read` or `customers:write`,
//! and write implies read. Every merchant operation requires exactly one scope (the API
//! derives it from the route); a restricted key without it is refused with
//! `missing_scope`. Scopes are a small bit set, so a key's grant is `Copy` and checking
//! it costs a mask.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;

macro_rules! resources {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What a scope grants access to: a group of merchant routes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Resource {
            $($(#[$doc])* $variant,)*
        }

        impl Resource {
            pub const ALL: &[Resource] = &[$(Resource::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Resource::$variant => $name,)*
                }
            }
        }

        impl FromStr for Resource {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s {
                    $($name => Ok(Resource::$variant),)*
                    _ => Err(()),
                }
            }
        }
    };
}

resources! {
    /// Products and plans.
    Catalog => "catalog",
    /// Customers, their context, notes, tags and erasure; segment settings.
    Customers => "customers",
    /// A customer's full export (`GET /v1/customers/{id}/export`): its payment methods,
    /// invoices, payments, refunds, tickets and events too, so a grant of its own, never
    /// implied by `customers`.
    CustomerExports => "customer_exports",
    /// Customers' payment methods.
    PaymentMethods => "payment_methods",
    /// Subscriptions, their scheduled changes, and cancellation requests.
    Subscriptions => "subscriptions",
    /// Invoices, payments, refunds, billing settings and the dunning policy.
    Billing => "billing",
    /// Minting portal tokens.
    CustomerSessions => "customer_sessions",
    /// The portal's identity providers and CORS origins: who may mint tokens the portal
    /// accepts and which pages may call it, so a grant of its own, never implied by
    /// `customer_sessions` (a leaked minting key must not register its own provider).
    PortalSettings => "portal_settings",
    /// Reading events.
    Events => "events",
    /// Webhook endpoints, their deliveries, and redelivering events.
    Webhooks => "webhooks",
    /// Support tickets.
    Support => "support",
    /// Retention offers.
    Retention => "retention",
    /// Coupons and their promotion codes.
    Coupons => "coupons",
    /// Subscriber metrics.
    Metrics => "metrics",
    /// The merchant's own secret keys.
    ApiKeys => "api_keys",
    /// The audit trail of changes made with the merchant's keys.
    AuditEvents => "audit_events",
    /// The payment gateway's settings: the keys that decide where subscribers' money
    /// goes, so a grant of its own, never implied by `billing`.
    GatewaySettings => "gateway_settings",
    /// Test clocks: creating and advancing a merchant's simulated time (test mode).
    TestClocks => "test_clocks",
    /// Orders and their fulfilment (a warehouse's key needs nothing else).
    Orders => "orders",
}

/// Read (`GET`) or write (every change); write implies read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// One scope, written `resource:access` (`customers:write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub resource: Resource,
    pub access: Access,
}

impl Scope {
    pub const fn new(resource: Resource, access: Access) -> Self {
        Self { resource, access }
    }

    /// Every scope there is, for documentation and the schema's enum.
    pub fn all() -> impl Iterator<Item = Scope> {
        Resource::ALL.iter().flat_map(|&resource| {
            [Access::Read, Access::Write]
                .into_iter()
                .map(move |access| Scope::new(resource, access))
        })
    }

    /// The bit of this exact scope in a [`ScopeSet`].
    fn bit(self) -> u64 {
        let index = Resource::ALL
            .iter()
            .position(|r| *r == self.resource)
            .unwrap_or(0);
        let offset = match self.access {
            Access::Read => 0,
            Access::Write => 1,
        };
        1 << (index * 2 + offset)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource.as_str(), self.access.as_str())
    }
}

impl FromStr for Scope {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        let invalid = || {
            DomainError::validation(
                "scopes",
                format!("`{s}` is not a scope; scopes are resource:read or resource:write"),
            )
        };
        let (resource, access) = s.split_once(':').ok_or_else(invalid)?;
        let resource = resource.parse().map_err(|()| invalid())?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            _ => return Err(invalid()),
        };
        Ok(Scope::new(resource, access))
    }
}

/// A set of scopes. Holding `x:write` implies `x:read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u64);

// Two bits per resource must fit.
const _: () = assert!(Resource::ALL.len() * 2 <= 64);

impl ScopeSet {
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn contains(self, scope: Scope) -> bool {
        let write = Scope::new(scope.resource, Access::Write).bit();
        self.0 & scope.bit() != 0 || self.0 & write != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes as written, each once (`x:read` left out beside `x:write`).
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::all().filter(move |s| {
            self.0 & s.bit() != 0
                && !(s.access == Access::Read
                    && self.0 & Scope::new(s.resource, Access::Write).bit() != 0)
        })
    }

    /// Parses a key's scopes: at least one, each known.
    pub fn parse<S: AsRef<str>>(scopes: &[S]) -> Result<Self, DomainError> {
        let mut set = ScopeSet::default();
        for scope in scopes {
            set.insert(scope.as_ref().parse()?);
        }
        if set.is_empty() {
            return Err(DomainError::validation(
                "scopes",
                "a restricted key needs at least one scope; omit `scopes` for an unrestricted key",
            ));
        }
        Ok(set)
    }
}

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyScopes {
    /// Every merchant route, including routes added later.
    Unrestricted,
    Restricted(ScopeSet),
}

impl KeyScopes {
    pub fn allows(self, scope: Scope) -> bool {
        match self {
            KeyScopes::Unrestricted => true,
            KeyScopes::Restricted(set) => set.contains(scope),
        }
    }

    /// Whether a key with these scopes may do everything a key with `other` may: a key
    /// can only make, roll or revoke keys that grant no more than it holds, so that a
    /// restricted key can never make itself an unrestricted one.
    pub fn covers(self, other: KeyScopes) -> bool {
        match (self, other) {
            (KeyScopes::Unrestricted, _) => true,
            (KeyScopes::Restricted(_), KeyScopes::Unrestricted) => false,
            (KeyScopes::Restricted(mine), KeyScopes::Restricted(theirs)) => {
                theirs.iter().all(|s| mine.contains(s))
            }
        }
    }

    pub fn is_unrestricted(self) -> bool {
        self == KeyScopes::Unrestricted
    }

    /// As stored and shown: `None` for an unrestricted key.
    pub fn to_strings(self) -> Option<Vec<String>> {
        match self {
            KeyScopes::Unrestricted => None,
            KeyScopes::Restricted(set) => Some(set.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// From what is stored: a scope no longer known grants nothing (fails closed).
    pub fn from_stored(scopes: Option<&[String]>) -> Self {
        match scopes {
            None => KeyScopes::Unrestricted,
            Some(list) => {
                let mut set = ScopeSet::default();
                for scope in list.iter().filter_map(|s| s.parse().ok()) {
                    set.insert(scope);
                }
                KeyScopes::Restricted(set)
            }
        }
    }
}

/// How long a rolled key keeps working by default, and at most: long enough to deploy
/// the new key everywhere, short enough that a leaked key does not live on.
pub const DEFAULT_ROLL_EXPIRY_SECS: u32 = 24 * 3600;
pub const MAX_ROLL_EXPIRY_SECS: u32 = 7 * 24 * 3600;
/// The longest a key's name may be.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// The name a merchant's backend gives itself in `Tenure-Agent` (an AI agent, a job, a
/// person's tool), recorded with what it changes. Short and printable: 1 to
/// [`MAX_AGENT_CHARS`] visible ASCII characters or inner spaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Agent(String);

pub const MAX_AGENT_CHARS: usize = 64;

impl Agent {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        let ok = !value.is_empty()
            && value.len() <= MAX_AGENT_CHARS
            && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            && !value.starts_with(' ')
            && !value.ends_with(' ');
        if !ok {
            return Err(DomainError::validation(
                "Tenure-Agent",
                format!(
                    "must be 1 to {MAX_AGENT_CHARS} printable ASCII characters, without leading or trailing spaces"
                ),
            ));
        }
        Ok(Agent(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn scopes_round_trip_and_write_implies_read() {
        for s in Scope::all() {
            assert_eq!(scope(&s.to_string()), s);
        }
        let set = ScopeSet::parse(&["customers:write", "events:read"]).unwrap();
        assert!(set.contains(scope("customers:read")));
        assert!(set.contains(scope("customers:write")));
        assert!(set.contains(scope("events:read")));
        assert!(!set.contains(scope("events:write")));
        assert!(!set.contains(scope("catalog:read")));
        let shown: Vec<_> = set.iter().map(|s| s.to_string()).collect();
        assert_eq!(shown, ["customers:write", "events:read"]);
    }

    #[test]
    fn unknown_or_no_scopes_are_refused() {
        assert!(ScopeSet::parse(&["customers:delete"]).is_err());
        assert!(ScopeSet::parse(&["nothing:read"]).is_err());
        assert!(ScopeSet::parse(&["customers"]).is_err());
        assert!(ScopeSet::parse::<&str>(&[]).is_err());
    }

    #[test]
    fn a_key_covers_only_what_it_holds() {
        let all = KeyScopes::Unrestricted;
        let read = KeyScopes::Restricted(ScopeSet::parse(&["customers:read"]).unwrap());
        let write = KeyScopes::Restricted(ScopeSet::parse(&["customers:write"]).unwrap());
        assert!(all.covers(write) && all.covers(all));
        assert!(write.covers(read) && write.covers(write));
        assert!(!read.covers(write));
        assert!(!write.covers(all));
        assert_eq!(
            KeyScopes::from_stored(Some(&["customers:read".into(), "gone:read".into()])),
            read
        );
    }

    #[test]
    fn agents_are_short_and_printable() {
        assert_eq!(
            Agent::parse("billing-bot 2").unwrap().as_str(),
            "billing-bot 2"
        );
        for bad in ["", " lead", "trail ", "tab\there", "é", &"a".repeat(65)] {
            assert!(Agent::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Agent::parse(&"a".repeat(64)).is_ok());
    }
}

/// Test or live mode, as Stripe has them. A merchant account is two tenants, one per
/// mode, and a credential reaches exactly one of them, so a mode never sees the other's
/// data; the mode is a property of the tenant, not of each row (docs/keys.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Test, Mode::Live];

    pub fn from_livemode(livemode: bool) -> Self {
        if livemode { Mode::Live } else { Mode::Test }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    /// How the secret keys of a tenant in this mode begin.
    pub fn secret_key_prefix(self) -> &'static str {
        match self {
            Mode::Test => "sk_test_",
            Mode::Live => "sk_live_",
        }
    }

    /// The mode a secret key says it is for, by its prefix: keys are only ever made with
    /// their tenant's prefix, and the prefix is part of what is hashed, so telling the
    /// mode needs no lookup.
    pub fn of_secret_key(secret: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mode| secret.starts_with(mode.secret_key_prefix()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod mode_tests {
    use super::Mode;

    #[test]
    fn a_secret_key_names_its_mode_by_its_prefix() {
        for mode in Mode::ALL {
            let key = format!("{}abc", mode.secret_key_prefix());
            assert_eq!(Mode::of_secret_key(&key), Some(mode));
            assert_eq!(Mode::from_livemode(mode.is_live()), mode);
        }
        assert_eq!(Mode::of_secret_key("sk_other_abc"), None);
        assert_eq!(Mode::of_secret_key("sk_tes"), None);
    }
}
