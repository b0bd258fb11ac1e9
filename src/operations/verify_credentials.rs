//! `verifyCredentials`: the account the connection's user token acts for, as the server returns it.
//!
//! Also home of [`token_verdict`], the one reading of what a failed call says about its token:
//! servers refuse a token in more shapes than Mastodon's 401 (`shared/reference/servers.md`).

use super::params::params;
use serde_json::Value;

use super::context::Core;
use crate::error::{Error, Result};
use crate::mastodon::Capabilities;

params! {
    pub struct VerifyCredentialsParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
    }
}

pub async fn verify_credentials(
    core: &Core,
    p: VerifyCredentialsParams,
    _call: &super::CallContext,
) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    let token = core.require_user_token(&conn).await?;
    core.verify_user_token(&conn, token).await
}

/// What a failed call says about the user token it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenVerdict {
    /// The server refused the token: it is revoked (or was never valid there).
    Refused,
    /// Maybe refused: a 400 without Mastodon's JSON on a server that refuses tokens so, on a call
    /// other than verify_credentials (where a content refusal could look the same). To be confirmed.
    Suspect,
    /// The token is valid but lacks a scope the call needs: not a revocation.
    OutOfScope,
    /// Nothing about the token.
    Unrelated,
}

/// Reads a refusal: a 401 on any call (Mastodon, GoToSocial, Hollo, Mitra); a 400 whose text names
/// the token, or any 400 without a JSON error where the server refuses tokens so (Takahē's
/// `Invalid Bearer token` page); a 422 on verify_credentials where the server refuses tokens so
/// (snac). A 403 naming scopes is a scope problem (Takahē's `out_of_scope_for_token`).
pub fn token_verdict(e: &Error, caps: &Capabilities, on_verify: bool) -> TokenVerdict {
    let Some(up) = &e.upstream else {
        return TokenVerdict::Unrelated;
    };
    let text = up.error.as_deref().unwrap_or_default().to_ascii_lowercase();
    let names_token = [
        "invalid bearer token",
        "invalid_token",
        "access token is invalid",
        "token was revoked",
        "token not supplied",
    ]
    .iter()
    .any(|t| text.contains(t));
    match up.status {
        401 => TokenVerdict::Refused,
        400 if names_token => TokenVerdict::Refused,
        400 if caps.token_refusal_400 && up.error.is_none() => {
            if on_verify {
                TokenVerdict::Refused
            } else {
                TokenVerdict::Suspect
            }
        }
        422 if on_verify && (caps.token_refusal_422 || names_token) => TokenVerdict::Refused,
        403 if text.contains("scope") => TokenVerdict::OutOfScope,
        _ => TokenVerdict::Unrelated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn refusal(status: u16, text: Option<&str>) -> Error {
        Error::new(ErrorKind::UpstreamRejected, "refused")
            .with_upstream(status, text.map(str::to_owned))
    }

    #[test]
    fn every_refusal_shape_is_recognised_where_the_server_uses_it() {
        let mastodon = Capabilities::mastodon();
        let takahe = Capabilities::for_software("takahe");
        let snac = Capabilities::for_software("snac");
        let v = token_verdict;
        assert_eq!(
            v(&refusal(401, None), &mastodon, false),
            TokenVerdict::Refused
        );
        assert_eq!(
            v(
                &refusal(400, Some("Invalid Bearer token")),
                &mastodon,
                false
            ),
            TokenVerdict::Refused
        );
        // Takahē's page is not JSON: no text reaches the error.
        assert_eq!(v(&refusal(400, None), &takahe, true), TokenVerdict::Refused);
        assert_eq!(
            v(&refusal(400, None), &takahe, false),
            TokenVerdict::Suspect
        );
        assert_eq!(
            v(&refusal(400, None), &mastodon, true),
            TokenVerdict::Unrelated
        );
        // A content refusal in JSON is never the token.
        assert_eq!(
            v(&refusal(400, Some("Status is too long")), &takahe, false),
            TokenVerdict::Unrelated
        );
        assert_eq!(v(&refusal(422, None), &snac, true), TokenVerdict::Refused);
        assert_eq!(
            v(&refusal(422, None), &snac, false),
            TokenVerdict::Unrelated
        );
        assert_eq!(
            v(
                &refusal(422, Some("This method requires an authenticated user")),
                &mastodon,
                true
            ),
            TokenVerdict::Unrelated
        );
        assert_eq!(
            v(&refusal(403, Some("out_of_scope_for_token")), &takahe, true),
            TokenVerdict::OutOfScope
        );
        assert_eq!(
            v(&refusal(403, None), &mastodon, true),
            TokenVerdict::Unrelated
        );
    }
}
