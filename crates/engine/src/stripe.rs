//! The Stripe gateway: a small client of Stripe's REST API over reqwest (form-encoded
//! requests, JSON answers), behind `PaymentGateway`. Only the calls Tenure makes are
//! here: customers, setup intents, payment methods, off-session payment intents and
//! refunds. The base URL is configurable (`TENURE_STRIPE_API_BASE`) so tests point it at
//! `localstripe`. (`async-stripe` was weighed and not taken: see docs/stripe.md.)
//!
//! # Charges and unknown outcomes
//!
//! A charge is one PaymentIntent, created and confirmed in one call
//! (`confirm=true&off_session=true`) with the charge's key both as Stripe's
//! `Idempotency-Key` and as `metadata[tenure_idempotency_key]`. An answer is final: a
//! PaymentIntent that `succeeded` is paid, a card error is a decline with Stripe's
//! `decline_code` (or `code`). A timeout, a dropped connection or a 5xx is no answer:
//! the charge may have happened, so it is reported as unknown and nothing is recorded;
//! the engine sends the same request again after the charge's lease, marked `resend`.
//! A resend first looks for the PaymentIntent carrying the key among the customer's
//! (Stripe replays the key by itself for 24 hours; the lookup also covers an emulator
//! that ignores idempotency keys and anything older), so a charge is never made twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tenure_app::billing::gateways::GatewayConnector;
use tenure_domain::billing::gateway::{
    CardCollection, CardDetails, ChargeOutcome, ChargeRequest, CollectionError, GatewayCall,
    GatewayCard, OutcomeUnknown, PaymentGateway, RefundOutcome, RefundRequest, SetupIntent,
    split_customer_token,
};

/// Stripe's API, unless configured.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// The metadata key a PaymentIntent carries its Tenure idempotency key in.
const KEY_METADATA: &str = "tenure_idempotency_key";

/// PaymentIntents read per page while looking for a resent charge's first one.
const LOOKUP_PAGE: usize = 100;
/// Pages read at most while looking (only emulators that cannot filter by customer need
/// more than one).
const LOOKUP_PAGES: usize = 50;

/// Makes a merchant's Stripe gateway from its secret key; every gateway of a process
/// shares one HTTP client (and its connections).
#[derive(Clone)]
pub struct StripeConnector {
    client: reqwest::Client,
    base: Arc<str>,
}

impl std::fmt::Debug for StripeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConnector")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl StripeConnector {
    /// `base` without a trailing slash (`https://api.stripe.com`); `timeout` bounds each
    /// call, after which its outcome is unknown.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let base = base.trim_end_matches('/');
        reqwest::Url::parse(base).map_err(|e| format!("stripe api base {base}: {e}"))?;
        Ok(Self {
            client,
            base: base.into(),
        })
    }
}

impl GatewayConnector for StripeConnector {
    fn stripe(&self, secret_key: &str) -> Arc<dyn PaymentGateway> {
        Arc::new(StripeGateway {
            client: self.client.clone(),
            base: self.base.clone(),
            secret_key: secret_key.to_owned(),
        })
    }
}

/// One merchant's Stripe account.
pub struct StripeGateway {
    client: reqwest::Client,
    base: Arc<str>,
    secret_key: String,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeGateway")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// How a call ended without a 2xx.
#[derive(Debug)]
enum CallError {
    /// Stripe answered 4xx: a final answer (its `error` object).
    Refused { status: u16, error: Value },
    /// No answer, or a 5xx: the request may or may not have taken effect.
    NoAnswer(String),
}

impl CallError {
    fn code(&self) -> String {
        match self {
            CallError::Refused { error, status } => error
                .get("decline_code")
                .and_then(Value::as_str)
                .or_else(|| error.get("code").and_then(Value::as_str))
                .map_or_else(|| format!("http_{status}"), str::to_owned),
            CallError::NoAnswer(_) => "gateway_unavailable".to_owned(),
        }
    }

    fn message(&self) -> String {
        match self {
            CallError::Refused { error, .. } => error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("refused by Stripe")
                .to_owned(),
            CallError::NoAnswer(cause) => cause.clone(),
        }
    }

    fn into_collection(self) -> CollectionError {
        match self {
            CallError::Refused { .. } => CollectionError::Refused {
                code: self.code(),
                message: self.message(),
            },
            CallError::NoAnswer(cause) => CollectionError::Unavailable(cause),
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn card_of(pm: &Value) -> Option<CardDetails> {
    let card = pm.get("card")?;
    Some(CardDetails {
        brand: str_of(card, "brand")?.to_ascii_lowercase(),
        last4: str_of(card, "last4")?.to_owned(),
        exp_month: u32::try_from(card.get("exp_month")?.as_u64()?).ok()?,
        exp_year: i32::try_from(card.get("exp_year")?.as_i64()?).ok()?,
    })
}

fn gateway_card(pm: &Value) -> Result<GatewayCard, CollectionError> {
    let card = card_of(pm).ok_or_else(|| CollectionError::Refused {
        code: "not_a_card".to_owned(),
        message: "the payment method is not a card".to_owned(),
    })?;
    Ok(GatewayCard {
        card,
        customer_ref: str_of(pm, "customer").map(str::to_owned),
    })
}

impl StripeGateway {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let response = request
            .bearer_auth(&self.secret_key)
            .header("Stripe-Version", "2024-06-20")
            .send()
            .await
            .map_err(|e| CallError::NoAnswer(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::NoAnswer(describe(&e)))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(CallError::NoAnswer(format!("HTTP {status}")));
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| CallError::NoAnswer(format!("HTTP {status}, not JSON: {e}")))?;
        if status.is_success() {
            Ok(json)
        } else {
            Err(CallError::Refused {
                status: status.as_u16(),
                error: json.get("error").cloned().unwrap_or(Value::Null),
            })
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, CallError> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| CallError::NoAnswer(format!("encoding: {e}")))?;
        let mut request = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CallError> {
        let mut url = self.url(path);
        if !query.is_empty() {
            let encoded = serde_urlencoded::to_string(query)
                .map_err(|e| CallError::NoAnswer(format!("encoding: {e}")))?;
            url = format!("{url}?{encoded}");
        }
        self.send(self.client.get(url)).await
    }

    /// The PaymentIntent made under `key` for `customer`, if any.
    async fn find_by_key(&self, customer: &str, key: &str) -> Result<Option<Value>, CallError> {
        let mut filter_by_customer = true;
        let mut starting_after: Option<String> = None;
        for _ in 0..LOOKUP_PAGES {
            let mut query = vec![("limit", LOOKUP_PAGE.to_string())];
            if filter_by_customer {
                query.push(("customer", customer.to_owned()));
            }
            if let Some(after) = &starting_after {
                query.push(("starting_after", after.clone()));
            }
            let page = match self.get("/v1/payment_intents", &query).await {
                Ok(page) => page,
                // localstripe cannot filter PaymentIntents by customer: read them all.
                Err(CallError::Refused { status: 400, .. }) if filter_by_customer => {
                    filter_by_customer = false;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(found) = data.iter().find(|pi| {
                pi.get("metadata")
                    .and_then(|m| str_of(m, KEY_METADATA))
                    .is_some_and(|k| k == key)
                    && str_of(pi, "customer").is_none_or(|c| c == customer)
            }) {
                return Ok(Some(found.clone()));
            }
            let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
            match data.last().and_then(|pi| str_of(pi, "id")) {
                Some(last) if more => starting_after = Some(last.to_owned()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// What a PaymentIntent's state means for the charge.
    async fn outcome_of(
        &self,
        pi: &Value,
        on_session: bool,
    ) -> Result<ChargeOutcome, OutcomeUnknown> {
        let id = str_of(pi, "id").unwrap_or_default().to_owned();
        match str_of(pi, "status").unwrap_or_default() {
            "succeeded" => Ok(ChargeOutcome::Succeeded { gateway_ref: id }),
            // Made but never confirmed (a first call cut off between the two): confirm it
            // now, under its own key, so it is confirmed at most once.
            "requires_confirmation" => {
                match self
                    .post(
                        &format!("/v1/payment_intents/{id}/confirm"),
                        &[],
                        Some(&format!("{id}:confirm")),
                    )
                    .await
                {
                    Ok(pi) => Box::pin(self.outcome_of(&pi, on_session)).await,
                    Err(err) => charge_error(err),
                }
            }
            // On session the customer authenticates it with the client secret; Stripe's
            // event (or the lease's end) settles it.
            "requires_action" if on_session => Err(OutcomeUnknown {
                reason: format!("payment intent {id} waits for the customer's authentication"),
                action: str_of(pi, "client_secret").map(str::to_owned),
            }),
            // Off session nobody can authenticate: Stripe itself declines such a charge
            // with `authentication_required` (localstripe leaves it waiting instead). It is
            // canceled first, so a late authentication can never take money Tenure
            // recorded as declined; a cancel without an answer leaves the outcome unknown.
            "requires_action" => {
                match self
                    .post(
                        &format!("/v1/payment_intents/{id}/cancel"),
                        &[],
                        Some(&format!("{id}:cancel")),
                    )
                    .await
                {
                    Ok(_) => Ok(ChargeOutcome::Declined {
                        code: "authentication_required".to_owned(),
                        message: "The card requires the cardholder's authentication.".to_owned(),
                    }),
                    // Succeeded meanwhile (authenticated): read it again.
                    Err(CallError::Refused { .. }) => {
                        match self.get(&format!("/v1/payment_intents/{id}"), &[]).await {
                            Ok(pi) if str_of(&pi, "status") != Some("requires_action") => {
                                Box::pin(self.outcome_of(&pi, on_session)).await
                            }
                            Ok(_) | Err(_) => Err(OutcomeUnknown {
                                reason: format!("payment intent {id} could not be canceled"),
                                action: None,
                            }),
                        }
                    }
                    Err(err) => charge_error(err),
                }
            }
            "requires_payment_method" | "canceled" => {
                let error = pi.get("last_payment_error").cloned().unwrap_or(Value::Null);
                Ok(ChargeOutcome::Declined {
                    code: str_of(&error, "decline_code")
                        .or_else(|| str_of(&error, "code"))
                        .unwrap_or("card_declined")
                        .to_owned(),
                    message: str_of(&error, "message")
                        .unwrap_or("The card was declined.")
                        .to_owned(),
                })
            }
            // Settles later (bank debits): asked again after the lease.
            other => Err(OutcomeUnknown {
                reason: format!("payment intent {id} is {other}"),
                action: None,
            }),
        }
    }

    async fn charge_once(&self, request: &ChargeRequest) -> Result<ChargeOutcome, OutcomeUnknown> {
        let Some((customer, payment_method)) = split_customer_token(&request.payment_method_token)
        else {
            return Ok(ChargeOutcome::Declined {
                code: "invalid_payment_method".to_owned(),
                message: "The payment method was not collected through Stripe.".to_owned(),
            });
        };
        if request.resend {
            match self.find_by_key(customer, &request.idempotency_key).await {
                Ok(Some(pi)) => return self.outcome_of(&pi, request.on_session).await,
                Ok(None) => {}
                Err(err) => {
                    return Err(OutcomeUnknown {
                        reason: format!("looking for the first charge: {}", err.message()),
                        action: None,
                    });
                }
            }
        }
        let form = [
            ("amount", request.amount.amount.to_string()),
            (
                "currency",
                request.amount.currency.code().to_ascii_lowercase(),
            ),
            ("customer", customer.to_owned()),
            ("payment_method", payment_method.to_owned()),
            ("confirm", "true".to_owned()),
            (
                "metadata[tenure_idempotency_key]",
                request.idempotency_key.clone(),
            ),
            ("metadata[tenure_description]", request.description.clone()),
        ];
        let mut form = form.to_vec();
        if !request.on_session {
            form.push(("off_session", "true".to_owned()));
        }
        match self
            .post("/v1/payment_intents", &form, Some(&request.idempotency_key))
            .await
        {
            Ok(pi) => self.outcome_of(&pi, request.on_session).await,
            Err(err) => charge_error(err),
        }
    }
}

fn charge_error(err: CallError) -> Result<ChargeOutcome, OutcomeUnknown> {
    match &err {
        CallError::NoAnswer(cause) => Err(OutcomeUnknown {
            reason: cause.clone(),
            action: None,
        }),
        CallError::Refused { status: 402, .. } => Ok(ChargeOutcome::Declined {
            code: err.code(),
            message: err.message(),
        }),
        // The request itself was refused (a missing customer or payment method, a
        // currency Stripe does not take): no charge, and the same request would fail
        // again the same way, so it counts as a processing failure (dunning retries).
        CallError::Refused { .. } => Ok(ChargeOutcome::Failed { code: err.code() }),
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

impl PaymentGateway for StripeGateway {
    fn name(&self) -> &'static str {
        "stripe"
    }

    /// Stripe cards come through setup intents and [`CardCollection`]; a bare token is
    /// not one.
    fn card_details<'a>(&'a self, _token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        Box::pin(std::future::ready(None))
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        Box::pin(async move {
            self.charge_once(request)
                .await
                .unwrap_or_else(|unknown| ChargeOutcome::Failed {
                    code: format!("outcome_unknown: {}", unknown.reason),
                })
        })
    }

    fn try_charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> GatewayCall<'a, Result<ChargeOutcome, OutcomeUnknown>> {
        Box::pin(self.charge_once(request))
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        Box::pin(async move {
            let form = [
                ("payment_intent", request.charge_ref.clone()),
                ("amount", request.amount.amount.to_string()),
                (
                    "metadata[tenure_idempotency_key]",
                    request.idempotency_key.clone(),
                ),
            ];
            match self
                .post("/v1/refunds", &form, Some(&request.idempotency_key))
                .await
            {
                Ok(refund) => match str_of(&refund, "status") {
                    Some("succeeded" | "pending") => RefundOutcome::Succeeded {
                        gateway_ref: str_of(&refund, "id").unwrap_or_default().to_owned(),
                    },
                    other => RefundOutcome::Failed {
                        code: format!("refund_{}", other.unwrap_or("unknown")),
                    },
                },
                Err(err) => RefundOutcome::Failed { code: err.code() },
            }
        })
    }

    fn card_collection(&self) -> Option<&dyn CardCollection> {
        Some(self)
    }
}

impl CardCollection for StripeGateway {
    fn check_credentials(&self) -> GatewayCall<'_, Result<(), CollectionError>> {
        Box::pin(async move {
            // Any key Tenure can use reads customers, so this proves the key and its
            // permission at once, and lists at most one.
            match self
                .get("/v1/customers", &[("limit", "1".to_owned())])
                .await
            {
                Ok(_) => Ok(()),
                Err(CallError::Refused {
                    status: 401 | 403,
                    error,
                }) => Err(CollectionError::Refused {
                    code: "invalid_api_key".to_owned(),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the key was not accepted")
                        .to_owned(),
                }),
                Err(err) => Err(err.into_collection()),
            }
        })
    }

    fn create_customer<'a>(
        &'a self,
        tenure_customer: &'a str,
        email: Option<&'a str>,
        idempotency_key: &'a str,
    ) -> GatewayCall<'a, Result<String, CollectionError>> {
        Box::pin(async move {
            let mut form = vec![("metadata[tenure_customer_id]", tenure_customer.to_owned())];
            if let Some(email) = email {
                form.push(("email", email.to_owned()));
            }
            let customer = self
                .post("/v1/customers", &form, Some(idempotency_key))
                .await
                .map_err(CallError::into_collection)?;
            str_of(&customer, "id")
                .map(str::to_owned)
                .ok_or_else(|| CollectionError::Unavailable("customer without an id".to_owned()))
        })
    }

    fn create_setup_intent<'a>(
        &'a self,
        customer_ref: &'a str,
    ) -> GatewayCall<'a, Result<SetupIntent, CollectionError>> {
        Box::pin(async move {
            let form = [
                ("customer", customer_ref.to_owned()),
                ("usage", "off_session".to_owned()),
                ("payment_method_types[]", "card".to_owned()),
            ];
            let intent = self
                .post("/v1/setup_intents", &form, None)
                .await
                .map_err(CallError::into_collection)?;
            match (str_of(&intent, "id"), str_of(&intent, "client_secret")) {
                (Some(id), Some(secret)) => Ok(SetupIntent {
                    id: id.to_owned(),
                    client_secret: secret.to_owned(),
                }),
                _ => Err(CollectionError::Unavailable(
                    "setup intent without a client secret".to_owned(),
                )),
            }
        })
    }

    fn payment_method<'a>(
        &'a self,
        id: &'a str,
    ) -> GatewayCall<'a, Result<Option<GatewayCard>, CollectionError>> {
        Box::pin(async move {
            match self.get(&format!("/v1/payment_methods/{id}"), &[]).await {
                Ok(pm) => gateway_card(&pm).map(Some),
                Err(CallError::Refused { status: 404, .. }) => Ok(None),
                Err(err) => Err(err.into_collection()),
            }
        })
    }

    fn attach_payment_method<'a>(
        &'a self,
        id: &'a str,
        customer_ref: &'a str,
    ) -> GatewayCall<'a, Result<GatewayCard, CollectionError>> {
        Box::pin(async move {
            let pm = self
                .post(
                    &format!("/v1/payment_methods/{id}/attach"),
                    &[("customer", customer_ref.to_owned())],
                    Some(&format!("{id}:attach:{customer_ref}")),
                )
                .await
                .map_err(CallError::into_collection)?;
            gateway_card(&pm)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(status: u16, error: Value) -> CallError {
        CallError::Refused { status, error }
    }

    #[test]
    fn a_card_error_is_a_decline_with_stripes_decline_code() {
        // Real Stripe's answer to an off-session charge of 4000000000009995.
        let insufficient = refused(
            402,
            json!({"type": "card_error", "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."}),
        );
        assert_eq!(
            charge_error(insufficient),
            Ok(ChargeOutcome::Declined {
                code: "insufficient_funds".to_owned(),
                message: "Your card has insufficient funds.".to_owned(),
            })
        );
        // localstripe's: no decline code, the error's code stands in.
        let declined = refused(
            402,
            json!({"code": "card_declined", "message": "Your card was declined."}),
        );
        assert!(matches!(
            charge_error(declined),
            Ok(ChargeOutcome::Declined { code, .. }) if code == "card_declined"
        ));
    }

    #[test]
    fn no_answer_is_an_unknown_outcome_and_a_bad_request_a_failure() {
        assert!(charge_error(CallError::NoAnswer("timed out".to_owned())).is_err());
        assert_eq!(
            charge_error(refused(400, json!({"code": "parameter_invalid_integer"}))),
            Ok(ChargeOutcome::Failed {
                code: "parameter_invalid_integer".to_owned()
            })
        );
        assert_eq!(
            charge_error(refused(404, Value::Null)),
            Ok(ChargeOutcome::Failed {
                code: "http_404".to_owned()
            })
        );
    }

    #[test]
    fn cards_are_read_from_payment_methods() {
        let pm = json!({"id": "pm_1", "customer": "cus_1", "card": {"brand": "Visa",
            "last4": "4242", "exp_month": 12, "exp_year": 2034}});
        let card = gateway_card(&pm).unwrap();
        assert_eq!(card.card.brand, "visa");
        assert_eq!(card.customer_ref.as_deref(), Some("cus_1"));
        assert!(gateway_card(&json!({"id": "pm_2", "type": "sepa_debit"})).is_err());
    }
}
