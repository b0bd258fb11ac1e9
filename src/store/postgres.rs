//! The shared store: one PostgreSQL database for every replica (`store.url`).
//!
//! Same tables, columns and semantics as the embedded store (`sqlite.rs`), query by query: secrets are
//! sealed before they are sent (`seal.rs`), the key check row in `meta` refuses a database sealed with
//! another key, and the atomic operations replicas race on (taking a pending authorization, claiming a
//! registration, marking a token revoked) are single statements whose row counts decide the winner; a
//! ledger claim is one transaction holding the entry's row lock (`postgres_ledger.rs`).
//! Times are BIGINT (Unix seconds), everything else TEXT.
//!
//! The schema is versioned (`schema_version` in `meta`); migrations run in order at start, in one
//! transaction under `pg_advisory_xact_lock`, so replicas starting together do not race. Connections
//! come from a small pool; reaching the database is bounded by [`CONNECT_TIMEOUT`].
//!
//! TLS follows libpq's `sslmode` (through rustls with the ring provider): `disable`; `prefer` (the
//! default: TLS when the server offers it) and `require` encrypt without verifying the certificate;
//! `verify-ca` checks the chain and `verify-full` the chain and the host name, against `sslrootcert`
//! (a PEM file) or, when it is absent or `system`, the system's trusted roots.
//!
//! The URL may hold a password: it is never logged nor put in an error; messages name `host:port/db`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::seal::{app_aad, pending_aad, token_aad, Sealer};
use super::{
    AppRecord, PendingAuthorization, PendingLookup, Store, StoreError, StoreResult, TokenKind,
    TokenRecord, PENDING_RETENTION_S,
};
use crate::clock::unix_now;
use crate::mastodon::InstanceInfo;

/// Connections per replica: calls are short, and the database serves every replica.
pub const POOL_SIZE: usize = 8;
/// How long reaching the database (and waiting for a free connection) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA_VERSION: i64 = 2;

/// `meta` exists before any migration: it records which ones ran.
const META: &str = "CREATE TABLE IF NOT EXISTS meta (
    key            TEXT PRIMARY KEY,
    value          TEXT NOT NULL
)";

/// Migrations, in order; `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Never edit one
/// that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE apps (
    connection     TEXT PRIMARY KEY,
    instance       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  TEXT NOT NULL,   -- sealed
    scopes         TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    entity         TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE TABLE tokens (
    connection     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'app')),
    instance       TEXT NOT NULL,
    access_token   TEXT NOT NULL,   -- sealed
    token_type     TEXT NOT NULL,
    scope          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    PRIMARY KEY (connection, kind)
);
CREATE TABLE pending_authorizations (
    state          TEXT PRIMARY KEY,
    connection     TEXT NOT NULL,
    instance       TEXT NOT NULL,
    code_verifier  TEXT,            -- sealed
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);
CREATE INDEX pending_by_connection ON pending_authorizations (connection, expires_at);
CREATE TABLE instances (
    connection     TEXT PRIMARY KEY,
    info           TEXT NOT NULL
);
CREATE TABLE registrations (
    connection     TEXT PRIMARY KEY,
    until          BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE post_ledger (
    connection     TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('in_flight', 'posted', 'failed', 'doubt')),
    owner          TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    lease_until    BIGINT NOT NULL,
    doubt_since    BIGINT,
    status_id      TEXT,
    answer         TEXT,            -- JSON: the server's Status
    error          TEXT,            -- JSON: a StoredError
    retain_until   BIGINT NOT NULL,
    PRIMARY KEY (connection, key)
);
CREATE INDEX post_ledger_by_status ON post_ledger (connection, status_id);
CREATE INDEX post_ledger_by_retention ON post_ledger (retain_until);
CREATE INDEX post_ledger_by_age ON post_ledger (started_at);
"#,
];

/// Serialises schema changes between replicas: the first key is the sidecar's, the second the schema's,
/// so stores in different schemas of one database do not wait for each other.
const LOCK_SCHEMA: &str =
    "SELECT pg_advisory_xact_lock(1936024934, hashtext(coalesce(current_schema(), '')))";

pub struct PostgresStore {
    pool: Pool,
    sealer: RwLock<Arc<Sealer>>,
    /// `host:port/database`, for messages; never the user or the password.
    location: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

pub(super) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe(&e))
}

/// A PostgreSQL error on one line, without DETAIL (which may quote row values).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{}: {} (SQLSTATE {})",
            d.severity(),
            d.message(),
            d.code().code()
        ),
        None => {
            // tokio-postgres says what failed and keeps why in the source chain (refused, TLS...).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, creates or migrates the schema, and checks `sealer`'s key
    /// against the one the database was sealed with (refused, never overwritten, when it differs).
    /// An unreachable database fails within [`CONNECT_TIMEOUT`], naming `host:port`.
    pub async fn connect(url: &SecretString, sealer: Sealer) -> StoreResult<PostgresStore> {
        let target = Target::parse(url.expose_secret())?;
        let location = target.location();
        tracing::info!(
            store = %location,
            sslmode = target.tls.as_str(),
            "opening the PostgreSQL store at {location}"
        );
        let tls = target.tls.connector()?;
        let manager = Manager::from_config(
            target.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot set up the pool: {e}")))?;
        let store = PostgresStore {
            pool,
            sealer: RwLock::new(Arc::new(sealer)),
            location,
        };
        store.prepare().await?;
        Ok(store)
    }

    /// Where the store is, as `host:port/database`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Creates or migrates the schema and checks the key, in one transaction under the schema lock.
    async fn prepare(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.batch_execute(LOCK_SCHEMA).await.map_err(db)?;
        tx.batch_execute(META).await.map_err(db)?;
        let version = match tx
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .await
            .map_err(db)?
        {
            Some(row) => {
                let text: String = row.try_get(0).map_err(db)?;
                text.parse::<i64>().map_err(|_| {
                    StoreError::Corrupt(format!("meta.schema_version is {text:?}, not a number"))
                })?
            }
            None => 0,
        };
        if version < 0 {
            return Err(StoreError::Corrupt(format!(
                "meta.schema_version is {version}"
            )));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Database(format!(
                "the store has schema version {version}, newer than this sidecar's {SCHEMA_VERSION}; run a newer sidecar"
            )));
        }
        for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(migration).await.map_err(|e| {
                StoreError::Database(format!(
                    "migrating the schema to version {}: {}",
                    from + 1,
                    describe(&e)
                ))
            })?;
        }
        if version < SCHEMA_VERSION {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&SCHEMA_VERSION.to_string()],
            )
            .await
            .map_err(db)?;
        }
        let sealer = self.sealer();
        let check = tx
            .query_opt("SELECT value FROM meta WHERE key = 'key_check'", &[])
            .await
            .map_err(db)?;
        match check {
            Some(row) => {
                let value: String = row.try_get(0).map_err(db)?;
                if !sealer.verifies(&value) {
                    return Err(StoreError::WrongKey);
                }
            }
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('key_check', $1)",
                    &[&sealer.check_value()],
                )
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            let at = &self.location;
            StoreError::Database(match e {
                PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => format!(
                    "no free connection to PostgreSQL at {at} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
                PoolError::Timeout(_) => format!(
                    "cannot reach PostgreSQL at {at} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ),
                PoolError::Backend(e) => {
                    format!("cannot connect to PostgreSQL at {at}: {}", describe(&e))
                }
                PoolError::Closed => "the PostgreSQL store is closed".to_owned(),
                other => format!("PostgreSQL at {at}: {other}"),
            })
        })
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.execute(&statement, params).await.map_err(db)
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.query_opt(&statement, params).await.map_err(db)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(db)?;
        client.query(&statement, params).await.map_err(db)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn app(&self, connection: &str) -> StoreResult<Option<AppRecord>> {
        let Some(r) = self
            .query_opt(
                "SELECT instance, client_id, client_secret, scopes, redirect_uris, entity, created_at
                 FROM apps WHERE connection = $1",
                &[&connection],
            )
            .await?
        else {
            return Ok(None);
        };
        let secret: String = r.try_get(2).map_err(db)?;
        let uris: String = r.try_get(4).map_err(db)?;
        let entity: String = r.try_get(5).map_err(db)?;
        Ok(Some(AppRecord {
            instance: r.try_get(0).map_err(db)?,
            client_id: r.try_get(1).map_err(db)?,
            client_secret: self.sealer().open(&app_aad(connection), &secret)?,
            scopes: r.try_get(3).map_err(db)?,
            redirect_uris: serde_json::from_str(&uris)
                .map_err(|e| StoreError::Corrupt(format!("apps.redirect_uris: {e}")))?,
            entity: serde_json::from_str(&entity)
                .map_err(|e| StoreError::Corrupt(format!("apps.entity: {e}")))?,
            created_at: r.try_get(6).map_err(db)?,
        }))
    }

    async fn put_app(&self, connection: &str, app: &AppRecord) -> StoreResult<()> {
        let sealed = self
            .sealer()
            .seal(&app_aad(connection), app.client_secret.expose_secret());
        let uris = serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into());
        let entity = app.entity.to_string();
        self.execute(
            "INSERT INTO apps (connection, instance, client_id, client_secret, scopes, redirect_uris, entity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (connection) DO UPDATE SET instance = excluded.instance,
               client_id = excluded.client_id, client_secret = excluded.client_secret,
               scopes = excluded.scopes, redirect_uris = excluded.redirect_uris,
               entity = excluded.entity, created_at = excluded.created_at",
            &[
                &connection,
                &app.instance,
                &app.client_id,
                &sealed,
                &app.scopes,
                &uris,
                &entity,
                &app.created_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn token(&self, connection: &str, kind: TokenKind) -> StoreResult<Option<TokenRecord>> {
        let Some(r) = self
            .query_opt(
                "SELECT instance, access_token, token_type, scope, created_at, revoked_at
                 FROM tokens WHERE connection = $1 AND kind = $2",
                &[&connection, &kind.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let sealed: String = r.try_get(1).map_err(db)?;
        Ok(Some(TokenRecord {
            instance: r.try_get(0).map_err(db)?,
            access_token: self.sealer().open(&token_aad(connection, kind), &sealed)?,
            token_type: r.try_get(2).map_err(db)?,
            scope: r.try_get(3).map_err(db)?,
            created_at: r.try_get(4).map_err(db)?,
            revoked_at: r.try_get(5).map_err(db)?,
        }))
    }

    async fn put_token(
        &self,
        connection: &str,
        kind: TokenKind,
        token: &TokenRecord,
    ) -> StoreResult<()> {
        let sealed = self.sealer().seal(
            &token_aad(connection, kind),
            token.access_token.expose_secret(),
        );
        self.execute(
            "INSERT INTO tokens (connection, kind, instance, access_token, token_type, scope, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (connection, kind) DO UPDATE SET instance = excluded.instance,
               access_token = excluded.access_token, token_type = excluded.token_type,
               scope = excluded.scope, created_at = excluded.created_at,
               revoked_at = excluded.revoked_at",
            &[
                &connection,
                &kind.as_str(),
                &token.instance,
                &sealed,
                &token.token_type,
                &token.scope,
                &token.created_at,
                &token.revoked_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn mark_token_revoked(
        &self,
        connection: &str,
        kind: TokenKind,
        at: i64,
    ) -> StoreResult<bool> {
        self.execute(
            "UPDATE tokens SET revoked_at = $3
             WHERE connection = $1 AND kind = $2 AND revoked_at IS NULL",
            &[&connection, &kind.as_str(), &at],
        )
        .await
        .map(|n| n == 1)
    }

    async fn delete_token(&self, connection: &str, kind: TokenKind) -> StoreResult<()> {
        self.execute(
            "DELETE FROM tokens WHERE connection = $1 AND kind = $2",
            &[&connection, &kind.as_str()],
        )
        .await
        .map(|_| ())
    }

    async fn put_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        let sealer = self.sealer();
        let sealed = p
            .code_verifier
            .as_ref()
            .map(|v| sealer.seal(&pending_aad(&p.state), v.expose_secret()));
        self.execute(
            "INSERT INTO pending_authorizations (state, connection, instance, code_verifier, redirect_uri, scope, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &p.state,
                &p.connection,
                &p.instance,
                &sealed,
                &p.redirect_uri,
                &p.scope,
                &p.expires_at,
            ],
        )
        .await
        .map(|_| ())
    }

    async fn take_pending(&self, state: &str) -> StoreResult<PendingLookup> {
        // UPDATE ... RETURNING makes taking atomic: two exchanges with one state cannot both win (the
        // second waits for the first's row lock, then finds consumed_at set).
        let row = self
            .query_opt(
                "UPDATE pending_authorizations SET consumed_at = $2
                 WHERE state = $1 AND consumed_at IS NULL
                 RETURNING state, connection, instance, code_verifier, redirect_uri, scope, expires_at",
                &[&state, &unix_now()],
            )
            .await?;
        match row {
            Some(r) => {
                let state: String = r.try_get(0).map_err(db)?;
                let verifier: Option<String> = r.try_get(3).map_err(db)?;
                let code_verifier = verifier
                    .map(|v| self.sealer().open(&pending_aad(&state), &v))
                    .transpose()?;
                Ok(PendingLookup::Taken(PendingAuthorization {
                    connection: r.try_get(1).map_err(db)?,
                    instance: r.try_get(2).map_err(db)?,
                    code_verifier,
                    redirect_uri: r.try_get(4).map_err(db)?,
                    scope: r.try_get(5).map_err(db)?,
                    expires_at: r.try_get(6).map_err(db)?,
                    state,
                }))
            }
            None => {
                let known = self
                    .query_opt(
                        "SELECT EXISTS (SELECT 1 FROM pending_authorizations WHERE state = $1)",
                        &[&state],
                    )
                    .await?
                    .map(|r| r.try_get::<_, bool>(0))
                    .transpose()
                    .map_err(db)?
                    .unwrap_or(false);
                Ok(if known {
                    PendingLookup::AlreadyUsed
                } else {
                    PendingLookup::Unknown
                })
            }
        }
    }

    async fn restore_pending(&self, state: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE pending_authorizations SET consumed_at = NULL WHERE state = $1",
            &[&state],
        )
        .await
        .map(|_| ())
    }

    async fn pending_states(&self, connection: &str, now: i64) -> StoreResult<Vec<String>> {
        self.query(
            "SELECT state FROM pending_authorizations
             WHERE connection = $1 AND expires_at > $2 AND consumed_at IS NULL
             ORDER BY expires_at DESC",
            &[&connection, &now],
        )
        .await?
        .iter()
        .map(|r| r.try_get::<_, String>(0).map_err(db))
        .collect()
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            &[&(now - PENDING_RETENTION_S)],
        )
        .await
    }

    async fn claim_registration(
        &self,
        connection: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        // Concurrent inserts of one connection serialise on its primary key: the second sees the
        // first's row and updates it only when that claim has expired.
        self.execute(
            "INSERT INTO registrations (connection, until) VALUES ($1, $2)
             ON CONFLICT (connection) DO UPDATE SET until = excluded.until
             WHERE registrations.until <= $3",
            &[&connection, &until, &now],
        )
        .await
        .map(|n| n == 1)
    }

    async fn release_registration(&self, connection: &str) -> StoreResult<()> {
        self.execute(
            "DELETE FROM registrations WHERE connection = $1",
            &[&connection],
        )
        .await
        .map(|_| ())
    }

    async fn reseal(&self, new: Sealer) -> StoreResult<u64> {
        let old = self.sealer();
        let new = Arc::new(new);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // Like SQLite's IMMEDIATE transaction: readers go on, writers wait until the new key is in.
        tx.batch_execute("LOCK TABLE apps, tokens, pending_authorizations, meta IN EXCLUSIVE MODE")
            .await
            .map_err(db)?;
        let mut count = 0u64;
        for r in tx
            .query("SELECT connection, client_secret FROM apps", &[])
            .await
            .map_err(db)?
        {
            let connection: String = r.try_get(0).map_err(db)?;
            let sealed: String = r.try_get(1).map_err(db)?;
            let aad = app_aad(&connection);
            let secret = old.open(&aad, &sealed)?;
            tx.execute(
                "UPDATE apps SET client_secret = $2 WHERE connection = $1",
                &[&connection, &new.seal(&aad, secret.expose_secret())],
            )
            .await
            .map_err(db)?;
            count += 1;
        }
        for r in tx
            .query("SELECT connection, kind, access_token FROM tokens", &[])
            .await
            .map_err(db)?
        {
            let connection: String = r.try_get(0).map_err(db)?;
            let kind: String = r.try_get(1).map_err(db)?;
            let sealed: String = r.try_get(2).map_err(db)?;
            let kind = if kind == "app" {
                TokenKind::App
            } else {
                TokenKind::User
            };
            let aad = token_aad(&connection, kind);
            let token = old.open(&aad, &sealed)?;
            tx.execute(
                "UPDATE tokens SET access_token = $3 WHERE connection = $1 AND kind = $2",
                &[
                    &connection,
                    &kind.as_str(),
                    &new.seal(&aad, token.expose_secret()),
                ],
            )
            .await
            .map_err(db)?;
            count += 1;
        }
        for r in tx
            .query(
                "SELECT state, code_verifier FROM pending_authorizations WHERE code_verifier IS NOT NULL",
                &[],
            )
            .await
            .map_err(db)?
        {
            let state: String = r.try_get(0).map_err(db)?;
            let sealed: String = r.try_get(1).map_err(db)?;
            let aad = pending_aad(&state);
            let verifier = old.open(&aad, &sealed)?;
            tx.execute(
                "UPDATE pending_authorizations SET code_verifier = $2 WHERE state = $1",
                &[&state, &new.seal(&aad, verifier.expose_secret())],
            )
            .await
            .map_err(db)?;
            count += 1;
        }
        tx.execute(
            "UPDATE meta SET value = $1 WHERE key = 'key_check'",
            &[&new.check_value()],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        *self.sealer.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(count)
    }

    async fn instance(&self, connection: &str) -> StoreResult<Option<InstanceInfo>> {
        let text: Option<String> = self
            .query_opt(
                "SELECT info FROM instances WHERE connection = $1",
                &[&connection],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(db)?;
        // An unreadable probe (an older layout) is simply probed again.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn put_instance(&self, connection: &str, info: &InstanceInfo) -> StoreResult<()> {
        let text = serde_json::to_string(info)
            .map_err(|e| StoreError::Corrupt(format!("instance info: {e}")))?;
        self.execute(
            "INSERT INTO instances (connection, info) VALUES ($1, $2)
             ON CONFLICT (connection) DO UPDATE SET info = excluded.info",
            &[&connection, &text],
        )
        .await
        .map(|_| ())
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client.batch_execute("SELECT 1").await.map_err(db)
    }

    async fn close(&self) -> StoreResult<()> {
        // Every write committed before it answered; closing only ends the connections.
        self.pool.close();
        Ok(())
    }

    async fn clear_token_revoked(&self, connection: &str, kind: TokenKind) -> StoreResult<bool> {
        self.execute(
            "UPDATE tokens SET revoked_at = NULL
             WHERE connection = $1 AND kind = $2 AND revoked_at IS NOT NULL",
            &[&connection, &kind.as_str()],
        )
        .await
        .map(|n| n == 1)
    }

    async fn delete_app(&self, connection: &str) -> StoreResult<()> {
        self.execute("DELETE FROM apps WHERE connection = $1", &[&connection])
            .await
            .map(|_| ())
    }
}

/// What `store.url` asks for: the connection settings tokio-postgres takes, and the TLS mode.
struct Target {
    config: tokio_postgres::Config,
    tls: Tls,
}

/// libpq's `sslmode`, and where verifying modes find their trusted roots.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa(RootSource),
    VerifyFull(RootSource),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RootSource {
    System,
    File(String),
}

impl Tls {
    fn as_str(&self) -> &'static str {
        match self {
            Tls::Disable => "disable",
            Tls::Prefer => "prefer",
            Tls::Require => "require",
            Tls::VerifyCa(_) => "verify-ca",
            Tls::VerifyFull(_) => "verify-full",
        }
    }

    fn ssl_mode(&self) -> SslMode {
        match self {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    /// The rustls connector (ring provider) this mode needs.
    fn connector(&self) -> StoreResult<MakeRustlsConnect> {
        let tls = |e: rustls::Error| StoreError::Database(format!("store.url: TLS set-up: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(tls)?;
        let config = match self {
            // `prefer` and `require` encrypt but do not authenticate the server, as with libpq.
            Tls::Disable | Tls::Prefer | Tls::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            Tls::VerifyCa(roots) => {
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots.load()?), provider)
                        .build()
                        .map_err(|e| StoreError::Database(format!("store.url: TLS set-up: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                    .with_no_client_auth()
            }
            Tls::VerifyFull(roots) => builder
                .with_root_certificates(roots.load()?)
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

impl RootSource {
    fn load(&self) -> StoreResult<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self {
            RootSource::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(StoreError::Database(
                        "store.url: sslmode verifies the server, but no trusted root certificate was found on this system; set sslrootcert to a PEM file".into(),
                    ));
                }
            }
            RootSource::File(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        StoreError::Database(format!(
                            "store.url: cannot read sslrootcert {path}: {e}"
                        ))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(StoreError::Database(format!(
                        "store.url: sslrootcert {path} holds no certificate"
                    )));
                }
            }
        }
        Ok(roots)
    }
}

impl Target {
    /// Reads a `postgres://` or `postgresql://` URL. `sslmode` and `sslrootcert` are taken out and
    /// handled here (tokio-postgres knows neither `verify-ca`/`verify-full` nor `sslrootcert`); every
    /// other parameter goes to tokio-postgres as is. Errors never quote the URL.
    fn parse(url: &str) -> StoreResult<Target> {
        let bad = |why: &str| {
            StoreError::Database(format!(
                "store.url is not a valid PostgreSQL URL: {why} (the value is not shown: it may hold a password)"
            ))
        };
        let url = url.trim();
        let scheme_end = url
            .find("://")
            .ok_or_else(|| bad("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"))?;
        if !matches!(
            url[..scheme_end].to_ascii_lowercase().as_str(),
            "postgres" | "postgresql"
        ) {
            return Err(bad("the scheme must be postgres:// or postgresql://"));
        }
        // Like tokio-postgres: the credentials end at the first `@`, the parameters start at the
        // first `?` after them.
        let after_credentials = url[scheme_end..]
            .find('@')
            .map_or(scheme_end + 3, |at| scheme_end + at + 1);
        let (base, query) = match url[after_credentials..].find('?') {
            Some(q) => (
                &url[..after_credentials + q],
                &url[after_credentials + q + 1..],
            ),
            None => (url, ""),
        };
        let mut sslmode = None;
        let mut sslrootcert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => sslmode = Some(percent_decode(value)),
                "sslrootcert" => sslrootcert = Some(percent_decode(value)),
                _ => rest.push(pair),
            }
        }
        let roots = match sslrootcert.as_deref() {
            None | Some("system") => RootSource::System,
            Some(path) => RootSource::File(path.to_owned()),
        };
        let tls = match sslmode.as_deref() {
            None | Some("prefer") => Tls::Prefer,
            Some("disable") => Tls::Disable,
            Some("require") => Tls::Require,
            Some("verify-ca") => Tls::VerifyCa(roots),
            Some("verify-full") => Tls::VerifyFull(roots),
            Some(other) => {
                return Err(StoreError::Database(format!(
                    "store.url: sslmode={other:?} is not supported; use disable, prefer, require, verify-ca or verify-full"
                )))
            }
        };
        let stripped = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = stripped.parse().map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default();
            // Only causes that name an option, never a character or a value of the URL.
            if cause.starts_with("invalid value for option") || cause.starts_with("unknown option")
            {
                bad(&cause)
            } else {
                bad("it cannot be parsed")
            }
        })?;
        if config.get_hosts().is_empty() {
            return Err(bad("it names no host"));
        }
        config.ssl_mode(tls.ssl_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("mastodon-sidecar");
        }
        Ok(Target { config, tls })
    }

    /// `host:port[,host:port...]/database`: where the store is, without the user or the password.
    fn location(&self) -> String {
        let ports = self.config.get_ports();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports
                    .get(i)
                    .or_else(|| ports.first())
                    .copied()
                    .unwrap_or(5432);
                match host {
                    Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect();
        let database = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or_default();
        format!("{}/{database}", hosts.join(","))
    }
}

/// Decodes `%XX` escapes (a query value of the URL); anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16);
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `prefer` and `require`: the connection is encrypted and the handshake signatures checked, but the
/// certificate is not authenticated (libpq's meaning of these modes).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain: a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> StoreResult<Target> {
        Target::parse(url)
    }

    #[test]
    fn the_location_names_hosts_ports_and_database_but_no_credentials() {
        let t = parse("postgres://sidecar:s3cr%40t-pw@db.example:6543/sidecar").unwrap();
        assert_eq!(t.location(), "db.example:6543/sidecar");
        assert_eq!(t.tls, Tls::Prefer);
        let t = parse("postgresql://u:p@a.example,b.example:5433/d?sslmode=disable").unwrap();
        assert_eq!(t.location(), "a.example:5432,b.example:5433/d");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = parse("postgres://u:pw@[::1]/d").unwrap();
        assert_eq!(t.location(), "[::1]:5432/d");
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_and_the_rest_kept() {
        let t = parse(
            "postgres://u:p?w@h/d?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            t.tls,
            Tls::VerifyFull(RootSource::File("/etc/ca.pem".into()))
        );
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.config.get_password(), Some(&b"p?w"[..]));
        let t = parse("postgres://u@h/d?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(t.tls, Tls::VerifyCa(RootSource::System));
        let t = parse("postgres://u@h/d?sslmode=require").unwrap();
        assert_eq!(t.tls, Tls::Require);
        assert_eq!(t.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn errors_name_the_problem_but_never_quote_the_url() {
        for (url, expected) in [
            ("mysql://u:hunter2-pw@h/d", "postgres://"),
            ("hunter2-pw", "expected postgres://"),
            (
                "postgres://u:hunter2-pw@h/d?sslmode=allow",
                "sslmode=\"allow\"",
            ),
            (
                "postgres://u:hunter2-pw@h/d?bogus=1",
                "unknown option `bogus`",
            ),
            (
                "postgres://u:hunter2-pw@h:port/d",
                "invalid value for option `port`",
            ),
            ("postgres://u:hunter2-pw@h/d?hunter2", "cannot be parsed"),
        ] {
            let e = parse(url).err().expect(url).to_string();
            assert!(e.contains(expected), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn every_tls_mode_builds_a_connector() {
        for mode in [Tls::Disable, Tls::Prefer, Tls::Require] {
            assert!(mode.connector().is_ok());
        }
        let missing = Tls::VerifyFull(RootSource::File("/nonexistent/ca.pem".into()));
        let e = missing.connector().err().unwrap().to_string();
        assert!(
            e.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("%2Fa%2fb"), "/a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }
}
