//! The post ledger: what the sidecar knows of every post it sent, per connection and idempotency key.
//!
//! Exactly once is the sidecar's own guarantee, not the server's: three of five real servers ignore
//! `Idempotency-Key`, one forgets it on restart, and Mastodon records it only once the status exists.
//! So before a post goes out, its key is claimed here (atomically, across every replica sharing the
//! store); a repeat of a posted key answers the kept result without calling out; a post whose outcome
//! is in doubt is resolved before anything is sent again. Entries are kept `retain_until` (24 h by
//! default, `store.ledger_retention_s`), bounded in number (`store.ledger_max_entries`) and purged.
//!
//! Nothing here is a secret (a Status is public data, an error detail never holds one), so entries
//! are not sealed.

use async_trait::async_trait;
use serde_json::Value;

use super::StoreResult;

/// What one claim attempt found.
#[derive(Clone, Debug, PartialEq)]
pub enum LedgerClaim {
    /// No entry (or only an expired one): it is now `InFlight`, owned by the caller.
    Claimed,
    /// Another call (this process or a replica) is sending it; its lease runs until `lease_until`.
    InFlight { started_at: i64, lease_until: i64 },
    /// A post whose outcome was never learnt: an `InFlight` whose lease ran out (its owner died, or
    /// gave up), or one marked [`LedgerState::Doubt`]. The caller now owns it (owner and lease were
    /// replaced atomically) and must resolve it before sending again.
    Doubt {
        started_at: i64,
        /// When the doubt arose (the lost answer, or the lease's end).
        since: i64,
    },
    /// Posted: the server's answer, kept.
    Posted { status_id: String, answer: Value },
    /// Refused in a way a repeat cannot change: the classified error, kept (see [`StoredError`]).
    Failed(StoredError),
    /// The key was used for different parameters (another fingerprint).
    Mismatch,
}

/// An entry's state, as written by the owner of the claim.
#[derive(Clone, Debug, PartialEq)]
pub enum LedgerState {
    Posted {
        status_id: String,
        answer: Value,
    },
    Failed(StoredError),
    /// Sent, and the answer was lost; `since` is when.
    Doubt {
        since: i64,
    },
}

/// A classified error as the ledger keeps it: enough to answer a repeat the same way.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredError {
    /// `ErrorKind::code()`.
    pub code: String,
    pub detail: String,
    pub upstream_status: Option<u16>,
    pub upstream_error: Option<String>,
}

/// The identity of one claim: who holds it, and until when.
#[derive(Clone, Debug)]
pub struct LedgerKey<'a> {
    pub connection: &'a str,
    pub key: &'a str,
    /// A hash of the post's parameters: a key reused for other parameters is refused.
    pub fingerprint: &'a str,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    /// Claims `key` for `owner` until `lease_until`, or says what is already known of it, in one
    /// atomic step. An entry past its `retain_until` counts as absent. A `Doubt` or an `InFlight`
    /// past its lease is taken over (owner and lease replaced) and answered as [`LedgerClaim::Doubt`].
    /// A fingerprint that differs from the stored one answers `Mismatch` and changes nothing.
    async fn ledger_claim(
        &self,
        key: &LedgerKey<'_>,
        owner: &str,
        now: i64,
        lease_until: i64,
        retain_until: i64,
    ) -> StoreResult<LedgerClaim>;

    /// Records the outcome of a claim `owner` holds. Answers false (and writes nothing) when the
    /// claim is no longer `owner`'s (its lease ran out and another took it over).
    async fn ledger_settle(
        &self,
        connection: &str,
        key: &str,
        owner: &str,
        state: &LedgerState,
        retain_until: i64,
    ) -> StoreResult<bool>;

    /// Forgets a claim `owner` holds: nothing was created, and a repeat may send again.
    async fn ledger_release(&self, connection: &str, key: &str, owner: &str) -> StoreResult<()>;

    /// Whether a posted entry of `connection` other than `key` holds `status_id`: a status found
    /// while resolving a doubt is ours only if no other message already claimed it.
    async fn ledger_status_taken(
        &self,
        connection: &str,
        status_id: &str,
        key: &str,
    ) -> StoreResult<bool>;

    /// Deletes entries past their `retain_until`, then the oldest beyond `max_entries`; answers how
    /// many went.
    async fn ledger_purge(&self, now: i64, max_entries: u64) -> StoreResult<u64>;
}
