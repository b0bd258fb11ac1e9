//! No secret in a log line, an error body, a metric or Debug output (contract, section 6).

use mastodon_standin::Options;
use serde_json::json;

use crate::helpers::{captured_logs, spawn_app, spawn_app_with, Format, FORMATS};

#[tokio::test]
async fn no_secret_of_a_whole_flow_reaches_logs_answers_or_metrics() {
    let app = spawn_app().await;
    let mut answers = Vec::new();
    answers.push(app.call(Format::Json, "createApp", json!({})).await.body);
    let auth = app.call(Format::Xml, "authorizeUrl", json!({})).await;
    answers.push(auth.body.clone());
    let auth = auth.value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    for format in FORMATS {
        // The first exchange succeeds; the replays fail: their errors are checked too.
        answers.push(
            app.call(
                format,
                "getToken",
                json!({"code": code, "state": auth["state"]}),
            )
            .await
            .body,
        );
    }
    answers.push(
        app.call(Format::Soap11, "verifyCredentials", json!({}))
            .await
            .body,
    );
    answers.push(
        app.call(Format::Soap12, "postStatus", json!({"status": "s"}))
            .await
            .body,
    );
    app.standin.fail_next("POST /api/v1/statuses", 401, 1);
    answers.push(
        app.call(Format::Json, "postStatus", json!({"status": "t"}))
            .await
            .body,
    );
    answers.push(app.metrics().await);

    let client_secret = app.standin.apps()[0]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchange = app.standin.last_body("POST /oauth/token").unwrap();
    let verifier = exchange["code_verifier"].as_str().unwrap().to_owned();
    let token = app
        .standin
        .last_header("GET /api/v1/accounts/verify_credentials", "authorization")
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned();
    let logs = captured_logs();
    assert!(logs.contains("user token obtained"), "the flow was logged");
    for (name, secret) in [
        ("client secret", &client_secret),
        ("code", &code),
        ("verifier", &verifier),
        ("token", &token),
    ] {
        assert!(secret.len() >= 16, "{name} is a real secret");
        assert!(!logs.contains(secret.as_str()), "the {name} is in the logs");
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "the {name} is in an answer: {answer}"
            );
        }
    }
}

#[tokio::test]
async fn configured_secrets_stay_out_of_debug_output_and_logs() {
    let token = "configured-token-5b9f0c7e1d";
    let app = spawn_app_with(Options::default(), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(token.to_owned().into());
        main.client_id = Some("cid".into());
        main.client_secret = Some("configured-secret-77aa31".to_owned().into());
    })
    .await;
    app.standin.seed_user_token(token, "read write");
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );
    let debug = format!("{:?}", app.settings);
    assert!(!debug.contains(token), "{debug}");
    assert!(!debug.contains("configured-secret-77aa31"));
    assert!(!captured_logs().contains(token));
}
