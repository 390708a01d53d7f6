//! TypeIDs: a lowercase type prefix and a base32 UUIDv7 (`sub_01jd…`). The prefix makes an
//! id self-describing in logs and support tickets; the UUIDv7 makes ids time-sortable, so
//! lists page by id. Each kind of id is its own type, so a customer id can never be passed
//! where a plan id is expected.

use type_safe_id::{StaticType, TypeSafeId};

pub use type_safe_id::Error as IdParseError;

macro_rules! typed_ids {
    ($($(#[$doc:meta])* $alias:ident => $tag:ident, $prefix:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Default, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub struct $tag;

            impl StaticType for $tag {
                const TYPE: &'static str = $prefix;
            }

            $(#[$doc])*
            pub type $alias = TypeSafeId<$tag>;
        )*

        /// Every prefix in use, for documentation and for telling a caller which kind of
        /// id it sent when it sent the wrong one.
        pub const PREFIXES: &[&str] = &[$($prefix),*];
    };
}

typed_ids! {
    /// A merchant: the tenant that owns everything else.
    MerchantId => MerchantTag, "mer";
    /// A merchant account: its test tenant and its live tenant (two merchants, one
    /// mode each) share it.
    AccountId => AccountTag, "acct";
    /// A merchant's secret API key record (not the key itself).
    ApiKeyId => ApiKeyTag, "key";
    /// One entry of a merchant's audit trail: a change made with one of its keys.
    AuditEventId => AuditEventTag, "aud";
    ProductId => ProductTag, "prod";
    PlanId => PlanTag, "plan";
    CustomerId => CustomerTag, "cus";
    SubscriptionId => SubscriptionTag, "sub";
    PaymentMethodId => PaymentMethodTag, "pm";
    InvoiceId => InvoiceTag, "inv";
    PaymentId => PaymentTag, "pay";
    CancellationRequestId => CancellationRequestTag, "creq";
    TicketId => TicketTag, "tkt";
    /// One message of a support ticket.
    TicketMessageId => TicketMessageTag, "tmsg";
    EventId => EventTag, "evt";
    WebhookEndpointId => WebhookEndpointTag, "whep";
    /// One event to be delivered to one webhook endpoint.
    WebhookDeliveryId => WebhookDeliveryTag, "whdel";
    /// A merchant-registered identity provider whose tokens the portal accepts.
    IdentityProviderId => IdentityProviderTag, "idp";
    /// A scheduled change (pause, resume, cancellation, plan change) of a subscription.
    ScheduledChangeId => ScheduledChangeTag, "sch";
    /// A refund of (part of) a paid invoice.
    RefundId => RefundTag, "re";
    /// A retention offer shown to customers who start a cancellation.
    RetentionOfferId => RetentionOfferTag, "roff";
    /// One presentation of a retention offer and its outcome.
    OfferOutcomeId => OfferOutcomeTag, "rout";
    /// A discount granted to a subscription.
    DiscountId => DiscountTag, "disc";
    /// A coupon: the merchant's definition of a discount.
    CouponId => CouponTag, "coupon";
    /// A customer-facing promotion code of a coupon.
    PromotionCodeId => PromotionCodeTag, "promo";
    /// An agent note on a customer.
    NoteId => NoteTag, "note";
    /// A credit note: part of a paid invoice refunded or credited to the balance.
    CreditNoteId => CreditNoteTag, "cn";
    /// One change of a customer's credit balance (the ledger's row).
    BalanceTransactionId => BalanceTransactionTag, "cbtx";
    /// A one-off charge or credit for a subscription's next invoice.
    InvoiceItemId => InvoiceItemTag, "ii";
    /// An agent's override of the default policy, with its reason.
    OverrideId => OverrideTag, "ovr";
    /// A merchant's test clock: simulated time for the customers created on it.
    TestClockId => TestClockTag, "clock";
    /// An entry of a customer's address book.
    AddressId => AddressTag, "addr";
    /// What one paid period of a subscription to a shippable product sends.
    OrderId => OrderTag, "ord";
    /// A change of a plan's stock and its notices to the subscribers it affects.
    StockNoticeId => StockNoticeTag, "stkn";
}

/// Makes new ids: `CustomerId::generate()`. `TypeSafeId::new` draws everything below the
/// millisecond at random, so two ids made in the same millisecond (the events of one
/// transaction, say) would sort in either order; these come from [`uuid::Uuid::now_v7`],
/// which orders every id the process makes by when it made it. (Clippy refuses
/// `TypeSafeId::new`; see `clippy.toml`.)
pub trait GenerateId {
    fn generate() -> Self;
}

impl<T: StaticType> GenerateId for TypeSafeId<T> {
    fn generate() -> Self {
        Self::from_uuid(uuid::Uuid::now_v7())
    }
}

/// The id prefix of a type, e.g. `"cus"` for [`CustomerId`].
pub fn prefix_of<T: StaticType>() -> &'static str {
    T::TYPE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_prefixes() {
        let id = CustomerId::generate();
        let text = id.to_string();
        assert!(text.starts_with("cus_"));
        assert_eq!(text.parse::<CustomerId>().unwrap(), id);
        assert!(text.parse::<PlanId>().is_err());
        assert!("cus_not-a-typeid".parse::<CustomerId>().is_err());
    }

    #[test]
    fn ids_sort_by_creation_time_within_a_millisecond_too() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0].uuid() < pair[1].uuid());
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        let first = SubscriptionId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = SubscriptionId::generate();
        assert!(first.uuid() < second.uuid());
    }
}
