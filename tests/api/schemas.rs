//! The documents describe what is really sent: answers of every entity the stand-in can produce, and
//! faults, are validated against the schemas as served. SOAP 1.1 and 1.2 results and fault details,
//! and the plain-XML bodies, against the WSDL's own `xs:schema` (fetched from `/soap?wsdl`) with
//! `xmllint --schema` (Debian's libxml2-utils, which .ci/run installs); JSON answers against the
//! OpenAPI response schemas of `/openapi.json` (the `jsonschema` crate), and against the
//! self-contained schemas of `entities::result_json_schema`. A drift between an encoder and its
//! schema fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use mastodon_sidecar::operations::Operation;
use mastodon_sidecar::wire::entities;
use mastodon_sidecar::wire::xml::{self, Element};
use mastodon_standin::{Options, SeedStatus, ACCOUNT_ID};
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_app_with, Answer, Format, TestApp, FORMATS};

const SIDECAR_NS: &str = "urn:mastodon-sidecar:v1";

/// Whether xmllint is here; without it the XML half is skipped, except in CI where it must run.
fn xmllint() -> bool {
    let found = Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "xmllint is missing: install Debian's libxml2-utils (.ci/run does)"
        );
        eprintln!("xmllint is missing (Debian's libxml2-utils): the XML validation is skipped");
    }
    found
}

async fn app() -> TestApp {
    let app = spawn_app_with(Options::default(), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

/// One answer to check, and what it answered.
struct Case {
    operation: Operation,
    format: Format,
    answer: Answer,
}

/// The element as text, with every namespace declared where it is used (so it stands alone).
fn serialize(e: &Element, out: &mut String, namespace_of_root: Option<&str>) {
    let ns = namespace_of_root.or(e.namespace.as_deref());
    match ns {
        Some(ns) => out.push_str(&format!("<m:{} xmlns:m=\"{ns}\">", e.local)),
        None => out.push_str(&format!("<{}>", e.local)),
    }
    xml::escape_into(out, &e.text);
    for c in &e.children {
        serialize(c, out, None);
    }
    match ns {
        Some(_) => out.push_str(&format!("</m:{}>", e.local)),
        None => out.push_str(&format!("</{}>", e.local)),
    }
}

fn standalone(e: &Element, namespace: Option<&str>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    serialize(e, &mut out, namespace);
    out
}

fn child<'a>(e: &'a Element, local: &str) -> &'a Element {
    e.children
        .iter()
        .find(|c| c.local == local)
        .unwrap_or_else(|| panic!("no <{local}> in <{}>", e.local))
}

/// The document to validate: a SOAP Body's element (a result, or the one entry of a fault's
/// detail), or a plain-XML body put in the sidecar's namespace (its content is the SOAP one's).
fn instance(case: &Case) -> String {
    let root = xml::parse(case.answer.body.as_bytes()).expect("well-formed XML");
    let name = case.operation.name();
    match case.format {
        Format::Soap11 | Format::Soap12 => {
            let payload = &child(&root, "Body").children[0];
            if payload.local == "Fault" {
                let detail = payload
                    .children
                    .iter()
                    .find(|c| c.local == "detail" || c.local == "Detail")
                    .expect("a fault detail");
                assert_eq!(detail.children.len(), 1, "{}", case.answer.body);
                let error = &detail.children[0];
                assert_eq!(error.namespace.as_deref(), Some(SIDECAR_NS));
                standalone(error, None)
            } else {
                assert_eq!(payload.local, format!("{name}Response"));
                assert_eq!(payload.namespace.as_deref(), Some(SIDECAR_NS));
                standalone(payload, None)
            }
        }
        Format::Xml => {
            assert_eq!(root.namespace, None);
            if case.answer.status == 200 {
                assert_eq!(root.local, format!("{name}Response"));
            } else {
                assert_eq!(root.local, "error");
            }
            standalone(&root, Some(SIDECAR_NS))
        }
        Format::Json => unreachable!(),
    }
}

/// Runs xmllint over `documents` at once; answers the names of those that do not validate, with
/// what it said.
fn invalid(schema: &Path, dir: &Path, documents: &[(String, String)]) -> Vec<String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for (n, (_, text)) in documents.iter().enumerate() {
        let path = dir.join(format!("doc{n}.xml"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .args(&files)
        .output()
        .expect("xmllint runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !said.contains("WXS schema") || !said.contains("failed to compile"),
        "the WSDL's schema does not compile: {said}"
    );
    documents
        .iter()
        .zip(&files)
        .filter(|(_, f)| !said.contains(&format!("{} validates", f.display())))
        .map(|((label, text), f)| {
            let why: Vec<&str> = said
                .lines()
                .filter(|l| l.starts_with(&f.display().to_string()))
                .collect();
            format!("{label}: {why:?}\n{text}")
        })
        .collect()
}

/// The WSDL's `xs:schema`, as served, as a schema document of its own.
async fn schema_file(app: &TestApp, dir: &Path) -> PathBuf {
    let wsdl = app.get("/soap?wsdl").await.body;
    let start = wsdl.find("<xs:schema").expect("a schema in the WSDL");
    let end = wsdl.find("</xs:schema>").expect("the schema ends") + "</xs:schema>".len();
    let path = dir.join("sidecar.xsd");
    std::fs::write(
        &path,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
            &wsdl[start..end]
        ),
    )
    .unwrap();
    path
}

/// OpenAPI 3.0's `nullable` as JSON Schema says it: null, or what the schema says.
fn nullable_as_json_schema(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                nullable_as_json_schema(v);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                let rest = Value::Object(std::mem::take(map));
                map.insert("anyOf".into(), json!([{"type": "null"}, rest]));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_as_json_schema),
        _ => {}
    }
}

/// A validator of `{operation}Response` (or `Problem`) as `/openapi.json` declares it.
fn openapi_validator(doc: &Value, component: &str) -> jsonschema::Validator {
    let mut components = doc["components"].clone();
    nullable_as_json_schema(&mut components);
    let schema = json!({
        "$ref": format!("#/components/schemas/{component}"),
        "components": components,
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{component}: {e}"))
}

/// `value` without its nulls: what the Portable schemas (nullable fields simply optional) take.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn check_json(doc: &Value, case: &Case) -> Vec<String> {
    let body: Value = serde_json::from_str(&case.answer.body).expect("a JSON body");
    let name = case.operation.name();
    let mut problems = Vec::new();
    let (component, portable) = if case.answer.status == 200 {
        (
            format!("{name}Response"),
            Some(entities::result_json_schema(case.operation.returns())),
        )
    } else {
        ("Problem".to_owned(), None)
    };
    let validator = openapi_validator(doc, &component);
    for error in validator.iter_errors(&body) {
        let mut said = error.to_string();
        said.truncate(300);
        problems.push(format!(
            "{name} JSON against {component}: {said} at {}",
            error.instance_path()
        ));
    }
    if let Some(portable) = portable {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&portable)
            .expect("a valid portable schema");
        for error in validator.iter_errors(&without_nulls(&body)) {
            let mut said = error.to_string();
            said.truncate(300);
            problems.push(format!(
                "{name} JSON against the portable schema: {said} at {}",
                error.instance_path()
            ));
        }
    }
    problems
}

impl TestApp {
    /// Calls `operation` in every format, expecting 200; answers the four cases.
    async fn each_format(&self, operation: &str, params: Value) -> Vec<Case> {
        let mut cases = Vec::new();
        for format in FORMATS {
            let answer = self.call(format, operation, params.clone()).await;
            assert_eq!(
                answer.status, 200,
                "{operation} {format:?}: {}",
                answer.body
            );
            cases.push(Case {
                operation: Operation::from_name(operation).unwrap(),
                format,
                answer,
            });
        }
        cases
    }
}

/// Every kind of result the stand-in can produce, in every format, and several faults.
async fn collect(app: &TestApp) -> Vec<Case> {
    let mut cases = Vec::new();
    let alice = app.standin.seed_account("alice");
    let remote = app.standin.seed_account("bob@remote.example");
    app.standin.seed_follow(&alice, ACCOUNT_ID);
    app.standin.seed_follow(&remote, ACCOUNT_ID);
    let theirs = app.standin.seed_status_with(
        &alice,
        SeedStatus {
            text: "hello @sidecar #schemas https://example.com/page".into(),
            spoiler_text: "cw".into(),
            with_media: true,
            poll: Some((vec!["yes".into(), "no".into()], 3600, false)),
            ..SeedStatus::default()
        },
    );
    app.standin.seed_favourite(&alice, &theirs);
    let boost = app.standin.seed_reblog(&alice, &theirs).expect("a boost");
    let _ = boost;
    let list = app.standin.seed_list("friends", &[&alice]);

    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "a status with #tags", "media_ids": ["7"], "language": "en"}),
        )
        .await
        .value();
    let mine = posted["id"].as_str().unwrap().to_owned();
    let poll_status = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "vote", "poll": {"options": ["a", "b"], "expires_in": 600}}),
        )
        .await
        .value();
    let poll = poll_status["poll"]["id"].as_str().unwrap().to_owned();
    app.call(Format::Json, "reblogStatus", json!({"id": theirs}))
        .await;

    let later = "2099-01-01T00:00:00.000Z";
    let one = json!({});
    for (op, params) in [
        ("init", one.clone()),
        ("createApp", one.clone()),
        ("authorizeUrl", one.clone()),
        ("verifyCredentials", one.clone()),
        (
            "postStatus",
            json!({"status": "schema check", "spoiler_text": "cw", "poll": {"options": ["x", "y"], "expires_in": 600, "multiple": true}}),
        ),
        (
            "postStatus",
            json!({"status": "later", "scheduled_at": later, "media_ids": ["8"]}),
        ),
        ("getStatus", json!({"id": theirs})),
        ("getStatus", json!({"id": mine})),
        ("getStatusContext", json!({"id": theirs})),
        ("favouriteStatus", json!({"id": theirs})),
        ("bookmarkStatus", json!({"id": theirs})),
        ("pinStatus", json!({"id": mine})),
        ("editStatus", json!({"id": mine, "status": "edited"})),
        ("listScheduledStatuses", one.clone()),
        ("homeTimeline", json!({"limit": 5})),
        ("publicTimeline", json!({"limit": 5})),
        ("hashtagTimeline", json!({"hashtag": "schemas"})),
        ("listTimeline", json!({"list_id": list})),
        ("listNotifications", json!({"limit": 10})),
        ("search", json!({"q": "alice"})),
        ("search", json!({"q": "schemas"})),
        ("lookupAccount", json!({"acct": "alice"})),
        ("getAccount", json!({"id": remote})),
        ("getAccountStatuses", json!({"id": alice})),
        ("getFollowers", json!({"id": ACCOUNT_ID, "limit": 1})),
        ("getFollowing", json!({"id": ACCOUNT_ID})),
        ("getRelationships", json!({"id": [alice, remote]})),
        (
            "followAccount",
            json!({"id": alice, "languages": ["en", "de"]}),
        ),
        ("getPoll", json!({"id": poll})),
        ("getLists", one.clone()),
        ("getList", json!({"id": list})),
        ("getListAccounts", json!({"id": list})),
        ("createList", json!({"title": "new"})),
        ("getInstance", one.clone()),
    ] {
        cases.extend(app.each_format(op, params).await);
    }

    // Entities the calls above made, read back.
    let scheduled = app
        .call(Format::Json, "listScheduledStatuses", json!({}))
        .await
        .value();
    let scheduled = scheduled["items"][0]["id"].as_str().unwrap().to_owned();
    cases.extend(
        app.each_format("getScheduledStatus", json!({"id": scheduled}))
            .await,
    );
    let notifications = app
        .call(Format::Json, "listNotifications", json!({}))
        .await
        .value();
    let notification = notifications["items"][0]["id"].as_str().unwrap().to_owned();
    cases.extend(
        app.each_format("getNotification", json!({"id": notification}))
            .await,
    );
    for format in FORMATS {
        // What is dismissed or cancelled is gone: one of each per format.
        let notification = app
            .standin
            .seed_notification("favourite", &alice, Some(&mine));
        let answer = app
            .call(format, "dismissNotification", json!({"id": notification}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        cases.push(Case {
            operation: Operation::DismissNotification,
            format,
            answer,
        });
        let scheduled = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": "cancel me", "scheduled_at": later}),
            )
            .await
            .value()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = app
            .call(format, "cancelScheduledStatus", json!({"id": scheduled}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        cases.push(Case {
            operation: Operation::CancelScheduledStatus,
            format,
            answer,
        });
    }
    for format in FORMATS {
        // Each format deletes a status of its own; the answer carries its source text.
        let id = app
            .call(Format::Json, "postStatus", json!({"status": "to delete"}))
            .await
            .value()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let answer = app.call(format, "deleteStatus", json!({"id": id})).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        cases.push(Case {
            operation: Operation::DeleteStatus,
            format,
            answer,
        });
    }

    // Faults: a missing parameter, a server's 404 (upstream), content refused, a bad parameter
    // type, an unknown connection.
    for (op, params) in [
        ("getStatus", json!({})),
        ("getStatus", json!({"id": "does-not-exist"})),
        ("postStatus", json!({"status": "x".repeat(5000)})),
        ("getFollowers", json!({"id": ACCOUNT_ID, "limit": "many"})),
        ("init", json!({"connection": "nowhere"})),
    ] {
        for format in FORMATS {
            let answer = app.call(format, op, params.clone()).await;
            assert!(answer.status >= 400, "{op} {format:?}: {}", answer.body);
            cases.push(Case {
                operation: Operation::from_name(op).unwrap(),
                format,
                answer,
            });
        }
    }
    cases
}

/// The OAuth flow's own results, getToken and revokeToken, in every format, on a connection without
/// a configured token; and the fault of a call that needs one.
async fn collect_oauth(app: &TestApp) -> Vec<Case> {
    let mut cases = Vec::new();
    for format in FORMATS {
        let answer = app.call(format, "verifyCredentials", json!({})).await;
        assert_eq!(answer.code(), "credentials_missing", "{}", answer.body);
        cases.push(Case {
            operation: Operation::VerifyCredentials,
            format,
            answer,
        });
    }
    let registered = app.call(Format::Json, "createApp", json!({})).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    for format in FORMATS {
        let auth = app.call(format, "authorizeUrl", json!({})).await.value();
        let code = app.approve(auth["url"].as_str().unwrap()).await;
        let token = app
            .call(
                format,
                "getToken",
                json!({"code": code, "state": auth["state"]}),
            )
            .await;
        assert_eq!(token.status, 200, "{format:?}: {}", token.body);
        cases.push(Case {
            operation: Operation::GetToken,
            format,
            answer: token,
        });
        let revoked = app.call(format, "revokeToken", json!({})).await;
        assert_eq!(revoked.status, 200, "{format:?}: {}", revoked.body);
        cases.push(Case {
            operation: Operation::RevokeToken,
            format,
            answer: revoked,
        });
    }

    cases
}

#[tokio::test]
async fn real_answers_and_faults_validate_against_the_documents_as_served() {
    let app = app().await;
    let mut cases = collect(&app).await;
    let oauth = crate::helpers::spawn_app().await;
    cases.extend(collect_oauth(&oauth).await);
    let faults = cases.iter().filter(|c| c.answer.status >= 400).count();
    assert!(faults >= 24, "{faults}");
    // Every entity kind answered at least once.
    let mut kinds: Vec<&str> = cases
        .iter()
        .filter(|c| c.answer.status == 200)
        .map(|c| entities::result_shape(c.operation.returns()).name)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in [
        "Account",
        "Status",
        "StatusOrScheduledStatus",
        "ScheduledStatus",
        "ScheduledStatusPage",
        "Context",
        "Notification",
        "NotificationPage",
        "Poll",
        "List",
        "ListList",
        "Relationship",
        "RelationshipList",
        "Instance",
        "Search",
        "Application",
        "ConnectionReport",
        "AuthorizationUrl",
        "TokenReport",
        "Revocation",
        "Empty",
        "StatusPage",
        "AccountPage",
    ] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }

    // JSON against the OpenAPI document as served, and the portable schemas.
    let doc: Value = serde_json::from_str(&app.get("/openapi.json").await.body).unwrap();
    let problems: Vec<String> = cases
        .iter()
        .filter(|c| c.format == Format::Json)
        .flat_map(|c| check_json(&doc, c))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // XML against the WSDL's schema as served.
    if !xmllint() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(&app, dir.path()).await;
    let documents: Vec<(String, String)> = cases
        .iter()
        .filter(|c| c.format != Format::Json)
        .map(|c| {
            (
                format!("{} {:?} {}", c.operation.name(), c.format, c.answer.status),
                instance(c),
            )
        })
        .collect();
    assert!(documents.len() > 120, "{}", documents.len());
    let bad = invalid(&schema, dir.path(), &documents);
    assert!(
        bad.is_empty(),
        "{} invalid:\n{}",
        bad.len(),
        bad.join("\n\n")
    );
    println!(
        "{} XML documents ({} faults) and {} JSON answers validated",
        documents.len(),
        faults / 4 * 3,
        cases.len() - documents.len()
    );
}

#[tokio::test]
async fn the_schema_check_catches_a_drift() {
    if !xmllint() {
        return;
    }
    let app = app().await;
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(&app, dir.path()).await;
    let id = app.standin.seed_status(ACCOUNT_ID, "drift");
    let answer = app
        .call(Format::Soap11, "getStatus", json!({"id": id}))
        .await;
    let case = Case {
        operation: Operation::GetStatus,
        format: Format::Soap11,
        answer,
    };
    let good = instance(&case);
    // The same fields in another order; a field the type does not declare outside <extra>; a
    // fault's fields without their element.
    let root = xml::parse(good.as_bytes()).unwrap();
    let mut reordered = root.clone();
    reordered.children.reverse();
    let mut stray = root.clone();
    stray.children.insert(
        1,
        Element {
            local: "local_only".into(),
            text: "true".into(),
            ..Element::default()
        },
    );
    let mut mistyped = root.clone();
    let created = mistyped
        .children
        .iter_mut()
        .find(|c| c.local == "created_at")
        .unwrap();
    created.text = "yesterday".into();
    let documents = vec![
        ("as sent".to_owned(), good.clone()),
        ("reordered".to_owned(), standalone(&reordered, None)),
        ("stray".to_owned(), standalone(&stray, None)),
        ("mistyped".to_owned(), standalone(&mistyped, None)),
    ];
    let bad = invalid(&schema, dir.path(), &documents);
    let labels: Vec<&str> = bad.iter().map(|b| b.split(':').next().unwrap()).collect();
    assert_eq!(labels, ["reordered", "stray", "mistyped"], "{bad:?}");
}
