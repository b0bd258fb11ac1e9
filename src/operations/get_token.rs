//! `getToken`: exchange an authorization code (or the app's own credentials) for a token, and keep it.
//!
//! The code is single-use at Mastodon, and the pending authorization (state and PKCE verifier) is
//! single-use here: it is taken from the store before the exchange, and a second use is told apart as
//! a replay. Only when Mastodon could not be reached at all is it made usable again, so the caller may
//! retry with the same code. The token itself is never answered unless `expose_secrets` is set.
//! [`exchange_code`] is shared with the OAuth callback.

use super::params::params;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::context::{AppCredentials, Connection, Core};
use super::create_app::normalize_scopes;
use super::revoke_token::{is_invalid_client, revoke_at_server, Revocation};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::capabilities::{ClientCredentialsGrant, RevokeStyle};
use crate::mastodon::{unix_now, Endpoint};
use crate::store::{PendingAuthorization, PendingLookup, TokenKind, TokenRecord};

params! {
    pub struct GetTokenParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// authorization_code (the default) or client_credentials
        pub grant_type: Option<String>,
        /// The authorization code the instance showed or sent
        pub code: Option<SecretString>,
        /// The state authorizeUrl answered: finds the pending authorization
        pub state: Option<String>,
        /// The redirect URI used in authorizeUrl
        pub redirect_uri: Option<String>,
        /// The scopes, separated by spaces
        pub scope: Option<String>,
    }
}

pub async fn get_token(
    core: &Core,
    p: GetTokenParams,
    _call: &super::CallContext,
) -> Result<Value> {
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
        Error::invalid("getToken needs `code`: the code the server showed (or sent to the redirect URI) after approval")
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
    let (record, expires_in) =
        exchange_code(core, conn, app, pending, &code, p.redirect_uri).await?;
    Ok(result(
        core,
        conn,
        "authorization_code",
        &record,
        expires_in,
    ))
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
/// and stores the user token; answers it with the `expires_in` the server gave, if any. A user
/// token it replaces is revoked at the server, best effort: re-authorizing leaves the older token
/// valid on every server in servers.md, and nobody could revoke it through the sidecar afterwards.
pub async fn exchange_code(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    pending: Option<PendingAuthorization>,
    code: &SecretString,
    redirect_uri: Option<String>,
) -> Result<(TokenRecord, Option<i64>)> {
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
    // Single-use, but a server may repeat them in a later answer.
    core.known_secrets.add_passing(code.expose_secret());
    if let Some(verifier) = &verifier {
        core.known_secrets.add_passing(verifier.expose_secret());
    }
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
            if is_invalid_client(&e) {
                return Err(core.app_refused(conn, e).await?);
            }
            return Err(e);
        }
    };
    // The scope asked for: the authorization's, else (a URL built elsewhere) the app's.
    let asked = pending.map(|p| p.scope).or_else(|| app.scopes.clone());
    let record = token_record(conn, &answer, asked)?;
    let superseded = if conn.inline {
        None
    } else {
        core.store
            .token(&conn.name, TokenKind::User)
            .await?
            .filter(|old| old.instance == conn.instance_url())
            .filter(|old| old.access_token.expose_secret() != record.access_token.expose_secret())
            .inspect(|old| core.known_secrets.add(&old.access_token))
    };
    core.known_secrets.add(&record.access_token);
    core.store
        .put_token(&conn.name, TokenKind::User, &record)
        .await?;
    conn.token_changed();
    core.metrics.token_valid(&conn.name, true);
    tracing::info!(connection = %conn.name, scope = %record.scope, "user token obtained and stored");
    if let Some(old) = superseded {
        revoke_superseded(core, conn, app, &old.access_token).await;
    }
    Ok((record, answer["expires_in"].as_i64()))
}

/// Revokes the user token a new one replaced; never fails the exchange that replaced it.
async fn revoke_superseded(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    old: &SecretString,
) {
    let caps = core.capabilities_of(conn).await;
    if caps.revoke == RevokeStyle::DeletesApp {
        // snac deletes the app with any token revoked, which would kill the new token too.
        tracing::warn!(connection = %conn.name, "the superseded user token is not revoked: this server deletes the app (and the new token) on revocation; revoke it on the account's Authorized apps page");
        return;
    }
    match revoke_at_server(core, conn, app, old).await {
        Ok(Revocation::Revoked) => {
            tracing::info!(connection = %conn.name, "the superseded user token was revoked at the server")
        }
        Ok(Revocation::Unknown(answer)) => {
            tracing::info!(connection = %conn.name, answer = %answer, "the superseded user token was already unknown to the server")
        }
        Err(e) => {
            tracing::warn!(connection = %conn.name, code = e.kind.code(), "the superseded user token could not be revoked; revoke it on the account's Authorized apps page")
        }
    }
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
    let caps = core.capabilities_of(conn).await;
    if caps.client_credentials == ClientCredentialsGrant::Unsupported {
        return Err(no_app_tokens(None));
    }
    // Always sent: GoToSocial and snac need it, Mastodon ignores it.
    let redirect_uri = app
        .redirect_uris
        .as_ref()
        .and_then(|uris| uris.first().cloned())
        .unwrap_or_else(|| conn.settings.redirect_uri.clone());
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        ("scope", scope.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
    ];
    let answer = match conn.client.post_form(Endpoint::TOKEN, &form).await {
        Ok(answer) => answer,
        Err(e) if is_invalid_client(&e) => return Err(core.app_refused(conn, e).await?),
        Err(e) if is_unsupported_grant(&e) => return Err(no_app_tokens(Some(e))),
        Err(e) => return Err(e),
    };
    let record = token_record(conn, &answer, Some(scope))?;
    core.known_secrets.add(&record.access_token);
    core.store
        .put_token(&conn.name, TokenKind::App, &record)
        .await?;
    tracing::info!(connection = %conn.name, "app token obtained and stored");
    Ok(result(
        core,
        conn,
        "client_credentials",
        &record,
        answer["expires_in"].as_i64(),
    ))
}

/// The server refuses `grant_type=client_credentials` (Mitra: `unsupported grant type`).
fn is_unsupported_grant(e: &Error) -> bool {
    e.upstream.as_ref().is_some_and(|up| {
        up.status == 400
            && up.error.as_deref().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("unsupported grant type") || t.contains("unsupported_grant_type")
            })
    })
}

fn no_app_tokens(answer: Option<Error>) -> Error {
    let mut e = Error::new(
        ErrorKind::UpstreamRejected,
        "this server issues no app tokens (grant_type client_credentials is not supported there): use a user token, obtained with authorizeUrl and getToken (authorization_code)",
    );
    e.upstream = answer.and_then(|a| a.upstream);
    e
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
        // snac answers an empty scope unless one was sent: report what was asked.
        scope: answer["scope"]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or(asked_scope)
            .unwrap_or_default(),
        created_at: answer["created_at"]
            .as_i64()
            .map(seconds)
            .unwrap_or_else(unix_now),
        revoked_at: None,
    })
}

/// Unix seconds from a timestamp that may be in milliseconds (Hollo): 10^11 seconds is the year
/// 5138, 10^11 milliseconds is 1973, so a value above it can only be milliseconds.
fn seconds(created_at: i64) -> i64 {
    if created_at > 100_000_000_000 {
        created_at / 1000
    } else {
        created_at
    }
}

fn result(
    core: &Core,
    conn: &Connection,
    grant_type: &str,
    record: &TokenRecord,
    expires_in: Option<i64>,
) -> Value {
    let mut value = json!({
        "connection": conn.name,
        "grant_type": grant_type,
        "token_type": record.token_type,
        "scope": record.scope,
        "created_at": record.created_at,
    });
    // Mastodon's tokens do not expire; GoToSocial's app tokens and Mitra's tokens do. The expiry is
    // answered (not stored: the store keeps no expiry), so the caller can plan the next getToken.
    if let Some(expires_in) = expires_in {
        value["expires_in"] = json!(expires_in);
    }
    if core.expose_secrets() {
        value["access_token"] = json!(record.access_token.expose_secret());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_in_milliseconds_is_read_as_seconds() {
        assert_eq!(seconds(1_795_343_700), 1_795_343_700);
        assert_eq!(seconds(1_795_343_700_123), 1_795_343_700);
    }
}
