//! What both stores share of the ledger: the `post_ledger` row as read, the decision a claim takes on
//! it, and how a [`LedgerState`] is written into columns. Each store runs the decision inside its own
//! atomic step (SQLite: one IMMEDIATE transaction; PostgreSQL: a transaction holding the row lock).
//!
//! States in the `state` column: `in_flight` (owned, lease running or run out), `posted`, `failed`,
//! `doubt`. A taken-over doubt goes back to `in_flight` under its new owner, with `doubt_since` kept,
//! so a second concurrent claimer sees `InFlight` (one resolver at a time) and a later takeover still
//! reports when the doubt first arose.

use serde_json::Value;

use super::ledger::{LedgerClaim, LedgerState, StoredError};
use super::{StoreError, StoreResult};

pub(super) const IN_FLIGHT: &str = "in_flight";
pub(super) const POSTED: &str = "posted";
pub(super) const FAILED: &str = "failed";
pub(super) const DOUBT: &str = "doubt";

/// The columns of one `post_ledger` row a claim looks at, in this order in both stores' SELECT.
pub(super) const COLUMNS: &str =
    "fingerprint, state, started_at, lease_until, doubt_since, status_id, answer, error, retain_until";

#[derive(Debug)]
pub(super) struct Row {
    pub fingerprint: String,
    pub state: String,
    pub started_at: i64,
    pub lease_until: i64,
    pub doubt_since: Option<i64>,
    pub status_id: Option<String>,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub retain_until: i64,
}

/// What a claim does with what it found.
#[derive(Debug)]
pub(super) enum Decision {
    /// Nothing there (or only an entry past `retain_until`): write a fresh `in_flight` entry.
    Fresh,
    /// Answer without writing.
    Answer(LedgerClaim),
    /// Take over a doubt (or an `in_flight` past its lease): new owner and lease, `state` back to
    /// `in_flight`, `doubt_since` set to `since`; answer `Doubt`.
    TakeOver { started_at: i64, since: i64 },
}

impl Decision {
    /// What the caller is told.
    pub fn claim(&self) -> LedgerClaim {
        match self {
            Decision::Fresh => LedgerClaim::Claimed,
            Decision::Answer(a) => a.clone(),
            Decision::TakeOver { started_at, since } => LedgerClaim::Doubt {
                started_at: *started_at,
                since: *since,
            },
        }
    }
}

fn corrupt(what: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("post_ledger.{what}: {why}"))
}

/// The ledger's rule, the same in every store: expired counts as absent, a different fingerprint is
/// refused, settled entries answer what was kept, a live claim is reported, a doubt is taken over.
pub(super) fn decide(row: Option<Row>, fingerprint: &str, now: i64) -> StoreResult<Decision> {
    let Some(row) = row else {
        return Ok(Decision::Fresh);
    };
    if row.retain_until < now {
        return Ok(Decision::Fresh);
    }
    if row.fingerprint != fingerprint {
        return Ok(Decision::Answer(LedgerClaim::Mismatch));
    }
    Ok(match row.state.as_str() {
        POSTED => {
            let status_id = row
                .status_id
                .ok_or_else(|| corrupt("status_id", "missing on a posted entry"))?;
            let answer: Value = serde_json::from_str(
                row.answer
                    .as_deref()
                    .ok_or_else(|| corrupt("answer", "missing on a posted entry"))?,
            )
            .map_err(|e| corrupt("answer", e))?;
            Decision::Answer(LedgerClaim::Posted { status_id, answer })
        }
        FAILED => {
            let error: StoredError = serde_json::from_str(
                row.error
                    .as_deref()
                    .ok_or_else(|| corrupt("error", "missing on a failed entry"))?,
            )
            .map_err(|e| corrupt("error", e))?;
            Decision::Answer(LedgerClaim::Failed(error))
        }
        IN_FLIGHT if row.lease_until >= now => Decision::Answer(LedgerClaim::InFlight {
            started_at: row.started_at,
            lease_until: row.lease_until,
        }),
        IN_FLIGHT => Decision::TakeOver {
            started_at: row.started_at,
            since: row.doubt_since.unwrap_or(row.lease_until),
        },
        DOUBT => Decision::TakeOver {
            started_at: row.started_at,
            since: row.doubt_since.unwrap_or(row.lease_until),
        },
        other => return Err(corrupt("state", format!("unknown state {other:?}"))),
    })
}

/// The columns a settled state writes.
pub(super) struct Settled {
    pub state: &'static str,
    pub status_id: Option<String>,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub doubt_since: Option<i64>,
}

impl Settled {
    pub fn of(state: &LedgerState) -> StoreResult<Settled> {
        Ok(match state {
            LedgerState::Posted { status_id, answer } => Settled {
                state: POSTED,
                status_id: Some(status_id.clone()),
                answer: Some(answer.to_string()),
                error: None,
                doubt_since: None,
            },
            LedgerState::Failed(error) => Settled {
                state: FAILED,
                status_id: None,
                answer: None,
                error: Some(
                    serde_json::to_string(error)
                        .map_err(|e| StoreError::Corrupt(format!("ledger error: {e}")))?,
                ),
                doubt_since: None,
            },
            LedgerState::Doubt { since } => Settled {
                state: DOUBT,
                status_id: None,
                answer: None,
                error: None,
                doubt_since: Some(*since),
            },
        })
    }
}
