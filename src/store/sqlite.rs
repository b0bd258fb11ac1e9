//! The embedded store: one SQLite file.
//!
//! Durability: WAL journal with `synchronous = FULL`, and every write is one transaction that commits
//! before the operation answers, so whatever a caller was told is stored survives a crash or a kill in
//! the middle of a later write. rusqlite is blocking, so each call runs on tokio's blocking pool; the
//! writes are rare (a few per connection's lifetime) and the reads small.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use secrecy::{ExposeSecret, SecretString};

use super::{
    AppRecord, PendingAuthorization, Store, StoreError, StoreResult, TokenKind, TokenRecord,
};
use crate::mastodon::InstanceInfo;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS apps (
    connection     TEXT PRIMARY KEY,
    instance       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,
    entity         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    connection     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'app')),
    instance       TEXT NOT NULL,
    access_token   TEXT NOT NULL,
    token_type     TEXT NOT NULL,
    scope          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (connection, kind)
);
CREATE TABLE IF NOT EXISTS pending_authorizations (
    state          TEXT PRIMARY KEY,
    connection     TEXT NOT NULL,
    instance       TEXT NOT NULL,
    code_verifier  TEXT,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_connection ON pending_authorizations (connection, expires_at);
CREATE TABLE IF NOT EXISTS instances (
    connection     TEXT PRIMARY KEY,
    info           TEXT NOT NULL
);
PRAGMA user_version = 1;
"#;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, and its folder.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path).map_err(db)?;
        restrict_permissions(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, f: F) -> StoreResult<T>
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

/// The database holds credentials: only the sidecar's user may read it.
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
                client_secret: SecretString::from(secret),
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
        let app = app.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
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
                    app.client_secret.expose_secret(),
                    app.scopes,
                    serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into()),
                    app.entity.to_string(),
                    app.created_at
                ],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn token(&self, connection: &str, kind: TokenKind) -> StoreResult<Option<TokenRecord>> {
        let connection = connection.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT instance, access_token, token_type, scope, created_at
                 FROM tokens WHERE connection = ?1 AND kind = ?2",
                params![connection, kind.as_str()],
                |r| {
                    Ok(TokenRecord {
                        instance: r.get(0)?,
                        access_token: SecretString::from(r.get::<_, String>(1)?),
                        token_type: r.get(2)?,
                        scope: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db)
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
        let token = token.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO tokens (connection, kind, instance, access_token, token_type, scope, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (connection, kind) DO UPDATE SET instance = excluded.instance,
                   access_token = excluded.access_token, token_type = excluded.token_type,
                   scope = excluded.scope, created_at = excluded.created_at",
                params![
                    connection,
                    kind.as_str(),
                    token.instance,
                    token.access_token.expose_secret(),
                    token.token_type,
                    token.scope,
                    token.created_at
                ],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> StoreResult<()> {
        let p = pending.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO pending_authorizations (state, connection, instance, code_verifier, redirect_uri, scope, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    p.state,
                    p.connection,
                    p.instance,
                    p.code_verifier.as_ref().map(|v| v.expose_secret().to_owned()),
                    p.redirect_uri,
                    p.scope,
                    p.expires_at
                ],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn take_pending(&self, state: &str) -> StoreResult<Option<PendingAuthorization>> {
        let state = state.to_owned();
        self.with(move |c| {
            // DELETE ... RETURNING makes taking atomic: two getToken calls with one state cannot both win.
            c.query_row(
                "DELETE FROM pending_authorizations WHERE state = ?1
                 RETURNING state, connection, instance, code_verifier, redirect_uri, scope, expires_at",
                params![state],
                |r| {
                    Ok(PendingAuthorization {
                        state: r.get(0)?,
                        connection: r.get(1)?,
                        instance: r.get(2)?,
                        code_verifier: r.get::<_, Option<String>>(3)?.map(SecretString::from),
                        redirect_uri: r.get(4)?,
                        scope: r.get(5)?,
                        expires_at: r.get(6)?,
                    })
                },
            )
            .optional()
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
                     WHERE connection = ?1 AND expires_at > ?2 ORDER BY expires_at DESC",
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
                params![now],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str) -> TokenRecord {
        TokenRecord {
            instance: "https://m.example".into(),
            access_token: SecretString::from(secret.to_owned()),
            token_type: "Bearer".into(),
            scope: "read".into(),
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn a_token_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/s.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .put_token("main", TokenKind::User, &token("t1"))
            .await
            .unwrap();
        store.close().await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        let got = store.token("main", TokenKind::User).await.unwrap().unwrap();
        assert_eq!(got.access_token.expose_secret(), "t1");
        assert!(store.token("main", TokenKind::App).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_pending_authorization_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let pending = PendingAuthorization {
            state: "s1".into(),
            connection: "main".into(),
            instance: "https://m.example".into(),
            code_verifier: Some(SecretString::from("v".to_owned())),
            redirect_uri: "urn:ietf:wg:oauth:2.0:oob".into(),
            scope: "read".into(),
            expires_at: 100,
        };
        store.put_pending(&pending).await.unwrap();
        assert_eq!(store.pending_states("main", 50).await.unwrap(), ["s1"]);
        assert!(store.pending_states("main", 100).await.unwrap().is_empty());
        assert!(store.take_pending("s1").await.unwrap().is_some());
        assert!(store.take_pending("s1").await.unwrap().is_none());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let _store = SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
