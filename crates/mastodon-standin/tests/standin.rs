//! Focused checks of the stand-in's Mastodon behaviour over real HTTP.

use std::time::{Duration, Instant};

use base64::Engine as _;
use mastodon_standin::{Options, StandIn};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const FORM: &str = "application/x-www-form-urlencoded";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn body(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let v = resp.json::<Value>().await.unwrap();
    if status != StatusCode::FOUND {
        assert_eq!(ct.as_deref(), Some("application/json; charset=utf-8"));
    }
    (status, v)
}

async fn post_form(c: &Client, url: &str, form: &str) -> (StatusCode, Value) {
    body(
        c.post(url)
            .header("content-type", FORM)
            .body(form.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post_status(
    c: &Client,
    s: &StandIn,
    token: &str,
    key: Option<&str>,
    payload: Value,
) -> (StatusCode, Value) {
    let mut req = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth(token)
        .json(&payload);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    body(req.send().await.unwrap()).await
}

async fn register(c: &Client, s: &StandIn, scopes: &str, redirect: &str) -> Value {
    let (st, app) = body(
        c.post(format!("{}/api/v1/apps", s.url))
            .json(&json!({"client_name": "sidecar", "redirect_uris": redirect, "scopes": scopes}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{app}");
    app
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Authorizes and returns the code from the redirect.
async fn authorize(
    c: &Client,
    s: &StandIn,
    app: &Value,
    scope: &str,
    pkce: Option<&str>,
) -> String {
    let mut url = format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=a%20b%26c",
        s.url,
        app["client_id"].as_str().unwrap(),
        "http%3A%2F%2Flocalhost%3A8080%2Fcallback",
        scope.replace(' ', "+"),
    );
    if let Some(v) = pkce {
        url.push_str(&format!(
            "&code_challenge={}&code_challenge_method=S256",
            challenge(v)
        ));
    }
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://localhost:8080/callback?code="));
    assert_eq!(query_param(&location, "state").as_deref(), Some("a+b%26c"));
    query_param(&location, "code").unwrap()
}

#[tokio::test]
async fn scopes_sent_as_an_array_are_dropped_for_read() {
    let s = StandIn::start(Options::default()).await;
    let c = client();
    let url = format!("{}/api/v1/apps", s.url);

    let (st, app) = body(
        c.post(&url)
            .json(
                &json!({"client_name": "x", "redirect_uris": ["urn:ietf:wg:oauth:2.0:oob"],
                          "scopes": ["read", "write"]}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(app["scopes"], json!(["read"]));
    assert_eq!(
        s.last_body("POST /api/v1/apps").unwrap()["scopes"],
        json!(["read", "write"])
    );

    let (_, app) = post_form(
        &c,
        &url,
        "client_name=x&redirect_uris=urn:ietf:wg:oauth:2.0:oob&scopes[]=write&scopes[]=read",
    )
    .await;
    assert_eq!(app["scopes"], json!(["read"]));
    assert_eq!(
        s.last_body("POST /api/v1/apps").unwrap()["scopes"],
        json!(["write", "read"])
    );

    let (_, app) = post_form(
        &c,
        &url,
        "client_name=x&redirect_uris=https://a.example/cb%0Aurn:ietf:wg:oauth:2.0:oob&scopes=read+write:statuses",
    )
    .await;
    assert_eq!(app["scopes"], json!(["read", "write:statuses"]));
    assert_eq!(
        app["redirect_uris"],
        json!(["https://a.example/cb", "urn:ietf:wg:oauth:2.0:oob"])
    );
    assert_eq!(
        app["redirect_uri"],
        "https://a.example/cb\nurn:ietf:wg:oauth:2.0:oob"
    );
    assert_eq!(app["client_id"].as_str().unwrap().len(), 43);
    assert_eq!(app["client_secret_expires_at"], 0);
    assert_eq!(s.apps().len(), 3);

    let (st, e) = post_form(&c, &url, "client_name=x&redirect_uris=oob&scopes=read").await;
    assert_eq!(st, 422);
    assert_eq!(
        e["error"],
        "Validation failed: Redirect URI must be an absolute URI."
    );
    let (st, e) = post_form(
        &c,
        &url,
        "client_name=x&redirect_uris=urn:ietf:wg:oauth:2.0:oob&scopes=read+fly",
    )
    .await;
    assert_eq!(st, 422);
    assert_eq!(
        e["error"],
        "Validation failed: Scopes doesn't match configured on the server."
    );
    let (st, e) = post_form(&c, &url, "redirect_uris=urn:ietf:wg:oauth:2.0:oob").await;
    assert_eq!(st, 422);
    assert_eq!(
        e["error"],
        "Validation failed: Application name can't be blank"
    );
    assert_eq!(s.hits("POST /api/v1/apps"), 6);
}

#[tokio::test]
async fn a_code_is_single_use_and_pkce_is_checked() {
    let s = StandIn::start(Options::default()).await;
    let c = client();
    let app = register(&c, &s, "read write push", "http://localhost:8080/callback").await;
    let token_url = format!("{}/oauth/token", s.url);
    let exchange = |code: String, verifier: Option<&'static str>| {
        let mut form = format!(
            "grant_type=authorization_code&code={code}&client_id={}&client_secret={}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fcallback",
            app["client_id"].as_str().unwrap(),
            app["client_secret"].as_str().unwrap()
        );
        if let Some(v) = verifier {
            form.push_str(&format!("&code_verifier={v}"));
        }
        let c = c.clone();
        let url = token_url.clone();
        async move { post_form(&c, &url, &form).await }
    };
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    // A wrong verifier fails, and the code is gone even for the right one afterwards.
    let code = authorize(&c, &s, &app, "read write", Some(VERIFIER)).await;
    let (st, e) = exchange(code.clone(), Some("not-the-verifier")).await;
    assert_eq!(st, 400);
    assert_eq!(e["error"], "invalid_grant");
    let (st, _) = exchange(code, Some(VERIFIER)).await;
    assert_eq!(st, 400);

    // A missing verifier fails too.
    let code = authorize(&c, &s, &app, "read write", Some(VERIFIER)).await;
    let (st, _) = exchange(code, None).await;
    assert_eq!(st, 400);

    // The right verifier works once.
    let code = authorize(&c, &s, &app, "read write", Some(VERIFIER)).await;
    let (st, tok) = exchange(code.clone(), Some(VERIFIER)).await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["scope"], "read write");
    assert!(tok["created_at"].is_u64());
    let (st, e) = exchange(code, Some(VERIFIER)).await;
    assert_eq!(st, 400);
    assert_eq!(e["error"], "invalid_grant");

    let access = tok["access_token"].as_str().unwrap();
    let (st, me) = body(
        c.get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(me["id"], "109348276342907810");
    assert_eq!(me["source"]["privacy"], "public");

    // Bad client secret: 401 invalid_client.
    let (st, e) = post_form(
        &c,
        &token_url,
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret=nope",
            app["client_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(e["error"], "invalid_client");

    // A scope beyond the app's is refused at authorize.
    let resp = c
        .get(format!(
            "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri=http://localhost:8080/callback&scope=read+follow",
            s.url,
            app["client_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Revocation stops the token.
    let (st, _) = post_form(
        &c,
        &format!("{}/oauth/revoke", s.url),
        &format!(
            "client_id={}&client_secret={}&token={access}",
            app["client_id"].as_str().unwrap(),
            app["client_secret"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(st, 200);
    let resp = c
        .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn oob_page_shows_the_code_and_app_tokens_are_not_users() {
    let s = StandIn::start(Options::default()).await;
    let c = client();
    let app = register(&c, &s, "read write", "urn:ietf:wg:oauth:2.0:oob").await;
    let resp = c
        .get(format!(
            "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri=urn:ietf:wg:oauth:2.0:oob&scope=write:statuses",
            s.url,
            app["client_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    let marker = "<input class=\"oauth-code\" readonly type=\"text\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let code = &page[start..start + 43];

    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        app["client_id"].as_str().unwrap(),
        app["client_secret"].as_str().unwrap()
    ));
    let (st, tok) = body(
        c.post(format!("{}/oauth/token", s.url))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", FORM)
            .body(format!(
                "grant_type=authorization_code&code={code}&redirect_uri=urn:ietf:wg:oauth:2.0:oob"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["scope"], "write:statuses");
    // write:statuses cannot read the account.
    let (st, e) = body(
        c.get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth(tok["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (403, Some("This action is outside the authorized scopes"))
    );

    let (st, app_tok) = body(
        c.post(format!("{}/oauth/token", s.url))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", FORM)
            .body("grant_type=client_credentials&scope=read+write")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let (st, e) = post_status(
        &c,
        &s,
        app_tok["access_token"].as_str().unwrap(),
        None,
        json!({"status": "x"}),
    )
    .await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (422, Some("This method requires an authenticated user"))
    );
    let (st, e) = post_status(&c, &s, "unknown", None, json!({"status": "x"})).await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (401, Some("The access token is invalid"))
    );
    let (st, v) = body(
        c.get(format!("{}/api/v1/apps/verify_credentials", s.url))
            .bearer_auth(app_tok["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["name"], "sidecar");
    assert!(v.get("client_secret").is_none());

    let (st, e) = post_form(
        &c,
        &format!("{}/oauth/token", s.url),
        "grant_type=password&username=a&password=b",
    )
    .await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_status() {
    let s = StandIn::start(Options::default()).await;
    s.seed_user_token("tok", "read write");
    let c = client();
    let (st, first) = post_status(
        &c,
        &s,
        "tok",
        Some("k1"),
        json!({"status": "Hello <world> & #Rust"}),
    )
    .await;
    assert_eq!(st, 200, "{first}");
    assert!(first["content"]
        .as_str()
        .unwrap()
        .starts_with("<p>Hello &lt;world&gt; &amp; "));
    assert_eq!(first["account"]["username"], "sidecar");
    assert_eq!(first["visibility"], "public");
    assert_eq!(first["tags"][0]["name"], "rust");
    let (_, again) = post_status(
        &c,
        &s,
        "tok",
        Some("k1"),
        json!({"status": "Hello <world> & #Rust"}),
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    let (_, other) = post_status(
        &c,
        &s,
        "tok",
        Some("k2"),
        json!({"status": "second", "in_reply_to_id": first["id"]}),
    )
    .await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["in_reply_to_id"], first["id"]);
    assert!(
        other["id"].as_str().unwrap().parse::<u64>().unwrap()
            > first["id"].as_str().unwrap().parse::<u64>().unwrap()
    );
    assert_eq!(s.statuses().len(), 2);
    assert_eq!(s.hits("POST /api/v1/statuses"), 3);
    assert_eq!(
        s.last_header("POST /api/v1/statuses", "idempotency-key")
            .as_deref(),
        Some("k2")
    );

    // Validation.
    let (st, e) = post_status(&c, &s, "tok", None, json!({"status": "  "})).await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (422, Some("Validation failed: Text can't be blank"))
    );
    let long = format!(
        "{} https://example.com/{}",
        "a".repeat(476),
        "b".repeat(100)
    );
    let (st, _) = post_status(&c, &s, "tok", None, json!({"status": long})).await;
    assert_eq!(st, 200, "476 + 1 + 23 = 500");
    let (st, e) = post_status(&c, &s, "tok", None, json!({"status": "a".repeat(501)})).await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (
            422,
            Some("Validation failed: Text character limit of 500 exceeded")
        )
    );
    let (st, e) = post_status(
        &c,
        &s,
        "tok",
        None,
        json!({"status": "x", "visibility": "everyone"}),
    )
    .await;
    assert_eq!(
        (st.as_u16(), e["error"].as_str()),
        (
            422,
            Some("Validation failed: Visibility is not included in the list")
        )
    );
    let (st, _) = post_status(
        &c,
        &s,
        "tok",
        None,
        json!({"status": "x", "in_reply_to_id": "1"}),
    )
    .await;
    assert_eq!(st, 404);

    // Form bodies with a poll, and a scheduled post.
    let (st, polled) = body(
        c.post(format!("{}/api/v1/statuses", s.url))
            .bearer_auth("tok")
            .header("content-type", FORM)
            .body("status=Which%3F&poll[options][]=a&poll[options][]=b&poll[expires_in]=3600&visibility=unlisted")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{polled}");
    assert_eq!(polled["poll"]["options"][1]["title"], "b");
    assert_eq!(polled["visibility"], "unlisted");
    let (st, e) = post_status(
        &c,
        &s,
        "tok",
        None,
        json!({"status": "x", "scheduled_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["scheduled_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(e["params"]["text"], "x");
    assert_eq!(s.statuses().len(), 4);
}

#[tokio::test]
async fn the_rate_limit_answers_429_when_spent() {
    let s = StandIn::start(Options {
        rate_limit: 3,
        ..Options::default()
    })
    .await;
    s.seed_user_token("tok", "read write");
    let c = client();
    for expected in ["2", "1", "0"] {
        let resp = c
            .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ratelimit-limit"], "3");
        assert_eq!(resp.headers()["x-ratelimit-remaining"], expected);
        let reset = resp.headers()["x-ratelimit-reset"].to_str().unwrap();
        assert!(reset.ends_with(".000000Z") && reset.len() == 27, "{reset}");
    }
    let resp = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .json(&json!({"status": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(body(resp).await.1, json!({"error": "Too many requests"}));
    assert!(s.statuses().is_empty());
    // Another token has its own budget.
    s.seed_user_token("tok2", "write");
    let (st, _) = post_status(&c, &s, "tok2", None, json!({"status": "x"})).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn faults_are_consumed_in_order() {
    let s = StandIn::start(Options::default()).await;
    s.seed_user_token("tok", "write");
    let c = client();
    s.delay_next("POST /api/v1/statuses", Duration::from_millis(300), 1);
    s.fail_next("POST /api/v1/statuses", 503, 1);
    s.fail_next("POST /api/v1/statuses", 429, 1);

    let started = Instant::now();
    let (st, _) = post_status(&c, &s, "tok", None, json!({"status": "slow"})).await;
    assert_eq!(st, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (st, e) = post_status(&c, &s, "tok", None, json!({"status": "x"})).await;
    assert_eq!(st, 503);
    assert!(e["error"].is_string());
    let resp = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .json(&json!({"status": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
    let (st, _) = post_status(&c, &s, "tok", None, json!({"status": "x"})).await;
    assert_eq!(st, 200);
    assert_eq!(s.statuses().len(), 2);
    assert_eq!(s.hits("POST /api/v1/statuses"), 4);

    s.revoke_all_tokens();
    let (st, _) = post_status(&c, &s, "tok", None, json!({"status": "x"})).await;
    assert_eq!(st, 401);
}

#[actix_web::test]
async fn instance_documents_under_actix_test() {
    let s = StandIn::start(Options::default()).await;
    let c = client();
    let (st, v2) = body(
        c.get(format!("{}/api/v2/instance", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v2["domain"], s.url.trim_start_matches("http://"));
    assert_eq!(v2["configuration"]["statuses"]["max_characters"], 500);
    assert_eq!(v2["configuration"]["polls"]["max_expiration"], 2_629_746);
    let (st, wk) = body(
        c.get(format!("{}/.well-known/oauth-authorization-server", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(wk["code_challenge_methods_supported"], json!(["S256"]));
    let (st, e) = body(
        c.get(format!("{}/api/v1/nope", s.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st.as_u16(), e),
        (404, json!({"error": "Record not found"}))
    );
    assert_eq!(s.hits("GET /api/v1/nope"), 1);

    let old = StandIn::start(Options {
        v2_instance: false,
        pkce: false,
        max_characters: 5000,
        version: "4.2.10".into(),
        ..Options::default()
    })
    .await;
    let resp = c
        .get(format!("{}/api/v2/instance", old.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = c
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            old.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, v1) = body(
        c.get(format!("{}/api/v1/instance", old.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v1["max_toot_chars"], 5000);
    assert!(v1.get("configuration").is_none());
    assert_eq!(v1["version"], "4.2.10");
    s.stop().await;
}

#[path = "standin/profile_oauth.rs"]
mod profile_oauth;
#[path = "standin/profiles.rs"]
mod profiles;
