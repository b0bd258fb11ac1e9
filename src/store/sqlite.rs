//! The embedded store: one SQLite file.
//!
//! Durability: WAL journal with `synchronous = FULL`, and every write is in a transaction that commits
//! before the operation answers (the ledger's writes share theirs in a group commit, `sqlite_batch.rs`), so whatever a caller was told is stored survives a crash or a kill in
//! the middle of a later write. Secrets are sealed before they are written (`seal.rs`) and
//! `secure_delete` zeroes what is deleted, so the file never holds a secret in plain text. Several
//! processes may open the file at once (the server and `mastodon-sidecar authorize`): SQLite locks it,
//! and `busy_timeout` makes a writer wait instead of failing. rusqlite is blocking, so each call runs
//! on tokio's blocking pool; writes are rare and reads small.
//!
//! A file that exists is checked first (`PRAGMA quick_check`, on a read-only connection, before any
//! pragma, migration or write): a damaged one is refused with what was found and what to do, and left
//! byte for byte as it was, rather than served from and written into until it breaks further.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use secrecy::ExposeSecret;

use super::seal::{app_aad, pending_aad, token_aad, Sealer};
use super::sqlite_batch::Batches;
use super::{
    AppRecord, PendingAuthorization, PendingLookup, Store, StoreError, StoreResult, TokenKind,
    TokenRecord,
};
use crate::clock::unix_now;
use crate::mastodon::InstanceInfo;

/// 2: the post ledger (`post_ledger`), created by `CREATE TABLE IF NOT EXISTS` on a version 1 file.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key            TEXT PRIMARY KEY,
    value          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS apps (
    connection     TEXT PRIMARY KEY,
    instance       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  TEXT NOT NULL,   -- sealed
    scopes         TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    entity         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    connection     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'app')),
    instance       TEXT NOT NULL,
    access_token   TEXT NOT NULL,   -- sealed
    token_type     TEXT NOT NULL,
    scope          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    PRIMARY KEY (connection, kind)
);
CREATE TABLE IF NOT EXISTS pending_authorizations (
    state          TEXT PRIMARY KEY,
    connection     TEXT NOT NULL,
    instance       TEXT NOT NULL,
    code_verifier  TEXT,            -- sealed
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    consumed_at    INTEGER
);
CREATE INDEX IF NOT EXISTS pending_by_connection ON pending_authorizations (connection, expires_at);
CREATE TABLE IF NOT EXISTS instances (
    connection     TEXT PRIMARY KEY,
    info           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    connection     TEXT PRIMARY KEY,
    until          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS post_ledger (
    connection     TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('in_flight', 'posted', 'failed', 'doubt')),
    owner          TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    lease_until    INTEGER NOT NULL,
    doubt_since    INTEGER,
    status_id      TEXT,
    answer         TEXT,            -- JSON: the server's Status
    error          TEXT,            -- JSON: a StoredError
    retain_until   INTEGER NOT NULL,
    PRIMARY KEY (connection, key)
);
CREATE INDEX IF NOT EXISTS post_ledger_by_status ON post_ledger (connection, status_id);
CREATE INDEX IF NOT EXISTS post_ledger_by_retention ON post_ledger (retain_until);
CREATE INDEX IF NOT EXISTS post_ledger_by_age ON post_ledger (started_at);
"#;

use super::PENDING_RETENTION_S;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    sealer: Arc<RwLock<Arc<Sealer>>>,
    path: PathBuf,
    /// The ledger's writes, committed in groups (`sqlite_batch.rs`).
    batches: Arc<Batches>,
}

pub(super) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` and its folder, with `sealer`'s key.
    /// A store sealed with another key is refused, never overwritten.
    pub fn open(path: &Path, sealer: Sealer) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            check_integrity(path)?;
        }
        let mut conn = Connection::open(path).map_err(db)?;
        restrict_permissions(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;",
        )
        .map_err(db)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Database(format!(
                "the store has schema version {version}, newer than this sidecar's {SCHEMA_VERSION}; run a newer sidecar"
            )));
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        tx.execute_batch(SCHEMA).map_err(db)?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(db)?;
        let check: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        match check {
            Some(value) if !sealer.verifies(&value) => return Err(StoreError::WrongKey),
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                    params![sealer.check_value()],
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            sealer: Arc::new(RwLock::new(Arc::new(sealer))),
            path: path.to_owned(),
            batches: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A write on the hot path (the ledger's): run in the next group commit, answered once that has
    /// committed. `f` runs inside a transaction and must not open one.
    pub(super) async fn write_batched<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.batches.write(&self.conn, f).await
    }

    pub(super) async fn with<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written row (SQLite is transactional),
            // so a poisoned lock is safe to take over.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Database(format!("store task failed: {e}")))?
    }
}

/// How many of `quick_check`'s findings a refusal repeats (it lists up to 100).
const FINDINGS_SHOWN: usize = 3;

/// Runs `PRAGMA quick_check` on the existing file at `path` through a read-only connection, so a
/// damaged file is never written to (not even by a migration or `journal_mode`): `Damaged` with the
/// first findings when it is not "ok", or when SQLite cannot read it as a database at all. It reads
/// every page of the file once (the cost is measured by the persistence test in `tests/api/cli.rs`).
pub fn check_integrity(path: &Path) -> StoreResult<()> {
    let damaged = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StoreError::Damaged(format!("PRAGMA quick_check: {e}"))
        }
        _ => db(e),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(damaged)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    let mut statement = conn.prepare("PRAGMA quick_check").map_err(damaged)?;
    let mut rows = statement.query([]).map_err(damaged)?;
    let mut findings = Vec::new();
    let mut more = 0usize;
    while let Some(row) = rows.next().map_err(damaged)? {
        let finding: String = row.get(0).map_err(damaged)?;
        if finding == "ok" {
            continue;
        }
        if findings.len() < FINDINGS_SHOWN {
            findings.push(finding.chars().take(200).collect::<String>());
        } else {
            more += 1;
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    let mut detail = format!("PRAGMA quick_check found: {}", findings.join("; "));
    if more > 0 {
        detail.push_str(&format!("; and {more} more"));
    }
    Err(StoreError::Damaged(detail))
}

/// The database holds credentials (sealed, but still): only the sidecar's user may read it.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> StoreResult<()> {
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn app(&self, connection: &str) -> StoreResult<Option<AppRecord>> {
        let connection = connection.to_owned();
        let sealer = self.sealer();
        self.with(move |c| {
            let row = c
                .query_row(
                    "SELECT instance, client_id, client_secret, scopes, redirect_uris, entity, created_at
                     FROM apps WHERE connection = ?1",
                    params![connection],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            let Some((instance, client_id, secret, scopes, uris, entity, created_at)) = row else {
                return Ok(None);
            };
            Ok(Some(AppRecord {
                instance,
                client_id,
                client_secret: sealer.open(&app_aad(&connection), &secret)?,
                scopes,
                redirect_uris: serde_json::from_str(&uris)
                    .map_err(|e| StoreError::Corrupt(format!("apps.redirect_uris: {e}")))?,
                entity: serde_json::from_str(&entity)
                    .map_err(|e| StoreError::Corrupt(format!("apps.entity: {e}")))?,
                created_at,
            }))
        })
        .await
    }

    async fn put_app(&self, connection: &str, app: &AppRecord) -> StoreResult<()> {
        let connection = connection.to_owned();
        let sealed = self
            .sealer()
            .seal(&app_aad(&connection), app.client_secret.expose_secret());
        let app = app.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO apps (connection, instance, client_id, client_secret, scopes, redirect_uris, entity, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (connection) DO UPDATE SET instance = excluded.instance,
                   client_id = excluded.client_id, client_secret = excluded.client_secret,
                   scopes = excluded.scopes, redirect_uris = excluded.redirect_uris,
                   entity = excluded.entity, created_at = excluded.created_at",
                params![
                    connection,
                    app.instance,
                    app.client_id,
                    sealed,
                    app.scopes,
                    serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into()),
                    app.entity.to_string(),
                    app.created_at
                ],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn token(&self, connection: &str, kind: TokenKind) -> StoreResult<Option<TokenRecord>> {
        let connection = connection.to_owned();
        let sealer = self.sealer();
        self.with(move |c| {
            let row = c
                .query_row(
                    "SELECT instance, access_token, token_type, scope, created_at, revoked_at
                     FROM tokens WHERE connection = ?1 AND kind = ?2",
                    params![connection, kind.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, Option<i64>>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            let Some((instance, sealed, token_type, scope, created_at, revoked_at)) = row else {
                return Ok(None);
            };
            Ok(Some(TokenRecord {
                instance,
                access_token: sealer.open(&token_aad(&connection, kind), &sealed)?,
                token_type,
                scope,
                created_at,
                revoked_at,
            }))
        })
        .await
    }

    async fn put_token(
        &self,
        connection: &str,
        kind: TokenKind,
        token: &TokenRecord,
    ) -> StoreResult<()> {
        let connection = connection.to_owned();
        let sealed = self.sealer().seal(
            &token_aad(&connection, kind),
            token.access_token.expose_secret(),
        );
        let token = token.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO tokens (connection, kind, instance, access_token, token_type, scope, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (connection, kind) DO UPDATE SET instance = excluded.instance,
                   access_token = excluded.access_token, token_type = excluded.token_type,
                   scope = excluded.scope, created_at = excluded.created_at,
                   revoked_at = excluded.revoked_at",
                params![
                    connection,
                    kind.as_str(),
                    token.instance,
                    sealed,
                    token.token_type,
                    token.scope,
                    token.created_at,
                    token.revoked_at
                ],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn mark_token_revoked(
        &self,
        connection: &str,
        kind: TokenKind,
        at: i64,
    ) -> StoreResult<bool> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE tokens SET revoked_at = ?3
                 WHERE connection = ?1 AND kind = ?2 AND revoked_at IS NULL",
                params![connection, kind.as_str(), at],
            )
            .map(|n| n == 1)
            .map_err(db)
        })
        .await
    }

    async fn delete_token(&self, connection: &str, kind: TokenKind) -> StoreResult<()> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM tokens WHERE connection = ?1 AND kind = ?2",
                params![connection, kind.as_str()],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> StoreResult<()> {
        let sealer = self.sealer();
        let sealed = pending
            .code_verifier
            .as_ref()
            .map(|v| sealer.seal(&pending_aad(&pending.state), v.expose_secret()));
        let p = pending.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO pending_authorizations (state, connection, instance, code_verifier, redirect_uri, scope, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![p.state, p.connection, p.instance, sealed, p.redirect_uri, p.scope, p.expires_at],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn take_pending(&self, state: &str) -> StoreResult<PendingLookup> {
        let state = state.to_owned();
        let sealer = self.sealer();
        self.with(move |c| {
            // UPDATE ... RETURNING makes taking atomic: two exchanges with one state cannot both win.
            let row = c
                .query_row(
                    "UPDATE pending_authorizations SET consumed_at = ?2
                     WHERE state = ?1 AND consumed_at IS NULL
                     RETURNING state, connection, instance, code_verifier, redirect_uri, scope, expires_at",
                    params![state, unix_now()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(db)?;
            match row {
                Some((state, connection, instance, verifier, redirect_uri, scope, expires_at)) => {
                    let code_verifier = verifier
                        .map(|v| sealer.open(&pending_aad(&state), &v))
                        .transpose()?;
                    Ok(PendingLookup::Taken(PendingAuthorization {
                        state,
                        connection,
                        instance,
                        code_verifier,
                        redirect_uri,
                        scope,
                        expires_at,
                    }))
                }
                None => {
                    let known: bool = c
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM pending_authorizations WHERE state = ?1)",
                            params![state],
                            |r| r.get(0),
                        )
                        .map_err(db)?;
                    Ok(if known {
                        PendingLookup::AlreadyUsed
                    } else {
                        PendingLookup::Unknown
                    })
                }
            }
        })
        .await
    }

    async fn restore_pending(&self, state: &str) -> StoreResult<()> {
        let state = state.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE pending_authorizations SET consumed_at = NULL WHERE state = ?1",
                params![state],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn pending_states(&self, connection: &str, now: i64) -> StoreResult<Vec<String>> {
        let connection = connection.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT state FROM pending_authorizations
                     WHERE connection = ?1 AND expires_at > ?2 AND consumed_at IS NULL
                     ORDER BY expires_at DESC",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![connection, now], |r| r.get::<_, String>(0))
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM pending_authorizations WHERE expires_at <= ?1",
                params![now - PENDING_RETENTION_S],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn claim_registration(
        &self,
        connection: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "INSERT INTO registrations (connection, until) VALUES (?1, ?2)
                 ON CONFLICT (connection) DO UPDATE SET until = excluded.until
                 WHERE registrations.until <= ?3",
                params![connection, until, now],
            )
            .map(|n| n == 1)
            .map_err(db)
        })
        .await
    }

    async fn release_registration(&self, connection: &str) -> StoreResult<()> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM registrations WHERE connection = ?1",
                params![connection],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn reseal(&self, new: Sealer) -> StoreResult<u64> {
        let old = self.sealer();
        let new = Arc::new(new);
        let sealer_for_task = Arc::clone(&new);
        let count = self
            .with(move |c| {
                let new = sealer_for_task;
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db)?;
                let mut count = 0u64;
                let apps: Vec<(String, String)> = {
                    let mut stmt = tx
                        .prepare("SELECT connection, client_secret FROM apps")
                        .map_err(db)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(db)?;
                    rows.collect::<Result<_, _>>().map_err(db)?
                };
                for (connection, sealed) in apps {
                    let aad = app_aad(&connection);
                    let secret = old.open(&aad, &sealed)?;
                    tx.execute(
                        "UPDATE apps SET client_secret = ?2 WHERE connection = ?1",
                        params![connection, new.seal(&aad, secret.expose_secret())],
                    )
                    .map_err(db)?;
                    count += 1;
                }
                let tokens: Vec<(String, String, String)> = {
                    let mut stmt = tx
                        .prepare("SELECT connection, kind, access_token FROM tokens")
                        .map_err(db)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .map_err(db)?;
                    rows.collect::<Result<_, _>>().map_err(db)?
                };
                for (connection, kind, sealed) in tokens {
                    let kind = if kind == "app" { TokenKind::App } else { TokenKind::User };
                    let aad = token_aad(&connection, kind);
                    let token = old.open(&aad, &sealed)?;
                    tx.execute(
                        "UPDATE tokens SET access_token = ?3 WHERE connection = ?1 AND kind = ?2",
                        params![connection, kind.as_str(), new.seal(&aad, token.expose_secret())],
                    )
                    .map_err(db)?;
                    count += 1;
                }
                let pending: Vec<(String, String)> = {
                    let mut stmt = tx
                        .prepare("SELECT state, code_verifier FROM pending_authorizations WHERE code_verifier IS NOT NULL")
                        .map_err(db)?;
                    let rows = stmt
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map_err(db)?;
                    rows.collect::<Result<_, _>>().map_err(db)?
                };
                for (state, sealed) in pending {
                    let aad = pending_aad(&state);
                    let verifier = old.open(&aad, &sealed)?;
                    tx.execute(
                        "UPDATE pending_authorizations SET code_verifier = ?2 WHERE state = ?1",
                        params![state, new.seal(&aad, verifier.expose_secret())],
                    )
                    .map_err(db)?;
                    count += 1;
                }
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'key_check'",
                    params![new.check_value()],
                )
                .map_err(db)?;
                tx.commit().map_err(db)?;
                Ok(count)
            })
            .await?;
        *self.sealer.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(count)
    }

    async fn instance(&self, connection: &str) -> StoreResult<Option<InstanceInfo>> {
        let connection = connection.to_owned();
        self.with(move |c| {
            let text: Option<String> = c
                .query_row(
                    "SELECT info FROM instances WHERE connection = ?1",
                    params![connection],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            // An unreadable probe (an older layout) is simply probed again.
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
        .await
    }

    async fn put_instance(&self, connection: &str, info: &InstanceInfo) -> StoreResult<()> {
        let connection = connection.to_owned();
        let text = serde_json::to_string(info)
            .map_err(|e| StoreError::Corrupt(format!("instance info: {e}")))?;
        self.with(move |c| {
            c.execute(
                "INSERT INTO instances (connection, info) VALUES (?1, ?2)
                 ON CONFLICT (connection) DO UPDATE SET info = excluded.info",
                params![connection, text],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
            .await
    }

    async fn close(&self) -> StoreResult<()> {
        // Fold the WAL back into the database file so a copy of the file alone is complete.
        self.with(|c| {
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .map_err(db)
        })
        .await
    }

    async fn clear_token_revoked(&self, connection: &str, kind: TokenKind) -> StoreResult<bool> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "UPDATE tokens SET revoked_at = NULL
                 WHERE connection = ?1 AND kind = ?2 AND revoked_at IS NOT NULL",
                params![connection, kind.as_str()],
            )
            .map(|n| n == 1)
            .map_err(db)
        })
        .await
    }

    async fn delete_app(&self, connection: &str) -> StoreResult<()> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM apps WHERE connection = ?1",
                params![connection],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn key() -> Sealer {
        Sealer::from_base64(Sealer::generate_key().expose_secret()).unwrap()
    }

    fn token(secret: &str) -> TokenRecord {
        TokenRecord {
            instance: "https://m.example".into(),
            access_token: SecretString::from(secret.to_owned()),
            token_type: "Bearer".into(),
            scope: "read".into(),
            created_at: 1,
            revoked_at: None,
        }
    }

    fn pending(state: &str, expires_at: i64) -> PendingAuthorization {
        PendingAuthorization {
            state: state.into(),
            connection: "main".into(),
            instance: "https://m.example".into(),
            code_verifier: Some(SecretString::from("verifier-0123456789".to_owned())),
            redirect_uri: "urn:ietf:wg:oauth:2.0:oob".into(),
            scope: "read".into(),
            expires_at,
        }
    }

    /// Overwrites `len` bytes at `at` with random bytes.
    fn scribble(path: &Path, at: u64, len: usize) {
        use std::io::{Seek, SeekFrom, Write};
        let mut noise = vec![0u8; len];
        rand::fill(&mut noise[..]);
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&noise).unwrap();
    }

    #[tokio::test]
    async fn a_damaged_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key_text = Sealer::generate_key();
        let sealer = || Sealer::from_base64(key_text.expose_secret()).unwrap();
        let store = SqliteStore::open(&path, sealer()).unwrap();
        for i in 0..200 {
            store
                .put_token(&format!("c{i}"), TokenKind::User, &token("t-secret-value"))
                .await
                .unwrap();
        }
        store.close().await.unwrap();
        drop(store);
        check_integrity(&path).expect("a sound file passes");
        // Random bytes over the last page, then over the header.
        let size = std::fs::metadata(&path).unwrap().len();
        let page = 4096;
        assert!(size >= 2 * page, "{size}");
        for (at, len) in [(size - page, page as usize), (0, 100)] {
            scribble(&path, at, len);
            let before = std::fs::read(&path).unwrap();
            let e = SqliteStore::open(&path, sealer()).err().expect("refused");
            assert!(matches!(e, StoreError::Damaged(_)), "{e}");
            let line = e.to_string();
            assert!(
                line.contains("damaged") && line.contains("backup"),
                "{line}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "not one byte written"
            );
        }
    }

    #[tokio::test]
    async fn a_token_survives_reopening_the_file_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/s.db");
        let key_text = Sealer::generate_key();
        let store = SqliteStore::open(
            &path,
            Sealer::from_base64(key_text.expose_secret()).unwrap(),
        )
        .unwrap();
        store
            .put_token("main", TokenKind::User, &token("t1-secret-value"))
            .await
            .unwrap();
        store.close().await.unwrap();
        drop(store);
        assert!(matches!(
            SqliteStore::open(&path, key()),
            Err(StoreError::WrongKey)
        ));
        let store = SqliteStore::open(
            &path,
            Sealer::from_base64(key_text.expose_secret()).unwrap(),
        )
        .unwrap();
        let got = store.token("main", TokenKind::User).await.unwrap().unwrap();
        assert_eq!(got.access_token.expose_secret(), "t1-secret-value");
        assert!(store.token("main", TokenKind::App).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_file_holds_no_secret_in_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, key()).unwrap();
        store
            .put_token("main", TokenKind::User, &token("plain-token-4f1e9a"))
            .await
            .unwrap();
        store.put_pending(&pending("st", i64::MAX)).await.unwrap();
        store.close().await.unwrap();
        drop(store);
        let mut bytes = std::fs::read(&path).unwrap();
        if let Ok(wal) = std::fs::read(dir.path().join("s.db-wal")) {
            bytes.extend(wal);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("plain-token-4f1e9a"));
        assert!(!text.contains("verifier-0123456789"));
    }

    #[tokio::test]
    async fn a_pending_authorization_is_taken_once_and_a_replay_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), key()).unwrap();
        store.put_pending(&pending("s1", 100)).await.unwrap();
        assert_eq!(store.pending_states("main", 50).await.unwrap(), ["s1"]);
        assert!(store.pending_states("main", 100).await.unwrap().is_empty());
        let PendingLookup::Taken(p) = store.take_pending("s1").await.unwrap() else {
            panic!("not taken")
        };
        assert_eq!(
            p.code_verifier.unwrap().expose_secret(),
            "verifier-0123456789"
        );
        assert!(matches!(
            store.take_pending("s1").await.unwrap(),
            PendingLookup::AlreadyUsed
        ));
        assert!(matches!(
            store.take_pending("nope").await.unwrap(),
            PendingLookup::Unknown
        ));
        store.restore_pending("s1").await.unwrap();
        assert!(matches!(
            store.take_pending("s1").await.unwrap(),
            PendingLookup::Taken(_)
        ));
    }

    #[tokio::test]
    async fn one_registration_claim_wins_until_released_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), key()).unwrap();
        assert!(store.claim_registration("main", 0, 10).await.unwrap());
        assert!(!store.claim_registration("main", 5, 15).await.unwrap());
        assert!(
            store.claim_registration("main", 10, 20).await.unwrap(),
            "expired"
        );
        store.release_registration("main").await.unwrap();
        assert!(store.claim_registration("main", 11, 21).await.unwrap());
    }

    #[tokio::test]
    async fn resealing_moves_every_secret_to_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path, key()).unwrap();
        store
            .put_token("main", TokenKind::User, &token("tok-a"))
            .await
            .unwrap();
        store.put_pending(&pending("s", i64::MAX)).await.unwrap();
        let new_key = Sealer::generate_key();
        let count = store
            .reseal(Sealer::from_base64(new_key.expose_secret()).unwrap())
            .await
            .unwrap();
        assert_eq!(count, 2);
        assert_eq!(
            store
                .token("main", TokenKind::User)
                .await
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret(),
            "tok-a"
        );
        drop(store);
        let store = SqliteStore::open(&path, Sealer::from_base64(new_key.expose_secret()).unwrap())
            .unwrap();
        assert!(store
            .token("main", TokenKind::User)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn a_revoked_token_is_marked_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), key()).unwrap();
        store
            .put_token("main", TokenKind::User, &token("t"))
            .await
            .unwrap();
        assert!(store
            .mark_token_revoked("main", TokenKind::User, 5)
            .await
            .unwrap());
        assert!(!store
            .mark_token_revoked("main", TokenKind::User, 6)
            .await
            .unwrap());
        assert_eq!(
            store
                .token("main", TokenKind::User)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(5)
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let _store = SqliteStore::open(&path, key()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
