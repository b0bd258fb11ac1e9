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

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{ConnectionSettings, Settings};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::address::not_public_because;
use crate::mastodon::redact::KnownSecrets;
use crate::mastodon::resilience::Breakers;
use crate::mastodon::{format_unix, InstanceInfo, MastodonClient};
use crate::metrics::Metrics;
use crate::store::{Store, TokenKind};

use super::verify_credentials::{token_verdict, TokenVerdict};

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
    /// Every long-lived secret known here, scrubbed from whatever any server says (`redact.rs`):
    /// what configuration pins, what inline connections bring, what is obtained or read from the
    /// store. Filled where secrets enter; shared by every connection's client.
    pub known_secrets: Arc<KnownSecrets>,
}

impl Core {
    pub fn new(settings: Arc<Settings>, store: Arc<dyn Store>, metrics: Metrics) -> Result<Core> {
        let breakers = Breakers::default();
        let known_secrets = Arc::new(KnownSecrets::default());
        known_pinned_secrets(&settings, &known_secrets);
        let mut connections = HashMap::new();
        for (name, conn) in &settings.connections {
            let breaker = breakers.for_instance(&instance_key(&conn.instance), &metrics);
            let client = MastodonClient::new(name, conn, metrics.clone(), breaker, false)?
                .with_known_secrets(Arc::clone(&known_secrets));
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
            known_secrets,
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
        known_connection_secrets(&settings, &self.known_secrets);
        let client =
            MastodonClient::new(name, &settings, self.metrics.clone(), breaker, public_only)?
                .with_known_secrets(Arc::clone(&self.known_secrets));
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
                tracing::info!(connection = %conn.name, code = e.kind.code(), "instance limits unknown; leaving the checks to the server");
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
            .inspect(|app| {
                self.known_secrets
                    .add_app(&app.client_id, &app.client_secret)
            })
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
            .inspect(|t| self.known_secrets.add(&t.access_token))
            .map(|t| t.access_token))
    }

    /// The user token, or the error that says how to get one (also when the server refused it).
    ///
    /// A revoked mark is re-checked rather than kept forever: a refusal may have been a passing
    /// fault (a proxy's 401, a server restarting), and a token the server accepts again must not stay
    /// a dead end. Once the mark is older than [`Core::REVOKED_RECHECK_AFTER`], the token is tried once
    /// with verify_credentials; the mark is re-stamped first, so the check happens at most once per
    /// that interval per connection, however many calls and replicas notice.
    pub async fn require_user_token(&self, conn: &Connection) -> Result<SecretString> {
        if let Some(token) = &conn.settings.access_token {
            let at = conn.pinned_token_revoked_at.load(Ordering::Relaxed);
            if at == 0 {
                return Ok(token.clone());
            }
            let now = crate::clock::unix_now();
            if now - at >= Self::REVOKED_RECHECK_AFTER.as_secs() as i64
                && conn
                    .pinned_token_revoked_at
                    .compare_exchange(at, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                && self.recheck_token(conn, token).await
            {
                conn.pinned_token_revoked_at.store(0, Ordering::Relaxed);
                return Ok(token.clone());
            }
            return Err(
                self.revoked_error(conn, conn.pinned_token_revoked_at.load(Ordering::Relaxed))
            );
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
                .inspect(|t| self.known_secrets.add(&t.access_token))
        };
        match record {
            Some(t) => match t.revoked_at {
                Some(at) => {
                    let now = crate::clock::unix_now();
                    if now - at >= Self::REVOKED_RECHECK_AFTER.as_secs() as i64
                        && self.restamp_revoked(conn, now).await?
                    {
                        if self.recheck_token(conn, &t.access_token).await {
                            self.store
                                .clear_token_revoked(&conn.name, TokenKind::User)
                                .await?;
                            conn.cache_token(Some(&t.access_token));
                            return Ok(t.access_token);
                        }
                        return Err(self.revoked_error(conn, now));
                    }
                    Err(self.revoked_error(conn, at))
                }
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

    /// Runs `call` with the user token. A refusal of the token (a 401 on any call; on servers that
    /// answer so, a 400 `Invalid Bearer token` or a 422 on verify_credentials) marks it revoked at
    /// once (in the store, for every replica), later calls fail fast until the mark is re-checked,
    /// and one warning is logged. A 403 for a missing scope is not a revocation: it is reported as a
    /// scope problem.
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
        self.run_with_token(conn, token, false, call).await
    }

    /// Records that the server refused the connection's user token.
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
                pinned = conn.settings.access_token.is_some(),
                "the server refused the user token: it was revoked; calls fail fast until the account is authorized again (or a re-check finds it accepted)"
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

    /// How old a revoked mark must be before the token is tried again. A minute: long enough that a
    /// token really revoked costs the server one extra call a minute at most, short enough that a
    /// refusal caused by a passing fault (a proxy, a restart, a misread answer) heals by itself.
    pub const REVOKED_RECHECK_AFTER: Duration = Duration::from_secs(60);

    /// What the server is known to do, without failing: the probe's capabilities when there is one,
    /// else the conservative set (which recognises every refusal shape); the connection's
    /// configured overrides win either way (applying them twice changes nothing).
    pub async fn capabilities_of(&self, conn: &Connection) -> crate::mastodon::Capabilities {
        self.instance_info_if_known(conn)
            .await
            .map(|info| info.capabilities)
            .unwrap_or_default()
            .with_overrides(&conn.settings.capabilities)
    }

    /// verify_credentials with the user token, judged as a check of the token itself: there a 422
    /// (snac) or a 400 without Mastodon's JSON (Takahē) is a refusal of the token.
    pub async fn verify_user_token(&self, conn: &Connection, token: SecretString) -> Result<Value> {
        let client = &conn.client;
        self.run_with_token(conn, token, true, |token| async move {
            client
                .get(crate::mastodon::Endpoint::VERIFY_CREDENTIALS, Some(&token))
                .await
        })
        .await
    }

    async fn run_with_token<T, F, Fut>(
        &self,
        conn: &Connection,
        token: SecretString,
        on_verify: bool,
        call: F,
    ) -> Result<T>
    where
        F: FnOnce(SecretString) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let kept = token.clone();
        match call(token).await {
            Ok(value) => {
                self.metrics.token_valid(&conn.name, true);
                Ok(value)
            }
            Err(e) => Err(self.judge_failure(conn, &kept, e, on_verify).await?),
        }
    }

    /// Decides what a failed call says about the token, acts on it (marks it revoked), and answers
    /// the error the caller sees, with what to do next.
    async fn judge_failure(
        &self,
        conn: &Connection,
        token: &SecretString,
        e: Error,
        on_verify: bool,
    ) -> Result<Error> {
        if !e
            .upstream
            .as_ref()
            .is_some_and(|u| matches!(u.status, 400 | 401 | 403 | 422))
        {
            return Ok(e);
        }
        let caps = self.capabilities_of(conn).await;
        let verdict = match token_verdict(&e, &caps, on_verify) {
            // An ambiguous answer (a 400 without Mastodon's JSON on another call) is confirmed with
            // verify_credentials: a content refusal must not lock the account out.
            TokenVerdict::Suspect => match conn
                .client
                .get(crate::mastodon::Endpoint::VERIFY_CREDENTIALS, Some(token))
                .await
            {
                Err(check) if token_verdict(&check, &caps, true) == TokenVerdict::Refused => {
                    TokenVerdict::Refused
                }
                _ => TokenVerdict::Unrelated,
            },
            verdict => verdict,
        };
        match verdict {
            TokenVerdict::Refused => {
                self.token_refused(conn).await?;
                let mut e = e;
                e.detail = format!(
                    "{}: the server refused the user token of connection {:?}; {}",
                    e.detail,
                    conn.name,
                    self.reauthorize_advice(conn)
                );
                Ok(e)
            }
            TokenVerdict::OutOfScope => {
                let needs = if caps.granular_scopes {
                    "a scope that covers this call (read:accounts for verifyCredentials, write:statuses for postStatus), or simply `read write`"
                } else {
                    "`read write`: it honours no granular scopes such as read:accounts"
                };
                let mut e = e;
                e.detail = format!(
                    "{}: the token of connection {:?} lacks a scope this call needs (not a revocation); this server needs {needs}. Set the connection's scopes, run createApp with force=true, then authorize again",
                    e.detail, conn.name
                );
                Ok(e)
            }
            TokenVerdict::Suspect | TokenVerdict::Unrelated => Ok(e),
        }
    }

    /// What to do about a refused user token: a pinned one is replaced in the configuration, a
    /// stored one is obtained again.
    pub fn reauthorize_advice(&self, conn: &Connection) -> String {
        if conn.settings.access_token.is_some() {
            format!(
                "the token is pinned in the configuration: replace the configured access_token ({}) with a working token and restart",
                Core::pinned_token_variable(&conn.name)
            )
        } else {
            "authorize again with authorizeUrl and getToken (or `mastodon-sidecar authorize`)"
                .to_owned()
        }
    }

    fn revoked_error(&self, conn: &Connection, at: i64) -> Error {
        Error::credentials_missing(format!(
            "the user token of connection {:?} was refused by the server (marked revoked at {}; re-checked once a minute): {}",
            conn.name,
            format_unix(at),
            self.reauthorize_advice(conn)
        ))
    }

    /// Moves a stored revoked mark to `now`, as the claim to re-check it: false when another caller
    /// just did (the mark is gone or fresh).
    async fn restamp_revoked(&self, conn: &Connection, now: i64) -> Result<bool> {
        if conn.inline
            || !self
                .store
                .clear_token_revoked(&conn.name, TokenKind::User)
                .await?
        {
            return Ok(false);
        }
        self.store
            .mark_token_revoked(&conn.name, TokenKind::User, now)
            .await?;
        Ok(true)
    }

    /// Tries a token marked revoked once: true when the server accepts it again.
    async fn recheck_token(&self, conn: &Connection, token: &SecretString) -> bool {
        match conn
            .client
            .get(crate::mastodon::Endpoint::VERIFY_CREDENTIALS, Some(token))
            .await
        {
            Ok(_) => {
                conn.token_changed();
                self.metrics.token_valid(&conn.name, true);
                tracing::info!(connection = %conn.name, "the server accepts the user token marked revoked again; the mark is cleared");
                true
            }
            Err(e) => {
                let caps = self.capabilities_of(conn).await;
                if token_verdict(&e, &caps, true) == TokenVerdict::Refused {
                    tracing::info!(connection = %conn.name, "the user token marked revoked is still refused");
                } else {
                    tracing::warn!(connection = %conn.name, code = e.kind.code(), "re-check of the revoked user token inconclusive; the mark stays");
                }
                false
            }
        }
    }

    /// The server no longer knows the connection's app (`invalid_client`): a stored app is
    /// forgotten, so the next `createApp` registers again; the error says so. It is not registered
    /// again here: the code or token at hand was issued to the old app and no new app rescues it,
    /// and registering is rate-limited (five per ten minutes on Mastodon).
    pub async fn app_refused(&self, conn: &Connection, e: Error) -> Result<Error> {
        let advice = if conn.settings.client_id.is_some() {
            format!(
                "client_id and client_secret are pinned in the configuration: replace them (MASTODON_SIDECAR__CONNECTIONS__{}__CLIENT_ID / __CLIENT_SECRET), or remove them and run createApp",
                conn.name.to_ascii_uppercase()
            )
        } else {
            if !conn.inline {
                self.store.delete_app(&conn.name).await?;
            }
            tracing::warn!(connection = %conn.name, "the server no longer knows the app (invalid_client); the stored app is forgotten");
            "the stored app was forgotten: run createApp, then authorize again".to_owned()
        };
        let mut refused = Error::credentials_missing(format!(
            "the server no longer knows the app of connection {:?} (invalid_client: deleted there, e.g. snac deletes it on revocation): {advice}",
            conn.name
        ));
        refused.upstream = e.upstream;
        Ok(refused)
    }

    /// The environment variable that replaces a connection's pinned user token.
    pub fn pinned_token_variable(connection: &str) -> String {
        format!(
            "MASTODON_SIDECAR__CONNECTIONS__{}__ACCESS_TOKEN",
            connection.to_ascii_uppercase()
        )
    }
}

/// The secrets configuration pins: every connection's, the store's key and URL, the API key digests.
fn known_pinned_secrets(settings: &Settings, known: &KnownSecrets) {
    for conn in settings.connections.values() {
        known_connection_secrets(conn, known);
    }
    for secret in [&settings.store.key, &settings.store.url]
        .into_iter()
        .flatten()
    {
        known.add(secret);
    }
    if let Some(password) = settings
        .store
        .url
        .as_ref()
        .and_then(|u| url::Url::parse(u.expose_secret()).ok())
        .and_then(|u| u.password().map(str::to_owned))
    {
        known.add_str(&password);
    }
    for key in &settings.security.api_keys {
        known.add_str(key.sha256.trim());
    }
}

/// A connection's pinned client secret (with its id) and user token.
fn known_connection_secrets(conn: &ConnectionSettings, known: &KnownSecrets) {
    if let Some(secret) = &conn.client_secret {
        match &conn.client_id {
            Some(id) => known.add_app(id, secret),
            None => known.add(secret),
        }
    }
    if let Some(token) = &conn.access_token {
        known.add(token);
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
            _ => crate::mastodon::address::lookup(&host, port)
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::UpstreamUnavailable,
                        format!("cannot resolve {host}"),
                    )
                })?,
        };
        // Every address must be public: the client would connect to whichever answers first.
        for ip in &addresses {
            if let Some(why) = not_public_because(ip) {
                return Err(Error::forbidden(format!(
                    "instance {host} resolves to {ip}, not a public address ({why}); loopback, private, link-local and special-purpose addresses are refused (security.allow_private_addresses is off)"
                )));
            }
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
