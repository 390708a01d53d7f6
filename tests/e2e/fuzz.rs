//! Fuzz-style property test over every request body: arbitrary JSON (nested objects and
//! arrays, odd strings, huge, negative and fractional numbers, unknown and known field
//! names, mutated examples) is posted to every POST, PUT and PATCH operation in the
//! OpenAPI document, with real ids in the paths. No answer may be a server error, and
//! every error must be problem+json with a `code`.
//!
//! `TENURE_FUZZ_CASES` sets the cases per operation (default 64); `TENURE_FUZZ_SEED`
//! replays a run (the seed is printed with any failure).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Number, Value, json};
use tenure_e2e::TestApp;

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

/// Sets `value` at the dotted `path` of `base` (creating objects on the way).
fn mutate(mut base: Value, path: &[String], value: Value) -> Value {
    let mut target = &mut base;
    for (i, part) in path.iter().enumerate() {
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
                match target.get_mut(p) {
                    Some(next) => target = next,
                    None => return body,
                }
            }
            if let Some(map) = target.as_object_mut() {
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

/// Every property path of a schema (through refs, nested objects, arrays, oneOf…).
fn field_paths(doc: &Value, schema: &Value, prefix: &[String], out: &mut Vec<Vec<String>>) {
    if prefix.len() > 4 {
        return;
    }
    let schema = resolve(doc, schema);
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

struct Operation {
    method: &'static str,
    path: String,
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
                    let resolved = resolve(doc, schema);
                    let example = op
                        .pointer("/requestBody/content/application~1json/example")
                        .or_else(|| resolved.get("example"))
                        .cloned()
                        .unwrap_or_else(|| json!({}));
                    let mut fields = Vec::new();
                    field_paths(doc, schema, &[], &mut fields);
                    (example, fields)
                }
                None => (json!({}), Vec::new()),
            };
            let mut keys: BTreeSet<String> = fields.iter().flatten().cloned().collect();
            keys.insert("unknown_field".to_owned());
            out.push(Operation {
                method: match method {
                    "post" => "POST",
                    "put" => "PUT",
                    _ => "PATCH",
                },
                path: path.clone(),
                example,
                fields,
                keys: keys.into_iter().collect(),
            });
        }
    }
    out
}

/// A merchant with one of everything the foundation routes need, and a customer token.
struct World {
    app: TestApp,
    key: String,
    token: String,
    ids: HashMap<String, String>,
}

impl World {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let m = app.merchant("Fuzz").await;
        let product = fixtures::product(&app, &m, json!({})).await;
        let plan = fixtures::plan(&app, &m, &product, 1000).await;
        let customer = fixtures::customer(&app, &m, "fuzz-1").await;
        let token = fixtures::session(&app, &m, &customer).await;
        let idp = app
            .post("/v1/identity_providers")
            .bearer(&m.key)
            .json(
                &json!({"issuer": "https://fuzz.example", "audience": "a", "algorithm": "HS256",
                "verification_key": "k".repeat(40)}),
            )
            .send()
            .await
            .expect(201)
            .id();
        let ids = HashMap::from([
            ("products".to_owned(), product),
            ("plans".to_owned(), plan),
            ("customers".to_owned(), customer),
            ("identity_providers".to_owned(), idp),
        ]);
        Self {
            app,
            key: m.key,
            token,
            ids,
        }
    }

    fn credential(&self, path: &str) -> &str {
        if path.starts_with("/v1/portal") {
            &self.token
        } else {
            &self.key
        }
    }

    /// The path with real ids for its parameters: by the collection they follow, else
    /// the first item that collection lists, else an id that exists nowhere.
    async fn concrete(&mut self, template: &str) -> String {
        let credential = self.credential(template).to_owned();
        let mut path = String::new();
        let mut previous = "";
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            path.push('/');
            if segment.starts_with('{') {
                let id = match self.ids.get(previous) {
                    Some(id) => id.clone(),
                    None => {
                        let list = self
                            .app
                            .get(&path[..path.len() - 1])
                            .bearer(&credential)
                            .send()
                            .await;
                        let found = list.body["data"][0]["id"]
                            .as_str()
                            .or_else(|| list.body[0]["id"].as_str())
                            .unwrap_or("xyz_01jf9zb3f4e3a8r7m2k4t5n6bc")
                            .to_owned();
                        self.ids.insert(previous.to_owned(), found.clone());
                        found
                    }
                };
                path.push_str(&id);
            } else {
                path.push_str(segment);
            }
            previous = segment;
        }
        path
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
    for (index, op) in ops.iter().enumerate() {
        let path = world.concrete(&op.path).await;
        let credential = world.credential(&op.path).to_owned();
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed, index)),
        );
        let strategy = body(op.example.clone(), op.fields.clone(), op.keys.clone());
        for case in 0..n {
            let value = strategy
                .new_tree(&mut runner)
                .expect("generate a body")
                .current();
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
        }
    }
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
    for op in operations(&doc) {
        let path = world.concrete(&op.path).await;
        let credential = world.credential(&op.path).to_owned();
        for field in &op.fields {
            for value in &hostile {
                for body in [
                    mutate(op.example.clone(), field, json!(value)),
                    mutate(op.example.clone(), field, json!([value])),
                ] {
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
                        format!("{} {path} {} = {shown}", op.method, field.join("."))
                    };
                    assert_handled(&what, &res);
                }
            }
        }
    }
    assert!(sent > 200, "only {sent} requests");
}

fn seed_bytes(seed: u64, index: usize) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    bytes
}
