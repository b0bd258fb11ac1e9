//! The generic runner of the operations that are one call to the server: the route comes from the
//! operation's declaration (`operations!` in `mod.rs`), the parameters from its struct.
//!
//! A `:segment` of the route's path is filled from the parameter of that name (percent-encoded, so a
//! caller's id can never add a path segment); the other parameters go into the query (GET, DELETE)
//! or a form body (every server takes forms; snac takes nothing else). A page's cursors are read
//! from the server's `Link` header, never guessed from the last item (followers and following are
//! paginated by the follows' ids, not the accounts'). A write goes through the ledger (see
//! [`write_once`]), so a repeated message is answered its first result and never applied twice where
//! that would create something twice.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::context::{Connection, Core};
use super::params::Params;
use super::post_once::{
    keeps_refusal, lease_s, restore, settle_s, stored, IN_FLIGHT_POLL, IN_FLIGHT_WAIT,
};
use super::status_match::id_text;
use super::{CallContext, Operation, Returns, Writes};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::{unix_now, Answer, Body, Endpoint};
use crate::store::{LedgerClaim, LedgerKey, LedgerState};

/// The longest cursor value kept from a `Link` header: a hostile server's header is not passed on
/// whole.
const CURSOR_CHARS: usize = 200;
/// The query parameters of a `Link` URL that are cursors.
const CURSORS: [&str; 4] = ["max_id", "since_id", "min_id", "offset"];

/// Runs the declared route of `call.operation` with `p`.
pub async fn run<P: Params>(core: &Core, p: P, call: &CallContext) -> Result<Value> {
    let op = call.operation;
    let Some(endpoint) = op.route() else {
        tracing::error!(
            operation = op.name(),
            "an operation without a route was run as one"
        );
        return Err(Error::internal());
    };
    let mut pairs = Vec::new();
    p.write("", &mut pairs);
    let connection = take(&mut pairs, "connection");
    let conn = core.connection(connection.as_deref())?;
    let request = Request::new(endpoint, pairs)?;
    let answer = match op.writes() {
        Writes::No => send(core, &conn, op, &request).await?,
        writes => {
            let key = derived_key(&conn.name, op, &call.correlation_id, &request);
            write_once(
                core,
                &conn,
                op,
                writes,
                &key,
                &request.fingerprint(),
                || send(core, &conn, op, &request),
            )
            .await?
        }
    };
    Ok(shape(op.returns(), answer))
}

/// A concrete request: the path with its segments filled, and what goes in the query or the body.
pub struct Request {
    pub endpoint: Endpoint,
    pub path_and_query: String,
    pub form: Vec<(String, String)>,
}

impl Request {
    pub fn new(endpoint: Endpoint, mut pairs: Vec<(String, String)>) -> Result<Request> {
        let mut path = String::with_capacity(endpoint.path.len() + 32);
        for segment in endpoint.path.split('/').skip(1) {
            path.push('/');
            match segment.strip_prefix(':') {
                Some(name) => {
                    let value = take(&mut pairs, name).unwrap_or_default();
                    path.push_str(&path_segment(name, &value)?);
                }
                None => path.push_str(segment),
            }
        }
        let query_only = matches!(endpoint.method, "GET" | "DELETE");
        if query_only && !pairs.is_empty() {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            path.push('?');
            path.push_str(&query);
            pairs.clear();
        }
        Ok(Request {
            endpoint,
            path_and_query: path,
            form: pairs,
        })
    }

    /// What the request asks, hashed: a key reused for another request is refused.
    pub(super) fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.endpoint.label.as_bytes());
        hash.update([0]);
        hash.update(self.path_and_query.as_bytes());
        for (k, v) in &self.form {
            hash.update([0]);
            hash.update(k.as_bytes());
            hash.update([1]);
            hash.update(v.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// Removes the pair named `name` and answers its value.
fn take(pairs: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = pairs.iter().position(|(k, _)| k == name)?;
    Some(pairs.remove(at).1)
}

/// A caller's value as one path segment: everything but unreserved characters percent-encoded, so
/// `/`, `?`, `#` and `%` cannot change the route; dot segments and control characters refused.
pub(super) fn path_segment(name: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(format!("the parameter `{name}` is empty")));
    }
    if value == "." || value == ".." || value.chars().any(char::is_control) || value.len() > 512 {
        return Err(Error::invalid(format!(
            "the parameter `{name}` is not an id (control characters, dot segments and more than 512 bytes are refused)"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

/// One exchange with the connection's user token (none for an operation that needs no scope).
async fn send(core: &Core, conn: &Connection, op: Operation, request: &Request) -> Result<Answer> {
    send_request(core, conn, request, !op.scopes().is_empty()).await
}

/// One exchange, with the connection's user token or (`with_token` false) none.
pub(super) async fn send_request(
    core: &Core,
    conn: &Connection,
    request: &Request,
    with_token: bool,
) -> Result<Answer> {
    let body = || {
        if request.form.is_empty() {
            Body::Empty
        } else {
            Body::Form(&request.form)
        }
    };
    let client = &conn.client;
    if !with_token {
        return client
            .call(request.endpoint, &request.path_and_query, None, body(), &[])
            .await;
    }
    core.with_user_token(conn, |token: SecretString| async move {
        client
            .call(
                request.endpoint,
                &request.path_and_query,
                Some(&token),
                body(),
                &[],
            )
            .await
    })
    .await
}

/// The result as the caller sees it: a page with its cursors, a list, or the entity.
pub fn shape(returns: Returns, answer: Answer) -> Value {
    match returns {
        Returns::One(_) => match answer.value {
            Value::Null => Value::Object(Map::new()),
            v => v,
        },
        Returns::List(_) => json!({"items": as_list(answer.value)}),
        Returns::Page(_) => {
            let mut page = Map::new();
            page.insert("items".into(), as_list(answer.value));
            if let Some(link) = answer.link.as_deref() {
                for (rel, cursor) in cursors(link) {
                    page.insert(rel.into(), Value::Object(cursor));
                }
            }
            Value::Object(page)
        }
    }
}

fn as_list(value: Value) -> Value {
    match value {
        Value::Array(_) => value,
        Value::Null => Value::Array(Vec::new()),
        // A server that answers one object where a list belongs: a list of one, not lost.
        other => Value::Array(vec![other]),
    }
}

/// The `next` and `prev` cursors of a `Link` header (RFC 8288): the pagination parameters of each
/// link's URL, bounded.
pub fn cursors(link: &str) -> Vec<(&'static str, Map<String, Value>)> {
    let mut found = Vec::new();
    for part in link.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some((target, attributes)) = rest.split_once('>') else {
            continue;
        };
        let rel = attributes
            .split(';')
            .filter_map(|a| a.trim().strip_prefix("rel="))
            .map(|v| v.trim_matches('"'))
            .next();
        let rel = match rel {
            Some("next") => "next",
            Some("prev") | Some("previous") => "prev",
            _ => continue,
        };
        if found.iter().any(|(r, _)| *r == rel) {
            continue;
        }
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let mut cursor = Map::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if CURSORS.contains(&k.as_ref()) && !cursor.contains_key(k.as_ref()) {
                let v: String = v
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(CURSOR_CHARS)
                    .collect();
                cursor.insert(k.into_owned(), Value::String(v));
            }
        }
        if !cursor.is_empty() {
            found.push((rel, cursor));
        }
    }
    found
}

/// The ledger key of a write: a deterministic function of the connection, the operation, the
/// caller's correlation id and what is asked, so a repeated message finds its first result.
pub(super) fn derived_key(
    connection: &str,
    op: Operation,
    correlation_id: &str,
    request: &Request,
) -> String {
    let mut hash = Sha256::new();
    for part in [
        connection,
        op.name(),
        correlation_id,
        &request.fingerprint(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("{}:{}", op.name(), hex::encode(&hash.finalize()[..16]))
}

/// Runs a write at most once per key, through the ledger postStatus uses (see `post_once`):
/// - a repeat of a settled key answers the kept result (or refusal) without calling out;
/// - a repeat while the first is in flight waits for it, then gets `in_progress`;
/// - a write whose answer was lost is, when it changes nothing more on a repeat (`Idempotent`),
///   forgotten so the caller's retry sends it again; when it `Creates`, it stays in doubt and is
///   sent again only once the doubt has settled (`doubt_settle_ms`), with `outcome_unknown` until then.
pub async fn write_once<F, Fut>(
    core: &Core,
    conn: &Connection,
    op: Operation,
    writes: Writes,
    key: &str,
    fingerprint: &str,
    send: F,
) -> Result<Answer>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Answer>>,
{
    let ledger_key = LedgerKey {
        connection: &conn.name,
        key,
        fingerprint,
    };
    let wait_until = Instant::now()
        + IN_FLIGHT_WAIT.min(std::time::Duration::from_millis(conn.settings.timeout_ms));
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
            LedgerClaim::Claimed => return settle(core, conn, op, writes, key, send().await).await,
            LedgerClaim::Posted { answer, .. } => {
                tracing::info!(connection = %conn.name, operation = op.name(), "a repeat of a settled write: answering the kept result");
                return Ok(Answer {
                    status: 200,
                    value: answer,
                    link: None,
                });
            }
            LedgerClaim::Failed(kept) => return Err(restore(kept)),
            LedgerClaim::Mismatch => {
                return Err(Error::invalid(format!(
                    "this message (correlation id) already ran {op} with other parameters; send a new message for a new request"
                )))
            }
            LedgerClaim::InFlight { lease_until, .. } => {
                if Instant::now() + IN_FLIGHT_POLL < wait_until {
                    tokio::time::sleep(IN_FLIGHT_POLL).await;
                    continue;
                }
                let mut e = Error::new(
                    ErrorKind::InProgress,
                    format!("the same {op} is being sent by another call; retry after Retry-After to get its result"),
                );
                e.retry_after = Some((lease_until - unix_now()).clamp(1, 3600) as u64);
                return Err(e);
            }
            LedgerClaim::Doubt { since, .. } => {
                if writes == Writes::Idempotent || unix_now() >= since + settle_s(conn) {
                    return settle(core, conn, op, writes, key, send().await).await;
                }
                // Still in doubt: the lease just taken over is given back as a doubt.
                mark(core, conn, key, &LedgerState::Doubt { since }).await?;
                return Err(outcome_unknown(conn, op, since));
            }
        }
    }
}

/// Records what came of a claimed write and answers it.
async fn settle(
    core: &Core,
    conn: &Connection,
    op: Operation,
    writes: Writes,
    key: &str,
    outcome: Result<Answer>,
) -> Result<Answer> {
    match outcome {
        Ok(answer) => {
            let id = id_text(&answer.value["id"]).unwrap_or_default();
            let state = LedgerState::Posted {
                // Namespaced: a status found while resolving a post's doubt is never taken for this.
                status_id: format!("{op}:{id}"),
                answer: answer.value.clone(),
            };
            mark(core, conn, key, &state).await?;
            Ok(answer)
        }
        Err(e) if e.in_doubt && writes == Writes::Creates => {
            let since = unix_now();
            tracing::warn!(connection = %conn.name, operation = op.name(), code = e.kind.code(), "the answer to a write was lost; it stays in doubt");
            mark(core, conn, key, &LedgerState::Doubt { since }).await?;
            Err(outcome_unknown(conn, op, since))
        }
        Err(e) if keeps_refusal(&e) => {
            mark(core, conn, key, &LedgerState::Failed(stored(&e))).await?;
            Err(e)
        }
        Err(e) => {
            // Not applied, or applying it again changes nothing: a repeat may send it.
            core.store
                .ledger_release(&conn.name, key, core.owner())
                .await?;
            Err(e)
        }
    }
}

async fn mark(core: &Core, conn: &Connection, key: &str, state: &LedgerState) -> Result<()> {
    let retain = unix_now() + core.settings.store.ledger_retention_s as i64;
    let ours = core
        .store
        .ledger_settle(&conn.name, key, core.owner(), state, retain)
        .await?;
    if !ours {
        tracing::warn!(connection = %conn.name, "the ledger entry was taken over before this call settled it");
    }
    Ok(())
}

fn outcome_unknown(conn: &Connection, op: Operation, since: i64) -> Error {
    let wait = (since + settle_s(conn) - unix_now()).max(1);
    let mut e = Error::new(
        ErrorKind::OutcomeUnknown,
        format!(
            "the server's answer to {op} was lost and what it creates may exist; look before creating it again, or retry the same message after Retry-After, when the sidecar sends it again"
        ),
    );
    e.retry_after = Some(wait as u64);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_come_from_the_link_header_and_nothing_else() {
        let link = r#"<https://m.example/api/v1/accounts/1/followers?limit=2&max_id=7731>; rel="next", <https://m.example/api/v1/accounts/1/followers?limit=2&since_id=7790&min_id=7790>; rel="prev""#;
        let found = cursors(link);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "next");
        assert_eq!(found[0].1["max_id"], "7731");
        assert!(!found[0].1.contains_key("limit"));
        assert_eq!(found[1].0, "prev");
        assert_eq!(found[1].1["min_id"], "7790");
        assert!(cursors("garbage, <x>; rel=\"self\"").is_empty());
        let long = format!("<https://m/x?max_id={}>; rel=\"next\"", "9".repeat(5000));
        assert_eq!(
            cursors(&long)[0].1["max_id"].as_str().unwrap().len(),
            CURSOR_CHARS
        );
    }

    #[test]
    fn segments_are_filled_and_cannot_leave_their_place() {
        let e = Operation::GetStatus.route().unwrap();
        let r = Request::new(e, vec![("id".into(), "1/../../admin?x#".into())]).unwrap();
        assert_eq!(
            r.path_and_query,
            "/api/v1/statuses/1%2F..%2F..%2Fadmin%3Fx%23"
        );
        assert!(Request::new(e, vec![("id".into(), "..".into())]).is_err());
        assert!(
            Request::new(e, vec![("id".into(), "1\r\n".into())]).is_ok(),
            "trimmed"
        );
        assert!(Request::new(e, vec![("id".into(), "1\n2".into())]).is_err());

        let e = Operation::RemoveListAccounts.route().unwrap();
        let r = Request::new(
            e,
            vec![
                ("id".into(), "5".into()),
                ("account_ids[]".into(), "1".into()),
                ("account_ids[]".into(), "2".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            r.path_and_query,
            "/api/v1/lists/5/accounts?account_ids%5B%5D=1&account_ids%5B%5D=2"
        );
        assert!(r.form.is_empty());

        let e = Operation::FollowAccount.route().unwrap();
        let r = Request::new(
            e,
            vec![("id".into(), "9".into()), ("notify".into(), "true".into())],
        )
        .unwrap();
        assert_eq!(r.path_and_query, "/api/v1/accounts/9/follow");
        assert_eq!(r.form, vec![("notify".to_owned(), "true".to_owned())]);
    }
}
