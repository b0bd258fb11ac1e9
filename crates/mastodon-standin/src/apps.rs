//! App registration (`POST /api/v1/apps`, `GET /api/v1/apps/verify_credentials`) and the
//! scopes Mastodon knows.

use std::sync::Arc;

use actix_web::HttpResponse;
use serde_json::Value;

use crate::entities::{app_json, credential_app_json, VAPID_KEY};
use crate::http::{self, authorize as check_token, Ctx};
use crate::oauth::OOB;
use crate::params::text;
use crate::profiles::Profile;
use crate::state::{lock, random_secret, App, Shared};

const READ: [&str; 11] = [
    "accounts",
    "blocks",
    "bookmarks",
    "favourites",
    "filters",
    "follows",
    "lists",
    "mutes",
    "notifications",
    "search",
    "statuses",
];
const WRITE: [&str; 13] = [
    "accounts",
    "blocks",
    "bookmarks",
    "conversations",
    "favourites",
    "filters",
    "follows",
    "lists",
    "media",
    "mutes",
    "notifications",
    "reports",
    "statuses",
];
const ADMIN: [&str; 7] = [
    "accounts",
    "reports",
    "domain_allows",
    "domain_blocks",
    "ip_blocks",
    "email_domain_blocks",
    "canonical_email_blocks",
];

/// Every scope the server knows, in Mastodon's order.
pub fn all_scopes(shared: &Shared) -> Vec<String> {
    let mut out: Vec<String> = vec!["read".into(), "write".into(), "push".into()];
    if shared.has_profile_scope {
        out.push("profile".into());
    }
    out.push("follow".into());
    out.extend(READ.iter().map(|s| format!("read:{s}")));
    out.extend(WRITE.iter().map(|s| format!("write:{s}")));
    out.push("admin:read".into());
    out.push("admin:write".into());
    out.extend(ADMIN.iter().map(|s| format!("admin:read:{s}")));
    out.extend(ADMIN.iter().map(|s| format!("admin:write:{s}")));
    out
}

/// Whether the server knows `scope` (`profile` only from 4.3).
pub fn known_scope(shared: &Shared, scope: &str) -> bool {
    match scope {
        "read" | "write" | "push" | "follow" | "admin:read" | "admin:write" => true,
        "profile" => shared.has_profile_scope,
        _ => {
            if let Some(s) = scope.strip_prefix("admin:read:") {
                ADMIN.contains(&s)
            } else if let Some(s) = scope.strip_prefix("admin:write:") {
                ADMIN.contains(&s)
            } else if let Some(s) = scope.strip_prefix("read:") {
                READ.contains(&s)
            } else if let Some(s) = scope.strip_prefix("write:") {
                WRITE.contains(&s)
            } else {
                false
            }
        }
    }
}

/// Whether `granted` covers `wanted` (`read` covers every `read:*`, and so on).
pub fn covers(granted: &[String], wanted: &str) -> bool {
    granted.iter().any(|g| {
        g == wanted
            || wanted
                .strip_prefix(g.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// Space-separated scopes, deduplicated.
pub fn split_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in s.split_whitespace() {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Doorkeeper's redirect URI check (absolute, no fragment; or the out-of-band URN).
fn valid_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri == OOB {
        return Ok(());
    }
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || uri.chars().any(char::is_whitespace) {
        return Err("Redirect URI must be an absolute URI.");
    }
    if uri.contains('#') {
        return Err("Redirect URI cannot contain a fragment.");
    }
    Ok(())
}

/// `POST /api/v1/apps`.
pub fn create_app(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let p = ctx.params;
    let mut errors: Vec<&str> = Vec::new();

    let name = text(p, "client_name").unwrap_or_default();
    if name.trim().is_empty() {
        errors.push("Application name can't be blank");
    } else if name.chars().count() > 60 {
        errors.push("Application name is too long (maximum is 60 characters)");
    }
    let redirect_uris: Vec<String> = match p.get("redirect_uris") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if redirect_uris.is_empty() {
        errors.push("Redirect URI can't be blank");
    } else if let Some(e) = redirect_uris
        .iter()
        .find_map(|u| valid_redirect_uri(u).err())
    {
        errors.push(e);
    }
    // The trap: only a string counts; an array (JSON or `scopes[]=`) is dropped and the app
    // gets the default `read`.
    let mut scopes = match p.get("scopes") {
        Some(Value::String(s)) if !s.trim().is_empty() => split_scopes(s),
        _ => vec!["read".to_owned()],
    };
    // Mitra keeps only the coarse scopes it knows and refuses nothing.
    if shared.opts.profile == Profile::Mitra {
        scopes.retain(|s| matches!(s.as_str(), "read" | "write" | "profile"));
    }
    if scopes.iter().any(|s| !known_scope(shared, s)) {
        errors.push("Scopes doesn't match configured on the server.");
    }
    if !errors.is_empty() {
        return http::error(422, &format!("Validation failed: {}", errors.join(", ")));
    }

    let app = Arc::new(App {
        id: shared.next_app_id().to_string(),
        name: name.trim().to_owned(),
        website: text(p, "website").filter(|w| !w.trim().is_empty()),
        scopes,
        redirect_uris,
        client_id: random_secret(),
        client_secret: random_secret(),
        vapid_key: VAPID_KEY,
    });
    let body = credential_app_json(&app);
    shared
        .apps_by_client
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(app.client_id.clone(), Arc::clone(&app));
    lock(&shared.apps).push(body.clone());
    http::json_value(200, &body)
}

/// `GET /api/v1/apps/verify_credentials`: any valid token.
pub fn verify_app(ctx: &Ctx<'_>) -> HttpResponse {
    match check_token(ctx, &[], false) {
        Ok(token) => http::json_value(200, &app_json(&token.app)),
        Err(denied) => denied.response(ctx),
    }
}
