//! OAuth 2 (Doorkeeper as Mastodon configures it): `GET /oauth/authorize`, `POST /oauth/token`,
//! `POST /oauth/revoke` and `GET /.well-known/oauth-authorization-server`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::HttpResponse;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::apps::{all_scopes, covers, known_scope, split_scopes};
use crate::http::{self, Ctx, HTML};
use crate::params::text;
use crate::state::{lock, random_secret, App, Grant, Shared};
use crate::text::escape_into;
use crate::time;

/// The out-of-band redirect URI: the code is shown on a page instead.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
/// How long an authorization code lives.
const CODE_TTL: Duration = Duration::from_secs(600);

const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
const INVALID_SCOPE: &str = "The requested scope is invalid, unknown, or malformed.";
const UNSUPPORTED_GRANT: &str =
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
        return http::not_found();
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

/// The scopes asked for, checked against the server and the app (`None`: invalid).
fn requested_scopes(shared: &Shared, app: &App, scope: Option<String>) -> Option<Vec<String>> {
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
                expires: Instant::now() + CODE_TTL,
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

/// `GET /oauth/authorize/native?code=...`: the out-of-band page on its own.
pub fn authorize_native(ctx: &Ctx<'_>) -> HttpResponse {
    match text(ctx.params, "code") {
        Some(code) => code_page(&code),
        None => http::not_found(),
    }
}

fn oauth_error(status: u16, code: &str, description: &str) -> HttpResponse {
    let mut resp = http::json_value(
        status,
        &json!({ "error": code, "error_description": description }),
    );
    no_store(&mut resp);
    resp
}

fn no_store(resp: &mut HttpResponse) {
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
}

/// The client authenticated by HTTP Basic or by `client_id` / `client_secret` in the body.
fn client(ctx: &Ctx<'_>) -> Option<Arc<App>> {
    let basic = ctx
        .req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, creds) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(creds)
        })
        .and_then(|creds| {
            base64::engine::general_purpose::STANDARD
                .decode(creds.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let (id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => (percent_decode(id), percent_decode(secret)),
        None => (
            text(ctx.params, "client_id")?,
            text(ctx.params, "client_secret")?,
        ),
    };
    ctx.shared
        .app_by_client(&id)
        .filter(|app| app.client_secret == secret)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `POST /oauth/token`.
pub fn token(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let p = ctx.params;
    let grant_type = text(p, "grant_type").unwrap_or_default();
    match grant_type.as_str() {
        "authorization_code" | "client_credentials" => {}
        "" => {
            return oauth_error(
                400,
                "invalid_request",
                "The request is missing a required parameter, includes an unsupported parameter value, or is otherwise malformed.",
            )
        }
        _ => return oauth_error(400, "unsupported_grant_type", UNSUPPORTED_GRANT),
    }
    let Some(app) = client(ctx) else {
        return oauth_error(401, "invalid_client", INVALID_CLIENT);
    };

    let (user, scopes) = if grant_type == "authorization_code" {
        // The code is used up by this request whatever happens next.
        let grant = text(p, "code").and_then(|c| lock(&shared.grants).remove(&c));
        let Some(grant) = grant else {
            return oauth_error(400, "invalid_grant", INVALID_GRANT);
        };
        let mut ok = grant.expires > Instant::now()
            && grant.app.client_id == app.client_id
            && text(p, "redirect_uri").as_deref() == Some(grant.redirect_uri.as_str());
        if shared.opts.pkce {
            let verifier = text(p, "code_verifier").filter(|v| !v.is_empty());
            ok &= match (&grant.challenge, verifier) {
                (None, None) => true,
                (Some(challenge), Some(verifier)) => {
                    let digest = Sha256::digest(verifier.as_bytes());
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == *challenge
                }
                // Doorkeeper also refuses a verifier for a code issued without a challenge.
                _ => false,
            };
        }
        if !ok {
            return oauth_error(400, "invalid_grant", INVALID_GRANT);
        }
        (true, grant.scopes)
    } else {
        match requested_scopes(shared, &app, text(p, "scope")) {
            Some(scopes) => (false, scopes),
            None => return oauth_error(400, "invalid_scope", INVALID_SCOPE),
        }
    };

    let access_token = random_secret();
    let scope = scopes.join(" ");
    shared.insert_token(access_token.clone(), app, user, scopes);
    let mut resp = http::json_value(
        200,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "scope": scope,
            "created_at": time::now_secs(),
        }),
    );
    no_store(&mut resp);
    resp
}

/// `POST /oauth/revoke`.
pub fn revoke(ctx: &Ctx<'_>) -> HttpResponse {
    let unauthorized = || {
        oauth_error(
            403,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        )
    };
    let Some(app) = client(ctx) else {
        return unauthorized();
    };
    if let Some(token) = text(ctx.params, "token").filter(|t| !t.is_empty()) {
        match ctx.shared.token(&token) {
            Some(t) if t.app.client_id != app.client_id => return unauthorized(),
            Some(_) => {
                ctx.shared.remove_token(&token);
            }
            None => {}
        }
    }
    http::json(200, "{}")
}
