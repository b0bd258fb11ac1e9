//! The context every operation runs in: settings, the store, connections and their cached probes.
//!
//! Connections are the configured ones plus those `init` defined inline (when allowed). Each has its
//! own Mastodon client (its own timeouts). Credentials are looked up in one place, with one precedence:
//! what the configuration pins wins, what the sidecar obtained at run time comes from the store, and a
//! stored record obtained from another instance URL is never used.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;

use crate::config::{ConnectionSettings, Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::address::is_public;
use crate::mastodon::resilience::Breakers;
use crate::mastodon::{format_unix, InstanceInfo, MastodonClient};
use crate::metrics::Metrics;
use crate::store::{Store, TokenKind};

/// How old a stored probe may be before `init` probes again. Limits rarely change, and MI flows call
/// `init` before every operation: probing each time would spend the caller's rate limit for nothing.
const INIT_PROBE_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// How old a probe may be for the checks `postStatus` makes before calling out. Minutes, not a day:
/// an administrator who raises the limit should not see posts refused for long. A limit that would
/// refuse a post is read again once anyway ([`Core::refresh_instance_info`]).
const CHECK_PROBE_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Inline connections are named by callers; bound them so the metric labels stay bounded.
const MAX_INLINE_CONNECTIONS: usize = 32;

/// One Mastodon account on one server, as configured or defined inline.
pub struct Connection {
    pub name: String,
    pub settings: ConnectionSettings,
    pub client: MastodonClient,
    pub inline: bool,
    probe: RwLock<Option<InstanceInfo>>,
    /// When Mastodon refused the token pinned in configuration (0: never). Stored tokens keep this
    /// in the store instead, so every replica sees it.
    pinned_token_revoked_at: AtomicI64,
    /// The stored user token, unsealed, for a moment: a post would otherwise read and unseal it from
    /// the store every time. Cleared here on every change; other replicas see a change within
    /// [`TOKEN_CACHE_TTL`].
    token_cache: RwLock<Option<(SecretString, Instant)>>,
    /// The id of the token's account, once asked (resolving a lost post reads its statuses).
    account_id: RwLock<Option<String>>,
}

impl Connection {
    pub fn instance_url(&self) -> &str {
        self.client.base().as_str()
    }

    fn cached_token(&self) -> Option<SecretString> {
        let cache = self.token_cache.read().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(token, _)| token.clone())
    }

    fn cache_token(&self, token: Option<&SecretString>) {
        let mut cache = self.token_cache.write().unwrap_or_else(|p| p.into_inner());
        *cache = token.map(|t| (t.clone(), Instant::now()));
    }

    /// Forgets the cached token: the stored one changed (obtained, revoked, deleted).
    pub fn token_changed(&self) {
        self.cache_token(None);
        *self.account_id.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// How long an unsealed user token is reused before the store is asked again.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);

/// App credentials, pinned in configuration or obtained by `createApp`.
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Scopes and redirect URIs the app was registered with, when the sidecar registered it.
    pub scopes: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
}

pub struct Core {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    connections: RwLock<HashMap<String, Arc<Connection>>>,
    /// One circuit breaker per instance, shared by its connections.
    breakers: Breakers,
    /// This process, as the owner of the ledger claims it makes (random per start).
    owner: String,
}

impl Core {
    pub fn new(settings: Arc<Settings>, store: Arc<dyn Store>, metrics: Metrics) -> Result<Core> {
        let breakers = Breakers::default();
        let mut connections = HashMap::new();
        for (name, conn) in &settings.connections {
            let breaker = breakers.for_instance(&instance_key(&conn.instance), &metrics);
            let client = MastodonClient::new(name, conn, metrics.clone(), breaker, false)?;
            connections.insert(
                name.clone(),
                Arc::new(Connection {
                    name: name.clone(),
                    settings: conn.clone(),
                    client,
                    inline: false,
                    probe: RwLock::new(None),
                    pinned_token_revoked_at: AtomicI64::new(0),
                    token_cache: RwLock::new(None),
                    account_id: RwLock::new(None),
                }),
            );
        }
        Ok(Core {
            settings,
            store,
            metrics,
            connections: RwLock::new(connections),
            breakers,
            owner: uuid::Uuid::new_v4().to_string(),
        })
    }

    fn read_connections(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Connection>>> {
        // Nothing panics while holding this lock; a poisoned one still holds a consistent map.
        self.connections.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection a request names, or the default one (the only one, or the one named `default`).
    pub fn connection(&self, name: Option<&str>) -> Result<Arc<Connection>> {
        let connections = self.read_connections();
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => name.to_owned(),
            None => {
                if connections.len() == 1 {
                    connections.keys().next().cloned().unwrap_or_default()
                } else if connections.contains_key("default") {
                    "default".to_owned()
                } else if connections.is_empty() {
                    return Err(Error::new(
                        ErrorKind::UnknownConnection,
                        "no connection is configured; add a [connections.NAME] table with an instance",
                    ));
                } else {
                    return Err(Error::invalid(format!(
                        "name a `connection`: there are several ({}) and none is named `default`",
                        sorted_names(&connections)
                    )));
                }
            }
        };
        connections.get(&name).cloned().ok_or_else(|| {
            let shown: String = name.chars().take(64).collect();
            Error::new(
                ErrorKind::UnknownConnection,
                format!(
                    "there is no connection {shown:?}; the connections are {}",
                    sorted_names(&connections)
                ),
            )
        })
    }

    /// Defines (or redefines) an inline connection from `init`'s parameters.
    pub async fn define_inline(
        &self,
        name: &str,
        settings: ConnectionSettings,
    ) -> Result<Arc<Connection>> {
        let security = &self.settings.security;
        if !security.allow_inline_connections {
            return Err(Error::forbidden(
                "inline connections are off: configure the connection, or set security.allow_inline_connections",
            ));
        }
        if !crate::config::valid_connection_name(name) {
            return Err(Error::invalid(
                "an inline connection's name is 1 to 64 characters of a-z, 0-9, _ and -",
            ));
        }
        if self.settings.connections.contains_key(name) {
            return Err(Error::forbidden(format!(
                "connection {name:?} is configured; inline parameters may not redefine it"
            )));
        }
        check_inline_instance(&self.settings, &settings.instance).await?;
        let breaker = self
            .breakers
            .for_instance(&instance_key(&settings.instance), &self.metrics);
        // The addresses actually connected to are checked too, not only the ones seen above:
        // a name may resolve differently a moment later.
        let public_only = !self.settings.security.allow_private_addresses;
        let client =
            MastodonClient::new(name, &settings, self.metrics.clone(), breaker, public_only)?;
        let connection = Arc::new(Connection {
            name: name.to_owned(),
            settings,
            client,
            inline: true,
            probe: RwLock::new(None),
            pinned_token_revoked_at: AtomicI64::new(0),
            token_cache: RwLock::new(None),
            account_id: RwLock::new(None),
        });
        let mut connections = self.connections.write().unwrap_or_else(|p| p.into_inner());
        let inline_count = connections.values().filter(|c| c.inline).count();
        if !connections.contains_key(name) && inline_count >= MAX_INLINE_CONNECTIONS {
            return Err(Error::forbidden(format!(
                "at most {MAX_INLINE_CONNECTIONS} inline connections may exist; reuse a name or configure connections"
            )));
        }
        connections.insert(name.to_owned(), Arc::clone(&connection));
        Ok(connection)
    }

    /// The server's limits and capabilities: from memory, from the store, or probed now.
    pub async fn instance_info(&self, conn: &Connection, for_init: bool) -> Result<InstanceInfo> {
        let max_age = if for_init {
            INIT_PROBE_MAX_AGE
        } else {
            CHECK_PROBE_MAX_AGE
        };
        self.instance_info_within(conn, max_age).await
    }

    /// Probes again now, whatever is cached: a cached limit is about to refuse a post, and the
    /// server may have changed it since.
    pub async fn refresh_instance_info(&self, conn: &Connection) -> Result<InstanceInfo> {
        self.instance_info_within(conn, Duration::ZERO).await
    }

    async fn instance_info_within(
        &self,
        conn: &Connection,
        max_age: Duration,
    ) -> Result<InstanceInfo> {
        let now = crate::mastodon::unix_now();
        let fresh = |info: &InstanceInfo| {
            info.url == conn.instance_url() && now - info.probed_at < max_age.as_secs() as i64
        };
        let cached = conn.probe.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(info) = cached.filter(|i| fresh(i)) {
            return Ok(info);
        }
        if !conn.inline {
            if let Some(info) = self.store.instance(&conn.name).await?.filter(|i| fresh(i)) {
                *conn.probe.write().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
                return Ok(info);
            }
        }
        let info = InstanceInfo::probe(&conn.client, &conn.settings.capabilities).await?;
        if !info.capabilities.keep_alive {
            conn.client.stop_pooling();
        }
        if !conn.inline {
            self.store.put_instance(&conn.name, &info).await?;
        }
        *conn.probe.write().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
        Ok(info)
    }

    /// Like [`Core::instance_info`], but a failed probe is not an error: the checks it feeds are a
    /// courtesy, and Mastodon enforces its own limits anyway.
    pub async fn instance_info_if_known(&self, conn: &Connection) -> Option<InstanceInfo> {
        match self.instance_info(conn, false).await {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::info!(connection = %conn.name, code = e.kind.code(), "instance limits unknown; leaving the checks to Mastodon");
                None
            }
        }
    }

    pub async fn app_credentials(&self, conn: &Connection) -> Result<Option<AppCredentials>> {
        if let (Some(id), Some(secret)) = (&conn.settings.client_id, &conn.settings.client_secret) {
            return Ok(Some(AppCredentials {
                client_id: id.clone(),
                client_secret: secret.clone(),
                scopes: None,
                redirect_uris: None,
            }));
        }
        if conn.inline {
            return Ok(None);
        }
        Ok(self
            .store
            .app(&conn.name)
            .await?
            .filter(|app| app.instance == conn.instance_url())
            .map(|app| AppCredentials {
                client_id: app.client_id,
                client_secret: app.client_secret,
                scopes: Some(app.scopes),
                redirect_uris: Some(app.redirect_uris),
            }))
    }

    pub async fn token(&self, conn: &Connection, kind: TokenKind) -> Result<Option<SecretString>> {
        if kind == TokenKind::User {
            if let Some(token) = &conn.settings.access_token {
                return Ok(Some(token.clone()));
            }
        }
        if conn.inline {
            return Ok(None);
        }
        Ok(self
            .store
            .token(&conn.name, kind)
            .await?
            .filter(|t| t.instance == conn.instance_url())
            .map(|t| t.access_token))
    }

    /// The user token, or the error that says how to get one (also when Mastodon revoked it).
    pub async fn require_user_token(&self, conn: &Connection) -> Result<SecretString> {
        let revoked = |at: i64| {
            Error::credentials_missing(format!(
                "the user token of connection {:?} was revoked at Mastodon (refused with 401 at {}): authorize again with authorizeUrl and getToken",
                conn.name,
                format_unix(at)
            ))
        };
        if let Some(token) = &conn.settings.access_token {
            return match conn.pinned_token_revoked_at.load(Ordering::Relaxed) {
                0 => Ok(token.clone()),
                at => Err(revoked(at)),
            };
        }
        if let Some(token) = conn.cached_token() {
            return Ok(token);
        }
        let record = if conn.inline {
            None
        } else {
            self.store
                .token(&conn.name, TokenKind::User)
                .await?
                .filter(|t| t.instance == conn.instance_url())
        };
        match record {
            Some(t) => match t.revoked_at {
                Some(at) => Err(revoked(at)),
                None => {
                    conn.cache_token(Some(&t.access_token));
                    Ok(t.access_token)
                }
            },
            None => Err(Error::credentials_missing(format!(
                "connection {:?} has no user token yet: run authorizeUrl, approve in the browser, then getToken with the code",
                conn.name
            ))),
        }
    }

    /// Runs `call` with the user token. A 401 from Mastodon means the token was revoked: the
    /// connection is marked so at once (in the store, for every replica), later calls fail fast, and
    /// one warning is logged.
    pub async fn with_user_token<T, F, Fut>(&self, conn: &Connection, call: F) -> Result<T>
    where
        F: FnOnce(SecretString) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let token = self.require_user_token(conn).await?;
        self.use_user_token(conn, token, call).await
    }

    /// Like [`Core::with_user_token`], with a token the caller already read (one store read per call).
    pub async fn use_user_token<T, F, Fut>(
        &self,
        conn: &Connection,
        token: SecretString,
        call: F,
    ) -> Result<T>
    where
        F: FnOnce(SecretString) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let result = call(token).await;
        match &result {
            Ok(_) => self.metrics.token_valid(&conn.name, true),
            Err(e) if e.upstream.as_ref().is_some_and(|u| u.status == 401) => {
                self.token_refused(conn).await?;
            }
            Err(_) => {}
        }
        result
    }

    /// Records that Mastodon refused the connection's user token.
    pub async fn token_refused(&self, conn: &Connection) -> Result<()> {
        conn.token_changed();
        let now = crate::clock::unix_now();
        let first = if conn.settings.access_token.is_some() {
            conn.pinned_token_revoked_at
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        } else if conn.inline {
            false
        } else {
            self.store
                .mark_token_revoked(&conn.name, TokenKind::User, now)
                .await?
        };
        self.metrics.token_valid(&conn.name, false);
        if first {
            tracing::warn!(
                connection = %conn.name,
                "Mastodon refused the user token (401): it was revoked; calls fail fast until the account is authorized again"
            );
        }
        Ok(())
    }

    /// Every connection, configured and inline.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        self.read_connections().values().cloned().collect()
    }

    /// The app credentials, or the error that says how to get them.
    pub async fn require_app(&self, conn: &Connection) -> Result<AppCredentials> {
        self.app_credentials(conn).await?.ok_or_else(|| {
            Error::credentials_missing(format!(
                "connection {:?} has no app yet: run createApp first",
                conn.name
            ))
        })
    }

    /// Adds `client_secret` / `access_token` to a result only where `expose_secrets` allows it.
    pub fn expose_secrets(&self) -> bool {
        self.settings.security.expose_secrets
    }

    /// This process's identity as a ledger owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The id of the account behind `token`: cached, else asked with verify_credentials.
    pub async fn account_id(&self, conn: &Connection, token: &SecretString) -> Result<String> {
        if let Some(id) = conn
            .account_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(id);
        }
        let account = conn
            .client
            .get(crate::mastodon::Endpoint::VERIFY_CREDENTIALS, Some(token))
            .await?;
        let id = super::status_match::id_text(&account["id"]).ok_or_else(|| {
            Error::new(
                ErrorKind::UpstreamUnavailable,
                "the server's Account has no id",
            )
        })?;
        *conn.account_id.write().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        Ok(id)
    }

    /// How messages name the connection's server: its software, or "the server".
    pub async fn software_name(&self, conn: &Connection) -> String {
        match conn
            .probe
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(info) => info.software.display().to_owned(),
            None => "the server".to_owned(),
        }
    }
}

/// The key of an instance's circuit breaker: scheme, host and port.
fn instance_key(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

fn sorted_names(connections: &HashMap<String, Arc<Connection>>) -> String {
    let mut names: Vec<&str> = connections.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// A caller-supplied instance URL is hostile until proven otherwise.
async fn check_inline_instance(settings: &Settings, url: &url::Url) -> Result<()> {
    let security = &settings.security;
    crate::config::check_instance_url(url).map_err(Error::invalid)?;
    if url.scheme() != "https" && !security.allow_insecure_instances {
        return Err(Error::forbidden(
            "an inline instance must use https (security.allow_insecure_instances is off)",
        ));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let allowed = security
        .allowed_instances
        .iter()
        .any(|pattern| host_matches(pattern, &host));
    if !allowed {
        return Err(Error::forbidden(format!(
            "instance host {host:?} is not in security.allowed_instances"
        )));
    }
    if !security.allow_private_addresses {
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            _ => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::UpstreamUnavailable,
                        format!("cannot resolve {host}"),
                    )
                })?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(ip) = addresses.iter().find(|ip| !is_public(ip)) {
            return Err(Error::forbidden(format!(
                "instance {host} resolves to {ip}, a loopback, private or link-local address (security.allow_private_addresses is off)"
            )));
        }
    }
    Ok(())
}

/// `example.org` matches itself; `*.example.org` matches its subdomains (not itself).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
        None => pattern == host,
    }
}

/// A JSON object from pairs, leaving out the absent ones.
pub fn object(pairs: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_exactly_or_by_subdomain() {
        assert!(host_matches("mastodon.social", "mastodon.social"));
        assert!(!host_matches("mastodon.social", "evilmastodon.social"));
        assert!(host_matches("*.example.org", "m.example.org"));
        assert!(!host_matches("*.example.org", "example.org"));
        assert!(!host_matches("*.example.org", "mexample.org"));
    }
}
