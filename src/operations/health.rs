//! The health of held credentials: a background check per connection holding a user token.
//!
//! Every `store.health_interval_s` (jittered by ±10%, so replicas and connections do not call in
//! step), each configured connection with a user token asks the server who it is. A refusal (a 401,
//! or the 400/422 shapes some servers use) marks the token revoked (through
//! `Core::verify_user_token`, the same judgement a failing call gets) and sets
//! `mastodon_sidecar_token_valid` to 0; an answer sets it to 1. A token already marked revoked is
//! re-checked too (`Core::require_user_token` tries it once its mark is a minute old), so a mark
//! left by a passing fault heals without a call. A network failure or a 5xx says nothing about the
//! token: it changes nothing and is logged as a warning, since an operator should know that the
//! check cannot run.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::context::Core;
use crate::error::ErrorKind;

/// Runs until the task is aborted.
pub async fn watch_tokens(core: Arc<Core>, interval: Duration) {
    // A first look soon after start, so the gauge means something from the beginning.
    tokio::time::sleep(jittered(interval.min(Duration::from_secs(5)))).await;
    loop {
        check_all(&core).await;
        tokio::time::sleep(jittered(interval)).await;
    }
}

fn jittered(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..1.1);
    base.mul_f64(factor)
}

/// One round over every configured connection.
pub async fn check_all(core: &Core) {
    for conn in core.connections().into_iter().filter(|c| !c.inline) {
        let token = match core.require_user_token(&conn).await {
            Ok(token) => token,
            Err(e) if e.kind == ErrorKind::CredentialsMissing => {
                // No token, or one still refused at its re-check: nothing more to ask the server.
                continue;
            }
            Err(e) => {
                tracing::warn!(connection = %conn.name, code = e.kind.code(), "credential check skipped");
                continue;
            }
        };
        if let Err(e) = core.verify_user_token(&conn, token).await {
            if e.upstream
                .as_ref()
                .is_none_or(|u| u.status >= 500 || u.status == 429)
            {
                tracing::warn!(connection = %conn.name, code = e.kind.code(), "credential check inconclusive: the server could not be asked");
            } else {
                tracing::debug!(connection = %conn.name, code = e.kind.code(), "credential check answered with a refusal");
            }
        }
    }
}
