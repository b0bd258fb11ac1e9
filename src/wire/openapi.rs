//! The OpenAPI 3.0.3 description of the JSON API (`GET /openapi.json`), generated from
//! [`Operation::ALL`], each operation's [`Operation::parameters`] and the error table
//! ([`ErrorKind::ALL`]), so it cannot drift from what the sidecar accepts and answers.
//!
//! One `POST /v1/operations/{name}` per operation: its parameters as a JSON object (the same schema,
//! named after the operation, describes the plain-XML body), its result (`{name}Response`: the entity,
//! page or list of [`super::entities`], a component per entity, fields that may be absent or null
//! `nullable`), and the problem+json body for every error status. In XML a result's fields come in the
//! declared order, lists as repeated elements, and an entity's undeclared fields inside `<extra>`.
//! Nothing here knows HTTP: the caller passes the server URL.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::entities;
use crate::error::ErrorKind;
use crate::operations::{Operation, Param, ParamKind};

/// The description, with `server` (the sidecar's base URL) as its one server.
pub fn document(server: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for op in Operation::ALL {
        let name = op.name();
        paths.insert(format!("/v1/operations/{name}"), operation_path(op));
        let mut request = object_schema(op.parameters());
        request["xml"] = json!({"name": name});
        schemas.insert(format!("{name}Request"), request);
        let result = entities::result_shape(op.returns());
        schemas.insert(
            format!("{name}Response"),
            json!({
                "type": "object",
                "description": format!("The result: {}", result.description),
                "allOf": [{"$ref": format!("#/components/schemas/{}", result.name)}],
                "xml": {"name": format!("{name}Response")},
            }),
        );
    }
    // The entities, declared once in `entities` (the WSDL's types are made from the same).
    // (`Problem` below is the errors' schema, with the codes listed.)
    for (name, schema) in entities::openapi_components(Operation::ALL.iter().map(|op| op.returns()))
    {
        if name != entities::ERROR.name {
            schemas.entry(name).or_insert(schema);
        }
    }
    schemas.insert("Problem".into(), problem_schema());
    paths.insert(
        "/healthz".into(),
        probe("Answers 200 while the process runs", &[200]),
    );
    paths.insert(
        "/readyz".into(),
        probe(
            "Answers 200 when the configuration is loaded and the store is open, 503 while draining",
            &[200, 503],
        ),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {
            "operationId": "metrics",
            "summary": "Prometheus text exposition",
            "tags": ["service"],
            "security": [],
            "responses": {"200": {
                "description": "The metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }},
        }}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mastodon-sidecar",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Mastodon connector operations over JSON (and plain XML with the same \
                parameters). The same operations are offered over SOAP 1.1 and 1.2 at /soap, described by \
                /soap?wsdl. An API key is needed only when the sidecar is configured with keys.",
        },
        "servers": [{"url": server}],
        "tags": [
            {"name": "operations", "description": "The connector operations"},
            {"name": "service", "description": "Health and metrics (no API key)"},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "parameters": {"CorrelationId": {
                "name": "X-Correlation-ID",
                "in": "header",
                "required": false,
                "description": "The correlation id of the call (also read from activityid and X-Request-ID); echoed back and in every error",
                "schema": {"type": "string"},
            }},
            "headers": {"CorrelationId": {
                "description": "The call's correlation id",
                "schema": {"type": "string"},
            }},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key as a bearer token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    })
}

fn operation_path(op: Operation) -> Value {
    let name = op.name();
    let request = json!({"$ref": format!("#/components/schemas/{name}Request")});
    let result = json!({"$ref": format!("#/components/schemas/{name}Response")});
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The result",
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationId"}},
            "content": {
                "application/json": {"schema": result},
                "application/xml": {"schema": result},
            },
        }),
    );
    for status in error_statuses().into_keys() {
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/Error{status}")}),
        );
    }
    responses.insert(
        "default".into(),
        json!({"$ref": "#/components/responses/Error"}),
    );
    let mut content = json!({
        "application/json": {"schema": request},
        "application/xml": {"schema": request},
    });
    if op == Operation::UploadMedia {
        // The REST path also takes the file the way curl -F and most HTTP tools send one: the part
        // `file` is the file itself (no base64), every other part a text parameter (wire/form_data.rs).
        content["multipart/form-data"] = upload_form_schema();
    }
    json!({"post": {
        "operationId": name,
        "summary": op.summary(),
        "tags": ["operations"],
        // Keys are optional: a sidecar configured without them takes calls without one.
        "security": [{}, {"bearerAuth": []}, {"apiKey": []}],
        "parameters": [{"$ref": "#/components/parameters/CorrelationId"}],
        "requestBody": {
            "required": false,
            "content": content,
        },
        "responses": responses,
    }})
}

/// uploadMedia's `multipart/form-data` body: its parameters as text parts, with `data` (base64) replaced
/// by the part `file`, sent as binary.
fn upload_form_schema() -> Value {
    let mut properties = Map::new();
    properties.insert(
        "file".into(),
        json!({"type": "string", "format": "binary", "description": "The file itself (its part's filename and Content-Type are used when file_name and content_type are not given)"}),
    );
    for p in Operation::UploadMedia.parameters() {
        if p.name != "data" {
            properties.insert(p.name.to_owned(), param_schema(p));
        }
    }
    json!({
        "schema": {
            "type": "object",
            "additionalProperties": false,
            "required": ["file"],
            "properties": properties,
        },
        "encoding": {"file": {"contentType": "application/octet-stream, image/*, video/*, audio/*"}},
    })
}

fn object_schema(params: &[Param]) -> Value {
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| (p.name.to_owned(), param_schema(p)))
        .collect();
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn param_schema(p: &Param) -> Value {
    let mut schema = match p.kind {
        ParamKind::Text => json!({"type": "string"}),
        ParamKind::Binary => json!({"type": "string", "format": "byte"}),
        ParamKind::Bool => json!({"type": "boolean"}),
        ParamKind::Count => json!({"type": "integer", "minimum": 0}),
        ParamKind::List => json!({"type": "array", "items": {"type": "string"}}),
        ParamKind::Object(fields) => object_schema(fields),
        ParamKind::Objects(fields) => json!({"type": "array", "items": object_schema(fields)}),
    };
    schema["description"] = json!(p.description);
    schema
}

/// Every status an error can have, with the codes that answer it.
fn error_statuses() -> BTreeMap<u16, Vec<&'static str>> {
    let mut statuses: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for kind in ErrorKind::ALL {
        statuses
            .entry(kind.http_status())
            .or_default()
            .push(kind.code());
    }
    // `upstream_rejected` passes Mastodon's own 4xx through (`Error::http_status`); these are the
    // ones the contract names, and `default` covers any other.
    for status in [401, 403, 404] {
        statuses
            .entry(status)
            .or_default()
            .push(ErrorKind::UpstreamRejected.code());
    }
    statuses
}

fn error_responses() -> Value {
    let content = json!({
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
        "application/xml": {"schema": {"$ref": "#/components/schemas/Problem"}},
    });
    let mut responses = Map::new();
    for (status, codes) in error_statuses() {
        let mut response = json!({
            "description": format!("An error: {}", codes.join(", ")),
            "headers": {"X-Correlation-ID": {"$ref": "#/components/headers/CorrelationId"}},
            "content": content,
        });
        match status {
            401 => {
                response["headers"]["WWW-Authenticate"] =
                    json!({"description": "How to authenticate", "schema": {"type": "string"}})
            }
            429 => {
                response["headers"]["Retry-After"] = json!({"description": "Seconds until Mastodon takes calls again", "schema": {"type": "integer"}})
            }
            _ => {}
        }
        responses.insert(format!("Error{status}"), response);
    }
    responses.insert(
        "Error".into(),
        json!({"description": "Any other error (Mastodon's own 4xx status for upstream_rejected)", "content": content}),
    );
    Value::Object(responses)
}

fn problem_schema() -> Value {
    let codes: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
    json!({
        "type": "object",
        "description": "An error (RFC 9457 problem details); in XML the element error with the same fields",
        "required": ["type", "title", "status", "detail", "code", "correlation_id"],
        "properties": {
            "type": {"type": "string", "description": "urn:mastodon-sidecar:error:<code>"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "What went wrong and what to do"},
            "code": {"type": "string", "enum": codes},
            "operation": {"type": "string", "nullable": true},
            "correlation_id": {"type": "string"},
            "upstream": {
                "type": "object",
                "description": "What Mastodon answered, where it answered",
                "required": ["status"],
                "properties": {
                    "status": {"type": "integer"},
                    "error": {"type": "string", "nullable": true},
                },
            },
        },
        "xml": {"name": "error"},
    })
}

fn probe(summary: &str, statuses: &[u16]) -> Value {
    let responses: Map<String, Value> = statuses
        .iter()
        .map(|status| {
            (
                status.to_string(),
                json!({
                    "description": if *status == 200 { "Up" } else { "Not ready" },
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"status": {"type": "string"}},
                    }}},
                }),
            )
        })
        .collect();
    json!({"get": {"summary": summary, "tags": ["service"], "security": [], "responses": responses}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_status_has_a_response_and_the_codes_that_answer_it() {
        let doc = document("http://127.0.0.1:8080");
        for kind in ErrorKind::ALL {
            let response = &doc["components"]["responses"][format!("Error{}", kind.http_status())];
            let description = response["description"].as_str().unwrap();
            assert!(description.contains(kind.code()), "{kind}: {description}");
        }
        assert!(doc["components"]["responses"]["Error429"]["headers"]["Retry-After"].is_object());
    }

    #[test]
    fn the_poll_nests_and_lists_are_arrays() {
        let doc = document("http://127.0.0.1:8080");
        let post = &doc["components"]["schemas"]["postStatusRequest"];
        assert_eq!(post["xml"]["name"], "postStatus");
        assert_eq!(post["properties"]["media_ids"]["type"], "array");
        let poll = &post["properties"]["poll"];
        assert_eq!(poll["properties"]["expires_in"]["type"], "integer");
        assert_eq!(poll["properties"]["multiple"]["type"], "boolean");
        assert_eq!(poll["additionalProperties"], false);
    }
}
