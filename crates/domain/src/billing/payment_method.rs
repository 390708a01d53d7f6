//! Payment methods: a gateway token plus what the gateway says about the card. Never a
//! card number.

use chrono::{DateTime, Utc};

use crate::billing::dunning::{EXPIRING_SOON_DAYS, expires_within, is_expired};
use crate::billing::gateway::CardDetails;
use crate::ids::{CustomerId, PaymentMethodId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: PaymentMethodId,
    pub customer_id: CustomerId,
    /// The gateway's token for the card; never shown to clients.
    pub gateway_token: String,
    pub card: CardDetails,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    /// Set when the customer removed it; detached methods are kept for the payment
    /// records that name them but are never listed or charged.
    pub detached_at: Option<DateTime<Utc>>,
}

impl PaymentMethod {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        is_expired(self.card.exp_month, self.card.exp_year, now)
    }

    /// Expired, or valid for fewer than [`EXPIRING_SOON_DAYS`] more days.
    pub fn expiring_soon(&self, now: DateTime<Utc>) -> bool {
        expires_within(
            self.card.exp_month,
            self.card.exp_year,
            now,
            EXPIRING_SOON_DAYS,
        )
    }

    /// Whether `payment_method.expiring` is due for this method at `now`: the customer's
    /// default, attached, still valid, and expiring soon. A card that has already expired
    /// is past warning (its next charge fails and dunning says so).
    pub fn expiring_notice_due(&self, now: DateTime<Utc>) -> bool {
        self.is_default
            && self.detached_at.is_none()
            && !self.is_expired(now)
            && self.expiring_soon(now)
    }
}
