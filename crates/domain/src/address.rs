//! Shipping addresses: what a customer's address book holds and what an order keeps as
//! the snapshot of where it ships. Checked here once, for the merchant's API and the
//! portal alike.

use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::text;

/// The longest a line of an address may be (characters).
pub const MAX_LINE_CHARS: usize = 200;
/// The longest a postal code may be (characters).
pub const MAX_POSTAL_CODE_CHARS: usize = 20;
/// How many addresses one customer may keep.
pub const MAX_ADDRESSES_PER_CUSTOMER: usize = 50;

/// A postal address. `country` is an ISO 3166-1 alpha-2 code in upper case; `state` and
/// `postal_code` are optional because many countries have neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Who receives the parcel.
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
    pub phone: Option<String>,
}

/// An address as a caller sent it, before it is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressInput<'a> {
    pub name: Option<&'a str>,
    pub line1: Option<&'a str>,
    pub line2: Option<&'a str>,
    pub city: Option<&'a str>,
    pub state: Option<&'a str>,
    pub postal_code: Option<&'a str>,
    pub country: Option<&'a str>,
    pub phone: Option<&'a str>,
}

impl Address {
    /// Checks every field at once and reports each invalid one: `name`, `line1`, `city`
    /// and `country` are required; `country` must be an assigned ISO 3166-1 alpha-2 code
    /// (any case; kept in upper case).
    pub fn parse(input: &AddressInput<'_>) -> Result<Address, Vec<DomainError>> {
        let mut errors = Vec::new();
        let mut required = |field: &'static str, value: Option<&str>| match value {
            None => {
                errors.push(DomainError::validation(field, "is required"));
                None
            }
            Some(v) => text::clean(field, v, MAX_LINE_CHARS, false)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        let name = required("name", input.name);
        let line1 = required("line1", input.line1);
        let city = required("city", input.city);
        let country = required("country", input.country);
        let mut optional = |field: &'static str, value: Option<&str>, max: usize| {
            // An empty optional line means "none", as a form would send it.
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => match text::clean(field, v, max, false) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            }
        };
        let line2 = optional("line2", input.line2, MAX_LINE_CHARS);
        let state = optional("state", input.state, MAX_LINE_CHARS);
        let postal_code = optional("postal_code", input.postal_code, MAX_POSTAL_CODE_CHARS);
        let phone = optional("phone", input.phone, 40);
        let country = country.and_then(|c| match country_code(&c) {
            Some(code) => Some(code),
            None => {
                errors.push(DomainError::validation(
                    "country",
                    "must be an ISO 3166-1 alpha-2 country code, such as US or FR",
                ));
                None
            }
        });
        match (name, line1, city, country) {
            (Some(name), Some(line1), Some(city), Some(country)) if errors.is_empty() => {
                Ok(Address {
                    name,
                    line1,
                    line2,
                    city,
                    state,
                    postal_code,
                    country,
                    phone,
                })
            }
            _ => Err(errors),
        }
    }

    /// The address as an input, for an update that replaces some of its fields.
    pub fn as_input(&self) -> AddressInput<'_> {
        AddressInput {
            name: Some(&self.name),
            line1: Some(&self.line1),
            line2: self.line2.as_deref(),
            city: Some(&self.city),
            state: self.state.as_deref(),
            postal_code: self.postal_code.as_deref(),
            country: Some(&self.country),
            phone: self.phone.as_deref(),
        }
    }
}

/// The assigned ISO 3166-1 alpha-2 code `value` names, in upper case.
pub fn country_code(value: &str) -> Option<String> {
    let upper = value.trim().to_ascii_uppercase();
    COUNTRY_CODES.binary_search(&upper.as_str()).ok()?;
    Some(upper)
}

/// The officially assigned ISO 3166-1 alpha-2 codes, sorted.
pub const COUNTRY_CODES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AddressInput<'static> {
        AddressInput {
            name: Some("Ada Lovelace"),
            line1: Some("12 Rue de la Paix"),
            line2: Some(""),
            city: Some("Paris"),
            state: None,
            postal_code: Some("75002"),
            country: Some("fr"),
            phone: None,
        }
    }

    #[test]
    fn a_complete_address_is_kept_trimmed_with_its_country_in_upper_case() {
        let a = Address::parse(&input()).unwrap();
        assert_eq!(a.country, "FR");
        assert_eq!(a.line2, None, "an empty optional line is none");
        assert_eq!(a.postal_code.as_deref(), Some("75002"));
    }

    #[test]
    fn every_missing_or_invalid_field_is_reported_at_once() {
        let errors = Address::parse(&AddressInput {
            country: Some("XX"),
            postal_code: Some("123456789012345678901"),
            ..AddressInput::default()
        })
        .unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                DomainError::Validation { field, .. } => field.to_string(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(fields, ["name", "line1", "city", "postal_code", "country"]);
    }

    #[test]
    fn country_codes_are_sorted_assigned_pairs_of_letters() {
        assert!(COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(COUNTRY_CODES.len(), 249);
        assert_eq!(country_code(" gb "), Some("GB".to_owned()));
        assert_eq!(country_code("UK"), None, "UK is reserved, not assigned");
        assert_eq!(country_code("USA"), None);
    }

    #[test]
    fn control_characters_and_overlong_lines_are_refused() {
        let long = "x".repeat(MAX_LINE_CHARS + 1);
        let errors = Address::parse(&AddressInput {
            line1: Some("a\u{0}b"),
            city: Some(&long),
            ..input()
        })
        .unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}
