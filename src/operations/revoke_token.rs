//! `revokeToken`: revoke a token at Mastodon (`POST /oauth/revoke`) and forget it here.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::context::Core;
use super::params;
use crate::error::{Error, Result};
use crate::mastodon::Endpoint;
use crate::store::TokenKind;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenParams {
    #[serde(default, deserialize_with = "params::opt_string")]
    pub connection: Option<String>,
    /// `user` (the default) or `app`: which of the connection's tokens.
    #[serde(default, deserialize_with = "params::opt_string")]
    pub token_kind: Option<String>,
}

pub async fn revoke_token(core: &Core, p: RevokeTokenParams) -> Result<Value> {
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
    // A token Mastodon already refused is revoked there too; it is still revoked again (revocation of
    // an unknown token succeeds) so that nothing is left to chance.
    let record = core.store.token(&conn.name, kind).await?.ok_or_else(|| {
        Error::credentials_missing(format!(
            "connection {:?} holds no {} token to revoke",
            conn.name,
            kind.as_str()
        ))
    })?;
    conn.client
        .post_form(
            Endpoint::REVOKE,
            &[
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.expose_secret()),
                ("token", record.access_token.expose_secret()),
            ],
        )
        .await?;
    core.store.delete_token(&conn.name, kind).await?;
    conn.token_changed();
    if kind == TokenKind::User {
        core.metrics.token_valid(&conn.name, false);
    }
    tracing::info!(connection = %conn.name, token_kind = kind.as_str(), "token revoked at Mastodon and forgotten");
    Ok(json!({"connection": conn.name, "token_kind": kind.as_str(), "revoked": true}))
}
