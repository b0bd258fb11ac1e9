//! `getToken`: exchange an authorization code (or the app's own credentials) for a token, and keep it.
//!
//! The code is single-use at Mastodon, and the pending authorization (state and PKCE verifier) is
//! single-use here: it is taken from the store before the exchange, and a second use is told apart as
//! a replay. Only when Mastodon could not be reached at all is it made usable again, so the caller may
//! retry with the same code. The token itself is never answered unless `expose_secrets` is set.
//! [`exchange_code`] is shared with the OAuth callback.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{AppCredentials, Connection, Core};
use super::create_app::normalize_scopes;
use super::params;
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::{unix_now, Endpoint};
use crate::store::{PendingAuthorization, PendingLookup, TokenKind, TokenRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTokenParams {
    #[serde(default, deserialize_with = "params::opt_string")]
    pub connection: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub grant_type: Option<String>,
    #[serde(default, deserialize_with = "params::opt_secret")]
    pub code: Option<SecretString>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub redirect_uri: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub scope: Option<String>,
}

pub async fn get_token(core: &Core, p: GetTokenParams) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    let grant_type = p.grant_type.as_deref().unwrap_or("authorization_code");
    match grant_type {
        "authorization_code" => {
            let app = core.require_app(&conn).await?;
            authorization_code(core, &conn, &app, p).await
        }
        "client_credentials" => {
            let app = core.require_app(&conn).await?;
            client_credentials(core, &conn, &app, p).await
        }
        "password" => Err(Error::invalid(
            "the password grant is gone from Mastodon (4.4); use authorization_code",
        )),
        other => Err(Error::invalid(format!(
            "grant_type {:?} is not supported; use authorization_code or client_credentials",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

async fn authorization_code(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    p: GetTokenParams,
) -> Result<Value> {
    refuse_pinned_token(conn)?;
    let code = p.code.ok_or_else(|| {
        Error::invalid("getToken needs `code`: the code Mastodon showed (or sent to the redirect URI) after approval")
    })?;
    let pending = find_pending(core, conn, p.state.as_deref()).await?;
    if let (Some(pending), Some(given)) = (&pending, &p.redirect_uri) {
        if *given != pending.redirect_uri {
            return Err(Error::invalid(format!(
                "redirect_uri {given:?} differs from the one authorizeUrl used ({:?})",
                pending.redirect_uri
            )));
        }
    }
    let record = exchange_code(core, conn, app, pending, &code, p.redirect_uri).await?;
    Ok(result(core, conn, "authorization_code", &record))
}

/// A token pinned in configuration would override the one obtained here: say so instead.
pub fn refuse_pinned_token(conn: &Connection) -> Result<()> {
    if conn.settings.access_token.is_some() {
        return Err(Error::invalid(format!(
            "connection {:?} has access_token in its configuration, which would override a new token; remove it first",
            conn.name
        )));
    }
    Ok(())
}

/// Exchanges `code` (with the pending authorization's verifier and redirect URI, when there is one)
/// and stores the user token.
pub async fn exchange_code(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    pending: Option<PendingAuthorization>,
    code: &SecretString,
    redirect_uri: Option<String>,
) -> Result<TokenRecord> {
    let redirect_uri = match (&pending, redirect_uri) {
        (Some(pending), _) => pending.redirect_uri.clone(),
        (None, Some(given)) => given,
        (None, None) => app
            .redirect_uris
            .as_ref()
            .and_then(|uris| uris.first().cloned())
            .unwrap_or_else(|| conn.settings.redirect_uri.clone()),
    };
    let verifier = pending.as_ref().and_then(|p| p.code_verifier.clone());
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code.expose_secret()),
        ("client_id", &app.client_id),
        ("client_secret", app.client_secret.expose_secret()),
        ("redirect_uri", &redirect_uri),
    ];
    if let Some(verifier) = &verifier {
        form.push(("code_verifier", verifier.expose_secret()));
    }
    let answer = match conn.client.post_form(Endpoint::TOKEN, &form).await {
        Ok(answer) => answer,
        Err(e) => {
            if let (Some(pending), ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout) =
                (&pending, e.kind)
            {
                // Mastodon never saw the code, or we never saw its answer: let the caller retry.
                core.store.restore_pending(&pending.state).await?;
            }
            return Err(e);
        }
    };
    let record = token_record(conn, &answer, pending.map(|p| p.scope))?;
    core.store
        .put_token(&conn.name, TokenKind::User, &record)
        .await?;
    conn.token_changed();
    core.metrics.token_valid(&conn.name, true);
    tracing::info!(connection = %conn.name, scope = %record.scope, "user token obtained and stored");
    Ok(record)
}

async fn client_credentials(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    p: GetTokenParams,
) -> Result<Value> {
    let scope = p
        .scope
        .map(|s| normalize_scopes(&s))
        .or_else(|| app.scopes.clone())
        .unwrap_or_else(|| normalize_scopes(&conn.settings.scopes));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        ("scope", scope.as_str()),
    ];
    let answer = conn.client.post_form(Endpoint::TOKEN, &form).await?;
    let record = token_record(conn, &answer, Some(scope))?;
    core.store
        .put_token(&conn.name, TokenKind::App, &record)
        .await?;
    tracing::info!(connection = %conn.name, "app token obtained and stored");
    Ok(result(core, conn, "client_credentials", &record))
}

/// The pending authorization to finish: the one `state` names, or the connection's only one.
async fn find_pending(
    core: &Core,
    conn: &Connection,
    state: Option<&str>,
) -> Result<Option<PendingAuthorization>> {
    let now = unix_now();
    let state = match state {
        Some(state) => state.to_owned(),
        None => {
            let mut states = core.store.pending_states(&conn.name, now).await?;
            match states.len() {
                // No authorization began here (the URL was built elsewhere): exchange without PKCE.
                0 => return Ok(None),
                1 => states.remove(0),
                n => {
                    return Err(Error::invalid(format!(
                        "{n} authorizations are pending for connection {:?}; pass the `state` authorizeUrl answered",
                        conn.name
                    )))
                }
            }
        }
    };
    let pending = match core.store.take_pending(&state).await? {
        PendingLookup::Taken(pending) => pending,
        PendingLookup::AlreadyUsed => {
            return Err(Error::invalid(
                "this `state` was already used: an authorization completes once; run authorizeUrl again",
            ))
        }
        PendingLookup::Unknown => {
            return Err(Error::invalid(
                "unknown `state`: pass the state authorizeUrl answered, or run authorizeUrl again",
            ))
        }
    };
    if pending.connection != conn.name || pending.instance != conn.instance_url() {
        return Err(Error::invalid(
            "this `state` belongs to another connection; it is now spent, run authorizeUrl again",
        ));
    }
    if pending.expires_at <= now {
        return Err(Error::invalid(
            "the authorization expired (codes live ten minutes): run authorizeUrl again",
        ));
    }
    Ok(Some(pending))
}

fn token_record(
    conn: &Connection,
    answer: &Value,
    asked_scope: Option<String>,
) -> Result<TokenRecord> {
    let token = answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UpstreamUnavailable,
                "the server answered the token request without an access_token",
            )
        })?;
    Ok(TokenRecord {
        instance: conn.instance_url().to_owned(),
        access_token: SecretString::from(token.to_owned()),
        token_type: answer["token_type"].as_str().unwrap_or("Bearer").to_owned(),
        scope: answer["scope"]
            .as_str()
            .map(str::to_owned)
            .or(asked_scope)
            .unwrap_or_default(),
        created_at: answer["created_at"].as_i64().unwrap_or_else(unix_now),
        revoked_at: None,
    })
}

fn result(core: &Core, conn: &Connection, grant_type: &str, record: &TokenRecord) -> Value {
    let mut value = json!({
        "connection": conn.name,
        "grant_type": grant_type,
        "token_type": record.token_type,
        "scope": record.scope,
        "created_at": record.created_at,
    });
    if core.expose_secrets() {
        value["access_token"] = json!(record.access_token.expose_secret());
    }
    value
}
