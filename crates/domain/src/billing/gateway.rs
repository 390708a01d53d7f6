//! The payment gateway seam and the deterministic sandbox gateway.
//!
//! # Why the trait is synchronous
//!
//! `domain` does no I/O and has no async runtime, so [`PaymentGateway`] is a plain
//! synchronous trait over request structs. The built-in [`SandboxGateway`] answers from
//! memory, so the API calls it directly. An adapter for a real gateway (an HTTP client)
//! implements the same trait with a blocking client and is called from
//! `tokio::task::spawn_blocking`, or gets an async wrapper inside the `api` crate; the
//! request and outcome types stay the same either way, and so do the rules that consume
//! them.
//!
//! # Idempotency
//!
//! Every charge and refund carries an idempotency key. A gateway must answer a repeated
//! key with the outcome (and reference) of the first request, so a retry after a crash
//! can never charge twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// What the gateway knows about a tokenized card. Tenure stores exactly this, never a
/// card number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardDetails {
    /// `visa`, `mastercard`, `amex`, …
    pub brand: String,
    /// The last four digits, for display.
    pub last4: String,
    /// 1–12.
    pub exp_month: u32,
    pub exp_year: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    pub amount: Money,
    pub payment_method_token: String,
    /// The same key must yield the same outcome and reference.
    pub idempotency_key: String,
    pub description: String,
    /// This key may have been sent before (a charge taken over after its lease, whose
    /// first call may have reached the gateway): a gateway that cannot replay a key by
    /// itself looks for the first charge before making one.
    pub resend: bool,
    /// The customer is there (the portal's pay): a card that asks for authentication
    /// (3-D Secure) waits for it instead of being declined.
    pub on_session: bool,
}

/// A charge whose outcome the gateway did not tell (a timeout, a dropped connection, a
/// 5xx): it may or may not have happened. It is never recorded as a failure; the same
/// request is sent again later under the same key, which finds the first charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeUnknown {
    /// For the log.
    pub reason: String,
    /// The charge waits for the customer to authenticate it (on session): the client
    /// secret the frontend confirms it with.
    pub action: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChargeOutcome {
    /// The money was taken; `gateway_ref` identifies the charge at the gateway.
    Succeeded { gateway_ref: String },
    /// The issuer refused (`card_declined`, `insufficient_funds`, `expired_card`): a retry
    /// with the same card may succeed later (dunning), but not right away.
    Declined { code: String, message: String },
    /// The gateway could not process the charge (`processing_error`): retryable.
    Failed { code: String },
}

impl ChargeOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, ChargeOutcome::Succeeded { .. })
    }

    /// Whether retrying the same charge soon may help (a processing error).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChargeOutcome::Failed { .. })
    }

    /// The failure code, if the charge failed.
    pub fn failure_code(&self) -> Option<&str> {
        match self {
            ChargeOutcome::Succeeded { .. } => None,
            ChargeOutcome::Declined { code, .. } | ChargeOutcome::Failed { code } => Some(code),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// The `gateway_ref` of the charge being refunded.
    pub charge_ref: String,
    /// At most what is left to refund of that charge; the caller checks.
    pub amount: Money,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RefundOutcome {
    Succeeded { gateway_ref: String },
    Failed { code: String },
}

/// A call to the gateway: a real one goes over the network, so its answer is awaited
/// (and must never block the thread the engine or a request runs on).
pub type GatewayCall<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A payment gateway: card details of a token, charges and refunds.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// A short name for logs and records (`sandbox`).
    fn name(&self) -> &'static str;

    /// The card behind a token, or `None` when the gateway does not know the token.
    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>>;

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome>;

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome>;

    /// A charge that may end without an answer ([`OutcomeUnknown`]). Gateways that
    /// answer in process always answer, so this is [`PaymentGateway::charge`] unless a
    /// network gateway says otherwise.
    fn try_charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> GatewayCall<'a, Result<ChargeOutcome, OutcomeUnknown>> {
        Box::pin(async move { Ok(self.charge(request).await) })
    }

    /// Card collection the way a gateway with its own customers does it (Stripe: a
    /// customer, setup intents confirmed by the frontend, payment methods that belong to
    /// a customer). `None`: cards are attached by token alone (the sandbox).
    fn card_collection(&self) -> Option<&dyn CardCollection> {
        None
    }
}

/// A gateway-side failure of a card-collection call, for the caller to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CollectionError {
    /// The gateway refused the request (`code` is its error code, e.g. `resource_missing`).
    Refused { code: String, message: String },
    /// The gateway did not answer or failed (timeout, 5xx): try again later.
    Unavailable(String),
}

/// What the frontend needs to collect a card with the gateway's own library (Stripe.js
/// or a mobile SDK): the intent's client secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupIntent {
    pub id: String,
    pub client_secret: String,
}

/// A payment method as the gateway knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayCard {
    pub card: CardDetails,
    /// The gateway customer it is attached to, if any.
    pub customer_ref: Option<String>,
}

/// Card collection at a gateway with customers ([`PaymentGateway::card_collection`]).
pub trait CardCollection: Send + Sync {
    /// Creates the gateway's customer for one of the merchant's customers;
    /// `idempotency_key` makes a retried creation return the same customer.
    fn create_customer<'a>(
        &'a self,
        tenure_customer: &'a str,
        email: Option<&'a str>,
        idempotency_key: &'a str,
    ) -> GatewayCall<'a, Result<String, CollectionError>>;

    /// A setup intent for `customer_ref`, to be confirmed by the frontend, for charges
    /// made later without the customer (off session).
    fn create_setup_intent<'a>(
        &'a self,
        customer_ref: &'a str,
    ) -> GatewayCall<'a, Result<SetupIntent, CollectionError>>;

    /// The payment method `id` (`pm_…`), or `None` when the gateway does not know it.
    fn payment_method<'a>(
        &'a self,
        id: &'a str,
    ) -> GatewayCall<'a, Result<Option<GatewayCard>, CollectionError>>;

    /// Attaches a payment method that belongs to no customer yet to `customer_ref`.
    fn attach_payment_method<'a>(
        &'a self,
        id: &'a str,
        customer_ref: &'a str,
    ) -> GatewayCall<'a, Result<GatewayCard, CollectionError>>;

    /// One cheap authenticated read, to tell whether the gateway accepts the keys before
    /// they are saved: `Refused` when it does not (`code` `invalid_api_key`),
    /// `Unavailable` when it cannot be reached.
    fn check_credentials(&self) -> GatewayCall<'_, Result<(), CollectionError>> {
        Box::pin(async { Ok(()) })
    }
}

/// How a payment method of a gateway with customers is kept as Tenure's token: the
/// customer and the method (`cus_…/pm_…`), since an off-session charge names both. The
/// token is Tenure's and the gateway adapter's alone; clients never see it.
pub fn customer_token(customer_ref: &str, payment_method: &str) -> String {
    format!("{customer_ref}/{payment_method}")
}

/// The customer and payment method of a [`customer_token`]; `None` for a plain token.
pub fn split_customer_token(token: &str) -> Option<(&str, &str)> {
    token.split_once('/')
}

/// One sandbox token: its card and how charges against it end.
struct SandboxCard {
    token: &'static str,
    brand: &'static str,
    last4: &'static str,
    exp_month: u32,
    exp_year: i32,
    behaviour: Behaviour,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    Decline(&'static str, &'static str),
    Fail(&'static str),
}

/// The year sandbox cards expire in (far enough for any test clock); the expired card
/// uses [`SANDBOX_EXPIRED_YEAR`].
pub const SANDBOX_EXP_YEAR: i32 = 2034;
pub const SANDBOX_EXPIRED_YEAR: i32 = 2020;

const SANDBOX_CARDS: &[SandboxCard] = &[
    SandboxCard {
        token: "pm_card_visa",
        brand: "visa",
        last4: "4242",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Succeed,
    },
    SandboxCard {
        token: "pm_card_mastercard",
        brand: "mastercard",
        last4: "4444",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Succeed,
    },
    SandboxCard {
        token: "pm_card_amex",
        brand: "amex",
        last4: "8431",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Succeed,
    },
    SandboxCard {
        token: "pm_card_chargeDeclined",
        brand: "visa",
        last4: "0002",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Decline("card_declined", "The card was declined."),
    },
    SandboxCard {
        token: "pm_card_insufficientFunds",
        brand: "visa",
        last4: "9995",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Decline(
            "insufficient_funds",
            "The card has insufficient funds to complete the purchase.",
        ),
    },
    SandboxCard {
        token: "pm_card_expired",
        brand: "visa",
        last4: "0069",
        exp_month: 12,
        exp_year: SANDBOX_EXPIRED_YEAR,
        behaviour: Behaviour::Decline("expired_card", "The card has expired."),
    },
    SandboxCard {
        token: "pm_card_processingError",
        brand: "visa",
        last4: "0119",
        exp_month: 12,
        exp_year: SANDBOX_EXP_YEAR,
        behaviour: Behaviour::Fail("processing_error"),
    },
];

/// Every token the sandbox knows.
pub fn sandbox_tokens() -> impl Iterator<Item = &'static str> {
    SANDBOX_CARDS.iter().map(|c| c.token)
}

fn sandbox_card(token: &str) -> Option<&'static SandboxCard> {
    SANDBOX_CARDS.iter().find(|c| c.token == token)
}

/// The card behind a sandbox token; `None` for tokens the sandbox does not know.
pub fn sandbox_card_details(token: &str) -> Option<CardDetails> {
    sandbox_card(token).map(|c| CardDetails {
        brand: c.brand.to_owned(),
        last4: c.last4.to_owned(),
        exp_month: c.exp_month,
        exp_year: c.exp_year,
    })
}

/// FNV-1a, 64 bit: a stable digest for deterministic references (not for security).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The deterministic sandbox gateway. Outcomes depend only on the token; references
/// depend only on the idempotency key, and a repeated key replays the first outcome even
/// if the rest of the request differs (as real gateways do).
#[derive(Debug, Default)]
pub struct SandboxGateway {
    charges: Mutex<HashMap<String, ChargeOutcome>>,
    refunds: Mutex<HashMap<String, RefundOutcome>>,
}

impl SandboxGateway {
    pub fn new() -> Self {
        Self::default()
    }

    fn fresh_charge(request: &ChargeRequest) -> ChargeOutcome {
        let Some(card) = sandbox_card(&request.payment_method_token) else {
            return ChargeOutcome::Declined {
                code: "invalid_payment_method".to_owned(),
                message: "The payment method is not known to the gateway.".to_owned(),
            };
        };
        if request.amount.amount <= 0 {
            return ChargeOutcome::Failed {
                code: "invalid_amount".to_owned(),
            };
        }
        match card.behaviour {
            Behaviour::Succeed => ChargeOutcome::Succeeded {
                gateway_ref: format!(
                    "ch_sandbox_{:016x}",
                    fnv1a(&["charge", &request.idempotency_key])
                ),
            },
            Behaviour::Decline(code, message) => ChargeOutcome::Declined {
                code: code.to_owned(),
                message: message.to_owned(),
            },
            Behaviour::Fail(code) => ChargeOutcome::Failed {
                code: code.to_owned(),
            },
        }
    }

    fn fresh_refund(request: &RefundRequest) -> RefundOutcome {
        if !request.charge_ref.starts_with("ch_sandbox_") {
            return RefundOutcome::Failed {
                code: "charge_not_found".to_owned(),
            };
        }
        if request.amount.amount <= 0 {
            return RefundOutcome::Failed {
                code: "invalid_amount".to_owned(),
            };
        }
        RefundOutcome::Succeeded {
            gateway_ref: format!(
                "re_sandbox_{:016x}",
                fnv1a(&["refund", &request.idempotency_key])
            ),
        }
    }
}

impl SandboxGateway {
    /// The outcome of a charge; the same key replays the first one.
    pub fn charge_now(&self, request: &ChargeRequest) -> ChargeOutcome {
        // A poisoned lock only means another thread panicked mid-insert; the map is
        // still a valid map, so keep using it.
        let mut charges = self
            .charges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        charges
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| Self::fresh_charge(request))
            .clone()
    }

    /// The outcome of a refund; the same key replays the first one.
    pub fn refund_now(&self, request: &RefundRequest) -> RefundOutcome {
        let mut refunds = self
            .refunds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        refunds
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| Self::fresh_refund(request))
            .clone()
    }
}

/// The sandbox answers at once, in process.
impl PaymentGateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        Box::pin(std::future::ready(sandbox_card_details(token)))
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        Box::pin(std::future::ready(self.charge_now(request)))
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        Box::pin(std::future::ready(self.refund_now(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR".parse::<Currency>().unwrap())
    }

    fn charge(gw: &SandboxGateway, token: &str, key: &str) -> ChargeOutcome {
        gw.charge_now(&ChargeRequest {
            amount: eur(1999),
            payment_method_token: token.to_owned(),
            idempotency_key: key.to_owned(),
            description: "test".to_owned(),
            resend: false,
            on_session: false,
        })
    }

    #[test]
    fn each_token_behaves_as_documented() {
        let gw = SandboxGateway::new();
        for token in ["pm_card_visa", "pm_card_mastercard", "pm_card_amex"] {
            assert!(charge(&gw, token, token).is_success(), "{token}");
        }
        for (token, code) in [
            ("pm_card_chargeDeclined", "card_declined"),
            ("pm_card_insufficientFunds", "insufficient_funds"),
            ("pm_card_expired", "expired_card"),
        ] {
            let outcome = charge(&gw, token, token);
            assert!(matches!(&outcome, ChargeOutcome::Declined { code: c, .. } if c == code));
            assert!(!outcome.is_retryable());
        }
        let failed = charge(&gw, "pm_card_processingError", "p");
        assert_eq!(
            failed,
            ChargeOutcome::Failed {
                code: "processing_error".to_owned()
            }
        );
        assert!(failed.is_retryable());
    }

    #[test]
    fn card_details_come_from_the_token() {
        let expected = [
            ("pm_card_visa", "visa", "4242"),
            ("pm_card_mastercard", "mastercard", "4444"),
            ("pm_card_amex", "amex", "8431"),
            ("pm_card_chargeDeclined", "visa", "0002"),
            ("pm_card_insufficientFunds", "visa", "9995"),
            ("pm_card_expired", "visa", "0069"),
            ("pm_card_processingError", "visa", "0119"),
        ];
        for (token, brand, last4) in expected {
            let card = sandbox_card_details(token).unwrap();
            assert_eq!((card.brand.as_str(), card.last4.as_str()), (brand, last4));
        }
        assert_eq!(sandbox_tokens().count(), expected.len());
        assert!(sandbox_card_details("pm_card_expired").unwrap().exp_year < 2026);
        assert_eq!(sandbox_card_details("tok_unknown"), None);
        assert_eq!(sandbox_card_details("4242424242424242"), None);
    }

    #[test]
    fn the_same_idempotency_key_replays_the_first_outcome() {
        let gw = SandboxGateway::new();
        let first = charge(&gw, "pm_card_visa", "key-1");
        assert_eq!(charge(&gw, "pm_card_visa", "key-1"), first);
        // Even with another card: the key decides.
        assert_eq!(charge(&gw, "pm_card_chargeDeclined", "key-1"), first);
        let other = charge(&gw, "pm_card_visa", "key-2");
        assert_ne!(other, first);
        // A fresh gateway derives the same reference from the same key.
        assert_eq!(
            charge(&SandboxGateway::new(), "pm_card_visa", "key-1"),
            first
        );
    }

    #[test]
    fn refunds_need_a_sandbox_charge() {
        let gw = SandboxGateway::new();
        let ChargeOutcome::Succeeded { gateway_ref } = charge(&gw, "pm_card_visa", "k") else {
            panic!("visa succeeds")
        };
        let refund = |charge_ref: &str, key: &str| {
            gw.refund_now(&RefundRequest {
                charge_ref: charge_ref.to_owned(),
                amount: eur(500),
                idempotency_key: key.to_owned(),
            })
        };
        let ok = refund(&gateway_ref, "r1");
        assert!(matches!(ok, RefundOutcome::Succeeded { .. }));
        assert_eq!(refund(&gateway_ref, "r1"), ok);
        assert!(matches!(
            refund("ch_other", "r2"),
            RefundOutcome::Failed { .. }
        ));
    }
}
