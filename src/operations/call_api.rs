//! `callApi`: the rest of Mastodon's API, for what no declared operation covers (trends, filters,
//! followed tags, admin routes...), with the same classification, retries, rate limits and ledger.
//!
//! It is off unless routes are allowed (`security/routes.rs`): per API key (`call_api`), or
//! `security.call_api_routes` when callers need no key. The path is checked before any pattern sees
//! it (under `/api/`, no dot segments, no encoded slashes or controls), so a pattern means what it
//! says. A GET is a read; a POST creates (in doubt it is not sent again before `doubt_settle_ms`,
//! like `createList`); PUT, PATCH and DELETE are idempotent writes. Either kind of write goes through
//! the ledger under a key derived from the message, so a repeated message gets its first answer.

use serde_json::{json, Map, Value};

use super::context::Core;
use super::params::params;
use super::rest::{self, Request};
use super::{CallContext, Writes};
use crate::error::{Error, Result};
use crate::mastodon::{Answer, Endpoint};
use crate::security::routes::{check_path, METHODS};

params! {
    pub struct CallApiParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// GET, POST, PUT, PATCH or DELETE
        pub method: String = required,
        /// The path under /api/, without a query (e.g. /api/v1/trends/tags)
        pub path: String = required,
        /// The parameters: one name and value each, repeated for a list (name `media_ids[]`); in the query for GET and DELETE, else a form
        pub params: Option<Vec<NameValue>>,
        /// Send no token (public routes; works before getToken)
        pub anonymous: Option<bool>,
    }
}

params! {
    pub struct NameValue {
        /// The parameter's name, as the server's documentation gives it
        pub name: String = required,
        /// Its value (empty when left out)
        pub value: Option<String>,
    }
}

/// One endpoint per method: the metric label and the rate-limit window of every callApi call.
const ENDPOINTS: [Endpoint; 5] = [
    endpoint("GET", "GET /api/* (callApi)", true),
    endpoint("POST", "POST /api/* (callApi)", false),
    endpoint("PUT", "PUT /api/* (callApi)", true),
    endpoint("PATCH", "PATCH /api/* (callApi)", true),
    endpoint("DELETE", "DELETE /api/* (callApi)", true),
];

const fn endpoint(method: &'static str, label: &'static str, idempotent: bool) -> Endpoint {
    Endpoint {
        method,
        path: "/api/*",
        label,
        idempotent,
        content: true,
        bucket: label,
    }
}

pub async fn call_api(core: &Core, p: CallApiParams, call: &CallContext) -> Result<Value> {
    let method = p.method.trim().to_ascii_uppercase();
    let Some(at) = METHODS.iter().position(|m| *m == method) else {
        return Err(Error::invalid(format!(
            "method is one of {}, not {:?}",
            METHODS.join(", "),
            p.method.chars().take(16).collect::<String>()
        )));
    };
    let endpoint = ENDPOINTS[at];
    let path = p.path.trim();
    check_path(path).map_err(|why| Error::invalid(format!("path: {why}")))?;
    if call.call_api.is_empty() {
        return Err(Error::forbidden(
            "callApi is off for this caller: allow routes with the API key's call_api, or security.call_api_routes when callers need no key",
        ));
    }
    if !call.call_api.allows(&method, path) {
        return Err(Error::forbidden(format!(
            "callApi may not send {method} {}; the routes allowed are {}",
            path.chars().take(200).collect::<String>(),
            call.call_api.describe()
        )));
    }
    let mut pairs = Vec::new();
    for item in p.params.unwrap_or_default() {
        let name = item.name.trim();
        if name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "a params name holds control characters".to_owned(),
            ));
        }
        pairs.push((name.to_owned(), item.value.unwrap_or_default()));
    }
    let conn = core.connection(p.connection.as_deref())?;
    let mut path_and_query = path.to_owned();
    let mut form = Vec::new();
    if matches!(method.as_str(), "GET" | "DELETE") {
        if !pairs.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish(),
            );
        }
    } else {
        form = pairs;
    }
    let request = Request {
        endpoint,
        path_and_query,
        form,
    };
    let anonymous = p.anonymous.unwrap_or(false);
    let writes = match method.as_str() {
        "GET" => Writes::No,
        "POST" => Writes::Creates,
        _ => Writes::Idempotent,
    };
    let answer = match writes {
        Writes::No => rest::send_request(core, &conn, &request, !anonymous).await?,
        writes => {
            let key = rest::derived_key(&conn.name, call.operation, &call.correlation_id, &request);
            rest::write_once(
                core,
                &conn,
                call.operation,
                writes,
                &key,
                &request.fingerprint(),
                || rest::send_request(core, &conn, &request, !anonymous),
            )
            .await?
        }
    };
    Ok(shape(answer))
}

/// An object as the server answered it; a list as a page (`{items, next, prev}`, the cursors from
/// the `Link` header); anything else under `value`, so every format can carry it.
fn shape(answer: Answer) -> Value {
    match answer.value {
        Value::Object(_) => answer.value,
        Value::Null => Value::Object(Map::new()),
        Value::Array(_) => rest::shape(super::Returns::Page(super::Entity::Any), answer),
        other => json!({ "value": other }),
    }
}
