//! Posting exactly once, whatever the server does with `Idempotency-Key`.
//!
//! Every post claims its key in the store's ledger before anything is sent (atomically, across
//! replicas). Then:
//! - a repeat of a posted key answers the kept result without calling out, across restarts and
//!   replicas; a repeat of a refused one answers the kept refusal;
//! - a repeat while the first is in flight waits for it (bounded by the call's budget), then gets
//!   `in_progress` with `Retry-After`: never a second POST;
//! - a post whose outcome is in doubt (timeout or broken exchange after sending, a gateway's 5xx,
//!   a prompt 500) is resolved before anything is resent, by reading the account's latest statuses
//!   (scheduled ones for a scheduled post) for the matching one. A status found is ours only if no
//!   other ledger entry already claimed it, so the same text posted on purpose by two messages posts
//!   twice. It is sent again only when the server shows it was not created: after a prompt 500 at
//!   once (the server finished with the request), otherwise only once the doubt has settled
//!   (`doubt_settle_ms`: long enough that a stalled request cannot still create it). Until then the
//!   caller gets `outcome_unknown` with `Retry-After`, never a silent second post;
//! - a resend carries the same `Idempotency-Key`, which servers that honour it use as a second guard.
//!
//! The ledger entry's owner is this process ([`Core::owner`]); a claim whose owner died (kill -9
//! mid-post) is taken over when its lease runs out and resolved like any other doubt.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;

use super::context::{Connection, Core};
use super::status_match::{id_text, Expected};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::{form, unix_now, Endpoint};
use crate::store::{LedgerClaim, LedgerKey, LedgerState, StoredError};

/// How long a repeat waits for the first call of its key before answering `in_progress`.
pub(super) const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting repeat looks at the ledger again.
pub(super) const IN_FLIGHT_POLL: Duration = Duration::from_millis(100);
/// A lease outlives the call's own budget by this much, so it never runs out under a live owner.
const LEASE_MARGIN_S: i64 = 5;
/// Statuses created this long before the post began still count as candidates (clock skew between
/// the sidecar and the server).
const CLOCK_SKEW_S: i64 = 120;
/// How many of the account's latest statuses are read to resolve a doubt (40 is Mastodon's cap).
const LOOKUP_LIMIT: usize = 40;

/// One post: what is sent, under which key, and what its answer must show.
pub struct Post<'a> {
    pub conn: &'a Connection,
    /// The ledger's key (the caller's `idempotency_key`, or the derived one).
    pub key: &'a str,
    /// What goes into the `Idempotency-Key` header (printable ASCII).
    pub header_key: String,
    pub fingerprint: String,
    pub body: &'a Value,
    pub expected: &'a Expected,
}

/// What reading the account's statuses showed.
enum Lookup {
    Found(Value),
    /// The statuses read reach back before the post began, and none is it.
    NotCreated,
    /// Cannot tell (the list could not be read, or does not reach back far enough).
    Undecided(String),
}

pub async fn post_once(core: &Core, post: &Post<'_>, token: SecretString) -> Result<Value> {
    let conn = post.conn;
    let ledger_key = LedgerKey {
        connection: &conn.name,
        key: post.key,
        fingerprint: &post.fingerprint,
    };
    let budget = Duration::from_millis(conn.settings.timeout_ms);
    let wait_until = Instant::now() + IN_FLIGHT_WAIT.min(budget);
    loop {
        let now = unix_now();
        let claim = core
            .store
            .ledger_claim(
                &ledger_key,
                core.owner(),
                now,
                now + lease_s(conn),
                now + core.settings.store.ledger_retention_s as i64,
            )
            .await?;
        match claim {
            LedgerClaim::Claimed => return send(core, post, &token, now, resends(conn)).await,
            LedgerClaim::Posted { answer, .. } => {
                tracing::info!(connection = %conn.name, "a repeat of a posted key: answering the kept status");
                return Ok(answer);
            }
            LedgerClaim::Failed(stored) => return Err(restore(stored)),
            LedgerClaim::Mismatch => {
                return Err(Error::invalid(
                    "this idempotency_key was used for a post with other parameters; use a new key for a new post",
                ))
            }
            LedgerClaim::InFlight { lease_until, .. } => {
                if Instant::now() + IN_FLIGHT_POLL < wait_until {
                    tokio::time::sleep(IN_FLIGHT_POLL).await;
                    continue;
                }
                let mut e = Error::new(
                    ErrorKind::InProgress,
                    "the same post (connection and idempotency key) is being sent by another call; retry after Retry-After to get its result",
                );
                e.retry_after = Some((lease_until - unix_now()).clamp(1, 3600) as u64);
                return Err(e);
            }
            LedgerClaim::Doubt { started_at, since } => {
                return resolve(core, post, &token, started_at, since).await
            }
        }
    }
}

/// The longest a live owner can hold a claim: the call's budget, a rate-limit wait, a margin.
pub(super) fn lease_s(conn: &Connection) -> i64 {
    let s = &conn.settings;
    let wait = match s.on_rate_limit {
        crate::config::OnRateLimit::Wait => s.max_rate_limit_wait_s as i64,
        crate::config::OnRateLimit::Fail => 0,
    };
    s.timeout_ms.div_ceil(1000) as i64 + wait + LEASE_MARGIN_S
}

/// How often one call sends a post again after the server showed it did not create it (a 5xx, a
/// connection closed before any answer): the connection's `max_retries`.
fn resends(conn: &Connection) -> u32 {
    // At most 10 (`config::CONNECTION_BOUNDS`).
    u32::try_from(conn.settings.max_retries).unwrap_or(u32::MAX)
}

/// How long after a doubt arose a status that did not show up is taken as never created.
pub(super) fn settle_s(conn: &Connection) -> i64 {
    conn.settings.doubt_settle_ms().div_ceil(1000) as i64
}

/// Sends the post (the claim is ours) and settles the ledger with what came of it.
async fn send(
    core: &Core,
    post: &Post<'_>,
    token: &SecretString,
    started_at: i64,
    resends_left: u32,
) -> Result<Value> {
    let conn = post.conn;
    let client = &conn.client;
    let pairs = form::pairs(post.body);
    let header_key = post.header_key.clone();
    let outcome = core
        .use_user_token(conn, token.clone(), |token| async move {
            client
                .post_form_as(
                    Endpoint::POST_STATUS,
                    Some(&token),
                    &pairs,
                    &[("Idempotency-Key", header_key)],
                )
                .await
        })
        .await;
    match outcome {
        Ok(answer) => settle_answer(core, post, answer).await,
        // The server is done with the request without a usable answer: the connection closed with
        // none (no timeout), or a 502/503 came back (a server or gateway that failed, not one
        // still working on it). What its statuses show decides, as after a prompt 500.
        Err(e) if finished_without_answer(&e) => {
            tracing::warn!(connection = %conn.name, code = e.kind.code(), "the post failed without a usable answer; looking before anything is resent");
            after_a_finished_failure(core, post, token, started_at, resends_left, e).await
        }
        Err(e) if e.in_doubt => {
            tracing::warn!(connection = %conn.name, code = e.kind.code(), "the post's answer was lost; resolving before anything is resent");
            let since = unix_now();
            mark_doubt(core, post, since).await?;
            Box::pin(resolve(core, post, token, started_at, since)).await
        }
        Err(e) if e.upstream.as_ref().is_some_and(|u| u.status >= 500) => {
            // The server finished with the request and failed: it may still have created the
            // status first (a 500 after creating). Look before resending.
            after_a_finished_failure(core, post, token, started_at, resends_left, e).await
        }
        Err(e) if keeps_refusal(&e) => {
            settle(core, post, &LedgerState::Failed(stored(&e))).await?;
            Err(e)
        }
        Err(e) => {
            // Nothing was created (refused before the content was looked at, rate-limited,
            // never sent): a repeat may send again.
            release(core, post).await?;
            Err(e)
        }
    }
}

/// The server finished with the request without a usable answer: found, it is answered; shown not
/// created, it is sent again (at most [`resends`] times a call); undecided, it stays in doubt.
async fn after_a_finished_failure(
    core: &Core,
    post: &Post<'_>,
    token: &SecretString,
    started_at: i64,
    resends_left: u32,
    e: Error,
) -> Result<Value> {
    let conn = post.conn;
    match lookup(core, post, token, started_at).await {
        Lookup::Found(status) => settle_answer(core, post, status).await,
        Lookup::NotCreated if resends_left > 0 => {
            tracing::info!(connection = %conn.name, "the server did not create the post; sending it again");
            let reason = match &e.upstream {
                Some(_) => "status_5xx",
                None => "transport",
            };
            core.metrics
                .upstream_retry(Endpoint::POST_STATUS.label, reason);
            Box::pin(send(core, post, token, started_at, resends_left - 1)).await
        }
        Lookup::NotCreated => {
            release(core, post).await?;
            Err(e)
        }
        Lookup::Undecided(why) => {
            let since = unix_now();
            mark_doubt(core, post, since).await?;
            Err(outcome_unknown(conn, &why, since))
        }
    }
}

/// A failure after which the server cannot still be creating the status: the connection closed
/// without an answer, or a 502/503. A timeout and a 504 (a gateway that gave up waiting) can.
fn finished_without_answer(e: &Error) -> bool {
    e.in_doubt
        && match &e.upstream {
            None => e.kind != ErrorKind::UpstreamTimeout,
            Some(up) => up.status == 502 || up.status == 503,
        }
}

/// A refusal a repeat of the same post would get again: kept, so the repeat is answered at once.
pub(super) fn keeps_refusal(e: &Error) -> bool {
    e.kind == ErrorKind::ValidationFailed
        || (e.kind == ErrorKind::UpstreamRejected
            && e.upstream
                .as_ref()
                .is_some_and(|u| u.status == 404 || u.status == 422))
}

/// A success: posted, unless the server dropped what the caller asked for (then the status exists,
/// and the caller is told which and where, never a plain success; a repeat gets the same).
async fn settle_answer(core: &Core, post: &Post<'_>, answer: Value) -> Result<Value> {
    let status_id = id_text(&answer["id"]).unwrap_or_default();
    let dropped = post.expected.dropped(&answer);
    if dropped.is_empty() {
        settle(
            core,
            post,
            &LedgerState::Posted {
                status_id,
                answer: answer.clone(),
            },
        )
        .await?;
        return Ok(answer);
    }
    let software = core.software_name(post.conn).await;
    let where_ = match answer["url"].as_str().or(answer["uri"].as_str()) {
        Some(url) => format!("status {status_id} ({})", bounded(url)),
        None => format!("status {}", bounded(&status_id)),
    };
    let e = Error::new(
        ErrorKind::UpstreamIgnored,
        format!(
            "{software} created {where_} but {}; delete or edit it if that matters, and leave out what this server does not support",
            dropped.join("; ")
        ),
    )
    .with_upstream(200, None);
    tracing::warn!(connection = %post.conn.name, dropped = dropped.len(), "the server changed what was asked for");
    // Kept as a refusal: a repeat must not post again, and gets the same report.
    settle(core, post, &LedgerState::Failed(stored(&e))).await?;
    Err(e)
}

/// Resolves a claim in doubt: the status found, sent when shown not created and settled, or
/// `outcome_unknown`.
async fn resolve(
    core: &Core,
    post: &Post<'_>,
    token: &SecretString,
    started_at: i64,
    since: i64,
) -> Result<Value> {
    let conn = post.conn;
    match lookup(core, post, token, started_at).await {
        Lookup::Found(status) => {
            tracing::info!(connection = %conn.name, "the post in doubt was created; answering it");
            settle_answer(core, post, status).await
        }
        Lookup::NotCreated if unix_now() >= since + settle_s(conn) => {
            tracing::info!(connection = %conn.name, "the post in doubt was not created; sending it");
            // Boxed: sending may lead back here (a second doubt), and an async cycle needs a box.
            Box::pin(send(core, post, token, unix_now(), resends(conn))).await
        }
        Lookup::NotCreated => {
            mark_doubt(core, post, since).await?;
            Err(outcome_unknown(
                conn,
                "it is not among the account's statuses yet, and the server may still be creating it",
                since,
            ))
        }
        Lookup::Undecided(why) => {
            mark_doubt(core, post, since).await?;
            Err(outcome_unknown(conn, &why, since))
        }
    }
}

fn outcome_unknown(conn: &Connection, why: &str, since: i64) -> Error {
    let wait = (since + settle_s(conn) - unix_now()).max(1);
    let mut e = Error::new(
        ErrorKind::OutcomeUnknown,
        format!(
            "the server's answer to this post was lost and the status may exist: {why}. Retry the same message (same idempotency_key or correlation id) after Retry-After: the sidecar looks again and sends it only if it was not created"
        ),
    );
    e.retry_after = Some(wait as u64);
    e
}

/// Reads the account's latest statuses (or scheduled statuses) for the post.
async fn lookup(core: &Core, post: &Post<'_>, token: &SecretString, started_at: i64) -> Lookup {
    let conn = post.conn;
    let listed = if post.expected.scheduled {
        conn.client
            .get_path(
                Endpoint::SCHEDULED_STATUSES,
                &format!("/api/v1/scheduled_statuses?limit={LOOKUP_LIMIT}"),
                Some(token),
            )
            .await
    } else {
        match core.account_id(conn, token).await {
            Ok(id) => {
                let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
                conn.client
                    .get_path(
                        Endpoint::ACCOUNT_STATUSES,
                        &format!("/api/v1/accounts/{id}/statuses?limit={LOOKUP_LIMIT}"),
                        Some(token),
                    )
                    .await
            }
            Err(e) => Err(e),
        }
    };
    let list = match listed {
        Ok(Value::Array(list)) => list,
        Ok(_) => return Lookup::Undecided("the server's list of statuses is not a list".into()),
        Err(e) => {
            return Lookup::Undecided(format!(
                "the account's statuses could not be read ({})",
                e.kind.code()
            ))
        }
    };
    let earliest = started_at - CLOCK_SKEW_S;
    for candidate in &list {
        let created = created_at(candidate);
        if created.is_some_and(|t| t < earliest) {
            continue;
        }
        if !post.expected.matches(candidate) {
            continue;
        }
        let Some(id) = id_text(&candidate["id"]) else {
            continue;
        };
        match core
            .store
            .ledger_status_taken(&conn.name, &id, post.key)
            .await
        {
            Ok(false) => return Lookup::Found(candidate.clone()),
            Ok(true) => continue,
            Err(e) => {
                tracing::error!(error = %e, "the ledger could not be read");
                return Lookup::Undecided("the sidecar's store failed".into());
            }
        }
    }
    // Complete when the list is shorter than asked for, or reaches back before the post began.
    let complete = list.len() < LOOKUP_LIMIT
        || list
            .iter()
            .filter_map(created_at)
            .min()
            .is_some_and(|oldest| oldest < earliest);
    if complete {
        Lookup::NotCreated
    } else {
        Lookup::Undecided(format!(
            "the account posted more than {LOOKUP_LIMIT} statuses since, too many to tell"
        ))
    }
}

/// A Status's `created_at` as Unix seconds (ScheduledStatuses have none).
fn created_at(status: &Value) -> Option<i64> {
    let text = status["created_at"].as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

async fn settle(core: &Core, post: &Post<'_>, state: &LedgerState) -> Result<()> {
    let retain = unix_now() + core.settings.store.ledger_retention_s as i64;
    let ours = core
        .store
        .ledger_settle(&post.conn.name, post.key, core.owner(), state, retain)
        .await?;
    if !ours {
        // Our lease ran out while the call went on and another call took the entry over: it
        // resolves the post by looking, so nothing is lost; say so.
        tracing::warn!(connection = %post.conn.name, "the ledger entry was taken over before this call settled it");
    }
    Ok(())
}

async fn mark_doubt(core: &Core, post: &Post<'_>, since: i64) -> Result<()> {
    settle(core, post, &LedgerState::Doubt { since }).await
}

async fn release(core: &Core, post: &Post<'_>) -> Result<()> {
    Ok(core
        .store
        .ledger_release(&post.conn.name, post.key, core.owner())
        .await?)
}

pub(super) fn stored(e: &Error) -> StoredError {
    StoredError {
        code: e.kind.code().to_owned(),
        detail: e.detail.clone(),
        upstream_status: e.upstream.as_ref().map(|u| u.status),
        upstream_error: e.upstream.as_ref().and_then(|u| u.error.clone()),
    }
}

/// The kept refusal, as the first call answered it.
pub(super) fn restore(stored: StoredError) -> Error {
    let kind = ErrorKind::ALL
        .into_iter()
        .find(|k| k.code() == stored.code)
        .unwrap_or(ErrorKind::UpstreamRejected);
    let mut e = Error::new(kind, stored.detail);
    if let Some(status) = stored.upstream_status {
        e = e.with_upstream(status, stored.upstream_error);
    }
    e
}

fn bounded(text: &str) -> String {
    text.chars().take(200).collect()
}

/// How often the ledger is purged of entries past their retention (and beyond its bound).
pub const LEDGER_PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Runs until the task is aborted: purges the ledger at start, then every [`LEDGER_PURGE_EVERY`].
pub async fn purge_ledger(core: std::sync::Arc<Core>) {
    loop {
        let max = core.settings.store.ledger_max_entries;
        match core.store.ledger_purge(unix_now(), max).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "ledger purged"),
            Err(e) => tracing::warn!(error = %e, "the ledger could not be purged; retrying later"),
        }
        tokio::time::sleep(LEDGER_PURGE_EVERY).await;
    }
}
