//! Which web origins may call the customer-facing routes from a browser (CORS): the
//! shape of an origin a merchant or the operator may allow, its one normal spelling, and
//! the limits of a list of them.
//!
//! Two origins match when their normal spellings are equal: the scheme and host in lower
//! case (an internationalised host in its ASCII form), the port only when it is not the
//! scheme's default. That is how a browser serialises the `Origin` header, so a header
//! matches by equality once normalised the same way.

use std::borrow::Cow;
use std::fmt;

use url::{Host, Url};

use crate::error::DomainError;

/// At most this many allowed origins per merchant (and for the operator): a storefront,
/// its staging and preview sites and a few local development ports fit well within it.
pub const MAX_ALLOWED_ORIGINS: usize = 20;

/// An origin in its normal spelling (`https://shop.example.com`,
/// `http://localhost:3000`), as a browser sends it in `Origin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin a browser sent in its `Origin` header, normalised; `None` for `null`
    /// (sandboxed frames, `file:` pages) or anything that is not an http(s) origin, which
    /// no list can allow.
    pub fn from_header(value: &str) -> Option<Origin> {
        parse(value).ok()
    }

    /// An origin a merchant or the operator wants to allow: `scheme://host[:port]` and
    /// nothing more, `https` except for local development (`http://localhost`,
    /// `http://127.0.0.1`, `http://[::1]`, any port). The reason of a refusal says what
    /// was expected.
    pub fn allowed(value: &str) -> Result<Origin, Cow<'static, str>> {
        let origin = parse(value)?;
        if origin.0.starts_with("http://") && !is_local_development(&origin) {
            return Err(
                "must use https (http is accepted only for localhost, 127.0.0.1 and [::1])".into(),
            );
        }
        Ok(origin)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const EXPECTED: &str = "must be an origin: scheme://host[:port], e.g. https://shop.example.com";

fn parse(value: &str) -> Result<Origin, Cow<'static, str>> {
    let value = value.trim();
    if value.contains('*') {
        return Err("wildcards are not accepted: list each origin".into());
    }
    // `Url` would accept `https:shop.example.com` and `https:///shop.example.com`.
    let Some((_, rest)) = value.split_once("://") else {
        return Err(EXPECTED.into());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(EXPECTED.into());
    }
    let url = Url::parse(value).map_err(|_| Cow::Borrowed(EXPECTED))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must use https (or http for local development)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    // `Url` writes the path `/` for `https://host`; anything else was written by the
    // caller. A trailing `/`, `?` or `#` is a URL, not an origin.
    if url.path() != "/"
        || rest.contains(['/', '?', '#'])
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!("{EXPECTED} (no path, query or fragment)").into());
    }
    if url.host().is_none() {
        return Err(EXPECTED.into());
    }
    Ok(Origin(url.origin().ascii_serialization()))
}

fn is_local_development(origin: &Origin) -> bool {
    let Ok(url) = Url::parse(origin.as_str()) else {
        return false;
    };
    match url.host() {
        Some(Host::Domain(name)) => name == "localhost",
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A whole list of origins to allow, each checked and normalised; every bad entry is
/// named by its index under `field` (`allowed_origins[2]`), and so is an entry that
/// repeats an earlier one (after normalisation).
pub fn allowed_origins(field: &str, values: &[String]) -> Result<Vec<Origin>, Vec<DomainError>> {
    if values.len() > MAX_ALLOWED_ORIGINS {
        return Err(vec![DomainError::validation(
            field.to_owned(),
            format!("at most {MAX_ALLOWED_ORIGINS} origins"),
        )]);
    }
    let mut origins: Vec<Origin> = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let entry = format!("{field}[{i}]");
        match Origin::allowed(value) {
            Ok(origin) if origins.contains(&origin) => errors.push(DomainError::validation(
                entry,
                format!("{origin} is listed twice"),
            )),
            Ok(origin) => origins.push(origin),
            Err(reason) => errors.push(DomainError::validation(entry, reason)),
        }
    }
    if errors.is_empty() {
        Ok(origins)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(value: &str) -> Result<String, String> {
        Origin::allowed(value)
            .map(|o| o.0)
            .map_err(|reason| reason.into_owned())
    }

    #[test]
    fn origins_are_normalised_to_what_a_browser_sends() {
        assert_eq!(
            allowed("https://shop.example.com").unwrap(),
            "https://shop.example.com"
        );
        assert_eq!(
            allowed("HTTPS://Shop.Example.COM:443").unwrap(),
            "https://shop.example.com"
        );
        assert_eq!(
            allowed(" https://shop.example.com:8443 ").unwrap(),
            "https://shop.example.com:8443"
        );
        assert_eq!(
            allowed("https://bücher.example").unwrap(),
            "https://xn--bcher-kva.example"
        );
        assert_eq!(
            allowed("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            allowed("http://127.0.0.1:5173").unwrap(),
            "http://127.0.0.1:5173"
        );
        assert_eq!(allowed("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        assert_eq!(allowed("http://localhost:80").unwrap(), "http://localhost");
    }

    #[test]
    fn a_header_matches_the_allowed_spelling() {
        let listed = Origin::allowed("https://Shop.example.com:443").unwrap();
        assert_eq!(
            Origin::from_header("https://shop.example.com"),
            Some(listed.clone())
        );
        assert_ne!(
            Origin::from_header("https://shop.example.com:8443"),
            Some(listed.clone())
        );
        assert_ne!(
            Origin::from_header("http://shop.example.com"),
            Some(listed.clone())
        );
        assert_ne!(
            Origin::from_header("https://evil-shop.example.com"),
            Some(listed)
        );
        assert_eq!(Origin::from_header("null"), None);
        assert_eq!(Origin::from_header("file://"), None);
        assert_eq!(Origin::from_header(""), None);
    }

    #[test]
    fn anything_but_an_origin_is_refused_with_what_was_expected() {
        for bad in [
            "shop.example.com",
            "https://",
            "https:shop.example.com",
            "https:///shop.example.com",
            "https://shop.example.com/",
            "https://shop.example.com/portal",
            "https://shop.example.com?x=1",
            "https://shop.example.com#top",
            "https://user:pw@shop.example.com",
            "https://shop.example.com:99999",
            "ftp://shop.example.com",
            "javascript://shop.example.com",
            "null",
            "",
        ] {
            assert!(allowed(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            allowed("https://*.example.com")
                .unwrap_err()
                .contains("wildcard")
        );
        assert!(allowed("*").unwrap_err().contains("wildcard"));
    }

    #[test]
    fn http_is_for_local_development_only() {
        for bad in [
            "http://shop.example.com",
            "http://127.0.0.2",
            "http://10.0.0.1",
            "http://localhost.example.com",
        ] {
            assert!(allowed(bad).unwrap_err().contains("https"), "{bad:?}");
        }
    }

    #[test]
    fn a_list_names_each_bad_entry_and_repeats_and_has_a_limit() {
        let list = |values: &[&str]| {
            allowed_origins(
                "allowed_origins",
                &values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            list(&["https://a.example", "http://localhost:3000"]).unwrap(),
            vec![
                Origin("https://a.example".into()),
                Origin("http://localhost:3000".into())
            ]
        );
        let errors = list(&[
            "https://a.example",
            "http://a.example",
            "https://A.example:443",
        ])
        .unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                DomainError::Validation { field, .. } => field.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fields, ["allowed_origins[1]", "allowed_origins[2]"]);
        let too_many: Vec<String> = (0..=MAX_ALLOWED_ORIGINS)
            .map(|i| format!("https://s{i}.example"))
            .collect();
        assert!(allowed_origins("allowed_origins", &too_many).is_err());
        assert!(allowed_origins("allowed_origins", &too_many[1..]).is_ok());
    }
}
