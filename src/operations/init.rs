//! `init`: check a connection (or define one inline) and report what the server and the store hold.

use super::params::{params, HeaderSecret, HeaderText};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::context::Core;
use crate::config::ConnectionSettings;
use crate::error::{Error, ErrorKind, Result};

params! {
    pub struct InitParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// Inline connection (with security.allow_inline_connections): the instance URL
        pub instance: Option<HeaderText>,
        /// Inline: a user access token
        pub access_token: Option<HeaderSecret>,
        /// Inline: the client_id of an app registered already
        pub client_id: Option<String>,
        /// Inline: the client_secret of that app
        pub client_secret: Option<SecretString>,
        /// Inline: the scopes, separated by spaces
        pub scopes: Option<String>,
        /// Inline: the redirect URI of the app
        pub redirect_uri: Option<String>,
    }
}

impl InitParams {
    fn is_inline(&self) -> bool {
        self.instance.is_some()
            || self.access_token.is_some()
            || self.client_id.is_some()
            || self.client_secret.is_some()
            || self.scopes.is_some()
            || self.redirect_uri.is_some()
    }
}

pub async fn init(core: &Core, p: InitParams, _call: &super::CallContext) -> Result<Value> {
    let conn = if p.is_inline() {
        if !core.settings.security.allow_inline_connections {
            return Err(Error::forbidden(
                "inline connections are off: name a configured connection, or set security.allow_inline_connections",
            ));
        }
        let instance = p.instance.as_ref().map(|i| i.0.as_str()).ok_or_else(|| {
            Error::invalid("an inline connection needs `instance`, the server's https URL")
        })?;
        let instance = url::Url::parse(instance)
            .map_err(|e| Error::invalid(format!("`instance` is not a URL: {e}")))?;
        let mut settings = ConnectionSettings::for_instance(instance);
        if let Some(scopes) = p.scopes {
            settings.scopes = scopes;
        }
        if let Some(uri) = p.redirect_uri {
            settings.redirect_uri = uri;
        }
        if p.client_id.is_some() != p.client_secret.is_some() {
            return Err(Error::invalid(
                "`client_id` and `client_secret` go together: give both or neither",
            ));
        }
        settings.client_id = p.client_id;
        settings.client_secret = p.client_secret;
        settings.access_token = p.access_token.map(|t| t.0);
        let name = p.connection.as_deref().unwrap_or("default");
        core.define_inline(name, settings).await?
    } else {
        core.connection(p.connection.as_deref())?
    };

    let info = core.instance_info(&conn, true).await?;
    let app_registered = core.app_credentials(&conn).await?.is_some();
    // No token, or one Mastodon revoked, is a state to report, not a failure: `init` runs before
    // `createApp` and `getToken` too.
    let token = match core.require_user_token(&conn).await {
        Ok(token) => Some(token),
        Err(e) if e.kind == ErrorKind::CredentialsMissing => None,
        Err(e) => return Err(e),
    };
    let has_token = token.is_some();
    let account = if let Some(token) = token {
        let account = core.verify_user_token(&conn, token).await?;
        json!({"id": account["id"], "acct": account["acct"], "url": account["url"]})
    } else {
        Value::Null
    };
    Ok(json!({
        "connection": conn.name,
        "instance": {
            "url": info.url,
            "domain": info.domain,
            "version": info.version,
            "max_characters": info.max_characters,
            "pkce": info.pkce,
            "software": info.software,
            "capabilities": info.capabilities,
        },
        "app_registered": app_registered,
        "user_token": has_token,
        "account": account,
    }))
}
