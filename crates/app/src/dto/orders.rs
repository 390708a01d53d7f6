//! Addresses, shipping addresses and orders: request and response shapes
//! (docs/orders.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::address::{Address, AddressInput};
use tenure_domain::order::{Order, OrderLine, OrderStatus};
use tenure_store::repo::addresses::StoredAddress;
use utoipa::{IntoParams, ToSchema};

use crate::dto::MoneyDto;
use crate::dto::catalog::VariantDto;
use crate::dto::customers::double_option;

/// A new entry of the customer's address book. `name`, `line1`, `city` and `country` are
/// required; `country` is an ISO 3166-1 alpha-2 code (`US`, `FR`, `GB`…).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "city": "Paris",
    "postal_code": "75002", "country": "FR"}))]
pub struct CreateAddress {
    // The required fields are `Option`s in Rust only so that the domain's check lists
    // every missing one in one 422 (a missing or null one is refused as `is required`);
    // the schema says what the server enforces.
    /// Who receives the parcel.
    #[schema(value_type = String, required = true)]
    pub name: Option<String>,
    #[schema(value_type = String, required = true)]
    pub line1: Option<String>,
    pub line2: Option<String>,
    #[schema(value_type = String, required = true)]
    pub city: Option<String>,
    /// State, province or region, where the country has them.
    pub state: Option<String>,
    pub postal_code: Option<String>,
    #[schema(value_type = String, required = true, example = "FR", pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
    pub phone: Option<String>,
}

impl CreateAddress {
    pub fn input(&self) -> AddressInput<'_> {
        AddressInput {
            name: self.name.as_deref(),
            line1: self.line1.as_deref(),
            line2: self.line2.as_deref(),
            city: self.city.as_deref(),
            state: self.state.as_deref(),
            postal_code: self.postal_code.as_deref(),
            country: self.country.as_deref(),
            phone: self.phone.as_deref(),
        }
    }
}

/// Fields to change; null clears an optional one (`line2`, `state`, `postal_code`,
/// `phone`). Subscriptions shipping to the address ship to the edited one from their
/// next order on; orders already made keep their snapshot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"line2": "Apartment 4", "phone": "+33 1 23 45 67 89"}))]
pub struct UpdateAddress {
    pub name: Option<String>,
    pub line1: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub line2: Option<Option<String>>,
    pub city: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub state: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub postal_code: Option<Option<String>>,
    #[schema(example = "FR", pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

impl UpdateAddress {
    /// The address with these changes, as an input to check again.
    pub fn over<'a>(&'a self, current: &'a Address) -> AddressInput<'a> {
        fn pick<'a>(new: &'a Option<Option<String>>, old: &'a Option<String>) -> Option<&'a str> {
            match new {
                Some(value) => value.as_deref(),
                None => old.as_deref(),
            }
        }
        AddressInput {
            name: Some(self.name.as_deref().unwrap_or(&current.name)),
            line1: Some(self.line1.as_deref().unwrap_or(&current.line1)),
            line2: pick(&self.line2, &current.line2),
            city: Some(self.city.as_deref().unwrap_or(&current.city)),
            state: pick(&self.state, &current.state),
            postal_code: pick(&self.postal_code, &current.postal_code),
            country: Some(self.country.as_deref().unwrap_or(&current.country)),
            phone: pick(&self.phone, &current.phone),
        }
    }
}

/// A postal address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "line2": null,
    "city": "Paris", "state": null, "postal_code": "75002", "country": "FR", "phone": null}))]
pub struct PostalAddressDto {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub phone: Option<String>,
}

impl From<&Address> for PostalAddressDto {
    fn from(a: &Address) -> Self {
        Self {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone(),
        }
    }
}

/// An entry of a customer's address book.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "addr_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "address",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "name": "Ada Lovelace",
    "line1": "12 Rue de la Paix", "line2": null, "city": "Paris", "state": null,
    "postal_code": "75002", "country": "FR", "phone": null,
    "created_at": "2026-12-08T10:00:00Z", "updated_at": "2026-12-08T10:00:00Z"}))]
pub struct AddressDto {
    pub id: String,
    /// Always `address`.
    pub object: String,
    pub customer_id: String,
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub phone: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&StoredAddress> for AddressDto {
    fn from(a: &StoredAddress) -> Self {
        Self {
            id: a.id.to_string(),
            object: "address".to_owned(),
            customer_id: a.customer_id.to_string(),
            name: a.address.name.clone(),
            line1: a.address.line1.clone(),
            line2: a.address.line2.clone(),
            city: a.address.city.clone(),
            state: a.address.state.clone(),
            postal_code: a.address.postal_code.clone(),
            country: a.address.country.clone(),
            phone: a.address.phone.clone(),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Ship the subscription to this entry of its customer's address book.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address_id": "addr_01jf9zb3f4e3a8r7m2k4t5n6bc"}))]
pub struct SetShippingAddress {
    pub address_id: String,
}

/// Where a subscription ships.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "shipping_address",
    "subscription_id": "sub_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "address": {"id": "addr_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "address",
        "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "name": "Ada Lovelace",
        "line1": "12 Rue de la Paix", "line2": null, "city": "Paris", "state": null,
        "postal_code": "75002", "country": "FR", "phone": null,
        "created_at": "2026-12-08T10:00:00Z", "updated_at": "2026-12-08T10:00:00Z"}}))]
pub struct ShippingAddressDto {
    /// Always `shipping_address`.
    pub object: String,
    pub subscription_id: String,
    /// Null while the subscription has none.
    pub address: Option<AddressDto>,
}

wire_enum! {
    /// Where an order is in its lifecycle (docs/orders.md).
    OrderStatusDto from OrderStatus {
        AwaitingPayment, OnHold, Unfulfilled, Fulfilled, Shipped, Delivered, Canceled
    }
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderLineDto {
    pub product_id: String,
    pub product_name: String,
    pub plan_id: String,
    pub plan_name: String,
    /// What ships: the plan's variant when the order was made; null when it has none.
    #[serde(default)]
    pub variant: Option<VariantDto>,
    pub quantity: u32,
    pub unit_amount: MoneyDto,
    /// `unit_amount × quantity`, before discounts.
    pub amount: MoneyDto,
}

impl From<&OrderLine> for OrderLineDto {
    fn from(l: &OrderLine) -> Self {
        Self {
            product_id: l.product_id.to_string(),
            product_name: l.product_name.clone(),
            plan_id: l.plan_id.to_string(),
            plan_name: l.plan_name.clone(),
            variant: l.variant.as_ref().map(VariantDto::from),
            quantity: l.quantity,
            unit_amount: l.unit_amount.into(),
            amount: l.amount.into(),
        }
    }
}

/// The carrier's hand-over of an order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShipmentDto {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
}

/// What one paid period of a subscription to a shippable product sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "ord_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "order",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "subscription_id": "sub_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "invoice_id": "inv_01jf9zb3f4e3a8r7m2k4t5n6bc", "status": "shipped",
    "period_start": "2026-12-08T10:00:00Z", "period_end": "2027-01-08T10:00:00Z",
    "lines": [{"product_id": "prod_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_name": "Coffee",
        "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "plan_name": "Monthly bag",
        "variant": {"name": "Dark roast 250 g", "sku": "COF-DARK-250", "options": {"roast": "dark"}}, "quantity": 2,
        "unit_amount": {"amount": 1200, "currency": "EUR"}, "amount": {"amount": 2400, "currency": "EUR"}}],
    "amount_total": {"amount": 2400, "currency": "EUR"},
    "shipping_address": {"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "line2": null,
        "city": "Paris", "state": null, "postal_code": "75002", "country": "FR", "phone": null},
    "shipment": {"carrier": "La Poste", "tracking_number": "6A12345678901",
        "tracking_url": "https://www.laposte.fr/outils/suivre-vos-envois?code=6A12345678901"},
    "held_at": null, "released_at": null, "fulfilled_at": "2026-12-09T08:00:00Z",
    "shipped_at": "2026-12-09T15:00:00Z", "delivered_at": null, "canceled_at": null,
    "created_at": "2026-12-08T10:00:00Z", "updated_at": "2026-12-09T15:00:00Z"}))]
pub struct OrderDto {
    pub id: String,
    /// Always `order`.
    pub object: String,
    pub customer_id: String,
    pub subscription_id: String,
    /// The period's invoice: the order is paid when it is.
    pub invoice_id: String,
    pub status: OrderStatusDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_start: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_end: DateTime<Utc>,
    pub lines: Vec<OrderLineDto>,
    /// What the period's invoice totals, after discounts and prorations.
    pub amount_total: MoneyDto,
    /// Where it ships, as it was when the order was made; null when the subscription
    /// had no shipping address (then it cannot be fulfilled until one is set).
    pub shipping_address: Option<PostalAddressDto>,
    /// The carrier and tracking, once shipped.
    pub shipment: Option<ShipmentDto>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub held_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub released_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub fulfilled_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub shipped_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        Self {
            id: o.id.to_string(),
            object: "order".to_owned(),
            customer_id: o.customer_id.to_string(),
            subscription_id: o.subscription_id.to_string(),
            invoice_id: o.invoice_id.to_string(),
            status: o.status.into(),
            period_start: o.period.start,
            period_end: o.period.end,
            lines: o.lines.iter().map(OrderLineDto::from).collect(),
            amount_total: o.amount_total.into(),
            shipping_address: o.shipping_address.as_ref().map(PostalAddressDto::from),
            shipment: o.shipment.as_ref().map(|s| ShipmentDto {
                carrier: s.carrier.clone(),
                tracking_number: s.tracking_number.clone(),
                tracking_url: s.tracking_url.clone(),
            }),
            held_at: o.held_at,
            released_at: o.released_at,
            fulfilled_at: o.fulfilled_at,
            shipped_at: o.shipped_at,
            delivered_at: o.delivered_at,
            canceled_at: o.canceled_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Hand an order to a carrier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"carrier": "UPS", "tracking_number": "1Z999AA10123456784",
    "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}))]
pub struct ShipOrder {
    pub carrier: String,
    pub tracking_number: String,
    /// An absolute `https` (or `http`) link the subscriber can follow.
    pub tracking_url: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilterParams {
    pub status: Option<OrderStatusDto>,
    /// Only orders of this customer (cus_…).
    pub customer_id: Option<String>,
    /// Only orders of this subscription (sub_…).
    pub subscription_id: Option<String>,
}

impl From<OrderStatusDto> for OrderStatus {
    fn from(s: OrderStatusDto) -> Self {
        match s {
            OrderStatusDto::AwaitingPayment => OrderStatus::AwaitingPayment,
            OrderStatusDto::OnHold => OrderStatus::OnHold,
            OrderStatusDto::Unfulfilled => OrderStatus::Unfulfilled,
            OrderStatusDto::Fulfilled => OrderStatus::Fulfilled,
            OrderStatusDto::Shipped => OrderStatus::Shipped,
            OrderStatusDto::Delivered => OrderStatus::Delivered,
            OrderStatusDto::Canceled => OrderStatus::Canceled,
        }
    }
}

/// The order the next renewal of a subscription that ships will make: what ships, when,
/// where and at what price, and until when the subscriber may still change it
/// (docs/orders.md, "Upcoming orders"). Also the payload of `order.upcoming`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "upcoming_order",
    "subscription_id": "sub_01jf9zb3f4e3a8r7m2k4t5n6bc", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "renewal_at": "2027-01-08T10:00:00Z", "period_start": "2027-01-08T10:00:00Z",
    "period_end": "2027-02-08T10:00:00Z",
    "lines": [{"product_id": "prod_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_name": "Coffee",
        "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "plan_name": "Monthly bag", "quantity": 2,
        "unit_amount": {"amount": 1200, "currency": "EUR"}, "amount": {"amount": 2400, "currency": "EUR"}}],
    "amount_total": {"amount": 2160, "currency": "EUR"},
    "shipping_address": {"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "line2": null,
        "city": "Paris", "state": null, "postal_code": "75002", "country": "FR", "phone": null},
    "cutoff_at": "2027-01-07T10:00:00Z", "editable": true, "channel_preference": "email"}))]
pub struct UpcomingOrderDto {
    /// Always `upcoming_order`.
    pub object: String,
    pub subscription_id: String,
    pub customer_id: String,
    /// When the order is made and its invoice charged: the start of its period (a
    /// skipped renewal makes none, so this is the first renewal not skipped).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub renewal_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_start: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub period_end: DateTime<Utc>,
    /// What ships: the plan and quantity the renewal bills.
    pub lines: Vec<OrderLineDto>,
    /// What the renewal's invoice will total after discounts and prorations (never below
    /// zero), before any credit balance.
    pub amount_total: MoneyDto,
    /// Where it ships as things stand; null while the subscription has no address.
    pub shipping_address: Option<PostalAddressDto>,
    /// From when the subscriber's changes of this order are refused
    /// (`order_edit_cutoff_passed`) until the renewal; null when the merchant set no
    /// cutoff.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub cutoff_at: Option<DateTime<Utc>>,
    /// Whether the subscriber may still change this order (the cutoff has not passed).
    pub editable: bool,
    /// How the customer wants to hear about it.
    pub channel_preference: super::customers::ChannelPreferenceDto,
}
