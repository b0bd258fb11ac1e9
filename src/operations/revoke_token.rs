//! `revokeToken`: revoke a token at the server (`POST /oauth/revoke`) and forget it here.
//!
//! Revocation is not one protocol (`shared/reference/servers.md`): Mastodon takes the client
//! credentials and the token in the form (RFC 7009); Mitra wants the token as a bearer as well and
//! answers client credentials alone with 401; Takahē answers an empty 200; snac deletes the whole app.
//! So [`revoke_at_server`] presents the token the way the server's capabilities say, retries once
//! with the bearer when a form alone is answered 401, takes any 2xx as success, and treats "this
//! token is unknown here" as done: the token is forgotten locally with a note, never a dead end.

use super::params::params;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::context::{AppCredentials, Connection, Core};
use crate::error::{Error, Result};
use crate::mastodon::capabilities::RevokeStyle;
use crate::mastodon::Endpoint;
use crate::store::TokenKind;

params! {
    pub struct RevokeTokenParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// user (the default) or app: which of the connection's tokens
        pub token_kind: Option<String>,
    }
}

/// What the server did with a revocation.
#[derive(Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked (any 2xx).
    Revoked,
    /// The server does not know the token (already revoked, or its app is gone): nothing is left
    /// to revoke there. The text says what the server answered.
    Unknown(String),
}

pub async fn revoke_token(
    core: &Core,
    p: RevokeTokenParams,
    _call: &super::CallContext,
) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    let kind = match p.token_kind.as_deref().unwrap_or("user") {
        "user" => TokenKind::User,
        "app" => TokenKind::App,
        other => {
            return Err(Error::invalid(format!(
                "token_kind {:?} is neither user nor app",
                other.chars().take(20).collect::<String>()
            )))
        }
    };
    if kind == TokenKind::User && conn.settings.access_token.is_some() {
        return Err(Error::invalid(format!(
            "the user token of connection {:?} is pinned in the configuration: remove it there and revoke it on the account's Authorized apps page",
            conn.name
        )));
    }
    if conn.inline {
        return Err(Error::invalid(
            "an inline connection keeps no tokens; revoke the token on the account's Authorized apps page",
        ));
    }
    let app = core.require_app(&conn).await?;
    // A token the server already refused is revoked there too; it is still revoked again (revocation
    // of an unknown token succeeds, or is recognised as unknown) so that nothing is left to chance.
    let record = core.store.token(&conn.name, kind).await?.ok_or_else(|| {
        Error::credentials_missing(format!(
            "connection {:?} holds no {} token to revoke",
            conn.name,
            kind.as_str()
        ))
    })?;
    let outcome = match revoke_at_server(core, &conn, &app, &record.access_token).await {
        Ok(outcome) => outcome,
        Err(e) if is_invalid_client(&e) => {
            // The app is gone at the server, and its tokens with it: nothing is left to revoke.
            core.store.delete_token(&conn.name, kind).await?;
            conn.token_changed();
            return Err(core.app_refused(&conn, e).await?);
        }
        Err(e) => return Err(e),
    };
    core.store.delete_token(&conn.name, kind).await?;
    conn.token_changed();
    if kind == TokenKind::User {
        core.metrics.token_valid(&conn.name, false);
    }
    let mut notes = Vec::new();
    match &outcome {
        Revocation::Revoked => {
            tracing::info!(connection = %conn.name, token_kind = kind.as_str(), "token revoked at the server and forgotten");
        }
        Revocation::Unknown(answer) => {
            tracing::info!(connection = %conn.name, token_kind = kind.as_str(), answer = %answer, "the server does not know the token; forgotten here");
            notes.push(format!(
                "the server does not know this token ({answer}): it was already revoked there, or its app is gone; it was forgotten here. If it still works somewhere, revoke it on the account's Authorized apps page"
            ));
        }
    }
    let caps = core.capabilities_of(&conn).await;
    if outcome == Revocation::Revoked
        && caps.revoke == RevokeStyle::DeletesApp
        && conn.settings.client_id.is_none()
    {
        // snac deletes the app with the token: its credentials are worthless now.
        core.store.delete_app(&conn.name).await?;
        tracing::info!(connection = %conn.name, "this server deletes the app on revocation; the stored app is forgotten");
        notes.push(
            "this server deletes the app on revocation: the stored app was forgotten, and the next createApp registers again".to_owned(),
        );
    }
    let mut answer = json!({"connection": conn.name, "token_kind": kind.as_str(), "revoked": true});
    if !notes.is_empty() {
        answer["note"] = json!(notes.join("; "));
    }
    Ok(answer)
}

/// Revokes `token` at the server, presenting it as the server wants. See the module documentation.
pub async fn revoke_at_server(
    core: &Core,
    conn: &Connection,
    app: &AppCredentials,
    token: &SecretString,
) -> Result<Revocation> {
    let caps = core.capabilities_of(conn).await;
    let first = if caps.revoke == RevokeStyle::Bearer {
        with_bearer(conn, app, token).await
    } else {
        let sent = conn
            .client
            .post_form(
                Endpoint::REVOKE,
                &[
                    ("client_id", app.client_id.as_str()),
                    ("client_secret", app.client_secret.expose_secret()),
                    ("token", token.expose_secret()),
                ],
            )
            .await;
        match sent {
            // A 401 to the client credentials is a server that wants the token as a bearer (Mitra
            // answers so, with `WWW-Authenticate: Bearer`); Mastodon answers a foreign client 403.
            // The header itself does not reach this code (the client keeps only status and text),
            // so the status is what is recognised.
            Err(e) if upstream_status(&e) == Some(401) => {
                tracing::info!(connection = %conn.name, "the server wants the token as a bearer at revocation; retrying once with it");
                with_bearer(conn, app, token).await
            }
            other => other,
        }
    };
    match first {
        Ok(_) => Ok(Revocation::Revoked),
        // Any 2xx is success. Takahē answers an empty 200, which the client may report as "not
        // JSON": the status on the error says the server revoked it.
        Err(e) if upstream_status(&e).is_some_and(|s| (200..300).contains(&s)) => {
            Ok(Revocation::Revoked)
        }
        Err(e) if is_unknown_token(&e) => {
            let up = e.upstream.as_ref();
            let status = up.map(|u| u.status).unwrap_or_default();
            let text = up
                .and_then(|u| u.error.clone())
                .map(|t| format!(": {t}"))
                .unwrap_or_default();
            Ok(Revocation::Unknown(format!("HTTP {status}{text}")))
        }
        Err(e) => Err(e),
    }
}

/// The same form, with the token as a bearer as well (Mitra wants it so).
async fn with_bearer(
    conn: &Connection,
    app: &AppCredentials,
    token: &SecretString,
) -> Result<Value> {
    let form = [
        ("client_id".to_owned(), app.client_id.clone()),
        (
            "client_secret".to_owned(),
            app.client_secret.expose_secret().to_owned(),
        ),
        ("token".to_owned(), token.expose_secret().to_owned()),
    ];
    conn.client
        .post_form_as(Endpoint::REVOKE, Some(token), &form, &[])
        .await
}

fn upstream_status(e: &Error) -> Option<u16> {
    e.upstream.as_ref().map(|u| u.status)
}

/// The server refuses because it does not know the token: 401 (after the bearer was tried) or 403
/// (snac, Mastodon for a token of another app), or 400 `invalid_token`.
fn is_unknown_token(e: &Error) -> bool {
    let Some(up) = &e.upstream else {
        return false;
    };
    let text = up.error.as_deref().unwrap_or_default().to_ascii_lowercase();
    if text.contains("invalid_client") {
        return false;
    }
    match up.status {
        401 | 403 => true,
        400 => text.contains("invalid_token") || text.contains("invalid bearer token"),
        _ => false,
    }
}

/// `invalid_client` from an OAuth endpoint: the server no longer knows the app.
pub fn is_invalid_client(e: &Error) -> bool {
    e.upstream.as_ref().is_some_and(|up| {
        matches!(up.status, 400 | 401)
            && up
                .error
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("invalid_client"))
    })
}
