//! Cancellation requests and support tickets: the human side of a request-mode
//! cancellation. A customer's request opens a ticket; the merchant may approve it early,
//! decline it with a message, or let it take effect at its `effective_at`, when the
//! worker completes it and resolves the ticket.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::error::Refusal;
use crate::ids::{CancellationRequestId, CustomerId, SubscriptionId, TicketId, TicketMessageId};
use crate::subscription::CancellationReason;

/// The longest ticket message body.
pub const MAX_MESSAGE_CHARS: usize = 5000;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    DomainError::validation(
                        "status",
                        concat!("must be one of ", $($text, " "),*),
                    )
                })
            }
        }
    };
}

string_enum! {
    /// Where a cancellation request stands.
    ///
    /// * `pending`: the subscription runs on until `effective_at`;
    /// * `withdrawn`: the customer took it back;
    /// * `approved`: the merchant ended the subscription before `effective_at`;
    /// * `declined`: the merchant refused it (with a message); the subscription continues;
    /// * `completed`: it took effect at `effective_at`.
    CancellationRequestStatus {
        Pending => "pending",
        Withdrawn => "withdrawn",
        Approved => "approved",
        Declined => "declined",
        Completed => "completed",
    }
}

string_enum! {
    TicketStatus {
        Open => "open",
        Resolved => "resolved",
        Closed => "closed",
    }
}

string_enum! {
    /// Who wrote a ticket message.
    MessageAuthor {
        Merchant => "merchant",
        Customer => "customer",
        System => "system",
    }
}

string_enum! {
    /// How a ticket was opened.
    TicketChannel {
        Portal => "portal",
        Api => "api",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancellationRequest {
    pub id: CancellationRequestId,
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub ticket_id: TicketId,
    pub reason: CancellationReason,
    pub message: Option<String>,
    pub status: CancellationRequestStatus,
    /// When the cancellation takes (or took) effect if nobody intervenes.
    pub effective_at: DateTime<Utc>,
    /// The merchant's message when declining.
    pub decline_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupportTicket {
    pub id: TicketId,
    pub customer_id: CustomerId,
    pub subscription_id: Option<SubscriptionId>,
    pub subject: String,
    pub status: TicketStatus,
    pub channel: TicketChannel,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketMessage {
    pub id: TicketMessageId,
    pub ticket_id: TicketId,
    pub author: MessageAuthor,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl SupportTicket {
    /// A reply by `author`: a customer's reply reopens a resolved ticket; nobody writes on
    /// a closed one.
    pub fn check_reply(&self, author: MessageAuthor) -> Result<TicketStatus, DomainError> {
        match (self.status, author) {
            (TicketStatus::Closed, _) => {
                Err(DomainError::refused("reply to", Refusal::TicketClosed))
            }
            (TicketStatus::Resolved, MessageAuthor::Customer) => Ok(TicketStatus::Open),
            (status, _) => Ok(status),
        }
    }
}

impl CancellationRequest {
    pub fn check_pending(&self, action: &'static str) -> Result<(), DomainError> {
        if self.status == CancellationRequestStatus::Pending {
            Ok(())
        } else {
            Err(DomainError::refused(
                action,
                Refusal::CancellationRequestNotPending,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in CancellationRequestStatus::ALL {
            assert_eq!(
                s.as_str().parse::<CancellationRequestStatus>().ok(),
                Some(*s)
            );
        }
        assert!("nope".parse::<TicketStatus>().is_err());
    }
}
