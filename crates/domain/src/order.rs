//! Orders: what one paid period of a subscription to a shippable product sends, and the
//! fulfilment lifecycle the merchant drives (docs/orders.md).
//!
//! - `awaiting_payment`: created with its period's invoice; `unfulfilled` once that is
//!   paid (`order.paid`), `on_hold` when a payment of it fails (`order.held`);
//! - `on_hold` → `unfulfilled` when the invoice is paid after all, by any route
//!   (`order.released`);
//! - `unfulfilled` → `fulfilled` → `shipped` → `delivered`, each a merchant's step
//!   (shipping an unfulfilled order fulfils it in the same step);
//! - `canceled` by the merchant before it ships, or when its unpaid invoice is voided.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::address::Address;
use crate::billing::period::Period;
use crate::ids::{CustomerId, InvoiceId, OrderId, PlanId, ProductId, SubscriptionId};
use crate::money::Money;
use crate::text;

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created with its period's invoice, which is not paid yet.
    AwaitingPayment,
    /// The invoice's payment failed: nothing ships until it is paid.
    OnHold,
    /// Paid: the merchant's fulfilment may pick, pack and ship it.
    Unfulfilled,
    /// Picked and packed, not handed to a carrier yet.
    Fulfilled,
    /// Handed to a carrier (with its tracking).
    Shipped,
    Delivered,
    Canceled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::AwaitingPayment,
        OrderStatus::OnHold,
        OrderStatus::Unfulfilled,
        OrderStatus::Fulfilled,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::OnHold => "on_hold",
            OrderStatus::Unfulfilled => "unfulfilled",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Canceled => "canceled",
        }
    }

    pub fn parse(value: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the order has left the merchant's hands (or was called off): nothing about
    /// its payment changes it any more.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Canceled
        )
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order: a plan of a product (and the variant it ships), so many units,
/// what they cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub product_name: String,
    pub plan_id: PlanId,
    pub plan_name: String,
    /// The plan's variant when the order was made (orders made before variants: none).
    #[serde(default)]
    pub variant: Option<crate::catalog::Variant>,
    pub quantity: u32,
    pub unit_amount: Money,
    /// `unit_amount × quantity`, before discounts.
    pub amount: Money,
}

/// The carrier's hand-over: who carries the parcel and how to follow it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
}

impl Shipment {
    /// `carrier` and `tracking_number` are required; `tracking_url`, when given, is an
    /// absolute `https` or `http` URL (the subscriber's frontend links to it).
    pub fn parse(
        carrier: &str,
        tracking_number: &str,
        tracking_url: Option<&str>,
    ) -> Result<Shipment, Vec<DomainError>> {
        let mut errors = Vec::new();
        let carrier = text::clean("carrier", carrier, 100, false)
            .map_err(|e| errors.push(e))
            .ok();
        let tracking_number = text::clean("tracking_number", tracking_number, 100, false)
            .map_err(|e| errors.push(e))
            .ok();
        let tracking_url = match tracking_url {
            None => None,
            Some(url) => match text::clean("tracking_url", url, 2000, false) {
                Ok(url) if is_web_url(&url) => Some(url),
                Ok(_) => {
                    errors.push(DomainError::validation(
                        "tracking_url",
                        "must be an absolute https or http URL",
                    ));
                    None
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        match (carrier, tracking_number) {
            (Some(carrier), Some(tracking_number)) if errors.is_empty() => Ok(Shipment {
                carrier,
                tracking_number,
                tracking_url,
            }),
            _ => Err(errors),
        }
    }
}

fn is_web_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.contains(char::is_whitespace)
    })
}

/// An order: a snapshot of what one period sends and where, and its fulfilment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub subscription_id: SubscriptionId,
    /// The period's invoice: the order is paid when it is.
    pub invoice_id: InvoiceId,
    pub period: Period,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    /// What the invoice totals (after discounts and prorations), in its currency.
    pub amount_total: Money,
    /// Where it ships, as it was when the order was created; `None` when the subscription
    /// had no shipping address then (it cannot be fulfilled or shipped until canceled).
    pub shipping_address: Option<Address>,
    pub shipment: Option<Shipment>,
    pub held_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a change of an order's invoice did to it, and the event that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentChange {
    /// `order.paid`: paid at the first attempt.
    Paid,
    /// `order.held`: a payment failed.
    Held,
    /// `order.released`: a held order's invoice was paid after all.
    Released,
    /// `order.canceled`: the invoice was voided before the order shipped.
    Canceled,
}

impl PaymentChange {
    pub fn event_type(self) -> &'static str {
        match self {
            PaymentChange::Paid => "order.paid",
            PaymentChange::Held => "order.held",
            PaymentChange::Released => "order.released",
            PaymentChange::Canceled => "order.canceled",
        }
    }
}

/// What happened to the order's invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceOutcome {
    Paid,
    PaymentFailed,
    Voided,
}

fn conflict(code: &'static str, detail: String) -> DomainError {
    DomainError::Conflict {
        code,
        detail: detail.into(),
    }
}

impl Order {
    /// The order after its invoice's `outcome` at `now`, or `None` when it does not move
    /// (a second failure of a held order; anything once shipped or canceled; a payment
    /// of an order already released).
    pub fn follow_invoice(
        &self,
        outcome: InvoiceOutcome,
        now: DateTime<Utc>,
    ) -> Option<(Order, PaymentChange)> {
        let mut next = self.clone();
        let change = match (self.status, outcome) {
            (OrderStatus::AwaitingPayment, InvoiceOutcome::Paid) => {
                next.status = OrderStatus::Unfulfilled;
                PaymentChange::Paid
            }
            (OrderStatus::OnHold, InvoiceOutcome::Paid) => {
                next.status = OrderStatus::Unfulfilled;
                next.released_at = Some(now);
                PaymentChange::Released
            }
            (OrderStatus::AwaitingPayment, InvoiceOutcome::PaymentFailed) => {
                next.status = OrderStatus::OnHold;
                next.held_at = Some(now);
                PaymentChange::Held
            }
            (OrderStatus::AwaitingPayment | OrderStatus::OnHold, InvoiceOutcome::Voided) => {
                next.status = OrderStatus::Canceled;
                next.canceled_at = Some(now);
                PaymentChange::Canceled
            }
            _ => return None,
        };
        Some((next, change))
    }

    /// Picked and packed. Only a paid order with an address: 409 `order_already_fulfilled`
    /// once fulfilled (or shipped), `order_not_payable…` codes for the rest.
    pub fn fulfill(&self, now: DateTime<Utc>) -> Result<Order, DomainError> {
        match self.status {
            OrderStatus::Unfulfilled => {
                self.require_address("fulfill")?;
                Ok(Order {
                    status: OrderStatus::Fulfilled,
                    fulfilled_at: Some(now),
                    ..self.clone()
                })
            }
            OrderStatus::Fulfilled | OrderStatus::Shipped | OrderStatus::Delivered => {
                Err(conflict(
                    "order_already_fulfilled",
                    format!("the order is already {}", self.status),
                ))
            }
            other => Err(self.refuse("fulfill", other)),
        }
    }

    /// Handed to a carrier; an unfulfilled order is fulfilled by the same step. 409
    /// `order_already_shipped` once shipped or delivered.
    pub fn ship(&self, shipment: Shipment, now: DateTime<Utc>) -> Result<Order, DomainError> {
        match self.status {
            OrderStatus::Unfulfilled | OrderStatus::Fulfilled => {
                self.require_address("ship")?;
                Ok(Order {
                    status: OrderStatus::Shipped,
                    fulfilled_at: self.fulfilled_at.or(Some(now)),
                    shipped_at: Some(now),
                    shipment: Some(shipment),
                    ..self.clone()
                })
            }
            OrderStatus::Shipped | OrderStatus::Delivered => Err(conflict(
                "order_already_shipped",
                format!("the order is already {}", self.status),
            )),
            other => Err(self.refuse("ship", other)),
        }
    }

    /// The carrier delivered it. 409 `order_already_delivered` twice.
    pub fn deliver(&self, now: DateTime<Utc>) -> Result<Order, DomainError> {
        match self.status {
            OrderStatus::Shipped => Ok(Order {
                status: OrderStatus::Delivered,
                delivered_at: Some(now),
                ..self.clone()
            }),
            OrderStatus::Delivered => Err(conflict(
                "order_already_delivered",
                "the order is already delivered".to_owned(),
            )),
            other => Err(self.refuse("deliver", other)),
        }
    }

    /// Called off by the merchant before it ships. Its invoice is not touched: refunding
    /// or voiding it is a billing decision of its own.
    pub fn cancel(&self, now: DateTime<Utc>) -> Result<Order, DomainError> {
        match self.status {
            OrderStatus::AwaitingPayment
            | OrderStatus::OnHold
            | OrderStatus::Unfulfilled
            | OrderStatus::Fulfilled => Ok(Order {
                status: OrderStatus::Canceled,
                canceled_at: Some(now),
                ..self.clone()
            }),
            OrderStatus::Canceled => Err(conflict(
                "order_already_canceled",
                "the order is already canceled".to_owned(),
            )),
            other => Err(self.refuse("cancel", other)),
        }
    }

    fn require_address(&self, action: &str) -> Result<(), DomainError> {
        if self.shipping_address.is_none() {
            return Err(conflict(
                "shipping_address_required",
                format!(
                    "cannot {action} an order without a shipping address: its subscription had \
                     none when the order was made; cancel it"
                ),
            ));
        }
        Ok(())
    }

    fn refuse(&self, action: &str, status: OrderStatus) -> DomainError {
        conflict(
            "invalid_order_transition",
            format!("cannot {action} an order that is {status}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GenerateId;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, day, 9, 0, 0).unwrap()
    }

    fn address() -> Address {
        Address {
            name: "Ada".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            state: None,
            postal_code: None,
            country: "US".into(),
            phone: None,
        }
    }

    fn order(status: OrderStatus) -> Order {
        let usd: Currency = "USD".parse().unwrap();
        Order {
            id: OrderId::generate(),
            customer_id: CustomerId::generate(),
            subscription_id: SubscriptionId::generate(),
            invoice_id: InvoiceId::generate(),
            period: Period {
                start: at(1),
                end: at(31),
            },
            status,
            lines: Vec::new(),
            amount_total: Money::new(1999, usd),
            shipping_address: Some(address()),
            shipment: None,
            held_at: None,
            released_at: None,
            fulfilled_at: None,
            shipped_at: None,
            delivered_at: None,
            canceled_at: None,
            created_at: at(1),
            updated_at: at(1),
        }
    }

    fn code(e: DomainError) -> &'static str {
        e.code()
    }

    fn shipment() -> Shipment {
        Shipment::parse("UPS", "1Z999", Some("https://ups.example/1Z999")).unwrap()
    }

    #[test]
    fn a_failed_payment_holds_and_a_later_payment_releases() {
        let o = order(OrderStatus::AwaitingPayment);
        let (held, change) = o
            .follow_invoice(InvoiceOutcome::PaymentFailed, at(2))
            .unwrap();
        assert_eq!(
            (held.status, change),
            (OrderStatus::OnHold, PaymentChange::Held)
        );
        assert!(
            held.follow_invoice(InvoiceOutcome::PaymentFailed, at(3))
                .is_none()
        );
        let (released, change) = held.follow_invoice(InvoiceOutcome::Paid, at(4)).unwrap();
        assert_eq!(
            (released.status, change),
            (OrderStatus::Unfulfilled, PaymentChange::Released)
        );
        assert_eq!(released.released_at, Some(at(4)));
        assert!(
            released
                .follow_invoice(InvoiceOutcome::Paid, at(5))
                .is_none()
        );
    }

    #[test]
    fn a_first_payment_makes_it_unfulfilled_and_a_void_cancels_an_unpaid_order() {
        let o = order(OrderStatus::AwaitingPayment);
        let (paid, change) = o.follow_invoice(InvoiceOutcome::Paid, at(2)).unwrap();
        assert_eq!(
            (paid.status, change),
            (OrderStatus::Unfulfilled, PaymentChange::Paid)
        );
        let (voided, change) = order(OrderStatus::OnHold)
            .follow_invoice(InvoiceOutcome::Voided, at(2))
            .unwrap();
        assert_eq!(
            (voided.status, change),
            (OrderStatus::Canceled, PaymentChange::Canceled)
        );
        assert!(paid.follow_invoice(InvoiceOutcome::Voided, at(3)).is_none());
    }

    #[test]
    fn fulfil_ship_deliver_in_order_and_twice_is_a_stable_conflict() {
        let o = order(OrderStatus::Unfulfilled);
        let fulfilled = o.fulfill(at(2)).unwrap();
        assert_eq!(
            code(fulfilled.fulfill(at(3)).unwrap_err()),
            "order_already_fulfilled"
        );
        let shipped = fulfilled.ship(shipment(), at(3)).unwrap();
        assert_eq!(shipped.fulfilled_at, Some(at(2)));
        assert_eq!(
            code(shipped.ship(shipment(), at(4)).unwrap_err()),
            "order_already_shipped"
        );
        assert_eq!(
            code(shipped.fulfill(at(4)).unwrap_err()),
            "order_already_fulfilled"
        );
        let delivered = shipped.deliver(at(5)).unwrap();
        assert_eq!(
            code(delivered.deliver(at(6)).unwrap_err()),
            "order_already_delivered"
        );
        assert_eq!(
            code(delivered.cancel(at(6)).unwrap_err()),
            "invalid_order_transition"
        );
    }

    #[test]
    fn shipping_an_unfulfilled_order_fulfils_it_too() {
        let shipped = order(OrderStatus::Unfulfilled)
            .ship(shipment(), at(2))
            .unwrap();
        assert_eq!(shipped.status, OrderStatus::Shipped);
        assert_eq!(shipped.fulfilled_at, Some(at(2)));
    }

    #[test]
    fn an_unpaid_order_cannot_be_fulfilled_shipped_or_delivered() {
        for status in [
            OrderStatus::AwaitingPayment,
            OrderStatus::OnHold,
            OrderStatus::Canceled,
        ] {
            let o = order(status);
            assert_eq!(
                code(o.fulfill(at(2)).unwrap_err()),
                "invalid_order_transition"
            );
            assert_eq!(
                code(o.ship(shipment(), at(2)).unwrap_err()),
                "invalid_order_transition"
            );
            assert_eq!(
                code(o.deliver(at(2)).unwrap_err()),
                "invalid_order_transition"
            );
        }
        assert_eq!(
            code(order(OrderStatus::Unfulfilled).deliver(at(2)).unwrap_err()),
            "invalid_order_transition"
        );
    }

    #[test]
    fn an_order_without_an_address_is_not_fulfilled_but_may_be_canceled() {
        let o = Order {
            shipping_address: None,
            ..order(OrderStatus::Unfulfilled)
        };
        assert_eq!(
            code(o.fulfill(at(2)).unwrap_err()),
            "shipping_address_required"
        );
        assert_eq!(
            code(o.ship(shipment(), at(2)).unwrap_err()),
            "shipping_address_required"
        );
        let canceled = o.cancel(at(2)).unwrap();
        assert_eq!(
            code(canceled.cancel(at(3)).unwrap_err()),
            "order_already_canceled"
        );
    }

    #[test]
    fn a_shipment_needs_a_carrier_a_number_and_a_web_tracking_url() {
        assert!(Shipment::parse("DHL", "123", None).is_ok());
        let errors = Shipment::parse(" ", "", Some("ftp://x")).unwrap_err();
        assert_eq!(errors.len(), 3);
        assert!(Shipment::parse("DHL", "1", Some("https://")).is_err());
        assert!(Shipment::parse("DHL", "1", Some("javascript:alert(1)")).is_err());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("lost"), None);
    }
}
