//! Optimistic concurrency: a resource's version is its update time, which every change
//! moves strictly forward, and a caller may make a change conditional on the version it
//! saw (`If-Match` over HTTP), or skip a read of a version it has (`If-None-Match`).

use chrono::{DateTime, Utc};

use crate::error::{AppError, AppResult};

/// A strong validator for a resource version: its update time to the microsecond.
pub fn etag(updated_at: DateTime<Utc>) -> String {
    format!("\"{:x}\"", updated_at.timestamp_micros())
}

/// Whether a list of entity tags (an `If-Match` or `If-None-Match` value: `*`, or tags
/// separated by commas, weak or strong) names `current`.
pub fn names_etag(list: &str, current: &str) -> bool {
    list.trim() == "*"
        || list
            .split(',')
            .map(|v| v.trim().trim_start_matches("W/"))
            .any(|v| v == current.trim_start_matches("W/"))
}

/// Honours `If-Match`: the change proceeds only if the caller saw the current version.
pub fn check_if_match(if_match: Option<&str>, updated_at: DateTime<Utc>) -> AppResult<()> {
    match if_match {
        Some(list) if !names_etag(list, &etag(updated_at)) => Err(AppError::PreconditionFailed),
        _ => Ok(()),
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
        assert!(check_if_match(Some(&format!("\"a\", {}", etag(t))), t).is_ok());
    }

    #[test]
    fn if_none_match_lists_compare_weakly() {
        assert!(names_etag("\"a\"", "\"a\""));
        assert!(names_etag("W/\"a\"", "\"a\""));
        assert!(names_etag("\"b\", W/\"a\"", "W/\"a\""));
        assert!(names_etag(" * ", "\"a\""));
        assert!(!names_etag("\"b\"", "\"a\""));
        assert!(!names_etag("", "\"a\""));
    }
}
