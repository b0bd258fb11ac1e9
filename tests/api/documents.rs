//! The two generated documents (contract, section 3): `GET /soap?wsdl`, the WSDL 1.1 of the SOAP
//! service, and `GET /openapi.json`, the OpenAPI description of the JSON API. Both list every
//! operation with exactly its parameters, need no API key, and describe what the sidecar really
//! accepts: a call shaped as the documents say is answered.

use std::collections::BTreeSet;

use mastodon_sidecar::error::ErrorKind;
use mastodon_sidecar::operations::{Operation, Param, ParamKind};
use mastodon_sidecar::security::ApiKeySettings;
use mastodon_sidecar::wire::entities::{self, Shape, Type};
use mastodon_sidecar::wire::xml::{self, Element};
use mastodon_standin::Options;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, Answer, TestApp};

const SIDECAR_NS: &str = "urn:mastodon-sidecar:v1";
const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

impl TestApp {
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.address));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("the sidecar answers");
        Answer {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            headers: response.headers().clone(),
            body: response.text().await.expect("a body"),
        }
    }
}

/// A sidecar that wants an API key for every operation call.
async fn keyed_app() -> TestApp {
    spawn_app_with(Options::default(), |s| {
        s.security.api_keys = vec![ApiKeySettings {
            name: "documents".into(),
            // The SHA-256 of a key nobody in these tests presents.
            sha256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into(),
            connections: vec!["*".into()],
            operations: vec!["*".into()],
            call_api: Vec::new(),
        }];
    })
    .await
}

fn children<'a>(e: &'a Element, ns: &'a str, local: &'a str) -> impl Iterator<Item = &'a Element> {
    e.children
        .iter()
        .filter(move |c| c.local == local && c.namespace.as_deref() == Some(ns))
}

fn named<'a>(e: &'a Element, ns: &'a str, local: &'a str, name: &str) -> &'a Element {
    children(e, ns, local)
        .find(|c| c.attribute(None, "name") == Some(name))
        .unwrap_or_else(|| panic!("no {local} named {name} in <{}>", e.local))
}

fn one<'a>(e: &'a Element, ns: &'a str, local: &'a str) -> &'a Element {
    children(e, ns, local)
        .next()
        .unwrap_or_else(|| panic!("no {local} in <{}>", e.local))
}

fn names(params: &[Param]) -> Vec<&'static str> {
    params.iter().map(|p| p.name).collect()
}

async fn wsdl(app: &TestApp) -> (String, Element) {
    let answer = app.get("/soap?wsdl").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "text/xml; charset=utf-8");
    let root = xml::parse(answer.body.as_bytes()).expect("a well-formed WSDL");
    (answer.body, root)
}

/// The element declarations a request element's anonymous type holds, checked against `params`.
fn assert_declares(element: &Element, params: &[Param], at: &str) {
    let complex = one(element, XSD_NS, "complexType");
    let sequence = one(complex, XSD_NS, "sequence");
    let declared: Vec<&Element> = children(sequence, XSD_NS, "element").collect();
    let declared_names: Vec<&str> = declared
        .iter()
        .map(|e| e.attribute(None, "name").unwrap())
        .collect();
    assert_eq!(declared_names, names(params), "{at}");
    for (decl, p) in declared.iter().zip(params) {
        let min = decl.attribute(None, "minOccurs");
        assert_eq!(
            min,
            Some(if p.required { "1" } else { "0" }),
            "{at}.{}",
            p.name
        );
        let max = decl.attribute(None, "maxOccurs");
        let ty = decl.attribute(None, "type");
        match p.kind {
            ParamKind::Text => assert_eq!((ty, max), (Some("xs:string"), Some("1"))),
            ParamKind::Binary => assert_eq!((ty, max), (Some("xs:base64Binary"), Some("1"))),
            ParamKind::Bool => assert_eq!((ty, max), (Some("xs:boolean"), Some("1"))),
            ParamKind::Count => assert_eq!((ty, max), (Some("xs:unsignedLong"), Some("1"))),
            ParamKind::List => assert_eq!((ty, max), (Some("xs:string"), Some("unbounded"))),
            ParamKind::Object(fields) => {
                assert_eq!((ty, max), (None, Some("1")), "{at}.{}", p.name);
                assert_declares(decl, fields, &format!("{at}.{}", p.name));
            }
            ParamKind::Objects(fields) => {
                assert_eq!((ty, max), (None, Some("unbounded")), "{at}.{}", p.name);
                assert_declares(decl, fields, &format!("{at}.{}", p.name));
            }
        }
    }
}

/// The named complexType of `shape` declares its fields, in order, typed, with `extra` last for an
/// open entity; the types it uses are declared too.
fn assert_type_declares(schema: &Element, shape: &Shape) {
    let complex = named(schema, XSD_NS, "complexType", shape.name);
    let sequence = one(complex, XSD_NS, "sequence");
    if shape.is_free() {
        let any = one(sequence, XSD_NS, "any");
        assert_eq!(any.attribute(None, "processContents"), Some("lax"));
        assert_eq!(complex.attribute(None, "mixed"), Some("true"));
        return;
    }
    let declared: Vec<&Element> = children(sequence, XSD_NS, "element").collect();
    let mut expected: Vec<&str> = shape.fields.iter().map(|f| f.name).collect();
    if shape.open {
        expected.push(entities::EXTRA);
    }
    let names: Vec<&str> = declared
        .iter()
        .map(|e| e.attribute(None, "name").unwrap())
        .collect();
    assert_eq!(names, expected, "{}", shape.name);
    for (decl, f) in declared.iter().zip(shape.fields) {
        let at = format!("{}.{}", shape.name, f.name);
        let min = if f.required && !f.many { "1" } else { "0" };
        assert_eq!(decl.attribute(None, "minOccurs"), Some(min), "{at}");
        let max = if f.many { "unbounded" } else { "1" };
        assert_eq!(decl.attribute(None, "maxOccurs"), Some(max), "{at}");
        let ty = decl.attribute(None, "type").unwrap();
        match f.ty {
            Type::Object(inner) => {
                assert_eq!(ty, format!("tns:{}", inner.name), "{at}");
                named(schema, XSD_NS, "complexType", inner.name);
            }
            Type::Text | Type::Scalar => assert_eq!(ty, "xs:string", "{at}"),
            Type::Integer => assert_eq!(ty, "xs:long", "{at}"),
            Type::Number => assert_eq!(ty, "xs:double", "{at}"),
            Type::Boolean => assert_eq!(ty, "xs:boolean", "{at}"),
            Type::DateTime => assert_eq!(ty, "xs:dateTime", "{at}"),
        }
    }
}

#[tokio::test]
async fn the_wsdl_is_served_for_wsdl_in_any_case_without_a_key() {
    let app = keyed_app().await;
    for query in ["wsdl", "WSDL", "Wsdl=", "wsdl=1"] {
        let answer = app.get(&format!("/soap?{query}")).await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        assert_eq!(answer.content_type, "text/xml; charset=utf-8", "{query}");
        xml::parse(answer.body.as_bytes()).expect("well-formed");
    }
    // The operations themselves still want one.
    let refused = app
        .call(
            crate::helpers::Format::Soap11,
            "init",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(refused.code(), "unauthenticated");
}

#[tokio::test]
async fn any_other_get_of_soap_is_refused_as_before() {
    let app = spawn_app().await;
    for path in ["/soap", "/soap?wsdlx", "/soap?xsd=1"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 500, "{path}: a SOAP 1.1 Client fault");
        assert_eq!(answer.code(), "invalid_request", "{path}");
    }
}

#[tokio::test]
async fn the_wsdl_describes_every_operation_in_the_types_the_port_type_and_both_bindings() {
    let app = spawn_app().await;
    let (_, root) = wsdl(&app).await;
    assert_eq!(root.local, "definitions");
    assert_eq!(root.namespace.as_deref(), Some(WSDL_NS));
    assert_eq!(root.attribute(None, "targetNamespace"), Some(SIDECAR_NS));

    let types = one(&root, WSDL_NS, "types");
    let schema = one(types, XSD_NS, "schema");
    assert_eq!(schema.attribute(None, "targetNamespace"), Some(SIDECAR_NS));
    assert_eq!(
        schema.attribute(None, "elementFormDefault"),
        Some("unqualified")
    );
    let port_type = one(&root, WSDL_NS, "portType");
    let bindings: Vec<&Element> = children(&root, WSDL_NS, "binding").collect();
    assert_eq!(bindings.len(), 2);
    let binding_of = |ns: &str| {
        *bindings
            .iter()
            .find(|b| children(b, ns, "binding").next().is_some())
            .unwrap_or_else(|| panic!("no binding in {ns}"))
    };
    let soap11 = binding_of(WSDL_SOAP11_NS);
    let soap12 = binding_of(WSDL_SOAP12_NS);
    let port_type_ref = format!("tns:{}", port_type.attribute(None, "name").unwrap());
    for binding in [soap11, soap12] {
        assert_eq!(
            binding.attribute(None, "type"),
            Some(port_type_ref.as_str())
        );
    }
    for (binding, ns) in [(soap11, WSDL_SOAP11_NS), (soap12, WSDL_SOAP12_NS)] {
        let style = one(binding, ns, "binding");
        assert_eq!(style.attribute(None, "style"), Some("document"));
        assert_eq!(
            style.attribute(None, "transport"),
            Some("http://schemas.xmlsoap.org/soap/http")
        );
    }

    for op in Operation::ALL {
        let name = op.name();
        assert_declares(
            named(schema, XSD_NS, "element", name),
            op.parameters(),
            name,
        );
        // The result is typed: its entity's complexType, fields in the declared order.
        let response = named(schema, XSD_NS, "element", &format!("{name}Response"));
        let result = entities::result_shape(op.returns());
        assert_eq!(
            response.attribute(None, "type"),
            Some(format!("tns:{}", result.name).as_str()),
            "{name}"
        );
        assert_type_declares(schema, result);

        for (message, element) in [
            (format!("{name}Request"), format!("tns:{name}")),
            (format!("{name}Response"), format!("tns:{name}Response")),
        ] {
            let part = one(named(&root, WSDL_NS, "message", &message), WSDL_NS, "part");
            assert_eq!(part.attribute(None, "element"), Some(element.as_str()));
        }
        let abstract_op = named(port_type, WSDL_NS, "operation", name);
        assert_eq!(
            one(abstract_op, WSDL_NS, "input").attribute(None, "message"),
            Some(format!("tns:{name}Request").as_str())
        );
        assert_eq!(
            one(abstract_op, WSDL_NS, "output").attribute(None, "message"),
            Some(format!("tns:{name}Response").as_str())
        );
        // One declared fault per operation, whose detail is tns:error.
        let fault = one(abstract_op, WSDL_NS, "fault");
        assert_eq!(fault.attribute(None, "name"), Some("error"), "{name}");
        assert_eq!(
            fault.attribute(None, "message"),
            Some("tns:Fault"),
            "{name}"
        );
        for (binding, ns) in [(soap11, WSDL_SOAP11_NS), (soap12, WSDL_SOAP12_NS)] {
            let bound = named(binding, WSDL_NS, "operation", name);
            let soap_op = one(bound, ns, "operation");
            assert_eq!(
                soap_op.attribute(None, "soapAction"),
                Some(format!("urn:{name}").as_str())
            );
            for direction in ["input", "output"] {
                let body = one(one(bound, WSDL_NS, direction), ns, "body");
                assert_eq!(body.attribute(None, "use"), Some("literal"), "{name}");
            }
            let fault = one(bound, WSDL_NS, "fault");
            assert_eq!(fault.attribute(None, "name"), Some("error"), "{name}");
            let soap_fault = one(fault, ns, "fault");
            assert_eq!(soap_fault.attribute(None, "name"), Some("error"), "{name}");
            assert_eq!(soap_fault.attribute(None, "use"), Some("literal"), "{name}");
        }
    }
    // Nothing but the operations: no stray or duplicated declarations.
    let bound_names = |e: &Element| -> BTreeSet<String> {
        children(e, WSDL_NS, "operation")
            .map(|o| o.attribute(None, "name").unwrap().to_owned())
            .collect()
    };
    let all: BTreeSet<String> = Operation::ALL.iter().map(|o| o.name().into()).collect();
    for e in [port_type, soap11, soap12] {
        assert_eq!(bound_names(e), all);
        assert_eq!(children(e, WSDL_NS, "operation").count(), all.len());
    }

    let fault_part = one(named(&root, WSDL_NS, "message", "Fault"), WSDL_NS, "part");
    assert_eq!(fault_part.attribute(None, "element"), Some("tns:error"));
    let error = named(schema, XSD_NS, "element", "error");
    assert_eq!(error.attribute(None, "type"), Some("tns:Error"));
    let fields: Vec<&str> = children(
        one(
            named(schema, XSD_NS, "complexType", "Error"),
            XSD_NS,
            "sequence",
        ),
        XSD_NS,
        "element",
    )
    .map(|e| e.attribute(None, "name").unwrap())
    .collect();
    assert_eq!(
        fields,
        [
            "type",
            "title",
            "status",
            "detail",
            "code",
            "operation",
            "correlation_id",
            "upstream"
        ]
    );

    let service = one(&root, WSDL_NS, "service");
    let ports: Vec<&Element> = children(service, WSDL_NS, "port").collect();
    assert_eq!(ports.len(), 2);
    for (binding, ns) in [(soap11, WSDL_SOAP11_NS), (soap12, WSDL_SOAP12_NS)] {
        let binding_ref = format!("tns:{}", binding.attribute(None, "name").unwrap());
        let port = ports
            .iter()
            .find(|p| p.attribute(None, "binding") == Some(binding_ref.as_str()))
            .expect("a port per binding");
        let address = one(port, ns, "address");
        let expected = format!("{}/soap", app.address);
        assert_eq!(address.attribute(None, "location"), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn the_wsdl_address_is_the_url_the_request_came_to() {
    let app = spawn_app().await;
    let location = |answer: Answer| -> Vec<String> {
        let root = xml::parse(answer.body.as_bytes()).unwrap();
        let service = one(&root, WSDL_NS, "service");
        children(service, WSDL_NS, "port")
            .flat_map(|p| p.children.iter())
            .filter_map(|a| a.attribute(None, "location").map(str::to_owned))
            .collect()
    };
    let proxied = app
        .get_with(
            "/soap?wsdl",
            &[
                ("Host", "sidecar.example:8443"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(location(proxied), ["https://sidecar.example:8443/soap"; 2]);
    // A Host that is not a plain host name and port never reaches the document.
    let hostile = app.get_with("/soap?wsdl", &[("Host", "a\"><x y=\"")]).await;
    assert_eq!(location(hostile), ["http://127.0.0.1:8080/soap"; 2]);
    let odd_proto = app
        .get_with("/soap?wsdl", &[("X-Forwarded-Proto", "javascript")])
        .await;
    assert_eq!(
        location(odd_proto),
        [
            format!("{}/soap", app.address),
            format!("{}/soap", app.address)
        ]
    );
}

#[tokio::test]
async fn a_call_shaped_as_the_wsdl_says_is_answered_in_both_soap_versions() {
    let app = spawn_app().await;
    // What a client generated from the WSDL sends: the request element in the sidecar's namespace,
    // its parameters unqualified, the soapAction of the binding.
    let body = |env_ns: &str| {
        format!(
            r#"<e:Envelope xmlns:e="{env_ns}"><e:Body><tns:init xmlns:tns="{SIDECAR_NS}"><connection>main</connection></tns:init></e:Body></e:Envelope>"#
        )
    };
    let v11 = app
        .post_raw(
            "/soap",
            &[
                ("Content-Type", "text/xml; charset=utf-8"),
                ("SOAPAction", "\"urn:init\""),
            ],
            body("http://schemas.xmlsoap.org/soap/envelope/"),
        )
        .await;
    let v12 = app
        .post_raw(
            "/soap",
            &[(
                "Content-Type",
                "application/soap+xml; charset=utf-8; action=\"urn:init\"",
            )],
            body("http://www.w3.org/2003/05/soap-envelope"),
        )
        .await;
    for answer in [v11, v12] {
        assert_eq!(answer.status, 200, "{}", answer.body);
        let root = xml::parse(answer.body.as_bytes()).unwrap();
        let response = &root
            .children
            .iter()
            .find(|c| c.local == "Body")
            .unwrap()
            .children[0];
        // The element the WSDL declares as the output.
        assert_eq!(response.local, "initResponse");
        assert_eq!(response.namespace.as_deref(), Some(SIDECAR_NS));
    }
}

async fn openapi(app: &TestApp) -> Value {
    let answer = app.get("/openapi.json").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json");
    serde_json::from_str(&answer.body).expect("valid JSON")
}

/// Every `$ref` in `value`, as JSON pointers.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push(r.clone()),
                    _ => refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(r) = value.get("$ref").and_then(Value::as_str) {
        value = doc
            .pointer(r.strip_prefix('#').expect("a local reference"))
            .unwrap_or_else(|| panic!("{r} does not resolve"));
    }
    value
}

/// The properties of an object schema, checked against `params`.
fn assert_properties(doc: &Value, schema: &Value, params: &[Param], at: &str) {
    let schema = resolve(doc, schema);
    assert_eq!(schema["type"], "object", "{at}");
    assert_eq!(schema["additionalProperties"], false, "{at}");
    let properties = schema["properties"].as_object().expect("properties");
    let listed: Vec<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(listed, names(params), "{at}");
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    let declared: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default();
    assert_eq!(declared, required, "{at}");
    for p in params {
        let property = &properties[p.name];
        assert!(property["description"].is_string(), "{at}.{}", p.name);
        match p.kind {
            ParamKind::Text => assert_eq!(property["type"], "string"),
            ParamKind::Binary => {
                assert_eq!(property["type"], "string");
                assert_eq!(property["format"], "byte");
            }
            ParamKind::Bool => assert_eq!(property["type"], "boolean"),
            ParamKind::Count => assert_eq!(property["type"], "integer"),
            ParamKind::List => {
                assert_eq!(property["type"], "array");
                assert_eq!(property["items"]["type"], "string");
            }
            ParamKind::Object(fields) => {
                assert_properties(doc, property, fields, &format!("{at}.{}", p.name))
            }
            ParamKind::Objects(fields) => {
                assert_eq!(property["type"], "array");
                assert_properties(doc, &property["items"], fields, &format!("{at}.{}", p.name))
            }
        }
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_key_and_every_ref_resolves() {
    let app = keyed_app().await;
    let doc = openapi(&app).await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(doc["servers"][0]["url"], app.address.as_str());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > Operation::ALL.len());
    for r in found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["type"], "http");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["type"], "apiKey");
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            doc["paths"][path]["get"]["responses"]["200"].is_object(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_operation_its_parameters_and_its_errors() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    let operation_paths: BTreeSet<&str> = paths
        .keys()
        .filter(|p| p.starts_with("/v1/operations/"))
        .map(String::as_str)
        .collect();
    assert_eq!(operation_paths.len(), Operation::ALL.len());
    let mut operation_ids = BTreeSet::new();
    for op in Operation::ALL {
        let name = op.name();
        let post = &doc["paths"][format!("/v1/operations/{name}")]["post"];
        assert_eq!(post["operationId"], name);
        assert!(operation_ids.insert(name));
        assert_eq!(post["summary"], op.summary());
        assert_eq!(
            post["security"],
            serde_json::json!([{}, {"bearerAuth": []}, {"apiKey": []}])
        );
        let content = &post["requestBody"]["content"];
        assert_properties(
            &doc,
            &content["application/json"]["schema"],
            op.parameters(),
            name,
        );
        let xml_schema = resolve(&doc, &content["application/xml"]["schema"]);
        assert_properties(&doc, xml_schema, op.parameters(), name);
        assert_eq!(xml_schema["xml"]["name"], name);
        // Only uploadMedia takes multipart/form-data: its file as the binary part `file`, in place
        // of the base64 `data`, and its other parameters as text parts.
        let form = &content["multipart/form-data"]["schema"];
        if op == Operation::UploadMedia {
            assert_eq!(form["properties"]["file"]["format"], "binary", "{form}");
            assert_eq!(form["required"], serde_json::json!(["file"]), "{form}");
            assert!(form["properties"].get("data").is_none(), "{form}");
            for p in op.parameters().iter().filter(|p| p.name != "data") {
                assert!(
                    form["properties"].get(p.name).is_some(),
                    "{}: {form}",
                    p.name
                );
            }
        } else {
            assert!(form.is_null(), "{name}: no multipart body");
        }

        let responses = &post["responses"];
        for media in ["application/json", "application/xml"] {
            let ok = resolve(&doc, &responses["200"]["content"][media]["schema"]);
            assert_eq!(ok["type"], "object", "{name} {media}");
            // Named after the result's entity, whose fields it declares.
            let result = entities::result_shape(op.returns());
            let entity = resolve(&doc, &ok["allOf"][0]);
            assert_eq!(
                ok["allOf"][0]["$ref"],
                format!("#/components/schemas/{}", result.name),
                "{name}"
            );
            let declared: Vec<&str> = entity["properties"]
                .as_object()
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let expected: Vec<&str> = result.fields.iter().map(|f| f.name).collect();
            assert_eq!(declared, expected, "{name}");
            assert_eq!(entity["additionalProperties"], result.open, "{name}");
        }
        for kind in ErrorKind::ALL {
            let status = kind.http_status().to_string();
            let response = resolve(&doc, &responses[&status]);
            let problem = resolve(
                &doc,
                &response["content"]["application/problem+json"]["schema"],
            );
            let fields: Vec<&str> = problem["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} {status}: a Problem"))
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                [
                    "type",
                    "title",
                    "status",
                    "detail",
                    "code",
                    "operation",
                    "correlation_id",
                    "upstream"
                ]
            );
            assert!(
                problem["properties"]["code"]["enum"]
                    .as_array()
                    .unwrap()
                    .contains(&Value::from(kind.code())),
                "{kind}"
            );
            let upstream: Vec<&str> = problem["properties"]["upstream"]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(upstream, ["status", "error"]);
        }
    }
}

#[tokio::test]
async fn a_problem_the_sidecar_answers_fits_the_documented_problem_schema() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let problem = &doc["components"]["schemas"]["Problem"];
    let answer = app
        .post_raw(
            "/v1/operations/postStatus",
            &[("Content-Type", "application/json")],
            r#"{"not_a_parameter": 1}"#,
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.content_type, "application/problem+json");
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let documented: BTreeSet<&str> = problem["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for (field, value) in body.as_object().unwrap() {
        assert!(
            documented.contains(field.as_str()),
            "{field} is undocumented"
        );
        if !value.is_null() {
            let ty = &problem["properties"][field]["type"];
            let fits = match ty.as_str().unwrap() {
                "string" => value.is_string(),
                "integer" => value.is_u64(),
                "object" => value.is_object(),
                other => panic!("{other}"),
            };
            assert!(fits, "{field}: {value} is not {ty}");
        }
    }
    for required in problem["required"].as_array().unwrap() {
        assert!(body.get(required.as_str().unwrap()).is_some(), "{required}");
    }
}
