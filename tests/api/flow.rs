//! The whole connector flow in every format, and the parity of results across formats.

use std::collections::BTreeSet;

use mastodon_standin::Options;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Format, TestApp, FORMATS};

/// A leaf as text, so JSON numbers and XML text compare equal.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The keys that carry something: XML leaves out nulls and empty lists, so parity compares these.
fn present_keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::String(s) => !s.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_whole_flow_from_create_app_to_a_posted_status_runs_in_every_format() {
    for format in FORMATS {
        let app = spawn_app().await;
        let init = app.call(format, "init", json!({})).await;
        assert_eq!(init.status, 200, "{format:?} init: {}", init.body);
        let init = init.value();
        assert_eq!(
            text(&init["instance"]["max_characters"]),
            "500",
            "{format:?}"
        );
        assert_eq!(text(&init["instance"]["pkce"]), "true", "{format:?}");
        assert_eq!(text(&init["app_registered"]), "false", "{format:?}");

        app.connect_account(format).await;
        // Scopes went out as a space-separated string, never as an array Mastodon would drop.
        assert_eq!(
            app.standin.last_body("POST /api/v1/apps").unwrap()["scopes"],
            json!("read write")
        );
        // PKCE: the exchange carried the verifier the stand-in checked against the challenge.
        let exchange = app.standin.last_body("POST /oauth/token").unwrap();
        assert_eq!(
            exchange["code_verifier"].as_str().map(str::len),
            Some(64),
            "{format:?}"
        );

        let me = app.call(format, "verifyCredentials", json!({})).await;
        assert_eq!(me.status, 200, "{format:?}: {}", me.body);
        assert_eq!(text(&me.value()["acct"]), "sidecar");

        let posted = app
            .call(
                format,
                "postStatus",
                json!({"status": format!("Hello from {format:?}"), "visibility": "unlisted"}),
            )
            .await;
        assert_eq!(posted.status, 200, "{format:?}: {}", posted.body);
        let status = posted.value();
        let created = app.standin.statuses();
        assert_eq!(created.len(), 1, "{format:?}");
        assert_eq!(text(&status["id"]), text(&created[0]["id"]));
        assert_eq!(text(&status["visibility"]), "unlisted");

        let init = app.call(format, "init", json!({})).await.value();
        assert_eq!(text(&init["app_registered"]), "true");
        assert_eq!(text(&init["user_token"]), "true");
        assert_eq!(text(&init["account"]["acct"]), "sidecar");

        let metrics = app.metrics().await;
        let transport = match format {
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Soap11 => "soap11",
            Format::Soap12 => "soap12",
        };
        for op in [
            "init",
            "createApp",
            "authorizeUrl",
            "getToken",
            "verifyCredentials",
            "postStatus",
        ] {
            let line = format!(
                "mastodon_sidecar_operations_total{{operation=\"{op}\",outcome=\"ok\",transport=\"{transport}\"}}"
            );
            assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
        }
        assert!(metrics.contains("mastodon_sidecar_upstream_requests_total{endpoint=\"POST /api/v1/statuses\",status=\"200\"} 1"));
        assert!(metrics.contains("mastodon_sidecar_ratelimit_remaining{connection=\"main\"}"));
        assert!(metrics.contains("mastodon_sidecar_build_info{version=\"0.1.0\"} 1"));
        assert!(metrics.contains("process_resident_memory_bytes"));
    }
}

/// One row per operation: the same parameters through every format give the same result.
#[tokio::test]
async fn every_operation_answers_the_same_fields_in_every_format() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let first = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "thread start"}),
        )
        .await
        .value();
    let table: Vec<(&str, Value)> = vec![
        ("init", json!({"connection": "main"})),
        ("createApp", json!({})),
        ("authorizeUrl", json!({"force_login": true, "lang": "en"})),
        ("getToken", json!({"grant_type": "client_credentials"})),
        ("verifyCredentials", json!({})),
        (
            "postStatus",
            json!({
                "status": "a reply with a poll",
                "in_reply_to_id": first["id"],
                "poll": {"options": ["yes", "no"], "expires_in": 600, "multiple": true},
                "sensitive": true,
                "spoiler_text": "cw",
                "language": "en",
            }),
        ),
    ];
    for (operation, params) in table {
        let mut results = Vec::new();
        for format in FORMATS {
            let answer = app.call(format, operation, params.clone()).await;
            assert_eq!(
                answer.status, 200,
                "{operation} {format:?}: {}",
                answer.body
            );
            match format {
                Format::Json => assert!(answer.content_type.starts_with("application/json")),
                Format::Xml => {
                    assert!(answer.content_type.starts_with("application/xml"));
                    assert!(
                        answer.body.contains(&format!("<{operation}Response>")),
                        "{}",
                        answer.body
                    );
                }
                Format::Soap11 => {
                    assert!(answer.content_type.starts_with("text/xml"));
                    assert!(answer.body.contains(&format!(
                        "<m:{operation}Response xmlns:m=\"urn:mastodon-sidecar:v1\">"
                    )));
                }
                Format::Soap12 => assert!(answer.content_type.starts_with("application/soap+xml")),
            }
            results.push((format, answer.value()));
        }
        let reference = present_keys(&results[0].1);
        assert!(!reference.is_empty(), "{operation}");
        for (format, value) in &results[1..] {
            assert_eq!(
                present_keys(value),
                reference,
                "{operation} in {format:?} differs from JSON"
            );
        }
    }
    // The poll reached the server as a form with bracket keys (`poll[options][]`), from every
    // format: the one encoding every server reads.
    let body = app.standin.last_body("POST /api/v1/statuses").unwrap();
    assert_eq!(body["poll"]["options"], json!(["yes", "no"]));
    assert_eq!(body["poll"]["expires_in"], json!("600"));
    assert_eq!(body["poll"]["multiple"], json!("true"));
    assert_eq!(body["sensitive"], json!("true"));
}

#[tokio::test]
async fn an_accept_header_switches_between_json_and_xml() {
    let app = spawn_app().await;
    let xml = app
        .call_with(
            Format::Json,
            "init",
            json!({}),
            &[("accept", "application/xml")],
        )
        .await;
    assert!(
        xml.content_type.starts_with("application/xml"),
        "{}",
        xml.content_type
    );
    assert!(xml.body.contains("<initResponse>"));
    let json = app
        .call_with(
            Format::Xml,
            "init",
            json!({}),
            &[("accept", "application/json")],
        )
        .await;
    assert!(json.content_type.starts_with("application/json"));
}

#[tokio::test]
async fn the_redirect_flow_returns_the_state_and_a_caller_state_is_kept() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().redirect_uri =
            "https://flows.example/callback".into();
    })
    .await;
    assert_eq!(
        app.call(Format::Json, "createApp", json!({})).await.status,
        200
    );
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({"state": "order-42"}))
        .await
        .value();
    let state = auth["state"].as_str().unwrap().to_owned();
    assert!(state.ends_with(".order-42"), "{state}");
    let response = app
        .client
        .get(auth["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location
        .as_str()
        .starts_with("https://flows.example/callback?"));
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], state);
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": pairs["code"], "state": state}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.value()["grant_type"], "authorization_code");
}

#[tokio::test]
async fn a_state_is_good_for_one_get_token_only() {
    let app = spawn_app().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    let params = json!({"code": code, "state": auth["state"]});
    assert_eq!(
        app.call(Format::Json, "getToken", params.clone())
            .await
            .status,
        200
    );
    let replay = app.call(Format::Json, "getToken", params).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.code(), "invalid_request");
    assert!(replay.value()["detail"].as_str().unwrap().contains("state"));
}

#[tokio::test]
async fn a_wrong_code_is_mastodons_refusal_and_stores_nothing() {
    let app = spawn_app().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let wrong = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": "not-the-code", "state": auth["state"]}),
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(wrong.code(), "upstream_rejected");
    assert_eq!(wrong.value()["upstream"]["status"], 400);
    assert!(wrong.value()["upstream"]["error"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .code(),
        "credentials_missing"
    );
}

#[tokio::test]
async fn get_token_without_state_finishes_the_only_pending_authorization() {
    let app = spawn_app().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    let token = app
        .call(Format::Json, "getToken", json!({"code": code}))
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
}

#[tokio::test]
async fn client_credentials_give_an_app_token_and_no_token_is_ever_answered() {
    let app = spawn_app().await;
    let created = app.call(Format::Json, "createApp", json!({})).await.value();
    assert!(created.get("client_secret").is_none(), "{created}");
    assert_eq!(created["connection"], "main");
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"grant_type": "client_credentials", "scope": "read"}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    let token = token.value();
    assert_eq!(token["grant_type"], "client_credentials");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token.get("access_token").is_none());
    // An app token is not a user token: posting still needs authorization.
    assert_eq!(
        app.call(Format::Json, "postStatus", json!({"status": "x"}))
            .await
            .code(),
        "credentials_missing"
    );
}

#[tokio::test]
async fn secrets_are_answered_only_where_expose_secrets_allows() {
    let app = spawn_app_with(Options::default(), |s| s.security.expose_secrets = true).await;
    let created = app.call(Format::Json, "createApp", json!({})).await.value();
    assert_eq!(
        created["client_secret"],
        app.standin.apps()[0]["client_secret"]
    );
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": code, "state": auth["state"]}),
        )
        .await
        .value();
    assert!(token["access_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn create_app_registers_once_and_answers_the_stored_app_after() {
    let app = spawn_app().await;
    let first = app.call(Format::Json, "createApp", json!({})).await.value();
    let again = app.call(Format::Xml, "createApp", json!({})).await.value();
    assert_eq!(text(&first["client_id"]), text(&again["client_id"]));
    assert_eq!(app.standin.apps().len(), 1);
    // Other scopes would replace the stored app and lose its secret: refused, naming `force`.
    let refused = app
        .call(Format::Json, "createApp", json!({"scopes": "read"}))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.code(), "invalid_request");
    assert!(refused.body.contains("force"), "{}", refused.body);
    assert_eq!(app.standin.apps().len(), 1);
    // With force, another app replaces it.
    let other = app
        .call(
            Format::Json,
            "createApp",
            json!({"scopes": "read", "force": true}),
        )
        .await
        .value();
    assert_ne!(other["client_id"], first["client_id"]);
    assert_eq!(app.standin.apps().len(), 2);
}

#[tokio::test]
async fn a_server_without_pkce_or_instance_v2_still_completes_the_flow() {
    let options = Options {
        pkce: false,
        v2_instance: false,
        max_characters: 1000,
        ..Options::default()
    };
    let app = spawn_app_with(options, |_| {}).await;
    let init = app.call(Format::Json, "init", json!({})).await.value();
    assert_eq!(init["instance"]["max_characters"], 1000);
    assert_eq!(init["instance"]["pkce"], false);
    app.call(Format::Json, "createApp", json!({})).await;
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    assert!(!auth["url"].as_str().unwrap().contains("code_challenge"));
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": code, "state": auth["state"]}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert!(app
        .standin
        .last_body("POST /oauth/token")
        .unwrap()
        .get("code_verifier")
        .is_none());
    // The server's own limit, not 500, decides.
    let long = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "y".repeat(800)}),
        )
        .await;
    assert_eq!(long.status, 200, "{}", long.body);
    let too_long = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "y".repeat(1001)}),
        )
        .await;
    assert_eq!(too_long.code(), "validation_failed");
    assert_eq!(app.standin.hits("POST /api/v1/statuses"), 1);
}

#[tokio::test]
async fn an_idempotency_key_posts_once_however_often_the_message_is_retried() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let params = json!({"status": "exactly once", "idempotency_key": "order-7"});
    let a = app
        .call(Format::Soap11, "postStatus", params.clone())
        .await
        .value();
    let b = app.call(Format::Soap11, "postStatus", params).await.value();
    assert_eq!(text(&a["id"]), text(&b["id"]));
    assert_eq!(app.standin.statuses().len(), 1);
    assert_eq!(
        app.standin
            .last_header("POST /api/v1/statuses", "idempotency-key")
            .as_deref(),
        Some("order-7")
    );
}

#[tokio::test]
async fn a_retried_message_without_a_key_posts_once_and_different_ones_post_separately() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let mi = [("activityid", "urn_uuid_5f1c-retry")];
    let same = json!({"status": "retry me"});
    let a = app
        .call_with(Format::Xml, "postStatus", same.clone(), &mi)
        .await
        .value();
    let b = app
        .call_with(Format::Xml, "postStatus", same, &mi)
        .await
        .value();
    assert_eq!(text(&a["id"]), text(&b["id"]));
    let c = app
        .call_with(Format::Xml, "postStatus", json!({"status": "another"}), &mi)
        .await
        .value();
    assert_ne!(text(&a["id"]), text(&c["id"]));
    assert_eq!(app.standin.statuses().len(), 2);
}

#[tokio::test]
async fn a_scheduled_status_answers_mastodons_scheduled_status() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let scheduled = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "later", "scheduled_at": at}),
        )
        .await;
    assert_eq!(scheduled.status, 200, "{}", scheduled.body);
    let scheduled = scheduled.value();
    assert!(scheduled["scheduled_at"].is_string());
    assert!(scheduled["params"].is_object());
}

#[tokio::test]
async fn inline_connections_are_policed() {
    // Allowed, with the switches a loopback stand-in needs.
    let app: TestApp = spawn_app_with(Options::default(), |s| {
        s.security.allow_inline_connections = true;
        s.security.allowed_instances = vec!["127.0.0.1".into()];
        s.security.allow_insecure_instances = true;
        s.security.allow_private_addresses = true;
    })
    .await;
    app.standin.seed_user_token("inline-token", "read write");
    let init = app
        .call(Format::Json, "init", json!({"connection": "adhoc", "instance": app.standin.url, "access_token": "inline-token"}))
        .await;
    assert_eq!(init.status, 200, "{}", init.body);
    assert_eq!(init.value()["account"]["acct"], "sidecar");
    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"connection": "adhoc", "status": "inline"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    // Redefining a configured connection is refused.
    let clash = app
        .call(
            Format::Json,
            "init",
            json!({"connection": "main", "instance": app.standin.url}),
        )
        .await;
    assert_eq!(clash.code(), "forbidden");

    // Private addresses are refused unless allowed.
    let strict = spawn_app_with(Options::default(), |s| {
        s.security.allow_inline_connections = true;
        s.security.allowed_instances = vec!["127.0.0.1".into()];
        s.security.allow_insecure_instances = true;
    })
    .await;
    let refused = strict
        .call(
            Format::Json,
            "init",
            json!({"connection": "adhoc", "instance": strict.standin.url}),
        )
        .await;
    assert_eq!(refused.code(), "forbidden");
    assert!(
        refused.value()["detail"]
            .as_str()
            .unwrap()
            .contains("private"),
        "{}",
        refused.body
    );
    // Hosts outside allowed_instances are refused.
    let elsewhere = strict
        .call(
            Format::Json,
            "init",
            json!({"connection": "adhoc", "instance": "https://evil.example"}),
        )
        .await;
    assert_eq!(elsewhere.code(), "forbidden");
}
