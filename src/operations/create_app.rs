//! `createApp`: register the app with the server once, and keep its credentials.
//!
//! Mastodon allows five registrations per ten minutes per IP, and an app is needed only once per
//! server, so a second call with the same scopes and redirect URIs answers the stored app without
//! calling out. A call with other scopes or redirect URIs is refused unless `force` is true: the
//! stored app's client secret would be lost silently. `scopes` is always sent as a space-separated string: Mastodon silently drops an array.

use super::params::{params, Words};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::context::{Connection, Core};
use crate::config::OOB_REDIRECT_URI;
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::{unix_now, Endpoint};
use crate::store::AppRecord;

params! {
    pub struct CreateAppParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The app's name, instead of the configured one
        pub client_name: Option<String>,
        /// The redirect URIs instead of the configured one (a list, or separated by spaces)
        pub redirect_uris: Option<Words>,
        /// The scopes (separated by spaces) instead of the configured ones
        pub scopes: Option<String>,
        /// The app's website, instead of the configured one
        pub website: Option<String>,
        /// Replace a stored app registered with other scopes or redirect URIs (its client secret is lost; nothing is revoked)
        pub force: Option<bool>,
    }
}

/// `"read  write\n"` → `"read write"`: one canonical form to send and to compare.
pub fn normalize_scopes(scopes: &str) -> String {
    scopes.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub async fn create_app(
    core: &Core,
    p: CreateAppParams,
    _call: &super::CallContext,
) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    if conn.settings.client_id.is_some() {
        return Err(Error::invalid(format!(
            "connection {:?} has client_id and client_secret in its configuration, so createApp has nothing to do; remove them to register a new app",
            conn.name
        )));
    }
    if conn.inline {
        return Err(Error::invalid(
            "an inline connection does not keep registered apps; configure the connection, or pass client_id and client_secret to init",
        ));
    }
    let client_name = p
        .client_name
        .unwrap_or_else(|| conn.settings.client_name.clone());
    let redirect_uris = p
        .redirect_uris
        .map(|words| words.0)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![conn.settings.redirect_uri.clone()]);
    let scopes = normalize_scopes(p.scopes.as_deref().unwrap_or(&conn.settings.scopes));
    let website = p
        .website
        .or_else(|| conn.settings.website.as_ref().map(|u| u.to_string()));

    if client_name.trim().is_empty() || client_name.chars().count() > 60 {
        return Err(Error::validation(
            "client_name must be 1 to 60 characters (Mastodon's limit)",
        ));
    }
    for uri in &redirect_uris {
        if uri != OOB_REDIRECT_URI && url::Url::parse(uri).is_err() {
            return Err(Error::validation(format!(
                "redirect URI {uri:?} is neither an absolute URL nor {OOB_REDIRECT_URI}"
            )));
        }
    }
    if scopes.is_empty() {
        return Err(Error::validation("scopes must name at least one scope"));
    }
    if let Some(site) = &website {
        if url::Url::parse(site).is_err() {
            return Err(Error::validation(format!(
                "website {site:?} is not an absolute URL"
            )));
        }
    }

    // Mastodon allows five registrations per ten minutes per IP, and replicas share one store: one
    // caller registers while the others wait for its app.
    let deadline = std::time::Instant::now() + CLAIM_WAIT;
    loop {
        if let Some(existing) = core.store.app(&conn.name).await? {
            if existing.instance == conn.instance_url()
                && existing.scopes == scopes
                && existing.redirect_uris == redirect_uris
            {
                tracing::info!(connection = %conn.name, "app already registered; answering the stored one");
                let secret = existing.client_secret.expose_secret().to_owned();
                return Ok(answer(core, &conn.name, existing.entity, Some(secret)));
            }
            if existing.instance == conn.instance_url() && p.force != Some(true) {
                return Err(Error::invalid(format!(
                    "connection {:?} already has an app, registered with scopes {:?} and redirect URIs {:?}; this call asks for scopes {:?} and redirect URIs {:?}. Registering again would replace the stored app and lose its client secret: pass force=true to replace it (nothing is revoked; tokens of the old app stay valid at the server until revoked there), or call createApp with the stored app's values",
                    conn.name,
                    existing.scopes,
                    existing.redirect_uris.join(" "),
                    scopes,
                    redirect_uris.join(" ")
                )));
            }
        }
        let now = unix_now();
        if core
            .store
            .claim_registration(&conn.name, now, now + CLAIM_TTL_S)
            .await?
        {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::UpstreamTimeout,
                "another replica is registering this connection's app and has not finished; try again shortly",
            ));
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
    let registered = register(
        core,
        &conn,
        &client_name,
        &redirect_uris,
        &scopes,
        website.as_deref(),
    )
    .await;
    // Release whatever happened: a failed registration must not block the next attempt for a minute.
    core.store.release_registration(&conn.name).await?;
    let (entity, client_secret) = registered?;
    Ok(answer(core, &conn.name, entity, Some(client_secret)))
}

/// How long a registration claim lasts if its holder dies before releasing it.
const CLAIM_TTL_S: i64 = 60;
/// How long another caller waits for the claim holder's app.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(200);

async fn register(
    core: &Core,
    conn: &Connection,
    client_name: &str,
    redirect_uris: &[String],
    scopes: &str,
    website: Option<&str>,
) -> Result<(Value, String)> {
    let mut body = json!({
        "client_name": client_name,
        // A newline-separated string works on every server version; arrays only from Mastodon 4.3.
        "redirect_uris": redirect_uris.join("\n"),
        "scopes": scopes,
    });
    if let Some(site) = website {
        body["website"] = json!(site);
    }
    let mut entity = conn
        .client
        .post_json(Endpoint::CREATE_APP, None, &body, &[])
        .await?;
    let client_id = entity["client_id"].as_str().map(str::to_owned);
    let secret = entity
        .as_object_mut()
        .and_then(|o| o.remove("client_secret"))
        .and_then(|v| v.as_str().map(str::to_owned));
    let (Some(client_id), Some(client_secret)) = (client_id, secret) else {
        return Err(Error::new(
            ErrorKind::UpstreamUnavailable,
            "the server registered the app but its answer lacks client_id or client_secret",
        ));
    };
    let record = AppRecord {
        instance: conn.instance_url().to_owned(),
        client_id,
        client_secret: client_secret.clone().into(),
        scopes: scopes.to_owned(),
        redirect_uris: redirect_uris.to_vec(),
        entity: entity.clone(),
        created_at: unix_now(),
    };
    core.known_secrets
        .add_app(&record.client_id, &record.client_secret);
    core.store.put_app(&conn.name, &record).await?;
    tracing::info!(connection = %conn.name, "app registered and stored");
    Ok((entity, client_secret))
}

fn answer(core: &Core, connection: &str, mut entity: Value, secret: Option<String>) -> Value {
    if let Some(obj) = entity.as_object_mut() {
        obj.insert("connection".into(), json!(connection));
        if core.expose_secrets() {
            if let Some(secret) = secret {
                obj.insert("client_secret".into(), json!(secret));
            }
        }
    }
    entity
}
