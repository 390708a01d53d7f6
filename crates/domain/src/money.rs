//! Money as integer minor units of an ISO 4217 currency. Never a float: every amount a
//! customer sees was computed with integer arithmetic, and two amounts of different
//! currencies cannot be added.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// An ISO 4217 currency, upper-case three-letter code, with its minor-unit exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point: 2 for EUR, 0 for JPY, 3 for KWD.
    pub fn exponent(self) -> u32 {
        // Funds codes and precious metals have no exponent; they count in whole units.
        self.0.exponent().map_or(0, u32::from)
    }
}

impl FromStr for Currency {
    type Err = DomainError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(DomainError::validation(
                "currency",
                "must be an upper-case ISO 4217 code such as EUR",
            ));
        }
        iso_currency::Currency::from_code(code)
            .map(Currency)
            .ok_or_else(|| DomainError::validation("currency", "is not an ISO 4217 currency"))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount in minor units (cents, yen, fils) of one currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

/// The largest amount accepted from a caller: ten trillion minor units leaves headroom for
/// sums of many lines without any risk of i64 overflow.
pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// A price as a merchant may set it: not negative and not absurdly large.
    pub fn price(amount: i64, currency: Currency) -> Result<Self, DomainError> {
        if !(0..=MAX_AMOUNT).contains(&amount) {
            return Err(DomainError::validation(
                "price.amount",
                format!("must be between 0 and {MAX_AMOUNT} minor units"),
            ));
        }
        Ok(Self::new(amount, currency))
    }

    pub fn is_zero(self) -> bool {
        self.amount == 0
    }

    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(DomainError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, DomainError> {
        self.same_currency(other)?;
        self.amount
            .checked_sub(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(DomainError::Overflow)
    }

    /// `quantity` units of this price: exact, and refused beyond [`MAX_AMOUNT`].
    pub fn times(self, quantity: u32) -> Result<Money, DomainError> {
        self.amount
            .checked_mul(i64::from(quantity))
            .filter(|amount| amount.unsigned_abs() <= MAX_AMOUNT.unsigned_abs())
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(DomainError::Overflow)
    }

    pub fn negate(self) -> Money {
        Money::new(-self.amount, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), DomainError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(DomainError::CurrencyMismatch {
                expected: self.currency.code(),
                found: other.currency.code(),
            })
        }
    }
}

impl fmt::Display for Money {
    /// `19.99 EUR`, `500 JPY`: the amount with the currency's own number of decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        if exp == 0 {
            return write!(f, "{sign}{abs} {}", self.currency);
        }
        let scale = 10u64.pow(exp);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        "EUR".parse().unwrap()
    }

    #[test]
    fn currencies_know_their_exponent() {
        assert_eq!(eur().exponent(), 2);
        assert_eq!("JPY".parse::<Currency>().unwrap().exponent(), 0);
        assert_eq!("KWD".parse::<Currency>().unwrap().exponent(), 3);
    }

    #[test]
    fn bad_currency_codes_are_rejected() {
        for code in ["eur", "EU", "EURO", "XXY", "", "€"] {
            assert!(code.parse::<Currency>().is_err(), "{code}");
        }
    }

    #[test]
    fn display_respects_exponent() {
        assert_eq!(Money::new(1999, eur()).to_string(), "19.99 EUR");
        assert_eq!(Money::new(-5, eur()).to_string(), "-0.05 EUR");
        assert_eq!(
            Money::new(500, "JPY".parse().unwrap()).to_string(),
            "500 JPY"
        );
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let usd: Currency = "USD".parse().unwrap();
        assert!(
            Money::new(1, eur())
                .checked_add(Money::new(1, usd))
                .is_err()
        );
        assert_eq!(
            Money::new(i64::MAX, eur()).checked_add(Money::new(1, eur())),
            Err(DomainError::Overflow)
        );
        assert_eq!(
            Money::new(150, eur())
                .checked_sub(Money::new(200, eur()))
                .unwrap()
                .amount,
            -50
        );
    }

    #[test]
    fn prices_are_bounded() {
        assert!(Money::price(-1, eur()).is_err());
        assert!(Money::price(MAX_AMOUNT + 1, eur()).is_err());
        assert!(Money::price(0, eur()).is_ok());
    }
}
