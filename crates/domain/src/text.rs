//! Limits on free text from callers, so that a hostile or buggy client cannot store
//! megabytes in a name or smuggle control characters into a support ticket.

use crate::DomainError;

/// Trims `value` and checks it is non-empty, at most `max_chars` long and free of control
/// characters (newlines and tabs are allowed where `multiline`).
pub fn clean(
    field: &'static str,
    value: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::validation(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(DomainError::validation(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !trimmed.chars().all(allowed) {
        return Err(DomainError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Like [`clean`] for an optional field: `None` stays `None`.
pub fn clean_opt(
    field: &'static str,
    value: Option<&str>,
    max_chars: usize,
    multiline: bool,
) -> Result<Option<String>, DomainError> {
    value
        .map(|v| clean(field, v, max_chars, multiline))
        .transpose()
}

/// A minimal e-mail check: one `@` with text on both sides and a dot in the domain. Real
/// validation is delivering mail; this only catches obvious typos.
pub fn email(value: &str) -> Result<String, DomainError> {
    let cleaned = clean("email", value, 254, false)?;
    let ok = match cleaned.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !cleaned.contains(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(cleaned)
    } else {
        Err(DomainError::validation("email", "is not an e-mail address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_and_bounds() {
        assert_eq!(clean("name", "  Ada ", 10, false).unwrap(), "Ada");
        assert!(clean("name", "   ", 10, false).is_err());
        assert!(clean("name", "abcdefghijk", 10, false).is_err());
        assert!(clean("name", "a\u{0}b", 10, false).is_err());
        assert!(clean("name", "a\nb", 10, false).is_err());
        assert!(clean("message", "a\nb", 10, true).is_ok());
    }

    #[test]
    fn email_catches_obvious_mistakes() {
        assert!(email("ada@example.com").is_ok());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
