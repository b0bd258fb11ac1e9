//! The Power Automate / Logic Apps package (`deploy/power-automate/`) follows the rules the platform
//! checks on import that can be checked offline (Swagger 2.0 only; one action per operation and no
//! other; `x-ms-summary` and a description on every parameter; valid `x-ms-visibility`; summaries of at
//! most 80 characters without a final period; a response schema per action; one API-key scheme; the
//! host from a connection parameter through `dynamichosturl`; no construct Swagger 2.0 lacks). The
//! Swagger 2.0 validator from npm runs in `deploy/check-power-automate`.

use std::collections::BTreeSet;

use mastodon_sidecar::generate::power_automate::{
    properties, swagger, PLACEHOLDER_HOST, SUMMARY_CHARS,
};
use mastodon_sidecar::operations::Operation;
use serde_json::Value;

const VISIBILITY: [&str; 4] = ["important", "advanced", "internal", "none"];

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let name = reference
        .strip_prefix("#/definitions/")
        .unwrap_or_else(|| panic!("only local definitions: {reference}"));
    doc["definitions"]
        .get(name)
        .unwrap_or_else(|| panic!("{reference} resolves to nothing"))
}

/// Walks a schema: every property titled and described, nothing Swagger 2.0 lacks.
fn check_schema(doc: &Value, schema: &Value, at: &str, titled: bool, problems: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        check_schema(doc, resolve(doc, r), at, titled, problems);
        return;
    }
    for keyword in ["oneOf", "anyOf", "nullable", "const", "$schema"] {
        if schema.get(keyword).is_some() {
            problems.push(format!("{at}: `{keyword}` is not Swagger 2.0"));
        }
    }
    if let Some(v) = schema.get("x-ms-visibility").and_then(Value::as_str) {
        if !VISIBILITY.contains(&v) {
            problems.push(format!("{at}: x-ms-visibility {v:?}"));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let here = format!("{at}.{name}");
            if titled {
                for needed in ["x-ms-summary", "description"] {
                    if property
                        .get(needed)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        problems.push(format!("{here}: no {needed}"));
                    }
                }
            }
            check_schema(doc, property, &here, titled, problems);
        }
    }
    if let Some(items) = schema.get("items") {
        check_schema(doc, items, &format!("{at}[]"), titled, problems);
    }
}

#[test]
fn the_swagger_follows_the_platforms_offline_rules() {
    let doc = swagger();
    let mut problems = Vec::new();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["host"], PLACEHOLDER_HOST);
    assert_eq!(doc["basePath"], "/", "dynamichosturl drops basePath");
    let paths = doc["paths"].as_object().unwrap();
    let listed: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let declared: BTreeSet<String> = Operation::ALL
        .iter()
        .map(|op| format!("/v1/operations/{}", op.name()))
        .collect();
    assert_eq!(
        listed,
        declared.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "one action per operation and nothing else (no health or metrics actions)"
    );
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(methods, ["post"], "{path}");
        let action = &item["post"];
        let id = action["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "{id} twice");
        let summary = action["summary"].as_str().unwrap_or_default();
        if summary.is_empty() || summary.chars().count() > SUMMARY_CHARS || summary.ends_with('.') {
            problems.push(format!("{id}: summary {summary:?}"));
        }
        let description = action["description"].as_str().unwrap_or_default();
        if description.is_empty() || description == summary {
            problems.push(format!("{id}: description {description:?}"));
        }
        if let Some(v) = action.get("x-ms-visibility").and_then(Value::as_str) {
            if !VISIBILITY.contains(&v) {
                problems.push(format!("{id}: x-ms-visibility {v:?}"));
            }
        }
        for p in action["parameters"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "body" {
                check_schema(
                    &doc,
                    &p["schema"],
                    &format!("{id}.body"),
                    true,
                    &mut problems,
                );
            } else {
                for needed in ["x-ms-summary", "description", "type"] {
                    if p.get(needed).is_none() {
                        problems.push(format!("{id}.{name}: no {needed}"));
                    }
                }
            }
        }
        let ok = &action["responses"]["200"]["schema"];
        assert!(ok.get("$ref").is_some(), "{id}: a response schema");
        let result = resolve(&doc, ok["$ref"].as_str().unwrap());
        if op_is_typed(id) && result.get("properties").is_none() && result.get("items").is_none() {
            problems.push(format!("{id}: the response schema names no fields"));
        }
        check_schema(&doc, ok, &format!("{id}.result"), false, &mut problems);
    }
    let schemes = doc["securityDefinitions"].as_object().unwrap();
    assert_eq!(schemes.len(), 1, "one key scheme");
    let scheme = schemes.values().next().unwrap();
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-API-Key");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every operation answers a named entity but `callApi` (whatever the server says) and the ones
/// Mastodon answers `{}`.
fn op_is_typed(id: &str) -> bool {
    use mastodon_sidecar::operations::{Entity, Returns};
    let op = Operation::from_name(id).expect("a declared operation");
    !matches!(
        op.returns(),
        Returns::One(Entity::Any) | Returns::One(Entity::Empty)
    )
}

#[test]
fn the_properties_take_the_host_and_the_key_from_the_connection() {
    let props = properties();
    let parameters = props["properties"]["connectionParameters"]
        .as_object()
        .unwrap();
    assert_eq!(parameters["api_key"]["type"], "securestring");
    assert_eq!(parameters["sidecarUrl"]["type"], "string");
    for (name, p) in parameters {
        assert!(p["uiDefinition"]["displayName"].is_string(), "{name}");
        assert!(p["uiDefinition"]["description"].is_string(), "{name}");
    }
    let policies = props["properties"]["policyTemplateInstances"]
        .as_array()
        .unwrap();
    let host = policies
        .iter()
        .find(|p| p["templateId"] == "dynamichosturl")
        .expect("the host from the connection");
    let template = host["parameters"]["x-ms-apimTemplateParameter.urlTemplate"]
        .as_str()
        .unwrap();
    let named = template
        .split("@connectionParameters('")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a connection parameter");
    assert!(parameters.contains_key(named), "{named}");
}
