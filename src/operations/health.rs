//! The health of held credentials: a background check per connection holding a user token.
//!
//! Every `store.health_interval_s` (jittered by ±10%, so replicas and connections do not call in
//! step), each configured connection with a user token asks Mastodon who it is. A 401 marks the token
//! revoked (through `Core::with_user_token`, the same path a failing call takes) and sets
//! `mastodon_sidecar_token_valid` to 0; an answer sets it to 1; a network failure says nothing about
//! the token and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::context::Core;
use crate::error::ErrorKind;
use crate::mastodon::Endpoint;

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
                // No token, or one already known to be revoked: nothing to ask Mastodon.
                continue;
            }
            Err(e) => {
                tracing::warn!(connection = %conn.name, code = e.kind.code(), "credential check skipped");
                continue;
            }
        };
        let client = &conn.client;
        let outcome = core
            .use_user_token(&conn, token, |token| async move {
                client.get(Endpoint::VERIFY_CREDENTIALS, Some(&token)).await
            })
            .await;
        if let Err(e) = outcome {
            tracing::debug!(connection = %conn.name, code = e.kind.code(), "credential check inconclusive");
        }
    }
}
