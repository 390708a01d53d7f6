//! Customers: the merchant's subscribers, known by the merchant's own `external_id`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::ids::{CustomerId, TestClockId};
use crate::text;

pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// Free-form key/value pairs for the merchant's own use, stored as given.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the customer's personal data was erased (GDPR); an erased customer keeps its
    /// financial records but gets no new subscriptions or portal sessions.
    pub erased_at: Option<DateTime<Utc>>,
    /// The test clock whose time the customer lives in, chosen at creation and never
    /// changed (see [`crate::test_clock`]); `None` lives in real time.
    pub test_clock_id: Option<TestClockId>,
    /// How the customer wants to hear from the merchant (notices the merchant sends on
    /// Tenure's events, such as `order.upcoming`).
    pub channel_preference: ChannelPreference,
}

/// The channel a customer prefers for the merchant's messages. Tenure sends no message
/// itself: the merchant's messaging reads it from the customer (and the events' customer
/// context) to pick a channel, and `none` asks for no messages at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChannelPreference {
    /// The default: every customer Tenure knows may have an e-mail address.
    #[default]
    Email,
    Sms,
    Push,
    None,
}

impl ChannelPreference {
    pub const ALL: [Self; 4] = [Self::Email, Self::Sms, Self::Push, Self::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::None => "none",
        }
    }

    /// The preference `raw` names (exactly, in lower case), or a validation error on
    /// `channel_preference`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == raw)
            .ok_or_else(|| {
                DomainError::validation("channel_preference", "must be email, sms, push or none")
            })
    }
}

impl Customer {
    /// An erased customer keeps its financial records and takes no new writes: it cannot
    /// be changed, subscribe, pay or sign in (`customer_erased`).
    pub fn ensure_not_erased(&self) -> Result<(), DomainError> {
        match self.erased_at {
            Some(_) => Err(DomainError::Conflict {
                code: "customer_erased",
                detail: "the customer's personal data was erased; it cannot be changed, subscribe or sign in".into(),
            }),
            None => Ok(()),
        }
    }
}

/// Tags are lower-case slugs (`vip`, `beta-tester`, `region:eu`), unique and sorted, so
/// filtering by tag is exact and a tag list compares equal however it was entered.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, DomainError> {
    if tags.len() > MAX_TAGS {
        return Err(DomainError::validation(
            "tags",
            format!("must have at most {MAX_TAGS} entries"),
        ));
    }
    let mut set = BTreeSet::new();
    for tag in tags {
        set.insert(normalize_tag(tag)?);
    }
    Ok(set.into_iter().collect())
}

pub fn normalize_tag(tag: &str) -> Result<String, DomainError> {
    let tag = tag.trim().to_lowercase();
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.');
    if tag.is_empty() || tag.chars().count() > MAX_TAG_CHARS || !tag.chars().all(valid_char) {
        return Err(DomainError::validation(
            "tags",
            format!(
                "each tag must be 1 to {MAX_TAG_CHARS} characters of a-z, 0-9, '-', '_', ':' or '.'"
            ),
        ));
    }
    Ok(tag)
}

/// A BCP 47-looking locale such as `en`, `de-AT` or `zh-Hant-TW`.
pub fn validate_locale(locale: &str) -> Result<String, DomainError> {
    let ok = !locale.is_empty()
        && locale.len() <= 35
        && locale.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if ok {
        Ok(locale.to_owned())
    } else {
        Err(DomainError::validation(
            "locale",
            "must be a BCP 47 language tag such as en or de-AT",
        ))
    }
}

pub fn validate_external_id(external_id: &str) -> Result<String, DomainError> {
    text::clean("external_id", external_id, 255, false)
}

pub fn validate_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DomainError> {
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(DomainError::validation(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        ));
    }
    // PostgreSQL's jsonb cannot hold U+0000 in a key or a string.
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    if metadata.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(DomainError::validation(
            "metadata",
            "must not contain the NUL character (\\u0000) in keys or strings",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_preferences_parse_exactly() {
        for c in ChannelPreference::ALL {
            assert_eq!(ChannelPreference::parse(c.as_str()), Ok(c));
        }
        assert_eq!(ChannelPreference::default(), ChannelPreference::Email);
        for bad in ["", "EMAIL", "e-mail", "letter", " sms"] {
            assert!(ChannelPreference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_normalised_unique_and_sorted() {
        let tags = vec!["VIP".to_owned(), "beta".to_owned(), " vip ".to_owned()];
        assert_eq!(normalize_tags(&tags).unwrap(), vec!["beta", "vip"]);
        assert!(normalize_tag("no spaces").is_err());
        assert!(normalize_tag("").is_err());
        assert!(normalize_tag("'; drop table customers; --").is_err());
    }

    #[test]
    fn metadata_refuses_nul_anywhere() {
        let ok: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"a": ["b", {"c": "🦀"}]}"#).unwrap();
        assert!(validate_metadata(&ok).is_ok());
        for bad in [r#"{"a\u0000": 1}"#, r#"{"a": ["x", {"c": "\u0000"}]}"#] {
            let bad: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(bad).unwrap();
            assert!(validate_metadata(&bad).is_err());
        }
    }

    #[test]
    fn locales() {
        for ok in ["en", "de-AT", "zh-Hant-TW"] {
            assert!(validate_locale(ok).is_ok(), "{ok}");
        }
        for bad in ["", "en_US", "de--AT", "a-verylongpart"] {
            assert!(validate_locale(bad).is_err(), "{bad}");
        }
    }
}
