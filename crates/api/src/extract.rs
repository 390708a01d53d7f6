//! Request extractors that answer bad input with problem+json: JSON body and query
//! extractors that name the offending field, and error handlers for actix's path and JSON
//! extractors.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tenure_domain::billing::pan;

use crate::error::{ApiError, FieldError};

/// The largest JSON body accepted. Larger bodies are refused as they stream in, before
/// they are buffered.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON request body. Unlike `web::Json`, a type error names the field that caused it
/// (`price.amount`), and every failure is a problem+json response.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = is_json(req);
        let payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType);
            }
            let body = read_capped(payload).await?;
            parse_json(&body).map(Json)
        })
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`. For actions whose
/// every option has a default (`POST …/pause` with `{}` or nothing at all).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = is_json(req);
        let payload = payload.take();
        Box::pin(async move {
            let body = read_capped(payload).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType);
            }
            parse_json(&body).map(OptionalJson)
        })
    }
}

/// Reads a request body into memory, refusing it as soon as it grows past
/// [`MAX_BODY_BYTES`] (a declared `Content-Length` over the limit was already refused by
/// the input-limits middleware, before anything was read).
pub async fn read_capped(mut payload: Payload) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T`, mapping syntax errors to 400 and shape errors (missing,
/// unknown or mistyped fields) to 422 with the field's path.
///
/// Before anything else, the body is searched for card numbers (see
/// [`tenure_domain::billing::pan`]): in every string, number and key at any depth, and in
/// the raw text (which catches numbers too long to survive parsing exactly). A body with
/// one is refused with 422 `card_number_not_allowed` before it is deserialized, so the
/// number reaches neither a handler, nor the database, nor a log line, and the problem
/// names only the field, never its value.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    reject_card_numbers(body)?;
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::bad_request(
                "invalid_json",
                format!("the request body is not valid JSON: {inner}"),
            )
        } else {
            let (field, message) = located(&path, &strip_position(&inner.to_string()));
            ApiError::Validation(vec![FieldError { field, message }])
        }
    })
}

/// The field a shape error is about and what to do about it, in the caller's terms. A
/// missing field is reported at the object that should hold it (`.` for the body itself)
/// with its name in the message; and serde names the expected Rust type (`struct
/// MoneyDto`, `i64`), which means nothing to a caller.
fn located(path: &str, message: &str) -> (String, String) {
    let within = |name: &str| match path {
        "." => name.to_owned(),
        _ => format!("{path}.{name}"),
    };
    let quoted = |rest: &str| rest.split('`').next().unwrap_or_default().to_owned();
    if let Some(rest) = message.strip_prefix("missing field `") {
        return (within(&quoted(rest)), "is required".to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = quoted(rest);
        // The last ", expected " is serde's: an earlier one is in the caller's key.
        let known = rest
            .rsplit_once(", expected ")
            .map(|(_, expected)| format!("; expected {}", expected.replace('`', "")))
            .unwrap_or_default();
        // The path ends with the unknown key, except inside an enum tagged by `type`,
        // whose fields are read from a buffer after the path stopped at the enum.
        let field = if path == "." {
            name
        } else if path.rsplit('.').next() == Some(name.as_str()) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return (field, format!("is not a known field{known}"));
    }
    let field = if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    (field, plain_types(message))
}

/// `expected struct MoneyDto` → `expected an object`; `expected i64` → `expected an
/// integer`, and so on for the other names serde gives Rust types. chrono's parse errors
/// (the only ones that read like these) say what a timestamp must look like.
fn plain_types(message: &str) -> String {
    const CHRONO: [&str; 5] = [
        "input contains invalid characters",
        "premature end of input",
        "trailing input",
        "input is out of range",
        "input is not enough for unique date and time",
    ];
    if CHRONO.iter().any(|m| message.ends_with(m)) {
        return format!("must be an RFC 3339 timestamp such as 2026-11-26T10:00:00Z ({message})");
    }
    // The last "expected " is serde's: an earlier one can be in the caller's own value.
    let Some((head, expected)) = message.rsplit_once("expected ") else {
        return message.to_owned();
    };
    let plain = if [
        "struct ",
        "a map",
        "internally tagged enum",
        "adjacently tagged enum",
    ]
    .iter()
    .any(|rust| expected.starts_with(rust))
    {
        "an object"
    } else if expected.starts_with("enum ") {
        "one of the documented values"
    } else if [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "isize",
    ]
    .contains(&expected)
    {
        "an integer"
    } else if ["f32", "f64"].contains(&expected) {
        "a number"
    } else {
        return message.to_owned();
    };
    format!("{head}expected {plain}")
}

/// Refuses a body that contains anything that looks like a card number.
pub fn reject_card_numbers(body: &[u8]) -> Result<(), ApiError> {
    // A body that is not JSON gets its syntax error later, but a card number in it is
    // refused all the same by the raw scan below.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(path) = pan::find_pan_in_json(&value)
    {
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        return Err(ApiError::CardNumberNotAllowed { field });
    }
    if pan::contains_pan(&String::from_utf8_lossy(body)) {
        return Err(ApiError::CardNumberNotAllowed {
            field: "body".to_owned(),
        });
    }
    Ok(())
}

/// serde_json appends " at line 1 column 17", which means nothing to an API caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A query string. Unlike `web::Query`, a value that does not parse is refused naming its
/// parameter (`created_from`), and every failure is a problem+json response.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

/// Parses a query string into `T`; a value that does not parse is 422 on its parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let (field, message) = located(&path, &err.into_inner().to_string());
        let field = if field == "body" {
            "query".to_owned()
        } else {
            field
        };
        ApiError::Validation(vec![FieldError { field, message }])
    })
}

/// Problem+json for path segments that do not parse.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound("resource").into())
}

/// Problem+json for actix's own JSON extractor, should any route use it.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _| match err {
            actix_web::error::JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType.into()
            }
            actix_web::error::JsonPayloadError::Overflow { .. }
            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
                .into()
            }
            other => {
                ApiError::bad_request("invalid_json", strip_position(&other.to_string())).into()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        price: Price,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Price {
        amount: i64,
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"price": {"amount": "12"}}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected validation error, got {err:?}")
        };
        assert_eq!(errors[0].field, "price.amount");
        assert!(!errors[0].message.contains("line"));
    }

    #[test]
    fn missing_and_unknown_fields_are_named_and_types_are_plain() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Create {
            plan_id: String,
            price: Money,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Money {
            amount: i64,
            currency: String,
        }
        let error = |body: &str| {
            let Err(ApiError::Validation(errors)) = parse_json::<Create>(body.as_bytes()) else {
                panic!("{body}: expected a validation error");
            };
            (errors[0].field.clone(), errors[0].message.clone())
        };
        let price = r#""price": {"amount": 1, "currency": "EUR"}"#;
        assert_eq!(
            error(&format!("{{{price}}}")),
            ("plan_id".into(), "is required".into())
        );
        assert_eq!(
            error(r#"{"plan_id": "p", "price": {"amount": 1}}"#),
            ("price.currency".into(), "is required".into())
        );
        let (field, message) = error(&format!(r#"{{"plan_id": "p", {price}, "plan": 1}}"#));
        assert_eq!(field, "plan");
        assert_eq!(message, "is not a known field; expected plan_id or price");
        assert_eq!(
            error(r#"{"plan_id": "p", "price": 5}"#),
            (
                "price".into(),
                "invalid type: integer `5`, expected an object".into()
            )
        );
        assert_eq!(
            error(r#"{"plan_id": "p", "price": {"amount": "1", "currency": "EUR"}}"#),
            (
                "price.amount".into(),
                "invalid type: string \"1\", expected an integer".into()
            )
        );
        let (field, message) = error(r#"{"plan_id": "expected struct x", "price": 5}"#);
        assert_eq!(field, "price");
        assert_eq!(message, "invalid type: integer `5`, expected an object");
        let (field, message) = error("[]");
        assert_eq!(field, "body");
        assert!(
            !message.contains("struct") && !message.contains("Create"),
            "{message}"
        );
    }

    #[test]
    fn fields_inside_a_type_tagged_enum_are_named_in_full() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Pause {
            start: Start,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        #[allow(dead_code)]
        enum Start {
            Now,
            At { date: String },
        }
        let error = |body: &str| {
            let Err(ApiError::Validation(errors)) = parse_json::<Pause>(body.as_bytes()) else {
                panic!("{body}: expected a validation error");
            };
            (errors[0].field.clone(), errors[0].message.clone())
        };
        let (field, message) = error(r#"{"start": {"type": "at", "date": "d", "foo": 1}}"#);
        assert_eq!(field, "start.foo");
        assert_eq!(message, "is not a known field; expected date");
        let (field, message) = error(r#"{"start": 5}"#);
        assert_eq!(field, "start");
        assert!(message.ends_with("expected an object"), "{message}");
    }

    #[test]
    fn query_values_that_do_not_parse_name_their_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Filter {
            limit: Option<i64>,
            created_from: Option<chrono::DateTime<chrono::Utc>>,
        }
        let error = |query: &str| {
            let Err(ApiError::Validation(errors)) = parse_query::<Filter>(query) else {
                panic!("{query}: expected a validation error");
            };
            (errors[0].field.clone(), errors[0].message.clone())
        };
        let (field, message) = error("limit=20&created_from=2026-11-01");
        assert_eq!(field, "created_from");
        assert!(
            message.starts_with("must be an RFC 3339 timestamp"),
            "{message}"
        );
        assert_eq!(error("limit=abc").0, "limit");
        let ok = parse_query::<Filter>("created_from=2026-11-01T00%3A00%3A00Z").unwrap();
        assert!(ok.created_from.is_some() && ok.limit.is_none());
    }

    #[test]
    fn card_numbers_are_refused_without_being_echoed() {
        for (body, field) in [
            (
                &br#"{"price": {"amount": 4242424242424242}}"#[..],
                "price.amount",
            ),
            (br#"{"note": "card 4242 4242 4242 4242"}"#, "note"),
            (br#"{"m": {"4242-4242-4242-4242": 1}}"#, "m"),
            (br#"{"a": [{"b": ["x", "5555555555554444"]}]}"#, "a[0].b[1]"),
            (br#"{"n": -4242424242424242.0}"#, "n"),
            (b"{\"broken\": 4242424242424242", "body"),
        ] {
            let err = parse_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(err.code(), "card_number_not_allowed");
            let problem = serde_json::to_string(&err.problem()).unwrap();
            assert!(
                !problem.contains("4242") && !problem.contains("4444"),
                "{problem}"
            );
            assert!(problem.contains(field), "{problem}");
        }
        assert!(
            parse_json::<serde_json::Value>(br#"{"token": "pm_card_visa", "n": 1999}"#).is_ok()
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert!(matches!(
            parse_json::<Body>(b"{\"price\": "),
            Err(ApiError::BadRequest {
                code: "invalid_json",
                ..
            })
        ));
        assert!(matches!(
            parse_json::<Body>(b"  "),
            Err(ApiError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_json::<Body>(br#"{"price": {"amount": 1}, "x": 1}"#),
            Err(ApiError::Validation(_))
        ));
    }
}
