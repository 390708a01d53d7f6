//! Customers: create, filters, updates, pagination.

use std::collections::HashSet;

use serde_json::json;
use tenure_domain::ids::GenerateId;
use tenure_e2e::TestApp;

use crate::fixtures;

#[actix_web::test]
async fn customers_are_created_validated_and_unique_per_merchant() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let res = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "u1", "email": "ada@example.com", "name": "Ada",
                "locale": "en-GB", "metadata": {"crm": 17}, "tags": ["VIP", "beta", "vip"]}),
        )
        .await
        .expect(201);
    assert!(res.body["id"].as_str().unwrap().starts_with("cus_"));
    assert_eq!(res.body["tags"], json!(["beta", "vip"]));
    assert_eq!(res.body["metadata"], json!({"crm": 17}));

    app.by(&m.key)
        .post("/v1/customers", &json!({"external_id": "u1"}))
        .await
        .expect_problem(409, "external_id_taken");
    let bad = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "u2", "email": "not-an-email", "locale": "en_US",
                "tags": ["has space"]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<_> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "locale", "tags"]);
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

#[actix_web::test]
async fn customers_filter_by_email_external_id_and_tag() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    for (ext, tags) in [
        ("a", vec!["vip"]),
        ("b", vec![]),
        ("c", vec!["vip", "beta"]),
    ] {
        app.by(&m.key)
            .post(
                "/v1/customers",
                &json!({"external_id": ext, "email": format!("{ext}@example.com"), "tags": tags}),
            )
            .await
            .expect(201);
    }
    let ext = |r: &tenure_e2e::Response| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["external_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let vip = app
        .by(&m.key)
        .get("/v1/customers?tag=vip")
        .await
        .expect(200);
    assert_eq!(ext(&vip), ["c", "a"]);
    let by_email = app
        .by(&m.key)
        .get("/v1/customers?email=b@example.com")
        .await
        .expect(200);
    assert_eq!(ext(&by_email), ["b"]);
    let by_ext = app
        .by(&m.key)
        .get("/v1/customers?external_id=c")
        .await
        .expect(200);
    assert_eq!(ext(&by_ext), ["c"]);
}

#[actix_web::test]
async fn updates_record_previous_values_in_the_event() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let id = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "u1", "email": "old@example.com"}),
        )
        .await
        .expect(201)
        .id();
    let res = app
        .by(&m.key)
        .patch(
            &format!("/v1/customers/{id}"),
            &json!({"email": "new@example.com", "name": null}),
        )
        .await
        .expect(200);
    assert_eq!(res.body["email"], "new@example.com");
    let events = app.get_ok("/v1/events?type=customer.updated", &m.key).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    let event = &events["data"][0];
    assert_eq!(event["data"]["object"]["email"], "new@example.com");
    assert_eq!(
        event["data"]["previous_attributes"]["email"],
        "old@example.com"
    );
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));

    // null clears a field, in the database too (not only in the response).
    app.by(&m.key)
        .patch(&format!("/v1/customers/{id}"), &json!({"email": null}))
        .await
        .expect(200);
    let stored = app.get_ok(&format!("/v1/customers/{id}"), &m.key).await;
    assert!(stored["email"].is_null(), "{}", stored);
}

#[actix_web::test]
async fn pagination_walks_250_customers_exactly_once() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    {
        // Seed through SQL: the API path is covered elsewhere, and 250 HTTP creates
        // would only slow the suite.
        let mut conn = app.sql().await;
        let merchant =
            m.id.parse::<tenure_domain::ids::MerchantId>()
                .unwrap()
                .uuid();
        for i in 0..250 {
            let id = tenure_domain::ids::CustomerId::generate().uuid();
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query(format!(
                    "INSERT INTO customers (merchant_id, id, external_id) VALUES ('{merchant}', '{id}', 'ext-{i}')"
                )),
                &mut conn,
            )
            .await
            .unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/customers?limit=100&starting_after={c}"),
            None => "/v1/customers?limit=100".to_owned(),
        };
        let res = app.get_ok(&path, &m.key).await;
        pages += 1;
        for c in res["data"].as_array().unwrap() {
            seen.push(fixtures::id(c));
        }
        if res["has_more"] == false {
            assert_eq!(res["next_cursor"], serde_json::Value::Null);
            break;
        }
        cursor = Some(res["next_cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");

    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "starting_after=prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    ] {
        app.by(&m.key)
            .get(&format!("/v1/customers?{bad}"))
            .await
            .expect_problem(422, "validation_failed");
    }
}

/// Every row of `customer_tags` is a tag in some customer's `tags`, and every tag there
/// has its row (the triggers of migration 2026-12-10-140000_customer_tags).
async fn tag_rows_that_differ_from_customers(app: &TestApp) -> i64 {
    app.count(
        "SELECT count(*) AS n FROM (
           (SELECT merchant_id, tag, customer_id FROM customer_tags
            EXCEPT SELECT c.merchant_id, t, c.id FROM customers c, unnest(c.tags) t)
           UNION ALL
           (SELECT c.merchant_id, t, c.id FROM customers c, unnest(c.tags) t
            EXCEPT SELECT merchant_id, tag, customer_id FROM customer_tags)) d",
    )
    .await
}

#[actix_web::test]
async fn a_tag_filter_pages_through_its_customers_newest_first() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    let uuid = |m: &tenure_e2e::TestMerchant| {
        m.id.parse::<tenure_domain::ids::MerchantId>()
            .unwrap()
            .uuid()
    };
    // 60 customers of A and, between them in id order, 60 of B with the same tags: a
    // quarter of A's carry `gold`, a quarter `gold` and `silver`, a quarter `silver`.
    let mut gold = Vec::new();
    let mut plain = Vec::new();
    for i in 0..60 {
        for (m, ext) in [(&a, format!("a-{i}")), (&b, format!("b-{i}"))] {
            let id = tenure_domain::ids::CustomerId::generate();
            let tags = ["{gold}", "{gold,silver}", "{silver}", "{}"][i % 4];
            app.exec(format!(
                "INSERT INTO customers (merchant_id, id, external_id, tags)
                 VALUES ('{}', '{}', '{ext}', '{tags}')",
                uuid(m),
                id.uuid()
            ))
            .await;
            if std::ptr::eq(m, &a) {
                if i % 4 < 2 {
                    gold.push(id.to_string());
                } else if i % 4 == 3 {
                    plain.push(id.to_string());
                }
            }
        }
    }
    gold.reverse();
    plain.reverse();

    let walk = |start: Option<String>| {
        let app = &app;
        let key = a.key.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor = start;
            let mut pages = 0;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/customers?tag=gold&limit=7&starting_after={c}"),
                    None => "/v1/customers?tag=gold&limit=7".to_owned(),
                };
                let res = app.get_ok(&path, &key).await;
                pages += 1;
                let page = fixtures::ids(&res);
                if res["has_more"] == false {
                    assert_eq!(res["next_cursor"], serde_json::Value::Null);
                    seen.extend(page);
                    return (seen, pages);
                }
                assert_eq!(page.len(), 7, "a page before the last is full");
                assert_eq!(res["next_cursor"].as_str(), page.last().map(String::as_str));
                seen.extend(page);
                cursor = Some(res["next_cursor"].as_str().unwrap().to_owned());
            }
        }
    };
    // 30 customers of A carry the tag: four full pages and two on the fifth, each once,
    // newest first, none of B's.
    let (seen, pages) = walk(None).await;
    assert_eq!(pages, 5);
    assert_eq!(seen, gold);
    // The cursor may name a customer without the tag: the page starts after it all the
    // same (a list's boundary is an id, not a member of the filtered list).
    let boundary = &plain[3];
    let (after, _) = walk(Some(boundary.clone())).await;
    let older: Vec<String> = gold.iter().filter(|id| *id < boundary).cloned().collect();
    assert!(!older.is_empty() && older.len() < gold.len());
    assert_eq!(after, older);
    // The tag with another filter: both must hold.
    let res = app
        .get_ok("/v1/customers?tag=silver&external_id=a-2", &a.key)
        .await;
    assert_eq!(fixtures::ids(&res).len(), 1);
    let res = app
        .get_ok("/v1/customers?tag=gold&external_id=a-2", &a.key)
        .await;
    assert!(fixtures::ids(&res).is_empty());
    assert_eq!(tag_rows_that_differ_from_customers(&app).await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customer_tags").await,
        2 * (30 + 30)
    );
}

#[actix_web::test]
async fn a_removed_tag_no_longer_matches() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let mut ids = Vec::new();
    for (ext, tags) in [("a", json!(["vip", "beta"])), ("b", json!(["vip"]))] {
        ids.push(
            app.by(&m.key)
                .post(
                    "/v1/customers",
                    &json!({"external_id": ext, "email": format!("{ext}@example.com"), "tags": tags}),
                )
                .await
                .expect(201)
                .id(),
        );
    }
    let (ca, cb) = (&ids[0], &ids[1]);
    let tagged = |tag: &'static str| {
        let app = &app;
        let key = m.key.clone();
        async move {
            let res = app.get_ok(&format!("/v1/customers?tag={tag}"), &key).await;
            res["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["external_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(tagged("vip").await, ["b", "a"]);
    assert_eq!(tagged("beta").await, ["a"]);

    // Removed by the tag's own route.
    app.by(&m.key)
        .delete(&format!("/v1/customers/{ca}/tags/vip"))
        .await
        .expect(200);
    assert_eq!(tagged("vip").await, ["b"]);
    assert_eq!(tagged("beta").await, ["a"]);

    // Replaced by an update of the customer: one tag goes, another comes.
    app.by(&m.key)
        .patch(&format!("/v1/customers/{cb}"), &json!({"tags": ["beta"]}))
        .await
        .expect(200);
    assert!(tagged("vip").await.is_empty());
    assert_eq!(tagged("beta").await, ["b", "a"]);
    // An update that leaves the tags alone keeps them.
    app.by(&m.key)
        .patch(&format!("/v1/customers/{cb}"), &json!({"name": "Bea"}))
        .await
        .expect(200);
    assert_eq!(tagged("beta").await, ["b", "a"]);

    // Added back, then every tag cleared by the erasure.
    app.by(&m.key)
        .post(&format!("/v1/customers/{ca}/tags"), &json!({"tag": "vip"}))
        .await
        .expect(200);
    assert_eq!(tagged("vip").await, ["a"]);
    app.by(&m.key)
        .post_empty(&format!("/v1/customers/{ca}/erase"))
        .await
        .expect(200);
    assert!(tagged("vip").await.is_empty());
    assert_eq!(tagged("beta").await, ["b"]);
    assert_eq!(tag_rows_that_differ_from_customers(&app).await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customer_tags").await,
        1
    );
}

/// PostgreSQL keeps a JSON number as an exact decimal and writes `1.7976931348623157e308`
/// back as a 309-digit integer, which serde_json's fast float parser refused as out of
/// range: the customer (and the audit entry of its creation) could be stored but not
/// read (500). serde_json's `float_roundtrip` parses it exactly.
#[actix_web::test]
async fn the_largest_json_numbers_read_back_as_they_were_written() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let extremes = json!({"max": f64::MAX, "min": f64::MIN, "tiny": 5e-324, "big": 123456789012345678901234567890.0});
    let created = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "numbers", "metadata": extremes}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().unwrap();
    let read = app
        .by(&m.key)
        .get(&format!("/v1/customers/{id}"))
        .await
        .expect(200);
    assert_eq!(read.body["metadata"], extremes);
    let audit = app.by(&m.key).get("/v1/audit_events").await.expect(200);
    assert_eq!(audit.body["data"][0]["request_body"]["metadata"], extremes);
}
