//! `verifyCredentials`: the account the connection's user token acts for, as Mastodon returns it.

use serde::Deserialize;
use serde_json::Value;

use super::context::Core;
use super::params;
use crate::error::Result;
use crate::mastodon::Endpoint;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCredentialsParams {
    #[serde(default, deserialize_with = "params::opt_string")]
    pub connection: Option<String>,
}

pub async fn verify_credentials(core: &Core, p: VerifyCredentialsParams) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    let client = &conn.client;
    core.with_user_token(&conn, |token| async move {
        client.get(Endpoint::VERIFY_CREDENTIALS, Some(&token)).await
    })
    .await
}
