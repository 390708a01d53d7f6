//! Unknown routes answer 404 and known routes with the wrong method answer 405 with an
//! `Allow` header, both as problem+json. The route table comes from the OpenAPI document,
//! which is collected from the handlers themselves, so it cannot drift from them; it also
//! tells which operations take a body and which query parameters each documents.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::{OpenApi, RefOr};

use crate::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<Segment>, Vec<Method>)>,
}

/// A method served at a route, as its operation is documented.
#[derive(Debug, Clone)]
struct Method {
    name: &'static str,
    takes_body: bool,
    /// The names of its query parameters.
    query: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

impl RouteTable {
    pub fn from_openapi(api: &OpenApi) -> Self {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.starts_with('{') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect();
                let mut methods = Vec::new();
                for (operation, name) in [
                    (&item.get, "GET"),
                    (&item.post, "POST"),
                    (&item.put, "PUT"),
                    (&item.patch, "PATCH"),
                    (&item.delete, "DELETE"),
                ] {
                    if let Some(operation) = operation {
                        let query = operation
                            .parameters
                            .iter()
                            .flatten()
                            .filter_map(|p| match p {
                                RefOr::T(p) if p.parameter_in == ParameterIn::Query => {
                                    Some(p.name.clone())
                                }
                                _ => None,
                            })
                            .collect();
                        methods.push(Method {
                            name,
                            takes_body: operation.request_body.is_some(),
                            query,
                        });
                    }
                }
                (segments, methods)
            })
            .collect();
        Self { routes }
    }

    fn matching(&self, path: &str) -> impl Iterator<Item = &[Method]> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.routes.iter().filter_map(move |(segments, methods)| {
            let fits = segments.len() == parts.len()
                && segments.iter().zip(&parts).all(|(seg, part)| match seg {
                    Segment::Literal(l) => l == part,
                    Segment::Param => true,
                });
            fits.then_some(methods.as_slice())
        })
    }

    /// The methods served at `path`, if any route matches it.
    fn allowed(&self, path: &str) -> Option<Vec<&'static str>> {
        let mut allowed: Vec<&'static str> = Vec::new();
        let mut matched = false;
        for methods in self.matching(path) {
            matched = true;
            allowed.extend(methods.iter().map(|m| m.name));
        }
        matched.then_some(allowed)
    }

    /// Whether `method` on `path` is a documented operation.
    pub fn serves(&self, method: &str, path: &str) -> bool {
        self.operations(method, path).next().is_some()
    }

    /// Whether `method` on `path` is a documented operation that takes no request body.
    pub fn takes_no_body(&self, method: &str, path: &str) -> bool {
        let mut found = false;
        for m in self.operations(method, path) {
            if m.takes_body {
                return false;
            }
            found = true;
        }
        found
    }

    /// The first parameter of `query` that `method` on `path` does not document, with
    /// the ones it does (sorted); `None` when every one is known, or when no documented
    /// operation matches (the 404 or 405 comes later).
    pub fn unknown_query_parameter(
        &self,
        method: &str,
        path: &str,
        query: &str,
    ) -> Option<(String, Vec<String>)> {
        let mut known: Vec<&str> = Vec::new();
        let mut documented = false;
        for m in self.operations(method, path) {
            documented = true;
            known.extend(m.query.iter().map(String::as_str));
        }
        if !documented {
            return None;
        }
        let unknown = form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name)
            .find(|name| !known.contains(&name.as_ref()))?;
        known.sort_unstable();
        known.dedup();
        Some((
            unknown.into_owned(),
            known.into_iter().map(str::to_owned).collect(),
        ))
    }

    fn operations<'a>(&'a self, method: &'a str, path: &str) -> impl Iterator<Item = &'a Method> {
        self.matching(path)
            .flatten()
            .filter(move |m| m.name == method)
    }
}

pub async fn not_found_or_not_allowed(req: HttpRequest) -> HttpResponse {
    let table = req.app_data::<web::Data<RouteTable>>();
    match table.and_then(|t| t.allowed(req.path())) {
        Some(methods) if !methods.is_empty() => {
            let mut res = ApiError::MethodNotAllowed.error_response();
            if let Ok(value) = header::HeaderValue::from_str(&methods.join(", ")) {
                res.headers_mut().insert(header::ALLOW, value);
            }
            res
        }
        _ => ApiError::RouteNotFound.error_response(),
    }
}
