//! The shared PostgreSQL store: the guarantees the embedded store gives, and two replicas on one database.
//!
//! These tests use the database in `MASTODON_SIDECAR_TEST_POSTGRES_URL` (the role must be allowed to
//! create schemas in it; the URL must not require TLS). Without it each test says it was skipped, except
//! under CI (`CI` set), where that is a failure. Every test works in a schema of its own (`search_path`
//! through the URL's `options`), so they run in parallel and leave nothing behind when they pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mastodon_sidecar::config::Settings;
use mastodon_sidecar::mastodon::InstanceInfo;
use mastodon_sidecar::store::postgres::PostgresStore;
use mastodon_sidecar::store::seal::Sealer;
use mastodon_sidecar::store::{
    AppRecord, Ledger, LedgerClaim, LedgerKey, LedgerState, PendingAuthorization, PendingLookup,
    Store, StoreError, StoredError, TokenKind, TokenRecord, PENDING_RETENTION_S,
};
use mastodon_sidecar::{Application, Shutdown};
use mastodon_standin::Options;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::helpers::{spawn_app_with, test_settings, Format};

const VAR: &str = "MASTODON_SIDECAR_TEST_POSTGRES_URL";

/// The test database's URL; `None` (after saying so) when there is none outside CI.
fn database_url(test: &str) -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide PostgreSQL: set {VAR} (.ci/run does)")
        }
        _ => {
            eprintln!(
                "skipped postgres::{test}: {VAR} is not set (see README.md, \"Running the PostgreSQL tests locally\")"
            );
            None
        }
    }
}

/// A schema of the test's own, dropped by [`Schema::drop`].
struct Schema {
    admin: tokio_postgres::Client,
    name: String,
    base: String,
}

impl Schema {
    async fn create(test: &str) -> Option<Schema> {
        let base = database_url(test)?;
        let (admin, connection) = tokio_postgres::connect(&base, NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {VAR}: {e}"));
        tokio::spawn(connection);
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("the test role may create schemas");
        Some(Schema { admin, name, base })
    }

    /// The database URL with this schema first on the search path, and extra `params` (`a=b&c=d`).
    fn url_with(&self, params: &str) -> SecretString {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        let mut url = format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.base, self.name
        );
        if !params.is_empty() {
            url.push('&');
            url.push_str(params);
        }
        SecretString::from(url)
    }

    fn url(&self) -> SecretString {
        self.url_with("")
    }

    async fn connect(&self, key: &SecretString) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(&self.url(), sealer(key)).await
    }

    /// Every value of `column` in `table`, as stored.
    async fn raw(&self, table: &str, column: &str) -> Vec<Option<String>> {
        self.admin
            .query(&format!("SELECT {column} FROM {}.{table}", self.name), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    async fn drop(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}

fn sealer(key: &SecretString) -> Sealer {
    Sealer::from_base64(key.expose_secret()).unwrap()
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

fn app(secret: &str) -> AppRecord {
    AppRecord {
        instance: "https://m.example".into(),
        client_id: "cid-1".into(),
        client_secret: SecretString::from(secret.to_owned()),
        scopes: "read write".into(),
        redirect_uris: vec!["urn:ietf:wg:oauth:2.0:oob".into()],
        entity: json!({"name": "mastodon-sidecar", "client_id": "cid-1"}),
        created_at: 7,
    }
}

// --- the store itself -------------------------------------------------------------------------------

#[tokio::test]
async fn a_token_survives_reconnecting_with_the_same_key_only() {
    let Some(schema) = Schema::create("a_token_survives_reconnecting_with_the_same_key_only").await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let store = schema.connect(&key).await.unwrap();
    store
        .put_token("main", TokenKind::User, &token("t1-secret-value"))
        .await
        .unwrap();
    store.put_app("main", &app("app-secret-1")).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    assert!(matches!(
        schema.connect(&Sealer::generate_key()).await,
        Err(StoreError::WrongKey)
    ));
    // The refused key overwrote nothing.
    let store = schema.connect(&key).await.unwrap();
    let got = store.token("main", TokenKind::User).await.unwrap().unwrap();
    assert_eq!(got.access_token.expose_secret(), "t1-secret-value");
    assert_eq!(got.revoked_at, None);
    assert!(store.token("main", TokenKind::App).await.unwrap().is_none());
    let got = store.app("main").await.unwrap().unwrap();
    assert_eq!(got.client_secret.expose_secret(), "app-secret-1");
    assert_eq!(got.redirect_uris, ["urn:ietf:wg:oauth:2.0:oob"]);
    assert_eq!(got.entity["client_id"], "cid-1");
    assert_eq!(got.created_at, 7);
    store.delete_token("main", TokenKind::User).await.unwrap();
    assert!(store
        .token("main", TokenKind::User)
        .await
        .unwrap()
        .is_none());
    store.ping().await.unwrap();
    schema.drop().await;
}

#[tokio::test]
async fn the_database_holds_no_secret_in_plain_text() {
    let Some(schema) = Schema::create("the_database_holds_no_secret_in_plain_text").await else {
        return;
    };
    let store = schema.connect(&Sealer::generate_key()).await.unwrap();
    store
        .put_token("main", TokenKind::User, &token("plain-token-4f1e9a"))
        .await
        .unwrap();
    store
        .put_app("main", &app("plain-client-secret-77c2"))
        .await
        .unwrap();
    store.put_pending(&pending("st", i64::MAX)).await.unwrap();
    for (table, column, secret) in [
        ("tokens", "access_token", "plain-token-4f1e9a"),
        ("apps", "client_secret", "plain-client-secret-77c2"),
        (
            "pending_authorizations",
            "code_verifier",
            "verifier-0123456789",
        ),
    ] {
        let values = schema.raw(table, column).await;
        assert_eq!(values.len(), 1, "{table}");
        let value = values[0].as_deref().unwrap();
        assert!(value.starts_with("v1:"), "{table}.{column} is sealed");
        assert!(!value.contains(secret), "{table}.{column} holds the secret");
    }
    // Nowhere else either.
    let dump: String = schema
        .admin
        .query(
            &format!(
                "SELECT concat_ws('|', a::text, t::text, p::text) FROM {s}.apps a, {s}.tokens t, {s}.pending_authorizations p",
                s = schema.name
            ),
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    for secret in [
        "plain-token-4f1e9a",
        "plain-client-secret-77c2",
        "verifier-0123456789",
    ] {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
    let meta = schema.raw("meta", "key || '=' || value").await;
    assert!(meta.contains(&Some("schema_version=2".into())), "{meta:?}");
    assert!(
        meta.iter()
            .any(|m| m.as_deref().unwrap().starts_with("key_check=v1:")),
        "{meta:?}"
    );
    schema.drop().await;
}

#[tokio::test]
async fn a_pending_authorization_is_taken_once_and_a_replay_is_recognised() {
    let Some(schema) =
        Schema::create("a_pending_authorization_is_taken_once_and_a_replay_is_recognised").await
    else {
        return;
    };
    let store = schema.connect(&Sealer::generate_key()).await.unwrap();
    store.put_pending(&pending("s1", 100)).await.unwrap();
    assert_eq!(store.pending_states("main", 50).await.unwrap(), ["s1"]);
    assert!(store.pending_states("main", 100).await.unwrap().is_empty());
    let PendingLookup::Taken(p) = store.take_pending("s1").await.unwrap() else {
        panic!("not taken")
    };
    assert_eq!(p.state, "s1");
    assert_eq!(p.expires_at, 100);
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
    assert!(store.pending_states("main", 50).await.unwrap().is_empty());
    store.restore_pending("s1").await.unwrap();
    assert!(matches!(
        store.take_pending("s1").await.unwrap(),
        PendingLookup::Taken(_)
    ));

    // Many takers at once, through several connections: exactly one wins.
    let store = Arc::new(store);
    let mut v = pending("race", i64::MAX);
    v.code_verifier = None;
    store.put_pending(&v).await.unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_pending("race").await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for taker in takers {
        match taker.await.unwrap() {
            PendingLookup::Taken(p) => {
                assert!(p.code_verifier.is_none());
                taken += 1;
            }
            PendingLookup::AlreadyUsed => {}
            PendingLookup::Unknown => panic!("the state is known"),
        }
    }
    assert_eq!(taken, 1);
    schema.drop().await;
}

#[tokio::test]
async fn expired_authorizations_are_kept_a_day_to_recognise_replays() {
    let Some(schema) =
        Schema::create("expired_authorizations_are_kept_a_day_to_recognise_replays").await
    else {
        return;
    };
    let store = schema.connect(&Sealer::generate_key()).await.unwrap();
    store.put_pending(&pending("old", 1_000)).await.unwrap();
    store.put_pending(&pending("new", 5_000)).await.unwrap();
    assert_eq!(
        store
            .purge_expired(1_000 + PENDING_RETENTION_S - 1)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_expired(1_000 + PENDING_RETENTION_S)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.take_pending("old").await.unwrap(),
        PendingLookup::Unknown
    ));
    assert!(matches!(
        store.take_pending("new").await.unwrap(),
        PendingLookup::Taken(_)
    ));
    schema.drop().await;
}

#[tokio::test]
async fn one_registration_claim_wins_until_released_or_expired() {
    let Some(schema) =
        Schema::create("one_registration_claim_wins_until_released_or_expired").await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let store = schema.connect(&key).await.unwrap();
    assert!(store.claim_registration("main", 0, 10).await.unwrap());
    assert!(!store.claim_registration("main", 5, 15).await.unwrap());
    assert!(
        store.claim_registration("main", 10, 20).await.unwrap(),
        "expired"
    );
    store.release_registration("main").await.unwrap();
    assert!(store.claim_registration("main", 11, 21).await.unwrap());

    // Two replicas claiming a new connection at the same moment: one wins.
    let other = schema.connect(&key).await.unwrap();
    for round in 0..10 {
        let connection = format!("c{round}");
        let (a, b) = tokio::join!(
            store.claim_registration(&connection, 100, 160),
            other.claim_registration(&connection, 100, 160)
        );
        assert!(a.unwrap() ^ b.unwrap(), "round {round}: exactly one claim");
    }
    schema.drop().await;
}

#[tokio::test]
async fn resealing_moves_every_secret_to_the_new_key() {
    let Some(schema) = Schema::create("resealing_moves_every_secret_to_the_new_key").await else {
        return;
    };
    let old_key = Sealer::generate_key();
    let store = schema.connect(&old_key).await.unwrap();
    store
        .put_token("main", TokenKind::User, &token("tok-a"))
        .await
        .unwrap();
    store.put_pending(&pending("s", i64::MAX)).await.unwrap();
    let before = schema.raw("tokens", "access_token").await;
    let new_key = Sealer::generate_key();
    let count = store.reseal(sealer(&new_key)).await.unwrap();
    assert_eq!(count, 2);
    assert_ne!(schema.raw("tokens", "access_token").await, before);
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
    store.close().await.unwrap();
    drop(store);
    assert!(matches!(
        schema.connect(&old_key).await,
        Err(StoreError::WrongKey)
    ));
    let store = schema.connect(&new_key).await.unwrap();
    assert!(store
        .token("main", TokenKind::User)
        .await
        .unwrap()
        .is_some());
    let PendingLookup::Taken(p) = store.take_pending("s").await.unwrap() else {
        panic!("not taken")
    };
    assert_eq!(
        p.code_verifier.unwrap().expose_secret(),
        "verifier-0123456789"
    );
    schema.drop().await;
}

#[tokio::test]
async fn a_revoked_token_is_marked_once() {
    let Some(schema) = Schema::create("a_revoked_token_is_marked_once").await else {
        return;
    };
    let store = schema.connect(&Sealer::generate_key()).await.unwrap();
    assert!(!store
        .mark_token_revoked("main", TokenKind::User, 4)
        .await
        .unwrap());
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
    schema.drop().await;
}

#[tokio::test]
async fn the_instance_probe_is_kept() {
    let Some(schema) = Schema::create("the_instance_probe_is_kept").await else {
        return;
    };
    let store = schema.connect(&Sealer::generate_key()).await.unwrap();
    assert!(store.instance("main").await.unwrap().is_none());
    let info = InstanceInfo {
        url: "https://m.example".into(),
        domain: Some("m.example".into()),
        version: Some("4.3.2".into()),
        max_characters: Some(500),
        characters_reserved_per_url: 23,
        max_media_attachments: Some(4),
        poll_max_options: None,
        poll_min_expiration: None,
        poll_max_expiration: None,
        media: mastodon_sidecar::mastodon::MediaLimits {
            image_size_limit: Some(16 << 20),
            ..Default::default()
        },
        pkce: true,
        software: mastodon_sidecar::mastodon::Software {
            name: "mastodon".into(),
            version: Some("4.3.2".into()),
        },
        capabilities: mastodon_sidecar::mastodon::Capabilities::mastodon(),
        probed_at: 42,
    };
    store.put_instance("main", &info).await.unwrap();
    store.put_instance("main", &info).await.unwrap();
    let got = store.instance("main").await.unwrap().unwrap();
    assert_eq!(got.max_characters, Some(500));
    assert_eq!(got.probed_at, 42);
    schema.drop().await;
}

fn ledger_key(key: &str) -> LedgerKey<'_> {
    LedgerKey {
        connection: "main",
        key,
        fingerprint: "fp-1",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_for_one_ledger_key_give_it_to_exactly_one() {
    let Some(schema) =
        Schema::create("two_replicas_racing_for_one_ledger_key_give_it_to_exactly_one").await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let replicas = [
        Arc::new(schema.connect(&key).await.unwrap()),
        Arc::new(schema.connect(&key).await.unwrap()),
    ];
    for round in 0..5 {
        let entry = format!("k{round}");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&replicas[i % 2]);
                let entry = entry.clone();
                tokio::spawn(async move {
                    store
                        .ledger_claim(
                            &ledger_key(&entry),
                            &format!("r{}-{i}", i % 2),
                            100,
                            130,
                            1000,
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut claimed = 0;
        for task in tasks {
            match task.await.unwrap() {
                LedgerClaim::Claimed => claimed += 1,
                LedgerClaim::InFlight {
                    started_at: 100,
                    lease_until: 130,
                } => {}
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(claimed, 1, "round {round}: exactly one claim");
    }
    // A lease that ran out, taken over by both replicas at once: one gets the doubt, the other sees
    // the new owner's claim in flight.
    for round in 0..5 {
        let entry = format!("k{round}");
        let claim = ledger_key(&entry);
        let (a, b) = tokio::join!(
            replicas[0].ledger_claim(&claim, "a", 131, 161, 1000),
            replicas[1].ledger_claim(&claim, "b", 131, 161, 1000)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let doubt = LedgerClaim::Doubt {
            started_at: 100,
            since: 130,
        };
        let in_flight = LedgerClaim::InFlight {
            started_at: 100,
            lease_until: 161,
        };
        assert!(
            (a == doubt && b == in_flight) || (a == in_flight && b == doubt),
            "round {round}: {a:?} / {b:?}"
        );
    }
    schema.drop().await;
}

#[tokio::test]
async fn what_one_replica_posted_the_other_answers_from_the_ledger() {
    let Some(schema) =
        Schema::create("what_one_replica_posted_the_other_answers_from_the_ledger").await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let one = schema.connect(&key).await.unwrap();
    let two = schema.connect(&key).await.unwrap();
    assert_eq!(
        one.ledger_claim(&ledger_key("k"), "one", 100, 130, 1000)
            .await
            .unwrap(),
        LedgerClaim::Claimed
    );
    assert!(matches!(
        two.ledger_claim(&ledger_key("k"), "two", 110, 140, 1000)
            .await
            .unwrap(),
        LedgerClaim::InFlight { .. }
    ));
    let answer = json!({"id": "109", "content": "<p>hello</p>"});
    assert!(one
        .ledger_settle(
            "main",
            "k",
            "one",
            &LedgerState::Posted {
                status_id: "109".into(),
                answer: answer.clone(),
            },
            2000
        )
        .await
        .unwrap());
    assert_eq!(
        two.ledger_claim(&ledger_key("k"), "two", 500, 530, 1000)
            .await
            .unwrap(),
        LedgerClaim::Posted {
            status_id: "109".into(),
            answer,
        }
    );
    let other = LedgerKey {
        fingerprint: "fp-2",
        ..ledger_key("k")
    };
    assert_eq!(
        two.ledger_claim(&other, "two", 500, 530, 1000)
            .await
            .unwrap(),
        LedgerClaim::Mismatch
    );
    assert!(two.ledger_status_taken("main", "109", "k2").await.unwrap());
    assert!(!two.ledger_status_taken("main", "109", "k").await.unwrap());

    // A lease that ran out is taken over by the other replica; the first one's late answer is refused.
    one.ledger_claim(&ledger_key("late"), "one", 100, 130, 1000)
        .await
        .unwrap();
    assert_eq!(
        two.ledger_claim(&ledger_key("late"), "two", 131, 161, 1000)
            .await
            .unwrap(),
        LedgerClaim::Doubt {
            started_at: 100,
            since: 130
        }
    );
    let failed = StoredError {
        code: "validation_failed".into(),
        detail: "too long".into(),
        upstream_status: Some(422),
        upstream_error: None,
    };
    assert!(!one
        .ledger_settle(
            "main",
            "late",
            "one",
            &LedgerState::Failed(failed.clone()),
            1000
        )
        .await
        .unwrap());
    assert!(two
        .ledger_settle(
            "main",
            "late",
            "two",
            &LedgerState::Failed(failed.clone()),
            1000
        )
        .await
        .unwrap());
    assert_eq!(
        one.ledger_claim(&ledger_key("late"), "one", 200, 230, 1000)
            .await
            .unwrap(),
        LedgerClaim::Failed(failed)
    );

    // A doubt, and a release.
    one.ledger_claim(&ledger_key("d"), "one", 100, 130, 1000)
        .await
        .unwrap();
    one.ledger_settle("main", "d", "one", &LedgerState::Doubt { since: 105 }, 1000)
        .await
        .unwrap();
    assert_eq!(
        two.ledger_claim(&ledger_key("d"), "two", 110, 140, 1000)
            .await
            .unwrap(),
        LedgerClaim::Doubt {
            started_at: 100,
            since: 105
        }
    );
    two.ledger_release("main", "d", "two").await.unwrap();
    assert_eq!(
        one.ledger_claim(&ledger_key("d"), "one", 111, 141, 1000)
            .await
            .unwrap(),
        LedgerClaim::Claimed
    );
    // Past its retention, an entry counts as absent, whatever it held.
    assert_eq!(
        one.ledger_claim(&other, "one", 2001, 2031, 3000)
            .await
            .unwrap(),
        LedgerClaim::Claimed
    );
    schema.drop().await;
}

#[tokio::test]
async fn the_ledger_is_purged_by_time_then_by_count_oldest_first() {
    let Some(schema) =
        Schema::create("the_ledger_is_purged_by_time_then_by_count_oldest_first").await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let store = schema.connect(&key).await.unwrap();
    let other = schema.connect(&key).await.unwrap();
    for i in 0..10i64 {
        store
            .ledger_claim(
                &ledger_key(&format!("k{i}")),
                "a",
                100 + i,
                130 + i,
                1000 + i,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.ledger_purge(1003, 100).await.unwrap(), 3);
    // Both replicas purging at once leave the newest four.
    let (a, b) = tokio::join!(store.ledger_purge(1003, 4), other.ledger_purge(1003, 4));
    assert_eq!(a.unwrap() + b.unwrap(), 3);
    let mut kept = schema.raw("post_ledger", "key").await;
    kept.sort();
    assert_eq!(
        kept,
        ["k6", "k7", "k8", "k9"]
            .map(|k| Some(k.to_owned()))
            .to_vec()
    );
    schema.drop().await;
}

#[tokio::test]
async fn a_version_1_schema_is_migrated_to_the_ledger() {
    let Some(schema) = Schema::create("a_version_1_schema_is_migrated_to_the_ledger").await else {
        return;
    };
    let key = Sealer::generate_key();
    let store = schema.connect(&key).await.unwrap();
    store
        .put_token("main", TokenKind::User, &token("t"))
        .await
        .unwrap();
    drop(store);
    schema
        .admin
        .batch_execute(&format!(
            "DROP TABLE {s}.post_ledger; UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'",
            s = schema.name
        ))
        .await
        .unwrap();
    let store = schema.connect(&key).await.unwrap();
    assert!(store
        .token("main", TokenKind::User)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .ledger_claim(&ledger_key("k"), "a", 100, 130, 1000)
            .await
            .unwrap(),
        LedgerClaim::Claimed
    );
    let meta = schema.raw("meta", "key || '=' || value").await;
    assert!(meta.contains(&Some("schema_version=2".into())), "{meta:?}");
    schema.drop().await;
}

#[tokio::test]
async fn replicas_starting_together_create_the_schema_once_and_agree_on_the_key() {
    let Some(schema) =
        Schema::create("replicas_starting_together_create_the_schema_once_and_agree_on_the_key")
            .await
    else {
        return;
    };
    let key = Sealer::generate_key();
    let (a, b, c) = tokio::join!(
        schema.connect(&key),
        schema.connect(&key),
        schema.connect(&key)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    // Two keys racing on a fresh schema: the first sealed it, the second is refused.
    let fresh =
        Schema::create("replicas_starting_together_create_the_schema_once_and_agree_on_the_key")
            .await
            .unwrap();
    let (one, two) = (Sealer::generate_key(), Sealer::generate_key());
    let (a, b) = tokio::join!(fresh.connect(&one), fresh.connect(&two));
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one key wins: {:?} / {:?}",
        a.as_ref().err(),
        b.as_ref().err()
    );
    assert!(matches!(a.err().or(b.err()), Some(StoreError::WrongKey)));
    schema.drop().await;
    fresh.drop().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(schema) = Schema::create("a_newer_schema_is_refused").await else {
        return;
    };
    let key = Sealer::generate_key();
    schema.connect(&key).await.unwrap();
    schema
        .admin
        .batch_execute(&format!(
            "UPDATE {}.meta SET value = '99' WHERE key = 'schema_version'",
            schema.name
        ))
        .await
        .unwrap();
    let e = schema.connect(&key).await.unwrap_err().to_string();
    assert!(e.contains("schema version 99, newer"), "{e}");
    schema.drop().await;
}

#[tokio::test]
async fn tls_is_used_as_sslmode_asks() {
    let Some(schema) = Schema::create("tls_is_used_as_sslmode_asks").await else {
        return;
    };
    let ssl: String = schema
        .admin
        .query_one("SHOW ssl", &[])
        .await
        .unwrap()
        .get(0);
    let key = Sealer::generate_key();
    // Whether the store's (idle, pooled) connection named `name` is encrypted.
    let encrypted = |name: String| {
        let admin = &schema.admin;
        async move {
            let rows = admin
                .query(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                     WHERE a.application_name = $1",
                    &[&name],
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "one pooled connection named {name}");
            rows[0].get::<_, bool>(0)
        }
    };
    let name = format!("sidecar-plain-{}", uuid::Uuid::new_v4().simple());
    let _plain = PostgresStore::connect(
        &schema.url_with(&format!("sslmode=disable&application_name={name}")),
        sealer(&key),
    )
    .await
    .unwrap();
    assert!(!encrypted(name).await);
    if ssl != "on" {
        eprintln!("postgres::tls_is_used_as_sslmode_asks: the server has ssl = {ssl}; only sslmode=disable was checked");
        schema.drop().await;
        return;
    }
    for mode in ["require", "prefer"] {
        let name = format!("sidecar-{mode}-{}", uuid::Uuid::new_v4().simple());
        let _store = PostgresStore::connect(
            &schema.url_with(&format!("sslmode={mode}&application_name={name}")),
            sealer(&key),
        )
        .await
        .unwrap();
        assert!(encrypted(name).await, "sslmode={mode} encrypts");
    }
    // A test server on 127.0.0.1 has no certificate a system root vouches for that host: refused.
    let e = PostgresStore::connect(&schema.url_with("sslmode=verify-full"), sealer(&key))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot connect to PostgreSQL at"), "{e}");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Debian's cluster (what .ci/run starts) uses a self-signed certificate for `localhost`: trusting
    // it, verify-ca accepts 127.0.0.1 and verify-full accepts `localhost` only.
    let cert: String = schema
        .admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    if cert == "/etc/ssl/certs/ssl-cert-snakeoil.pem" && std::path::Path::new(&cert).exists() {
        let root = format!("sslrootcert={}", cert.replace('/', "%2F"));
        PostgresStore::connect(
            &schema.url_with(&format!("sslmode=verify-ca&{root}")),
            sealer(&key),
        )
        .await
        .expect("verify-ca with the server's certificate as root");
        let e = PostgresStore::connect(
            &schema.url_with(&format!("sslmode=verify-full&{root}")),
            sealer(&key),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("not valid for name"), "{e}");
        let localhost = schema
            .url_with(&format!("sslmode=verify-full&{root}"))
            .expose_secret()
            .replacen("@127.0.0.1:", "@localhost:", 1);
        if localhost.contains("@localhost:") {
            PostgresStore::connect(&SecretString::from(localhost), sealer(&key))
                .await
                .expect("verify-full with the server's certificate and its name");
        }
    }
    schema.drop().await;
}

// --- failing to start -------------------------------------------------------------------------------

#[tokio::test]
async fn an_unreachable_database_fails_quickly_naming_host_and_port_but_not_the_password() {
    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = SecretString::from(format!(
        "postgres://sidecar:hunter2-password@127.0.0.1:{port}/sidecar"
    ));
    let e = PostgresStore::connect(&url, sealer(&Sealer::generate_key()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}/sidecar"
        )),
        "{e}"
    );
    assert!(
        e.to_lowercase().contains("refused"),
        "the cause is given: {e}"
    );
    assert!(!e.contains("hunter2"), "{e}");

    // Something listens but never answers: given up after the connect timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let url = SecretString::from(format!(
        "postgres://sidecar:hunter2-password@127.0.0.1:{port}/sidecar"
    ));
    let started = Instant::now();
    let e = PostgresStore::connect(&url, sealer(&Sealer::generate_key()))
        .await
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    held.abort();
    assert!(
        took < Duration::from_secs(15),
        "gave up after {took:?}: {e}"
    );
    assert!(
        e.contains(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port}/sidecar within 10 s"
        )),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn store_url_must_be_a_postgres_url_and_is_never_echoed() {
    let load = |url: &str| {
        Settings::from_toml_str(
            "test.toml",
            &format!("[store]\nurl = \"{url}\"\n"),
            &Default::default(),
        )
    };
    for url in [
        "postgres://u:hunter2@db.example/sidecar",
        "postgresql://u:hunter2@db.example:5433/sidecar?sslmode=verify-full",
    ] {
        let settings = load(url).unwrap_or_else(|e| panic!("{e}"));
        assert!(settings.store.url.is_some());
    }
    for (url, expected) in [
        (
            "mysql://u:hunter2@db.example/sidecar",
            "test.toml: store.url: mysql:// is not supported",
        ),
        ("hunter2", "test.toml: store.url: is not a postgres://"),
    ] {
        let e = load(url).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}

// --- two replicas -----------------------------------------------------------------------------------

/// A second sidecar on the same store and stand-in, called in JSON.
struct Replica {
    address: String,
    client: reqwest::Client,
    shutdown: Shutdown,
    _store_dir: tempfile::TempDir,
}

impl Replica {
    async fn start(settings: Settings, store_dir: tempfile::TempDir) -> Replica {
        let app = Application::build(settings)
            .await
            .expect("the second replica builds");
        let address = format!("http://{}", app.local_addr());
        let shutdown = app.shutdown();
        tokio::spawn(app.run_until_stopped());
        Replica {
            address,
            client: reqwest::Client::new(),
            shutdown,
            _store_dir: store_dir,
        }
    }

    async fn call(&self, operation: &str, params: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/operations/{operation}", self.address))
            .json(&params)
            .send()
            .await
            .expect("the replica answers");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}")),
        )
    }
}

/// Replica A (a `TestApp` with the stand-in) and replica B, sharing `schema` and one key.
async fn two_replicas(schema: &Schema) -> (crate::helpers::TestApp, Replica) {
    let url = schema.url();
    let key = Sealer::generate_key();
    let (url_a, key_a) = (url.clone(), key.clone());
    let a = spawn_app_with(Options::default(), move |s| {
        s.store.url = Some(url_a);
        s.store.key = Some(key_a);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(&a.standin, &dir);
    settings.store.url = Some(url);
    settings.store.key = Some(key);
    let b = Replica::start(settings, dir).await;
    (a, b)
}

#[tokio::test]
async fn two_replicas_register_one_app_and_share_authorizations() {
    let Some(schema) =
        Schema::create("two_replicas_register_one_app_and_share_authorizations").await
    else {
        return;
    };
    let (a, b) = two_replicas(&schema).await;
    // Registration is slow, so both replicas are surely asking at once.
    a.standin
        .delay_next("POST /api/v1/apps", Duration::from_millis(500), 2);
    let (on_a, (status_b, on_b)) = tokio::join!(
        a.call(Format::Json, "createApp", json!({})),
        b.call("createApp", json!({}))
    );
    assert_eq!(on_a.status, 200, "{}", on_a.body);
    assert_eq!(status_b, 200, "{on_b}");
    assert_eq!(a.standin.apps().len(), 1, "one registration for both");
    let client_id = on_a.value()["client_id"].clone();
    assert!(client_id.is_string());
    assert_eq!(on_b["client_id"], client_id);

    // Begun on A, finished on B.
    let auth = a.call(Format::Json, "authorizeUrl", json!({})).await;
    assert_eq!(auth.status, 200, "{}", auth.body);
    let auth = auth.value();
    let code = a.approve(auth["url"].as_str().unwrap()).await;
    let (status, token) = b
        .call("getToken", json!({"code": code, "state": auth["state"]}))
        .await;
    assert_eq!(status, 200, "{token}");
    // The PKCE verifier A kept is the one B sent.
    assert!(a.standin.last_body("POST /oauth/token").unwrap()["code_verifier"].is_string());
    // A replay on A is recognised, not sent to Mastodon again.
    let replay = a
        .call(
            Format::Json,
            "getToken",
            json!({"code": code, "state": auth["state"]}),
        )
        .await;
    assert_ne!(replay.status, 200, "{}", replay.body);
    assert_eq!(a.standin.hits("POST /oauth/token"), 1);

    // The token B obtained works on A.
    let posted = a
        .call(Format::Json, "postStatus", json!({"status": "from A"}))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    a.shutdown.stop().await;
    b.shutdown.stop().await;
    schema.drop().await;
}

#[tokio::test]
async fn a_token_obtained_on_one_replica_posts_from_the_other() {
    let Some(schema) = Schema::create("a_token_obtained_on_one_replica_posts_from_the_other").await
    else {
        return;
    };
    let (a, b) = two_replicas(&schema).await;
    a.connect_account(Format::Json).await;
    let me = a.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let a_bearer = a
        .standin
        .last_header("GET /api/v1/accounts/verify_credentials", "authorization")
        .unwrap();
    let (status, posted) = b.call("postStatus", json!({"status": "from B"})).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(a.standin.statuses().len(), 1);
    assert_eq!(
        a.standin
            .last_header("POST /api/v1/statuses", "authorization")
            .unwrap(),
        a_bearer,
        "B used the token A obtained"
    );
    a.shutdown.stop().await;
    b.shutdown.stop().await;
    schema.drop().await;
}
