//! Settings: the TOML file, environment overrides and validation (contract, section 2).
//!
//! The file is read with the `config` crate, then `MASTODON_SIDECAR__<SECTION>__<KEY>` variables override
//! it. Every struct denies unknown keys, so a typo is an error, not a silently ignored line. Problems are
//! collected and reported together, each as one line that names the file, the key and what is wrong.
//! Secrets are `SecretString`, so `Debug` of the settings cannot print them. Tests pass the environment
//! as a map instead of mutating the process environment.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use url::Url;

/// Everything the sidecar is configured with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub log: LogSettings,
    pub security: SecuritySettings,
    /// One table per named connection to a Mastodon server.
    pub connections: BTreeMap<String, ConnectionSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Where the HTTP API listens; loopback by default because callers are on the same host or pod.
    pub listen: SocketAddr,
    /// Larger bodies are refused with `payload_too_large` before they are read whole.
    pub max_body_bytes: usize,
    /// The limit instead of `max_body_bytes` for the calls that carry files: `uploadMedia`, and
    /// `postStatus` (its `media` items). A file travels in the body as base64 (JSON, XML, SOAP: a
    /// third larger than the file) or raw (`multipart/form-data` to uploadMedia's REST path).
    pub max_upload_bytes: usize,
    /// How long `uploadMedia` (and postStatus's uploads) follow a server that is still processing an
    /// attachment (202, then 206 to each look) before answering it as it is (`url` null).
    pub media_processing_wait_s: u64,
    /// The bytes of request bodies held at once, across all requests: a body that would go over it is
    /// refused with `overloaded` (503, Retry-After) instead of waiting. At least `max_body_bytes`.
    pub max_buffered_body_bytes: usize,
    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    pub shutdown_grace_s: u64,
    /// On SIGTERM, `/readyz` answers 503 at once but new requests are still accepted this long, so a
    /// load balancer (a Kubernetes Service) stops routing here before the listener closes.
    pub drain_delay_ms: u64,
    /// How long a caller may take to send its body; a slower one is cut off (slow clients hold
    /// connections).
    pub request_read_timeout_s: u64,
    /// Calls in flight across all connections; beyond it callers get `overloaded` at once.
    pub max_in_flight: usize,
    /// Where Mastodon sends the browser after approval, when a connection's `redirect_uri` names the
    /// sidecar itself (e.g. `https://sidecar.example/oauth/callback`).
    pub callback_path: String,
    /// TLS: the certificate chain (PEM), leaf first. Set with `tls_key`, or neither (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// TLS: the private key (PEM: PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            // A 40 MiB file as base64 (GoToSocial's default media limit), and room for the rest.
            max_upload_bytes: 56 * 1024 * 1024,
            media_processing_wait_s: 60,
            shutdown_grace_s: 10,
            drain_delay_ms: 0,
            request_read_timeout_s: 10,
            max_in_flight: 256,
            callback_path: "/oauth/callback".to_owned(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl ServerSettings {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_s)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The embedded store's file; its folder is created when missing.
    pub path: PathBuf,
    /// A shared PostgreSQL store (`postgres://user:password@host/db?sslmode=verify-full`) for several
    /// replicas, instead of `path`. It may hold a password: it is never logged or shown.
    pub url: Option<SecretString>,
    /// A file holding the base64 key (32 bytes) that seals secrets at rest.
    pub key_file: Option<PathBuf>,
    /// The key itself, base64; meant for `MASTODON_SIDECAR__STORE__KEY`, not the file.
    pub key: Option<SecretString>,
    /// How often held user tokens are checked with Mastodon.
    pub health_interval_s: u64,
    /// How long the post ledger keeps what it knows of a post (seconds): within it, a repeat of a
    /// posted idempotency key answers the kept result instead of posting again.
    pub ledger_retention_s: u64,
    /// The most entries the post ledger keeps; beyond it the oldest are purged first.
    pub ledger_max_entries: u64,
}

/// The bounds of `store.ledger_retention_s`: a minute to 30 days.
pub const LEDGER_RETENTION_S: std::ops::RangeInclusive<u64> = 60..=2_592_000;
/// The bounds of `store.ledger_max_entries`.
pub const LEDGER_MAX_ENTRIES: std::ops::RangeInclusive<u64> = 100..=10_000_000;

/// The range of one numeric setting, and how to read it. Every numeric setting has one row in
/// [`BOUNDS`] or [`CONNECTION_BOUNDS`], checked by the validation [`Settings::load`] runs, which
/// `check-config` and `serve` share: a value that passes the check is one the code can use (a
/// semaphore takes at most `usize::MAX >> 3` permits, a timer a bounded duration).
pub struct Bound<T> {
    /// The key, under its section (`server.max_in_flight`) or its connection (`timeout_ms`).
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    /// What the number counts, for the message (`ms`, `s`, `bytes`, or empty).
    pub unit: &'static str,
    /// The value, or `None` when it is unset (a derived default).
    pub read: fn(&T) -> Option<u64>,
}

impl<T> Bound<T> {
    /// The problem with the value in `settings`, if it is out of range: the range and the value.
    fn check(&self, settings: &T) -> Option<String> {
        let value = (self.read)(settings)?;
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        (!(self.min..=self.max).contains(&value)).then(|| {
            format!(
                "must be from {} to {}{unit}; it is {value}",
                self.min, self.max
            )
        })
    }
}

fn wide(n: usize) -> Option<u64> {
    Some(u64::try_from(n).unwrap_or(u64::MAX))
}

/// The ranges of the server's and the store's numeric settings.
#[rustfmt::skip]
pub const BOUNDS: &[Bound<Settings>] = &[
    Bound { key: "server.max_body_bytes", min: 1024, max: 1 << 30, unit: "bytes", read: |s| wide(s.server.max_body_bytes) },
    Bound { key: "server.max_upload_bytes", min: 1024, max: 1 << 30, unit: "bytes", read: |s| wide(s.server.max_upload_bytes) },
    Bound { key: "server.media_processing_wait_s", min: 0, max: 3_600, unit: "s", read: |s| Some(s.server.media_processing_wait_s) },
    Bound { key: "server.shutdown_grace_s", min: 0, max: 3_600, unit: "s", read: |s| Some(s.server.shutdown_grace_s) },
    Bound { key: "server.drain_delay_ms", min: 0, max: 600_000, unit: "ms", read: |s| Some(s.server.drain_delay_ms) },
    Bound { key: "server.request_read_timeout_s", min: 1, max: 3_600, unit: "s", read: |s| Some(s.server.request_read_timeout_s) },
    Bound { key: "server.max_in_flight", min: 1, max: 1_000_000, unit: "", read: |s| wide(s.server.max_in_flight) },
    Bound { key: "store.health_interval_s", min: 1, max: 2_592_000, unit: "s", read: |s| Some(s.store.health_interval_s) },
    Bound { key: "store.ledger_retention_s", min: *LEDGER_RETENTION_S.start(), max: *LEDGER_RETENTION_S.end(), unit: "s", read: |s| Some(s.store.ledger_retention_s) },
    Bound { key: "store.ledger_max_entries", min: *LEDGER_MAX_ENTRIES.start(), max: *LEDGER_MAX_ENTRIES.end(), unit: "", read: |s| Some(s.store.ledger_max_entries) },
];

/// The ranges of every connection's numeric settings (keys under `connections.NAME.`).
#[rustfmt::skip]
pub const CONNECTION_BOUNDS: &[Bound<ConnectionSettings>] = &[
    Bound { key: "connect_timeout_ms", min: 1, max: 600_000, unit: "ms", read: |c| c.connect_timeout_ms },
    Bound { key: "timeout_ms", min: 1, max: 600_000, unit: "ms", read: |c| Some(c.timeout_ms) },
    Bound { key: "max_rate_limit_wait_s", min: 0, max: 3_600, unit: "s", read: |c| Some(c.max_rate_limit_wait_s) },
    Bound { key: "max_retries", min: 0, max: 10, unit: "", read: |c| Some(c.max_retries) },
    Bound { key: "max_in_flight", min: 1, max: 100_000, unit: "", read: |c| wide(c.max_in_flight) },
    Bound { key: "doubt_settle_ms", min: 100, max: 3_600_000, unit: "ms", read: |c| c.doubt_settle_ms },
];

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            path: PathBuf::from("data/sidecar.db"),
            url: None,
            key_file: None,
            key: None,
            health_interval_s: 900,
            ledger_retention_s: 86_400,
            ledger_max_entries: 100_000,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, or per module such as `info,mastodon_sidecar=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Json,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// May `init` define a connection from its parameters?
    pub allow_inline_connections: bool,
    /// May responses carry `client_secret` and `access_token`?
    pub expose_secrets: bool,
    /// Host patterns an inline connection may use: `mastodon.social`, `*.example.org`.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub allowed_instances: Vec<String>,
    /// May an inline instance be plain http?
    pub allow_insecure_instances: bool,
    /// May an inline instance resolve to loopback, private, link-local or other special-purpose
    /// addresses (`mastodon::address::SPECIAL`)?
    pub allow_private_addresses: bool,
    /// May a non-loopback listener run without API keys?
    pub allow_unauthenticated: bool,
    /// Callers' keys, each with the connections and operations it may use. None: callers need no
    /// key (a loopback listener only, unless `allow_unauthenticated`). See `security.rs`.
    pub api_keys: Vec<crate::security::ApiKeySettings>,
    /// What `callApi` may reach when callers need no key (and from the CLI): `METHOD /api/path`
    /// patterns (`security/routes.rs`). None, the default: callApi is off. With API keys, each
    /// key's own `call_api` decides instead.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub call_api_routes: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRateLimit {
    Wait,
    #[default]
    Fail,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSettings {
    /// The server's base URL, e.g. `https://mastodon.social`.
    pub instance: Url,
    #[serde(default = "default_client_name")]
    pub client_name: String,
    #[serde(default)]
    pub website: Option<Url>,
    #[serde(default = "default_redirect_uri")]
    pub redirect_uri: String,
    /// Space-separated, as Mastodon takes it.
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// Pinned app credentials; without them `createApp` obtains and stores them.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// A pinned user token; without it `getToken` obtains and stores one.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// How long connecting to the server may take (milliseconds). Unset, it is derived:
    /// [`ConnectionSettings::connect_timeout_ms`], the smaller of 5000 and `timeout_ms`, so a short
    /// `timeout_ms` alone is valid. Set, it must not exceed `timeout_ms`.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// The whole budget of one call to the server, retries included (milliseconds): past it the
    /// caller gets `upstream_timeout`, never a hang. Waiting for a rate-limit reset is bounded
    /// separately, by `max_rate_limit_wait_s`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub on_rate_limit: OnRateLimit,
    #[serde(default = "default_max_rate_limit_wait_s")]
    pub max_rate_limit_wait_s: u64,
    /// How often a failed request that is safe to repeat is sent again (connect failures, timeouts,
    /// 5xx; a 4xx other than 429 never is).
    #[serde(default = "default_max_retries")]
    pub max_retries: u64,
    /// Calls to this connection's server in flight at once; a call beyond it waits up to a second for a
    /// slot, then gets `overloaded`.
    #[serde(default = "default_connection_max_in_flight")]
    pub max_in_flight: usize,
    /// How long after a post's answer was lost a status that has not shown up among the account's
    /// statuses is taken as never created, and sent again (milliseconds). Default: three times
    /// `timeout_ms`, so a request the server stalled on cannot still create it.
    #[serde(default)]
    pub doubt_settle_ms: Option<u64>,
    /// Corrections to what the sidecar derives from the server's software (nodeinfo): any fact of
    /// `mastodon::Capabilities`, e.g. `honours_idempotency_key = false`.
    #[serde(default)]
    pub capabilities: crate::mastodon::CapabilityOverrides,
}

pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

fn default_client_name() -> String {
    "mastodon-sidecar".to_owned()
}
fn default_redirect_uri() -> String {
    OOB_REDIRECT_URI.to_owned()
}
fn default_scopes() -> String {
    // `read write` rather than granular scopes: it is the one set every server in servers.md
    // honours. Takahē knows only `read`/`write` (a `read:accounts` token gets 403 on
    // verify_credentials) and Mitra keeps only `read`/`write`/`profile` at registration (granular
    // ones leave the app with no scopes); `profile` needs Mastodon 4.3+. Narrow it per connection
    // where the server honours granular scopes.
    "read write".to_owned()
}
/// The connect timeout when none is set and `timeout_ms` is longer.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_rate_limit_wait_s() -> u64 {
    60
}
fn default_max_retries() -> u64 {
    2
}
fn default_connection_max_in_flight() -> usize {
    64
}

impl ConnectionSettings {
    /// A connection with defaults for everything but the instance (inline connections, tests).
    pub fn for_instance(instance: Url) -> Self {
        ConnectionSettings {
            instance,
            client_name: default_client_name(),
            website: None,
            redirect_uri: default_redirect_uri(),
            scopes: default_scopes(),
            client_id: None,
            client_secret: None,
            access_token: None,
            connect_timeout_ms: None,
            timeout_ms: default_timeout_ms(),
            on_rate_limit: OnRateLimit::Fail,
            max_rate_limit_wait_s: default_max_rate_limit_wait_s(),
            max_retries: default_max_retries(),
            max_in_flight: default_connection_max_in_flight(),
            capabilities: Default::default(),
            doubt_settle_ms: None,
        }
    }

    /// The connect timeout in effect: the one set, else the smaller of
    /// [`DEFAULT_CONNECT_TIMEOUT_MS`] and `timeout_ms` (whatever layer set `timeout_ms`: the file
    /// or the environment, which are merged before this is read).
    pub fn connect_timeout_ms(&self) -> u64 {
        self.connect_timeout_ms
            .unwrap_or_else(|| DEFAULT_CONNECT_TIMEOUT_MS.min(self.timeout_ms))
    }

    /// [`ConnectionSettings::doubt_settle_ms`], or its default derived from `timeout_ms`.
    pub fn doubt_settle_ms(&self) -> u64 {
        self.doubt_settle_ms
            .unwrap_or_else(|| self.timeout_ms.saturating_mul(3))
    }
}

/// An environment variable may carry a list as `a,b,c`; the file carries a TOML array.
fn list_or_comma_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// One configuration problem: where, which key, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {}: {}", self.file, key, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading, so an operator fixes them in one go.
#[derive(Clone, Debug)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// The environment variables that concern the sidecar, from the process.
pub fn process_environment() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.to_ascii_uppercase().starts_with(ENV_PREFIX))
        .collect()
}

const ENV_PREFIX: &str = "MASTODON_SIDECAR__";

impl Settings {
    /// Reads `path`, applies `env` overrides and validates the result.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let problem = |key: Option<String>, message: String| {
            ConfigError(vec![Problem {
                file: file.clone(),
                key,
                message,
            }])
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| problem(None, format!("cannot read the configuration: {e}")))?;
        Self::from_toml_str(&file, &text, env)
    }

    /// Like [`Settings::load`] for a configuration held in memory; `origin` names it in messages.
    pub fn from_toml_str(
        origin: &str,
        text: &str,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let problem = |key: Option<String>, message: String| {
            ConfigError(vec![Problem {
                file: origin.to_owned(),
                key,
                message,
            }])
        };
        // Parse once ourselves for syntax: the `config` crate loses the position of a TOML error,
        // and an operator needs the line and column.
        if let Err(e) = text.parse::<toml::Table>() {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            return Err(problem(
                None,
                format!(
                    "invalid TOML at line {line}, column {column}: {}",
                    e.message().trim()
                ),
            ));
        }
        let env_map: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.to_ascii_uppercase().starts_with(ENV_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let built = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("MASTODON_SIDECAR")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(env_map)),
            )
            .build()
            .map_err(|e| problem(None, e.to_string()))?;
        let settings: Settings = serde_path_to_error::deserialize(built).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let (key, message) = describe_serde_problem(&path, &inner);
            problem(key, message)
        })?;
        settings.validate(origin)?;
        Ok(settings)
    }

    /// Rules serde cannot express. Every problem is reported, then loading fails once.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut add = |key: String, message: String| {
            problems.push(Problem {
                file: origin.to_owned(),
                key: Some(key),
                message,
            })
        };
        for bound in BOUNDS {
            if let Some(message) = bound.check(self) {
                add(bound.key.into(), message);
            }
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => add(
                "server.tls_key".into(),
                "tls_cert and tls_key go together: set both (PEM files) or neither".into(),
            ),
            (None, Some(_)) => add(
                "server.tls_cert".into(),
                "tls_cert and tls_key go together: set both (PEM files) or neither".into(),
            ),
            _ => {}
        }
        for (key, path) in [
            ("server.tls_cert", &self.server.tls_cert),
            ("server.tls_key", &self.server.tls_key),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                add(key.into(), "must not be empty".into());
            }
        }
        if self.store.path.as_os_str().is_empty() {
            add("store.path".into(), "must not be empty".into());
        }
        if let Some(url) = &self.store.url {
            // The URL may hold a password: messages name the scheme at most, never the value.
            let url = url.expose_secret().trim();
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("postgres" | "postgresql") => {}
                Some(s)
                    if !s.is_empty()
                        && s
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
                {
                    add(
                        "store.url".into(),
                        format!("{s}:// is not supported; give a postgres:// or postgresql:// URL"),
                    )
                }
                _ => add(
                    "store.url".into(),
                    "is not a postgres:// or postgresql:// URL (the value is not shown: it may hold a password)".into(),
                ),
            }
        }
        if !self.server.callback_path.starts_with('/') || self.server.callback_path.len() < 2 {
            add(
                "server.callback_path".into(),
                "must be a path such as /oauth/callback".into(),
            );
        }
        if self.store.key_file.is_some() && self.store.key.is_some() {
            add(
                "store.key_file".into(),
                "give the key once: store.key (MASTODON_SIDECAR__STORE__KEY) or store.key_file, not both".into(),
            );
        }
        for (key, message) in crate::security::check_api_keys(self) {
            add(key, message);
        }
        if !self.server.listen.ip().is_loopback()
            && self.security.api_keys.is_empty()
            && !self.security.allow_unauthenticated
        {
            add(
                "server.listen".into(),
                format!(
                    "{} is reachable from other hosts and callers would need no key; configure [[security.api_keys]], listen on loopback, or set security.allow_unauthenticated = true",
                    self.server.listen
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            add("log.level".into(), format!("not a valid filter: {e}"));
        }
        for pattern in &self.security.allowed_instances {
            if !valid_host_pattern(pattern) {
                add(
                    "security.allowed_instances".into(),
                    format!("{pattern:?} is not a host name or a `*.domain` pattern"),
                );
            }
        }
        for (name, conn) in &self.connections {
            let key = |k: &str| format!("connections.{name}.{k}");
            if !valid_connection_name(name) {
                add(
                    format!("connections.{name}"),
                    "a connection name is 1 to 64 characters of a-z, 0-9, _ and - (it also names environment variables and metric labels)".into(),
                );
            }
            if let Err(message) = check_instance_url(&conn.instance) {
                add(key("instance"), message);
            }
            if conn.client_name.trim().is_empty() || conn.client_name.chars().count() > 60 {
                add(
                    key("client_name"),
                    "must be 1 to 60 characters (Mastodon's limit)".into(),
                );
            }
            if conn.redirect_uri != OOB_REDIRECT_URI && Url::parse(&conn.redirect_uri).is_err() {
                add(
                    key("redirect_uri"),
                    format!(
                        "{:?} is neither an absolute URL nor {OOB_REDIRECT_URI}",
                        conn.redirect_uri
                    ),
                );
            }
            if conn.scopes.split_whitespace().next().is_none() {
                add(
                    key("scopes"),
                    "must name at least one scope, space-separated".into(),
                );
            }
            if conn.client_id.is_some() != conn.client_secret.is_some() {
                add(
                    key("client_secret"),
                    "client_id and client_secret go together: set both or neither".into(),
                );
            }
            if let Some(token) = &conn.access_token {
                if token.expose_secret().trim().is_empty() {
                    add(key("access_token"), "is empty".into());
                } else if token.expose_secret().chars().any(char::is_control) {
                    // It is sent in the Authorization header, which cannot carry one.
                    add(
                        key("access_token"),
                        "holds a control character (a line break?); the value is not shown".into(),
                    );
                }
            }
            for bound in CONNECTION_BOUNDS {
                if let Some(message) = bound.check(conn) {
                    add(key(bound.key), message);
                }
            }
            // Only an explicit one: the derived default never exceeds timeout_ms.
            if let Some(connect) = conn.connect_timeout_ms {
                if connect > conn.timeout_ms {
                    add(
                        key("connect_timeout_ms"),
                        format!(
                            "must not exceed timeout_ms ({}); it is {connect} (leave it out to use the smaller of {DEFAULT_CONNECT_TIMEOUT_MS} and timeout_ms)",
                            conn.timeout_ms
                        ),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The connection a request uses when it names none: the only one, or the one named `default`.
    pub fn default_connection(&self) -> Option<&str> {
        if self.connections.len() == 1 {
            return self.connections.keys().next().map(String::as_str);
        }
        self.connections
            .get_key_value("default")
            .map(|(k, _)| k.as_str())
    }
}

/// Lowercase only: environment overrides arrive lowercased, so `Main` could never be overridden.
pub fn valid_connection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_host_pattern(pattern: &str) -> bool {
    let host = pattern.strip_prefix("*.").unwrap_or(pattern);
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A Mastodon base URL: http(s), a host, nothing after the path.
pub fn check_instance_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{url} is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{url} must not have a query or a fragment"));
    }
    Ok(())
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, column)
}

/// Turns serde's message into a key and a message an operator can act on.
fn describe_serde_problem(path: &str, message: &str) -> (Option<String>, String) {
    let path = if path == "." { "" } else { path };
    let join = |leaf: &str| {
        if path.is_empty() {
            leaf.to_owned()
        } else if path == leaf || path.ends_with(&format!(".{leaf}")) {
            // serde_path_to_error already put the offending key at the end of the path.
            path.to_owned()
        } else {
            format!("{path}.{leaf}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return (Some(join(field)), "unknown key".to_owned());
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((field, _)) = rest.split_once('`') {
            return (Some(join(field)), "is required".to_owned());
        }
    }
    let key = (!path.is_empty()).then(|| path.to_owned());
    (key, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml_str("test.toml", text, &HashMap::new())
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let s = load("").expect("defaults load");
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.max_body_bytes, 1_048_576);
        assert_eq!(s.store.path, PathBuf::from("data/sidecar.db"));
        assert!(s.connections.is_empty());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_section() {
        let e = load("[server]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n").unwrap_err();
        assert_eq!(e.to_string(), "test.toml: server.lsiten: unknown key");
    }

    #[test]
    fn invalid_toml_reports_line_and_column() {
        let e = load("[server]\nlisten = \n").unwrap_err();
        let line = e.to_string();
        assert!(
            line.starts_with("test.toml: invalid TOML at line 2, column"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn a_bad_url_names_the_connection_key() {
        let e = load("[connections.main]\ninstance = \"ftp://x\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.toml: connections.main.instance: ftp://x/ is not an http or https URL"
        );
    }

    #[test]
    fn a_bad_listen_address_is_named() {
        let e = load("[server]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("test.toml: server.listen: "),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides_the_file_including_secrets_and_numbers() {
        let env = HashMap::from([
            (
                "MASTODON_SIDECAR__CONNECTIONS__MAIN__ACCESS_TOKEN".to_owned(),
                "tok".to_owned(),
            ),
            (
                "MASTODON_SIDECAR__SERVER__MAX_BODY_BYTES".to_owned(),
                "2048".to_owned(),
            ),
            (
                "MASTODON_SIDECAR__SECURITY__ALLOWED_INSTANCES".to_owned(),
                "a.example, *.b.example".to_owned(),
            ),
        ]);
        let s = Settings::from_toml_str(
            "t",
            "[connections.main]\ninstance = \"https://m.example\"\n",
            &env,
        )
        .expect("loads");
        assert_eq!(s.server.max_body_bytes, 2048);
        let token = s.connections["main"].access_token.as_ref().expect("token");
        assert_eq!(token.expose_secret(), "tok");
        assert_eq!(s.security.allowed_instances, ["a.example", "*.b.example"]);
        // The token must not leak through Debug.
        assert!(!format!("{s:?}").contains("tok\""));
    }

    #[test]
    fn the_default_connection_is_the_only_one_or_the_one_named_default() {
        let one = load("[connections.x]\ninstance = \"https://a.example\"\n").unwrap();
        assert_eq!(one.default_connection(), Some("x"));
        let two = load("[connections.x]\ninstance = \"https://a.example\"\n[connections.y]\ninstance = \"https://b.example\"\n").unwrap();
        assert_eq!(two.default_connection(), None);
        let named = load("[connections.x]\ninstance = \"https://a.example\"\n[connections.default]\ninstance = \"https://b.example\"\n").unwrap();
        assert_eq!(named.default_connection(), Some("default"));
    }

    #[test]
    fn several_problems_are_reported_together() {
        let e = load("[connections.Main]\ninstance = \"https://a.example\"\nscopes = \" \"\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn ledger_bounds_are_checked_and_named() {
        let s = load("").unwrap();
        assert_eq!(s.store.ledger_retention_s, 86_400);
        assert_eq!(s.store.ledger_max_entries, 100_000);
        let e = load("[store]\nledger_retention_s = 59\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.toml: store.ledger_retention_s: must be from 60 to 2592000 s; it is 59"
        );
        let e = load("[store]\nledger_max_entries = 10000001\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.toml: store.ledger_max_entries: must be from 100 to 10000000; it is 10000001"
        );
        let env = HashMap::from([(
            "MASTODON_SIDECAR__STORE__LEDGER_RETENTION_S".to_owned(),
            "2592001".to_owned(),
        )]);
        let e = Settings::from_toml_str("t", "", &env).unwrap_err();
        assert!(
            e.to_string().starts_with("t: store.ledger_retention_s: "),
            "{e}"
        );
        let ok = load("[store]\nledger_retention_s = 60\nledger_max_entries = 10000000\n").unwrap();
        assert_eq!(ok.store.ledger_retention_s, 60);
    }

    /// `key = value` as TOML: in its section for server and store keys, in a connection otherwise.
    fn with_setting(key: &str, value: u64, extra: &str) -> String {
        match key.split_once('.') {
            Some((section, leaf)) => format!("[{section}]\n{leaf} = {value}\n"),
            None => format!(
                "[connections.main]\ninstance = \"https://m.example\"\n{key} = {value}\n{extra}"
            ),
        }
    }

    #[test]
    fn every_numeric_setting_is_refused_outside_its_range_naming_key_range_and_value() {
        let keys: Vec<(String, u64, u64)> = BOUNDS
            .iter()
            .map(|b| (b.key.to_owned(), b.min, b.max))
            .chain(
                CONNECTION_BOUNDS
                    .iter()
                    .map(|b| (b.key.to_owned(), b.min, b.max)),
            )
            .collect();
        assert_eq!(keys.len(), 16, "every numeric setting has a row");
        for (key, min, max) in keys {
            let named = if key.contains('.') {
                key.clone()
            } else {
                format!("connections.main.{key}")
            };
            // A long budget, so connect_timeout_ms is judged by its own range only.
            let extra = if key == "timeout_ms" {
                ""
            } else {
                "timeout_ms = 600000\n"
            };
            for fine in [min, max] {
                load(&with_setting(&key, fine, extra))
                    .unwrap_or_else(|e| panic!("{key} = {fine} is in range: {e}"));
            }
            let mut wrong = vec![max + 1, i64::MAX as u64];
            if min > 0 {
                wrong.push(min - 1);
            }
            for value in wrong {
                let e = load(&with_setting(&key, value, extra))
                    .expect_err(&format!("{key} = {value} is out of range"));
                let line =
                    e.0.iter()
                        .find(|p| p.key.as_deref() == Some(named.as_str()))
                        .unwrap_or_else(|| panic!("{key} = {value}: {e}"))
                        .to_string();
                let range = format!("must be from {min} to {max}");
                assert!(line.contains(&range), "{line}");
                assert!(line.ends_with(&format!("it is {value}")), "{line}");
            }
        }
    }

    #[test]
    fn max_in_flight_of_i64_max_is_refused_where_a_semaphore_would_panic() {
        let e = load("[server]\nmax_in_flight = 9223372036854775807\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.toml: server.max_in_flight: must be from 1 to 1000000; it is 9223372036854775807"
        );
        let e = load(&with_setting("max_in_flight", i64::MAX as u64, "")).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "test.toml: connections.main.max_in_flight: must be from 1 to 100000;"
            ),
            "{e}"
        );
        // Every maximum fits a semaphore.
        for b in BOUNDS.iter().filter(|b| b.key.ends_with("max_in_flight")) {
            assert!(b.max as usize <= tokio::sync::Semaphore::MAX_PERMITS);
        }
    }

    #[test]
    fn the_connect_timeout_is_derived_from_a_shorter_timeout_and_an_explicit_one_is_held_to_it() {
        let conn = |text: &str, env: &[(&str, &str)]| {
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::from_toml_str(
                "test.toml",
                &format!("[connections.main]\ninstance = \"https://m.example\"\n{text}"),
                &env,
            )
            .map(|s| s.connections["main"].clone())
        };
        let c = conn("", &[]).unwrap();
        assert_eq!(
            (c.connect_timeout_ms, c.connect_timeout_ms()),
            (None, 5_000)
        );
        let c = conn("timeout_ms = 800\n", &[]).expect("a short timeout alone is accepted");
        assert_eq!(c.connect_timeout_ms(), 800);
        // Layered: the environment's timeout_ms is the one the default is derived from.
        let c = conn(
            "timeout_ms = 20000\n",
            &[("MASTODON_SIDECAR__CONNECTIONS__MAIN__TIMEOUT_MS", "700")],
        )
        .unwrap();
        assert_eq!(c.connect_timeout_ms(), 700);
        let c = conn("timeout_ms = 800\nconnect_timeout_ms = 300\n", &[]).unwrap();
        assert_eq!(c.connect_timeout_ms(), 300);
        let e = conn("timeout_ms = 800\nconnect_timeout_ms = 900\n", &[]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "test.toml: connections.main.connect_timeout_ms: must not exceed timeout_ms (800); it is 900"
            ),
            "{e}"
        );
        let e = conn(
            "timeout_ms = 800\n",
            &[(
                "MASTODON_SIDECAR__CONNECTIONS__MAIN__CONNECT_TIMEOUT_MS",
                "5000",
            )],
        )
        .unwrap_err();
        assert!(e.to_string().contains("connect_timeout_ms"), "{e}");
        // Inline connections get the same derived default.
        let inline = ConnectionSettings::for_instance(Url::parse("https://m.example").unwrap());
        assert_eq!(inline.connect_timeout_ms(), 5_000);
    }

    #[test]
    fn a_pinned_token_with_a_line_break_is_refused_without_showing_it() {
        let e = load(
            "[connections.main]\ninstance = \"https://m.example\"\naccess_token = \"secret-tok\\r\\nX: 1\"\n",
        )
        .unwrap_err();
        let line = e.to_string();
        assert!(
            line.contains("connections.main.access_token: holds a control character"),
            "{line}"
        );
        assert!(!line.contains("secret-tok"), "{line}");
    }

    #[test]
    fn the_readme_lists_every_range_as_the_table_has_it() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        let rows = BOUNDS
            .iter()
            .map(|b| (b.key.to_owned(), b.min, b.max))
            .chain(
                CONNECTION_BOUNDS
                    .iter()
                    .map(|b| (format!("connections.NAME.{}", b.key), b.min, b.max)),
            );
        for (key, min, max) in rows {
            let row = format!("| `{key}` | {min} to {max}");
            assert!(readme.contains(&row), "README.md lacks {row:?}");
        }
    }

    #[test]
    fn the_shipped_configuration_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sidecar.toml");
        Settings::load(&path, &HashMap::new()).expect("config/sidecar.toml validates");
    }
}
