//! Caller authentication: the API keys of `[[security.api_keys]]` and the rights each one holds.
//!
//! The configuration holds only the SHA-256 of a key, never the key. A presented key is hashed and
//! compared with every configured digest in constant time and without an early exit, so neither the
//! timing nor the order of the keys tells a caller how close it came. A known key is then checked against
//! its rights: the operations it may call and the connections it may use (the call's `connection`
//! parameter, or the default connection when it names none). With no key configured, nothing is
//! checked: that is only allowed on a loopback listener, or with `security.allow_unauthenticated`.
//!
//! This module knows neither actix-web nor a wire format: `http/` hands in the header values and a
//! decoded call, and renders the [`Error`] it gets back like any other. No key and no digest ever goes
//! into an error detail, a log line or `Debug` output; a key is named by its configured `name`.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::Settings;
use crate::error::{Error, ErrorKind};
use crate::operations::{Core, Operation};

pub mod routes;

pub use routes::Routes;

/// In `connections` and `operations`: every one.
pub const WILDCARD: &str = "*";

/// The shortest key `hash-key` accepts (characters).
pub const MIN_KEY_CHARS: usize = 16;

/// The `WWW-Authenticate` challenge that goes with `unauthenticated`.
pub const CHALLENGE: &str = "Bearer realm=\"mastodon-sidecar\"";

/// One `[[security.api_keys]]` entry, as configured. Every field is required; a missing one is read as
/// empty and reported by [`check_api_keys`] with its path (the `config` crate's own message for a
/// missing field inside a list does not name it well).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Names the key in log lines and messages; unique.
    #[serde(default)]
    pub name: String,
    /// The hex SHA-256 of the key (`mastodon-sidecar hash-key` prints it).
    #[serde(default)]
    pub sha256: String,
    /// Configured connection names, or `"*"`.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Operation names (`postStatus`, ...), or `"*"`.
    #[serde(default)]
    pub operations: Vec<String>,
    /// What `callApi` may reach with this key: `METHOD /api/path` patterns (`security/routes.rs`);
    /// none, the default, keeps callApi off for it.
    #[serde(default)]
    pub call_api: Vec<String>,
}

impl fmt::Debug for ApiKeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest of a weak key can be reversed by guessing: it stays out of Debug too.
        f.debug_struct("ApiKeySettings")
            .field("name", &self.name)
            .field("sha256", &"[digest]")
            .field("connections", &self.connections)
            .field("operations", &self.operations)
            .field("call_api", &self.call_api)
            .finish()
    }
}

/// The lowercase hex SHA-256 of a key: what `sha256` holds.
pub fn digest_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text, &mut digest).ok()?;
    Some(digest)
}

/// The problems of `security.api_keys`, as (key path, message), for `config.rs` to report.
pub fn check_api_keys(settings: &Settings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut digests: Vec<([u8; 32], usize)> = Vec::new();
    let operation_names: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
    for (i, key) in settings.security.api_keys.iter().enumerate() {
        let path = |field: &str| format!("security.api_keys[{i}].{field}");
        let name = key.name.trim();
        if name.is_empty() {
            problems.push((
                path("name"),
                "is required: a name for the key's caller, used in logs".to_owned(),
            ));
        } else if name.chars().count() > 64 {
            problems.push((path("name"), "must be at most 64 characters".to_owned()));
        } else if names.contains(&name) {
            problems.push((
                path("name"),
                format!("{name:?} names another key too; names must be unique"),
            ));
        } else {
            names.push(name);
        }
        match parse_digest(&key.sha256) {
            None if key.sha256.trim().is_empty() => problems.push((
                path("sha256"),
                "is required: the hex SHA-256 of the key, as `mastodon-sidecar hash-key` prints it".to_owned(),
            )),
            None => problems.push((
                path("sha256"),
                "is not a SHA-256 digest (64 hex characters); `mastodon-sidecar hash-key` prints the one of a key, and the key itself never goes into the configuration".to_owned(),
            )),
            Some(digest) => match digests.iter().find(|(d, _)| *d == digest) {
                Some((_, other)) => problems.push((
                    path("sha256"),
                    format!("is the same key as security.api_keys[{other}]; give every caller its own key"),
                )),
                None => digests.push((digest, i)),
            },
        }
        if key.connections.is_empty() {
            problems.push((
                path("connections"),
                "must name at least one connection, or \"*\" for all".to_owned(),
            ));
        }
        for connection in &key.connections {
            if connection != WILDCARD && !settings.connections.contains_key(connection) {
                let known: Vec<&str> = settings.connections.keys().map(String::as_str).collect();
                problems.push((
                    path("connections"),
                    format!(
                        "{connection:?} is not a configured connection; the connections are {} (or \"*\")",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                ));
            }
        }
        if key.operations.is_empty() {
            problems.push((
                path("operations"),
                "must name at least one operation, or \"*\" for all".to_owned(),
            ));
        }
        for operation in &key.operations {
            if operation != WILDCARD && !operation_names.contains(&operation.as_str()) {
                problems.push((
                    path("operations"),
                    format!(
                        "{operation:?} is not an operation; the operations are {} (or \"*\")",
                        operation_names.join(", ")
                    ),
                ));
            }
        }
        if let Err(messages) = Routes::parse(&key.call_api) {
            for m in messages {
                problems.push((path("call_api"), m));
            }
        }
        let lists_call_api = key
            .operations
            .iter()
            .any(|o| o == Operation::CallApi.name());
        if lists_call_api && key.call_api.is_empty() {
            problems.push((
                path("call_api"),
                "is empty while operations lists callApi: name the routes it may reach (\"GET /api/v1/trends/**\")".to_owned(),
            ));
        }
        if !key.call_api.is_empty()
            && !lists_call_api
            && !key.operations.iter().any(|o| o == WILDCARD)
        {
            problems.push((
                path("call_api"),
                "names routes, but operations does not list callApi: add it, or drop call_api"
                    .to_owned(),
            ));
        }
    }
    if let Err(messages) = Routes::parse(&settings.security.call_api_routes) {
        for m in messages {
            problems.push(("security.call_api_routes".to_owned(), m));
        }
    }
    problems
}

/// What a key may reach: everything, or the listed ones.
#[derive(Clone, Debug)]
enum Scope<T> {
    All,
    Only(Vec<T>),
}

impl<T: PartialEq> Scope<T> {
    fn allows(&self, item: &T) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(items) => items.contains(item),
        }
    }
}

/// A configured key, ready for checking.
pub struct ApiKey {
    name: String,
    digest: [u8; 32],
    connections: Scope<String>,
    operations: Scope<Operation>,
    call_api: Arc<Routes>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("connections", &self.connections)
            .field("operations", &self.operations)
            .field("call_api", &self.call_api)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// The configured name: what logs and messages call the key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// May this key call `operation` on `connection` (the connection the call uses, when it can be
    /// told)? `forbidden` when not.
    pub fn authorize(&self, operation: Operation, connection: Option<&str>) -> Result<(), Error> {
        self.authorize_operation(operation)?;
        let Scope::Only(connections) = &self.connections else {
            return Ok(());
        };
        match connection {
            Some(name) if connections.iter().any(|c| c == name) => Ok(()),
            Some(name) => Err(Error::forbidden(format!(
                "API key {:?} may not use connection {:?} (security.api_keys)",
                self.name,
                name.chars().take(64).collect::<String>()
            ))),
            None => Err(Error::forbidden(format!(
                "API key {:?} may use only the connections {}; name one with `connection`",
                self.name,
                connections.join(", ")
            ))),
        }
    }

    /// May this key call `operation` at all? What the request head already tells, checked before the
    /// body is read; [`ApiKey::authorize`] checks the connection once the body is decoded.
    pub fn authorize_operation(&self, operation: Operation) -> Result<(), Error> {
        if !self.operations.allows(&operation) {
            let allowed = match &self.operations {
                Scope::All => String::new(),
                Scope::Only(ops) => ops
                    .iter()
                    .map(|op| op.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            return Err(Error::forbidden(format!(
                "API key {:?} may not call {operation}; it may call {allowed} (security.api_keys)",
                self.name
            )));
        }
        Ok(())
    }
}

/// The configured keys. Empty: callers need none.
#[derive(Debug, Default)]
pub struct Keys {
    keys: Vec<ApiKey>,
    /// `security.call_api_routes`: what callApi reaches when callers need no key.
    call_api: Arc<Routes>,
}

impl Keys {
    /// The keys of `settings`, refused when any entry is invalid (settings built in code skip the
    /// validation of the file; a key that cannot be read must not leave the door open).
    pub fn from_settings(settings: &Settings) -> Result<Keys, String> {
        let problems = check_api_keys(settings);
        if !problems.is_empty() {
            let lines: Vec<String> = problems
                .into_iter()
                .map(|(key, message)| format!("{key}: {message}"))
                .collect();
            return Err(lines.join("; "));
        }
        let keys = settings
            .security
            .api_keys
            .iter()
            .filter_map(|key| {
                let digest = parse_digest(&key.sha256)?;
                let connections = if key.connections.iter().any(|c| c == WILDCARD) {
                    Scope::All
                } else {
                    Scope::Only(key.connections.clone())
                };
                let operations = if key.operations.iter().any(|o| o == WILDCARD) {
                    Scope::All
                } else {
                    Scope::Only(
                        Operation::ALL
                            .into_iter()
                            .filter(|op| key.operations.iter().any(|o| o == op.name()))
                            .collect(),
                    )
                };
                Some(ApiKey {
                    name: key.name.trim().to_owned(),
                    digest,
                    connections,
                    operations,
                    call_api: Arc::new(Routes::parse(&key.call_api).unwrap_or_default()),
                })
            })
            .collect();
        let call_api =
            Arc::new(Routes::parse(&settings.security.call_api_routes).unwrap_or_default());
        Ok(Keys { keys, call_api })
    }

    /// What callApi may reach for a call `key` authenticated (`None`: callers need no key): the
    /// key's own routes, or `security.call_api_routes` when no keys are configured.
    pub fn call_api_routes(&self, key: Option<&ApiKey>) -> Arc<Routes> {
        match key {
            Some(key) => key.call_api.clone(),
            None if self.required() => Arc::new(Routes::default()),
            None => self.call_api.clone(),
        }
    }

    /// Whether callers must present a key.
    pub fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key a caller presented, when keys are required: `Ok(None)` when none are configured,
    /// `unauthenticated` when the key is missing or unknown.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Option<&ApiKey>, Error> {
        if !self.required() {
            return Ok(None);
        }
        let Some(presented) = presented.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "this sidecar needs an API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every digest is compared, and the match is selected without a branch: no early exit.
        let mut found: u32 = 0;
        for (i, key) in self.keys.iter().enumerate() {
            let candidate = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &candidate, digest.ct_eq(&key.digest));
        }
        match found.checked_sub(1).and_then(|i| self.keys.get(i as usize)) {
            Some(key) => Ok(Some(key)),
            None => Err(Error::new(
                ErrorKind::Unauthenticated,
                "the API key is not known here (send the key itself, not its sha256)",
            )),
        }
    }
}

/// The key a request carries: `X-API-Key`, else the credentials of `Authorization: Bearer`.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Option<&'a str> {
    let from_header = x_api_key.map(str::trim).filter(|k| !k.is_empty());
    from_header.or_else(|| {
        let (scheme, credentials) = authorization?.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| credentials.trim())
            .filter(|k| !k.is_empty())
    })
}

/// `init` parameters that define a connection inline (which is then named `default` unless the call
/// names it).
const INLINE_PARAMETERS: [&str; 6] = [
    "instance",
    "access_token",
    "client_id",
    "client_secret",
    "scopes",
    "redirect_uri",
];

/// The connection a decoded call uses, as far as it can be told before running it: its `connection`
/// parameter; else, for an inline `init`, `default`; else the default connection (the only one, or the
/// one named `default`). `None` when it cannot be told (then only a key for every connection may call).
pub fn call_connection(core: &Core, operation: Operation, params: &Value) -> Option<String> {
    match params.get("connection") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(Value::String(s)) => return Some(s.trim().to_owned()),
        Some(Value::Number(n)) => return Some(n.to_string()),
        Some(Value::Bool(b)) => return Some(b.to_string()),
        // A list or an object: the operation will refuse it; no connection can be told.
        Some(_) => return None,
    }
    let present = |v: &Value| !v.is_null() && v.as_str().is_none_or(|s| !s.is_empty());
    if operation == Operation::Init
        && INLINE_PARAMETERS
            .iter()
            .any(|p| params.get(*p).is_some_and(present))
    {
        return Some("default".to_owned());
    }
    core.connection(None).ok().map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, connections: &[&str], operations: &[&str]) -> ApiKeySettings {
        ApiKeySettings {
            name: name.into(),
            sha256: digest_hex(secret),
            connections: connections.iter().map(|s| s.to_string()).collect(),
            operations: operations.iter().map(|s| s.to_string()).collect(),
            call_api: Vec::new(),
        }
    }

    fn settings(keys: Vec<ApiKeySettings>) -> Settings {
        let mut s = Settings::default();
        s.connections.insert(
            "main".into(),
            crate::config::ConnectionSettings::for_instance("https://m.example".parse().unwrap()),
        );
        s.security.api_keys = keys;
        s
    }

    #[test]
    fn no_keys_means_no_check() {
        let keys = Keys::from_settings(&settings(vec![])).unwrap();
        assert!(keys.authenticate(None).unwrap().is_none());
    }

    #[test]
    fn the_right_key_is_found_among_several_and_a_wrong_one_is_not() {
        let keys = Keys::from_settings(&settings(vec![
            key("a", "first-key-0123456789", &["*"], &["*"]),
            key("b", "second-key-0123456789", &["main"], &["postStatus"]),
        ]))
        .unwrap();
        let b = keys
            .authenticate(Some("second-key-0123456789"))
            .unwrap()
            .unwrap();
        assert_eq!(b.name(), "b");
        let a = keys
            .authenticate(Some(" first-key-0123456789 "))
            .unwrap()
            .unwrap();
        assert_eq!(a.name(), "a");
        for wrong in [
            None,
            Some(""),
            Some("nope"),
            Some(&*digest_hex("first-key-0123456789")),
        ] {
            let e = keys.authenticate(wrong).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unauthenticated);
        }
    }

    #[test]
    fn rights_are_operations_and_connections() {
        let keys = Keys::from_settings(&settings(vec![key(
            "b",
            "second-key-0123456789",
            &["main"],
            &["postStatus"],
        )]))
        .unwrap();
        let b = keys
            .authenticate(Some("second-key-0123456789"))
            .unwrap()
            .unwrap();
        assert!(b.authorize(Operation::PostStatus, Some("main")).is_ok());
        let e = b.authorize(Operation::CreateApp, Some("main")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(!e.detail.contains("second-key"));
        assert_eq!(
            b.authorize(Operation::PostStatus, Some("other"))
                .unwrap_err()
                .kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            b.authorize(Operation::PostStatus, None).unwrap_err().kind,
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn the_key_comes_from_x_api_key_or_a_bearer_authorization() {
        assert_eq!(presented_key(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(presented_key(Some("bearer  abc "), None), Some("abc"));
        assert_eq!(presented_key(Some("Basic abc"), None), None);
        assert_eq!(presented_key(Some("Bearer"), None), None);
        assert_eq!(presented_key(Some("Basic abc"), Some("k")), Some("k"));
        assert_eq!(presented_key(None, Some(" ")), None);
    }

    #[test]
    fn debug_shows_no_digest() {
        let k = key("a", "first-key-0123456789", &["*"], &["*"]);
        assert!(!format!("{k:?}").contains(&k.sha256));
        let keys = Keys::from_settings(&settings(vec![k.clone()])).unwrap();
        assert!(!format!("{keys:?}").contains(&k.sha256[..16]));
    }

    #[test]
    fn invalid_entries_refuse_to_build() {
        let mut bad = key("a", "x", &["*"], &["*"]);
        bad.sha256 = "zz".into();
        let e = Keys::from_settings(&settings(vec![bad])).unwrap_err();
        assert!(e.contains("security.api_keys[0].sha256"), "{e}");
    }
}
