//! THE connector: the closed set of operations and their dispatch.
//!
//! An operation is a free async function over the [`Core`] and a plain serde parameter struct. The same
//! struct is read from JSON, plain XML and SOAP (the codecs in `wire/` turn each into a JSON value
//! first), and what makes a value valid lives here, never in a codec. [`Operation`] drives everything
//! that lists operations: routing, SOAP dispatch, the `operation` metric label. This module must not
//! import `actix_web` or `quick_xml`.

mod authorize_url;
pub mod callback;
mod context;
mod create_app;
pub(crate) mod get_token;
pub mod health;
mod init;
pub mod params;
mod post_status;
mod revoke_token;
pub mod status_length;
mod verify_credentials;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use context::{Connection, Core};

use crate::error::{Error, Result};

/// Every operation the sidecar offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Init,
    CreateApp,
    AuthorizeUrl,
    GetToken,
    VerifyCredentials,
    PostStatus,
    RevokeToken,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Init,
        Operation::CreateApp,
        Operation::AuthorizeUrl,
        Operation::GetToken,
        Operation::VerifyCredentials,
        Operation::PostStatus,
        Operation::RevokeToken,
    ];

    /// The name callers use, in paths, XML roots, SOAP bodies and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Init => "init",
            Operation::CreateApp => "createApp",
            Operation::AuthorizeUrl => "authorizeUrl",
            Operation::GetToken => "getToken",
            Operation::VerifyCredentials => "verifyCredentials",
            Operation::PostStatus => "postStatus",
            Operation::RevokeToken => "revokeToken",
        }
    }

    /// Exact names first; a name that differs only in case is accepted too, because hand-written MI
    /// sequences get `poststatus` as often as `postStatus`.
    pub fn from_name(name: &str) -> Option<Operation> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|op| op.name().eq_ignore_ascii_case(name))
            })
    }

    /// The error for a name that is none of the operations.
    pub fn unknown(name: &str) -> Error {
        let names: Vec<&str> = Self::ALL.iter().map(|op| op.name()).collect();
        let shown: String = name.chars().take(64).collect();
        Error::new(
            crate::error::ErrorKind::UnknownOperation,
            format!(
                "there is no operation {shown:?}; the operations are {}",
                names.join(", ")
            ),
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an operation knows about the request that carries it.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The caller's correlation id (or a fresh one): part of the derived idempotency key.
    pub correlation_id: String,
}

/// Runs `operation` with `params`, the decoded body (a JSON object, or null for an empty body).
pub async fn execute(
    core: &Core,
    operation: Operation,
    params: Value,
    call: &CallContext,
) -> Result<Value> {
    match operation {
        Operation::Init => init::init(core, parse(operation, params)?).await,
        Operation::CreateApp => create_app::create_app(core, parse(operation, params)?).await,
        Operation::AuthorizeUrl => {
            authorize_url::authorize_url(core, parse(operation, params)?).await
        }
        Operation::GetToken => get_token::get_token(core, parse(operation, params)?).await,
        Operation::VerifyCredentials => {
            verify_credentials::verify_credentials(core, parse(operation, params)?).await
        }
        Operation::PostStatus => {
            post_status::post_status(core, parse(operation, params)?, call).await
        }
        Operation::RevokeToken => revoke_token::revoke_token(core, parse(operation, params)?).await,
    }
}

/// Reads the parameter struct of `operation`, naming the parameter at fault when it cannot.
fn parse<T: DeserializeOwned>(operation: Operation, params: Value) -> Result<T> {
    let params = match params {
        Value::Null => Value::Object(Default::default()),
        obj @ Value::Object(_) => obj,
        other => {
            return Err(Error::invalid(format!(
                "{operation} takes an object of named parameters, not {}",
                match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    _ => "a single value",
                }
            )))
        }
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field: String = rest
                .split('`')
                .next()
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            let expected = rest
                .split_once("expected ")
                .map(|(_, list)| format!("; {operation} takes {list}"))
                .unwrap_or_default();
            let at = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!(" in {path}")
            };
            return Error::invalid(format!("unknown parameter `{field}`{at}{expected}"));
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            let at = if path == "." || path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            return Error::invalid(format!("{operation} needs the parameter `{at}`"));
        }
        Error::invalid(format!("parameter `{path}`: {message}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_round_trip_and_tolerate_case() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        assert_eq!(
            Operation::from_name("poststatus"),
            Some(Operation::PostStatus)
        );
        assert_eq!(Operation::from_name("deleteEverything"), None);
    }
}
