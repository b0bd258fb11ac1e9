//! THE connector: the closed set of operations and their dispatch.
//!
//! An operation is a free async function over the [`Core`] and a plain serde parameter struct. The same
//! struct is read from JSON, plain XML and SOAP (the codecs in `wire/` turn each into a JSON value
//! first), and what makes a value valid lives here, never in a codec. [`Operation`] drives everything
//! that lists operations: routing, SOAP dispatch, the `operation` metric label, and (through
//! [`Operation::parameters`]) the WSDL and the OpenAPI document. This module must not import
//! `actix_web` or `quick_xml`.

mod authorize_url;
pub mod callback;
mod context;
mod create_app;
pub(crate) mod get_token;
pub mod health;
mod init;
pub mod params;
mod post_once;
mod post_status;
mod revoke_token;
pub mod status_length;
pub mod status_match;
mod verify_credentials;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use context::{Connection, Core};
pub use post_once::purge_ledger;

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

    /// One line saying what the operation does, for the WSDL and the OpenAPI document.
    pub const fn summary(self) -> &'static str {
        match self {
            Operation::Init => "Checks a connection: instance, limits, credentials held",
            Operation::CreateApp => "Registers the connection's app with the instance",
            Operation::AuthorizeUrl => "Builds the URL a person opens to approve the app",
            Operation::GetToken => "Obtains a token (from a code, or for the app) and keeps it",
            Operation::VerifyCredentials => "Answers the Account of the connection's user token",
            Operation::PostStatus => "Posts a status (or schedules it with scheduled_at)",
            Operation::RevokeToken => "Revokes the user (or app) token and forgets it",
        }
    }

    /// The parameters the operation takes: exactly the fields of its parameter struct, in their
    /// order (a unit test holds the two together).
    pub const fn parameters(self) -> &'static [Param] {
        match self {
            Operation::Init => INIT_PARAMS,
            Operation::CreateApp => CREATE_APP_PARAMS,
            Operation::AuthorizeUrl => AUTHORIZE_URL_PARAMS,
            Operation::GetToken => GET_TOKEN_PARAMS,
            Operation::VerifyCredentials => VERIFY_CREDENTIALS_PARAMS,
            Operation::PostStatus => POST_STATUS_PARAMS,
            Operation::RevokeToken => REVOKE_TOKEN_PARAMS,
        }
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

/// One parameter of an operation, as the WSDL and the OpenAPI document describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name in JSON and the element name in XML: Mastodon's own (snake_case).
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
    pub description: &'static str,
}

/// What a parameter's value is, as the lenient readers in [`params`] take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Text (a number or a boolean is taken as its text).
    Text,
    /// `true` or `false`.
    Bool,
    /// A whole number, not negative.
    Count,
    /// A list of text; one value stands for a list of one, and XML repeats the element.
    List,
    /// Named parameters of its own.
    Object(&'static [Param]),
}

// Every parameter is optional today (what an operation needs depends on the others and on the
// connection, and the operation says so); `required` is there for the documents when one is not.
impl Param {
    const fn new(name: &'static str, kind: ParamKind, description: &'static str) -> Param {
        Param {
            name,
            kind,
            required: false,
            description,
        }
    }

    const fn text(name: &'static str, description: &'static str) -> Param {
        Param::new(name, ParamKind::Text, description)
    }

    const fn bool(name: &'static str, description: &'static str) -> Param {
        Param::new(name, ParamKind::Bool, description)
    }

    const fn count(name: &'static str, description: &'static str) -> Param {
        Param::new(name, ParamKind::Count, description)
    }

    const fn list(name: &'static str, description: &'static str) -> Param {
        Param::new(name, ParamKind::List, description)
    }

    const fn object(
        name: &'static str,
        fields: &'static [Param],
        description: &'static str,
    ) -> Param {
        Param::new(name, ParamKind::Object(fields), description)
    }
}

const CONNECTION: Param = Param::text(
    "connection",
    "The configured connection (may be left out with one, or one named default)",
);

const INIT_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "instance",
        "Inline connection (with security.allow_inline_connections): the instance URL",
    ),
    Param::text("access_token", "Inline: a user access token"),
    Param::text(
        "client_id",
        "Inline: the client_id of an app registered already",
    ),
    Param::text("client_secret", "Inline: the client_secret of that app"),
    Param::text("scopes", "Inline: the scopes, separated by spaces"),
    Param::text("redirect_uri", "Inline: the redirect URI of the app"),
];

const CREATE_APP_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "client_name",
        "The app's name, instead of the configured one",
    ),
    Param::list(
        "redirect_uris",
        "The redirect URIs instead of the configured one (a list, or separated by spaces)",
    ),
    Param::text(
        "scopes",
        "The scopes (separated by spaces) instead of the configured ones",
    ),
    Param::text(
        "website",
        "The app's website, instead of the configured one",
    ),
    Param::bool(
        "force",
        "Replace a stored app registered with other scopes or redirect URIs (its client secret is lost; nothing is revoked)",
    ),
];

const AUTHORIZE_URL_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "scope",
        "The scopes to ask for, separated by spaces (the app's by default)",
    ),
    Param::text(
        "redirect_uri",
        "One of the app's redirect URIs (the first by default)",
    ),
    Param::text(
        "state",
        "The state to carry through the redirect (a fresh one by default)",
    ),
    Param::bool(
        "force_login",
        "Ask the person to log in even when a session exists",
    ),
    Param::text("lang", "The language of the authorization page (ISO 639-1)"),
];

const GET_TOKEN_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "grant_type",
        "authorization_code (the default) or client_credentials",
    ),
    Param::text("code", "The authorization code the instance showed or sent"),
    Param::text(
        "state",
        "The state authorizeUrl answered: finds the pending authorization",
    ),
    Param::text("redirect_uri", "The redirect URI used in authorizeUrl"),
    Param::text("scope", "The scopes, separated by spaces"),
];

const VERIFY_CREDENTIALS_PARAMS: &[Param] = &[CONNECTION];

const POST_STATUS_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "status",
        "The text (required unless media_ids or poll is given)",
    ),
    Param::list("media_ids", "Ids of attachments uploaded already"),
    Param::object("poll", POLL_PARAMS, "A poll instead of media"),
    Param::text("in_reply_to_id", "The id of the status this one replies to"),
    Param::bool("sensitive", "Mark the media as sensitive"),
    Param::text(
        "spoiler_text",
        "A content warning shown instead of the text",
    ),
    Param::text("visibility", "public, unlisted, private or direct"),
    Param::text("language", "The language of the status (ISO 639-1)"),
    Param::text(
        "scheduled_at",
        "When to publish (ISO 8601, at least 5 minutes ahead): answers a ScheduledStatus",
    ),
    Param::text(
        "idempotency_key",
        "Makes a retried post post once (derived from the correlation id when absent)",
    ),
    Param::text(
        "content_type",
        "GoToSocial and Mitra: text/plain, text/markdown or text/html",
    ),
    Param::bool(
        "local_only",
        "GoToSocial: keep the status on this server, not federated",
    ),
];

const POLL_PARAMS: &[Param] = &[
    Param::list("options", "The choices, at least two"),
    Param::count("expires_in", "Seconds until the poll closes"),
    Param::bool("multiple", "Allow more than one choice"),
    Param::bool("hide_totals", "Hide the counts until the poll closes"),
];

const REVOKE_TOKEN_PARAMS: &[Param] = &[
    CONNECTION,
    Param::text(
        "token_kind",
        "user (the default) or app: which of the connection's tokens",
    ),
];

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

/// Reads `params` as `operation`'s parameter struct, exactly as [`execute`] does first, without
/// running anything: how the tests hold [`Operation::parameters`] to the structs.
#[cfg(test)]
pub(crate) fn check_parameters(operation: Operation, params: Value) -> Result<()> {
    match operation {
        Operation::Init => parse::<init::InitParams>(operation, params).map(drop),
        Operation::CreateApp => parse::<create_app::CreateAppParams>(operation, params).map(drop),
        Operation::AuthorizeUrl => {
            parse::<authorize_url::AuthorizeUrlParams>(operation, params).map(drop)
        }
        Operation::GetToken => parse::<get_token::GetTokenParams>(operation, params).map(drop),
        Operation::VerifyCredentials => {
            parse::<verify_credentials::VerifyCredentialsParams>(operation, params).map(drop)
        }
        Operation::PostStatus => {
            parse::<post_status::PostStatusParams>(operation, params).map(drop)
        }
        Operation::RevokeToken => {
            parse::<revoke_token::RevokeTokenParams>(operation, params).map(drop)
        }
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
    use serde_json::json;

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

    /// A value every reader of `kind` takes.
    fn sample(kind: ParamKind) -> Value {
        match kind {
            ParamKind::Text => json!("text"),
            ParamKind::Bool => json!(true),
            ParamKind::Count => json!(300),
            ParamKind::List => json!(["a", "b"]),
            ParamKind::Object(fields) => object(fields),
        }
    }

    /// A value the readers of `kind` refuse, though the readers of every other kind take it: so an
    /// accepted sample and a refused misfit together pin the kind.
    fn misfit(kind: ParamKind) -> Value {
        match kind {
            ParamKind::Text => json!(["a", "b"]),
            ParamKind::Bool => json!("maybe"),
            ParamKind::Count => json!("3.5"),
            ParamKind::List => json!([{"a": 1}]),
            ParamKind::Object(_) => json!("text"),
        }
    }

    fn object(params: &[Param]) -> Value {
        Value::Object(
            params
                .iter()
                .map(|p| (p.name.to_owned(), sample(p.kind)))
                .collect(),
        )
    }

    fn names(params: &[Param]) -> Vec<&'static str> {
        params.iter().map(|p| p.name).collect()
    }

    /// The names serde lists after `takes` in an unknown-parameter detail.
    fn listed_names(detail: &str) -> Vec<String> {
        let (_, list) = detail
            .split_once(" takes ")
            .unwrap_or_else(|| panic!("no list of names in {detail:?}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_metadata_names_exactly_the_fields_of_every_parameter_struct() {
        for op in Operation::ALL {
            let params = op.parameters();
            check_parameters(op, object(params))
                .unwrap_or_else(|e| panic!("{op}: every listed parameter is taken: {e}"));

            let mut unknown = object(params);
            unknown["not_a_parameter"] = json!("x");
            let e = check_parameters(op, unknown).expect_err("an unlisted name is refused");
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidRequest, "{op}");
            assert!(e.detail.contains("`not_a_parameter`"), "{op}: {}", e.detail);
            assert_eq!(listed_names(&e.detail), names(params), "{op}");

            for p in params {
                if let ParamKind::Object(fields) = p.kind {
                    let mut inner = object(fields);
                    inner["not_a_parameter"] = json!("x");
                    let mut outer = object(params);
                    outer[p.name] = inner;
                    let e = check_parameters(op, outer).expect_err("an unlisted nested name");
                    assert!(e.detail.contains(&format!("in {}", p.name)), "{}", e.detail);
                    assert_eq!(listed_names(&e.detail), names(fields), "{op}.{}", p.name);
                }
            }
        }
    }

    #[test]
    fn the_metadata_kinds_and_requirements_are_those_of_the_readers() {
        fn walk(op: Operation, params: &[Param], wrap: &dyn Fn(Value) -> Value) {
            for p in params {
                let mut with = object(params);
                with[p.name] = misfit(p.kind);
                assert!(
                    check_parameters(op, wrap(with)).is_err(),
                    "{op}.{} takes {}",
                    p.name,
                    misfit(p.kind)
                );
                let mut without = object(params);
                without.as_object_mut().unwrap().remove(p.name);
                assert_eq!(
                    check_parameters(op, wrap(without)).is_err(),
                    p.required,
                    "{op}.{}: required is {}",
                    p.name,
                    p.required
                );
                if let ParamKind::Object(fields) = p.kind {
                    let name = p.name;
                    let nest = |inner: Value| {
                        let mut outer = object(params);
                        outer[name] = inner;
                        wrap(outer)
                    };
                    walk(op, fields, &nest);
                }
            }
        }
        for op in Operation::ALL {
            walk(op, op.parameters(), &|v| v);
            assert!(!op.summary().is_empty());
        }
    }
}
