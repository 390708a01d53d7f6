//! Refunds: no lock is held while the gateway refunds; each refund is prepared (an
//! intent with a lease), sent, and settled exactly once, also after its request died.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use serde_json::json;
use tenure_domain::billing::gateway::{
    CardDetails, ChargeOutcome, ChargeRequest, GatewayCall, PaymentGateway, RefundOutcome,
    RefundRequest, SandboxGateway,
};
use tenure_domain::clock::Clock;
use tenure_domain::ids::{InvoiceId, MerchantId};
use tenure_e2e::{TestApp, TestMerchant};
use tokio::sync::oneshot;

use crate::billing::{invoice, pay};
use crate::fixtures::{self, attach};

/// The sandbox, recording the key of every refund, whose first refund stops until the
/// test lets it go on: after the sandbox refunded (the money is out), before the answer
/// reaches Tenure. A gateway that takes its time, or a request that dies there.
struct HeldRefunds {
    sandbox: SandboxGateway,
    keys: Mutex<Vec<String>>,
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl HeldRefunds {
    /// The gateway, told when the first refund arrived, and the signal that lets it go on.
    fn new() -> (Arc<Self>, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        let gateway = Self {
            sandbox: SandboxGateway::new(),
            keys: Mutex::new(Vec::new()),
            hold: Mutex::new(Some((arrived_tx, go_rx))),
        };
        (Arc::new(gateway), arrived_rx, go_tx)
    }

    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

impl std::fmt::Debug for HeldRefunds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldRefunds")
    }
}

impl PaymentGateway for HeldRefunds {
    fn name(&self) -> &'static str {
        self.sandbox.name()
    }

    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        self.sandbox.card_details(token)
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        self.sandbox.charge(request)
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        self.keys
            .lock()
            .unwrap()
            .push(request.idempotency_key.clone());
        let hold = self.hold.lock().unwrap().take();
        Box::pin(async move {
            let outcome = self.sandbox.refund_now(request);
            if let Some((arrived, go)) = hold {
                let _ = arrived.send(());
                let _ = go.await;
            }
            outcome
        })
    }
}

/// A paid invoice of 1000 and a refund of `amount` started with the held gateway; returns
/// once the gateway refunded (the refund request still waits for its answer).
struct RefundInFlight {
    app: TestApp,
    m: TestMerchant,
    invoice: InvoiceId,
    gateway: Arc<HeldRefunds>,
    go: oneshot::Sender<()>,
    request: actix_web::rt::task::JoinHandle<
        tenure_app::AppResult<(
            tenure_domain::billing::invoice::Refund,
            tenure_domain::billing::invoice::Invoice,
        )>,
    >,
}

async fn refund_in_flight(amount: i64) -> RefundInFlight {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    attach(&app, &m, &cus, "pm_card_visa").await;
    let invoice = invoice(&app, &m, &cus, 1000).await;
    assert_eq!(pay(&app, &m, invoice).await.0, "succeeded");
    let (gateway, arrived, go) = HeldRefunds::new();
    let state = tenure_app::App {
        gateway: gateway.clone(),
        ..app.state.app.clone()
    };
    let merchant: MerchantId = m.id.parse().unwrap();
    let request = actix_web::rt::spawn(async move {
        let input = tenure_app::dto::billing::RefundInvoice {
            amount: Some(amount),
            reason: Some("requested_by_customer".to_owned()),
        };
        tenure_app::billing::invoices::refund(&state, merchant, invoice, input).await
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), arrived)
        .await
        .expect("the refund reached the gateway")
        .unwrap();
    RefundInFlight {
        app,
        m,
        invoice,
        gateway,
        go,
        request,
    }
}

/// Refunds recorded: their count, their sum, the payment's and the invoice's refunded
/// amounts, and `invoice.refunded` events.
async fn refunds_recorded(app: &TestApp) -> [i64; 5] {
    [
        app.count("SELECT count(*) AS n FROM refunds").await,
        app.count("SELECT coalesce(sum(amount), 0)::bigint AS n FROM refunds")
            .await,
        app.count("SELECT coalesce(sum(amount_refunded), 0)::bigint AS n FROM payments")
            .await,
        app.count("SELECT coalesce(sum(amount_refunded), 0)::bigint AS n FROM invoices")
            .await,
        app.count("SELECT count(*) AS n FROM events WHERE event_type = 'invoice.refunded'")
            .await,
    ]
}

#[actix_web::test]
async fn no_lock_is_held_while_the_gateway_refunds_and_the_refund_settles_once() {
    use diesel_async::SimpleAsyncConnection;

    let RefundInFlight {
        app,
        m,
        invoice,
        gateway,
        go,
        request,
    } = refund_in_flight(300).await;
    // No transaction is open: another one locks and updates the invoice at once.
    let mut other = app.sql().await;
    other
        .batch_execute(&format!(
            "SET lock_timeout = '2s'; BEGIN; \
             SELECT 1 FROM invoices WHERE id = '{id}' FOR UPDATE; \
             UPDATE invoices SET updated_at = updated_at WHERE id = '{id}'; ROLLBACK",
            id = invoice.uuid()
        ))
        .await
        .expect("the invoice is not locked during the gateway call");
    // A second refund of the invoice waits for none: it is refused while one is in flight.
    let path = format!("/v1/invoices/{invoice}/refund");
    app.by(&m.key)
        .post(&path, &json!({"amount": 100}))
        .await
        .expect_problem(409, "refund_in_progress");
    let shown = app.get_ok(&format!("/v1/invoices/{invoice}"), &m.key).await;
    assert_eq!(shown["amount_refunded"]["amount"], 0, "{shown}");

    go.send(()).unwrap();
    let (refund, after) = request.await.unwrap().expect("the refund");
    assert_eq!(refund.amount.amount, 300);
    assert_eq!(after.amount_refunded.amount, 300);
    assert_eq!(refunds_recorded(&app).await, [1, 300, 300, 300, 1]);
    assert_eq!(gateway.keys().len(), 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM refund_intents").await,
        0
    );
    // The rest, now that nothing is in flight.
    let rest = app.by(&m.key).post(&path, &json!({})).await.expect(201);
    assert_eq!(rest.body["refund"]["amount"]["amount"], 700);
    assert_eq!(refunds_recorded(&app).await, [2, 1000, 1000, 1000, 2]);
}

#[actix_web::test]
async fn a_refund_whose_request_died_after_the_gateway_call_is_settled_once_after_its_lease() {
    let RefundInFlight {
        app,
        m,
        invoice,
        gateway,
        go,
        request,
    } = refund_in_flight(400).await;
    // The request dies with the gateway's answer in the air: the money is out, nothing
    // is recorded.
    request.abort();
    let _ = request.await;
    drop(go);
    assert_eq!(refunds_recorded(&app).await, [0, 0, 0, 0, 0]);
    let path = format!("/v1/invoices/{invoice}/refund");
    app.by(&m.key)
        .post(&path, &json!({"amount": 100}))
        .await
        .expect_problem(409, "refund_in_progress");

    // Before its lease ends the engine leaves it alone; after, it sends the same request
    // again, which the gateway replays, and records it once.
    let worker = tenure_app::App {
        gateway: gateway.clone(),
        ..app.state.app.clone()
    };
    let now = app.clock.now();
    tenure_engine::renewals::run_until_idle(&worker, now)
        .await
        .expect("round");
    assert_eq!(gateway.keys().len(), 1);
    let later = now + app.state.app.charge_lease + Duration::seconds(1);
    tenure_engine::renewals::run_until_idle(&worker, later)
        .await
        .expect("round after the lease");
    let keys = gateway.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1]);
    assert_eq!(refunds_recorded(&app).await, [1, 400, 400, 400, 1]);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM refund_intents").await,
        0
    );
    tenure_engine::renewals::run_until_idle(&worker, later)
        .await
        .expect("another round");
    assert_eq!(refunds_recorded(&app).await, [1, 400, 400, 400, 1]);
    // The invoice takes refunds again.
    let rest = app.by(&m.key).post(&path, &json!({})).await.expect(201);
    assert_eq!(rest.body["refund"]["amount"]["amount"], 600);
}
