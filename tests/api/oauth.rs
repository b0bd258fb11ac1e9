//! OAuth and token dead ends on real servers (`shared/reference/servers.md`): revocation in every
//! protocol, token refusals in every shape, apps the server deleted, re-authorizing, token answers
//! that are not Mastodon's, and marks that heal. Where the stand-in cannot show a server's behaviour
//! yet, a tiny hand-written upstream answers instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use mastodon_sidecar::mastodon::capabilities::RevokeStyle;
use mastodon_standin::Options;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Format, TestApp};

/// One request the fake upstream saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

/// An answer: status, extra headers, content type and body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    content_type: &'static str,
    body: String,
}

fn reply(status: u16, body: Value) -> Option<Reply> {
    Some(Reply {
        status,
        headers: Vec::new(),
        content_type: "application/json",
        body: body.to_string(),
    })
}

fn raw(status: u16, content_type: &'static str, body: &str) -> Option<Reply> {
    Some(Reply {
        status,
        headers: Vec::new(),
        content_type,
        body: body.to_owned(),
    })
}

type Route = Arc<dyn Fn(&Seen) -> Option<Reply> + Send + Sync>;

/// A server that answers like a friendly Mastodon unless `route` answers first.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn seen(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .cloned()
            .collect()
    }
}

async fn fake(route: impl Fn(&Seen) -> Option<Reply> + Send + Sync + 'static) -> Fake {
    let route: Route = Arc::new(route);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let tokens = Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let recorded = Arc::clone(&seen);
    let server = HttpServer::new(move || {
        let route = Arc::clone(&route);
        let recorded = Arc::clone(&recorded);
        let tokens = Arc::clone(&tokens);
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let route = Arc::clone(&route);
            let recorded = Arc::clone(&recorded);
            let tokens = Arc::clone(&tokens);
            async move {
                let seen = Seen {
                    method: req.method().to_string(),
                    path: req.path().to_owned(),
                    authorization: req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                recorded.lock().unwrap().push(seen.clone());
                let answer = route(&seen).or_else(|| default_answer(&seen, &tokens));
                let Some(answer) = answer else {
                    return HttpResponse::NotFound().finish();
                };
                let mut response = HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(answer.status).unwrap(),
                );
                response.content_type(answer.content_type);
                for (name, value) in answer.headers {
                    response.insert_header((name, value));
                }
                response.body(answer.body)
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Fake { url, seen }
}

fn default_answer(seen: &Seen, tokens: &AtomicUsize) -> Option<Reply> {
    match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/api/v2/instance") => reply(
            200,
            json!({"domain": "fake.test", "version": "4.3.0",
                   "configuration": {"statuses": {"max_characters": 500}}}),
        ),
        ("POST", "/api/v1/apps") => reply(
            200,
            json!({"id": "1", "name": "mastodon-sidecar", "client_id": "cid",
                   "client_secret": "csecret", "scopes": ["read", "write"],
                   "redirect_uris": ["urn:ietf:wg:oauth:2.0:oob"]}),
        ),
        ("POST", "/oauth/token") => {
            let n = tokens.fetch_add(1, Ordering::Relaxed) + 1;
            reply(
                200,
                json!({"access_token": format!("tok{n}"), "token_type": "Bearer",
                       "scope": "read write", "created_at": 1_795_343_700}),
            )
        }
        ("GET", "/api/v1/accounts/verify_credentials") => reply(
            200,
            json!({"id": "1", "acct": "fake", "url": "http://fake.test/@fake"}),
        ),
        ("POST", "/oauth/revoke") => reply(200, json!({})),
        _ => None,
    }
}

/// A sidecar whose `main` connection points at `fake`.
async fn app_on(
    fake: &Fake,
    tweak: impl FnOnce(&mut mastodon_sidecar::config::Settings),
) -> TestApp {
    let url = fake.url.clone();
    spawn_app_with(Options::default(), move |s| {
        s.connections.get_mut("main").unwrap().instance = url.parse().unwrap();
        tweak(s);
    })
    .await
}

/// createApp and getToken with a code (no authorizeUrl: a URL built elsewhere).
async fn connect(app: &TestApp) -> Value {
    let created = app.call(Format::Json, "createApp", json!({})).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let token = app
        .call(Format::Json, "getToken", json!({"code": "the-code"}))
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    token.value()
}

#[tokio::test]
async fn revoke_retries_with_the_bearer_after_a_401_and_takes_an_empty_200() {
    // Mitra's 401 to client credentials alone, and Takahē's empty 200.
    let fake = fake(|seen| {
        if seen.path != "/oauth/revoke" {
            return None;
        }
        if seen.authorization.is_none() {
            let mut r = raw(401, "text/plain", "")?;
            r.headers.push(("www-authenticate", "Bearer"));
            return Some(r);
        }
        raw(200, "text/html", "")
    })
    .await;
    let app = app_on(&fake, |s| {
        s.connections.get_mut("main").unwrap().capabilities.revoke =
            Some(RevokeStyle::ClientCredentials);
    })
    .await;
    connect(&app).await;
    let revoked = app.call(Format::Json, "revokeToken", json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.value()["revoked"], true);
    let attempts = fake.seen("POST", "/oauth/revoke");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].authorization, None);
    assert!(attempts[0].body.contains("client_id=cid"));
    assert_eq!(attempts[1].authorization.as_deref(), Some("Bearer tok1"));
    assert!(
        attempts[1].body.contains("token=tok1"),
        "the same form: {}",
        attempts[1].body
    );
    // Forgotten here.
    let after = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(after.code(), "credentials_missing", "{}", after.body);
}

#[tokio::test]
async fn where_the_server_wants_a_bearer_it_is_sent_at_once() {
    let fake = fake(|_| None).await;
    let app = app_on(&fake, |s| {
        s.connections.get_mut("main").unwrap().capabilities.revoke = Some(RevokeStyle::Bearer);
    })
    .await;
    connect(&app).await;
    let revoked = app.call(Format::Json, "revokeToken", json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let attempts = fake.seen("POST", "/oauth/revoke");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].authorization.as_deref(), Some("Bearer tok1"));
    assert!(
        attempts[0].body.contains("client_id=cid"),
        "{}",
        attempts[0].body
    );
}

#[tokio::test]
async fn an_unknown_token_at_revoke_is_forgotten_with_a_note() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    // snac answers an unknown token 403.
    app.standin.fail_next("POST /oauth/revoke", 403, 1);
    let revoked = app.call(Format::Json, "revokeToken", json!({})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let revoked = revoked.value();
    assert_eq!(revoked["revoked"], true);
    assert!(
        revoked["note"].as_str().unwrap().contains("does not know"),
        "{revoked}"
    );
    let after = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(after.code(), "credentials_missing");
}

#[tokio::test]
async fn where_revocation_deletes_the_app_the_app_is_forgotten_and_registered_again() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().capabilities.revoke = Some(RevokeStyle::DeletesApp);
    })
    .await;
    app.connect_account(Format::Json).await;
    let revoked = app
        .call(Format::Json, "revokeToken", json!({}))
        .await
        .value();
    assert!(
        revoked["note"].as_str().unwrap().contains("createApp"),
        "{revoked}"
    );
    let url = app.call(Format::Json, "authorizeUrl", json!({})).await;
    assert_eq!(url.code(), "credentials_missing", "{}", url.body);
    let again = app.call(Format::Json, "createApp", json!({})).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(app.standin.apps().len(), 2);
}

#[tokio::test]
async fn invalid_client_at_the_token_endpoint_forgets_the_app_and_says_to_run_create_app() {
    let fake = fake(|seen| {
        (seen.path == "/oauth/token").then_some(())?;
        reply(
            401,
            json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
        )
    })
    .await;
    let app = app_on(&fake, |_| {}).await;
    app.call(Format::Json, "createApp", json!({})).await;
    let token = app
        .call(Format::Json, "getToken", json!({"code": "the-code"}))
        .await;
    assert_eq!(token.code(), "credentials_missing", "{}", token.body);
    assert!(token.body.contains("createApp"), "{}", token.body);
    let url = app.call(Format::Json, "authorizeUrl", json!({})).await;
    assert_eq!(url.code(), "credentials_missing", "{}", url.body);
    assert!(url.body.contains("createApp"), "{}", url.body);
}

#[tokio::test]
async fn token_answers_are_normalised_milliseconds_empty_scopes_and_expiry() {
    let fake = fake(|seen| {
        (seen.path == "/oauth/token").then_some(())?;
        // Hollo's milliseconds, snac's empty scope, Mitra's expiry.
        reply(
            200,
            json!({"access_token": "tok", "token_type": "Bearer", "scope": "",
                   "created_at": 1_795_343_700_123_i64, "expires_in": 2_592_000}),
        )
    })
    .await;
    let app = app_on(&fake, |_| {}).await;
    let token = connect(&app).await;
    assert_eq!(token["created_at"], 1_795_343_700);
    assert_eq!(token["scope"], "read write");
    assert_eq!(token["expires_in"], 2_592_000);
}

#[tokio::test]
async fn client_credentials_send_redirect_uri_and_a_server_without_app_tokens_says_so() {
    let fake = fake(|seen| {
        (seen.path == "/oauth/token" && seen.body.contains("client_credentials")).then_some(())?;
        reply(400, json!({"error": "unsupported grant type"}))
    })
    .await;
    let app = app_on(&fake, |_| {}).await;
    app.call(Format::Json, "createApp", json!({})).await;
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"grant_type": "client_credentials"}),
        )
        .await;
    assert_eq!(token.code(), "upstream_rejected", "{}", token.body);
    assert!(token.body.contains("no app tokens"), "{}", token.body);
    let sent = fake.seen("POST", "/oauth/token");
    assert!(
        sent[0]
            .body
            .contains("redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob"),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_client_credentials_expiry_is_answered() {
    let fake = fake(|seen| {
        (seen.path == "/oauth/token").then_some(())?;
        reply(
            200,
            json!({"access_token": "app", "token_type": "Bearer", "scope": "read",
                   "created_at": 1_795_343_700, "expires_in": 7200}),
        )
    })
    .await;
    let app = app_on(&fake, |_| {}).await;
    app.call(Format::Json, "createApp", json!({})).await;
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"grant_type": "client_credentials"}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.value()["expires_in"], 7200);
}

/// A server whose verify_credentials answers `status` with `body` once the token is refused.
async fn refusing(status: u16, content_type: &'static str, body: &'static str) -> Fake {
    fake(move |seen| {
        (seen.path == "/api/v1/accounts/verify_credentials").then_some(())?;
        raw(status, content_type, body)
    })
    .await
}

#[tokio::test]
async fn takahes_400_invalid_bearer_token_marks_the_token_revoked() {
    let fake = refusing(400, "text/html", "Invalid Bearer token").await;
    let app = app_on(&fake, |_| {}).await;
    connect(&app).await;
    let first = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(first.status, 400, "{}", first.body);
    assert!(first.body.contains("authorize again"), "{}", first.body);
    let later = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(later.code(), "credentials_missing", "{}", later.body);
    assert_eq!(
        fake.seen("GET", "/api/v1/accounts/verify_credentials")
            .len(),
        1
    );
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_token_valid{connection=\"main\"} 0"));
}

#[tokio::test]
async fn snacs_422_on_verify_credentials_marks_the_token_revoked() {
    let fake = refusing(422, "text/html", "").await;
    let app = app_on(&fake, |_| {}).await;
    connect(&app).await;
    let first = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(first.status, 422, "{}", first.body);
    let later = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(later.code(), "credentials_missing", "{}", later.body);
}

#[tokio::test]
async fn out_of_scope_is_a_scope_problem_not_a_revocation() {
    let fake = refusing(
        403,
        "application/json",
        r#"{"error":"out_of_scope_for_token"}"#,
    )
    .await;
    let app = app_on(&fake, |_| {}).await;
    connect(&app).await;
    let first = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(first.status, 403, "{}", first.body);
    assert!(first.body.contains("`read write`"), "{}", first.body);
    assert!(first.body.contains("not a revocation"), "{}", first.body);
    let later = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(
        later.status, 403,
        "still asked, not failed fast: {}",
        later.body
    );
    assert_eq!(
        fake.seen("GET", "/api/v1/accounts/verify_credentials")
            .len(),
        2
    );
}

#[tokio::test]
async fn an_old_revoked_mark_is_rechecked_once_and_cleared_when_the_token_works() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let route = "GET /api/v1/accounts/verify_credentials";
    app.standin.fail_next(route, 401, 1);
    app.call(Format::Json, "verifyCredentials", json!({})).await;
    let fast = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(fast.code(), "credentials_missing");
    assert_eq!(app.standin.hits(route), 1, "a fresh mark fails fast");
    // The mark ages past the re-check interval (as if two minutes went by).
    age_marks(&app, 120);
    let healed = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(healed.status, 200, "{}", healed.body);
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_token_valid{connection=\"main\"} 1"));

    // A token still refused at its re-check is re-checked once a minute, not on every call.
    app.standin.revoke_all_tokens();
    app.call(Format::Json, "verifyCredentials", json!({})).await;
    age_marks(&app, 120);
    let before = app.standin.hits(route);
    for _ in 0..3 {
        let refused = app.call(Format::Json, "verifyCredentials", json!({})).await;
        assert_eq!(refused.code(), "credentials_missing", "{}", refused.body);
    }
    assert_eq!(app.standin.hits(route), before + 1);
}

fn age_marks(app: &TestApp, seconds: i64) {
    let db = rusqlite::Connection::open(&app.settings.store.path).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE tokens SET revoked_at = revoked_at - ?1 WHERE revoked_at IS NOT NULL",
        [seconds],
    )
    .unwrap();
}

#[tokio::test]
async fn the_background_check_rechecks_revoked_tokens() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let route = "GET /api/v1/accounts/verify_credentials";
    app.standin.fail_next(route, 401, 1);
    app.call(Format::Json, "verifyCredentials", json!({})).await;
    age_marks(&app, 120);
    let settings = app.settings.clone();
    let store = mastodon_sidecar::open_store(&settings).await.unwrap();
    let core = mastodon_sidecar::operations::Core::new(
        std::sync::Arc::new(settings),
        store,
        mastodon_sidecar::metrics::Metrics::new().unwrap(),
    )
    .unwrap();
    mastodon_sidecar::operations::health::check_all(&core).await;
    let healed = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(healed.status, 200, "{}", healed.body);
}

#[tokio::test]
async fn a_refused_pinned_token_says_to_replace_the_configured_access_token() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token =
            Some(SecretString::from("not-a-token".to_owned()));
    })
    .await;
    let first = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(first.status, 401, "{}", first.body);
    assert!(
        first
            .body
            .contains("MASTODON_SIDECAR__CONNECTIONS__MAIN__ACCESS_TOKEN"),
        "{}",
        first.body
    );
    let later = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(later.code(), "credentials_missing");
    assert!(
        later
            .body
            .contains("replace the configured access_token (MASTODON_SIDECAR__CONNECTIONS__MAIN__ACCESS_TOKEN)"),
        "{}",
        later.body
    );
}

#[tokio::test]
async fn re_authorizing_revokes_the_superseded_token_at_the_server() {
    let app = spawn_app_with(Options::default(), |s| s.security.expose_secrets = true).await;
    app.call(Format::Json, "createApp", json!({})).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
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
            .await;
        assert_eq!(token.status, 200, "{}", token.body);
        tokens.push(token.value()["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.standin.hits("POST /oauth/revoke"), 1);
    assert_eq!(
        app.standin.last_body("POST /oauth/revoke").unwrap()["token"],
        json!(tokens[0])
    );
    // The new token works.
    let me = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(me.status, 200, "{}", me.body);
}

#[tokio::test]
async fn a_failed_revocation_of_the_superseded_token_does_not_fail_get_token() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    app.standin.fail_next("POST /oauth/revoke", 500, 10);
    app.connect_account(Format::Json).await;
    let me = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(me.status, 200, "{}", me.body);
}

#[tokio::test]
async fn a_denial_without_state_shows_the_denial_page() {
    let app = spawn_app().await;
    // Hollo redirects a denial with `error` but no `state`.
    let page = app
        .get("/oauth/callback?error=access_denied&error_description=denied")
        .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("Authorization denied"), "{}", page.body);
}

#[tokio::test]
async fn create_app_never_replaces_a_stored_app_silently() {
    let app = spawn_app().await;
    let first = app.call(Format::Json, "createApp", json!({})).await.value();
    let other = app
        .call(
            Format::Xml,
            "createApp",
            json!({"redirect_uris": "https://elsewhere.example/cb"}),
        )
        .await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert_eq!(other.code(), "invalid_request");
    assert!(other.body.contains("force"), "{}", other.body);
    let same = app.call(Format::Json, "createApp", json!({})).await.value();
    assert_eq!(same["client_id"], first["client_id"]);
    assert_eq!(app.standin.apps().len(), 1);
}

#[tokio::test]
async fn the_authorize_command_takes_a_code_with_its_state_among_other_pending_ones() {
    let app = spawn_app().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let mine = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    // Others are pending too: a flow's, another terminal's.
    app.call(Format::Json, "authorizeUrl", json!({})).await;
    app.call(Format::Json, "authorizeUrl", json!({})).await;
    let code = app.approve(mine["url"].as_str().unwrap()).await;
    let mut out = Vec::new();
    mastodon_sidecar::commands::authorize(
        app.settings.clone(),
        None,
        Some(code),
        Some(mine["state"].as_str().unwrap().to_owned()),
        &mut std::io::empty(),
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("posts as @sidecar"), "{out}");
}

#[tokio::test]
async fn the_authorize_command_refuses_a_state_without_a_code() {
    let app = spawn_app().await;
    let mut out = Vec::new();
    let refused = mastodon_sidecar::commands::authorize(
        app.settings.clone(),
        None,
        None,
        Some("abc".to_owned()),
        &mut std::io::empty(),
        &mut out,
    )
    .await
    .expect_err("refused");
    assert!(
        refused.to_string().contains("--state goes with --code"),
        "{refused}"
    );
}
