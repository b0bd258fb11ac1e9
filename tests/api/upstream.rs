//! The upstream client against servers that answer the way real ones do (servers.md): prompt 500s
//! that are one caller's fault, gateways' 502/503, a 429 with only `Retry-After`, 400s for content and
//! for tokens, HTML error pages, empty success bodies, and snac's connections that close without
//! saying so. Some tests drive the client directly, so that what is asserted is the client's policy
//! and not an operation's.

use std::sync::{Arc, Mutex};

use mastodon_sidecar::config::ConnectionSettings;
use mastodon_sidecar::error::{Error, ErrorKind};
use mastodon_sidecar::mastodon::resilience::{Breaker, BREAKER_COOLDOWN};
use mastodon_sidecar::mastodon::{Endpoint, MastodonClient};
use mastodon_sidecar::metrics::Metrics;
use mastodon_standin::{Options, StandIn};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{captured_logs, spawn_app, spawn_app_with, start, Format, TestApp};

const POST: &str = "POST /api/v1/statuses";
const TOKEN: &str = "POST /oauth/token";
const VERIFY: &str = "GET /api/v1/accounts/verify_credentials";

/// One request as a raw server saw it.
#[derive(Clone, Debug)]
struct Seen {
    /// Which accepted connection it came on (0, 1, ...).
    connection: usize,
    /// Its place on that connection (0 for the first).
    on_connection: usize,
    /// The request line, e.g. `POST /api/v1/statuses HTTP/1.1`.
    line: String,
    head: String,
    body: String,
}

/// What a raw server does with a request.
enum Reply {
    /// Answer and keep the connection open for the next request, without `Connection: close`.
    KeepAlive(String),
    /// Close the connection without a byte of an answer.
    Hangup,
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A raw HTTP/1.1 server on loopback that does what `script` says and records every request.
async fn raw_server(script: Script) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut connection = 0;
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(
                socket,
                connection,
                Arc::clone(&script),
                Arc::clone(&log),
            ));
            connection += 1;
        }
    });
    (url, seen)
}

async fn serve(
    mut socket: TcpStream,
    connection: usize,
    script: Script,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    for on_connection in 0.. {
        // Read one request: the head and the body its Content-Length declares.
        let (head, body) = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
                    buffer.drain(..end + 4 + length);
                    break (head, body);
                }
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let seen = Seen {
            connection,
            on_connection,
            line: head.lines().next().unwrap_or_default().to_owned(),
            head,
            body,
        };
        log.lock().unwrap().push(seen.clone());
        match script(&seen) {
            Reply::KeepAlive(answer) => {
                if socket.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Reply::Hangup => return,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP/1.1 answer with a body and extra header lines (each ending in `\r\n`).
fn answer(status: &str, content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn status_json() -> String {
    answer(
        "200 OK",
        "application/json",
        "",
        r#"{"id":"1","content":"<p>ok</p>","visibility":"public"}"#,
    )
}

/// A client for `url` as a connection would have it, with its own breaker.
fn client_for(url: &str) -> MastodonClient {
    client_with(url, 2_000)
}

fn client_with(url: &str, timeout_ms: u64) -> MastodonClient {
    let mut settings = ConnectionSettings::for_instance(url.parse().unwrap());
    settings.timeout_ms = timeout_ms;
    settings.connect_timeout_ms = Some(1_000);
    let metrics = Metrics::new().unwrap();
    let breaker = Arc::new(Breaker::new(url, metrics.clone(), BREAKER_COOLDOWN));
    MastodonClient::new("main", &settings, metrics, breaker, false).unwrap()
}

fn token() -> SecretString {
    SecretString::from("user-token-abc")
}

fn status_form(text: &str) -> Vec<(String, String)> {
    vec![
        ("status".to_owned(), text.to_owned()),
        ("poll[options][]".to_owned(), "yes".to_owned()),
        ("poll[options][]".to_owned(), "no".to_owned()),
        ("poll[expires_in]".to_owned(), "3600".to_owned()),
    ]
}

async fn post_status(client: &MastodonClient, text: &str) -> Result<Value, Error> {
    client
        .post_form_as(
            Endpoint::POST_STATUS,
            Some(&token()),
            &status_form(text),
            &[("Idempotency-Key", "key-1".to_owned())],
        )
        .await
}

/// A stand-in with a user token, and a client for it.
async fn standin_and_client() -> (StandIn, MastodonClient) {
    let standin = StandIn::start(Options::default()).await;
    standin.seed_user_token("user-token-abc", "read write");
    let client = client_for(&standin.url);
    (standin, client)
}

/// A sidecar whose `main` connection points at `url`, with a user token configured.
async fn app_against(url: &str) -> TestApp {
    let TestApp {
        standin,
        store_dir,
        mut settings,
        shutdown,
        ..
    } = spawn_app().await;
    shutdown.stop().await;
    let main = settings.connections.get_mut("main").unwrap();
    main.instance = url.parse().unwrap();
    main.access_token = Some("token-for-the-fake".to_owned().into());
    start(standin, store_dir, settings).await
}

#[tokio::test]
async fn posting_a_form_sends_bracket_keys_the_token_and_the_headers() {
    let (standin, client) = standin_and_client().await;
    let posted = post_status(&client, "a poll").await.unwrap();
    assert!(posted["id"].is_string(), "{posted}");
    let body = standin.last_body(POST).unwrap();
    assert_eq!(body["status"], "a poll");
    assert_eq!(body["poll"]["options"], json!(["yes", "no"]), "{body}");
    assert_eq!(
        standin.last_header(POST, "idempotency-key").as_deref(),
        Some("key-1")
    );
    assert_eq!(
        standin.last_header(POST, "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn a_write_is_not_resent_after_a_5xx_and_a_gateways_answer_is_in_doubt() {
    let (standin, client) = standin_and_client().await;
    standin.fail_next(POST, 500, 1);
    let prompt = post_status(&client, "once").await.unwrap_err();
    assert_eq!(prompt.kind, ErrorKind::UpstreamUnavailable);
    assert!(!prompt.in_doubt, "the server answered: {prompt:?}");
    assert_eq!(standin.hits(POST), 1, "not resent after a 500");

    for status in [502, 503, 504] {
        standin.fail_next(POST, status, 1);
        let gateway = post_status(&client, "once").await.unwrap_err();
        assert_eq!(gateway.kind, ErrorKind::UpstreamUnavailable);
        assert!(gateway.in_doubt, "{status}: {gateway:?}");
    }
    assert_eq!(standin.hits(POST), 4, "each sent once");
    assert!(standin.statuses().is_empty());
}

#[tokio::test]
async fn an_idempotent_route_repeats_a_500_once_and_a_503_up_to_max_retries() {
    let (standin, client) = standin_and_client().await;
    standin.fail_next(VERIFY, 500, 5);
    let failed = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap_err();
    assert_eq!(failed.upstream.as_ref().unwrap().status, 500);
    assert_eq!(standin.hits(VERIFY), 2, "one attempt and one repeat");

    let (standin, client) = standin_and_client().await;
    standin.fail_next(VERIFY, 503, 2);
    let account = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap();
    assert!(account["id"].is_string());
    assert_eq!(standin.hits(VERIFY), 3);
}

#[tokio::test]
async fn five_prompt_500s_on_the_token_route_do_not_open_the_breaker() {
    let app = spawn_app_with(Options::default(), |_| {}).await;
    let created = app.call(Format::Json, "createApp", json!({})).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let code = app.approve(auth["url"].as_str().unwrap()).await;
    // Five callers' mistyped codes, as Takahē answers them: a prompt 500.
    app.standin.fail_next(TOKEN, 500, 5);
    for _ in 0..5 {
        let failed = app
            .call(
                Format::Json,
                "getToken",
                json!({"code": code, "state": auth["state"]}),
            )
            .await;
        assert_eq!(failed.code(), "upstream_unavailable", "{}", failed.body);
        let detail = failed.value()["detail"].as_str().unwrap().to_owned();
        assert!(!detail.contains("circuit breaker"), "{detail}");
    }
    assert_eq!(app.standin.hits(TOKEN), 5, "the token route is not resent");
    // Another call to the same server still goes through.
    let token = app
        .call(
            Format::Json,
            "getToken",
            json!({"code": code, "state": auth["state"]}),
        )
        .await;
    assert_eq!(token.status, 200, "{}", token.body);
    let verified = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
}

#[tokio::test]
async fn gateway_answers_count_against_the_server_and_open_the_breaker() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().max_retries = 0
    })
    .await;
    app.connect_account(Format::Json).await;
    // Without retries each 502 or 503 is one failure: five open the breaker.
    app.standin.fail_next(VERIFY, 502, 3);
    app.standin.fail_next(VERIFY, 503, 2);
    for _ in 0..5 {
        let failed = app.call(Format::Json, "verifyCredentials", json!({})).await;
        assert_eq!(failed.code(), "upstream_unavailable", "{}", failed.body);
    }
    let hits = app.standin.hits(VERIFY);
    let fast = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(fast.code(), "upstream_unavailable");
    let detail = fast.value()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("circuit breaker"), "{detail}");
    assert_eq!(app.standin.hits(VERIFY), hits, "no call went out");
}

#[tokio::test]
async fn a_429_with_only_retry_after_tells_the_caller_that_wait() {
    let (url, seen) = raw_server(Arc::new(|_: &Seen| {
        Reply::KeepAlive(answer(
            "429 Too Many Requests",
            "text/plain",
            "retry-after: 7\r\n",
            "Too many requests",
        ))
    }))
    .await;
    let client = client_for(&url);
    let limited = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap_err();
    assert_eq!(limited.kind, ErrorKind::RateLimited);
    assert!(
        limited.retry_after == Some(7) || limited.retry_after == Some(6),
        "{limited:?}"
    );
    assert!(limited.detail.contains("Retry-After"), "{}", limited.detail);
    assert!(
        limited.detail.contains("Too many requests"),
        "{}",
        limited.detail
    );
    // The next call knows the route is used up until then and does not call out.
    let again = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap_err();
    assert_eq!(again.kind, ErrorKind::RateLimited);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Through the sidecar, the caller gets the same wait as Retry-After.
    let app = app_against(&url).await;
    let answered = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(answered.status, 429, "{}", answered.body);
    assert_eq!(answered.code(), "rate_limited");
    let wait: u64 = answered.header("retry-after").unwrap().parse().unwrap();
    assert!((6..=7).contains(&wait), "{wait}");
}

#[tokio::test]
async fn a_429_without_a_time_says_the_wait_is_a_guess() {
    let (url, _) = raw_server(Arc::new(|_: &Seen| {
        Reply::KeepAlive(answer("429 Too Many Requests", "text/plain", "", ""))
    }))
    .await;
    let client = client_for(&url);
    let limited = client.get(Endpoint::INSTANCE_V1, None).await.unwrap_err();
    assert_eq!(limited.kind, ErrorKind::RateLimited);
    assert_eq!(limited.retry_after, Some(5));
    assert!(
        limited.detail.contains("gave no time"),
        "{}",
        limited.detail
    );
    assert!(limited.detail.contains("guess"), "{}", limited.detail);
}

/// A raw server answering every request with `status`, `content_type` and `body`.
async fn answering(status: &'static str, content_type: &'static str, body: &'static str) -> String {
    let (url, _) = raw_server(Arc::new(move |_: &Seen| {
        Reply::KeepAlive(answer(status, content_type, "", body))
    }))
    .await;
    url
}

#[tokio::test]
async fn a_400_refusing_content_is_validation_failed_with_the_servers_text() {
    let url = answering(
        "400 Bad Request",
        "application/json",
        r#"{"error":"Status is too long"}"#,
    )
    .await;
    let client = client_for(&url);
    let refused = post_status(&client, "long").await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::ValidationFailed, "{refused:?}");
    assert_eq!(refused.detail, "Status is too long");
    assert!(!refused.is_token_refusal());
    // Elsewhere a 400 is the server refusing the request.
    let other = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap_err();
    assert_eq!(other.kind, ErrorKind::UpstreamRejected);
    assert_eq!(other.http_status(), 400);
}

#[tokio::test]
async fn takahes_400_html_bearer_refusal_stays_a_token_refusal_on_every_route() {
    let url = answering("400 Bad Request", "text/html", "Invalid Bearer token").await;
    let client = client_for(&url);
    for refused in [
        post_status(&client, "x").await.unwrap_err(),
        client
            .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(refused.kind, ErrorKind::UpstreamRejected, "{refused:?}");
        assert_eq!(refused.http_status(), 400);
        assert!(refused.is_token_refusal(), "{refused:?}");
        assert!(
            refused.detail.contains("Invalid Bearer token"),
            "{}",
            refused.detail
        );
    }
}

#[tokio::test]
async fn a_scope_refusal_says_which_scopes_work_everywhere() {
    let url = answering(
        "403 Forbidden",
        "application/json",
        r#"{"error":"out_of_scope_for_token"}"#,
    )
    .await;
    let client = client_for(&url);
    let refused = client
        .get(Endpoint::VERIFY_CREDENTIALS, Some(&token()))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::UpstreamRejected);
    assert_eq!(refused.http_status(), 403);
    assert!(
        refused.detail.contains("lacks a scope"),
        "{}",
        refused.detail
    );
    assert!(
        refused.detail.contains("`read` and `write`"),
        "{}",
        refused.detail
    );
}

#[tokio::test]
async fn an_html_error_page_is_excerpted_and_the_secrets_sent_are_scrubbed() {
    let url = answering(
        "500 Internal Server Error",
        "text/html; charset=utf-8",
        "<html><head><style>h1{}</style></head><body><h1>Server Error</h1>\
         <p>code mistyped-code for client secret-of-the-app &amp; more</p>\
         <script>var t='x'</script></body></html>",
    )
    .await;
    let client = client_for(&url);
    let failed = client
        .post_form(
            Endpoint::TOKEN,
            &[
                ("grant_type", "authorization_code"),
                ("code", "mistyped-code"),
                ("client_secret", "secret-of-the-app"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(failed.kind, ErrorKind::UpstreamUnavailable);
    assert!(!failed.in_doubt, "a prompt 500");
    let text = failed.upstream.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(
        text,
        "Server Error code [redacted] for client [redacted] & more"
    );
    assert!(failed.detail.ends_with(&text), "{}", failed.detail);
    for secret in ["mistyped-code", "secret-of-the-app"] {
        assert!(!failed.detail.contains(secret));
        assert!(!captured_logs().contains(secret), "{secret} in the logs");
    }
}

#[tokio::test]
async fn an_empty_success_is_null_and_a_non_json_success_is_unavailable() {
    let url = answering("200 OK", "text/html", "").await;
    let client = client_for(&url);
    let revoked = client
        .post_form(Endpoint::REVOKE, &[("token", "t"), ("client_id", "c")])
        .await
        .unwrap();
    assert_eq!(revoked, Value::Null);

    let url = answering("200 OK", "text/html", "<html>welcome</html>").await;
    let client = client_for(&url);
    let garbled = post_status(&client, "x").await.unwrap_err();
    assert_eq!(garbled.kind, ErrorKind::UpstreamUnavailable);
    assert!(garbled.detail.contains("not JSON"), "{}", garbled.detail);
    assert!(
        garbled.in_doubt,
        "it answered success but what it did is unknown"
    );
}

#[tokio::test]
async fn messages_name_the_server_with_its_port() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = client_for(&format!("http://127.0.0.1:{port}"));
    let failed = post_status(&client, "x").await.unwrap_err();
    assert_eq!(failed.kind, ErrorKind::UpstreamUnavailable);
    assert!(
        failed
            .detail
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        failed.detail
    );
    assert!(!failed.in_doubt, "nothing was sent");

    let url = answering(
        "404 Not Found",
        "application/json",
        r#"{"error":"Record not found"}"#,
    )
    .await;
    let client = client_for(&url);
    let refused = post_status(&client, "x").await.unwrap_err();
    let host = url.trim_start_matches("http://");
    assert_eq!(
        refused.detail,
        format!("{host} refused POST /api/v1/statuses: Record not found")
    );
    assert!(!refused.detail.contains("Mastodon"));
}

#[tokio::test]
async fn a_path_that_could_leave_the_server_is_refused_before_anything_is_sent() {
    let (url, seen) = raw_server(Arc::new(|_: &Seen| {
        Reply::KeepAlive(answer("200 OK", "application/json", "", r#"{"ok":true}"#))
    }))
    .await;
    let client = client_for(&format!("{url}/prefix"));
    for path in [
        "api/v1/x",
        "//evil.example/x",
        "/x?next=http://evil.example",
        "/\\evil.example",
        "/x#fragment",
        "/x\r\nHost: evil.example",
        "/../outside",
        "/%2e%2e/outside",
    ] {
        let refused = client
            .get_path(Endpoint::VERIFY_CREDENTIALS, path, None)
            .await
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Internal, "{path}");
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
    let refused = client
        .get_path(Endpoint::POST_STATUS, "/api/v1/statuses", None)
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind,
        ErrorKind::Internal,
        "a GET labelled as a POST"
    );

    let got = client
        .get_path(
            Endpoint::VERIFY_CREDENTIALS,
            "/api/v1/accounts/123/statuses?limit=20",
            Some(&token()),
        )
        .await
        .unwrap();
    assert_eq!(got, json!({"ok": true}));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].line,
        "GET /prefix/api/v1/accounts/123/statuses?limit=20 HTTP/1.1"
    );
    assert!(seen[0]
        .head
        .to_ascii_lowercase()
        .contains("authorization: bearer user-token-abc"));
}

/// snac: answers each connection's first request without `Connection: close`, then closes it when
/// the next one comes (as if it had closed the connection right after answering).
fn snac() -> Script {
    Arc::new(|seen: &Seen| {
        if seen.on_connection == 0 {
            Reply::KeepAlive(status_json())
        } else {
            Reply::Hangup
        }
    })
}

#[tokio::test]
async fn a_reused_connection_the_server_closed_is_resent_once_and_pooling_stops() {
    let (url, seen) = raw_server(snac()).await;
    let client = client_for(&url);
    post_other_write(&client, "first").await.unwrap();
    // The second write goes out on the pooled connection, which snac has closed: resent once, on a
    // fresh connection. (A status is not: its caller looks before resending, see below.)
    post_other_write(&client, "second").await.unwrap();
    {
        let seen = seen.lock().unwrap();
        let places: Vec<_> = seen
            .iter()
            .map(|s| (s.connection, s.on_connection))
            .collect();
        assert_eq!(places, [(0, 0), (0, 1), (1, 0)], "{seen:#?}");
        assert!(seen
            .iter()
            .all(|s| s.body.contains("poll%5Boptions%5D%5B%5D=yes")));
    }
    // From then on no connection is reused: no more resets, no more resends.
    post_other_write(&client, "third").await.unwrap();
    post_other_write(&client, "fourth").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:#?}");
    assert!(seen[3..].iter().all(|s| s.on_connection == 0), "{seen:#?}");
    let logs = captured_logs();
    let switched = logs
        .lines()
        .filter(|l| {
            l.contains("no longer kept for reuse") && l.contains(url.trim_start_matches("http://"))
        })
        .count();
    assert_eq!(switched, 1, "logged once");
}

/// A write other than a status, with the same form: the client itself resends these after a reused
/// connection's reset.
async fn post_other_write(client: &MastodonClient, text: &str) -> Result<Value, Error> {
    client
        .post_form_as(Endpoint::CREATE_APP, None, &status_form(text), &[])
        .await
}

#[tokio::test]
async fn a_status_on_a_reused_connection_the_server_closed_is_left_to_its_caller_in_doubt() {
    let (url, seen) = raw_server(snac()).await;
    let client = client_for(&url);
    post_status(&client, "first").await.unwrap();
    let failed = post_status(&client, "second").await.unwrap_err();
    assert!(failed.in_doubt, "{failed:?}");
    assert!(failed.upstream.is_none());
    assert_eq!(seen.lock().unwrap().len(), 2, "not resent by the client");
    // And the connection is no longer pooled.
    post_status(&client, "third").await.unwrap();
}

#[tokio::test]
async fn a_write_dropped_on_a_fresh_connection_is_in_doubt_and_not_resent() {
    let (url, seen) = raw_server(Arc::new(|_: &Seen| Reply::Hangup)).await;
    let client = client_for(&url);
    let failed = post_status(&client, "x").await.unwrap_err();
    assert_eq!(failed.kind, ErrorKind::UpstreamUnavailable);
    assert!(failed.in_doubt, "{failed:?}");
    assert!(
        failed.detail.contains("may have processed"),
        "{}",
        failed.detail
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "not resent");

    // A GET is resent: repeating it does no harm.
    let before = seen.lock().unwrap().len();
    let _ = client.get(Endpoint::INSTANCE_V1, None).await.unwrap_err();
    assert_eq!(
        seen.lock().unwrap().len() - before,
        3,
        "one attempt and two repeats"
    );
}

#[tokio::test]
async fn a_timeout_after_sending_a_write_is_in_doubt() {
    // Reads the request and never answers.
    let (url, _) = raw_server(Arc::new(|_: &Seen| Reply::KeepAlive(String::new()))).await;
    let client = client_with(&url, 300);
    let late = post_status(&client, "x").await.unwrap_err();
    assert_eq!(late.kind, ErrorKind::UpstreamTimeout);
    assert!(late.in_doubt, "{late:?}");
}
