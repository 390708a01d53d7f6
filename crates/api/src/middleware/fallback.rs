//! Unknown routes answer 404 and known routes with the wrong method answer 405 with an
//! `Allow` header, both as problem+json. The route table comes from the OpenAPI document,
//! which is collected from the handlers themselves, so it cannot drift from them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<Segment>, Vec<Method>)>,
}

/// A method served at a route, and whether its operation takes a request body.
type Method = (&'static str, bool);

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
                        methods.push((name, operation.request_body.is_some()));
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
            allowed.extend(methods.iter().map(|(name, _)| *name));
        }
        matched.then_some(allowed)
    }

    /// Whether `method` on `path` is a documented operation that takes no request body.
    pub fn takes_no_body(&self, method: &str, path: &str) -> bool {
        let mut found = false;
        for methods in self.matching(path) {
            for (name, body) in methods {
                if *name == method {
                    if *body {
                        return false;
                    }
                    found = true;
                }
            }
        }
        found
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
