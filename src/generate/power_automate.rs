//! The Power Automate / Logic Apps custom connector (`deploy/power-automate/`), generated from the
//! declarations: `apiDefinition.swagger.json` (Swagger 2.0, the only version those tools import),
//! `apiProperties.json` and the icon.
//!
//! What the platform needs and the OpenAPI 3 document does not give: one action per operation and
//! nothing else (no health or metrics actions), `x-ms-summary` on every parameter and
//! `x-ms-visibility` (required parameters `important`, the connection `advanced`), response schemas so
//! flows get fields to pick, ONE key scheme (`X-API-Key`, the platform's `api_key` connection
//! parameter), and the host as a connection parameter: the swagger's `host` is a placeholder the
//! `dynamichosturl` policy replaces with the connection's `sidecarUrl` (that policy drops `basePath`,
//! so paths are absolute and `basePath` is `/`).

use serde_json::{json, Map, Value};

use super::{field_title, group, File};
use crate::operations::{Operation, Param, ParamKind};
use crate::wire::entities::result_json_schema;

/// The swagger's `host`: never used, replaced per connection by the `dynamichosturl` policy.
pub const PLACEHOLDER_HOST: &str = "mastodon-sidecar.invalid";
/// Power Platform refuses longer summaries.
pub const SUMMARY_CHARS: usize = 80;

const ICON: &[u8] = include_bytes!("power_automate/icon.png");

pub fn files() -> Vec<File> {
    vec![
        File::text("apiDefinition.swagger.json", pretty(&swagger())),
        File::text("apiProperties.json", pretty(&properties())),
        File {
            path: "icon.png".into(),
            bytes: ICON.to_vec(),
        },
    ]
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The action's summary: the declaration's, within the platform's length, without a final period.
fn summary(op: Operation) -> String {
    let text: String = op.summary().chars().take(SUMMARY_CHARS).collect();
    text.trim_end_matches(['.', ' ']).to_owned()
}

/// What the action list shows first: the everyday operations.
fn visibility(op: Operation) -> Option<&'static str> {
    match op {
        Operation::PostStatus
        | Operation::VerifyCredentials
        | Operation::HomeTimeline
        | Operation::ListNotifications
        | Operation::Search => Some("important"),
        Operation::CallApi | Operation::Init | Operation::CreateApp | Operation::RevokeToken => {
            Some("advanced")
        }
        _ => None,
    }
}

pub fn swagger() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    let mut tags: Vec<&str> = Vec::new();
    for op in Operation::ALL {
        let name = op.name();
        let tag = group(op);
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        let mut action = json!({
            "operationId": name,
            "summary": summary(op),
            "description": format!("{}. Runs the sidecar's {name} operation.", summary(op)),
            "tags": [tag],
            "parameters": [
                {
                    "name": "body",
                    "in": "body",
                    "required": true,
                    "schema": {"$ref": format!("#/definitions/{name}Request")},
                },
                {
                    "name": "X-Correlation-ID",
                    "in": "header",
                    "type": "string",
                    "required": false,
                    "x-ms-summary": "Correlation Id",
                    "description": "The call's correlation id: a repeat of a write with the same id gets its first result instead of writing twice",
                    "x-ms-visibility": "advanced",
                },
            ],
            "responses": {
                "200": {
                    "description": "The result",
                    "schema": {"$ref": format!("#/definitions/{name}Response")},
                },
                "default": {
                    "description": "A classified error (application/problem+json): code, detail, correlation_id",
                    "schema": {"$ref": "#/definitions/Problem"},
                },
            },
        });
        if let Some(v) = visibility(op) {
            action["x-ms-visibility"] = json!(v);
        }
        paths.insert(format!("/v1/operations/{name}"), json!({ "post": action }));
        definitions.insert(format!("{name}Request"), object(op.parameters(), 0));
        let mut result = result_json_schema(op.returns());
        result["description"] = json!(format!("What {name} answers"));
        definitions.insert(format!("{name}Response"), result);
    }
    definitions.insert("Problem".into(), problem());
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Mastodon Sidecar",
            "description": "Post to Mastodon and the servers that speak its API, and read from them, through a mastodon-sidecar: statuses with media and polls, timelines, notifications, search, accounts and lists. The sidecar keeps the OAuth credentials; this connector holds only its URL and an API key.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "host": PLACEHOLDER_HOST,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "API Key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "security": [{"API Key": []}],
    })
}

/// A parameter struct as a body schema, every property titled for the designer.
fn object(params: &[Param], depth: usize) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in params {
        let mut schema = match p.kind {
            ParamKind::Text => json!({"type": "string"}),
            ParamKind::Binary => json!({"type": "string", "format": "byte"}),
            ParamKind::Bool => json!({"type": "boolean"}),
            ParamKind::Count => json!({"type": "integer", "format": "int64", "minimum": 0}),
            ParamKind::List => json!({"type": "array", "items": {"type": "string"}}),
            ParamKind::Object(fields) => object(fields, depth + 1),
            ParamKind::Objects(fields) => {
                json!({"type": "array", "items": object(fields, depth + 1)})
            }
        };
        schema["x-ms-summary"] = json!(field_title(p.name));
        schema["description"] = json!(p.description);
        if p.required {
            schema["x-ms-visibility"] = json!("important");
            required.push(p.name);
        } else if p.name == "connection" && depth == 0 {
            schema["x-ms-visibility"] = json!("advanced");
        }
        properties.insert(p.name.to_owned(), schema);
    }
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn problem() -> Value {
    let text = |summary: &str, description: &str| json!({"type": "string", "x-ms-summary": summary, "description": description});
    json!({
        "type": "object",
        "properties": {
            "type": text("Type", "urn:mastodon-sidecar:error:<code>"),
            "title": text("Title", "The code's title"),
            "status": {"type": "integer", "x-ms-summary": "Status", "description": "The HTTP status"},
            "detail": text("Detail", "What went wrong, and what to do"),
            "code": text("Code", "The error code (invalid_request, rate_limited, outcome_unknown, ...)"),
            "operation": text("Operation", "The operation that failed"),
            "correlation_id": text("Correlation Id", "The call's correlation id"),
            "upstream": {
                "type": "object",
                "x-ms-summary": "Upstream",
                "description": "What the server answered, when it answered",
                "properties": {
                    "status": {"type": "integer", "x-ms-summary": "Upstream Status", "description": "The server's HTTP status"},
                    "error": text("Upstream Error", "The server's error text"),
                },
            },
        },
    })
}

pub fn properties() -> Value {
    json!({
        "properties": {
            "connectionParameters": {
                "sidecarUrl": {
                    "type": "string",
                    "uiDefinition": {
                        "displayName": "Sidecar URL",
                        "description": "The sidecar's base URL as Power Platform reaches it, e.g. https://sidecar.example.com",
                        "tooltip": "HTTPS, through your gateway or ingress; no path",
                        "constraints": {"required": "true", "tabIndex": 1},
                    },
                },
                "api_key": {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "API key",
                        "description": "A key of the sidecar's [[security.api_keys]] (mastodon-sidecar hash-key prints its sha256)",
                        "tooltip": "Sent as X-API-Key",
                        "constraints": {"required": "true", "clearText": false, "tabIndex": 2},
                    },
                },
            },
            "iconBrandColor": "#6364FF",
            "capabilities": [],
            "publisher": "mastodon-sidecar",
            "stackOwner": "mastodon-sidecar",
            "policyTemplateInstances": [{
                "templateId": "dynamichosturl",
                "title": "The sidecar URL of the connection",
                "parameters": {
                    "x-ms-apimTemplateParameter.urlTemplate": "@connectionParameters('sidecarUrl')",
                },
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_fit_and_titles_are_set() {
        for op in Operation::ALL {
            let s = summary(op);
            assert!(!s.is_empty() && s.chars().count() <= SUMMARY_CHARS, "{op}");
            assert!(!s.ends_with('.'), "{op}");
        }
    }
}
