//! The client API beyond posting, over real HTTP: media (limits, 202 → 206 → 200), status
//! actions and edits, scheduled statuses by id, timelines, notifications, search, accounts,
//! polls and lists, with Mastodon's pagination (`Link` headers, follow-id cursors) and the
//! token and scope checks of every route.

use std::time::Duration;

use mastodon_standin::{Options, SeedStatus, StandIn, ACCOUNT_ID};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const TOKEN: &str = "tok";

struct Answer {
    status: StatusCode,
    body: Value,
    link: Option<String>,
}

async fn start(options: Options) -> (StandIn, Client) {
    let s = StandIn::start(options).await;
    s.seed_user_token(TOKEN, "read write follow");
    (s, Client::new())
}

async fn call(
    c: &Client,
    s: &StandIn,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = c.request(method, format!("{}{path}", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let link = resp
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        link,
    }
}

async fn get(c: &Client, s: &StandIn, path: &str) -> Answer {
    call(c, s, Method::GET, path, Some(TOKEN), None).await
}

async fn post(c: &Client, s: &StandIn, path: &str, body: Value) -> Answer {
    call(c, s, Method::POST, path, Some(TOKEN), Some(body)).await
}

/// A PNG header of `w`×`h` followed by `size` bytes in all.
fn png(w: u32, h: u32, size: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.resize(size.max(v.len()), 7);
    v
}

async fn upload(
    c: &Client,
    s: &StandIn,
    token: Option<&str>,
    content_type: &str,
    data: &[u8],
    description: Option<&str>,
) -> Answer {
    let boundary = "XyZboundary42";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n");
    if let Some(d) = description {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{d}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"focus\"\r\n\r\n0.5,-0.25\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut req = c
        .post(format!("{}/api/v2/media", s.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    Answer {
        status,
        body: resp.json().await.unwrap_or(Value::Null),
        link: None,
    }
}

#[tokio::test]
async fn media_is_202_then_206_then_200_and_the_limits_are_advertised_and_enforced() {
    let (s, c) = start(Options {
        image_size_limit: 200_000,
        description_limit: 20,
        image_matrix_limit: 1_000_000,
        strict_media_ids: true,
        ..Options::default()
    })
    .await;
    let instance = get(&c, &s, "/api/v2/instance").await.body;
    let media = &instance["configuration"]["media_attachments"];
    assert_eq!(media["image_size_limit"], 200_000);
    assert_eq!(media["description_limit"], 20);
    assert_eq!(media["image_matrix_limit"], 1_000_000);
    assert!(media["supported_mime_types"]
        .as_array()
        .unwrap()
        .contains(&json!("image/png")));
    assert_eq!(
        instance["configuration"]["statuses"]["max_media_attachments"],
        4
    );
    let v1 = get(&c, &s, "/api/v1/instance").await.body;
    assert_eq!(
        v1["configuration"]["media_attachments"]["image_size_limit"],
        200_000
    );

    // Tokens and scopes.
    let small = png(100, 80, 1000);
    assert_eq!(
        upload(&c, &s, None, "image/png", &small, None).await.status,
        401
    );
    s.seed_user_token("reader", "read");
    assert_eq!(
        upload(&c, &s, Some("reader"), "image/png", &small, None)
            .await
            .status,
        403
    );
    s.seed_user_token("media", "write:media");
    let ok = upload(&c, &s, Some("media"), "image/png", &small, Some("a cat")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["url"].is_string());
    assert_eq!(ok.body["type"], "image");
    assert_eq!(ok.body["description"], "a cat");
    assert_eq!(ok.body["meta"]["original"]["width"], 100);
    assert_eq!(ok.body["meta"]["focus"], json!({"x": 0.5, "y": -0.25}));
    let recorded = s.media();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["size"], 1000);
    assert_eq!(recorded[0]["content_type"], "image/png");
    let digest: String = Sha256::digest(&small)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(recorded[0]["sha256"], digest);

    // Large image: processed asynchronously.
    let big = upload(
        &c,
        &s,
        Some(TOKEN),
        "image/png",
        &png(100, 80, 70 * 1024),
        None,
    )
    .await;
    assert_eq!(big.status, 202);
    assert!(big.body["url"].is_null());
    let big_id = big.body["id"].as_str().unwrap().to_owned();
    let refused = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "x", "media_ids": [big_id]}),
    )
    .await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.body["error"],
        "Cannot attach files that have not finished processing. Try again in a moment!"
    );
    let first = get(&c, &s, &format!("/api/v1/media/{big_id}")).await;
    assert_eq!(first.status, 206);
    assert!(first.body["url"].is_null());
    let second = get(&c, &s, &format!("/api/v1/media/{big_id}")).await;
    assert_eq!(second.status, 200);
    assert!(second.body["url"].is_string());
    let put = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/media/{big_id}"),
        Some(TOKEN),
        Some(json!({"description": "now described", "focus": "0,1"})),
    )
    .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body["description"], "now described");
    assert_eq!(s.hits("GET /api/v1/media/:id"), 2);
    assert_eq!(s.hits("POST /api/v2/media"), 4);

    // Video: always 202.
    let video = upload(&c, &s, Some(TOKEN), "video/mp4", b"not really mp4", None).await;
    assert_eq!(video.status, 202);
    assert_eq!(video.body["type"], "video");

    // Limits.
    let too_big = upload(
        &c,
        &s,
        Some(TOKEN),
        "image/png",
        &png(10, 10, 200_001),
        None,
    )
    .await;
    assert_eq!(too_big.status, 422);
    assert_eq!(
        too_big.body["error"],
        "Validation failed: File file size must be less than 195.3 KB"
    );
    let wrong_type = upload(&c, &s, Some(TOKEN), "text/plain", b"hello", None).await;
    assert_eq!(wrong_type.status, 422);
    let long = upload(
        &c,
        &s,
        Some(TOKEN),
        "image/png",
        &small,
        Some(&"d".repeat(21)),
    )
    .await;
    assert_eq!(long.status, 422);
    assert_eq!(
        long.body["error"],
        "Validation failed: Description is too long (maximum is 20 characters)"
    );
    let huge = upload(
        &c,
        &s,
        Some(TOKEN),
        "image/png",
        &png(2000, 2000, 100),
        None,
    )
    .await;
    assert_eq!(huge.status, 422);
    assert_eq!(huge.body["error"], "2000x2000 images are not supported");

    // Attaching.
    let small_id = ok.body["id"].as_str().unwrap().to_owned();
    let unknown = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "x", "media_ids": ["12345"]}),
    )
    .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(
        unknown.body["error"],
        "Media 12345 not found or already attached to another post"
    );
    let five = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "x", "media_ids": ["1", "2", "3", "4", "5"]}),
    )
    .await;
    assert_eq!(five.status, 422);
    assert_eq!(five.body["error"], "Cannot attach more than 4 files");
    let posted = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "two pictures", "media_ids": [small_id, big_id]}),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let attached = posted.body["media_attachments"].as_array().unwrap();
    assert_eq!(attached.len(), 2);
    assert_eq!(attached[0]["id"], small_id.as_str());
    assert_eq!(attached[1]["description"], "now described");
    // Attached media is no longer the uploader's to change, nor to attach again.
    assert_eq!(
        get(&c, &s, &format!("/api/v1/media/{small_id}"))
            .await
            .status,
        404
    );
    let again = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "again", "media_ids": [small_id]}),
    )
    .await;
    assert_eq!(again.status, 422);
}

#[tokio::test]
async fn media_processing_can_be_timed_and_gotosocial_advertises_its_own_limits() {
    let (s, c) = start(Options {
        media_processing_polls: 1000,
        media_processing_time: Some(Duration::from_millis(200)),
        ..Options::default()
    })
    .await;
    let v = upload(&c, &s, Some(TOKEN), "audio/mpeg", b"ID3....", None).await;
    assert_eq!(v.status, 202);
    let id = v.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&c, &s, &format!("/api/v1/media/{id}")).await.status,
        206
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        get(&c, &s, &format!("/api/v1/media/{id}")).await.status,
        200
    );

    let gts = StandIn::start(Options::for_profile(mastodon_standin::Profile::GoToSocial)).await;
    let doc = get(&c, &gts, "/api/v2/instance").await.body;
    let config = &doc["configuration"];
    assert_eq!(config["statuses"]["max_media_attachments"], 6);
    assert_eq!(config["media_attachments"]["image_size_limit"], 41_943_040);
    assert_eq!(
        config["media_attachments"]["image_matrix_limit"],
        16_777_216
    );
    assert_eq!(config["media_attachments"]["video_frame_rate_limit"], 60);
}

#[tokio::test]
async fn status_actions_are_idempotent_and_counted() {
    let (s, c) = start(Options::default()).await;
    let alice = s.seed_account("alice");
    let hers = s.seed_status(&alice, "hello from alice");
    let mine = post(&c, &s, "/api/v1/statuses", json!({"status": "mine"}))
        .await
        .body;
    let mine = mine["id"].as_str().unwrap().to_owned();

    for _ in 0..2 {
        let fav = post(
            &c,
            &s,
            &format!("/api/v1/statuses/{hers}/favourite"),
            json!({}),
        )
        .await;
        assert_eq!(fav.status, 200);
        assert_eq!(fav.body["favourited"], true);
        assert_eq!(fav.body["favourites_count"], 1);
    }
    let unfav = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/unfavourite"),
        json!({}),
    )
    .await;
    assert_eq!(unfav.body["favourited"], false);
    assert_eq!(unfav.body["favourites_count"], 0);

    let reblog = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/reblog"),
        json!({}),
    )
    .await;
    assert_eq!(reblog.status, 200);
    assert_ne!(reblog.body["id"], hers.as_str());
    assert_eq!(reblog.body["reblog"]["id"], hers.as_str());
    assert_eq!(reblog.body["reblog"]["reblogged"], true);
    assert_eq!(reblog.body["reblog"]["reblogs_count"], 1);
    assert_eq!(reblog.body["account"]["id"], ACCOUNT_ID);
    let twice = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/reblog"),
        json!({}),
    )
    .await;
    assert_eq!(twice.body["id"], reblog.body["id"]);
    let unreblog = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/unreblog"),
        json!({}),
    )
    .await;
    assert_eq!(unreblog.body["id"], hers.as_str());
    assert_eq!(unreblog.body["reblogged"], false);
    assert_eq!(unreblog.body["reblogs_count"], 0);

    let bm = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/bookmark"),
        json!({}),
    )
    .await;
    assert_eq!(bm.body["bookmarked"], true);
    let shown = get(&c, &s, &format!("/api/v1/statuses/{hers}")).await;
    assert_eq!(shown.body["bookmarked"], true);
    let unbm = post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/unbookmark"),
        json!({}),
    )
    .await;
    assert_eq!(unbm.body["bookmarked"], false);

    let foreign = post(&c, &s, &format!("/api/v1/statuses/{hers}/pin"), json!({})).await;
    assert_eq!(foreign.status, 422);
    assert_eq!(
        foreign.body["error"],
        "Validation failed: Someone else's post cannot be pinned"
    );
    let pin = post(&c, &s, &format!("/api/v1/statuses/{mine}/pin"), json!({})).await;
    assert_eq!(pin.body["pinned"], true);
    assert_eq!(
        post(&c, &s, &format!("/api/v1/statuses/{mine}/pin"), json!({}))
            .await
            .status,
        200
    );
    for i in 0..4 {
        let id = post(
            &c,
            &s,
            "/api/v1/statuses",
            json!({"status": format!("p{i}")}),
        )
        .await
        .body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            post(&c, &s, &format!("/api/v1/statuses/{id}/pin"), json!({}))
                .await
                .status,
            200
        );
    }
    let sixth = post(&c, &s, "/api/v1/statuses", json!({"status": "six"}))
        .await
        .body;
    let sixth = sixth["id"].as_str().unwrap();
    let over = post(&c, &s, &format!("/api/v1/statuses/{sixth}/pin"), json!({})).await;
    assert_eq!(over.status, 422);
    assert_eq!(
        over.body["error"],
        "Validation failed: You have already pinned the maximum number of posts"
    );
    let pinned = get(
        &c,
        &s,
        &format!("/api/v1/accounts/{ACCOUNT_ID}/statuses?pinned=true"),
    )
    .await;
    assert_eq!(pinned.body.as_array().unwrap().len(), 5);
    let unpin = post(&c, &s, &format!("/api/v1/statuses/{mine}/unpin"), json!({})).await;
    assert_eq!(unpin.body["pinned"], false);

    // Unknown ids, tokens, scopes.
    let missing = post(&c, &s, "/api/v1/statuses/999/favourite", json!({})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, json!({"error": "Record not found"}));
    assert_eq!(get(&c, &s, "/api/v1/statuses/999").await.status, 404);
    let no_token = call(
        &c,
        &s,
        Method::POST,
        &format!("/api/v1/statuses/{hers}/favourite"),
        None,
        None,
    )
    .await;
    assert_eq!(no_token.status, 401);
    let bad_token = call(
        &c,
        &s,
        Method::GET,
        &format!("/api/v1/statuses/{hers}"),
        Some("nope"),
        None,
    )
    .await;
    assert_eq!(bad_token.status, 401);
    s.seed_user_token("statuses-only", "write:statuses read:statuses");
    let scoped = call(
        &c,
        &s,
        Method::POST,
        &format!("/api/v1/statuses/{hers}/favourite"),
        Some("statuses-only"),
        None,
    )
    .await;
    assert_eq!(scoped.status, 403);
    s.seed_user_token("favourites", "write:favourites");
    let granular = call(
        &c,
        &s,
        Method::POST,
        &format!("/api/v1/statuses/{hers}/favourite"),
        Some("favourites"),
        None,
    )
    .await;
    assert_eq!(granular.status, 200);
    // Anyone may read a public status without a token.
    let anonymous = call(
        &c,
        &s,
        Method::GET,
        &format!("/api/v1/statuses/{hers}"),
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(s.hits("POST /api/v1/statuses/:id/favourite"), 6);
}

#[tokio::test]
async fn edits_deletes_and_context_follow_the_thread() {
    let (s, c) = start(Options::default()).await;
    let bob = s.seed_account("bob");
    let root = s.seed_status(&bob, "root #Topic");
    let reply = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "a reply", "in_reply_to_id": root}),
    )
    .await
    .body;
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    let deeper = s.seed_status_with(
        &bob,
        SeedStatus {
            text: "deeper".into(),
            in_reply_to: Some(reply_id.clone()),
            ..SeedStatus::default()
        },
    );
    let context = get(&c, &s, &format!("/api/v1/statuses/{reply_id}/context"))
        .await
        .body;
    assert_eq!(context["ancestors"][0]["id"], root.as_str());
    assert_eq!(context["descendants"][0]["id"], deeper.as_str());
    let root_shown = get(&c, &s, &format!("/api/v1/statuses/{root}")).await.body;
    assert_eq!(root_shown["replies_count"], 1);

    let unchanged = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/statuses/{reply_id}"),
        Some(TOKEN),
        Some(json!({"status": "a reply"})),
    )
    .await;
    assert!(unchanged.body["edited_at"].is_null());
    let edited = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/statuses/{reply_id}"),
        Some(TOKEN),
        Some(json!({"status": "an edited reply #news", "spoiler_text": "cw", "language": "de"})),
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert!(edited.body["edited_at"].is_string());
    assert_eq!(edited.body["spoiler_text"], "cw");
    assert_eq!(edited.body["sensitive"], true);
    assert_eq!(edited.body["language"], "de");
    assert!(edited.body["content"].as_str().unwrap().contains("edited"));
    assert_eq!(edited.body["tags"][0]["name"], "news");
    let too_long = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/statuses/{reply_id}"),
        Some(TOKEN),
        Some(json!({"status": "x".repeat(501)})),
    )
    .await;
    assert_eq!(too_long.status, 422);
    let not_mine = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/statuses/{root}"),
        Some(TOKEN),
        Some(json!({"status": "hijack"})),
    )
    .await;
    assert_eq!(not_mine.status, 403);

    let deleted = call(
        &c,
        &s,
        Method::DELETE,
        &format!("/api/v1/statuses/{reply_id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["text"], "an edited reply #news");
    assert_eq!(deleted.body["id"], reply_id.as_str());
    assert_eq!(
        get(&c, &s, &format!("/api/v1/statuses/{reply_id}"))
            .await
            .status,
        404
    );
    let again = call(
        &c,
        &s,
        Method::DELETE,
        &format!("/api/v1/statuses/{reply_id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn scheduled_statuses_are_read_moved_and_cancelled_by_id() {
    let (s, c) = start(Options::default()).await;
    let at = "2999-01-01T10:00:00.000Z";
    let sched = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "later", "scheduled_at": at}),
    )
    .await
    .body;
    let id = sched["id"].as_str().unwrap().to_owned();
    let shown = get(&c, &s, &format!("/api/v1/scheduled_statuses/{id}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["params"]["text"], "later");
    let soon = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/scheduled_statuses/{id}"),
        Some(TOKEN),
        Some(json!({"scheduled_at": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(soon.status, 422);
    assert_eq!(
        soon.body["error"],
        "Validation failed: Scheduled at The scheduled date must be in the future"
    );
    let moved = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/scheduled_statuses/{id}"),
        Some(TOKEN),
        Some(json!({"scheduled_at": "2998-05-05T05:05:05.000Z"})),
    )
    .await;
    assert_eq!(moved.status, 200);
    assert_eq!(moved.body["scheduled_at"], "2998-05-05T05:05:05.000Z");
    let gone = call(
        &c,
        &s,
        Method::DELETE,
        &format!("/api/v1/scheduled_statuses/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((gone.status, gone.body), (StatusCode::OK, json!({})));
    assert_eq!(
        get(&c, &s, &format!("/api/v1/scheduled_statuses/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        get(&c, &s, "/api/v1/scheduled_statuses").await.body,
        json!([])
    );
}

#[tokio::test]
async fn timelines_filter_and_link_headers_are_written_as_mastodon_writes_them() {
    let (s, c) = start(Options::default()).await;
    let carol = s.seed_account("carol");
    let remote = s.seed_account("dave@remote.example");
    let mut carols = Vec::new();
    for i in 0..5 {
        carols.push(s.seed_status(&carol, &format!("carol {i} #Rust")));
    }
    let remote_post = s.seed_status(&remote, "remote #rust #go");
    s.seed_status_with(
        &carol,
        SeedStatus {
            text: "private".into(),
            visibility: "private".into(),
            ..SeedStatus::default()
        },
    );
    let mine = post(&c, &s, "/api/v1/statuses", json!({"status": "me #rust"}))
        .await
        .body;

    // Home: own posts until carol is followed.
    let home = get(&c, &s, "/api/v1/timelines/home").await.body;
    assert_eq!(home.as_array().unwrap().len(), 1);
    let followed = post(
        &c,
        &s,
        &format!("/api/v1/accounts/{carol}/follow"),
        json!({}),
    )
    .await;
    assert_eq!(followed.body["following"], true);
    let home = get(&c, &s, "/api/v1/timelines/home?limit=3").await;
    let ids: Vec<&str> = home
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], mine["id"].as_str().unwrap());
    // The private status of a followed account is in home.
    assert_eq!(home.body[1]["visibility"], "private", "{}", home.body);
    let base = &s.url;
    assert_eq!(
        home.link.as_deref(),
        Some(
            format!(
                "<{base}/api/v1/timelines/home?limit=3&max_id={}>; rel=\"next\", <{base}/api/v1/timelines/home?limit=3&min_id={}>; rel=\"prev\"",
                ids[2], ids[0]
            )
            .as_str()
        )
    );
    let next = get(
        &c,
        &s,
        &format!("/api/v1/timelines/home?limit=3&max_id={}", ids[2]),
    )
    .await;
    assert_eq!(next.body[0]["id"], carols[3].as_str());
    // A page that is not full has no `next`.
    let last = get(
        &c,
        &s,
        &format!("/api/v1/timelines/home?max_id={}", carols[1]),
    )
    .await;
    assert_eq!(last.body.as_array().unwrap().len(), 1);
    assert!(!last.link.unwrap().contains("rel=\"next\""));
    let min = get(
        &c,
        &s,
        &format!("/api/v1/timelines/home?limit=2&min_id={}", carols[0]),
    )
    .await;
    assert_eq!(min.body[0]["id"], carols[2].as_str());
    assert_eq!(min.body[1]["id"], carols[1].as_str());
    assert_eq!(
        get(&c, &s, "/api/v1/timelines/home?limit=500")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // Public: no token needed, local / remote.
    let public = call(&c, &s, Method::GET, "/api/v1/timelines/public", None, None).await;
    assert_eq!(public.body.as_array().unwrap().len(), 7);
    let local = get(&c, &s, "/api/v1/timelines/public?local=true")
        .await
        .body;
    assert_eq!(local.as_array().unwrap().len(), 6);
    let remote_only = get(&c, &s, "/api/v1/timelines/public?remote=true")
        .await
        .body;
    assert_eq!(remote_only[0]["id"], remote_post.as_str());
    let media = get(&c, &s, "/api/v1/timelines/public?only_media=true")
        .await
        .body;
    assert_eq!(media, json!([]));

    // Tags: any / all / none, query params kept in the Link.
    let tag = get(&c, &s, "/api/v1/timelines/tag/rust?limit=2&none[]=go").await;
    assert_eq!(tag.body.as_array().unwrap().len(), 2);
    assert!(tag.link.unwrap().starts_with(&format!(
        "<{base}/api/v1/timelines/tag/rust?limit=2&max_id="
    )));
    let all = get(&c, &s, "/api/v1/timelines/tag/rust?all[]=go")
        .await
        .body;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let none = get(&c, &s, "/api/v1/timelines/tag/rust?none[]=go")
        .await
        .body;
    assert_eq!(none.as_array().unwrap().len(), 6);
    let any = get(&c, &s, "/api/v1/timelines/tag/nothing?any[]=go")
        .await
        .body;
    assert_eq!(any.as_array().unwrap().len(), 1);

    // Lists.
    let list = s.seed_list("friends", &[&remote]);
    let listed = get(&c, &s, &format!("/api/v1/timelines/list/{list}"))
        .await
        .body;
    assert_eq!(listed[0]["id"], remote_post.as_str());
    assert_eq!(get(&c, &s, "/api/v1/timelines/list/1").await.status, 404);

    // Tokens and scopes.
    assert_eq!(
        call(&c, &s, Method::GET, "/api/v1/timelines/home", None, None)
            .await
            .status,
        401
    );
    s.seed_user_token("writer", "write");
    assert_eq!(
        call(
            &c,
            &s,
            Method::GET,
            "/api/v1/timelines/home",
            Some("writer"),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &c,
            &s,
            Method::GET,
            "/api/v1/timelines/public",
            Some("writer"),
            None
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn followers_page_by_the_follow_id_not_the_account_id() {
    let (s, c) = start(Options::default()).await;
    let a = s.seed_account("a");
    let b = s.seed_account("b");
    let d = s.seed_account("d");
    // Followed in another order than created.
    let fd = s.seed_follow(&d, ACCOUNT_ID);
    let fa = s.seed_follow(&a, ACCOUNT_ID);
    let fb = s.seed_follow(&b, ACCOUNT_ID);
    let path = format!("/api/v1/accounts/{ACCOUNT_ID}/followers");
    let first = get(&c, &s, &format!("{path}?limit=2")).await;
    let ids: Vec<&str> = first
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let base = &s.url;
    assert_eq!(
        first.link.as_deref(),
        Some(
            format!(
                "<{base}{path}?limit=2&max_id={fa}>; rel=\"next\", <{base}{path}?limit=2&min_id={fb}>; rel=\"prev\""
            )
            .as_str()
        )
    );
    let next = get(&c, &s, &format!("{path}?limit=2&max_id={fa}")).await;
    assert_eq!(next.body[0]["id"], d.as_str());
    // The last account's id as a cursor is not the next page.
    let wrong = get(&c, &s, &format!("{path}?limit=2&max_id={a}")).await;
    assert_ne!(wrong.body, next.body);
    assert_eq!(wrong.body, json!([]));
    let _ = fd;

    // Following, relationships, follow options, unfollow.
    let follow = post(
        &c,
        &s,
        &format!("/api/v1/accounts/{a}/follow"),
        json!({"reblogs": false, "notify": true, "languages": ["en", "de"]}),
    )
    .await;
    assert_eq!(follow.status, 200);
    assert_eq!(follow.body["following"], true);
    assert_eq!(follow.body["followed_by"], true);
    assert_eq!(follow.body["showing_reblogs"], false);
    assert_eq!(follow.body["notifying"], true);
    assert_eq!(follow.body["languages"], json!(["en", "de"]));
    let following = get(&c, &s, &format!("/api/v1/accounts/{ACCOUNT_ID}/following")).await;
    assert_eq!(following.body[0]["id"], a.as_str());
    let rels = get(
        &c,
        &s,
        &format!("/api/v1/accounts/relationships?id[]={a}&id[]={d}&id[]=404"),
    )
    .await
    .body;
    assert_eq!(rels.as_array().unwrap().len(), 2);
    assert_eq!(rels[0]["following"], true);
    assert_eq!(rels[1]["following"], false);
    assert_eq!(rels[1]["followed_by"], true);
    let unfollow = post(&c, &s, &format!("/api/v1/accounts/{a}/unfollow"), json!({})).await;
    assert_eq!(unfollow.body["following"], false);
    assert_eq!(
        post(
            &c,
            &s,
            &format!("/api/v1/accounts/{ACCOUNT_ID}/follow"),
            json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        post(&c, &s, "/api/v1/accounts/1/follow", json!({}))
            .await
            .status,
        404
    );
    s.seed_user_token("reader", "read");
    assert_eq!(
        call(
            &c,
            &s,
            Method::POST,
            &format!("/api/v1/accounts/{a}/follow"),
            Some("reader"),
            None
        )
        .await
        .status,
        403
    );

    // Accounts.
    let me = get(&c, &s, &format!("/api/v1/accounts/{ACCOUNT_ID}"))
        .await
        .body;
    assert_eq!(me["followers_count"], 3);
    let looked = get(&c, &s, "/api/v1/accounts/lookup?acct=b").await.body;
    assert_eq!(looked["id"], b.as_str());
    let remote = s.seed_account("zed@elsewhere.example");
    let looked = get(
        &c,
        &s,
        "/api/v1/accounts/lookup?acct=@zed@elsewhere.example",
    )
    .await
    .body;
    assert_eq!(looked["id"], remote.as_str());
    assert_eq!(looked["acct"], "zed@elsewhere.example");
    assert_eq!(
        get(&c, &s, "/api/v1/accounts/lookup?acct=nobody")
            .await
            .status,
        404
    );
    assert_eq!(get(&c, &s, "/api/v1/accounts/1").await.status, 404);
}

#[tokio::test]
async fn notifications_arise_filter_page_and_are_dismissed() {
    let (s, c) = start(Options::default()).await;
    let erin = s.seed_account("erin");
    let mine = post(&c, &s, "/api/v1/statuses", json!({"status": "mine"}))
        .await
        .body;
    let mine = mine["id"].as_str().unwrap().to_owned();
    let mention = s.seed_status(&erin, "hey @sidecar look");
    s.seed_favourite(&erin, &mine);
    s.seed_reblog(&erin, &mine).unwrap();
    s.seed_follow(&erin, ACCOUNT_ID);
    let poll = s.seed_notification("poll", &erin, Some(&mine));

    let all = get(&c, &s, "/api/v1/notifications").await.body;
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["poll", "follow", "reblog", "favourite", "mention"]);
    assert_eq!(all[4]["status"]["id"], mention.as_str());
    assert_eq!(all[4]["account"]["id"], erin.as_str());
    let only = get(
        &c,
        &s,
        "/api/v1/notifications?types[]=mention&types[]=follow",
    )
    .await
    .body;
    assert_eq!(only.as_array().unwrap().len(), 2);
    let excluded = get(&c, &s, "/api/v1/notifications?exclude_types[]=poll")
        .await
        .body;
    assert_eq!(excluded.as_array().unwrap().len(), 4);
    let paged = get(
        &c,
        &s,
        "/api/v1/notifications?limit=2&types[]=mention&types[]=favourite&types[]=reblog",
    )
    .await;
    assert_eq!(paged.body.as_array().unwrap().len(), 2);
    let link = paged.link.unwrap();
    assert!(
        link.contains("?limit=2&max_id=")
            && link.contains("&types%5B%5D=mention&types%5B%5D=favourite&types%5B%5D=reblog>"),
        "{link}"
    );
    let one = get(&c, &s, &format!("/api/v1/notifications/{poll}")).await;
    assert_eq!(one.body["type"], "poll");
    let dismissed = post(
        &c,
        &s,
        &format!("/api/v1/notifications/{poll}/dismiss"),
        json!({}),
    )
    .await;
    assert_eq!(
        (dismissed.status, dismissed.body),
        (StatusCode::OK, json!({}))
    );
    assert_eq!(
        get(&c, &s, &format!("/api/v1/notifications/{poll}"))
            .await
            .status,
        404
    );
    let cleared = post(&c, &s, "/api/v1/notifications/clear", json!({})).await;
    assert_eq!(cleared.status, 200);
    assert_eq!(get(&c, &s, "/api/v1/notifications").await.body, json!([]));
    // A mention by the stand-in account notifies the one mentioned.
    post(&c, &s, "/api/v1/statuses", json!({"status": "hi @erin"})).await;
    assert!(s
        .notifications()
        .iter()
        .any(|n| n["recipient"] == erin.as_str() && n["type"] == "mention"));
    s.seed_user_token("statuses", "read:statuses");
    assert_eq!(
        call(
            &c,
            &s,
            Method::GET,
            "/api/v1/notifications",
            Some("statuses"),
            None
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn search_finds_accounts_statuses_and_tags_and_statuses_need_a_token() {
    let (s, c) = start(Options::default()).await;
    let frank = s.seed_account("frank");
    s.seed_status(&frank, "searching for #Gardening tips");
    let found = get(&c, &s, "/api/v2/search?q=garden").await.body;
    assert_eq!(found["statuses"].as_array().unwrap().len(), 1);
    assert_eq!(found["hashtags"][0]["name"], "gardening");
    let tags = get(&c, &s, "/api/v2/search?q=%23garden&type=hashtags")
        .await
        .body;
    assert_eq!(tags["hashtags"][0]["name"], "gardening");
    let accounts = get(&c, &s, "/api/v2/search?q=fra&type=accounts").await.body;
    assert_eq!(accounts["accounts"][0]["id"], frank.as_str());
    assert_eq!(accounts["statuses"], json!([]));
    let anonymous = call(&c, &s, Method::GET, "/api/v2/search?q=garden", None, None).await;
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.body["statuses"], json!([]));
    let paged = call(
        &c,
        &s,
        Method::GET,
        "/api/v2/search?q=garden&offset=1",
        None,
        None,
    )
    .await;
    assert_eq!(paged.status, 401);
    let resolve = call(
        &c,
        &s,
        Method::GET,
        "/api/v2/search?q=x&resolve=true",
        None,
        None,
    )
    .await;
    assert_eq!(resolve.status, 401);
    let following = get(&c, &s, "/api/v2/search?q=frank&following=true")
        .await
        .body;
    assert_eq!(following["accounts"], json!([]));
}

#[tokio::test]
async fn polls_take_one_vote_per_account_and_refuse_their_author_and_late_votes() {
    let (s, c) = start(Options::default()).await;
    let gina = s.seed_account("gina");
    let poll_status = s.seed_status_with(
        &gina,
        SeedStatus {
            text: "pick".into(),
            poll: Some((vec!["a".into(), "b".into()], 3600, false)),
            ..SeedStatus::default()
        },
    );
    let status = get(&c, &s, &format!("/api/v1/statuses/{poll_status}"))
        .await
        .body;
    let pid = status["poll"]["id"].as_str().unwrap().to_owned();
    let shown = get(&c, &s, &format!("/api/v1/polls/{pid}")).await.body;
    assert_eq!(shown["voted"], false);
    let voted = post(
        &c,
        &s,
        &format!("/api/v1/polls/{pid}/votes"),
        json!({"choices": ["1"]}),
    )
    .await;
    assert_eq!(voted.status, 200, "{}", voted.body);
    assert_eq!(voted.body["voted"], true);
    assert_eq!(voted.body["own_votes"], json!([1]));
    assert_eq!(voted.body["options"][1]["votes_count"], 1);
    assert_eq!(voted.body["options"][1]["title"], "b");
    let twice = post(
        &c,
        &s,
        &format!("/api/v1/polls/{pid}/votes"),
        json!({"choices": ["0"]}),
    )
    .await;
    assert_eq!(twice.status, 422);
    assert_eq!(
        twice.body["error"],
        "Validation failed: You have already voted on this poll"
    );
    let status = get(&c, &s, &format!("/api/v1/statuses/{poll_status}"))
        .await
        .body;
    assert_eq!(status["poll"]["votes_count"], 1);

    let ended = s.seed_status_with(
        &gina,
        SeedStatus {
            text: "over".into(),
            poll: Some((vec!["a".into(), "b".into()], 0, false)),
            ..SeedStatus::default()
        },
    );
    let ended_pid = get(&c, &s, &format!("/api/v1/statuses/{ended}")).await.body["poll"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = post(
        &c,
        &s,
        &format!("/api/v1/polls/{ended_pid}/votes"),
        json!({"choices": ["0"]}),
    )
    .await;
    assert_eq!(late.status, 422);
    assert_eq!(
        late.body["error"],
        "Validation failed: The poll has already ended"
    );

    let mine = post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "mine", "poll": {"options": ["x", "y"], "expires_in": 600}}),
    )
    .await
    .body;
    let my_pid = mine["poll"]["id"].as_str().unwrap();
    let own = post(
        &c,
        &s,
        &format!("/api/v1/polls/{my_pid}/votes"),
        json!({"choices": ["0"]}),
    )
    .await;
    assert_eq!(own.status, 422);
    assert_eq!(
        own.body["error"],
        "Validation failed: You cannot vote in your own polls"
    );
    let bad = post(
        &c,
        &s,
        &format!("/api/v1/polls/{pid}/votes"),
        json!({"choices": ["9"]}),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(get(&c, &s, "/api/v1/polls/1").await.status, 404);
}

#[tokio::test]
async fn lists_are_made_of_followed_accounts() {
    let (s, c) = start(Options::default()).await;
    let hal = s.seed_account("hal");
    let ivy = s.seed_account("ivy");
    let blank = post(&c, &s, "/api/v1/lists", json!({"title": " "})).await;
    assert_eq!(blank.status, 422);
    assert_eq!(
        blank.body["error"],
        "Validation failed: Title can't be blank"
    );
    let bad_policy = post(
        &c,
        &s,
        "/api/v1/lists",
        json!({"title": "x", "replies_policy": "all"}),
    )
    .await;
    assert_eq!(bad_policy.status, 422);
    let made = post(
        &c,
        &s,
        "/api/v1/lists",
        json!({"title": "pals", "replies_policy": "followed", "exclusive": true}),
    )
    .await;
    assert_eq!(made.status, 200);
    assert_eq!(made.body["replies_policy"], "followed");
    assert_eq!(made.body["exclusive"], true);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/lists/{id}/accounts");
    let unfollowed = post(&c, &s, &path, json!({"account_ids": [hal]})).await;
    assert_eq!(unfollowed.status, 404);
    assert_eq!(unfollowed.body["error"], "Record not found");
    post(&c, &s, &format!("/api/v1/accounts/{hal}/follow"), json!({})).await;
    post(&c, &s, &format!("/api/v1/accounts/{ivy}/follow"), json!({})).await;
    let added = post(&c, &s, &path, json!({"account_ids": [hal, ivy]})).await;
    assert_eq!((added.status, added.body), (StatusCode::OK, json!({})));
    let dup = post(&c, &s, &path, json!({"account_ids": [hal]})).await;
    assert_eq!(dup.status, 422);
    let members = get(&c, &s, &format!("{path}?limit=1")).await;
    assert_eq!(members.body[0]["id"], ivy.as_str());
    assert!(members.link.unwrap().contains("rel=\"next\""));
    let everyone = get(&c, &s, &format!("{path}?limit=0")).await;
    assert_eq!(everyone.body.as_array().unwrap().len(), 2);
    assert!(everyone.link.is_none());
    let removed = call(
        &c,
        &s,
        Method::DELETE,
        &path,
        Some(TOKEN),
        Some(json!({"account_ids": [hal]})),
    )
    .await;
    assert_eq!(removed.status, 200);
    assert_eq!(get(&c, &s, &path).await.body.as_array().unwrap().len(), 1);

    let renamed = call(
        &c,
        &s,
        Method::PUT,
        &format!("/api/v1/lists/{id}"),
        Some(TOKEN),
        Some(json!({"title": "friends"})),
    )
    .await;
    assert_eq!(renamed.body["title"], "friends");
    assert_eq!(
        get(&c, &s, "/api/v1/lists").await.body[0]["title"],
        "friends"
    );
    assert_eq!(
        get(&c, &s, &format!("/api/v1/lists/{id}")).await.status,
        200
    );
    let deleted = call(
        &c,
        &s,
        Method::DELETE,
        &format!("/api/v1/lists/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        get(&c, &s, &format!("/api/v1/lists/{id}")).await.status,
        404
    );
    s.seed_user_token("reader", "read:lists");
    assert_eq!(
        call(
            &c,
            &s,
            Method::POST,
            "/api/v1/lists",
            Some("reader"),
            Some(json!({"title": "x"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(&c, &s, Method::GET, "/api/v1/lists", Some("reader"), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn account_statuses_filter_and_page() {
    let (s, c) = start(Options::default()).await;
    let first = post(&c, &s, "/api/v1/statuses", json!({"status": "one #a"}))
        .await
        .body;
    let first = first["id"].as_str().unwrap().to_owned();
    post(
        &c,
        &s,
        "/api/v1/statuses",
        json!({"status": "reply", "in_reply_to_id": first}),
    )
    .await;
    let kim = s.seed_account("kim");
    let hers = s.seed_status(&kim, "kim's");
    post(
        &c,
        &s,
        &format!("/api/v1/statuses/{hers}/reblog"),
        json!({}),
    )
    .await;
    let path = format!("/api/v1/accounts/{ACCOUNT_ID}/statuses");
    assert_eq!(get(&c, &s, &path).await.body.as_array().unwrap().len(), 3);
    let no_replies = get(&c, &s, &format!("{path}?exclude_replies=true"))
        .await
        .body;
    assert_eq!(no_replies.as_array().unwrap().len(), 2);
    let no_reblogs = get(
        &c,
        &s,
        &format!("{path}?exclude_reblogs=true&exclude_replies=true"),
    )
    .await
    .body;
    assert_eq!(no_reblogs.as_array().unwrap().len(), 1);
    let tagged = get(&c, &s, &format!("{path}?tagged=a")).await.body;
    assert_eq!(tagged[0]["id"], first.as_str());
    let theirs = get(&c, &s, &format!("/api/v1/accounts/{kim}/statuses"))
        .await
        .body;
    assert_eq!(theirs[0]["id"], hers.as_str());
    let paged = get(&c, &s, &format!("{path}?limit=1")).await;
    assert!(paged
        .link
        .unwrap()
        .contains(&format!("<{}{path}?limit=1&max_id=", s.url)));
}
