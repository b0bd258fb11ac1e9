//! How each profile words a refusal: JSON `{"error"}` (Mastodon, GoToSocial, Hollo),
//! `{"error","error_description"}` (Mitra), HTML pages (Takahē), empty bodies or an `<h1>`
//! (snac), text/plain (Hollo's 404, Mitra's 429). A refusal is not always a 4xx JSON.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::http::{self, HTML};
use crate::profiles::Profile;

pub const TEXT: &str = "text/plain; charset=utf-8";

fn code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A body with a content type.
pub fn typed(status: u16, content_type: &'static str, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(code(status))
        .insert_header((header::CONTENT_TYPE, content_type))
        .body(body.into())
}

/// A status with no body at all.
pub fn empty(status: u16) -> HttpResponse {
    HttpResponse::build(code(status)).finish()
}

/// Takahē's (Django's) HTML error page.
pub fn takahe_page(status: u16) -> HttpResponse {
    let title = match status {
        404 => "Not Found",
        500 => "Server Error (500)",
        _ => "Error",
    };
    typed(
        status,
        HTML,
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head><title>{title}</title></head>\n\
             <body><h1>{title}</h1><p>The requested resource was not found on this server.</p></body>\n</html>\n"
        ),
    )
}

/// snac's one error page.
pub fn snac_400() -> HttpResponse {
    typed(400, HTML, "<h1>400 Bad Request (snac/2.94)</h1>")
}

/// Mitra's `{"error","error_description"}` with the message in both.
pub fn mitra(status: u16, message: &str) -> HttpResponse {
    http::json_value(
        status,
        &json!({"error": message, "error_description": message}),
    )
}

/// A path the server does not serve.
pub fn not_found(profile: Profile) -> HttpResponse {
    match profile {
        Profile::Mastodon => http::not_found(),
        Profile::GoToSocial => http::error(404, "Not Found"),
        Profile::Takahe => takahe_page(404),
        Profile::Hollo => typed(404, TEXT, "404 Not Found"),
        Profile::Snac | Profile::Mitra => empty(404),
    }
}

/// Content refused (too long, blank, bad poll): the status each server uses, its body.
pub fn refused(profile: Profile, message: &str) -> HttpResponse {
    match profile {
        Profile::Mastodon => http::error(422, &format!("Validation failed: {message}")),
        Profile::GoToSocial => http::error(400, &format!("Bad Request: {message}")),
        Profile::Takahe => http::error(400, message),
        Profile::Hollo => http::json_value(
            422,
            &json!({
                "error": "invalid_request",
                "zod_error": {
                    "name": "ZodError",
                    "issues": [{"code": "custom", "message": message, "path": ["status"]}],
                },
            }),
        ),
        Profile::Snac => snac_400(),
        Profile::Mitra => mitra(400, message),
    }
}

/// An unknown, revoked or missing bearer token; `posting` tells snac's two answers apart
/// (422 on verify_credentials, 401 on posting); `header` whether one was sent (Mitra).
pub fn invalid_token(profile: Profile, posting: bool, header: bool) -> HttpResponse {
    match profile {
        Profile::Mastodon => {
            let mut resp = http::error(401, "The access token is invalid");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"Doorkeeper\", error=\"invalid_token\", error_description=\"The access token is invalid\"",
                ),
            );
            resp
        }
        Profile::GoToSocial => http::error(401, "Unauthorized: token not supplied"),
        Profile::Takahe => typed(400, HTML, "Invalid Bearer token"),
        Profile::Hollo => http::error(401, "unauthorized"),
        Profile::Snac => empty(if posting { 401 } else { 422 }),
        Profile::Mitra if header => mitra(401, "access token is invalid"),
        Profile::Mitra => mitra(401, "auth header is not present"),
    }
}

/// A token without the scope a route needs.
pub fn out_of_scope(profile: Profile) -> HttpResponse {
    match profile {
        Profile::Takahe => http::error(403, "out_of_scope_for_token"),
        _ => http::error(403, "This action is outside the authorized scopes"),
    }
}

/// A server-side failure caused by the request (Hollo's reply to a missing status).
pub fn internal_error(profile: Profile) -> HttpResponse {
    match profile {
        Profile::Takahe => takahe_page(500),
        Profile::Hollo | Profile::Snac | Profile::Mitra => empty(500),
        _ => http::error(500, "Internal server error"),
    }
}
