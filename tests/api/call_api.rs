//! `callApi`: off by default, allowed by route patterns (globally without keys, per key with them),
//! the path checked before the patterns, lists as pages, and writes through the ledger.

use mastodon_sidecar::security::ApiKeySettings;
use mastodon_standin::Options;
use secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app_with, Format, TestApp, FORMATS};

const TOKEN: &str = "call-api-user-token-5e1";

async fn app(routes: &[&str]) -> TestApp {
    let routes: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
    let app = spawn_app_with(Options::default(), move |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(SecretString::from(TOKEN));
        s.security.call_api_routes = routes;
    })
    .await;
    app.standin.seed_user_token(TOKEN, "read write");
    app
}

fn items(page: &Value) -> Vec<Value> {
    match &page["items"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

fn refused_status(format: Format, http: u16) -> u16 {
    // SOAP 1.1 answers every fault 500; SOAP 1.2 a Sender fault 400.
    match format {
        Format::Soap11 => 500,
        Format::Soap12 => 400,
        _ => http,
    }
}

#[tokio::test]
async fn call_api_is_off_unless_routes_are_allowed_in_every_format() {
    let app = app(&[]).await;
    let status = app
        .standin
        .seed_status(mastodon_standin::ACCOUNT_ID, "hello");
    for format in FORMATS {
        let answer = app
            .call(
                format,
                "callApi",
                json!({"method": "GET", "path": format!("/api/v1/statuses/{status}")}),
            )
            .await;
        assert_eq!(
            answer.status,
            refused_status(format, 403),
            "{format:?}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "forbidden", "{format:?}");
        assert!(
            answer.value()["detail"]
                .as_str()
                .unwrap()
                .contains("call_api"),
            "{format:?}"
        );
    }
    assert_eq!(app.standin.hits("GET /api/v1/statuses/:id"), 0);
}

#[tokio::test]
async fn an_allowed_list_route_comes_back_as_a_page_with_the_servers_cursors_in_every_format() {
    let app = app(&["GET /api/v1/accounts/*/followers"]).await;
    let target = app.standin.seed_account("target");
    for name in ["f1", "f2", "f3"] {
        let follower = app.standin.seed_account(name);
        app.standin.seed_follow(&follower, &target);
    }
    for format in FORMATS {
        let answer = app
            .call(
                format,
                "callApi",
                json!({
                    "method": "get",
                    "path": format!("/api/v1/accounts/{target}/followers"),
                    "params": [{"name": "limit", "value": "2"}],
                }),
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let page = answer.value();
        assert_eq!(items(&page).len(), 2, "{format:?}: {page}");
        assert!(
            page["next"]["max_id"].is_string(),
            "{format:?}: the Link cursor: {page}"
        );
        let next = page["next"]["max_id"].as_str().unwrap().to_owned();
        let rest = app
            .call(
                format,
                "callApi",
                json!({
                    "method": "GET",
                    "path": format!("/api/v1/accounts/{target}/followers"),
                    "params": [{"name": "limit", "value": "2"}, {"name": "max_id", "value": next}],
                }),
            )
            .await
            .value();
        assert_eq!(items(&rest).len(), 1, "{format:?}: {rest}");
    }
    let sent = app
        .standin
        .last_body("GET /api/v1/accounts/:id/followers")
        .expect("the route was called");
    assert_eq!(sent["limit"], "2", "{sent}");
}

#[tokio::test]
async fn paths_outside_the_api_or_the_patterns_are_refused_before_anything_is_sent() {
    let app = app(&["GET /api/v1/statuses/*", "* /api/v1/lists/**"]).await;
    let cases = [
        (
            "GET",
            "/api/v1/accounts/verify_credentials",
            "forbidden",
            403,
        ),
        ("POST", "/api/v1/statuses/1", "forbidden", 403),
        ("GET", "/api/v1/statuses/1/context", "forbidden", 403),
        ("GET", "/oauth/token", "invalid_request", 400),
        (
            "GET",
            "/api/v1/statuses/../accounts/verify_credentials",
            "invalid_request",
            400,
        ),
        ("GET", "/api/v1/statuses/%2e%2e", "invalid_request", 400),
        (
            "GET",
            "/api/v1/statuses/1%2Fcontext",
            "invalid_request",
            400,
        ),
        ("GET", "/api/v1/statuses/1?x=y", "invalid_request", 400),
        (
            "GET",
            "/api/v1/statuses/1\r\nX-Injected: 1",
            "invalid_request",
            400,
        ),
        ("TRACE", "/api/v1/statuses/1", "invalid_request", 400),
        ("GET", "/api/v1/lists", "forbidden", 403),
    ];
    for format in FORMATS {
        for (method, path, code, http) in cases {
            let answer = app
                .call(format, "callApi", json!({"method": method, "path": path}))
                .await;
            assert_eq!(
                answer.code(),
                code,
                "{format:?} {method} {path:?}: {}",
                answer.body
            );
            assert_eq!(
                answer.status,
                refused_status(format, http),
                "{format:?} {method} {path:?}"
            );
        }
    }
    assert_eq!(app.standin.hits("GET /api/v1/statuses/:id"), 0);
    assert_eq!(
        app.standin.hits("GET /api/v1/accounts/verify_credentials"),
        0
    );
}

#[tokio::test]
async fn a_repeated_post_message_is_answered_its_first_result_and_creates_once() {
    let app = app(&["POST /api/v1/lists", "GET /api/v1/lists"]).await;
    for format in FORMATS {
        let correlation = format!("call-api-list-{format:?}");
        let headers = [("x-correlation-id", correlation.as_str())];
        let params = json!({
            "method": "POST",
            "path": "/api/v1/lists",
            "params": [{"name": "title", "value": format!("made by {format:?}")}],
        });
        let first = app
            .call_with(format, "callApi", params.clone(), &headers)
            .await;
        assert_eq!(first.status, 200, "{format:?}: {}", first.body);
        let again = app.call_with(format, "callApi", params, &headers).await;
        assert_eq!(again.status, 200, "{format:?}: {}", again.body);
        assert_eq!(first.value()["id"], again.value()["id"], "{format:?}");
    }
    assert_eq!(app.standin.hits("POST /api/v1/lists"), FORMATS.len());
    let lists = app
        .call(
            Format::Json,
            "callApi",
            json!({"method": "GET", "path": "/api/v1/lists"}),
        )
        .await
        .value();
    assert_eq!(items(&lists).len(), FORMATS.len(), "{lists}");
}

#[tokio::test]
async fn an_anonymous_call_needs_no_token_and_the_servers_refusal_is_classified() {
    let app = spawn_app_with(Options::default(), |s| {
        s.security.call_api_routes = vec!["GET /api/**".into()];
    })
    .await;
    let answer = app
        .call(
            Format::Json,
            "callApi",
            json!({"method": "GET", "path": "/api/v2/instance", "anonymous": true}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.value()["domain"].is_string(), "{}", answer.body);
    let without = app
        .call(
            Format::Json,
            "callApi",
            json!({"method": "GET", "path": "/api/v2/instance"}),
        )
        .await;
    assert_eq!(without.code(), "credentials_missing", "{}", without.body);
    let unknown = app
        .call(
            Format::Json,
            "callApi",
            json!({"method": "GET", "path": "/api/v1/no_such_route", "anonymous": true}),
        )
        .await;
    assert_eq!(unknown.code(), "upstream_rejected", "{}", unknown.body);
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

fn key(name: &str, secret: &str, operations: &[&str], call_api: &[&str]) -> ApiKeySettings {
    ApiKeySettings {
        name: name.into(),
        sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        connections: vec!["*".into()],
        operations: operations.iter().map(|s| s.to_string()).collect(),
        call_api: call_api.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn with_api_keys_each_key_reaches_its_own_routes_only() {
    const READER: &str = "call-api-reader-key-0a1b2c";
    const OTHER: &str = "call-api-other-key-3d4e5f";
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(SecretString::from(TOKEN));
        // Ignored once keys are configured: each key's own list decides.
        s.security.call_api_routes = vec!["* /api/**".into()];
        s.security.api_keys = vec![
            key("reader", READER, &["callApi"], &["GET /api/v1/statuses/*"]),
            key("other", OTHER, &["verifyCredentials"], &[]),
        ];
    })
    .await;
    app.standin.seed_user_token(TOKEN, "read write");
    let status = app
        .standin
        .seed_status(mastodon_standin::ACCOUNT_ID, "keyed");
    let path = format!("/api/v1/statuses/{status}");
    for format in FORMATS {
        let ok = app
            .call_with(
                format,
                "callApi",
                json!({"method": "GET", "path": path}),
                &[("x-api-key", READER)],
            )
            .await;
        assert_eq!(ok.status, 200, "{format:?}: {}", ok.body);
        assert_eq!(ok.value()["id"], status.as_str(), "{format:?}");
        let elsewhere = app
            .call_with(
                format,
                "callApi",
                json!({"method": "DELETE", "path": path}),
                &[("x-api-key", READER)],
            )
            .await;
        assert_eq!(
            elsewhere.code(),
            "forbidden",
            "{format:?}: {}",
            elsewhere.body
        );
        let other = app
            .call_with(
                format,
                "callApi",
                json!({"method": "GET", "path": path}),
                &[("x-api-key", OTHER)],
            )
            .await;
        assert_eq!(other.code(), "forbidden", "{format:?}: {}", other.body);
    }
    assert_eq!(app.standin.hits("GET /api/v1/statuses/:id"), FORMATS.len());
    assert_eq!(app.standin.hits("DELETE /api/v1/statuses/:id"), 0);
}

#[test]
fn key_routes_are_checked_with_the_configuration() {
    let mut settings = mastodon_sidecar::config::Settings::default();
    settings.security.api_keys = vec![
        key("a", "call-api-config-key-aaaa", &["callApi"], &[]),
        key(
            "b",
            "call-api-config-key-bbbb",
            &["init"],
            &["GET /api/v1/x"],
        ),
        key(
            "c",
            "call-api-config-key-cccc",
            &["callApi"],
            &["GET /oauth/x"],
        ),
    ];
    settings.security.call_api_routes = vec!["FETCH /api/v1".into()];
    let problems = mastodon_sidecar::security::check_api_keys(&settings);
    let at = |path: &str| problems.iter().any(|(k, _)| k == path);
    assert!(at("security.api_keys[0].call_api"), "{problems:?}");
    assert!(at("security.api_keys[1].call_api"), "{problems:?}");
    assert!(at("security.api_keys[2].call_api"), "{problems:?}");
    assert!(at("security.call_api_routes"), "{problems:?}");
}
