//! Faults injected between the sidecar and the server: 5xx, 429, delays past the timeout, dropped
//! connections and truncated bodies. Whatever happens, a status is posted once or the caller gets a
//! classified error, within a bounded time. A post whose answer was lost is resolved by postStatus
//! (it looks at the account's statuses before resending); the whole matrix, per server profile and
//! format, is in `exactly_once.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mastodon_sidecar::config::OnRateLimit;
use mastodon_standin::Options;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{spawn_app, spawn_app_with, start, test_settings, Format, TestApp};

const POST: &str = "POST /api/v1/statuses";

async fn connected(tweak: impl FnOnce(&mut mastodon_sidecar::config::Settings)) -> TestApp {
    connected_with(Options::default(), tweak).await
}

async fn connected_with(
    options: Options,
    tweak: impl FnOnce(&mut mastodon_sidecar::config::Settings),
) -> TestApp {
    let app = spawn_app_with(options, tweak).await;
    app.connect_account(Format::Json).await;
    app
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_status_is_posted_once() {
    let app = connected(|_| {}).await;
    app.standin.fail_next(POST, 503, 2);
    let posted = app
        .call(
            Format::Soap11,
            "postStatus",
            json!({"status": "despite a hiccup"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(app.standin.hits(POST), 3);
    assert_eq!(app.standin.statuses().len(), 1);
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_upstream_retries_total{endpoint=\"POST /api/v1/statuses\",reason=\"status_5xx\"} 2"));
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_a_classified_error() {
    let app = connected(|_| {}).await;
    app.standin.fail_next(POST, 502, 10);
    let failed = app
        .call(Format::Json, "postStatus", json!({"status": "never"}))
        .await;
    assert_eq!(failed.status, 502);
    assert_eq!(failed.code(), "upstream_unavailable");
    assert_eq!(app.standin.hits(POST), 3, "one attempt and two retries");
    assert!(app.standin.statuses().is_empty());
}

#[tokio::test]
async fn a_4xx_is_never_retried() {
    let app = connected(|_| {}).await;
    app.standin.fail_next(POST, 403, 1);
    let refused = app
        .call(Format::Json, "postStatus", json!({"status": "x"}))
        .await;
    assert_eq!(refused.code(), "upstream_rejected");
    assert_eq!(app.standin.hits(POST), 1);
}

#[tokio::test]
async fn a_429_fails_at_once_with_retry_after_by_default() {
    let app = connected(|_| {}).await;
    app.standin.fail_next(POST, 429, 1);
    let limited = app
        .call(Format::Xml, "postStatus", json!({"status": "x"}))
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(app.standin.hits(POST), 1);
}

#[tokio::test]
async fn with_on_rate_limit_wait_a_429_waits_for_the_reset_and_posts_once() {
    let app = connected(|s| {
        let main = s.connections.get_mut("main").unwrap();
        main.on_rate_limit = OnRateLimit::Wait;
        main.max_rate_limit_wait_s = 5;
    })
    .await;
    app.standin.fail_next(POST, 429, 1);
    let started = Instant::now();
    let posted = app
        .call(Format::Json, "postStatus", json!({"status": "patient"}))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the wait fit max_rate_limit_wait_s"
    );
    assert_eq!(app.standin.statuses().len(), 1);
    assert_eq!(app.standin.hits(POST), 2);
}

#[tokio::test]
async fn an_exhausted_limit_fails_fast_without_calling_mastodon() {
    let options = Options {
        rate_limit: 3,
        ..Options::default()
    };
    let app = connected_with(options, |_| {}).await;
    for i in 0..3 {
        let ok = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": format!("s{i}")}),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    let metrics = app.metrics().await;
    assert!(metrics.contains("mastodon_sidecar_ratelimit_remaining{connection=\"main\"} 0"));
    // The window's size, from X-RateLimit-Limit, so that alerts and dashboards can show a fraction.
    assert!(
        metrics.contains("mastodon_sidecar_ratelimit_limit{connection=\"main\"} 3"),
        "{metrics}"
    );
    let hits = app.standin.hits(POST);
    let limited = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "one too many"}),
        )
        .await;
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(app.standin.hits(POST), hits, "refused before calling out");
}

#[tokio::test]
async fn a_delay_past_the_timeout_is_in_doubt_and_answered_within_the_bound() {
    let app = connected(|s| s.connections.get_mut("main").unwrap().timeout_ms = 400).await;
    app.standin.delay_next(POST, Duration::from_secs(3), 5);
    let started = Instant::now();
    let late = app
        .call(Format::Soap12, "postStatus", json!({"status": "slow"}))
        .await;
    let elapsed = started.elapsed();
    // The post may have reached the server: the caller is told it may exist, never a plain
    // timeout that invites a blind resend (the exactly-once matrix shows how it resolves).
    assert_eq!(late.code(), "outcome_unknown", "{}", late.body);
    assert_eq!(late.status, 500, "SOAP 1.2 Receiver fault");
    assert!(
        elapsed < Duration::from_millis(2500),
        "bounded by timeout_ms: {elapsed:?}"
    );
}

#[tokio::test]
async fn the_circuit_breaker_opens_after_repeated_failures_and_fails_fast() {
    let app = connected(|_| {}).await;
    app.standin
        .fail_next("GET /api/v1/accounts/verify_credentials", 503, 100);
    for _ in 0..2 {
        let failed = app.call(Format::Json, "verifyCredentials", json!({})).await;
        assert_eq!(failed.code(), "upstream_unavailable");
    }
    let hits = app.standin.hits("GET /api/v1/accounts/verify_credentials");
    let fast = app.call(Format::Json, "verifyCredentials", json!({})).await;
    assert_eq!(fast.code(), "upstream_unavailable");
    let detail = fast.value()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("circuit breaker"), "{detail}");
    assert_eq!(
        app.standin.hits("GET /api/v1/accounts/verify_credentials"),
        hits,
        "no call went out"
    );
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_circuit_open{upstream="));
}

#[tokio::test]
async fn beyond_a_connections_in_flight_bound_callers_wait_a_moment_then_are_told() {
    let app = connected(|s| {
        let main = s.connections.get_mut("main").unwrap();
        main.max_in_flight = 1;
        main.timeout_ms = 5_000;
    })
    .await;
    let route = "GET /api/v1/accounts/verify_credentials";
    // The second call waits its second for the slot and gives up; the third gets the slot in time.
    app.standin
        .delay_next(route, Duration::from_millis(2_000), 1);
    let slow = app.call(Format::Json, "verifyCredentials", json!({}));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let answer = app.call(Format::Json, "verifyCredentials", json!({})).await;
        (answer, started.elapsed())
    };
    let waited = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        app.call(Format::Json, "verifyCredentials", json!({})).await
    };
    let (slow, (refused, after), waited) = tokio::join!(slow, refused, waited);
    assert_eq!(slow.status, 200);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.code(), "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        after >= Duration::from_millis(900),
        "it waited for a slot: {after:?}"
    );
    assert_eq!(
        waited.status, 200,
        "a slot freed within the wait: {}",
        waited.body
    );
}

/// A fake Mastodon on raw TCP: drops or truncates the first `faulty` exchanges, then answers every
/// request with a Status. Records the Idempotency-Key of each request that reached it.
async fn flaky_server(faulty: usize, truncate: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&keys);
    tokio::spawn(async move {
        let mut served = 0usize;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the declared body.
            loop {
                let n = socket.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&request).to_string();
            // What the sidecar reads to learn whether a post whose answer was lost was created:
            // the account, and its statuses (none: this fake creates nothing when it drops).
            let read = if text.starts_with("GET /api/v1/accounts/verify_credentials") {
                Some("{\"id\":\"1\",\"acct\":\"fake\"}")
            } else if text.starts_with("GET /api/v1/accounts/1/statuses") {
                Some("[]")
            } else {
                None
            };
            if let Some(body) = read {
                let _ = socket
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
                continue;
            }
            if !text.starts_with("POST /api/v1/statuses") {
                let body = "{\"error\":\"Record not found\"}";
                let _ = socket
                    .write_all(format!("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
                continue;
            }
            if let Some(key) = text.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("idempotency-key:")
                    .map(|v| v.trim().to_owned())
            }) {
                seen.lock().unwrap().push(key);
            }
            served += 1;
            let body = "{\"id\":\"1\",\"content\":\"<p>ok</p>\",\"visibility\":\"public\"}";
            if served <= faulty {
                if truncate {
                    // Promise more than is sent, then hang up: a truncated body.
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\":\"1\",")
                        .await;
                }
                // Otherwise: drop the connection without a word.
                continue;
            }
            let _ = socket
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                .await;
        }
    });
    (url, keys)
}

async fn app_against(url: &str) -> TestApp {
    let app = spawn_app().await;
    let TestApp {
        standin,
        store_dir,
        mut settings,
        shutdown,
        ..
    } = app;
    shutdown.stop().await;
    let main = settings.connections.get_mut("main").unwrap();
    main.instance = url.parse().unwrap();
    main.access_token = Some("token-for-the-fake".to_owned().into());
    let _ = test_settings;
    start(standin, store_dir, settings).await
}

#[tokio::test]
async fn a_dropped_connection_is_retried_with_the_same_idempotency_key() {
    let (url, keys) = flaky_server(2, false).await;
    let app = app_against(&url).await;
    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "through drops"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3, "two dropped attempts and one answered");
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "one key across attempts: {keys:?}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_retried_with_the_same_idempotency_key() {
    let (url, keys) = flaky_server(1, true).await;
    let app = app_against(&url).await;
    let posted = app
        .call(
            Format::Xml,
            "postStatus",
            json!({"status": "through truncation"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_readiness_turns_503() {
    let app = connected(|s| s.server.drain_delay_ms = 500).await;
    app.standin.delay_next(
        "GET /api/v1/accounts/verify_credentials",
        Duration::from_millis(700),
        8,
    );
    let calls = (0..8).map(|_| app.call(Format::Json, "verifyCredentials", json!({})));
    let all = futures_util::future::join_all(calls);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let shutdown = app.shutdown.clone();
        let stopping = tokio::spawn(async move { shutdown.stop().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ready = app.get("/readyz").await;
        stopping.await.unwrap();
        ready
    };
    let (answers, ready) = tokio::join!(all, stop);
    assert_eq!(ready.status, 503, "{}", ready.body);
    for answer in answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}
