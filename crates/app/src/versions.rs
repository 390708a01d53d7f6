//! Optimistic concurrency: a resource's version is its update time, which every change
//! moves strictly forward, and a caller may make a change conditional on the version it
//! saw (`If-Match` over HTTP).

use chrono::{DateTime, Utc};

use crate::error::{AppError, AppResult};

/// A strong validator for a resource version: its update time to the microsecond.
pub fn etag(updated_at: DateTime<Utc>) -> String {
    format!("\"{:x}\"", updated_at.timestamp_micros())
}

/// Honours `If-Match`: the change proceeds only if the caller saw the current version.
pub fn check_if_match(if_match: Option<&str>, updated_at: DateTime<Utc>) -> AppResult<()> {
    match if_match {
        None => Ok(()),
        Some(value) if value.trim() == "*" => Ok(()),
        Some(value) => {
            let current = etag(updated_at);
            let matches = value
                .split(',')
                .map(|v| v.trim().trim_start_matches("W/"))
                .any(|v| v == current);
            if matches {
                Ok(())
            } else {
                Err(AppError::PreconditionFailed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_etags() {
        let t = Utc::now();
        assert!(check_if_match(None, t).is_ok());
        assert!(check_if_match(Some("*"), t).is_ok());
        assert!(check_if_match(Some(&etag(t)), t).is_ok());
        assert!(check_if_match(Some(&format!("W/{}", etag(t))), t).is_ok());
        assert!(check_if_match(Some("\"stale\""), t).is_err());
    }
}
