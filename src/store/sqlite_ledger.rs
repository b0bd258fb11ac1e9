//! The post ledger in the embedded store (`post_ledger`, see `sqlite.rs` for the table).
//!
//! Atomicity: a claim reads the entry, decides ([`ledger_row::decide`]) and writes in one IMMEDIATE
//! transaction, which takes SQLite's write lock before the read. Within the process the connection's
//! mutex already serialises calls; across processes sharing the file (the server and
//! `mastodon-sidecar authorize`) the write lock does, `busy_timeout` making the second wait. So
//! exactly one concurrent claimer finds the entry absent. Claims, settlements and releases go through
//! the group commit (`sqlite_batch.rs`): several share one such transaction, each in its own
//! savepoint, and every write commits (WAL, `synchronous = FULL`) before its call answers.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::ledger::{Ledger, LedgerClaim, LedgerKey, LedgerState};
use super::ledger_row::{self, Decision, Settled, COLUMNS, DOUBT, IN_FLIGHT, POSTED};
use super::sqlite::{db, SqliteStore};
use super::StoreResult;

#[async_trait]
impl Ledger for SqliteStore {
    async fn ledger_claim(
        &self,
        key: &LedgerKey<'_>,
        owner: &str,
        now: i64,
        lease_until: i64,
        retain_until: i64,
    ) -> StoreResult<LedgerClaim> {
        let connection = key.connection.to_owned();
        let entry = key.key.to_owned();
        let fingerprint = key.fingerprint.to_owned();
        let owner = owner.to_owned();
        // In a group commit: its transaction is IMMEDIATE, so the read below and the write after it
        // see no other writer in between.
        self.write_batched(move |tx| {
            // Cached statements: parsing the SQL again on every post cost more than running it.
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM post_ledger WHERE connection = ?1 AND key = ?2"
                ))
                .map_err(db)?
                .query_row(
                    params![connection, entry],
                    |r| {
                        Ok(ledger_row::Row {
                            fingerprint: r.get(0)?,
                            state: r.get(1)?,
                            started_at: r.get(2)?,
                            lease_until: r.get(3)?,
                            doubt_since: r.get(4)?,
                            status_id: r.get(5)?,
                            answer: r.get(6)?,
                            error: r.get(7)?,
                            retain_until: r.get(8)?,
                        })
                    },
                )
                .optional()
                .map_err(db)?;
            let decision = ledger_row::decide(row, &fingerprint, now)?;
            match &decision {
                Decision::Fresh => {
                    tx.prepare_cached(
"INSERT INTO post_ledger (connection, key, fingerprint, state, owner, started_at,
                           lease_until, doubt_since, status_id, answer, error, retain_until)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, NULL, NULL, ?8)
                         ON CONFLICT (connection, key) DO UPDATE SET fingerprint = excluded.fingerprint,
                           state = excluded.state, owner = excluded.owner,
                           started_at = excluded.started_at, lease_until = excluded.lease_until,
                           doubt_since = NULL, status_id = NULL, answer = NULL, error = NULL,
                           retain_until = excluded.retain_until",
).map_err(db)?.execute(
                        params![
                            connection,
                            entry,
                            fingerprint,
                            IN_FLIGHT,
                            owner,
                            now,
                            lease_until,
                            retain_until
                        ],
                    )
                    .map_err(db)?;
                }
                Decision::TakeOver { since, .. } => {
                    tx.prepare_cached(
"UPDATE post_ledger SET state = ?3, owner = ?4, lease_until = ?5,
                           doubt_since = ?6, retain_until = max(retain_until, ?7)
                         WHERE connection = ?1 AND key = ?2",
).map_err(db)?.execute(
                        params![
                            connection,
                            entry,
                            IN_FLIGHT,
                            owner,
                            lease_until,
                            since,
                            retain_until
                        ],
                    )
                    .map_err(db)?;
                }
                Decision::Answer(_) => {}
            }
            Ok(decision.claim())
        })
        .await
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
        let (connection, key, owner) = (connection.to_owned(), key.to_owned(), owner.to_owned());
        self.write_batched(move |c| {
            c.prepare_cached(
                "UPDATE post_ledger SET state = ?4, status_id = ?5, answer = ?6, error = ?7,
                   doubt_since = coalesce(?8, doubt_since), retain_until = ?9
                 WHERE connection = ?1 AND key = ?2 AND owner = ?3",
            )
            .map_err(db)?
            .execute(params![
                connection,
                key,
                owner,
                settled.state,
                settled.status_id,
                settled.answer,
                settled.error,
                settled.doubt_since,
                retain_until
            ])
            .map(|n| n == 1)
            .map_err(db)
        })
        .await
    }

    async fn ledger_release(&self, connection: &str, key: &str, owner: &str) -> StoreResult<()> {
        let (connection, key, owner) = (connection.to_owned(), key.to_owned(), owner.to_owned());
        self.write_batched(move |c| {
            // A settled outcome is never forgotten this way: only an open claim (or a doubt) goes.
            c.prepare_cached(
                "DELETE FROM post_ledger
                 WHERE connection = ?1 AND key = ?2 AND owner = ?3 AND state IN (?4, ?5)",
            )
            .map_err(db)?
            .execute(params![connection, key, owner, IN_FLIGHT, DOUBT])
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn ledger_status_taken(
        &self,
        connection: &str,
        status_id: &str,
        key: &str,
    ) -> StoreResult<bool> {
        let (connection, status_id, key) =
            (connection.to_owned(), status_id.to_owned(), key.to_owned());
        self.with(move |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM post_ledger
                   WHERE connection = ?1 AND status_id = ?2 AND key <> ?3 AND state = ?4)",
                params![connection, status_id, key, POSTED],
                |r| r.get::<_, bool>(0),
            )
            .map_err(db)
        })
        .await
    }

    async fn ledger_purge(&self, now: i64, max_entries: u64) -> StoreResult<u64> {
        let keep = i64::try_from(max_entries).unwrap_or(i64::MAX);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let expired = tx
                .execute(
                    "DELETE FROM post_ledger WHERE retain_until < ?1",
                    params![now],
                )
                .map_err(db)?;
            // Everything but the newest `keep` entries (oldest first by when they were claimed).
            let excess = tx
                .execute(
                    "DELETE FROM post_ledger WHERE rowid IN (
                       SELECT rowid FROM post_ledger
                       ORDER BY started_at DESC, connection DESC, key DESC
                       LIMIT -1 OFFSET ?1)",
                    params![keep],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok((expired + excess) as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;
    use crate::store::seal::Sealer;
    use crate::store::{Store, StoredError};

    fn open(path: &std::path::Path, key: &secrecy::SecretString) -> SqliteStore {
        SqliteStore::open(path, Sealer::from_base64(key.expose_secret()).unwrap()).unwrap()
    }

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        open(&dir.path().join("s.db"), &Sealer::generate_key())
    }

    fn key(k: &str) -> LedgerKey<'_> {
        LedgerKey {
            connection: "main",
            key: k,
            fingerprint: "fp-1",
        }
    }

    fn posted(id: &str) -> LedgerState {
        LedgerState::Posted {
            status_id: id.into(),
            answer: json!({"id": id, "content": "<p>hello</p>"}),
        }
    }

    #[tokio::test]
    async fn a_claim_is_in_flight_for_everyone_else_until_its_lease_ends() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        assert_eq!(
            s.ledger_claim(&key("k"), "a", 100, 130, 1000)
                .await
                .unwrap(),
            LedgerClaim::Claimed
        );
        let again = LedgerClaim::InFlight {
            started_at: 100,
            lease_until: 130,
        };
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 110, 140, 1000)
                .await
                .unwrap(),
            again
        );
        assert_eq!(
            s.ledger_claim(&key("k"), "a", 130, 160, 1000)
                .await
                .unwrap(),
            again,
            "the lease's last second still holds"
        );
        // Another key, and the same key on another connection, are separate entries.
        assert_eq!(
            s.ledger_claim(&key("k2"), "b", 110, 140, 1000)
                .await
                .unwrap(),
            LedgerClaim::Claimed
        );
        let other = LedgerKey {
            connection: "other",
            ..key("k")
        };
        assert_eq!(
            s.ledger_claim(&other, "b", 110, 140, 1000).await.unwrap(),
            LedgerClaim::Claimed
        );
    }

    /// Many claims at once go through the group commit: each key claimed exactly once however many
    /// race for it, every answer given only for what was committed (it is all there after reopening).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claims_share_commits_and_each_key_is_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let sealer_key = Sealer::generate_key();
        let s = Arc::new(open(&path, &sealer_key));
        let mut tasks = Vec::new();
        for n in 0..400 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                // 100 keys, four claimers each.
                let k = format!("k{}", n % 100);
                let claim = s
                    .ledger_claim(&key(&k), &format!("owner-{n}"), 100, 130, 1000)
                    .await
                    .unwrap();
                if claim == LedgerClaim::Claimed {
                    assert!(s
                        .ledger_settle("main", &k, &format!("owner-{n}"), &posted(&k), 1000)
                        .await
                        .unwrap());
                }
                (k, claim)
            }));
        }
        let mut claimed = std::collections::BTreeMap::<String, usize>::new();
        for t in tasks {
            let (k, claim) = t.await.unwrap();
            if claim == LedgerClaim::Claimed {
                *claimed.entry(k).or_default() += 1;
            }
        }
        assert_eq!(claimed.len(), 100);
        assert!(claimed.values().all(|n| *n == 1), "{claimed:?}");
        drop(s);
        let s = open(&path, &sealer_key);
        for n in 0..100 {
            let k = format!("k{n}");
            assert!(
                matches!(
                    s.ledger_claim(&key(&k), "later", 200, 230, 1000)
                        .await
                        .unwrap(),
                    LedgerClaim::Posted { .. }
                ),
                "{k} was committed"
            );
        }
    }

    /// A write that fails inside a batch is rolled back alone: the others of its batch commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_write_in_a_batch_leaves_the_others_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(&dir));
        let mut tasks = Vec::new();
        for n in 0..64 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                if n % 2 == 0 {
                    s.write_batched(move |c| {
                        c.execute(
                            "INSERT INTO meta (key, value) VALUES (?1, 'x')",
                            params![format!("batch-{n}")],
                        )
                        .map_err(db)?;
                        Ok(())
                    })
                    .await
                } else {
                    s.write_batched(move |c| {
                        c.execute(
                            "INSERT INTO meta (key, value) VALUES (?1, 'x')",
                            params![format!("batch-{n}")],
                        )
                        .map_err(db)?;
                        // Fails after it wrote: its row must go with it.
                        c.execute("INSERT INTO no_such_table VALUES (1)", [])
                            .map_err(db)?;
                        Ok(())
                    })
                    .await
                }
            }));
        }
        let mut failed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 32);
        let rows: i64 = s
            .with(|c| {
                c.query_row(
                    "SELECT count(*) FROM meta WHERE key LIKE 'batch-%'",
                    [],
                    |r| r.get(0),
                )
                .map_err(db)
            })
            .await
            .unwrap();
        assert_eq!(rows, 32, "only the writes that succeeded are kept");
    }

    #[tokio::test]
    async fn a_posted_key_answers_the_kept_result() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        assert!(s
            .ledger_settle("main", "k", "a", &posted("109"), 2000)
            .await
            .unwrap());
        let got = s
            .ledger_claim(&key("k"), "b", 500, 530, 1500)
            .await
            .unwrap();
        assert_eq!(
            got,
            LedgerClaim::Posted {
                status_id: "109".into(),
                answer: json!({"id": "109", "content": "<p>hello</p>"}),
            }
        );
        // Kept until the settled retain_until (2000), not the claim's (1000).
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 2000, 2030, 3000)
                .await
                .unwrap(),
            got
        );
        // A posted entry is not released.
        s.ledger_release("main", "k", "a").await.unwrap();
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 600, 630, 1600)
                .await
                .unwrap(),
            got
        );
    }

    #[tokio::test]
    async fn a_failure_is_kept_and_answered_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        let error = StoredError {
            code: "validation_failed".into(),
            detail: "Text character limit of 500 exceeded".into(),
            upstream_status: Some(422),
            upstream_error: Some("Validation failed".into()),
        };
        assert!(s
            .ledger_settle("main", "k", "a", &LedgerState::Failed(error.clone()), 1000)
            .await
            .unwrap());
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 200, 230, 1000)
                .await
                .unwrap(),
            LedgerClaim::Failed(error)
        );
    }

    #[tokio::test]
    async fn a_released_claim_may_be_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        // Only the owner releases.
        s.ledger_release("main", "k", "b").await.unwrap();
        assert!(matches!(
            s.ledger_claim(&key("k"), "b", 101, 131, 1000)
                .await
                .unwrap(),
            LedgerClaim::InFlight { .. }
        ));
        s.ledger_release("main", "k", "a").await.unwrap();
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 102, 132, 1000)
                .await
                .unwrap(),
            LedgerClaim::Claimed
        );
    }

    #[tokio::test]
    async fn a_lease_that_ran_out_is_taken_over_as_a_doubt() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 131, 161, 1000)
                .await
                .unwrap(),
            LedgerClaim::Doubt {
                started_at: 100,
                since: 130
            }
        );
        // b holds it now: a third caller sees it in flight under b's lease.
        assert_eq!(
            s.ledger_claim(&key("k"), "c", 140, 170, 1000)
                .await
                .unwrap(),
            LedgerClaim::InFlight {
                started_at: 100,
                lease_until: 161
            }
        );
        // The old owner's late answer is refused; the new owner's is kept.
        assert!(!s
            .ledger_settle("main", "k", "a", &posted("1"), 1000)
            .await
            .unwrap());
        s.ledger_release("main", "k", "a").await.unwrap();
        // If b dies too, the doubt still dates from a's lease.
        assert_eq!(
            s.ledger_claim(&key("k"), "c", 200, 230, 1000)
                .await
                .unwrap(),
            LedgerClaim::Doubt {
                started_at: 100,
                since: 130
            }
        );
        assert!(!s
            .ledger_settle("main", "k", "b", &posted("2"), 1000)
            .await
            .unwrap());
        assert!(s
            .ledger_settle("main", "k", "c", &posted("3"), 1000)
            .await
            .unwrap());
        assert!(matches!(
            s.ledger_claim(&key("k"), "d", 300, 330, 1000).await.unwrap(),
            LedgerClaim::Posted { status_id, .. } if status_id == "3"
        ));
    }

    #[tokio::test]
    async fn a_doubt_is_taken_over_by_the_next_claim() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        assert!(s
            .ledger_settle("main", "k", "a", &LedgerState::Doubt { since: 110 }, 1000)
            .await
            .unwrap());
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 115, 145, 1000)
                .await
                .unwrap(),
            LedgerClaim::Doubt {
                started_at: 100,
                since: 110
            },
            "taken over even within the old lease"
        );
        assert!(matches!(
            s.ledger_claim(&key("k"), "c", 116, 146, 1000)
                .await
                .unwrap(),
            LedgerClaim::InFlight {
                lease_until: 145,
                ..
            }
        ));
        assert!(!s
            .ledger_settle("main", "k", "a", &posted("1"), 1000)
            .await
            .unwrap());
        // Resolved as never created: b releases, and the next claim sends afresh.
        s.ledger_release("main", "k", "b").await.unwrap();
        assert_eq!(
            s.ledger_claim(&key("k"), "c", 120, 150, 1000)
                .await
                .unwrap(),
            LedgerClaim::Claimed
        );
    }

    #[tokio::test]
    async fn a_key_reused_for_other_parameters_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        let other = LedgerKey {
            fingerprint: "fp-2",
            ..key("k")
        };
        assert_eq!(
            s.ledger_claim(&other, "b", 200, 230, 1000).await.unwrap(),
            LedgerClaim::Mismatch,
            "even past the lease"
        );
        // Still a's, still the doubt it was.
        assert_eq!(
            s.ledger_claim(&key("k"), "b", 200, 230, 1000)
                .await
                .unwrap(),
            LedgerClaim::Doubt {
                started_at: 100,
                since: 130
            }
        );
        s.ledger_settle("main", "k", "b", &posted("9"), 1000)
            .await
            .unwrap();
        assert_eq!(
            s.ledger_claim(&other, "c", 300, 330, 1000).await.unwrap(),
            LedgerClaim::Mismatch
        );
    }

    #[tokio::test]
    async fn an_entry_past_its_retention_counts_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        s.ledger_settle("main", "k", "a", &posted("1"), 1000)
            .await
            .unwrap();
        let other = LedgerKey {
            fingerprint: "fp-2",
            ..key("k")
        };
        assert_eq!(
            s.ledger_claim(&other, "b", 1001, 1031, 2000).await.unwrap(),
            LedgerClaim::Claimed
        );
        assert_eq!(
            s.ledger_claim(&other, "c", 1002, 1032, 2000).await.unwrap(),
            LedgerClaim::InFlight {
                started_at: 1001,
                lease_until: 1031
            }
        );
    }

    #[tokio::test]
    async fn a_status_is_taken_only_by_another_posted_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.ledger_claim(&key("k1"), "a", 100, 130, 1000)
            .await
            .unwrap();
        s.ledger_settle("main", "k1", "a", &posted("555"), 1000)
            .await
            .unwrap();
        s.ledger_claim(&key("k2"), "b", 100, 130, 1000)
            .await
            .unwrap();
        assert!(s.ledger_status_taken("main", "555", "k2").await.unwrap());
        assert!(!s.ledger_status_taken("main", "555", "k1").await.unwrap());
        assert!(!s.ledger_status_taken("main", "556", "k2").await.unwrap());
        assert!(!s.ledger_status_taken("other", "555", "k2").await.unwrap());
    }

    #[tokio::test]
    async fn purging_drops_expired_entries_then_the_oldest_beyond_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for i in 0..10i64 {
            let k = format!("k{i}");
            s.ledger_claim(&key(&k), "a", 100 + i, 130 + i, 1000 + i)
                .await
                .unwrap();
        }
        // k0..k2 expire (retain_until 1000..1002 < 1003).
        assert_eq!(s.ledger_purge(1003, 100).await.unwrap(), 3);
        assert_eq!(s.ledger_purge(1003, 100).await.unwrap(), 0);
        // Seven left; keep the newest four: k3..k5 go.
        assert_eq!(s.ledger_purge(1003, 4).await.unwrap(), 3);
        for i in 0..10i64 {
            let k = format!("k{i}");
            let got = s.ledger_claim(&key(&k), "b", 120, 150, 5000).await.unwrap();
            if i < 6 {
                assert_eq!(got, LedgerClaim::Claimed, "k{i} was purged");
            } else {
                assert!(matches!(got, LedgerClaim::InFlight { .. }), "k{i} kept");
            }
        }
    }

    #[tokio::test]
    async fn the_ledger_survives_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let secret = Sealer::generate_key();
        let s = open(&path, &secret);
        s.ledger_claim(&key("k"), "a", 100, 130, 1000)
            .await
            .unwrap();
        s.ledger_settle("main", "k", "a", &posted("77"), 1000)
            .await
            .unwrap();
        s.ledger_claim(&key("open"), "a", 100, 130, 1000)
            .await
            .unwrap();
        s.close().await.unwrap();
        drop(s);
        let s = open(&path, &secret);
        assert!(matches!(
            s.ledger_claim(&key("k"), "b", 200, 230, 1000).await.unwrap(),
            LedgerClaim::Posted { status_id, answer } if status_id == "77" && answer["id"] == "77"
        ));
        assert_eq!(
            s.ledger_claim(&key("open"), "b", 200, 230, 1000)
                .await
                .unwrap(),
            LedgerClaim::Doubt {
                started_at: 100,
                since: 130
            }
        );
    }

    #[tokio::test]
    async fn a_version_1_file_gains_the_ledger_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let secret = Sealer::generate_key();
        let s = open(&path, &secret);
        s.claim_registration("main", 0, 10).await.unwrap();
        drop(s);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("DROP TABLE post_ledger; PRAGMA user_version = 1;")
            .unwrap();
        drop(c);
        let s = open(&path, &secret);
        assert!(!s.claim_registration("main", 5, 15).await.unwrap());
        assert_eq!(
            s.ledger_claim(&key("k"), "a", 100, 130, 1000)
                .await
                .unwrap(),
            LedgerClaim::Claimed
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_twenty_concurrent_claims_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let secret = Sealer::generate_key();
        // Two handles on one file, as the server and `authorize` would hold it.
        let stores = [
            Arc::new(open(&path, &secret)),
            Arc::new(open(&path, &secret)),
        ];
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let s = Arc::clone(&stores[i % 2]);
                tokio::spawn(async move {
                    s.ledger_claim(&key("k"), &format!("owner-{i}"), 100, 130, 1000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut claimed = 0;
        for t in tasks {
            match t.await.unwrap() {
                LedgerClaim::Claimed => claimed += 1,
                LedgerClaim::InFlight {
                    started_at: 100,
                    lease_until: 130,
                } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(claimed, 1);
    }
}
