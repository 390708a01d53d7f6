//! Addresses and orders over HTTP (docs/orders.md): the address book (merchant and
//! portal) and its refusals, a subscription's shipping address, the order each paid
//! period makes and its fulfilment, a failed payment holding the order and a new card
//! releasing it, and a few monthly renewals on a test clock with a quantity change.

use chrono::{DateTime, Months, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, add_address, count_events, events, ids, paris, shippable_plan, time};

async fn orders_of(app: &TestApp, m: &TestMerchant, sub: &str) -> Vec<Value> {
    let mut list = app
        .get_ok(
            &format!("/v1/orders?subscription_id={sub}&limit=100"),
            &m.key,
        )
        .await["data"]
        .as_array()
        .expect("orders")
        .clone();
    list.reverse();
    list
}

async fn renew(app: &TestApp) {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
}

#[actix_web::test]
async fn the_address_book_is_validated_kept_per_customer_and_refuses_deleting_an_address_in_use() {
    let app = TestApp::new().await;
    let m = app.merchant("Addresses").await;
    let customer = fixtures::customer(&app, &m, "ada").await;
    let other = fixtures::customer(&app, &m, "bob").await;

    // Every missing or invalid field at once, as one 422.
    let refused = app
        .by(&m.key)
        .post(
            &format!("/v1/customers/{customer}/addresses"),
            &json!({"line1": " ", "country": "XX", "postal_code": "1".repeat(21)}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let mut fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["city", "country", "line1", "name", "postal_code"],
        "{}",
        refused.body
    );
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{customer}/addresses"),
            &json!({"name": "A", "line1": "1", "city": "X", "country": "FR", "planet": "Mars"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    let created = app
        .by(&m.key)
        .post(&format!("/v1/customers/{customer}/addresses"), &paris())
        .await
        .expect(201)
        .body;
    assert_eq!(created["object"], "address");
    assert_eq!(created["country"], "FR", "kept in upper case");
    let address = fixtures::id(&created);
    assert!(address.starts_with("addr_"));
    assert_eq!(count_events(&app, &address, "address.created").await, 1);

    let edited = app
        .by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}/addresses/{address}"),
            &json!({"line2": "Apt 4", "postal_code": null}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(edited["line2"], "Apt 4");
    assert_eq!(edited["postal_code"], Value::Null);
    assert_eq!(count_events(&app, &address, "address.updated").await, 1);
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}/addresses/{address}"),
            &json!({"country": "ZZ"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    // Another customer's address is not there for this one, nor in the portal.
    app.by(&m.key)
        .get(&format!("/v1/customers/{other}/addresses/{address}"))
        .await
        .expect_problem(404, "resource_missing");
    let bob = fixtures::session(&app, &m, &other).await;
    app.by(&bob)
        .get(&format!("/v1/portal/addresses/{address}"))
        .await
        .expect_problem(404, "resource_missing");
    fixtures::assert_empty(&app.get_ok("/v1/portal/addresses", &bob).await);

    // The portal keeps the signed-in customer's book.
    let ada = fixtures::session(&app, &m, &customer).await;
    let second = app
        .by(&ada)
        .post(
            "/v1/portal/addresses",
            &json!({"name": "Ada", "line1": "1 Infinite Loop", "city": "Cupertino",
                "state": "CA", "postal_code": "95014", "country": "US"}),
        )
        .await
        .expect(201)
        .id();
    let listed = app.get_ok("/v1/portal/addresses", &ada).await;
    assert_eq!(ids(&listed), [second.clone(), address.clone()]);
    assert_eq!(
        app.get_ok(&format!("/v1/customers/{customer}/addresses"), &m.key)
            .await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.by(&ada)
        .patch(
            &format!("/v1/portal/addresses/{second}"),
            &json!({"city": "Palo Alto"}),
        )
        .await
        .expect(200);

    // A subscription ships to the first address: it cannot be deleted, the other can.
    let plan = shippable_plan(&app, &m, 1).await;
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &address).await;
    app.by(&ada)
        .delete(&format!("/v1/portal/addresses/{address}"))
        .await
        .expect_problem(409, "address_in_use");
    app.by(&m.key)
        .delete(&format!("/v1/customers/{customer}/addresses/{address}"))
        .await
        .expect_problem(409, "address_in_use");

    // The subscriber moves the subscription to the other address; the first can go.
    let moved = app
        .by(&ada)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/shipping_address"),
            &json!({"address_id": second}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(moved["address"]["id"], second.as_str());
    assert_eq!(moved["address"]["city"], "Palo Alto");
    assert_eq!(
        count_events(&app, &sub, "subscription.shipping_address_updated").await,
        1
    );
    let deleted = app
        .by(&ada)
        .delete(&format!("/v1/portal/addresses/{address}"))
        .await
        .expect(200)
        .body;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(count_events(&app, &address, "address.deleted").await, 1);
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}/shipping_address"), &m.key)
        .await;
    assert_eq!(shown["address"]["id"], second.as_str());

    // Another customer's address is refused on the field, by merchant and in the portal.
    let bobs = add_address(&app, &m, &other).await;
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/shipping_address"),
            &json!({"address_id": bobs}),
        )
        .await
        .expect_problem(422, "validation_failed");
    app.by(&bob)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/shipping_address"),
            &json!({"address_id": bobs}),
        )
        .await
        .expect_problem(404, "resource_missing");
}

/// Deleting an address while a subscription is moved to it, concurrently: the delete
/// is a 409 `address_in_use` when the move went first, the move a 422 on `address_id`
/// when the delete did, never a 500 from the subscription's foreign key.
#[actix_web::test]
async fn deleting_an_address_while_a_subscription_moves_to_it_is_a_conflict_or_a_refusal_never_a_500()
 {
    let app = TestApp::new().await;
    let m = app.merchant("Race").await;
    let plan = shippable_plan(&app, &m, 1).await;
    let customer = fixtures::paying_customer(&app, &m, "ada", "pm_card_visa").await;
    let home = add_address(&app, &m, &customer).await;
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &home).await;
    let ship_to = async |address: &str| {
        app.by(&m.key)
            .post(
                &format!("/v1/subscriptions/{sub}/shipping_address"),
                &json!({"address_id": address}),
            )
            .await
    };
    let (mut moved_first, mut deleted_first) = (0, 0);
    for n in 0..40 {
        let address = add_address(&app, &m, &customer).await;
        let path = format!("/v1/customers/{customer}/addresses/{address}");
        let (deleted, moved) =
            futures_util::future::join(app.by(&m.key).delete(&path), ship_to(&address)).await;
        match (deleted.status.as_u16(), moved.status.as_u16()) {
            (200, 422) => {
                assert_eq!(
                    moved.body["errors"][0]["field"], "address_id",
                    "{}",
                    moved.body
                );
                deleted_first += 1;
            }
            (409, 200) => {
                assert_eq!(deleted.body["code"], "address_in_use", "{}", deleted.body);
                moved_first += 1;
                ship_to(&home).await.expect(200);
                app.by(&m.key).delete(&path).await.expect(200);
            }
            other => panic!(
                "round {n}: {other:?}: delete {} / move {}",
                deleted.body, moved.body
            ),
        }
    }
    eprintln!("the move went first {moved_first} times, the delete {deleted_first} times");
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}/shipping_address"), &m.key)
        .await;
    assert_eq!(shown["address"]["id"], home.as_str());
}

#[actix_web::test]
async fn the_portal_refuses_a_shippable_subscription_without_an_address() {
    let app = TestApp::new().await;
    let m = app.merchant("Ship").await;
    let plan = shippable_plan(&app, &m, 1).await;
    let customer = fixtures::customer(&app, &m, "c").await;
    let other = fixtures::customer(&app, &m, "o").await;
    let others = add_address(&app, &m, &other).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let refused = app
        .by(&token)
        .post("/v1/portal/subscriptions", &json!({"plan_id": plan}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "shipping_address_id");
    app.by(&token)
        .post(
            "/v1/portal/subscriptions",
            &json!({"plan_id": plan, "shipping_address_id": others}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM subscriptions").await,
        0,
        "nothing was created"
    );
    let own = app
        .by(&token)
        .post("/v1/portal/addresses", &paris())
        .await
        .expect(201)
        .id();
    let sub = app
        .by(&token)
        .post(
            "/v1/portal/subscriptions",
            &json!({"plan_id": plan, "shipping_address_id": own}),
        )
        .await
        .expect(201)
        .body;
    let shown = app
        .get_ok(
            &format!(
                "/v1/portal/subscriptions/{}/shipping_address",
                fixtures::id(&sub)
            ),
            &token,
        )
        .await;
    assert_eq!(shown["address"]["id"], own.as_str());
}

#[actix_web::test]
async fn a_paid_period_makes_an_order_that_is_fulfilled_shipped_and_delivered_once_each() {
    let app = TestApp::new().await;
    let m = app.merchant("Orders").await;
    let plan = shippable_plan(&app, &m, 6).await;
    let customer = fixtures::paying_customer(&app, &m, "ada", "pm_card_visa").await;
    let address = add_address(&app, &m, &customer).await;
    let sub = app
        .by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan, "quantity": 2,
                "shipping_address_id": address}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(sub["status"], "active", "{sub}");
    let sub = fixtures::id(&sub);

    // The first period was paid at signup: its order waits for fulfilment.
    let orders = orders_of(&app, &m, &sub).await;
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    let id = fixtures::id(order);
    assert!(id.starts_with("ord_"));
    assert_eq!(order["status"], "unfulfilled");
    assert_eq!(order["customer_id"], customer.as_str());
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(order["invoice_id"], invoices[0]["id"]);
    assert_eq!(order["period_start"], invoices[0]["period_start"]);
    assert_eq!(order["lines"][0]["plan_id"], plan.as_str());
    assert_eq!(order["lines"][0]["product_name"], "Coffee");
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][0]["unit_amount"]["amount"], 1200);
    assert_eq!(order["lines"][0]["amount"]["amount"], 2400);
    assert_eq!(
        order["amount_total"],
        json!({"amount": 2400, "currency": "EUR"})
    );
    assert_eq!(order["shipping_address"]["city"], "Paris");
    assert_eq!(order["shipment"], Value::Null);
    assert_eq!(count_events(&app, &id, "order.created").await, 1);
    assert_eq!(count_events(&app, &id, "order.paid").await, 1);
    let created = &events(&app, &m, "order.created").await[0];
    assert_eq!(created["data"]["object"]["status"], "awaiting_payment");

    // The snapshot stays when the address book changes.
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}/addresses/{address}"),
            &json!({"city": "Lyon"}),
        )
        .await
        .expect(200);
    let read = app.get_ok(&format!("/v1/orders/{id}"), &m.key).await;
    assert_eq!(read["shipping_address"]["city"], "Paris");

    // Filters.
    for (query, expected) in [
        ("status=unfulfilled".to_owned(), 1),
        ("status=shipped".to_owned(), 0),
        (format!("customer_id={customer}"), 1),
        ("customer_id=cus_01jf9zb3f4e3a8r7m2k4t5n6bc".to_owned(), 0),
    ] {
        let list = app.get_ok(&format!("/v1/orders?{query}"), &m.key).await;
        assert_eq!(list["data"].as_array().unwrap().len(), expected, "{query}");
    }
    app.by(&m.key)
        .get("/v1/orders?status=lost")
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .get("/v1/orders?customer_id=nope")
        .await
        .expect_problem(422, "validation_failed");

    // Delivering before shipping is not a transition; fulfilling twice is refused.
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/deliver"))
        .await
        .expect_problem(409, "invalid_order_transition");
    let fulfilled = app
        .by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/fulfill"))
        .await
        .expect(200)
        .body;
    assert_eq!(fulfilled["status"], "fulfilled");
    assert!(fulfilled["fulfilled_at"].is_string());
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/fulfill"))
        .await
        .expect_problem(409, "order_already_fulfilled");

    // Shipping: the tracking is checked, then recorded once.
    let bad = app
        .by(&m.key)
        .post(
            &format!("/v1/orders/{id}/ship"),
            &json!({"carrier": "", "tracking_number": "1Z", "tracking_url": "javascript:alert(1)"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        bad.body["errors"].as_array().unwrap().len(),
        2,
        "{}",
        bad.body
    );
    let tracking = json!({"carrier": "UPS", "tracking_number": "1Z999AA10123456784",
        "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"});
    let shipped = app
        .by(&m.key)
        .post(&format!("/v1/orders/{id}/ship"), &tracking)
        .await
        .expect(200)
        .body;
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["shipment"], tracking);
    app.by(&m.key)
        .post(&format!("/v1/orders/{id}/ship"), &tracking)
        .await
        .expect_problem(409, "order_already_shipped");
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/cancel"))
        .await
        .expect_problem(409, "invalid_order_transition");

    // The subscriber follows it in the portal; another customer does not see it.
    let token = fixtures::session(&app, &m, &customer).await;
    let mine = app.get_ok("/v1/portal/orders", &token).await;
    assert_eq!(ids(&mine), [id.as_str()]);
    let seen = app.get_ok(&format!("/v1/portal/orders/{id}"), &token).await;
    assert_eq!(seen["shipment"]["tracking_number"], "1Z999AA10123456784");
    let stranger = fixtures::customer(&app, &m, "bob").await;
    let bob = fixtures::session(&app, &m, &stranger).await;
    app.by(&bob)
        .get(&format!("/v1/portal/orders/{id}"))
        .await
        .expect_problem(404, "resource_missing");
    fixtures::assert_empty(&app.get_ok("/v1/portal/orders", &bob).await);

    let delivered = app
        .by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/deliver"))
        .await
        .expect(200)
        .body;
    assert_eq!(delivered["status"], "delivered");
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{id}/deliver"))
        .await
        .expect_problem(409, "order_already_delivered");
    // The customer context tells an agent where the last box is.
    let context = app
        .get_ok(&format!("/v1/customers/{customer}/context"), &m.key)
        .await;
    assert_eq!(context["recent_orders"][0]["id"], id.as_str());
    assert_eq!(context["last_shipment"]["order_id"], id.as_str());
    assert_eq!(context["last_shipment"]["status"], "delivered");
    assert_eq!(context["last_shipment"]["carrier"], "UPS");
    assert!(context["last_shipment"]["delivered_at"].is_string());
    // Orders are order data: a key that reads customers only gets the context without
    // them; with `orders:read` too, it gets them.
    let restricted = |scopes: &'static [&'static str]| {
        let app = &app;
        let key = m.key.clone();
        async move {
            app.by(&key)
                .post(
                    "/v1/api_keys",
                    &serde_json::json!({"name": "crm", "scopes": scopes}),
                )
                .await
                .expect(201)
                .body["secret"]
                .as_str()
                .expect("the secret")
                .to_owned()
        }
    };
    let crm = restricted(&["customers:read"]).await;
    let without = app
        .get_ok(&format!("/v1/customers/{customer}/context"), &crm)
        .await;
    assert!(without.get("recent_orders").is_none(), "{without}");
    assert!(without["last_shipment"].is_null(), "{without}");
    assert!(without.get("credit_balances").is_none());
    let fulfilment = restricted(&["customers:read", "orders:read"]).await;
    let with = app
        .get_ok(&format!("/v1/customers/{customer}/context"), &fulfilment)
        .await;
    assert_eq!(with["recent_orders"][0]["id"], id.as_str());
    assert_eq!(with["last_shipment"]["order_id"], id.as_str());
    for event in ["order.fulfilled", "order.shipped", "order.delivered"] {
        assert_eq!(count_events(&app, &id, event).await, 1, "{event}");
    }
    let shipped_event = &events(&app, &m, "order.shipped").await[0];
    assert_eq!(
        shipped_event["data"]["previous_attributes"]["status"],
        "fulfilled"
    );

    // Another merchant's order is a 404, like an unknown one.
    let other = app.merchant("Other").await;
    app.by(&other.key)
        .post_empty(&format!("/v1/orders/{id}/fulfill"))
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn a_failed_payment_holds_the_order_and_a_new_card_releases_it() {
    let app = TestApp::new().await;
    let m = app.merchant("Hold").await;
    let plan = shippable_plan(&app, &m, 1).await;
    let customer = fixtures::customer(&app, &m, "c").await;
    let address = add_address(&app, &m, &customer).await;
    // No card at signup: the first invoice stays open and its order awaits payment.
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &address).await;
    let order = fixtures::id(&orders_of(&app, &m, &sub).await[0]);
    let read = app.get_ok(&format!("/v1/orders/{order}"), &m.key).await;
    assert_eq!(read["status"], "awaiting_payment");
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/fulfill"))
        .await
        .expect_problem(409, "invalid_order_transition");

    // A declining card: the charge fails and the order is held.
    fixtures::attach_default(&app, &m, &customer, "pm_card_chargeDeclined").await;
    renew(&app).await;
    let held = app.get_ok(&format!("/v1/orders/{order}"), &m.key).await;
    assert_eq!(held["status"], "on_hold", "{held}");
    assert!(held["held_at"].is_string());
    assert_eq!(count_events(&app, &order, "order.held").await, 1);
    let listed = app.get_ok("/v1/orders?status=on_hold", &m.key).await;
    assert_eq!(ids(&listed), [order.as_str()]);

    // A working card: the retry pays the invoice and releases the order.
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    renew(&app).await;
    let released = app.get_ok(&format!("/v1/orders/{order}"), &m.key).await;
    assert_eq!(released["status"], "unfulfilled", "{released}");
    assert!(released["released_at"].is_string());
    let event = &events(&app, &m, "order.released").await;
    assert_eq!(event.len(), 1);
    assert_eq!(event[0]["data"]["previous_attributes"]["status"], "on_hold");
    assert_eq!(count_events(&app, &order, "order.paid").await, 0);

    // The merchant may still call it off before it ships.
    let canceled = app
        .by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/cancel"))
        .await
        .expect(200)
        .body;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(count_events(&app, &order, "order.canceled").await, 1);
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/cancel"))
        .await
        .expect_problem(409, "order_already_canceled");
}

/// Canceling an order awaiting payment leaves its invoice open (docs/orders.md): the
/// invoice bills the subscription's period, and collection goes on; when it is paid, the
/// order stays canceled. Voiding the invoice is what stops the billing.
#[actix_web::test]
async fn canceling_an_unpaid_order_leaves_its_invoice_to_be_collected_and_paying_it_revives_nothing()
 {
    let app = TestApp::new().await;
    let m = app.merchant("CancelUnpaid").await;
    let plan = shippable_plan(&app, &m, 1).await;
    let customer = fixtures::customer(&app, &m, "c").await;
    let address = add_address(&app, &m, &customer).await;
    // No card at signup: the first invoice stays open and its order awaits payment.
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &address).await;
    let order = orders_of(&app, &m, &sub).await[0].clone();
    assert_eq!(order["status"], "awaiting_payment");
    let invoice = order["invoice_id"].as_str().expect("an invoice").to_owned();
    let order = fixtures::id(&order);
    let canceled = app
        .by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/cancel"))
        .await
        .expect(200)
        .body;
    assert_eq!(canceled["status"], "canceled");
    let open = app.get_ok(&format!("/v1/invoices/{invoice}"), &m.key).await;
    assert_eq!(open["status"], "open", "{open}");

    // A card arrives and the engine collects the invoice: the order is not revived.
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    renew(&app).await;
    let paid = app.get_ok(&format!("/v1/invoices/{invoice}"), &m.key).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    let after = app.get_ok(&format!("/v1/orders/{order}"), &m.key).await;
    assert_eq!(after["status"], "canceled", "{after}");
    assert_eq!(count_events(&app, &order, "order.paid").await, 0);
    assert_eq!(fixtures::status(&app, &m, &sub).await, "active");
}

#[actix_web::test]
async fn an_order_made_without_an_address_waits_for_one() {
    let app = TestApp::new().await;
    let m = app.merchant("NoAddress").await;
    let plan = shippable_plan(&app, &m, 1).await;
    let customer = fixtures::paying_customer(&app, &m, "c", "pm_card_visa").await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let order = fixtures::id(&orders_of(&app, &m, &sub).await[0]);
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/fulfill"))
        .await
        .expect_problem(409, "shipping_address_required");
    let address = add_address(&app, &m, &customer).await;
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/shipping_address"),
            &json!({"address_id": address}),
        )
        .await
        .expect(200);
    let updated = app.get_ok(&format!("/v1/orders/{order}"), &m.key).await;
    assert_eq!(updated["shipping_address"]["city"], "Paris");
    assert_eq!(count_events(&app, &order, "order.updated").await, 1);
    app.by(&m.key)
        .post_empty(&format!("/v1/orders/{order}/fulfill"))
        .await
        .expect(200);
}

#[actix_web::test]
async fn monthly_renewals_on_a_clock_make_one_order_per_paid_invoice_with_the_quantity_then() {
    let app = TestApp::new().await;
    let m = app.merchant("ClockOrders").await;
    let plan = shippable_plan(&app, &m, 5).await;
    let anchor: DateTime<Utc> = Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap();
    let clock = app
        .by(&m.key)
        .post("/v1/test_clocks", &json!({"frozen_time": anchor}))
        .await
        .expect(201)
        .id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "clocked", "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let address = add_address(&app, &m, &customer).await;
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &address).await;
    let advance = async |to: DateTime<Utc>| {
        app.by(&m.key)
            .post(
                &format!("/v1/test_clocks/{clock}/advance"),
                &json!({"frozen_time": to}),
            )
            .await
            .expect(200);
        assert!(
            tenure_engine::test_clocks::advance_next(&app.state.app)
                .await
                .expect("advance")
        );
    };
    let month = |n: u32| anchor.checked_add_months(Months::new(n)).unwrap();

    // Two renewals at one unit, then three units from the third period on.
    advance(month(2) + chrono::Duration::hours(1)).await;
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/change_quantity"),
            &json!({"quantity": 3}),
        )
        .await
        .expect(200);
    advance(month(4) + chrono::Duration::hours(1)).await;

    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    let orders = orders_of(&app, &m, &sub).await;
    assert_eq!(invoices.len(), 5, "the signup and four renewals");
    assert_eq!(orders.len(), 5, "one order per invoiced period");
    let quantities: Vec<i64> = orders
        .iter()
        .map(|o| o["lines"][0]["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(quantities, [1, 1, 1, 3, 3]);
    for (order, invoice) in orders.iter().zip(&invoices) {
        assert_eq!(order["invoice_id"], invoice["id"]);
        assert_eq!(invoice["status"], "paid");
        assert_eq!(order["status"], "unfulfilled");
        assert_eq!(order["period_start"], invoice["period_start"]);
        assert_eq!(order["amount_total"], invoice["total"]);
    }
    let starts: Vec<DateTime<Utc>> = orders.iter().map(|o| time(&o["period_start"])).collect();
    assert_eq!(starts, (0..5).map(month).collect::<Vec<_>>());
    // The period with the change bills its proration on the next invoice; the order
    // counts the plan's units at the renewal.
    assert_eq!(orders[3]["lines"][0]["amount"]["amount"], 3600);
}

/// An ended subscription ships nothing more: the address it used may be deleted (its
/// orders keep their snapshot), while a live one still holds its address.
#[actix_web::test]
async fn an_address_only_an_ended_subscription_used_can_be_deleted() {
    let app = TestApp::new().await;
    let m = app.merchant("Ended").await;
    let customer = fixtures::customer(&app, &m, "ended").await;
    let address = add_address(&app, &m, &customer).await;
    let plan = shippable_plan(&app, &m, 1).await;
    let sub = fixtures::subscribe_shipping(&app, &m, &customer, &plan, &address).await;
    let path = format!("/v1/customers/{customer}/addresses/{address}");
    app.by(&m.key)
        .delete(&path)
        .await
        .expect_problem(409, "address_in_use");

    let canceled = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/cancel"),
            &json!({"access": "immediately", "reason": "other"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(canceled["status"], "canceled");
    let deleted = app.by(&m.key).delete(&path).await.expect(200).body;
    assert_eq!(deleted["deleted"], true);
    app.by(&m.key).get(&path).await.expect(404);
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}/shipping_address"), &m.key)
        .await;
    assert!(shown["address"].is_null(), "{shown}");
    // The order it made keeps where it was to go.
    let orders = app
        .get_ok(&format!("/v1/orders?subscription_id={sub}"), &m.key)
        .await;
    let first = &orders["data"][0];
    assert_eq!(first["shipping_address"]["city"], paris()["city"]);
}

/// `CreateAddress` in the document says what the server enforces: `name`, `line1`, `city`
/// and `country` required and never null. Bodies that break it the ways a schema-driven
/// fuzzer (Schemathesis) tries (a field missing, null, of another type, an empty body)
/// are 422 problem+json naming the field, in the portal as for the merchant; never a 500.
#[actix_web::test]
async fn create_address_requires_what_its_schema_says_and_refuses_the_rest_with_422() {
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let schema = &doc["components"]["schemas"]["CreateAddress"];
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["city", "country", "line1", "name"], "{schema}");
    for field in required {
        assert_eq!(
            schema["properties"][field]["type"], "string",
            "{field}: {schema}"
        );
    }
    for optional in ["line2", "state", "postal_code", "phone"] {
        assert_eq!(
            schema["properties"][optional]["type"],
            json!(["string", "null"]),
            "{optional}"
        );
    }

    let app = TestApp::new().await;
    let m = app.merchant("Schema").await;
    let customer = fixtures::customer(&app, &m, "ada").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let with = |field: &str, value: Value| {
        let mut body = paris();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = paris();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["city", "country", "line1", "name"]),
        (without("name"), vec!["name"]),
        (without("country"), vec!["country"]),
        (with("line1", Value::Null), vec!["line1"]),
        (with("city", Value::Null), vec!["city"]),
        (with("name", json!(5)), vec!["name"]),
        (with("country", json!(["FR"])), vec!["country"]),
        (with("line1", json!({"street": "x"})), vec!["line1"]),
    ];
    for (body, fields) in cases {
        for (caller, path) in [
            (
                m.key.as_str(),
                format!("/v1/customers/{customer}/addresses"),
            ),
            (token.as_str(), "/v1/portal/addresses".to_owned()),
        ] {
            let refused = app
                .by(caller)
                .post(&path, &body)
                .await
                .expect_problem(422, "validation_failed");
            let mut named: Vec<&str> = refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            named.sort_unstable();
            assert_eq!(named, fields, "{path} {body}: {}", refused.body);
        }
    }
    // Nothing was added; the optional fields may be null or missing.
    fixtures::assert_empty(
        &app.get_ok(&format!("/v1/customers/{customer}/addresses"), &m.key)
            .await,
    );
    let mut minimal = paris();
    minimal["postal_code"] = Value::Null;
    minimal["line2"] = Value::Null;
    app.by(&token)
        .post("/v1/portal/addresses", &minimal)
        .await
        .expect(201);
}
