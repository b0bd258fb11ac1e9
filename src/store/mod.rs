//! Runtime state that must survive a restart: app credentials, tokens, pending authorizations and the
//! last instance probe, per connection.
//!
//! The [`Store`] trait is what operations see; [`SqliteStore`] is the embedded default, and a shared
//! store for several replicas implements the same trait. Records carry the instance URL they were
//! obtained from, so credentials for one server are never sent to another after a configuration change.
//! Secrets are `SecretString` here; each store seals them (see [`seal`]) before they touch disk, and
//! opens them when read, so no secret is ever stored in plain text.

pub mod ledger;
mod ledger_row;
pub mod postgres;
mod postgres_ledger;
pub mod seal;
mod sqlite;
mod sqlite_batch;
mod sqlite_ledger;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;

pub use ledger::{Ledger, LedgerClaim, LedgerKey, LedgerState, StoredError};
pub use sqlite::{check_integrity, SqliteStore};

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
    #[error("{0}")]
    Key(String),
    #[error("the store was sealed with another key; start with the key it was sealed with (never overwritten), or run rotate-key with it")]
    WrongKey,
    /// The file failed SQLite's integrity check at start; it was not written to.
    #[error("the file is damaged ({0}); it was left untouched: restore it from a backup, or move it aside to start with an empty store (apps and tokens are then obtained again)")]
    Damaged(String),
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
    /// When Mastodon answered 401 to this token: it was revoked, and is kept only to say so.
    pub revoked_at: Option<i64>,
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

/// What looking up a state found.
#[derive(Debug)]
pub enum PendingLookup {
    /// Unused until now, and now taken.
    Taken(PendingAuthorization),
    /// Known, but already taken once: a replay.
    AlreadyUsed,
    Unknown,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Used and expired authorizations are kept this long, so a replay is told apart from a stranger.
pub const PENDING_RETENTION_S: i64 = 24 * 60 * 60;

/// Every store keeps the post ledger too ([`Ledger`]): exactly once is the store's guarantee.
#[async_trait]
pub trait Store: Ledger + Send + Sync {
    async fn app(&self, connection: &str) -> StoreResult<Option<AppRecord>>;
    async fn put_app(&self, connection: &str, app: &AppRecord) -> StoreResult<()>;

    async fn token(&self, connection: &str, kind: TokenKind) -> StoreResult<Option<TokenRecord>>;
    async fn put_token(
        &self,
        connection: &str,
        kind: TokenKind,
        token: &TokenRecord,
    ) -> StoreResult<()>;

    /// Marks the token revoked at `at`; answers whether it was not marked before (so one warning is
    /// logged however many replicas and calls notice).
    async fn mark_token_revoked(
        &self,
        connection: &str,
        kind: TokenKind,
        at: i64,
    ) -> StoreResult<bool>;
    async fn delete_token(&self, connection: &str, kind: TokenKind) -> StoreResult<()>;

    async fn put_pending(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    /// Takes the authorization for `state` atomically: a state is good for one exchange only, and a
    /// second attempt is recognised as a replay.
    async fn take_pending(&self, state: &str) -> StoreResult<PendingLookup>;
    /// Makes a taken authorization usable again (Mastodon could not be reached with it).
    async fn restore_pending(&self, state: &str) -> StoreResult<()>;
    /// The unexpired authorizations of a connection, newest first (for `getToken` without `state`).
    async fn pending_states(&self, connection: &str, now: i64) -> StoreResult<Vec<String>>;
    /// Forgets authorizations that expired before `now` (used ones are kept a day, to recognise replays).
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Claims the right to register an app for `connection` until `until`: true for exactly one
    /// caller across every replica sharing the store, until released or expired.
    async fn claim_registration(&self, connection: &str, now: i64, until: i64)
        -> StoreResult<bool>;
    async fn release_registration(&self, connection: &str) -> StoreResult<()>;

    /// Re-seals every secret under `new` in one transaction, and records `new`'s check value.
    async fn reseal(&self, new: seal::Sealer) -> StoreResult<u64>;

    async fn instance(&self, connection: &str) -> StoreResult<Option<InstanceInfo>>;
    async fn put_instance(&self, connection: &str, info: &InstanceInfo) -> StoreResult<()>;

    /// Whether the store answers; `/readyz` asks.
    async fn ping(&self) -> StoreResult<()>;
    /// Flushes and closes; called once at shutdown.
    async fn close(&self) -> StoreResult<()>;

    /// Clears a revoked mark: the server accepted the token again when it was re-checked (a
    /// refusal may have been a passing fault, not a revocation). Answers whether a mark was cleared.
    async fn clear_token_revoked(&self, connection: &str, kind: TokenKind) -> StoreResult<bool>;
    /// Forgets the connection's app: the server deleted it (snac deletes it on revocation, any
    /// server may drop it), so its credentials are worthless and `createApp` must register again.
    async fn delete_app(&self, connection: &str) -> StoreResult<()>;
}

impl From<StoreError> for crate::error::Error {
    /// The caller learns only that the sidecar failed; the cause is logged here, where it is known.
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "the store failed");
        crate::error::Error::internal()
    }
}

/// Opens the configured store with its key: the embedded SQLite file, or the shared PostgreSQL
/// database when `store.url` is set.
pub async fn open(
    settings: &crate::config::StoreSettings,
) -> StoreResult<(std::sync::Arc<dyn Store>, seal::KeySource)> {
    let (sealer, source) = seal::load_key(settings)?;
    let store: std::sync::Arc<dyn Store> = match &settings.url {
        Some(url) => std::sync::Arc::new(postgres::PostgresStore::connect(url, sealer).await?),
        None => std::sync::Arc::new(SqliteStore::open(&settings.path, sealer)?),
    };
    Ok((store, source))
}
