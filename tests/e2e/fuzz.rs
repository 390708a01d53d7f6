//! Fuzz-style property test over every request body: arbitrary JSON (nested objects and
//! arrays, odd strings, huge, negative and fractional numbers, unknown and known field
//! names, mutated examples) is posted to every POST, PUT and PATCH operation in the
//! OpenAPI document, with ids of live resources of the right kind and state in the
//! paths (see [`World`]), so the bodies reach the handlers and the domain rules behind
//! them. No answer may be a server error, every error must be problem+json with a
//! `code`, and every operation must succeed at least once (its example goes first).
//!
//! `TENURE_FUZZ_CASES` sets the cases per operation (default 64); `TENURE_FUZZ_SEED`
//! replays a run (the seed is printed with any failure).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Number, Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures;

fn cases() -> usize {
    std::env::var("TENURE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn seed() -> u64 {
    std::env::var("TENURE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand_seed)
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1.5),
            json!(-0.0),
            json!(1e308),
            json!(-1e308),
            json!(4_294_967_296_u64),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(10_000_000_000_001_i64),
        ]),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        ".{0,8}",
        "[a-z_]{1,10}",
        prop::sample::select(vec![
            String::new(),
            " ".to_owned(),
            "\u{0}".to_owned(),
            "' OR 1=1 --".to_owned(),
            "abc\u{202E}def".to_owned(),
            "🦀".repeat(300),
            "x".repeat(10_000),
            "EUR".to_owned(),
            "month".to_owned(),
            "request".to_owned(),
            "immediate".to_owned(),
            "HS256".to_owned(),
            "2026-11-25T10:00:00Z".to_owned(),
            "cus_01jf9zb3f4e3a8r7m2k4t5n6bc".to_owned(),
            "prod_01jf9z7q6ve3a8r7m2k4t5n6bc".to_owned(),
        ]),
    ]
}

fn json_value(keys: Vec<String>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(keys),
        1 => string(),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// The step of a field path into an array's first item (`high_ltv_thresholds[].currency`).
const ITEM: &str = "[]";

/// Sets `value` at the dotted `path` of `base` (creating objects and arrays on the way).
fn mutate(mut base: Value, path: &[String], value: Value) -> Value {
    let mut target = &mut base;
    for (i, part) in path.iter().enumerate() {
        if part == ITEM {
            if target.as_array().is_none_or(Vec::is_empty) {
                *target = json!([null]);
            }
            let first = &mut target.as_array_mut().expect("array")[0];
            if i == path.len() - 1 {
                *first = value;
                return base;
            }
            target = first;
            continue;
        }
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let map = target.as_object_mut().expect("object");
        if i == path.len() - 1 {
            map.insert(part.clone(), value);
            return base;
        }
        target = map.entry(part.clone()).or_insert(Value::Null);
    }
    value
}

/// The body strategy of one operation: arbitrary JSON, objects made of its own field
/// names, and its valid example with one field replaced, removed or joined by another.
fn body(
    example: Value,
    field_paths: Vec<Vec<String>>,
    keys: Vec<String>,
) -> impl Strategy<Value = Value> {
    let any_value = json_value(keys.clone());
    let field = if field_paths.is_empty() {
        Just(vec!["unknown".to_owned()]).boxed()
    } else {
        prop::sample::select(field_paths).boxed()
    };
    let example_for_mutation = example.clone();
    let example_for_removal = example.clone();
    prop_oneof![
        1 => any_value.clone(),
        2 => prop::collection::btree_map(prop::sample::select(keys), any_value.clone(), 0..8)
            .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
        4 => (field.clone(), any_value.clone())
            .prop_map(move |(path, value)| mutate(example_for_mutation.clone(), &path, value)),
        1 => field.prop_map(move |path| {
            let mut body = example_for_removal.clone();
            let (last, parents) = path.split_last().expect("non-empty path");
            let mut target = &mut body;
            for p in parents {
                let next = if p == ITEM {
                    target.get_mut(0)
                } else {
                    target.get_mut(p)
                };
                match next {
                    Some(next) => target = next,
                    None => return body,
                }
            }
            if last == ITEM {
                if let Some(items) = target.as_array_mut().filter(|a| !a.is_empty()) {
                    items.remove(0);
                }
            } else if let Some(map) = target.as_object_mut() {
                map.remove(last);
            }
            body
        }),
        1 => (string(), any_value).prop_map(move |(k, v)| mutate(example.clone(), &[k], v)),
    ]
}

/// Resolves `$ref`s against the document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    for _ in 0..8 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                match doc.pointer(pointer) {
                    Some(target) => schema = target,
                    None => break,
                }
            }
            None => break,
        }
    }
    schema
}

/// Every property path of a schema (through refs, nested objects, arrays, oneOf…). An
/// [`ITEM`] step goes into an array's first item.
fn field_paths(doc: &Value, schema: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    if prefix.len() > 4 {
        return;
    }
    let schema = resolve(doc, schema);
    if let Some(items) = schema.get("items") {
        let mut path = prefix.to_vec();
        path.push(ITEM.to_owned());
        field_paths(doc, items, &path, out);
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let mut path = prefix.to_vec();
            path.push(name.clone());
            out.push(path.clone());
            field_paths(doc, sub, &path, out);
        }
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(items) = schema.get(combinator).and_then(Value::as_array) {
            for sub in items {
                field_paths(doc, sub, prefix, out);
            }
        }
    }
}

/// The schema's example, or that of its first variant with one (an optional body is
/// `oneOf` the body and null).
fn example_of<'a>(doc: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(doc, schema);
    schema.get("example").or_else(|| {
        ["oneOf", "anyOf", "allOf"]
            .iter()
            .filter_map(|c| schema.get(*c).and_then(Value::as_array))
            .flatten()
            .find_map(|sub| example_of(doc, sub))
    })
}

struct Operation {
    method: &'static str,
    path: String,
    /// Whether it documents a body; the others' handlers never read one.
    has_body: bool,
    example: Value,
    fields: Vec<Vec<String>>,
    keys: Vec<String>,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in ["post", "put", "patch"] {
            let Some(op) = item.get(method) else { continue };
            let schema = op.pointer("/requestBody/content/application~1json/schema");
            let (example, fields) = match schema {
                Some(schema) => {
                    let example = op
                        .pointer("/requestBody/content/application~1json/example")
                        .or_else(|| example_of(doc, schema))
                        .cloned()
                        .unwrap_or_else(|| json!({}));
                    let mut fields = Vec::new();
                    field_paths(doc, schema, &[], &mut fields);
                    (example, fields)
                }
                None => (json!({}), Vec::new()),
            };
            let mut keys: BTreeSet<String> = fields
                .iter()
                .flatten()
                .filter(|k| *k != ITEM)
                .cloned()
                .collect();
            keys.insert("unknown_field".to_owned());
            out.push(Operation {
                method: match method {
                    "post" => "POST",
                    "put" => "PUT",
                    _ => "PATCH",
                },
                path: path.clone(),
                has_body: op.get("requestBody").is_some(),
                example,
                fields,
                keys: keys.into_iter().collect(),
            });
        }
    }
    out
}

/// A merchant whose every path parameter names a live resource of its kind: a product
/// with two plans, an offer, an endpoint, an event, and for each operation a signed-in
/// customer with a card, whose own subscriptions, invoices, requests and tickets the
/// paths name. Each operation gets resources of its own, made anew when a body used them
/// up, so its bodies reach the handler and the domain rules rather than a 404. (A
/// customer of its own keeps the work of each action small: a new default card retries
/// every open invoice of its customer.)
struct World {
    app: TestApp,
    m: TestMerchant,
    token: String,
    customer: String,
    product: String,
    base: String,
    premium: String,
    endpoint: String,
    event: String,
    /// The coupon the examples' placeholder coupon ids stand for.
    coupon: String,
    /// A plan of a product that ships, for orders.
    shipped: String,
    /// An address of the signed-in customer, for the examples' address ids.
    address: String,
    made: usize,
}

/// The operator's token, for the operator's routes.
const OPERATOR: &str = "op_fuzz_0123456789abcdef0123456789abcdef";

impl World {
    async fn new() -> Self {
        let app = TestApp::configured(
            tenure_test_support::TestDb::new().await,
            tenure_api::middleware::rate_limit::RateLimitConfig::disabled(),
            |state| {
                state.app.webhook_targets = tenure_domain::outbound::TargetPolicy::AllowPrivate;
                state.operator_token =
                    tenure_api::auth::operator::OperatorToken::new(OPERATOR).expect("a token");
            },
        )
        .await;
        let m = app.merchant("Fuzz").await;
        // Long enough for the documented pause example (two cycles after the paid one).
        let product = fixtures::product(
            &app,
            &m,
            json!({"max_pause_days": 365, "allow_skip": true, "allow_send_now": true}),
        )
        .await;
        // Several units, so that the documented quantity change (3) can succeed.
        app.by(&m.key)
            .patch(
                &format!("/v1/products/{product}"),
                &json!({"max_quantity": 10}),
            )
            .await
            .expect(200);
        let base = fixtures::plan(&app, &m, &product, 1000).await;
        let premium = fixtures::plan(&app, &m, &product, 2000).await;
        // Offered on every portal cancellation, so the offer paths have one to name.
        app.by(&m.key)
            .post(
                "/v1/retention_offers",
                &json!({"name": "Stay",
                    "kind": {"type": "discount_percent", "percent": 10, "cycles": 1}}),
            )
            .await
            .expect(201);
        let endpoint = Self::endpoint(&app, &m).await;
        let coupon = app
            .by(&m.key)
            .post(
                "/v1/coupons",
                &json!({"name": "Fuzz", "percent_off": 10, "duration": "once"}),
            )
            .await
            .expect(201)
            .id();
        let shipped_product = app
            .by(&m.key)
            .post("/v1/products", &json!({"name": "Beans", "shippable": true}))
            .await
            .expect(201)
            .id();
        let shipped = fixtures::plan(&app, &m, &shipped_product, 1200).await;
        let event = app.get_ok("/v1/events?limit=1", &m.key).await["data"][0]["id"]
            .as_str()
            .expect("the setup emitted events")
            .to_owned();
        Self {
            app,
            m,
            token: String::new(),
            customer: String::new(),
            product,
            base,
            premium,
            endpoint,
            event,
            coupon,
            shipped,
            address: String::new(),
            made: 0,
        }
    }

    /// A new address of `customer`.
    async fn address_of(&self, customer: &str) -> String {
        self.app
            .post(&format!("/v1/customers/{customer}/addresses"))
            .bearer(&self.m.key)
            .json(
                &json!({"name": "Ada", "line1": "1 Main St", "city": "Springfield",
                "country": "US"}),
            )
            .send()
            .await
            .expect(201)
            .id()
    }

    /// A paid order of the signed-in customer: `unfulfilled`, or `shipped` for `deliver`.
    async fn order(&self, action: &str) -> String {
        let sub = self
            .app
            .post("/v1/subscriptions")
            .bearer(&self.m.key)
            .json(
                &json!({"customer_id": self.customer, "plan_id": self.shipped,
                "shipping_address_id": self.address}),
            )
            .send()
            .await
            .expect(201)
            .id();
        let list = self
            .app
            .get_ok(&format!("/v1/orders?subscription_id={sub}"), &self.m.key)
            .await;
        let order = list["data"][0]["id"].as_str().expect("an order").to_owned();
        if action == "deliver" {
            self.app
                .post(&format!("/v1/orders/{order}/ship"))
                .bearer(&self.m.key)
                .json(&json!({"carrier": "UPS", "tracking_number": "1Z"}))
                .send()
                .await
                .expect(200);
        }
        order
    }

    /// Signs in a new customer with a card, for the next operation.
    async fn next_customer(&mut self) {
        self.made += 1;
        self.customer =
            fixtures::customer(&self.app, &self.m, &format!("fuzz-{}", self.made)).await;
        fixtures::attach_card(&self.app, &self.m, &self.customer, "pm_card_visa").await;
        self.token = fixtures::session(&self.app, &self.m, &self.customer).await;
        self.address = self.address_of(&self.customer).await;
    }

    async fn endpoint(app: &TestApp, m: &TestMerchant) -> String {
        app.by(&m.key)
            .post(
                "/v1/webhook_endpoints",
                &json!({"url": "https://example.com/hooks", "enabled_events": ["*"]}),
            )
            .await
            .expect(201)
            .id()
    }

    fn credential(&self, path: &str) -> &str {
        if path.starts_with("/v1/operator") {
            OPERATOR
        } else if path.starts_with("/v1/portal") {
            &self.token
        } else {
            &self.m.key
        }
    }

    /// The example with its placeholder ids replaced by this world's: a plan change goes
    /// to the pricier plan, a subscription or session is the signed-in customer's.
    fn fill(&self, example: &Value) -> Value {
        match example {
            Value::String(s) => {
                // Only TypeIDs (a prefix and 26 base32 characters), not enum values such
                // as `plan_change`.
                let typeid = s.split_once('_').filter(|(_, suffix)| {
                    suffix.len() == 26 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                let id = match typeid.map(|(prefix, _)| prefix) {
                    Some("cus") => &self.customer,
                    Some("prod") => &self.product,
                    Some("plan") => &self.premium,
                    Some("whep") => &self.endpoint,
                    Some("coupon") => &self.coupon,
                    Some("addr") => &self.address,
                    _ => return example.clone(),
                };
                Value::String(id.clone())
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.fill(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), self.fill(v))).collect())
            }
            other => other.clone(),
        }
    }

    /// The path with a fresh, live resource for each parameter, of the kind of the
    /// collection it follows (in the state the action after it needs: a paused
    /// subscription to resume, a paid invoice to refund), owned by the parameter before
    /// it (a customer's payment method, a request's offer).
    async fn path(&mut self, template: &str) -> String {
        let portal = template.starts_with("/v1/portal/");
        let segments: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        let mut path = String::new();
        let mut owner: Option<(String, Vec<String>)> = None;
        for (i, segment) in segments.iter().enumerate() {
            path.push('/');
            if segment.starts_with('{') {
                let kind = segments[i - 1];
                let action = segments.get(i + 1).copied().unwrap_or("");
                let (id, offers) = self.make(kind, action, owner.take(), portal).await;
                path.push_str(&id);
                owner = Some((id, offers));
            } else {
                path.push_str(segment);
            }
        }
        path
    }

    /// One resource of `kind` (with the offers a cancellation request presented).
    async fn make(
        &mut self,
        kind: &str,
        action: &str,
        owner: Option<(String, Vec<String>)>,
        portal: bool,
    ) -> (String, Vec<String>) {
        self.made += 1;
        let id = match (kind, owner) {
            ("subscriptions", _) => {
                let sub = self.subscription().await;
                let (prefix, credential) = if portal {
                    ("/v1/portal", &self.token)
                } else {
                    ("/v1", &self.m.key)
                };
                if action == "unskip" {
                    // Customers may take back only their own skips.
                    self.app
                        .post(&format!("{prefix}/subscriptions/{sub}/skip"))
                        .bearer(credential)
                        .send()
                        .await
                        .expect(200);
                }
                if action == "stock_choice" {
                    // A choice needs a stock notice that reached this subscriber and
                    // offers one.
                    self.app
                        .post(&format!("/v1/plans/{}/stock", self.base))
                        .bearer(&self.m.key)
                        .json(
                            &json!({"status": "out_of_stock", "next_order": "ship_anyway",
                            "choices": ["ship_anyway", "skip"]}),
                        )
                        .send()
                        .await
                        .expect(202);
                    loop {
                        let round = tenure_engine::stock::run_stock_notices(
                            &self.app.state.app,
                            self.app.clock.now(),
                            10,
                        )
                        .await
                        .expect("a stock round");
                        if round.batches == 0 {
                            break;
                        }
                    }
                }
                if action == "resume" {
                    // Customers may resume only their own pauses.
                    self.app
                        .post(&format!("{prefix}/subscriptions/{sub}/pause"))
                        .bearer(credential)
                        .json(&json!({"start": {"type": "now"}}))
                        .send()
                        .await
                        .expect(200);
                }
                sub
            }
            ("cancellation_requests", _) => {
                let (request, _ticket, offers) = self.cancellation_request().await;
                return (request, offers);
            }
            ("support_tickets", _) => self.cancellation_request().await.1,
            ("retention_offers", Some((_request, offers))) => offers
                .first()
                .expect("the request presented an offer")
                .clone(),
            ("retention_offers", None) => self
                .app
                .post("/v1/retention_offers")
                .bearer(&self.m.key)
                .json(&json!({"name": format!("Offer {}", self.made),
                    "kind": {"type": "pause_instead", "days": 30}}))
                .send()
                .await
                .expect(201)
                .id(),
            ("invoices", _) => {
                let invoice = self.open_invoice().await;
                // Refunds and credit notes need a paid invoice.
                if action == "refund" || action == "credit_notes" {
                    self.app
                        .post(&format!("/v1/invoices/{invoice}/pay"))
                        .bearer(&self.m.key)
                        .send()
                        .await
                        .expect(200);
                }
                invoice
            }
            ("customers", _) => {
                let customer =
                    fixtures::customer(&self.app, &self.m, &format!("fuzz-{}", self.made)).await;
                fixtures::attach_card(&self.app, &self.m, &customer, "pm_card_visa").await;
                customer
            }
            // The portal's own cards are the signed-in customer's.
            ("payment_methods", owner) => {
                let customer = owner.map_or(self.customer.clone(), |(c, _)| c);
                fixtures::attach_card(&self.app, &self.m, &customer, "pm_card_mastercard").await
            }
            ("products", _) => fixtures::product(&self.app, &self.m, json!({})).await,
            ("plans", _) => fixtures::plan(&self.app, &self.m, &self.product, 1500).await,
            ("webhook_endpoints", _) => {
                // Room under the merchant's limit, which the fuzzed creations fill.
                let list = self
                    .app
                    .get_ok("/v1/webhook_endpoints?limit=100", &self.m.key);
                for endpoint in list.await["data"].as_array().expect("endpoints") {
                    let id = endpoint["id"].as_str().expect("endpoint id");
                    if id != self.endpoint {
                        self.app
                            .delete(&format!("/v1/webhook_endpoints/{id}"))
                            .bearer(&self.m.key)
                            .send()
                            .await
                            .expect(200);
                    }
                }
                Self::endpoint(&self.app, &self.m).await
            }
            ("events", _) => self.event.clone(),
            // A key of its own, so that a fuzzed roll or revocation never ends the
            // merchant's key the test runs with.
            ("api_keys", _) => self
                .app
                .post("/v1/api_keys")
                .bearer(&self.m.key)
                .json(&json!({"name": format!("fuzz {}", self.made)}))
                .send()
                .await
                .expect(201)
                .id(),
            // A ready clock before the time the advance's example moves it to.
            ("test_clocks", _) => self
                .app
                .post("/v1/test_clocks")
                .bearer(&self.m.key)
                .json(&json!({"frozen_time": "2027-01-31T09:00:00Z"}))
                .send()
                .await
                .expect(201)
                .id(),
            ("coupons", _) => self.coupon().await,
            // The portal's own addresses are the signed-in customer's.
            ("addresses", owner) => {
                let customer = owner.map_or(self.customer.clone(), |(c, _)| c);
                self.address_of(&customer).await
            }
            ("orders", _) => self.order(action).await,
            ("promotion_codes", _) => {
                let coupon = self.coupon().await;
                self.app
                    .post("/v1/promotion_codes")
                    .bearer(&self.m.key)
                    .json(&json!({"coupon_id": coupon, "code": format!("FUZZ{}", self.made)}))
                    .send()
                    .await
                    .expect(201)
                    .id()
            }
            // A merchant's Stripe event endpoint (unsigned bodies are refused before
            // they are read).
            ("gateway_events", _) => self.m.id.clone(),
            (other, _) => panic!(
                "no resource for a parameter after `{other}`: teach World::make to create one, \
                 so that its bodies reach the handler"
            ),
        };
        (id, Vec::new())
    }

    /// A new coupon, a tenth off once.
    async fn coupon(&self) -> String {
        self.app
            .post("/v1/coupons")
            .bearer(&self.m.key)
            .json(
                &json!({"name": format!("Coupon {}", self.made), "percent_off": 10,
                "duration": "once"}),
            )
            .send()
            .await
            .expect(201)
            .id()
    }

    /// A new active subscription of the signed-in customer to the cheaper plan.
    async fn subscription(&self) -> String {
        fixtures::subscribe_id(&self.app, &self.m, &self.customer, &self.base).await
    }

    /// A pending cancellation request of the signed-in customer, asked for in the portal:
    /// its id, its support ticket and the offers it presented.
    async fn cancellation_request(&self) -> (String, String, Vec<String>) {
        let sub = self.subscription().await;
        let res = self
            .app
            .post(&format!("/v1/portal/subscriptions/{sub}/cancel"))
            .bearer(&self.token)
            .json(&json!({"reason": "too_expensive"}))
            .send()
            .await
            .expect(200);
        let request = &res.body["cancellation_request"];
        assert_eq!(request["status"], "pending", "{}", res.body);
        let offers = res.body["retention_offers"]
            .as_array()
            .expect("retention_offers")
            .iter()
            .filter_map(|o| o["id"].as_str().map(str::to_owned))
            .collect();
        (
            request["id"].as_str().expect("request id").to_owned(),
            request["ticket_id"].as_str().expect("ticket id").to_owned(),
            offers,
        )
    }

    /// The open first invoice of a new subscription of the signed-in customer. A signup
    /// with a card pays its first invoice at once, so this signs in a new customer who
    /// subscribes before adding the card (which makes the invoice due for the engine's
    /// next round, and this test runs none).
    async fn open_invoice(&mut self) -> String {
        self.customer =
            fixtures::customer(&self.app, &self.m, &format!("fuzz-{}-open", self.made)).await;
        let sub = self.subscription().await;
        fixtures::attach_card(&self.app, &self.m, &self.customer, "pm_card_visa").await;
        self.token = fixtures::session(&self.app, &self.m, &self.customer).await;
        self.address = self.address_of(&self.customer).await;
        let list = self
            .app
            .get_ok(
                &format!(
                    "/v1/invoices?customer_id={}&status=open&limit=100",
                    self.customer
                ),
                &self.m.key,
            )
            .await;
        list["data"]
            .as_array()
            .expect("invoices")
            .iter()
            .find(|i| i["subscription_id"] == sub.as_str())
            .and_then(|i| i["id"].as_str())
            .expect("a new subscription is invoiced at once")
            .to_owned()
    }
}

/// Operations no fuzzed body can make succeed in this world, whose merchant is on the
/// sandbox and whose server has no secrets key: Stripe's events need Stripe's signature,
/// setup intents a Stripe merchant, and Stripe settings the operator's key (a sandbox
/// setting with any key is rightly refused). `tests/e2e/stripe.rs` covers them.
const CANNOT_SUCCEED_HERE: &[&str] = &[
    "POST /v1/gateway_events/{merchant_id}/stripe",
    "POST /v1/portal/setup_intents",
    "PUT /v1/gateway_settings",
];

/// The statuses each operation answered. A path whose id names nothing answers 404 to
/// every well-formed body and only ever refuses the rest, so an operation that never
/// succeeded shows bodies that did not reach its logic.
#[derive(Default)]
struct Reached(BTreeMap<String, BTreeMap<u16, usize>>);

impl Reached {
    fn record(&mut self, op: &Operation, status: u16) {
        *self
            .0
            .entry(format!("{} {}", op.method, op.path))
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    #[track_caller]
    fn assert_every_operation_succeeded(&self) {
        let missed: Vec<String> = self
            .0
            .iter()
            .filter(|(op, _)| !CANNOT_SUCCEED_HERE.contains(&op.as_str()))
            .filter(|(_, statuses)| !statuses.keys().any(|s| (200..300).contains(s)))
            .map(|(op, statuses)| format!("{op}: {statuses:?}"))
            .collect();
        assert!(
            missed.is_empty(),
            "operations whose bodies never reached a successful handler:\n{}",
            missed.join("\n")
        );
    }
}

#[track_caller]
fn assert_handled(what: &dyn Fn() -> String, res: &tenure_e2e::Response) {
    let status = res.status.as_u16();
    assert!(
        status < 500,
        "{}: {status} {}",
        what(),
        String::from_utf8_lossy(&res.raw)
    );
    if status >= 400 {
        assert_eq!(
            res.header("content-type"),
            Some("application/problem+json"),
            "{}",
            what()
        );
        assert!(
            res.body["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{}: {}",
            what(),
            res.body
        );
    }
}

#[actix_web::test]
async fn arbitrary_json_never_causes_a_server_error() {
    let mut world = World::new().await;
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let ops = operations(&doc);
    assert!(
        ops.len() >= 8,
        "only {} writable operations found",
        ops.len()
    );
    let seed = seed();
    let n = cases();
    let mut sent = 0;
    let mut reached = Reached::default();
    for (index, op) in ops.iter().enumerate() {
        world.next_customer().await;
        let mut path = world.path(&op.path).await;
        let credential = world.credential(&op.path).to_owned();
        let example = world.fill(&op.example);
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, index)),
        );
        let strategy = body(example.clone(), op.fields.clone(), op.keys.clone());
        for case in 0..n {
            // The example itself first: it shows the path and body reach the handler.
            let value = if case == 0 {
                example.clone()
            } else {
                strategy
                    .new_tree(&mut runner)
                    .expect("generate a body")
                    .current()
            };
            let res = world
                .app
                .request(op.method.parse().expect("method"), &path)
                .bearer(&credential)
                .raw(
                    "application/json",
                    serde_json::to_vec(&value).expect("json"),
                )
                .send()
                .await;
            sent += 1;
            let what = || {
                let shown: String = value.to_string().chars().take(600).collect();
                format!(
                    "{} {path} case {case} (TENURE_FUZZ_SEED={seed}) body {shown}",
                    op.method
                )
            };
            assert_handled(&what, &res);
            reached.record(op, res.status.as_u16());
            if res.status == 409 && op.has_body {
                // An earlier body used the resource up (canceled, paused, closed…).
                path = world.path(&op.path).await;
            }
        }
    }
    reached.assert_every_operation_succeeded();
    assert_eq!(sent, ops.len() * n);
}

/// Every documented field of every writable operation, in its example body, set to each
/// hostile string in turn: refused as 4xx problem+json or accepted, never a 5xx. (The
/// foundation's routes are also read back verbatim in `security.rs`.)
#[actix_web::test]
async fn hostile_strings_in_every_documented_field_never_cause_server_errors() {
    let mut world = World::new().await;
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let hostile = [
        "' OR '1'='1' --",
        "a\u{0}b",
        "abc\u{202E}fed",
        "🦀👨\u{200D}👩\u{200D}👧 café",
        "\u{FEFF}",
        "",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([
        "x".repeat(10_000),
        "https://example.com/\u{0}".to_owned(),
        "4242424242424242".to_owned(),
    ]);
    let hostile: Vec<String> = hostile.collect();
    let mut sent = 0;
    let mut reached = Reached::default();
    let ops = operations(&doc);
    let thresholds = ops
        .iter()
        .find(|op| op.path == "/v1/segment_settings")
        .expect("the segment settings are writable");
    assert!(
        thresholds.fields.contains(
            &["high_ltv_thresholds", ITEM, "currency"]
                .map(str::to_owned)
                .to_vec()
        ),
        "fields inside array items are fuzzed too: {:?}",
        thresholds.fields
    );
    for op in ops {
        world.next_customer().await;
        let mut path = world.path(&op.path).await;
        let credential = world.credential(&op.path).to_owned();
        let example = world.fill(&op.example);
        // The example itself first: it shows the path and body reach the handler.
        let bodies = std::iter::once(("example".to_owned(), example.clone())).chain(
            op.fields.iter().flat_map(|field| {
                hostile.iter().flat_map(|value| {
                    [
                        mutate(example.clone(), field, json!(value)),
                        mutate(example.clone(), field, json!([value])),
                    ]
                    .map(|body| (field.join("."), body))
                })
            }),
        );
        for (field, body) in bodies {
            let res = world
                .app
                .request(op.method.parse().expect("method"), &path)
                .bearer(&credential)
                .json(&body)
                .send()
                .await;
            sent += 1;
            let what = || {
                let shown: String = body.to_string().chars().take(300).collect();
                format!("{} {path} {field} = {shown}", op.method)
            };
            assert_handled(&what, &res);
            reached.record(&op, res.status.as_u16());
            if res.status == 409 && op.has_body {
                path = world.path(&op.path).await;
            }
        }
    }
    reached.assert_every_operation_succeeded();
    assert!(sent > 200, "only {sent} requests");
}

fn seed_bytes(seed: u64, index: usize) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    bytes
}
