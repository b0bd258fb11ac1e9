//! Per-profile behaviour: nodeinfo, instance documents, posting rules, faults, reading back.

use std::time::Duration;

use mastodon_standin::{Options, Profile, StandIn};
use reqwest::{Client, Response};
use serde_json::{json, Value};

use super::FORM;

/// A client that never reuses a connection: snac closes each one after its answer, and a
/// reused one would be reset (as the snac test shows with a raw socket).
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Status, content type and the body as text.
pub async fn raw(resp: Response) -> (u16, String, String) {
    let st = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (st, ct, resp.text().await.unwrap())
}

pub async fn start(profile: Profile) -> StandIn {
    let s = StandIn::start(Options::for_profile(profile)).await;
    s.seed_user_token("tok", "read write");
    s
}

pub async fn get(c: &Client, url: String) -> (u16, String, String) {
    raw(c.get(url).bearer_auth("tok").send().await.unwrap()).await
}

/// Posts JSON with the seeded token.
pub async fn post(c: &Client, s: &StandIn, key: Option<&str>, payload: Value) -> (u16, Value) {
    let mut req = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .json(&payload);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let (st, _, text) = raw(req.send().await.unwrap()).await;
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn nodeinfo_names_the_software_and_takahe_links_a_foreign_host() {
    let c = client();
    for profile in Profile::ALL {
        let s = start(profile).await;
        let (st, _, links) = get(&c, format!("{}/.well-known/nodeinfo", s.url)).await;
        assert_eq!(st, 200, "{profile:?}");
        let links: Value = serde_json::from_str(&links).unwrap();
        let href = links["links"][0]["href"].as_str().unwrap().to_owned();
        let path = match profile {
            Profile::Takahe => {
                assert_eq!(href, "https://takahe.test/nodeinfo/2.0/");
                "/nodeinfo/2.0/".to_owned()
            }
            Profile::Snac => {
                assert_eq!(href, format!("{}/nodeinfo_2_0", s.url));
                "/nodeinfo_2_0".to_owned()
            }
            _ => {
                assert_eq!(href, format!("{}/nodeinfo/2.0", s.url));
                "/nodeinfo/2.0".to_owned()
            }
        };
        let (st, _, doc) = get(&c, format!("{}{path}", s.url)).await;
        assert_eq!(st, 200, "{profile:?}");
        let doc: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc["software"]["name"], profile.name());
        let version = doc["software"]["version"].as_str().unwrap();
        let expected = match profile {
            Profile::Mastodon => "4.3.2",
            Profile::GoToSocial => "0.20.0-rc1",
            Profile::Takahe => "0.11.0",
            Profile::Hollo => "0.10.0",
            Profile::Snac => "2.94",
            Profile::Mitra => "5.9.1",
        };
        assert_eq!(version, expected);
        let other = if profile == Profile::Snac {
            "/nodeinfo/2.0"
        } else {
            "/nodeinfo_2_0"
        };
        assert_eq!(get(&c, format!("{}{other}", s.url)).await.0, 404);
        assert_eq!(Profile::parse(profile.name()), Some(profile));
    }
    let s = start(Profile::Snac).await;
    let (st, _, doc) = get(&c, format!("{}/nodeinfo_2_1", s.url)).await;
    assert_eq!(st, 200);
    assert!(doc.contains("\"2.1\""));
}

#[tokio::test]
async fn instance_documents_per_profile() {
    let c = client();
    let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();

    let s = start(Profile::Takahe).await;
    let (st, ct, _) = get(&c, format!("{}/api/v2/instance", s.url)).await;
    assert_eq!((st, ct.starts_with("text/html")), (500, true));
    let (st, _, v1) = get(&c, format!("{}/api/v1/instance", s.url)).await;
    assert_eq!(
        (st, v(&v1)["version"].clone()),
        (200, json!("takahe/0.11.0"))
    );
    let set_up = StandIn::start(Options {
        set_up: true,
        ..Options::for_profile(Profile::Takahe)
    })
    .await;
    assert_eq!(
        get(&c, format!("{}/api/v2/instance", set_up.url)).await.0,
        200
    );

    let s = start(Profile::Hollo).await;
    let (st, ct, _) = get(&c, format!("{}/api/v2/instance", s.url)).await;
    assert_eq!((st, ct.starts_with("text/plain")), (404, true));
    let (_, _, v1) = get(&c, format!("{}/api/v1/instance", s.url)).await;
    let v1 = v(&v1);
    assert_eq!(v1["version"], "0.10.0");
    assert_eq!(v1["configuration"]["statuses"]["max_characters"], 10_000);
    assert_eq!(
        v1["configuration"]["statuses"]["characters_reserved_per_url"],
        256
    );

    let s = start(Profile::Snac).await;
    let (st, _, body) = get(&c, format!("{}/api/v2/instance", s.url)).await;
    assert_eq!((st, body.as_str()), (404, ""));
    let (_, _, v1) = get(&c, format!("{}/api/v1/instance", s.url)).await;
    let v1 = v(&v1);
    assert_eq!(v1["version"], "2.94");
    assert_eq!(v1["configuration"]["statuses"]["max_characters"], 100_000);
    assert_eq!(
        v1["configuration"]["statuses"]["characters_reserved_per_url"],
        32
    );

    let s = start(Profile::Mitra).await;
    let (st, _, v2) = get(&c, format!("{}/api/v2/instance", s.url)).await;
    let v2 = v(&v2);
    assert_eq!(st, 200);
    assert_eq!(v2["domain"], "127.0.0.1");
    assert_eq!(v2["configuration"]["statuses"]["max_characters"], 5000);
    assert!(v2["configuration"]["statuses"]
        .get("characters_reserved_per_url")
        .is_none());
    assert_eq!(v2["limits"]["posts"]["character_limit"], 5000);
    assert!(v2["version"].as_str().unwrap().contains("Mitra 5.9.1"));
    let (st, _, body) = get(&c, format!("{}/api/v1/nope", s.url)).await;
    assert_eq!((st, body.as_str()), (404, ""));

    let s = start(Profile::GoToSocial).await;
    let (_, _, v2) = get(&c, format!("{}/api/v2/instance", s.url)).await;
    let v2 = v(&v2);
    assert_eq!(v2["version"], "0.20.0-rc1");
    assert_eq!(
        v2["configuration"]["statuses"]["characters_reserved_per_url"],
        25
    );
    let s = start(Profile::Takahe).await;
    let (st, ct, _) = get(&c, format!("{}/api/v1/nope", s.url)).await;
    assert_eq!((st, ct.starts_with("text/html")), (404, true));
}

#[tokio::test]
async fn idempotency_keys_per_profile() {
    let c = client();
    for profile in Profile::ALL {
        let s = start(profile).await;
        let (st, a) = post(&c, &s, Some("k"), json!({"status": "once"})).await;
        assert_eq!(st, 200, "{profile:?} {a}");
        let (_, b) = post(&c, &s, Some("k"), json!({"status": "once"})).await;
        let honoured = matches!(profile, Profile::Mastodon | Profile::Hollo | Profile::Mitra);
        assert_eq!(a["id"] == b["id"], honoured, "{profile:?}");
        assert_eq!(
            s.statuses().len(),
            if honoured { 1 } else { 2 },
            "{profile:?}"
        );
        if profile == Profile::Mitra {
            s.forget_idempotency_keys();
            let (_, c2) = post(&c, &s, Some("k"), json!({"status": "once"})).await;
            assert_ne!(c2["id"], a["id"]);
            assert_eq!(s.statuses().len(), 2);
        }
    }
}

#[tokio::test]
async fn a_resend_during_processing_posts_twice_on_mastodon() {
    let s = start(Profile::Mastodon).await;
    let c = client();
    s.stall_then_create("POST /api/v1/statuses", Duration::from_millis(400), 1);
    let first = {
        let (c, url) = (c.clone(), s.url.clone());
        tokio::spawn(async move {
            c.post(format!("{url}/api/v1/statuses"))
                .bearer_auth("tok")
                .header("Idempotency-Key", "same")
                .json(&json!({"status": "race"}))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, second) = post(&c, &s, Some("same"), json!({"status": "race"})).await;
    assert_eq!(st, 200);
    let first: Value = first.await.unwrap().unwrap().json().await.unwrap();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(s.statuses().len(), 2);
    // Once recorded, the key replays.
    let (_, third) = post(&c, &s, Some("same"), json!({"status": "race"})).await;
    assert!(third["id"] == first["id"] || third["id"] == second["id"]);
    assert_eq!(s.statuses().len(), 2);
}

#[tokio::test]
async fn lost_answers_still_create_the_status() {
    let s = start(Profile::Mastodon).await;
    let c = client();
    s.create_then_drop("POST /api/v1/statuses", 1);
    let lost = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .header("Idempotency-Key", "k1")
        .json(&json!({"status": "dropped"}))
        .send()
        .await;
    assert!(lost.is_err(), "no answer expected: {lost:?}");
    assert_eq!(s.statuses().len(), 1);
    // The key was recorded: the retry gets the first status.
    let (st, again) = post(&c, &s, Some("k1"), json!({"status": "dropped"})).await;
    assert_eq!(st, 200);
    assert_eq!(again["id"], s.statuses()[0]["id"]);

    s.create_then_fail("POST /api/v1/statuses", 502, 1);
    let (st, e) = post(&c, &s, None, json!({"status": "failed"})).await;
    assert_eq!(st, 502);
    assert!(e["error"].is_string());
    assert_eq!(s.statuses().len(), 2);
    assert_eq!(s.statuses()[1]["content"], "<p>failed</p>");

    // The client gives up during the stall; the post is made anyway.
    s.stall_then_create("POST /api/v1/statuses", Duration::from_millis(300), 1);
    let quick = Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gone = quick
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .json(&json!({"status": "stalled"}))
        .send()
        .await;
    assert!(gone.is_err());
    assert_eq!(s.statuses().len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.statuses().len(), 3);
    assert_eq!(s.statuses()[2]["content"], "<p>stalled</p>");
}

#[tokio::test]
async fn account_statuses_page_newest_first_with_links() {
    let c = client();
    for profile in [Profile::Mastodon, Profile::Mitra] {
        let s = start(profile).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let (st, v) = post(&c, &s, None, json!({"status": format!("n{i}")})).await;
            assert_eq!(st, 200);
            ids.push(v["id"].as_str().unwrap().to_owned());
        }
        let url = format!(
            "{}/api/v1/accounts/{}/statuses",
            s.url,
            mastodon_standin::ACCOUNT_ID
        );
        let resp = c
            .get(format!("{url}?limit=2"))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        let link = resp.headers()["link"].to_str().unwrap().to_owned();
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page[0]["id"], ids[4].as_str());
        assert_eq!(page[1]["id"], ids[3].as_str());
        assert!(
            link.contains(&format!("max_id={}>; rel=\"next\"", ids[3])),
            "{link}"
        );
        assert!(
            link.contains(&format!("min_id={}>; rel=\"prev\"", ids[4])),
            "{link}"
        );
        let (_, _, next) = get(&c, format!("{url}?limit=2&max_id={}", ids[3])).await;
        let next: Value = serde_json::from_str(&next).unwrap();
        assert_eq!(next[0]["id"], ids[2].as_str());
        let (_, _, newer) = get(&c, format!("{url}?limit=2&min_id={}", ids[0])).await;
        let newer: Value = serde_json::from_str(&newer).unwrap();
        assert_eq!(
            (newer[0]["id"].as_str(), newer[1]["id"].as_str()),
            (Some(ids[2].as_str()), Some(ids[1].as_str()))
        );
        let (_, _, since) = get(&c, format!("{url}?since_id={}", ids[2])).await;
        assert_eq!(
            serde_json::from_str::<Value>(&since)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let (_, _, all) = get(&c, format!("{url}?limit=100")).await;
        assert_eq!(
            serde_json::from_str::<Value>(&all)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(s.hits("GET /api/v1/accounts/:id/statuses"), 5);
        assert_eq!(
            get(&c, format!("{}/api/v1/accounts/1/statuses", s.url))
                .await
                .0,
            404
        );
    }
}

#[tokio::test]
async fn scheduled_at_per_profile() {
    let c = client();
    for profile in Profile::ALL {
        let s = start(profile).await;
        let (st, v) = post(
            &c,
            &s,
            None,
            json!({"status": "later", "scheduled_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(st, 200, "{profile:?} {v}");
        let scheduled = matches!(profile, Profile::Mastodon | Profile::GoToSocial);
        assert_eq!(v.get("scheduled_at").is_some(), scheduled, "{profile:?}");
        assert_eq!(s.statuses().len(), usize::from(!scheduled));
        let (st, _, list) = get(&c, format!("{}/api/v1/scheduled_statuses", s.url)).await;
        if scheduled {
            assert_eq!(st, 200);
            assert_eq!(
                serde_json::from_str::<Value>(&list).unwrap()[0]["params"]["text"],
                "later"
            );
            assert_eq!(s.hits("GET /api/v1/scheduled_statuses"), 1);
        } else {
            assert_eq!(st, 404, "{profile:?}");
        }
    }
}

#[tokio::test]
async fn what_each_profile_keeps_of_a_post() {
    let c = client();
    let s = start(Profile::Mitra).await;
    let (st, v) = post(
        &c,
        &s,
        None,
        json!({"status": "x", "visibility": "unlisted", "spoiler_text": "cw", "language": "de"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["visibility"].as_str(),
            v["spoiler_text"].as_str(),
            v["language"].as_str()
        ),
        (Some("public"), Some(""), Some("de"))
    );
    assert_eq!(v["id"].as_str().unwrap().len(), 36);
    for (payload, message) in [
        (
            json!({"status": "x", "language": "deu"}),
            "invalid language code",
        ),
        (
            json!({"status": "x", "visibility": "direct"}),
            "direct message should have at least one recipient",
        ),
        (
            json!({"status": "x", "content_type": "text/plain"}),
            "unsupported content type",
        ),
        (
            json!({"status": "x", "visibility": "everyone"}),
            "invalid visibility parameter",
        ),
        (json!({"status": " "}), "post can not be empty"),
        (
            json!({"status": "x", "poll": {"options": ["a"], "expires_in": 600}}),
            "too few poll options",
        ),
        (
            json!({"status": "x", "in_reply_to_id": "1"}),
            "post can not be empty",
        ),
        (
            json!({"status": "x", "in_reply_to_id": "01890000-0000-0000-0000-000000000000"}),
            "parent post does not exist",
        ),
    ] {
        let (st, e) = post(&c, &s, None, payload).await;
        assert_eq!((st, e["error"].as_str()), (400, Some(message)));
    }
    for visibility in ["subscribers", "conversation"] {
        assert_eq!(
            post(
                &c,
                &s,
                None,
                json!({"status": "x", "visibility": visibility, "content_type": "text/html"})
            )
            .await
            .0,
            200
        );
    }
    assert_eq!(
        post(&c, &s, None, json!({"status": "x".repeat(6000)}))
            .await
            .0,
        200
    );
    let resp = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body("{\"status\": ")
        .send()
        .await
        .unwrap();
    let (st, _, text) = raw(resp).await;
    assert_eq!(st, 400);
    assert!(text.contains("post can not be empty"));

    let s = start(Profile::Takahe).await;
    let (_, v) = post(
        &c,
        &s,
        None,
        json!({"status": "x", "language": "de", "in_reply_to_id": "123"}),
    )
    .await;
    assert_eq!(
        (v["language"].clone(), v["in_reply_to_id"].clone()),
        (Value::Null, Value::Null)
    );
    let (st, e) = post(&c, &s, None, json!({"status": "a".repeat(501)})).await;
    assert_eq!((st, e), (400, json!({"error": "Status is too long"})));
    let (st, _) = post(
        &c,
        &s,
        None,
        json!({"status": "a".repeat(500), "spoiler_text": "not counted"}),
    )
    .await;
    assert_eq!(st, 200);

    let s = start(Profile::Snac).await;
    let (st, v) = post(&c, &s, None, json!({"status": "x", "language": "de", "in_reply_to_id": "9", "poll": {"options": ["a", "b"], "expires_in": 600}})).await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            v["language"].as_str(),
            v["poll"].clone(),
            v["in_reply_to_id"].clone()
        ),
        (Some("en"), Value::Null, Value::Null)
    );
    let resp = c
        .post(format!("{}/api/v1/statuses", s.url))
        .bearer_auth("tok")
        .header("content-type", FORM)
        .body("status=q&poll[options][]=a&poll[options][]=b&poll[expires_in]=600")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["poll"]["options"][1]["title"], "b");
    let (st, e) = post(&c, &s, None, json!({"status": ""})).await;
    assert_eq!(
        (st, e),
        (400, json!("<h1>400 Bad Request (snac/2.94)</h1>"))
    );

    let s = start(Profile::Hollo).await;
    let (st, e) = post(&c, &s, None, json!({"status": "x", "in_reply_to_id": "1"})).await;
    assert_eq!((st, e), (500, json!("")));
    let (st, e) = post(&c, &s, None, json!({"status": ""})).await;
    assert_eq!((st, e["error"].as_str()), (422, Some("invalid_request")));
    assert!(e["zod_error"].is_object());
    assert_eq!(
        post(&c, &s, None, json!({"status": "x".repeat(10_001)}))
            .await
            .0,
        200
    );

    let s = start(Profile::GoToSocial).await;
    let (st, v) = post(&c, &s, None, json!({"status": "x", "visibility": "mutuals_only", "local_only": true, "content_type": "text/markdown"})).await;
    assert_eq!(
        (st, v["visibility"].as_str(), v["local_only"].as_bool()),
        (200, Some("mutuals_only"), Some(true))
    );
    // URLs at full length: 4970 + 1 + a 30-character URL is 5001, 4996 if weighted, although it advertises 25.
    let long = format!(
        "{} https://example.com/{}",
        "a".repeat(4970),
        "b".repeat(10)
    );
    let (st, e) = post(&c, &s, None, json!({"status": long})).await;
    assert_eq!(st, 400, "{e}");
    let (st, _) = post(
        &c,
        &s,
        None,
        json!({"status": "a".repeat(4990), "spoiler_text": "b".repeat(11)}),
    )
    .await;
    assert_eq!(st, 400, "the CW counts");
    let (st, _) = post(&c, &s, None, json!({"status": ""})).await;
    assert_eq!(st, 400);
}
