//! What the sidecar obtains at run time survives a restart.

use serde_json::json;

use crate::helpers::{spawn_app, start, Format, TestApp};

/// Stops `app` gracefully and starts a new sidecar on the same store and stand-in.
async fn restart(app: TestApp) -> TestApp {
    let TestApp {
        standin,
        store_dir,
        settings,
        shutdown,
        ..
    } = app;
    shutdown.stop().await;
    start(standin, store_dir, settings).await
}

#[tokio::test]
async fn a_restart_keeps_the_app_and_the_token() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let client_id =
        app.call(Format::Json, "createApp", json!({})).await.value()["client_id"].clone();
    let app = restart(app).await;
    let me = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let again = app.call(Format::Json, "createApp", json!({})).await.value();
    assert_eq!(again["client_id"], client_id);
    assert_eq!(app.standin.apps().len(), 1, "no second registration");
    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "after restart"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
}

#[tokio::test]
async fn an_authorization_begun_before_a_restart_completes_after_it() {
    let app = spawn_app().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    let app = restart(app).await;
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": code, "state": auth["state"]}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    // The PKCE verifier kept in the store was the one the stand-in checked.
    assert!(app.standin.last_body("POST /oauth/token").unwrap()["code_verifier"].is_string());
}

#[tokio::test]
async fn the_instance_probe_is_kept_and_not_repeated_on_every_init() {
    let app = spawn_app().await;
    app.call(Format::Json, "init", json!({})).await;
    app.call(Format::Json, "init", json!({})).await;
    assert_eq!(app.standin.hits("GET /api/v2/instance"), 1);
    let app = restart(app).await;
    app.call(Format::Json, "init", json!({})).await;
    assert_eq!(
        app.standin.hits("GET /api/v2/instance"),
        1,
        "the stored probe is fresh"
    );
}
