//! The post ledger in the shared store (`post_ledger`, created by migration 2 in `postgres.rs`).
//!
//! Atomicity across replicas: a claim is one transaction that first tries
//! `INSERT ... ON CONFLICT DO NOTHING` (concurrent inserts of one key serialise on the primary key:
//! exactly one inserts, the others wait for it to commit and then see its row), and otherwise locks
//! the existing row with `SELECT ... FOR UPDATE`, decides ([`ledger_row::decide`]) and writes while
//! holding the lock. A second claimer blocks on the lock and, under READ COMMITTED, reads the row as
//! the first left it, so a takeover happens once. A row deleted between the two statements (released
//! or purged) is claimed again from the start. Settling, releasing and purging are single statements.

use async_trait::async_trait;

use super::ledger::{Ledger, LedgerClaim, LedgerKey, LedgerState};
use super::ledger_row::{self, Decision, Settled, COLUMNS, DOUBT, IN_FLIGHT, POSTED};
use super::postgres::{db, PostgresStore};
use super::{StoreError, StoreResult};

/// How often a claim starts over when the entry vanished between its insert and its lock.
const CLAIM_ATTEMPTS: usize = 5;

#[async_trait]
impl Ledger for PostgresStore {
    async fn ledger_claim(
        &self,
        key: &LedgerKey<'_>,
        owner: &str,
        now: i64,
        lease_until: i64,
        retain_until: i64,
    ) -> StoreResult<LedgerClaim> {
        let mut client = self.client().await?;
        for _ in 0..CLAIM_ATTEMPTS {
            let tx = client.transaction().await.map_err(db)?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO post_ledger (connection, key, fingerprint, state, owner, started_at,
                       lease_until, retain_until)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (connection, key) DO NOTHING",
                )
                .await
                .map_err(db)?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &key.connection,
                        &key.key,
                        &key.fingerprint,
                        &IN_FLIGHT,
                        &owner,
                        &now,
                        &lease_until,
                        &retain_until,
                    ],
                )
                .await
                .map_err(db)?;
            if inserted == 1 {
                tx.commit().await.map_err(db)?;
                return Ok(LedgerClaim::Claimed);
            }
            let select = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM post_ledger WHERE connection = $1 AND key = $2 FOR UPDATE"
                ))
                .await
                .map_err(db)?;
            let Some(r) = tx
                .query_opt(&select, &[&key.connection, &key.key])
                .await
                .map_err(db)?
            else {
                // Deleted since the insert saw it: start over.
                tx.rollback().await.map_err(db)?;
                continue;
            };
            let row = ledger_row::Row {
                fingerprint: r.try_get(0).map_err(db)?,
                state: r.try_get(1).map_err(db)?,
                started_at: r.try_get(2).map_err(db)?,
                lease_until: r.try_get(3).map_err(db)?,
                doubt_since: r.try_get(4).map_err(db)?,
                status_id: r.try_get(5).map_err(db)?,
                answer: r.try_get(6).map_err(db)?,
                error: r.try_get(7).map_err(db)?,
                retain_until: r.try_get(8).map_err(db)?,
            };
            let decision = ledger_row::decide(Some(row), key.fingerprint, now)?;
            match &decision {
                Decision::Fresh => {
                    // Past its retention: replaced as if it were not there.
                    let replace = tx
                        .prepare_cached(
                            "UPDATE post_ledger SET fingerprint = $3, state = $4, owner = $5,
                               started_at = $6, lease_until = $7, doubt_since = NULL,
                               status_id = NULL, answer = NULL, error = NULL, retain_until = $8
                             WHERE connection = $1 AND key = $2",
                        )
                        .await
                        .map_err(db)?;
                    tx.execute(
                        &replace,
                        &[
                            &key.connection,
                            &key.key,
                            &key.fingerprint,
                            &IN_FLIGHT,
                            &owner,
                            &now,
                            &lease_until,
                            &retain_until,
                        ],
                    )
                    .await
                    .map_err(db)?;
                }
                Decision::TakeOver { since, .. } => {
                    let take = tx
                        .prepare_cached(
                            "UPDATE post_ledger SET state = $3, owner = $4, lease_until = $5,
                               doubt_since = $6, retain_until = GREATEST(retain_until, $7)
                             WHERE connection = $1 AND key = $2",
                        )
                        .await
                        .map_err(db)?;
                    tx.execute(
                        &take,
                        &[
                            &key.connection,
                            &key.key,
                            &IN_FLIGHT,
                            &owner,
                            &lease_until,
                            since,
                            &retain_until,
                        ],
                    )
                    .await
                    .map_err(db)?;
                }
                Decision::Answer(_) => {}
            }
            tx.commit().await.map_err(db)?;
            return Ok(decision.claim());
        }
        Err(StoreError::Database(format!(
            "the ledger entry kept vanishing during {CLAIM_ATTEMPTS} claim attempts"
        )))
    }

    async fn ledger_settle(
        &self,
        connection: &str,
        key: &str,
        owner: &str,
        state: &LedgerState,
        retain_until: i64,
    ) -> StoreResult<bool> {
        let settled = Settled::of(state)?;
        self.execute(
            "UPDATE post_ledger SET state = $4, status_id = $5, answer = $6, error = $7,
               doubt_since = coalesce($8, doubt_since), retain_until = $9
             WHERE connection = $1 AND key = $2 AND owner = $3",
            &[
                &connection,
                &key,
                &owner,
                &settled.state,
                &settled.status_id,
                &settled.answer,
                &settled.error,
                &settled.doubt_since,
                &retain_until,
            ],
        )
        .await
        .map(|n| n == 1)
    }

    async fn ledger_release(&self, connection: &str, key: &str, owner: &str) -> StoreResult<()> {
        // A settled outcome is never forgotten this way: only an open claim (or a doubt) goes.
        self.execute(
            "DELETE FROM post_ledger
             WHERE connection = $1 AND key = $2 AND owner = $3 AND state IN ($4, $5)",
            &[&connection, &key, &owner, &IN_FLIGHT, &DOUBT],
        )
        .await
        .map(|_| ())
    }

    async fn ledger_status_taken(
        &self,
        connection: &str,
        status_id: &str,
        key: &str,
    ) -> StoreResult<bool> {
        self.query_opt(
            "SELECT EXISTS (SELECT 1 FROM post_ledger
               WHERE connection = $1 AND status_id = $2 AND key <> $3 AND state = $4)",
            &[&connection, &status_id, &key, &POSTED],
        )
        .await?
        .map(|r| r.try_get::<_, bool>(0))
        .transpose()
        .map_err(db)
        .map(|taken| taken.unwrap_or(false))
    }

    async fn ledger_purge(&self, now: i64, max_entries: u64) -> StoreResult<u64> {
        let keep = i64::try_from(max_entries).unwrap_or(i64::MAX);
        let expired = self
            .execute("DELETE FROM post_ledger WHERE retain_until < $1", &[&now])
            .await?;
        // Everything but the newest `keep` entries (oldest first by when they were claimed). Replicas
        // purging at once each delete what lies beyond the newest `keep` of their own snapshot, so
        // together they never leave fewer than `keep`.
        let excess = self
            .execute(
                "DELETE FROM post_ledger WHERE (connection, key) IN (
                   SELECT connection, key FROM post_ledger
                   ORDER BY started_at DESC, connection DESC, key DESC
                   OFFSET $1)",
                &[&keep],
            )
            .await?;
        Ok(expired + excess)
    }
}
