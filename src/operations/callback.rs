//! The OAuth redirect flow's end: Mastodon sends the browser back with `code` and `state`.
//!
//! The state must be known, unused, unexpired and of a connection that still points at the same
//! instance; then the code is exchanged with the kept PKCE verifier and the token stored, exactly as
//! `getToken` does. Every refusal says which it is (unknown, replayed, expired, denied) and stores
//! nothing. Not a connector operation: it is reached by a browser, not by a flow.

use secrecy::SecretString;

use super::context::Core;
use super::get_token::{exchange_code, refuse_pinned_token};
use crate::clock::unix_now;
use crate::error::Error;
use crate::store::PendingLookup;

/// The account now connected.
#[derive(Debug)]
pub struct Connected {
    pub connection: String,
    /// `@user@domain` or `@user`, when the token may read the account.
    pub acct: Option<String>,
    pub url: Option<String>,
}

/// Why a callback stored nothing.
#[derive(Debug)]
pub enum CallbackRefusal {
    MissingState,
    Unknown,
    Replayed,
    Expired,
    Denied(String),
    Failed(Error),
}

impl CallbackRefusal {
    /// The HTTP status, a title and a sentence for the person in front of the browser.
    pub fn describe(&self) -> (u16, &'static str, String) {
        match self {
            CallbackRefusal::MissingState => (400, "Missing state", "This page needs the state the server sends back; open the authorization URL the sidecar made.".to_owned()),
            CallbackRefusal::Unknown => (400, "Unknown authorization", "This link does not belong to an authorization begun here (unknown state). Nothing was stored.".to_owned()),
            CallbackRefusal::Replayed => (400, "Already used", "This authorization was already completed once (the link was replayed). Nothing was changed.".to_owned()),
            CallbackRefusal::Expired => (400, "Authorization expired", "Authorizations last ten minutes: ask for a new authorization URL and approve again. Nothing was stored.".to_owned()),
            CallbackRefusal::Denied(reason) => (400, "Authorization denied", format!("The server reports the authorization was not granted ({reason}). Nothing was stored.")),
            CallbackRefusal::Failed(e) => (e.http_status(), "Authorization failed", format!("{} ({})", e.detail, e.kind.code())),
        }
    }
}

impl Connected {
    pub fn describe(&self) -> String {
        format!(
            "{} is now connected to connection \u{201c}{}\u{201d}; flows using it will post as this account. You can close this window.",
            self.acct.as_deref().unwrap_or("The account"),
            self.connection
        )
    }
}

impl From<Error> for CallbackRefusal {
    fn from(e: Error) -> Self {
        CallbackRefusal::Failed(e)
    }
}

pub async fn oauth_callback(
    core: &Core,
    code: Option<SecretString>,
    state: Option<&str>,
    denied: Option<&str>,
) -> Result<Connected, CallbackRefusal> {
    let state = state.filter(|s| !s.is_empty());
    let Some(state) = state else {
        // Some servers (Hollo) send a denial back with `error` but without the state: it is still
        // a denial, and the person should read that, not "unknown state". Nothing is taken.
        if let Some(reason) = denied {
            tracing::info!("an authorization was denied at the server (no state came back)");
            return Err(CallbackRefusal::Denied(reason.chars().take(100).collect()));
        }
        return Err(CallbackRefusal::MissingState);
    };
    let pending = match core.store.take_pending(state).await.map_err(Error::from)? {
        PendingLookup::Taken(pending) => pending,
        PendingLookup::AlreadyUsed => return Err(CallbackRefusal::Replayed),
        PendingLookup::Unknown => return Err(CallbackRefusal::Unknown),
    };
    if let Some(reason) = denied {
        tracing::info!(connection = %pending.connection, "the authorization was denied at the server");
        return Err(CallbackRefusal::Denied(reason.chars().take(100).collect()));
    }
    if pending.expires_at <= unix_now() {
        return Err(CallbackRefusal::Expired);
    }
    let code = code.ok_or_else(|| Error::invalid("the server's redirect carried no code"))?;
    let conn = core.connection(Some(&pending.connection))?;
    if pending.instance != conn.instance_url() {
        return Err(Error::invalid(format!(
            "connection {:?} now points at another instance than this authorization",
            conn.name
        ))
        .into());
    }
    refuse_pinned_token(&conn)?;
    let app = core.require_app(&conn).await?;
    exchange_code(core, &conn, &app, Some(pending), &code, None).await?;
    // Name the account; a token without a read scope cannot, and that is no reason to fail.
    let account = match core.require_user_token(&conn).await {
        Ok(token) => core.verify_user_token(&conn, token).await.ok(),
        Err(_) => None,
    };
    let text = |k: &str| {
        account
            .as_ref()
            .and_then(|a| a[k].as_str())
            .map(str::to_owned)
    };
    Ok(Connected {
        connection: conn.name.clone(),
        acct: text("acct").map(|a| format!("@{a}")),
        url: text("url"),
    })
}
