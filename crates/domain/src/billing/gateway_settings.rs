//! A merchant's choice of payment gateway and the keys it gives Tenure, checked before
//! anything is stored. The keys are secrets: only their last four characters are ever
//! shown again.

use std::fmt;
use std::str::FromStr;

use crate::error::DomainError;

/// Where a merchant's charges go. A merchant without settings uses the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatewayProvider {
    /// The built-in deterministic gateway (`pm_card_visa` …), for development and tests.
    Sandbox,
    /// Stripe, with the merchant's own account keys.
    Stripe,
}

impl GatewayProvider {
    pub const ALL: [GatewayProvider; 2] = [GatewayProvider::Sandbox, GatewayProvider::Stripe];

    pub fn as_str(self) -> &'static str {
        match self {
            GatewayProvider::Sandbox => "sandbox",
            GatewayProvider::Stripe => "stripe",
        }
    }
}

impl fmt::Display for GatewayProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GatewayProvider {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| DomainError::validation("provider", "must be `sandbox` or `stripe`"))
    }
}

/// Test or live keys. Stripe keys say which in their prefix, and the three keys of one
/// setting must agree (a live secret key with a test publishable key cannot work).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Test,
    Live,
}

const MAX_KEY_LEN: usize = 255;

fn key_mode(
    field: &'static str,
    value: &str,
    prefixes: &[&str],
) -> Result<Option<KeyMode>, DomainError> {
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(DomainError::validation(
            field,
            format!("must be 1 to {MAX_KEY_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(DomainError::validation(
            field,
            "may contain only letters, digits and underscores",
        ));
    }
    let Some(prefix) = prefixes.iter().find(|p| value.starts_with(*p)) else {
        return Err(DomainError::validation(
            field,
            format!("must start with {}", prefixes.join(" or ")),
        ));
    };
    if value.len() <= prefix.len() {
        return Err(DomainError::validation(field, "is only a prefix"));
    }
    Ok(if prefix.contains("test") {
        Some(KeyMode::Test)
    } else if prefix.contains("live") {
        Some(KeyMode::Live)
    } else {
        None
    })
}

/// Stripe keys as the merchant gave them, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeKeys {
    /// `sk_test_…`/`sk_live_…` (or a restricted `rk_…`): the API key Tenure calls with.
    pub secret_key: String,
    /// `whsec_…`: what Stripe signs the events it sends Tenure with.
    pub webhook_secret: Option<String>,
    /// `pk_test_…`/`pk_live_…`: handed to the frontend for Stripe.js.
    pub publishable_key: String,
}

impl fmt::Debug for StripeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeKeys")
            .field("secret_key", &last4(&self.secret_key))
            .field("webhook_secret", &self.webhook_secret.as_deref().map(last4))
            .field("publishable_key", &self.publishable_key)
            .finish()
    }
}

impl StripeKeys {
    /// Checks every key; every problem is reported, each on its field.
    pub fn new(
        secret_key: String,
        webhook_secret: Option<String>,
        publishable_key: String,
    ) -> Result<Self, Vec<DomainError>> {
        let mut errors = Vec::new();
        let secret = key_mode(
            "secret_key",
            &secret_key,
            &["sk_test_", "sk_live_", "rk_test_", "rk_live_"],
        )
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
        let publishable = key_mode(
            "publishable_key",
            &publishable_key,
            &["pk_test_", "pk_live_"],
        )
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
        if let Some(w) = &webhook_secret
            && let Err(e) = key_mode("webhook_secret", w, &["whsec_"])
        {
            errors.push(e);
        }
        if let (Some(s), Some(p)) = (secret, publishable)
            && s != p
        {
            errors.push(DomainError::validation(
                "publishable_key",
                "must be of the same mode (test or live) as secret_key",
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                secret_key,
                webhook_secret,
                publishable_key,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether these keys move real money: the publishable key's prefix says (it agrees
    /// with the secret key's, checked in [`StripeKeys::new`]).
    pub fn mode(&self) -> KeyMode {
        if self.publishable_key.starts_with("pk_live_") {
            KeyMode::Live
        } else {
            KeyMode::Test
        }
    }

    /// Refuses keys whose mode is not the tenant's: a test tenant (where test clocks make
    /// months pass in minutes) must never charge through live keys, and a live tenant
    /// never "collects" through Stripe's test mode.
    pub fn check_tenant_mode(&self, tenant_is_live: bool) -> Result<(), DomainError> {
        let live = self.mode() == KeyMode::Live;
        if live == tenant_is_live {
            return Ok(());
        }
        Err(DomainError::validation(
            "secret_key",
            if tenant_is_live {
                "must be a live key (sk_live_ or rk_live_) in live mode"
            } else {
                "must be a test key (sk_test_ or rk_test_) in test mode: use an sk_live_ Tenure key to connect live Stripe keys"
            },
        ))
    }
}

/// The last four characters of a secret: all that is shown of it.
pub fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_of_the_tenant_s_mode() {
        let test = StripeKeys::new("sk_test_a".into(), None, "pk_test_b".into()).unwrap();
        let live = StripeKeys::new("rk_live_a".into(), None, "pk_live_b".into()).unwrap();
        assert_eq!((test.mode(), live.mode()), (KeyMode::Test, KeyMode::Live));
        assert!(test.check_tenant_mode(false).is_ok());
        assert!(live.check_tenant_mode(true).is_ok());
        assert!(test.check_tenant_mode(true).is_err());
        assert!(live.check_tenant_mode(false).is_err());
    }

    #[test]
    fn provider_round_trips_and_refuses_others() {
        for p in GatewayProvider::ALL {
            assert_eq!(p.as_str().parse::<GatewayProvider>().unwrap(), p);
        }
        assert!("paypal".parse::<GatewayProvider>().is_err());
    }

    #[test]
    fn stripe_keys_are_checked_and_must_agree_on_mode() {
        let ok = StripeKeys::new(
            "sk_test_abc123".into(),
            Some("whsec_xyz".into()),
            "pk_test_abc".into(),
        )
        .unwrap();
        assert!(!format!("{ok:?}").contains("abc123"));
        let errors = StripeKeys::new("pk_test_x".into(), Some("nope".into()), "sk_test_y".into())
            .unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                DomainError::Validation { field, .. } => field.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fields, ["secret_key", "publishable_key", "webhook_secret"]);
        let mixed = StripeKeys::new("sk_live_a".into(), None, "pk_test_b".into()).unwrap_err();
        assert_eq!(mixed.len(), 1);
        assert!(StripeKeys::new("sk_test_".into(), None, "pk_test_b".into()).is_err());
        assert!(StripeKeys::new("sk_test_a b".into(), None, "pk_test_b".into()).is_err());
    }

    #[test]
    fn last4_shows_only_the_end() {
        assert_eq!(last4("sk_test_1234abcd"), "abcd");
        assert_eq!(last4("ab"), "ab");
    }
}
