//! Products and plans: what a merchant sells, at what price and on which cadence.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::period::Interval;
use crate::ids::{PlanId, ProductId};
use crate::money::Money;
use crate::policy::PortalPolicy;

/// The largest `interval_count`: five years of months is already more than any real plan.
pub const MAX_INTERVAL_COUNT: u32 = 60;
pub const MAX_TRIAL_DAYS: u32 = 730;
/// The most units of a product one subscription may hold.
pub const MAX_QUANTITY: u32 = 10_000;
/// The most products one product may let its subscribers swap to.
pub const MAX_SWAPPABLE_PRODUCTS: usize = 20;
/// The most options (`roast`, `size`, …) one variant may name, as Shopify's three.
pub const MAX_VARIANT_OPTIONS: usize = 3;
pub const VARIANT_NAME_MAX: usize = 200;
pub const VARIANT_SKU_MAX: usize = 100;
pub const VARIANT_OPTION_NAME_MAX: usize = 50;
pub const VARIANT_OPTION_VALUE_MAX: usize = 100;

/// What a plan ships, when its product's plans are variants of one good (a roast and a
/// size of coffee): the subscriber swaps between them by changing plan. Several plans may
/// carry the same variant (one per cadence or currency); a SKU names one product's goods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    /// The merchant's stock-keeping unit, for fulfilment.
    pub sku: Option<String>,
    /// What distinguishes it (`{"roast": "dark", "size": "250 g"}`), in key order.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Variant {
    /// Checks and trims every part; every invalid field is reported, under `variant.…`.
    pub fn new(
        name: &str,
        sku: Option<&str>,
        options: &BTreeMap<String, String>,
    ) -> Result<Self, Vec<DomainError>> {
        let mut errors = Vec::new();
        let name = crate::text::clean("variant.name", name, VARIANT_NAME_MAX, false)
            .map_err(|e| errors.push(e))
            .ok();
        let sku = match sku {
            None => None,
            Some(raw) => match crate::text::clean("variant.sku", raw, VARIANT_SKU_MAX, false) {
                Ok(sku) if sku.chars().any(char::is_whitespace) => {
                    errors.push(DomainError::validation(
                        "variant.sku",
                        "must not contain spaces",
                    ));
                    None
                }
                Ok(sku) => Some(sku),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        if options.len() > MAX_VARIANT_OPTIONS {
            errors.push(DomainError::validation(
                "variant.options",
                format!("must have at most {MAX_VARIANT_OPTIONS} options"),
            ));
        }
        let mut cleaned = BTreeMap::new();
        for (key, value) in options {
            let key = crate::text::clean("variant.options", key, VARIANT_OPTION_NAME_MAX, false);
            let value =
                crate::text::clean("variant.options", value, VARIANT_OPTION_VALUE_MAX, false);
            match (key, value) {
                (Ok(key), Ok(value)) => {
                    if cleaned.insert(key, value).is_some() {
                        errors.push(DomainError::validation(
                            "variant.options",
                            "names an option twice (after trimming)",
                        ));
                    }
                }
                (Err(e), _) | (_, Err(e)) => errors.push(e),
            }
        }
        match name {
            Some(name) if errors.is_empty() => Ok(Self {
                name,
                sku,
                options: cleaned,
            }),
            _ => Err(errors),
        }
    }
}

/// Checks the products a product lets its subscribers swap to: itself is not one, none
/// twice, at most [`MAX_SWAPPABLE_PRODUCTS`] (that each exists is the caller's to check).
pub fn validate_swappable_products(
    product: ProductId,
    swappable: &[ProductId],
) -> Result<(), DomainError> {
    const FIELD: &str = "swappable_product_ids";
    if swappable.len() > MAX_SWAPPABLE_PRODUCTS {
        return Err(DomainError::validation(
            FIELD,
            format!("must list at most {MAX_SWAPPABLE_PRODUCTS} products"),
        ));
    }
    if swappable.contains(&product) {
        return Err(DomainError::validation(
            FIELD,
            "must not list the product itself (its own plans are always swappable)",
        ));
    }
    for (i, id) in swappable.iter().enumerate() {
        if swappable[..i].contains(id) {
            return Err(DomainError::validation(
                FIELD,
                "must not list a product twice",
            ));
        }
    }
    Ok(())
}

/// How many units of a product one subscription may hold: `1 ≤ min ≤ max ≤ MAX_QUANTITY`
/// (the constructor refuses anything else). The default, `1..=1`, is a product sold one
/// at a time, as every product was before quantities existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawLimits")]
pub struct QuantityLimits {
    min: u32,
    max: u32,
}

/// What [`QuantityLimits`] deserialises from, checked by [`QuantityLimits::new`].
#[derive(Deserialize)]
struct RawLimits {
    min: u32,
    max: u32,
}

impl TryFrom<RawLimits> for QuantityLimits {
    type Error = DomainError;

    fn try_from(raw: RawLimits) -> Result<Self, Self::Error> {
        Self::new(raw.min, raw.max)
    }
}

impl Default for QuantityLimits {
    fn default() -> Self {
        Self { min: 1, max: 1 }
    }
}

impl QuantityLimits {
    pub fn new(min: u32, max: u32) -> Result<Self, DomainError> {
        if !(1..=MAX_QUANTITY).contains(&min) {
            return Err(DomainError::validation(
                "min_quantity",
                format!("must be between 1 and {MAX_QUANTITY}"),
            ));
        }
        if !(min..=MAX_QUANTITY).contains(&max) {
            return Err(DomainError::validation(
                "max_quantity",
                format!("must be between min_quantity and {MAX_QUANTITY}"),
            ));
        }
        Ok(Self { min, max })
    }

    pub fn min(self) -> u32 {
        self.min
    }

    pub fn max(self) -> u32 {
        self.max
    }

    /// Whether the quantity can be anything but its one allowed value.
    pub fn is_adjustable(self) -> bool {
        self.max > self.min
    }

    /// Refuses a quantity outside the limits (422 on `quantity`).
    pub fn check(self, quantity: u32) -> Result<(), DomainError> {
        if (self.min..=self.max).contains(&quantity) {
            Ok(())
        } else {
            Err(DomainError::validation(
                "quantity",
                format!(
                    "must be between {} and {} for this product",
                    self.min, self.max
                ),
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: ProductId,
    pub name: String,
    pub description: Option<String>,
    pub portal_policy: PortalPolicy,
    /// Fulfilled physically: each paid period ships.
    pub shippable: bool,
    pub quantity_limits: QuantityLimits,
    /// Other products whose plans this product's subscriptions may change to (a swap
    /// across products); binds merchants as well as customers. Not symmetric.
    pub swappable_product_ids: Vec<ProductId>,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub id: PlanId,
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub interval: Interval,
    pub interval_count: u32,
    pub trial_days: u32,
    pub active: bool,
    /// Whether it can ship (changed only through a stock change, which notifies).
    pub stock: crate::stock::Stock,
    /// What the plan ships, when its product's plans are variants; `None` otherwise.
    pub variant: Option<Variant>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Checks a plan's billing cadence and trial.
pub fn validate_plan_terms(interval_count: u32, trial_days: u32) -> Result<(), DomainError> {
    if !(1..=MAX_INTERVAL_COUNT).contains(&interval_count) {
        return Err(DomainError::validation(
            "interval_count",
            format!("must be between 1 and {MAX_INTERVAL_COUNT}"),
        ));
    }
    if trial_days > MAX_TRIAL_DAYS {
        return Err(DomainError::validation(
            "trial_days",
            format!("must be at most {MAX_TRIAL_DAYS}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_terms_are_bounded() {
        assert!(validate_plan_terms(1, 0).is_ok());
        assert!(validate_plan_terms(0, 0).is_err());
        assert!(validate_plan_terms(MAX_INTERVAL_COUNT + 1, 0).is_err());
        assert!(validate_plan_terms(1, MAX_TRIAL_DAYS + 1).is_err());
    }

    #[test]
    fn quantity_limits_are_ordered_and_bounded() {
        assert_eq!(
            QuantityLimits::default(),
            QuantityLimits::new(1, 1).unwrap()
        );
        assert!(!QuantityLimits::default().is_adjustable());
        assert!(QuantityLimits::new(0, 1).is_err());
        assert!(QuantityLimits::new(3, 2).is_err());
        assert!(QuantityLimits::new(1, MAX_QUANTITY + 1).is_err());
        let l = QuantityLimits::new(2, 6).unwrap();
        assert!(l.is_adjustable());
        assert!(l.check(1).is_err() && l.check(7).is_err());
        assert!(l.check(2).is_ok() && l.check(6).is_ok());
    }

    #[test]
    fn a_variant_is_checked_whole() {
        let options = BTreeMap::from([
            (" roast ".to_owned(), "dark".to_owned()),
            ("size".to_owned(), "250 g".to_owned()),
        ]);
        let v = Variant::new(" Dark roast 250 g ", Some("COF-DARK-250"), &options).unwrap();
        assert_eq!(v.name, "Dark roast 250 g");
        assert_eq!(v.options.get("roast").map(String::as_str), Some("dark"));
        let four: BTreeMap<String, String> =
            (0..4).map(|i| (format!("o{i}"), "x".to_owned())).collect();
        let errors = Variant::new("", Some("has space"), &four).unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                DomainError::Validation { field, .. } => field.to_string(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(fields, ["variant.name", "variant.sku", "variant.options"]);
        let twice = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("a ".to_owned(), "2".to_owned()),
        ]);
        assert!(Variant::new("n", None, &twice).is_err());
    }

    #[test]
    fn swappable_products_exclude_the_product_and_repeats() {
        use crate::ids::GenerateId;
        let (me, a, b) = (
            ProductId::generate(),
            ProductId::generate(),
            ProductId::generate(),
        );
        assert!(validate_swappable_products(me, &[]).is_ok());
        assert!(validate_swappable_products(me, &[a, b]).is_ok());
        assert!(validate_swappable_products(me, &[a, me]).is_err());
        assert!(validate_swappable_products(me, &[a, a]).is_err());
        let many: Vec<ProductId> = (0..=MAX_SWAPPABLE_PRODUCTS)
            .map(|_| ProductId::generate())
            .collect();
        assert!(validate_swappable_products(me, &many).is_err());
    }

    proptest::proptest! {
        #[test]
        fn a_checked_quantity_lies_within_the_limits(min in 0u32..20, max in 0u32..20, q in 0u32..25) {
            if let Ok(l) = QuantityLimits::new(min, max) {
                proptest::prop_assert!(l.min() >= 1 && l.min() <= l.max());
                proptest::prop_assert_eq!(l.check(q).is_ok(), (min..=max).contains(&q));
            } else {
                proptest::prop_assert!(min == 0 || max < min);
            }
        }
    }
}
