//! The single actix handler: routes a request, counts and records it, reads its params the
//! way the profile does, applies injected faults and rate limits, and hands it to the
//! endpoint.

use std::sync::Arc;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::profiles::Profile;
use crate::state::{normalize_route, Echo, Fault, Recorded, Route, Shared, Token};
use crate::statuses::{self, Prepared};
use crate::{
    api, apps, faults, feeds, limits, media, nodeinfo, oauth, params, shapes, social, time,
    timeline, token,
};

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

pub fn rate_headers(resp: &mut HttpResponse, limit: u64, remaining: u64, reset_ms: u64) {
    set(resp, "x-ratelimit-limit", &limit.to_string());
    set(resp, "x-ratelimit-remaining", &remaining.to_string());
    set(resp, "x-ratelimit-reset", &time::iso_micros(reset_ms));
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
pub async fn dispatch(req: HttpRequest, body: Bytes, data: web::Data<Shared>) -> HttpResponse {
    let shared: &Shared = &data;
    let profile = shared.opts.profile;
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
        Ok(v) if profile == Profile::Snac && route == Some(Route::PostStatus) => {
            (Arc::new(params::scalars_only(v, content_type)), false)
        }
        Ok(v) => (Arc::new(v), false),
        // Mitra reads a body that is not JSON as a form.
        Err(_) if profile == Profile::Mitra => {
            (Arc::new(params::as_form(req.query_string(), &body)), false)
        }
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

    let after = match shared.take_fault(key) {
        Some(Fault::Fail(status)) => return faults::fault_response(shared, status),
        Some(Fault::Echo(echo)) if echo != Echo::InAnswer => {
            return faults::echo_response(echo, &faults::echo_text(shared, &req, &body))
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        other => other,
    };
    if unparsable {
        return error(400, "Error occurred while parsing request parameters");
    }
    if let Some(resp) = limits::per_ip(shared, &req, route) {
        return resp;
    }

    let token = bearer(&req).and_then(|t| shared.token(&t));
    let rate = match &token {
        Some(t) if profile == Profile::Mastodon && req.path().starts_with("/api/") => {
            Some(shared.count_rate(t))
        }
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
    if let (Some(Fault::StallThenCreate(d)), None) =
        (after, route.filter(|r| *r == Route::PostStatus))
    {
        tokio::time::sleep(d).await;
    }
    let mut resp = match route {
        Some(Route::InstanceV2) => api::get_instance_v2(&ctx),
        Some(Route::InstanceV1) => api::get_instance_v1(&ctx),
        Some(Route::WellKnown) => oauth::well_known(&ctx),
        Some(Route::CreateApp) => apps::create_app(&ctx),
        Some(Route::VerifyApp) => apps::verify_app(&ctx),
        Some(Route::Authorize) => oauth::authorize(&ctx),
        Some(Route::AuthorizeNative) => oauth::authorize_native(&ctx),
        Some(Route::Token) => token::token(&ctx),
        Some(Route::Revoke) => token::revoke(&ctx),
        Some(Route::VerifyCredentials) => api::verify_credentials(&ctx),
        Some(Route::PostStatus) => match statuses::prepare(&ctx) {
            Prepared::Answer(resp) => resp,
            Prepared::Create(draft) => match after {
                Some(Fault::StallThenCreate(d)) => {
                    faults::stall_then_create(data.clone().into_inner(), draft, d).await
                }
                _ => json(200, draft.create(shared)),
            },
        },
        Some(Route::AccountStatuses) => feeds::account_statuses(&ctx),
        Some(Route::ScheduledStatuses) => timeline::scheduled_statuses(&ctx),
        // A server without the v2 route (Mastodon before 3.1.3, some forks) answers it 404.
        Some(Route::UploadMedia) if !shared.opts.media_v2 => shapes::not_found(shared.opts.profile),
        Some(Route::UploadMedia) => media::upload(&ctx, &body),
        // v1 answers 200 with the attachment whatever its processing, as Mastodon's does.
        Some(Route::UploadMediaV1) => media::upload_v1(&ctx, &body),
        Some(Route::GetMedia) => media::show_or_update(&ctx, false),
        Some(Route::UpdateMedia) => media::show_or_update(&ctx, true),
        Some(Route::GetStatus) => social::show(&ctx),
        Some(Route::EditStatus) => social::edit(&ctx),
        Some(Route::DeleteStatus) => social::delete(&ctx),
        Some(Route::StatusContext) => social::context(&ctx),
        Some(
            r @ (Route::Favourite
            | Route::Unfavourite
            | Route::Reblog
            | Route::Unreblog
            | Route::Bookmark
            | Route::Unbookmark
            | Route::Pin
            | Route::Unpin),
        ) => social::action(&ctx, r),
        Some(r @ (Route::GetScheduled | Route::UpdateScheduled | Route::DeleteScheduled)) => {
            social::scheduled(&ctx, r)
        }
        Some(Route::GetPoll) => social::poll(&ctx),
        Some(Route::Vote) => social::vote(&ctx),
        Some(
            r @ (Route::HomeTimeline
            | Route::PublicTimeline
            | Route::TagTimeline
            | Route::ListTimeline),
        ) => feeds::timeline(&ctx, r),
        Some(r @ (Route::Bookmarks | Route::Favourites)) => feeds::marked(&ctx, r),
        Some(Route::Notifications) => feeds::notifications(&ctx),
        Some(
            r @ (Route::GetNotification | Route::DismissNotification | Route::ClearNotifications),
        ) => feeds::notification(&ctx, r),
        Some(Route::Search) => feeds::search(&ctx),
        Some(Route::LookupAccount | Route::GetAccount) => feeds::account(&ctx),
        Some(Route::Relationships) => feeds::relationships(&ctx),
        Some(r @ (Route::Followers | Route::Following)) => feeds::follows(&ctx, r),
        Some(r @ (Route::Follow | Route::Unfollow)) => feeds::follow(&ctx, r),
        Some(
            r @ (Route::Lists
            | Route::CreateList
            | Route::GetList
            | Route::UpdateList
            | Route::DeleteList),
        ) => feeds::lists(&ctx, r),
        Some(r @ (Route::ListAccounts | Route::AddListAccounts | Route::RemoveListAccounts)) => {
            feeds::list_accounts(&ctx, r)
        }
        Some(Route::NodeInfoLinks) => nodeinfo::links(&ctx),
        Some(
            r @ (Route::NodeInfo20
            | Route::NodeInfo21
            | Route::SnacNodeInfo20
            | Route::SnacNodeInfo21),
        ) => nodeinfo::document(&ctx, r),
        None => shapes::not_found(profile),
    };
    match after {
        Some(Fault::CreateThenDrop) => {
            faults::drop_connection(&req);
            return resp;
        }
        Some(Fault::CreateThenFail(status)) => return faults::fault_response(shared, status),
        Some(Fault::Echo(Echo::InAnswer)) => {
            resp = faults::echo_in_answer(resp, &faults::echo_text(shared, &req, &body)).await;
        }
        _ => {}
    }
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
    /// The profile's answer (snac's differs between posting and reading, Mitra's between a
    /// missing and a bad header).
    pub fn response(self, ctx: &Ctx<'_>) -> HttpResponse {
        let profile = ctx.shared.opts.profile;
        match self {
            Denied::InvalidToken => shapes::invalid_token(
                profile,
                ctx.req.method() == actix_web::http::Method::POST,
                ctx.req.headers().contains_key(header::AUTHORIZATION),
            ),
            Denied::Scope => shapes::out_of_scope(profile),
            Denied::NotUser => error(422, "This method requires an authenticated user"),
        }
    }
}

/// `authorize_if_got_token!`: no token is fine (`None`); a token must be valid and carry
/// one of `scopes`.
pub fn authorize_if_token(ctx: &Ctx<'_>, scopes: &[&str]) -> Result<Option<Arc<Token>>, Denied> {
    if bearer(ctx.req).is_none() {
        return Ok(None);
    }
    authorize(ctx, scopes, false).map(Some)
}

/// Doorkeeper's check: a valid token (401), one of `scopes` (403), and, when `user`, a token
/// that belongs to a user (422). Scopes the profile does not honour grant nothing; Mitra's
/// tokens are not scope-limited.
pub fn authorize(ctx: &Ctx<'_>, scopes: &[&str], user: bool) -> Result<Arc<Token>, Denied> {
    let token = ctx.token.clone().ok_or(Denied::InvalidToken)?;
    let profile = ctx.shared.opts.profile;
    if !scopes.is_empty() && profile.enforces_scopes() {
        let wanted: Vec<&str> = scopes
            .iter()
            .copied()
            .filter(|s| profile.honours_scope(s))
            .collect();
        if !token.has_any(&wanted) {
            return Err(Denied::Scope);
        }
    }
    if user && !token.user {
        return Err(Denied::NotUser);
    }
    Ok(token)
}
