//! Request bodies shaped exactly as WSO2 MI sends them, kept as files in `tests/fixtures/`.

use mastodon_standin::Options;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

const TOKEN: &str = "fixture-token-0b6d";

async fn app_with_token() -> TestApp {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(TOKEN.to_owned().into());
    })
    .await;
    app.standin.seed_user_token(TOKEN, "read write");
    app
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the server read: the sidecar sends statuses as forms with bracket keys (every server
/// reads those; snac reads nothing else), so every value arrives as text, as a form's does.
fn sent(app: &TestApp) -> Value {
    let content_type = app
        .standin
        .last_header("POST /api/v1/statuses", "content-type")
        .expect("a status reached the server");
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    app.standin
        .last_body("POST /api/v1/statuses")
        .expect("a status reached the server")
}

#[tokio::test]
async fn a_soap11_envelope_from_mi_posts_with_a_quoted_soapaction() {
    let app = app_with_token().await;
    let answer = app
        .post_raw(
            "/soap",
            &[
                ("content-type", "text/xml; charset=UTF-8"),
                ("SOAPAction", "\"urn:postStatus\""),
            ],
            fixture("soap11_post_status.xml"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("text/xml"));
    assert!(answer.body.contains(
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    ));
    assert_eq!(
        sent(&app),
        json!({"status": "Order 1042 shipped & on its way", "sensitive": "false", "visibility": "unlisted", "language": "en"})
    );
}

#[tokio::test]
async fn a_soap12_envelope_from_mi_posts_a_poll_with_mastodons_types() {
    let app = app_with_token().await;
    let answer = app
        .post_raw(
            "/soap",
            &[(
                "content-type",
                "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\"",
            )],
            fixture("soap12_post_status.xml"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("application/soap+xml"));
    assert_eq!(
        sent(&app)["poll"],
        json!({"options": ["Aurora", "Borealis"], "expires_in": "86400", "multiple": "false", "hide_totals": "true"})
    );
}

#[tokio::test]
async fn a_pox_body_in_the_synapse_namespace_posts_with_empty_elements_ignored() {
    let app = app_with_token().await;
    let answer = app
        .post_raw(
            "/v1/operations/postStatus",
            &[("content-type", "application/xml; charset=UTF-8")],
            fixture("pox_post_status.xml"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("<postStatusResponse>"));
    assert_eq!(
        sent(&app),
        json!({"status": "Two pictures from today's release party",
               "media_ids": ["109348276342907811", "109348276342907812"],
               "sensitive": "true", "spoiler_text": "party photos"})
    );
}

#[tokio::test]
async fn mis_jsonobject_root_is_accepted_and_a_single_media_id_is_a_list() {
    let app = app_with_token().await;
    let answer = app
        .post_raw(
            "/v1/operations/postStatus",
            &[("content-type", "text/xml")],
            fixture("jsonobject_post_status.xml"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(sent(&app)["media_ids"], json!(["109348276342907813"]));
    assert_eq!(sent(&app)["visibility"], json!("private"));
}

#[tokio::test]
async fn json_with_mis_guessed_types_is_read_as_mastodon_expects() {
    let app = app_with_token().await;
    let answer = app
        .post_raw(
            "/v1/operations/postStatus",
            &[
                ("content-type", "application/json; charset=UTF-8"),
                ("activityid", "urn_uuid_fixture"),
            ],
            fixture("mi_post_status.json"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("x-correlation-id"), Some("urn_uuid_fixture"));
    assert_eq!(
        sent(&app),
        json!({"status": "20261122", "media_ids": ["109348276342907814"], "sensitive": "true", "language": "en"})
    );
}
