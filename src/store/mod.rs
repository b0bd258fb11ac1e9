//! Runtime state that must survive a restart: app credentials, tokens, pending authorizations and the
//! last instance probe, per connection.
//!
//! The [`Store`] trait is what operations see; [`SqliteStore`] is the embedded default. A shared store
//! for several replicas implements the same trait. Records carry the instance URL they were obtained
//! from, so credentials for one server are never sent to another after a configuration change.
//! Secrets are `SecretString` here and only exposed at the moment they are written or sent.

mod sqlite;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;

pub use sqlite::SqliteStore;

use crate::mastodon::InstanceInfo;

/// Failures of the store itself (I/O, a corrupt file). Operations turn them into `internal`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store database: {0}")]
    Database(String),
    #[error("store record is corrupt: {0}")]
    Corrupt(String),
}

/// An app registered with `POST /api/v1/apps`.
#[derive(Clone, Debug)]
pub struct AppRecord {
    pub instance: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: String,
    pub redirect_uris: Vec<String>,
    /// Mastodon's Application entity without `client_secret`, to answer `createApp` again.
    pub entity: Value,
    pub created_at: i64,
}

/// Which token: one that acts for a user, or the app's own (client credentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    User,
    App,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::App => "app",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub instance: String,
    pub access_token: SecretString,
    pub token_type: String,
    pub scope: String,
    pub created_at: i64,
}

/// An authorization begun by `authorizeUrl` and not yet finished by `getToken`.
#[derive(Clone, Debug)]
pub struct PendingAuthorization {
    pub state: String,
    pub connection: String,
    pub instance: String,
    /// The PKCE verifier, when the server takes PKCE.
    pub code_verifier: Option<SecretString>,
    pub redirect_uri: String,
    pub scope: String,
    pub expires_at: i64,
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync {
    async fn app(&self, connection: &str) -> StoreResult<Option<AppRecord>>;
    async fn put_app(&self, connection: &str, app: &AppRecord) -> StoreResult<()>;

    async fn token(&self, connection: &str, kind: TokenKind) -> StoreResult<Option<TokenRecord>>;
    async fn put_token(
        &self,
        connection: &str,
        kind: TokenKind,
        token: &TokenRecord,
    ) -> StoreResult<()>;

    async fn put_pending(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    /// Removes and returns the authorization for `state`: a state is good for one `getToken` only.
    async fn take_pending(&self, state: &str) -> StoreResult<Option<PendingAuthorization>>;
    /// The unexpired authorizations of a connection, newest first (for `getToken` without `state`).
    async fn pending_states(&self, connection: &str, now: i64) -> StoreResult<Vec<String>>;
    /// Forgets authorizations that expired before `now`.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    async fn instance(&self, connection: &str) -> StoreResult<Option<InstanceInfo>>;
    async fn put_instance(&self, connection: &str, info: &InstanceInfo) -> StoreResult<()>;

    /// Whether the store answers; `/readyz` asks.
    async fn ping(&self) -> StoreResult<()>;
    /// Flushes and closes; called once at shutdown.
    async fn close(&self) -> StoreResult<()>;
}

impl From<StoreError> for crate::error::Error {
    /// The caller learns only that the sidecar failed; the cause is logged here, where it is known.
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "the store failed");
        crate::error::Error::internal()
    }
}
