//! The declared operations (`operations!` in src/operations/mod.rs) that are one call to the server:
//! routed from their declaration, their parameters checked from their struct, in every format.

use mastodon_standin::Options;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Format, TestApp, FORMATS};

async fn app() -> TestApp {
    let app = spawn_app_with(Options::default(), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

/// A list as the formats give it back: XML gives one item as an object, none as nothing.
fn items(page: &Value) -> Vec<Value> {
    match &page["items"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[tokio::test]
async fn get_instance_answers_the_servers_instance_in_every_format() {
    let app = app().await;
    for format in FORMATS {
        let answer = app.call(format, "getInstance", json!({})).await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let instance = answer.value();
        assert!(
            instance["domain"].is_string() || instance["uri"].is_string(),
            "{format:?}: {instance}"
        );
    }
    assert!(app.standin.hits("GET /api/v2/instance") >= 4);
}

#[tokio::test]
async fn an_accounts_statuses_come_back_as_a_page_of_items_in_every_format() {
    let app = app().await;
    let posted = app
        .call(Format::Json, "postStatus", json!({"status": "page me"}))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let account = app
        .call(Format::Json, "verifyCredentials", json!({}))
        .await
        .value();
    let id = account["id"].as_str().expect("an account id").to_owned();
    for format in FORMATS {
        let answer = app
            .call(
                format,
                "getAccountStatuses",
                json!({"id": id, "limit": 5, "exclude_replies": true}),
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let page = answer.value();
        let found = items(&page);
        assert_eq!(found.len(), 1, "{format:?}: {page}");
        assert_eq!(
            found[0]["content"].as_str().map(|c| c.contains("page me")),
            Some(true),
            "{format:?}: {page}"
        );
    }
    let sent = app
        .standin
        .last_body("GET /api/v1/accounts/:id/statuses")
        .expect("the route was called");
    let limit = &sent["limit"];
    assert!(limit == "5" || limit == 5, "{sent}");
    let exclude = &sent["exclude_replies"];
    assert!(exclude == "true" || exclude == true, "{sent}");
}

#[tokio::test]
async fn a_missing_required_parameter_is_refused_before_anything_is_sent() {
    let app = app().await;
    for format in FORMATS {
        // SOAP 1.1 answers every fault with 500, as its specification says.
        let refused = if matches!(format, Format::Soap11) {
            500
        } else {
            400
        };
        let answer = app
            .call(format, "getAccountStatuses", json!({"limit": 2}))
            .await;
        assert_eq!(answer.status, refused, "{format:?}: {}", answer.body);
        let e = answer.value();
        assert_eq!(e["code"], "invalid_request", "{format:?}");
        assert!(
            e["detail"].as_str().unwrap().contains("`id`"),
            "{format:?}: {e}"
        );
        let answer = app
            .call(format, "getAccountStatuses", json!({"id": ""}))
            .await;
        assert_eq!(
            answer.status, refused,
            "{format:?}: empty is missing: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_request", "{format:?}");
    }
    assert_eq!(app.standin.hits("GET /api/v1/accounts/:id/statuses"), 0);
}

#[tokio::test]
async fn an_id_cannot_name_another_route() {
    let app = app().await;
    let before = app.standin.hits("GET /api/v1/accounts/verify_credentials");
    let answer = app
        .call(
            Format::Json,
            "getAccountStatuses",
            json!({"id": "../verify_credentials?x=#"}),
        )
        .await;
    // Whatever the server makes of the encoded id, it is one segment of this route.
    assert_ne!(answer.status, 500, "{}", answer.body);
    assert_eq!(
        app.standin.hits("GET /api/v1/accounts/verify_credentials"),
        before
    );
    let answer = app
        .call(Format::Json, "getAccountStatuses", json!({"id": ".."}))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.code(), "invalid_request");
}
