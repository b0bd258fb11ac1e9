//! OAuth 2's browser side (Doorkeeper as Mastodon configures it, with each profile's
//! differences): `GET /oauth/authorize` (approved at once as the stand-in's account, or
//! denied when a test says so) and `GET /.well-known/oauth-authorization-server`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::header;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::apps::{all_scopes, covers, known_scope, split_scopes};
use crate::http::{self, Ctx, HTML};
use crate::params::text;
use crate::profiles::Profile;
use crate::shapes;
use crate::state::{lock, random_secret, App, Grant, Shared};
use crate::text::escape_into;

/// The out-of-band redirect URI: the code is shown on a page instead.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
pub const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
pub const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
pub const INVALID_SCOPE: &str = "The requested scope is invalid, unknown, or malformed.";
pub const UNSUPPORTED_GRANT: &str =
    "The authorization grant type is not supported by the authorization server.";

/// The discovery document (RFC 8414) Mastodon 4.3 serves.
pub fn well_known_doc(shared: &Shared) -> Value {
    let base = &shared.base;
    json!({
        "issuer": format!("{base}/"),
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "app_registration_endpoint": format!("{base}/api/v1/apps"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "scopes_supported": all_scopes(shared),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })
}

/// `GET /.well-known/oauth-authorization-server` (404 on servers before 4.3).
pub fn well_known(ctx: &Ctx<'_>) -> HttpResponse {
    if !ctx.shared.opts.pkce {
        return match ctx.shared.opts.profile {
            Profile::Mastodon => http::not_found(),
            profile => shapes::not_found(profile),
        };
    }
    http::json(200, ctx.shared.well_known.clone())
}

/// Doorkeeper's error page (400).
fn error_page(code: &str, description: &str) -> HttpResponse {
    let mut body = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>An error has occurred - Mastodon</title>\n</head>\n<body class=\"error\">\n\
         <div class=\"dialog\"><div class=\"dialog__message\">\n<h1>An error has occurred</h1>\n<p>",
    );
    escape_into(&mut body, description);
    body.push_str("</p>\n<p><code>");
    escape_into(&mut body, code);
    body.push_str("</code></p>\n</div></div>\n</body>\n</html>\n");
    HttpResponse::BadRequest()
        .insert_header((header::CONTENT_TYPE, HTML))
        .body(body)
}

fn missing(param: &str) -> HttpResponse {
    error_page(
        "invalid_request",
        &format!("The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed. Missing required parameter: {param}."),
    )
}

/// The page Mastodon shows for the out-of-band redirect URI.
fn code_page(code: &str) -> HttpResponse {
    let mut body = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Authorization code - Mastodon</title>\n</head>\n<body class=\"modal-layout\">\n\
         <div class=\"form-container\">\n<div class=\"form-footer\">\
         <p>Copy this authorization code and paste it to the application.</p>\n\
         <input class=\"oauth-code\" readonly type=\"text\" value=\"",
    );
    escape_into(&mut body, code);
    body.push_str("\">\n</div>\n</div>\n</body>\n</html>\n");
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HTML))
        .body(body)
}

/// The scopes asked for, checked against the server and the app (`None`: invalid). Mitra
/// grants `read write follow` whatever was asked.
pub fn requested_scopes(shared: &Shared, app: &App, scope: Option<String>) -> Option<Vec<String>> {
    if shared.opts.profile == Profile::Mitra {
        return Some(vec!["read".into(), "write".into(), "follow".into()]);
    }
    let scopes = match scope.filter(|s| !s.trim().is_empty()) {
        Some(s) => split_scopes(&s),
        // Doorkeeper's default: the server default (`read`) when the app has it.
        None => vec!["read".to_owned()],
    };
    scopes
        .iter()
        .all(|s| known_scope(shared, s) && covers(&app.scopes, s))
        .then_some(scopes)
}

/// `GET /oauth/authorize`: approves at once as the stand-in's account.
pub fn authorize(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let p = ctx.params;
    let Some(client_id) = text(p, "client_id").filter(|s| !s.is_empty()) else {
        return missing("client_id");
    };
    let Some(app) = shared.app_by_client(&client_id) else {
        return error_page("invalid_client", INVALID_CLIENT);
    };
    let Some(redirect_uri) = text(p, "redirect_uri").filter(|s| !s.is_empty()) else {
        return missing("redirect_uri");
    };
    if !app.redirect_uris.contains(&redirect_uri) {
        return error_page(
            "invalid_redirect_uri",
            "The requested redirect uri is malformed or doesn't match client redirect URI.",
        );
    }
    match text(p, "response_type").as_deref() {
        Some("code") => {}
        None | Some("") => return missing("response_type"),
        Some(_) => {
            return error_page(
                "unsupported_response_type",
                "The authorization server does not support this response type.",
            )
        }
    }
    let Some(scopes) = requested_scopes(shared, &app, text(p, "scope")) else {
        return error_page("invalid_scope", INVALID_SCOPE);
    };
    let mut challenge = None;
    if shared.opts.pkce {
        challenge = text(p, "code_challenge").filter(|c| !c.is_empty());
        if challenge.is_some() && text(p, "code_challenge_method").as_deref() != Some("S256") {
            return error_page(
                "invalid_code_challenge_method",
                "The code_challenge_method must be S256.",
            );
        }
    }

    let profile = shared.opts.profile;
    if shared.deny.load(Ordering::Relaxed) && matches!(profile, Profile::Mastodon | Profile::Hollo)
    {
        return denied(
            &redirect_uri,
            text(p, "state").filter(|_| profile == Profile::Mastodon),
        );
    }
    let code = random_secret();
    {
        let mut grants = lock(&shared.grants);
        if grants.len() >= 1024 {
            let now = Instant::now();
            grants.retain(|_, g| g.expires > now);
        }
        grants.insert(
            code.clone(),
            Grant {
                app,
                redirect_uri: redirect_uri.clone(),
                scopes,
                challenge,
                expires: Instant::now() + shared.opts.code_lifetime,
            },
        );
    }
    if redirect_uri == OOB {
        return code_page(&code);
    }
    let mut location = redirect_uri;
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str("code=");
    location.push_str(&code);
    if let Some(state) = text(p, "state").filter(|s| !s.is_empty()) {
        location.push_str("&state=");
        location.extend(form_urlencoded::byte_serialize(state.as_bytes()));
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CONTENT_TYPE, HTML))
        .finish()
}

/// The redirect after the person clicked deny: `error`, and `state` where the server sends
/// it back (Hollo does not).
fn denied(redirect_uri: &str, state: Option<String>) -> HttpResponse {
    let mut location = redirect_uri.to_owned();
    location.push(if location.contains('?') { '&' } else { '?' });
    location.push_str("error=access_denied&error_description=");
    location.extend(form_urlencoded::byte_serialize(
        b"The resource owner or authorization server denied the request.",
    ));
    if let Some(state) = state.filter(|s| !s.is_empty()) {
        location.push_str("&state=");
        location.extend(form_urlencoded::byte_serialize(state.as_bytes()));
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `GET /oauth/authorize/native?code=...`: the out-of-band page on its own.
pub fn authorize_native(ctx: &Ctx<'_>) -> HttpResponse {
    match text(ctx.params, "code") {
        Some(code) => code_page(&code),
        None => http::not_found(),
    }
}
