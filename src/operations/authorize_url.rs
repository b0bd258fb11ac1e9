//! `authorizeUrl`: the URL a person opens to let the app act for their account.
//!
//! Every call makes a fresh `state` and, where the server takes PKCE, a fresh S256 pair. The verifier
//! stays in the store, keyed by the state, for ten minutes (as long as Mastodon's codes live), and
//! `getToken` uses it once. A caller's own `state` is kept as a suffix after a dot, so a flow that
//! correlates by its own state still finds it in the redirect.

use super::params::params;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::context::Core;
use super::create_app::normalize_scopes;
use crate::error::{Error, Result};
use crate::mastodon::unix_now;
use crate::store::PendingAuthorization;

/// Mastodon's authorization codes live ten minutes; a pending authorization lives as long.
pub const PENDING_TTL_S: i64 = 600;

params! {
    pub struct AuthorizeUrlParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The scopes to ask for, separated by spaces (the app's by default)
        pub scope: Option<String>,
        /// One of the app's redirect URIs (the first by default)
        pub redirect_uri: Option<String>,
        /// The state to carry through the redirect (a fresh one by default)
        pub state: Option<String>,
        /// Ask the person to log in even when a session exists
        pub force_login: Option<bool>,
        /// The language of the authorization page (ISO 639-1)
        pub lang: Option<String>,
    }
}

pub async fn authorize_url(
    core: &Core,
    p: AuthorizeUrlParams,
    _call: &super::CallContext,
) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    let app = core.require_app(&conn).await?;

    let registered = app
        .redirect_uris
        .clone()
        .unwrap_or_else(|| vec![conn.settings.redirect_uri.clone()]);
    let redirect_uri = p
        .redirect_uri
        .unwrap_or_else(|| registered.first().cloned().unwrap_or_default());
    if app.redirect_uris.is_some() && !registered.contains(&redirect_uri) {
        return Err(Error::validation(format!(
            "redirect_uri {redirect_uri:?} is not one the app registered ({}); run createApp with it first",
            registered.join(", ")
        )));
    }
    let app_scopes = app
        .scopes
        .clone()
        .unwrap_or_else(|| normalize_scopes(&conn.settings.scopes));
    let scope = normalize_scopes(p.scope.as_deref().unwrap_or(&app_scopes));
    if let Some(missing) = scope.split(' ').find(|s| !covers(&app_scopes, s)) {
        return Err(Error::validation(format!(
            "scope {missing:?} is not among the app's scopes ({app_scopes})"
        )));
    }
    if let Some(lang) = &p.lang {
        if lang.is_empty()
            || lang.len() > 16
            || !lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid(
                "lang is a language code such as en or pt-BR",
            ));
        }
    }

    let mut state = random_token(32);
    if let Some(own) = &p.state {
        if own.len() > 128
            || !own
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(Error::invalid(
                "state is at most 128 characters of A-Z, a-z, 0-9 and -._~",
            ));
        }
        state = format!("{state}.{own}");
    }

    let info = core.instance_info(&conn, false).await?;
    let code_verifier = info.pkce.then(|| random_token(48));

    let mut url =
        url::Url::parse(&conn.client.url("/oauth/authorize")).map_err(|_| Error::internal())?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", &state);
        if let Some(verifier) = &code_verifier {
            query
                .append_pair("code_challenge", &challenge(verifier))
                .append_pair("code_challenge_method", "S256");
        }
        if p.force_login == Some(true) {
            query.append_pair("force_login", "true");
        }
        if let Some(lang) = &p.lang {
            query.append_pair("lang", lang);
        }
    }

    let now = unix_now();
    // Expired authorizations are of no use to anyone; sweep them while we are writing anyway.
    core.store.purge_expired(now).await?;
    core.store
        .put_pending(&PendingAuthorization {
            state: state.clone(),
            connection: conn.name.clone(),
            instance: conn.instance_url().to_owned(),
            code_verifier: code_verifier.map(Into::into),
            redirect_uri,
            scope,
            expires_at: now + PENDING_TTL_S,
        })
        .await?;
    Ok(json!({ "url": url.to_string(), "state": state }))
}

/// Whether the app's scopes grant `wanted`: equal, or a parent (`read` grants `read:accounts`).
pub fn covers(app_scopes: &str, wanted: &str) -> bool {
    app_scopes.split_whitespace().any(|have| {
        have == wanted
            || wanted
                .strip_prefix(have)
                .is_some_and(|rest| rest.starts_with(':'))
    })
}

/// `bytes` random bytes, base64url without padding: PKCE verifiers (43 to 128 unreserved characters)
/// and states.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The S256 code challenge: base64url(SHA-256(verifier)), no padding.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_s256_challenge_matches_rfc_7636s_example() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn parent_scopes_cover_granular_ones() {
        assert!(covers("read write:statuses", "read:accounts"));
        assert!(covers("read write:statuses", "write:statuses"));
        assert!(!covers("read write:statuses", "write"));
        assert!(!covers("read", "readx"));
    }

    #[test]
    fn verifiers_are_long_enough_and_unreserved() {
        let v = random_token(48);
        assert_eq!(v.len(), 64);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
