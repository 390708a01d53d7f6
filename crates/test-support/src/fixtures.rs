//! Store-level fixtures: each writes one resource through its `tenure_store::repo`
//! function, as of `now`, and returns what it wrote. They are rows and nothing more: no
//! events, no invoices and no checks of the merchant's rules, which are the use cases'
//! (a test of a use case sets the stage with these, then calls the use case). Every
//! price is in EUR.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::billing::gateway::sandbox_card_details;
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::billing::period::{Cadence, Interval};
use tenure_domain::catalog::{Plan, Product};
use tenure_domain::customer::Customer;
use tenure_domain::ids::{
    CustomerId, GenerateId, MerchantId, PaymentMethodId, PlanId, ProductId, SubscriptionId,
};
use tenure_domain::money::Money;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::{NewSubscription, PlanTerms, Subscription};
use tenure_store::repo::merchants::Merchant;
use tenure_store::repo::subscriptions::StoredSubscription;
use tenure_store::repo::{catalog, customers, merchants, payment_methods, subscriptions};

/// A merchant (without an API key).
pub async fn merchant(conn: &mut AsyncPgConnection, name: &str) -> Merchant {
    merchants::create(conn, name)
        .await
        .expect("insert merchant")
}

/// An active product with this portal policy.
pub async fn product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    portal_policy: PortalPolicy,
    now: DateTime<Utc>,
) -> Product {
    let product = Product {
        id: ProductId::generate(),
        name: "Coffee club".to_owned(),
        description: None,
        portal_policy,
        shippable: false,
        quantity_limits: tenure_domain::catalog::QuantityLimits::default(),
        swappable_product_ids: Vec::new(),
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    catalog::insert_product(conn, merchant, &product)
        .await
        .expect("insert product");
    product
}

/// An active monthly plan of `product` at `amount` EUR cents, with `trial_days` of trial.
pub async fn plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
    amount: i64,
    trial_days: u32,
    now: DateTime<Utc>,
) -> Plan {
    let plan = Plan {
        id: PlanId::generate(),
        product_id: product,
        name: format!("Plan {amount}/{trial_days}"),
        price: eur(amount),
        interval: Interval::Month,
        interval_count: 1,
        trial_days,
        active: true,
        stock: Default::default(),
        variant: None,
        created_at: now,
        updated_at: now,
    };
    catalog::insert_plan(conn, merchant, &plan)
        .await
        .expect("insert plan");
    plan
}

/// A customer known by `external_id`, with an e-mail address made from it.
pub async fn customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    external_id: &str,
    now: DateTime<Utc>,
) -> Customer {
    let customer = Customer {
        id: CustomerId::generate(),
        external_id: external_id.to_owned(),
        email: Some(format!("{external_id}@example.com")),
        name: None,
        locale: None,
        metadata: Default::default(),
        tags: Vec::new(),
        created_at: now,
        updated_at: now,
        erased_at: None,
        test_clock_id: None,
        channel_preference: Default::default(),
    };
    customers::insert(conn, merchant, &customer)
        .await
        .expect("insert customer");
    customer
}

/// The customer's default payment method: a sandbox token (`pm_card_visa`, …) with the
/// card details the sandbox gateway gives it.
pub async fn payment_method(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    token: &str,
    now: DateTime<Utc>,
) -> PaymentMethod {
    let card =
        sandbox_card_details(token).unwrap_or_else(|| panic!("{token} is not a sandbox token"));
    let pm = PaymentMethod {
        id: PaymentMethodId::generate(),
        customer_id: customer,
        gateway_token: token.to_owned(),
        card,
        is_default: true,
        created_at: now,
        detached_at: None,
    };
    payment_methods::insert(conn, merchant, &pm)
        .await
        .expect("insert payment method");
    pm
}

/// A subscription of `customer` to `plan` started at `now` by the domain's own rules
/// (trialing when the plan has a trial, else active in its first period). Only the row:
/// no `subscription.created` event and no first invoice.
pub async fn subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    plan: &Plan,
    now: DateTime<Utc>,
) -> StoredSubscription {
    let cadence = Cadence::new(plan.interval, plan.interval_count).expect("the plan's cadence");
    let terms = PlanTerms::new(plan.id, plan.price, cadence).expect("the plan's terms");
    let started = Subscription::create(
        NewSubscription {
            id: SubscriptionId::generate(),
            plan: terms,
            trial_days: plan.trial_days,
            quantity: 1,
            pay_at_signup: false,
        },
        now,
    )
    .expect("a subscription starts");
    let stored = StoredSubscription {
        subscription: started.subscription,
        customer_id: customer,
        product_id: plan.product_id,
        created_at: now,
        updated_at: now,
    };
    subscriptions::insert(conn, merchant, &stored)
        .await
        .expect("insert subscription");
    stored
}

/// `amount` cents of EUR.
pub fn eur(amount: i64) -> Money {
    Money::new(amount, "EUR".parse().expect("EUR is a currency"))
}

/// `n` customers (`{prefix}-{i}`), each with one active subscription of `plan` started at
/// `now`, written with a few multi-row statements (10,000 take well under a second).
/// Returns the subscriptions in id order.
pub async fn many_subscribers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: &Plan,
    prefix: &str,
    n: usize,
    now: DateTime<Utc>,
) -> Vec<StoredSubscription> {
    use diesel::sql_types::{Array, Text, Timestamptz, Uuid};
    use diesel_async::RunQueryDsl;
    let ids: Vec<CustomerId> = (0..n).map(|_| CustomerId::generate()).collect();
    let uuids: Vec<uuid::Uuid> = ids.iter().map(CustomerId::uuid).collect();
    let external: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    diesel::sql_query(
        "INSERT INTO customers (merchant_id, id, external_id, email, created_at, updated_at) \
         SELECT $1, c.id, c.ext, c.ext || '@example.com', $4, $4 \
         FROM unnest($2::uuid[], $3::text[]) AS c(id, ext)",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(&uuids)
    .bind::<Array<Text>, _>(&external)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
    .expect("insert customers");
    let cadence = Cadence::new(plan.interval, plan.interval_count).expect("the plan's cadence");
    let terms = PlanTerms::new(plan.id, plan.price, cadence).expect("the plan's terms");
    let subs: Vec<StoredSubscription> = ids
        .iter()
        .map(|customer| StoredSubscription {
            subscription: Subscription::create(
                NewSubscription {
                    id: SubscriptionId::generate(),
                    plan: terms,
                    trial_days: 0,
                    quantity: 1,
                    pay_at_signup: false,
                },
                now,
            )
            .expect("a subscription starts")
            .subscription,
            customer_id: *customer,
            product_id: plan.product_id,
            created_at: now,
            updated_at: now,
        })
        .collect();
    subscriptions::insert_many(conn, merchant, &subs)
        .await
        .expect("insert subscriptions");
    subs
}
