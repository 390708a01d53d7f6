//! The fixtures write what the store reads back: each resource through its repository,
//! in a database of the test's own, on the test clock.

use chrono::{Duration, SubsecRound};
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::SubscriptionStatus;
use tenure_store::repo::{catalog, customers, merchants, payment_methods, subscriptions};
use tenure_store::{PageRequest, StoreError};
use tenure_test_support::{Clock, TestClock, TestDb, fixtures};

#[tokio::test]
async fn a_customer_s_subscription_written_by_the_fixtures_reads_back_through_the_store() {
    let db = TestDb::new().await;
    let clock = TestClock::new();
    clock.advance(Duration::days(3));
    // PostgreSQL keeps microseconds.
    let now = clock.now().trunc_subsecs(6);
    let mut conn = db.connect().await;

    let merchant = fixtures::merchant(&mut conn, "Roastery").await;
    assert_eq!(
        merchants::get(&mut conn, merchant.id).await.unwrap().name,
        "Roastery"
    );
    let product = fixtures::product(&mut conn, merchant.id, PortalPolicy::default(), now).await;
    let monthly = fixtures::plan(&mut conn, merchant.id, product.id, 1999, 0, now).await;
    let trial = fixtures::plan(&mut conn, merchant.id, product.id, 999, 14, now).await;
    assert_eq!(
        catalog::get_product(&mut conn, merchant.id, product.id, false)
            .await
            .unwrap(),
        product
    );
    let read = catalog::get_plan(&mut conn, merchant.id, monthly.id)
        .await
        .unwrap();
    assert_eq!(read, monthly);
    assert_eq!(read.price, fixtures::eur(1999));
    assert_eq!(read.created_at, now, "written as of the test clock");

    let customer = fixtures::customer(&mut conn, merchant.id, "ada", now).await;
    let read = customers::get(&mut conn, merchant.id, customer.id, false)
        .await
        .unwrap();
    assert_eq!(read, customer);
    assert_eq!(read.external_id, "ada");
    assert_eq!(read.email.as_deref(), Some("ada@example.com"));

    let card =
        fixtures::payment_method(&mut conn, merchant.id, customer.id, "pm_card_visa", now).await;
    let default = payment_methods::default_for_customer(&mut conn, merchant.id, customer.id)
        .await
        .unwrap()
        .expect("the fixture's card is the default");
    assert_eq!(default, card);
    assert_eq!(
        (default.card.brand.as_str(), default.card.last4.as_str()),
        ("visa", "4242")
    );

    let active = fixtures::subscription(&mut conn, merchant.id, customer.id, &monthly, now).await;
    let read = subscriptions::get(&mut conn, merchant.id, active.subscription.id, false)
        .await
        .unwrap();
    assert_eq!(read, active);
    assert_eq!(read.subscription.status, SubscriptionStatus::Active);
    assert_eq!(read.subscription.plan.plan_id, monthly.id);
    assert_eq!(read.subscription.current_period.start, now);
    assert_eq!(read.customer_id, customer.id);
    assert_eq!(read.product_id, product.id);

    let trialing = fixtures::subscription(&mut conn, merchant.id, customer.id, &trial, now).await;
    let read = subscriptions::get(&mut conn, merchant.id, trialing.subscription.id, false)
        .await
        .unwrap();
    assert_eq!(read.subscription.status, SubscriptionStatus::Trialing);
    assert_eq!(read.subscription.trial_end, Some(now + Duration::days(14)));

    let listed = subscriptions::list(
        &mut conn,
        merchant.id,
        &Default::default(),
        PageRequest {
            limit: 10,
            starting_after: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.items.len(), 2);

    // Another merchant's reads find none of it.
    let other = fixtures::merchant(&mut conn, "Other").await;
    assert!(matches!(
        customers::get(&mut conn, other.id, customer.id, false).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        subscriptions::get(&mut conn, other.id, active.subscription.id, false).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn each_test_database_is_a_migrated_clone_dropped_with_its_test() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let databases = |name: String| async move {
        let mut conn = AsyncPgConnection::establish(&tenure_test_support::server_url())
            .await
            .unwrap();
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n
    };

    let (a, b) = (TestDb::new().await, TestDb::new().await);
    assert_ne!(a.name, b.name);
    let mut conn = a.connect().await;
    let migrated: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'subscriptions'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(migrated.n, 1, "the clone has the migrated schema");
    fixtures::merchant(&mut conn, "Only in a").await;
    let pool = b.pool(2);
    let mut pooled = pool.conn().await.unwrap();
    let in_b: Count = diesel::sql_query("SELECT count(*) AS n FROM merchants")
        .get_result(&mut *pooled)
        .await
        .unwrap();
    assert_eq!(in_b.n, 0, "each test sees its own database");
    drop(pooled);
    pool.close();

    let name = a.name.clone();
    drop(conn);
    drop(a);
    assert_eq!(databases(name).await, 0, "dropped with its TestDb");
    assert_eq!(databases(b.name.clone()).await, 1);
}
