//! OAuth 2's machine side: `POST /oauth/token` and `POST /oauth/revoke`, as each profile
//! answers them (GoToSocial's SQL error for a bad code, Takahē's 500 page and fixed app
//! token, snac's unchecked codes and app-deleting revocation, Mitra's bearer-authenticated
//! revocation, ...).

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::HttpResponse;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::apps::split_scopes;
use crate::http::{self, bearer, Ctx};
use crate::oauth::{
    requested_scopes, INVALID_CLIENT, INVALID_GRANT, INVALID_SCOPE, UNSUPPORTED_GRANT,
};
use crate::params::text;
use crate::profiles::Profile;
use crate::shapes;
use crate::state::{lock, random_secret, App};
use crate::time;

/// Takahē's one token for every app's `client_credentials`.
const TAKAHE_APP_TOKEN: &str = "__app__";

pub fn oauth_error(status: u16, code: &str, description: &str) -> HttpResponse {
    let mut resp = http::json_value(
        status,
        &json!({ "error": code, "error_description": description }),
    );
    no_store(&mut resp);
    resp
}

pub fn no_store(resp: &mut HttpResponse) {
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

/// A code that is unknown, used, expired or does not match.
fn bad_code(profile: Profile) -> HttpResponse {
    match profile {
        Profile::GoToSocial => http::error(400, "sql: no rows in result set"),
        Profile::Takahe => shapes::takahe_page(500),
        Profile::Mitra => http::error(404, "authorization not found"),
        _ => oauth_error(400, "invalid_grant", INVALID_GRANT),
    }
}

/// The user scopes of an `authorization_code` exchange (`Err`: the refusal).
fn code_scopes(ctx: &Ctx<'_>, app: &Arc<App>) -> Result<Vec<String>, Box<HttpResponse>> {
    let shared = ctx.shared;
    let profile = shared.opts.profile;
    let p = ctx.params;
    // The code is used up by this request whatever happens next.
    let grant = text(p, "code").and_then(|c| lock(&shared.grants).remove(&c));
    let ok = grant.as_ref().is_some_and(|grant| {
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
        ok
    });
    match grant {
        Some(grant) if ok => Ok(grant.scopes),
        // snac does not check codes at all: any code makes a user token.
        _ if profile == Profile::Snac => Ok(text(p, "scope")
            .map(|s| split_scopes(&s))
            .unwrap_or_else(|| app.scopes.clone())),
        _ => Err(Box::new(bad_code(profile))),
    }
}

/// `POST /oauth/token`.
pub fn token(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let profile = shared.opts.profile;
    let p = ctx.params;
    let grant_type = text(p, "grant_type").unwrap_or_default();
    match grant_type.as_str() {
        "client_credentials" if profile == Profile::Mitra => {
            return shapes::mitra(400, "unsupported grant type")
        }
        "authorization_code" | "client_credentials" => {}
        _ if profile == Profile::Mitra => return shapes::mitra(400, "unsupported grant type"),
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
    let code = grant_type == "authorization_code";

    let (user, scopes) = if code {
        match code_scopes(ctx, &app) {
            Ok(scopes) => (true, scopes),
            Err(resp) => return *resp,
        }
    } else {
        let has_redirect = text(p, "redirect_uri").is_some_and(|r| !r.is_empty());
        match profile {
            Profile::GoToSocial if !has_redirect => {
                return oauth_error(400, "invalid_request", "redirect_uri is required")
            }
            Profile::Snac if !has_redirect => return shapes::snac_400(),
            _ => {}
        }
        match requested_scopes(shared, &app, text(p, "scope")) {
            Some(scopes) => (false, scopes),
            None => return oauth_error(400, "invalid_scope", INVALID_SCOPE),
        }
    };

    let access_token = match profile {
        Profile::Takahe if !user => TAKAHE_APP_TOKEN.to_owned(),
        _ => random_secret(),
    };
    let scope = match profile {
        Profile::Mitra => "read write follow".to_owned(),
        Profile::Snac if text(p, "scope").is_none() => String::new(),
        _ => scopes.join(" "),
    };
    shared.insert_token(access_token.clone(), app, user, scopes);
    let created_at = match profile {
        Profile::Hollo if code => time::now_ms(),
        _ => time::now_secs(),
    };
    let mut answer = Map::new();
    answer.insert("access_token".into(), access_token.into());
    answer.insert("token_type".into(), "Bearer".into());
    answer.insert("scope".into(), scope.into());
    answer.insert("created_at".into(), created_at.into());
    match profile {
        Profile::GoToSocial if !user => {
            answer.insert("expires_in".into(), 7200.into());
        }
        Profile::Mitra => {
            answer.insert("expires_in".into(), 2_592_000.into());
        }
        _ => {}
    }
    let mut resp = http::json_value(200, &Value::Object(answer));
    no_store(&mut resp);
    resp
}

/// `POST /oauth/revoke`.
pub fn revoke(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let profile = shared.opts.profile;
    let named = text(ctx.params, "token").filter(|t| !t.is_empty());
    let ok = || http::json(200, "{}");
    match profile {
        // Wrong client credentials or not: the token is revoked.
        Profile::GoToSocial => {
            if let Some(t) = &named {
                shared.remove_token(t);
            }
            return ok();
        }
        // The token is the credential, as a bearer; client credentials alone are refused.
        Profile::Mitra => {
            let Some(bearer) = bearer(ctx.req) else {
                let mut resp = shapes::empty(401);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return resp;
            };
            shared.remove_token(named.as_deref().unwrap_or(&bearer));
            return ok();
        }
        _ => {}
    }
    let unauthorized = || {
        oauth_error(
            403,
            "unauthorized_client",
            "You are not authorized to revoke this token",
        )
    };
    let Some(app) = client(ctx) else {
        return match profile {
            Profile::Snac => shapes::empty(403),
            _ => unauthorized(),
        };
    };
    if let Some(token) = &named {
        match shared.token(token) {
            Some(t) if t.app.client_id != app.client_id => return unauthorized(),
            Some(_) if profile == Profile::Snac => shared.remove_app(&app.client_id),
            Some(_) => {
                shared.remove_token(token);
            }
            None if profile == Profile::Snac => return shapes::empty(403),
            None => {}
        }
    }
    match profile {
        Profile::Takahe => shapes::empty(200),
        _ => ok(),
    }
}
