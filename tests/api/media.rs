//! Media: `uploadMedia` in every format and as multipart/form-data, the 202 followed until processed,
//! `postStatus` uploading its `media` items first (with alt text) and reusing them on a retried
//! message, and the server's published limits refusing before anything is sent.

use base64::Engine as _;
use mastodon_standin::{Options, Profile};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Format, TestApp, FORMATS};

const UPLOAD: &str = "POST /api/v2/media";
const POST: &str = "POST /api/v1/statuses";

/// A PNG of `width` × `height` (only its head is real: the stand-in reads the size from IHDR),
/// padded to `bytes`.
fn png(width: u32, height: u32, bytes: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(b"\x08\x06\0\0\0");
    let mut i = 0u32;
    while out.len() < bytes {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.push((i >> 16) as u8);
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn app_with(options: Options) -> TestApp {
    let app = spawn_app_with(options, |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

fn soap(format: Format) -> bool {
    matches!(format, Format::Soap11 | Format::Soap12)
}

/// A list as the formats give it back: XML gives one item as an object.
fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[tokio::test]
async fn an_image_uploads_with_its_alt_text_in_every_format() {
    let app = app_with(Options::default()).await;
    for (i, format) in FORMATS.into_iter().enumerate() {
        let file = png(2, 2, 300 + i);
        let answer = app
            .call(
                format,
                "uploadMedia",
                json!({"data": b64(&file), "description": format!("a red square {i}"), "focus": "0.5,-0.5"}),
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let attachment = answer.value();
        assert_eq!(attachment["type"], "image", "{format:?}: {attachment}");
        assert_eq!(attachment["description"], format!("a red square {i}"));
        assert!(attachment["url"].is_string(), "{format:?}: {attachment}");
        let kept = app.standin.media();
        let kept = kept.last().unwrap();
        assert_eq!(
            kept["sha256"],
            sha256(&file),
            "{format:?}: the bytes arrived as sent"
        );
        assert_eq!(kept["content_type"], "image/png", "told from its bytes");
        assert_eq!(kept["filename"], "file.png");
        assert_eq!(kept["focus"], json!({"x": 0.5, "y": -0.5}));
    }
    assert_eq!(app.standin.hits(UPLOAD), 4);
}

/// One part: its name, its file name and type (a file), its bytes.
pub(crate) type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

/// A `multipart/form-data` body as curl's `-F` makes it.
pub(crate) fn form_data(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "------------------------d74496d66958873e";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some((file_name, content_type)) = file {
            body.extend_from_slice(
                format!("; filename=\"{file_name}\"\r\nContent-Type: {content_type}").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `parts` as a multipart/form-data body, posted on `operation`'s REST path.
async fn post_form(app: &TestApp, operation: &str, parts: &[Part<'_>]) -> crate::helpers::Answer {
    let (content_type, body) = form_data(parts);
    app.post_raw(
        &format!("/v1/operations/{operation}"),
        &[("content-type", &content_type)],
        body,
    )
    .await
}

#[tokio::test]
async fn a_multipart_upload_on_the_rest_path_sends_the_raw_file_with_its_name_and_type() {
    let app = app_with(Options::default()).await;
    // Bytes that hold CR LF and dashes, as files do.
    let mut file = png(4, 4, 2000);
    file.extend_from_slice(b"\r\n--------------------------d74496d66958873\r\n");
    let answer = post_form(
        &app,
        "uploadMedia",
        &[
            ("description", None, b"a diagram"),
            ("file", Some(("diagram.png", "image/png")), &file),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.value()["description"], "a diagram");
    let kept = app.standin.media();
    assert_eq!(kept[0]["sha256"], sha256(&file));
    assert_eq!(kept[0]["filename"], "diagram.png");
    // The file was sent from the request's own buffer as a chunk of its own, but with its length
    // announced: a Content-Length, not a chunked body (which some servers' proxies refuse).
    let length = app.standin.last_header(UPLOAD, "content-length");
    assert!(
        length.as_deref().and_then(|l| l.parse::<usize>().ok()) > Some(file.len()),
        "{length:?}"
    );
    assert_eq!(app.standin.last_header(UPLOAD, "transfer-encoding"), None);

    // Ambiguous or misplaced forms are refused, in the caller's format, before anything is sent.
    let twice = post_form(
        &app,
        "uploadMedia",
        &[
            ("description", None, b"one"),
            ("description", None, b"two"),
            ("file", Some(("a.png", "image/png")), &file),
        ],
    )
    .await;
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert_eq!(twice.code(), "invalid_request");
    let elsewhere = post_form(&app, "postStatus", &[("status", None, b"hi")]).await;
    assert_eq!(elsewhere.status, 415, "{}", elsewhere.body);
    assert_eq!(elsewhere.code(), "unsupported_media_type");
    let both = post_form(
        &app,
        "uploadMedia",
        &[
            ("data", None, b64(&file).as_bytes()),
            ("file", Some(("a.png", "image/png")), &file),
        ],
    )
    .await;
    assert_eq!(both.code(), "invalid_request", "{}", both.body);
    assert_eq!(app.standin.hits(UPLOAD), 1);
}

#[tokio::test]
async fn an_upload_the_server_still_processes_is_followed_until_it_is_ready() {
    let app = app_with(Options {
        media_processing_threshold: 1024,
        media_processing_polls: 3,
        ..Options::default()
    })
    .await;
    let answer = app
        .call(
            Format::Soap11,
            "uploadMedia",
            json!({"data": b64(&png(8, 8, 5000)), "description": "processed later"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let attachment = answer.value();
    assert!(
        attachment["url"].is_string(),
        "followed until processed: {attachment}"
    );
    assert_eq!(
        app.standin.hits("GET /api/v1/media/:id"),
        4,
        "202, then 206 three times, then 200"
    );
    assert_eq!(app.standin.media()[0]["processed"], true);
}

#[tokio::test]
async fn post_status_uploads_its_media_first_with_alt_text_and_a_retried_message_reuses_them() {
    let app = app_with(Options {
        strict_media_ids: true,
        ..Options::default()
    })
    .await;
    for (n, format) in FORMATS.into_iter().enumerate() {
        let (a, b) = (png(3, 3, 400 + n), png(5, 5, 500 + n));
        let params = json!({
            "status": format!("two pictures, {format:?}"),
            "media": [
                {"data": b64(&a), "description": "the first picture"},
                {"data": b64(&b), "description": "the second picture", "file_name": "second.png"},
            ],
        });
        let correlation = format!("media-message-{n}");
        let headers = [("x-correlation-id", correlation.as_str())];
        let first = app
            .call_with(format, "postStatus", params.clone(), &headers)
            .await;
        assert_eq!(first.status, 200, "{format:?}: {}", first.body);
        let status = first.value();
        let attached = list(&status["media_attachments"]);
        assert_eq!(attached.len(), 2, "{format:?}: {status}");
        assert_eq!(attached[0]["description"], "the first picture");
        assert_eq!(attached[1]["description"], "the second picture");
        let uploads = app.standin.hits(UPLOAD);
        assert_eq!(uploads, 2 * (n + 1), "{format:?}");

        // The ESB retries the same message: one status, no second upload.
        let again = app.call_with(format, "postStatus", params, &headers).await;
        assert_eq!(again.status, 200, "{format:?}: {}", again.body);
        assert_eq!(again.value()["id"], status["id"], "{format:?}");
        assert_eq!(
            app.standin.hits(UPLOAD),
            uploads,
            "{format:?}: uploads reused"
        );
        assert_eq!(app.standin.hits(POST), n + 1, "{format:?}: posted once");
        let kept = app.standin.media();
        let mine: Vec<&Value> = kept
            .iter()
            .filter(|m| m["status_id"] == status["id"])
            .collect();
        assert_eq!(mine.len(), 2, "{format:?}: both attached to the status");
        assert!(mine.iter().any(|m| m["sha256"] == sha256(&a)));
        assert!(mine.iter().any(|m| m["filename"] == "second.png"));
    }
}

#[tokio::test]
async fn the_servers_published_media_limits_refuse_before_anything_is_sent() {
    let app = app_with(Options {
        image_size_limit: 1000,
        description_limit: 20,
        max_media_attachments: 2,
        ..Options::default()
    })
    .await;
    let small = b64(&png(2, 2, 200));
    let cases = [
        (
            "uploadMedia",
            json!({"data": b64(&png(2, 2, 1500))}),
            "at most 1000 bytes",
        ),
        (
            "uploadMedia",
            json!({"data": small, "description": "x".repeat(21)}),
            "limit is 20",
        ),
        (
            "uploadMedia",
            json!({"data": small, "content_type": "application/x-msdownload"}),
            "does not take application/x-msdownload",
        ),
        (
            "postStatus",
            json!({"status": "three", "media_ids": ["1", "2"], "media": [{"data": small}]}),
            "is 2 per status",
        ),
        (
            "postStatus",
            json!({"status": "one too large", "media": [{"data": small}, {"data": b64(&png(2, 2, 1500))}]}),
            "at most 1000 bytes",
        ),
        (
            "postStatus",
            json!({"status": "and a poll", "media": [{"data": small}], "poll": {"options": ["a", "b"], "expires_in": 600}}),
            "not both",
        ),
    ];
    for format in FORMATS {
        for (operation, params, says) in &cases {
            let answer = app.call(format, operation, params.clone()).await;
            // SOAP answers every fault with 500 (SOAP 1.1) or its own status; the code tells.
            if !soap(format) {
                assert_eq!(
                    answer.status, 422,
                    "{format:?} {operation}: {}",
                    answer.body
                );
            }
            assert_eq!(
                answer.code(),
                "validation_failed",
                "{format:?}: {}",
                answer.body
            );
            assert!(
                answer.body.contains(says),
                "{format:?} {operation}: {}",
                answer.body
            );
        }
    }
    assert_eq!(app.standin.hits(UPLOAD), 0, "nothing was uploaded");
    assert_eq!(app.standin.hits(POST), 0, "nothing was posted");
}

#[tokio::test]
async fn bad_files_are_invalid_requests_naming_what_is_wrong() {
    let app = app_with(Options::default()).await;
    let cases = [
        (
            json!({"description": "no file"}),
            "needs the parameter `data`",
        ),
        (
            json!({"data": "%%%%", "content_type": "image/png"}),
            "`data` is not base64",
        ),
        (json!({"data": b64(b"no magic here")}), "give content_type"),
        (
            json!({"data": b64(&png(1, 1, 100)), "focus": "3,3"}),
            "focus",
        ),
        (
            json!({"data": b64(&png(1, 1, 100)), "content_type": "image/png\r\nX: y"}),
            "content_type",
        ),
    ];
    for format in FORMATS {
        for (params, says) in &cases {
            let answer = app.call(format, "uploadMedia", params.clone()).await;
            if !soap(format) {
                assert_eq!(answer.status, 400, "{format:?}: {}", answer.body);
            }
            assert_eq!(
                answer.code(),
                "invalid_request",
                "{format:?}: {}",
                answer.body
            );
            assert!(
                answer.body.contains(says),
                "{format:?} {params}: {}",
                answer.body
            );
        }
        let item = app
            .call(
                format,
                "postStatus",
                json!({"status": "s", "media": [{"description": "no data"}]}),
            )
            .await;
        assert_eq!(item.code(), "invalid_request", "{format:?}: {}", item.body);
        assert!(item.body.contains("data"), "{format:?}: {}", item.body);
    }
    assert_eq!(app.standin.hits(UPLOAD), 0);
}

#[tokio::test]
async fn a_body_over_the_upload_limit_is_refused_naming_its_setting() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(SecretString::from("tok"));
        s.server.max_body_bytes = 16 * 1024;
        s.server.max_upload_bytes = 64 * 1024;
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    let big = b64(&png(2, 2, 60 * 1024));
    let answer = app
        .call(Format::Json, "uploadMedia", json!({"data": big}))
        .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(
        answer.body.contains("server.max_upload_bytes"),
        "{}",
        answer.body
    );
    // A body over max_body_bytes but within the upload limit is not refused for its size.
    let fits = app
        .call(
            Format::Json,
            "uploadMedia",
            json!({"data": b64(&png(2, 2, 40 * 1024))}),
        )
        .await;
    assert_eq!(fits.status, 200, "{}", fits.body);
}

#[tokio::test]
async fn get_and_update_media_read_and_change_the_alt_text() {
    let app = app_with(Options::default()).await;
    let uploaded = app
        .call(
            Format::Json,
            "uploadMedia",
            json!({"data": b64(&png(2, 2, 100))}),
        )
        .await
        .value();
    let id = uploaded["id"].as_str().unwrap().to_owned();
    for format in FORMATS {
        let text = format!("described in {format:?}");
        let updated = app
            .call(
                format,
                "updateMedia",
                json!({"id": id, "description": text, "focus": "0,1"}),
            )
            .await;
        assert_eq!(updated.status, 200, "{format:?}: {}", updated.body);
        assert_eq!(updated.value()["description"], text);
        let got = app.call(format, "getMedia", json!({"id": id})).await;
        assert_eq!(got.status, 200, "{format:?}: {}", got.body);
        assert_eq!(got.value()["description"], text);
    }
    assert_eq!(app.standin.media()[0]["description"], "described in Soap12");
}

#[tokio::test]
async fn a_server_without_the_v2_route_gets_the_upload_on_v1() {
    let app = app_with(Options {
        media_v2: false,
        ..Options::default()
    })
    .await;
    let answer = app
        .call(
            Format::Xml,
            "uploadMedia",
            json!({"data": b64(&png(2, 2, 100)), "description": "old route"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.standin.hits("POST /api/v1/media"), 1);
    assert_eq!(app.standin.media()[0]["description"], "old route");
}

#[tokio::test]
async fn unknown_media_ids_are_refused_by_mastodon_and_dropped_by_snac_and_the_caller_hears_both() {
    for profile in [Profile::Mastodon, Profile::Snac] {
        let app = app_with(Options::for_profile(profile)).await;
        let answer = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": "with a picture nobody uploaded", "media_ids": ["424242"]}),
            )
            .await;
        match profile {
            Profile::Mastodon => {
                assert_eq!(answer.status, 422, "{}", answer.body);
                assert!(answer.body.contains("424242"), "{}", answer.body);
            }
            _ => {
                // Posted without it, and said so: never a plain success.
                assert_eq!(
                    answer.code(),
                    "upstream_ignored",
                    "{profile:?}: {}",
                    answer.body
                );
                assert!(answer.body.contains("media"), "{}", answer.body);
            }
        }
    }
}

/// An upload the server failed (503, then a reset connection's worth of retries) is sent again with the
/// same bytes, from a multipart request (the file streamed from the request's buffer on every attempt)
/// and from base64: the attachment kept is the file, whole.
#[tokio::test]
async fn a_failed_upload_attempt_is_sent_again_with_the_whole_file() {
    let app = app_with(Options::default()).await;
    let file = png(8, 8, 64 * 1024);
    app.standin.fail_next(UPLOAD, 503, 1);
    let answer = post_form(
        &app,
        "uploadMedia",
        &[("file", Some(("again.png", "image/png")), &file)],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.standin.hits(UPLOAD), 2, "one failed attempt, one retry");
    let kept = app.standin.media();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["sha256"], sha256(&file));

    app.standin.fail_next(UPLOAD, 503, 1);
    let answer = app
        .call(
            Format::Json,
            "uploadMedia",
            json!({"data": b64(&file), "file_name": "b.png"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.standin.hits(UPLOAD), 4);
    let kept = app.standin.media();
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter().all(|m| m["sha256"] == sha256(&file)),
        "{kept:?}"
    );
}
