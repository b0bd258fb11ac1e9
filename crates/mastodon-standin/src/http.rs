//! The single actix handler: routes a request, counts and records it, applies injected faults
//! and per-token rate limits, and hands it to the endpoint.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::state::{normalize_route, Fault, Recorded, Route, Shared, Token};
use crate::{api, apps, oauth, params, time};

pub const JSON: &str = "application/json; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

/// What an endpoint gets.
pub struct Ctx<'a> {
    pub req: &'a HttpRequest,
    pub params: &'a Value,
    pub shared: &'a Shared,
    /// The bearer token's record, when the request carries a valid one.
    pub token: Option<Arc<Token>>,
}

/// A JSON answer.
pub fn json(status: u16, body: impl Into<Bytes>) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .insert_header((header::CONTENT_TYPE, JSON))
        .body(body.into())
}

/// A JSON answer of a value.
pub fn json_value(status: u16, v: &Value) -> HttpResponse {
    json(status, serde_json::to_vec(v).unwrap_or_default())
}

/// `{"error": message}` with a status.
pub fn error(status: u16, message: &str) -> HttpResponse {
    json_value(status, &serde_json::json!({ "error": message }))
}

/// 404 `{"error":"Record not found"}`.
pub fn not_found() -> HttpResponse {
    error(404, "Record not found")
}

fn set(resp: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn rate_headers(resp: &mut HttpResponse, limit: u64, remaining: u64, reset_ms: u64) {
    set(resp, "x-ratelimit-limit", &limit.to_string());
    set(resp, "x-ratelimit-remaining", &remaining.to_string());
    set(resp, "x-ratelimit-reset", &time::iso_micros(reset_ms));
}

/// The answer to an injected failure: Mastodon-shaped bodies, 429 with rate-limit headers.
fn fault_response(shared: &Shared, status: u16) -> HttpResponse {
    let message = match status {
        400 => "Bad request",
        401 => "The access token is invalid",
        403 => "This action is not allowed",
        404 => "Record not found",
        410 => "Gone",
        422 => "Validation failed",
        429 => "Too many requests",
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable",
        504 => "Gateway timeout",
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    };
    let mut resp = error(status, message);
    if status == 429 {
        rate_headers(&mut resp, shared.opts.rate_limit, 0, time::now_ms() + 1000);
    }
    resp
}

/// The bearer token of a request (`Authorization: Bearer ...`, or `access_token` in the query).
pub fn bearer(req: &HttpRequest) -> Option<String> {
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let auth = auth.to_str().ok()?.trim();
        let (scheme, token) = auth.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    let query = req.query_string();
    if query.contains("access_token=") {
        return form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

/// Every request lands here.
pub async fn dispatch(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let shared: &Shared = &shared;
    let route = Route::resolve(req.method().as_str(), req.path());
    let other = match route {
        Some(_) => String::new(),
        None => normalize_route(&format!("{} {}", req.method(), req.path())),
    };
    let key: &str = match route {
        Some(r) => r.name(),
        None => &other,
    };
    shared.count_hit(route, key);

    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (params, unparsable) = match params::parse(req.query_string(), content_type, &body) {
        Ok(v) => (Arc::new(v), false),
        Err(_) => (Arc::new(Value::Null), true),
    };
    shared.record(
        route,
        key,
        Recorded {
            params: Arc::clone(&params),
            headers: req.headers().clone(),
        },
    );

    match shared.take_fault(key) {
        Some(Fault::Fail(status)) => return fault_response(shared, status),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if unparsable {
        return error(400, "Error occurred while parsing request parameters");
    }

    let token = bearer(&req).and_then(|t| shared.token(&t));
    let rate = match &token {
        Some(t) if req.path().starts_with("/api/") => Some(shared.count_rate(t)),
        _ => None,
    };
    if let Some(rate) = &rate {
        if rate.throttled {
            let mut resp = error(429, "Too many requests");
            rate_headers(&mut resp, rate.limit, 0, rate.reset_ms);
            return resp;
        }
    }

    let ctx = Ctx {
        req: &req,
        params: &params,
        shared,
        token,
    };
    let mut resp = match route {
        Some(Route::InstanceV2) => api::get_instance_v2(&ctx),
        Some(Route::InstanceV1) => api::get_instance_v1(&ctx),
        Some(Route::WellKnown) => oauth::well_known(&ctx),
        Some(Route::CreateApp) => apps::create_app(&ctx),
        Some(Route::VerifyApp) => apps::verify_app(&ctx),
        Some(Route::Authorize) => oauth::authorize(&ctx),
        Some(Route::AuthorizeNative) => oauth::authorize_native(&ctx),
        Some(Route::Token) => oauth::token(&ctx),
        Some(Route::Revoke) => oauth::revoke(&ctx),
        Some(Route::VerifyCredentials) => api::verify_credentials(&ctx),
        Some(Route::PostStatus) => api::post_status(&ctx),
        None => not_found(),
    };
    if let Some(rate) = rate {
        rate_headers(&mut resp, rate.limit, rate.remaining, rate.reset_ms);
    }
    resp
}

/// Why Doorkeeper refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// 401: no token, or an unknown or revoked one.
    InvalidToken,
    /// 403: none of the required scopes.
    Scope,
    /// 422: an app token where a user is needed.
    NotUser,
}

impl Denied {
    /// Mastodon's answer.
    pub fn response(self) -> HttpResponse {
        match self {
            Denied::InvalidToken => {
                let mut resp = error(401, "The access token is invalid");
                set(
                    &mut resp,
                    "www-authenticate",
                    "Bearer realm=\"Doorkeeper\", error=\"invalid_token\", error_description=\"The access token is invalid\"",
                );
                resp
            }
            Denied::Scope => error(403, "This action is outside the authorized scopes"),
            Denied::NotUser => error(422, "This method requires an authenticated user"),
        }
    }
}

/// Doorkeeper's check: a valid token (401), one of `scopes` (403), and, when `user`, a token
/// that belongs to a user (422).
pub fn authorize(ctx: &Ctx<'_>, scopes: &[&str], user: bool) -> Result<Arc<Token>, Denied> {
    let token = ctx.token.clone().ok_or(Denied::InvalidToken)?;
    if !scopes.is_empty() && !token.has_any(scopes) {
        return Err(Denied::Scope);
    }
    if user && !token.user {
        return Err(Denied::NotUser);
    }
    Ok(token)
}
