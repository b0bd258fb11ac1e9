//! Per-profile OAuth, token refusals, revocation, rate limits and connections.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use mastodon_standin::{Options, Profile, StandIn};
use reqwest::Client;
use serde_json::{json, Value};

use super::profiles::{client, post, raw, start};
use super::FORM;

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

async fn app(c: &Client, s: &StandIn, scopes: &str) -> Value {
    let resp = c
        .post(format!("{}/api/v1/apps", s.url))
        .json(&json!({"client_name": "x", "redirect_uris": format!("{OOB} http://localhost/cb"), "scopes": scopes}))
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

/// A code from the authorize page (the redirect to `http://localhost/cb`).
async fn code(c: &Client, s: &StandIn, app: &Value, scope: &str) -> String {
    let resp = c
        .get(format!(
            "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&scope={}&state=st",
            s.url,
            app["client_id"].as_str().unwrap(),
            scope.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

async fn token(c: &Client, s: &StandIn, form: String) -> (u16, String, String) {
    raw(c
        .post(format!("{}/oauth/token", s.url))
        .header("content-type", FORM)
        .body(form)
        .send()
        .await
        .unwrap())
    .await
}

fn creds(app: &Value) -> String {
    format!(
        "client_id={}&client_secret={}",
        app["client_id"].as_str().unwrap(),
        app["client_secret"].as_str().unwrap()
    )
}

#[tokio::test]
async fn bad_codes_and_token_answers_per_profile() {
    let c = client();
    for profile in Profile::ALL {
        let s = StandIn::start(Options::for_profile(profile)).await;
        let a = app(&c, &s, "read write").await;
        let bad = format!(
            "grant_type=authorization_code&code=nope&redirect_uri=http://localhost/cb&{}",
            creds(&a)
        );
        let (st, ct, text) = token(&c, &s, bad).await;
        let expected: (u16, &str) = match profile {
            Profile::Mastodon | Profile::Hollo => (400, "invalid_grant"),
            Profile::GoToSocial => (400, "sql: no rows in result set"),
            Profile::Takahe => (500, "<html"),
            Profile::Snac => (200, "access_token"),
            Profile::Mitra => (404, "authorization not found"),
        };
        assert_eq!(st, expected.0, "{profile:?} {text}");
        assert!(text.contains(expected.1), "{profile:?} {text}");
        if profile == Profile::Takahe {
            assert!(ct.starts_with("text/html"));
        }

        let code = code(&c, &s, &a, "read write").await;
        let good = format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb&{}",
            creds(&a)
        );
        let (st, _, text) = token(&c, &s, good).await;
        assert_eq!(st, 200, "{profile:?} {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let created = v["created_at"].as_u64().unwrap();
        assert_eq!(
            created > 10_000_000_000,
            profile == Profile::Hollo,
            "{profile:?} ms"
        );
        let scope = match profile {
            Profile::Snac => "",
            Profile::Mitra => "read write follow",
            _ => "read write",
        };
        assert_eq!(v["scope"], scope, "{profile:?}");
        assert_eq!(
            v.get("expires_in").and_then(Value::as_u64),
            (profile == Profile::Mitra).then_some(2_592_000)
        );

        let cc = format!("grant_type=client_credentials&scope=read&{}", creds(&a));
        let (st, _, text) = token(&c, &s, cc.clone()).await;
        match profile {
            Profile::Mitra => {
                assert_eq!((st, text.contains("unsupported grant type")), (400, true))
            }
            Profile::GoToSocial | Profile::Snac => {
                assert_eq!(st, 400, "{profile:?}");
                let (st, _, text) = token(&c, &s, format!("{cc}&redirect_uri={OOB}")).await;
                assert_eq!(st, 200);
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(
                    v.get("expires_in").and_then(Value::as_u64),
                    (profile == Profile::GoToSocial).then_some(7200)
                );
            }
            Profile::Takahe => {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!((st, v["access_token"].as_str()), (200, Some("__app__")));
            }
            _ => assert_eq!(st, 200),
        }
    }
}

#[tokio::test]
async fn code_lifetimes_and_pkce_discovery() {
    let c = client();
    let lifetimes = Profile::ALL.map(|p| Options::for_profile(p).code_lifetime.as_secs());
    assert_eq!(lifetimes, [600, 600, 60, 600, 600, 300]);
    let s = StandIn::start(Options {
        code_lifetime: Duration::from_millis(50),
        ..Options::for_profile(Profile::Takahe)
    })
    .await;
    let a = app(&c, &s, "read").await;
    let code = code(&c, &s, &a, "read").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, _, _) = token(
        &c,
        &s,
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb&{}",
            creds(&a)
        ),
    )
    .await;
    assert_eq!(st, 500);
    for profile in Profile::ALL {
        let s = StandIn::start(Options::for_profile(profile)).await;
        let (st, _, text) = raw(c
            .get(format!("{}/.well-known/oauth-authorization-server", s.url))
            .send()
            .await
            .unwrap())
        .await;
        let served = matches!(profile, Profile::Mastodon | Profile::Hollo);
        assert_eq!(st, if served { 200 } else { 404 }, "{profile:?}");
        if profile == Profile::Mitra {
            assert_eq!(text, "");
        }
    }
}

#[tokio::test]
async fn scopes_and_token_refusals_per_profile() {
    let c = client();
    let s = StandIn::start(Options::for_profile(Profile::Takahe)).await;
    s.seed_user_token("granular", "read:accounts write:statuses");
    let (st, _, text) = raw(c
        .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
        .bearer_auth("granular")
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(
        (st, text.as_str()),
        (403, "{\"error\":\"out_of_scope_for_token\"}")
    );
    let m = StandIn::start(Options::default()).await;
    m.seed_user_token("granular", "read:accounts");
    let resp = c
        .get(format!("{}/api/v1/accounts/verify_credentials", m.url))
        .bearer_auth("granular")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let s = StandIn::start(Options::for_profile(Profile::Mitra)).await;
    let a = app(&c, &s, "read:accounts write:statuses").await;
    assert_eq!(a["scopes"], json!([]));
    s.seed_user_token("narrow", "push");
    let resp = c
        .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
        .bearer_auth("narrow")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "Mitra tokens are not scope-limited");

    for profile in Profile::ALL {
        let s = StandIn::start(Options::for_profile(profile)).await;
        let verify = raw(c
            .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth("gone")
            .send()
            .await
            .unwrap())
        .await;
        let posting = raw(c
            .post(format!("{}/api/v1/statuses", s.url))
            .bearer_auth("gone")
            .json(&json!({"status": "x"}))
            .send()
            .await
            .unwrap())
        .await;
        let (st, ct, text) = &verify;
        match profile {
            Profile::Mastodon => assert_eq!(
                (*st, text.contains("The access token is invalid")),
                (401, true)
            ),
            Profile::GoToSocial => {
                assert_eq!((*st, text.contains("token not supplied")), (401, true))
            }
            Profile::Takahe => assert_eq!(
                (*st, ct.starts_with("text/html"), text.as_str()),
                (400, true, "Invalid Bearer token")
            ),
            Profile::Hollo => assert_eq!(*st, 401),
            Profile::Snac => assert_eq!((*st, posting.0), (422, 401)),
            Profile::Mitra => {
                assert_eq!((*st, text.contains("access token is invalid")), (401, true))
            }
        }
        if profile == Profile::Mitra {
            let (st, _, text) = raw(c
                .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
                .send()
                .await
                .unwrap())
            .await;
            assert_eq!(
                (st, text.contains("auth header is not present")),
                (401, true)
            );
        }
    }
}

#[tokio::test]
async fn revocation_per_profile() {
    let c = client();
    for profile in Profile::ALL {
        let s = StandIn::start(Options::for_profile(profile)).await;
        let a = app(&c, &s, "read write").await;
        let code = code(&c, &s, &a, "read write").await;
        let (_, _, text) = token(
            &c,
            &s,
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri=http://localhost/cb&{}",
                creds(&a)
            ),
        )
        .await;
        let tok = serde_json::from_str::<Value>(&text).unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let revoke = |body: String, bearer: Option<String>| {
            let mut req = c
                .post(format!("{}/oauth/revoke", s.url))
                .header("content-type", FORM)
                .body(body);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            req
        };
        if profile == Profile::Mitra {
            let resp = revoke(format!("token={tok}&{}", creds(&a)), None)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            assert_eq!(raw(resp).await.0, 401);
            let (st, _, text) = raw(revoke("token=unknown".into(), Some(tok.clone()))
                .send()
                .await
                .unwrap())
            .await;
            assert_eq!((st, text.as_str()), (200, "{}"));
        }
        if profile == Profile::GoToSocial {
            let (st, _, text) = raw(revoke(
                format!("token={tok}&client_id=wrong&client_secret=wrong"),
                None,
            )
            .send()
            .await
            .unwrap())
            .await;
            assert_eq!((st, text.as_str()), (200, "{}"));
        } else {
            let bearer = (profile == Profile::Mitra).then(|| tok.clone());
            let (st, _, text) = raw(revoke(format!("token={tok}&{}", creds(&a)), bearer)
                .send()
                .await
                .unwrap())
            .await;
            let body = if profile == Profile::Takahe { "" } else { "{}" };
            assert_eq!((st, text.as_str()), (200, body), "{profile:?}");
        }
        let resp = c
            .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{profile:?}: revoked");
        if profile == Profile::Snac {
            // The app went with the token.
            let (st, _, _) = token(
                &c,
                &s,
                format!(
                    "grant_type=authorization_code&code=x&redirect_uri=http://localhost/cb&{}",
                    creds(&a)
                ),
            )
            .await;
            assert_eq!(st, 401);
            let (st, _, _) = raw(revoke(format!("token=unknown&{}", creds(&a)), None)
                .send()
                .await
                .unwrap())
            .await;
            assert_eq!(st, 403);
        }
    }
}

#[tokio::test]
async fn deny_at_the_authorize_page() {
    let c = client();
    for (profile, state) in [(Profile::Mastodon, true), (Profile::Hollo, false)] {
        let s = StandIn::start(Options::for_profile(profile)).await;
        let a = app(&c, &s, "read").await;
        s.deny_authorizations(true);
        let resp = c.get(format!(
            "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&state=st",
            s.url, a["client_id"].as_str().unwrap())).send().await.unwrap();
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("error=access_denied"), "{location}");
        assert_eq!(
            location.contains("state=st"),
            state,
            "{profile:?} {location}"
        );
        assert!(!location.contains("code="));
    }
}

#[tokio::test]
async fn rate_limits_per_ip_and_on_tokens() {
    let c = client();
    let s = StandIn::start(Options {
        rate_limit: 3,
        ..Options::for_profile(Profile::GoToSocial)
    })
    .await;
    s.seed_user_token("a", "read write");
    s.seed_user_token("b", "read write");
    for tok in ["a", "b", "a"] {
        let resp = c
            .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = c
        .get(format!("{}/api/v1/accounts/verify_credentials", s.url))
        .bearer_auth("b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        429,
        "the IP's budget is shared by every token"
    );

    let s = StandIn::start(Options::for_profile(Profile::Mitra)).await;
    for _ in 0..5 {
        assert_eq!(
            token(&c, &s, "grant_type=authorization_code&code=x".into())
                .await
                .0,
            401
        );
    }
    let resp = c
        .post(format!("{}/oauth/token", s.url))
        .header("content-type", FORM)
        .body("grant_type=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry));
    assert!(resp.headers().get("x-ratelimit-limit").is_none());
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // Hollo has none.
    let s = start(Profile::Hollo).await;
    for _ in 0..10 {
        assert_eq!(token(&c, &s, "grant_type=x".into()).await.0, 400);
    }
    assert_eq!(post(&c, &s, None, json!({"status": "x"})).await.0, 200);
}

#[tokio::test]
async fn snac_closes_every_connection_without_saying_so() {
    let s = start(Profile::Snac).await;
    let addr = s.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"GET /api/v1/instance HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        // Ends only because the server closes the connection.
        conn.read_to_end(&mut all).unwrap();
        String::from_utf8_lossy(&all).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("\r\nconnection:"),
        "{answer}"
    );
    assert!(answer.contains("\"2.94\""));
    // A Mastodon profile keeps the connection open.
    let m = StandIn::start(Options::default()).await;
    let addr = m.addr;
    let kept = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        conn.write_all(b"GET /api/v1/instance HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).is_err()
    })
    .await
    .unwrap();
    assert!(kept, "the read times out: the connection stays open");
}
