//! Memory before the key, and the HTTP layer's own refusals (issue 9, items 1 and 5), over raw
//! connections so that a test controls every byte and can stop halfway through a body.
//!
//! - A call without a valid key, or outside the key's rights, is refused from its head: the answer
//!   arrives while the body is still unsent, so the body was never read, let alone parsed.
//! - Heads actix-http could not take (too large, too many fields, too long a target, not HTTP) and
//!   bodies announced over the limit are answered in the contract's error shape, with their codes,
//!   and `Expect: 100-continue` never gets `100 Continue` for a body that would be refused.
//! - Bodies share one budget (`server.max_buffered_body_bytes`): past it, `overloaded`.
//! - 1,000 connections each holding most of a 1 MiB body without a valid key leave the real
//!   binary's resident memory small (the figures are printed), and a keyed call still succeeds.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mastodon_sidecar::security::{digest_hex, ApiKeySettings};
use mastodon_standin::{Options, StandIn};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, Answer, TestApp};

const KEY: &str = "memory-test-key-5b7c9d1e3f";
const INIT_ONLY_KEY: &str = "memory-init-only-key-8a6b4c2d";
const LIMIT: Duration = Duration::from_secs(20);

fn api_key(name: &str, key: &str, operations: &[&str]) -> ApiKeySettings {
    ApiKeySettings {
        name: name.into(),
        sha256: digest_hex(key),
        connections: vec!["*".into()],
        operations: operations.iter().map(|s| s.to_string()).collect(),
        call_api: Vec::new(),
    }
}

async fn keyed_app() -> TestApp {
    spawn_app_with(Options::default(), |s| {
        s.security.api_keys = vec![
            api_key("memory-all", KEY, &["*"]),
            api_key("memory-init-only", INIT_ONLY_KEY, &["init"]),
        ];
    })
    .await
}

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// An answer read off a raw connection.
fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = reqwest::header::HeaderMap::new();
    let mut content_type = String::new();
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value.trim().to_owned();
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
            reqwest::header::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let body = &bytes[end + 4..];
    let body = &body[..length.unwrap_or(body.len()).min(body.len())];
    Some(Answer {
        status,
        content_type,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Reads until one whole answer (head and Content-Length body) is in, within `LIMIT`.
async fn read_answer(stream: &mut TcpStream) -> (Answer, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let started = Instant::now();
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let answer = parse_answer(&got).expect("an HTTP answer");
            let length = answer
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let rest = got.split_off(end + 4 + length);
                return (answer, rest);
            }
        }
        let left = LIMIT.saturating_sub(started.elapsed());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("an answer within the limit")
            .expect("the connection stays readable until the answer");
        assert!(
            n > 0,
            "the connection closed before a whole answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Reads to the end of the stream: `Ok` for a clean close, `Err` for a reset.
async fn read_to_close(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut rest))
        .await
        .expect("the connection closes within the limit")
        .map(|_| rest)
}

fn assert_problem(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "{:?}: {}",
        answer.content_type,
        answer.body
    );
    let body: Value = serde_json::from_str(&answer.body).expect("a JSON body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:mastodon-sidecar:error:{code}"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

/// A plain-XML postStatus body of about `bytes`, `elements` elements deep in a list.
fn xml_body(bytes: usize, elements: usize) -> Vec<u8> {
    let mut out = String::from("<postStatus><status>hello</status>");
    let pad = bytes.saturating_sub(64) / elements.max(1);
    for _ in 0..elements {
        out.push_str("<media_ids>");
        out.push_str(&"1".repeat(pad.saturating_sub(23).max(1)));
        out.push_str("</media_ids>");
    }
    out.push_str("</postStatus>");
    out.into_bytes()
}

/// What is sent, where, with which headers, and the status and code expected.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);

#[tokio::test]
async fn a_call_without_a_valid_key_or_outside_its_rights_is_refused_before_its_body_is_sent() {
    let app = keyed_app().await;
    let body = xml_body(1024 * 1024 - 1024, 9_000);
    assert!(body.len() <= 1024 * 1024, "{}", body.len());
    let cases: [Case; 5] = [
        (
            "a wrong key",
            "/v1/operations/postStatus",
            &[
                ("content-type", "application/xml"),
                ("x-api-key", "not-the-key-at-all"),
            ],
            401,
            "unauthenticated",
        ),
        (
            "no key",
            "/v1/operations/postStatus",
            &[("content-type", "application/xml")],
            401,
            "unauthenticated",
        ),
        (
            "an operation outside the key's rights",
            "/v1/operations/postStatus",
            &[
                ("content-type", "application/xml"),
                ("x-api-key", INIT_ONLY_KEY),
            ],
            403,
            "forbidden",
        ),
        (
            "a SOAP 1.1 action outside the key's rights",
            "/soap",
            &[
                ("content-type", "text/xml; charset=UTF-8"),
                ("soapaction", "\"urn:postStatus\""),
                ("x-api-key", INIT_ONLY_KEY),
            ],
            500,
            "forbidden",
        ),
        (
            "a SOAP 1.2 action outside the key's rights",
            "/soap",
            &[
                (
                    "content-type",
                    "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\"",
                ),
                ("x-api-key", INIT_ONLY_KEY),
            ],
            400,
            "forbidden",
        ),
    ];
    for (what, path, headers, status, code) in cases {
        let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: sidecar\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        // A sixteenth of the body, then nothing: the answer must come anyway.
        stream.write_all(&body[..body.len() / 16]).await.unwrap();
        let started = Instant::now();
        let (answer, _) = read_answer(&mut stream).await;
        println!(
            "{what}: {} {} with {} of {} body bytes sent, in {:?}",
            answer.status,
            answer.code(),
            body.len() / 16,
            body.len(),
            started.elapsed()
        );
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(answer.code(), code, "{what}: {}", answer.body);
        if code == "unauthenticated" {
            assert!(answer.header("www-authenticate").is_some(), "{what}");
            assert!(answer.content_type.starts_with("application/xml"), "{what}");
        }
        // The rest of the body is never read: the connection closes after the answer.
        let _ = read_to_close(&mut stream).await;
    }
    let ok = app
        .call_with(
            crate::helpers::Format::Json,
            "init",
            json!({}),
            &[("x-api-key", KEY)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

/// Sends `request` (written from a task of its own, so that a large one cannot block the read) and
/// reads one answer; then whether the connection closed cleanly.
async fn refusal_of(app: &TestApp, request: Vec<u8>) -> (Answer, std::io::Result<Vec<u8>>) {
    let stream = TcpStream::connect(host_port(app)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may stop reading once it has refused the head: a failed write is expected.
        let _ = write.write_all(&request).await;
        write
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = parse_answer(&got) {
            let length = answer
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if answer.body.len() >= length {
                break answer;
            }
        }
        let left = LIMIT.saturating_sub(started.elapsed());
        let n = tokio::time::timeout(left, read.read(&mut buf))
            .await
            .expect("an answer within the limit")
            .expect("no reset before the answer");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(LIMIT, read.read_to_end(&mut rest))
        .await
        .expect("closed within the limit")
        .map(|_| rest);
    drop(writer.await);
    (answer, closed)
}

#[tokio::test]
async fn heads_the_http_layer_refuses_are_answered_in_the_contracts_shape_with_a_code() {
    let app = keyed_app().await;
    let huge_key = "k".repeat(1024 * 1024);
    let mut many = String::new();
    for i in 0..200 {
        many.push_str(&format!("x-header-{i}: {i}\r\n"));
    }
    let long_url = format!("/v1/operations/init?pad={}", "a".repeat(200 * 1024));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "a 1 MiB X-API-Key",
            format!("POST /v1/operations/init HTTP/1.1\r\nhost: s\r\nx-correlation-id: refusal-431\r\nx-api-key: {huge_key}\r\ncontent-length: 2\r\n\r\n{{}}"),
            431,
            "headers_too_large",
        ),
        (
            "200 header fields",
            format!("GET /healthz HTTP/1.1\r\nhost: s\r\n{many}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "a 200 KB URL",
            format!("GET {long_url} HTTP/1.1\r\nhost: s\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            "not HTTP",
            "HELLO THERE\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "a length that is not a number",
            "POST /v1/operations/init HTTP/1.1\r\nhost: s\r\ncontent-length: 12abc\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "a length beside chunked",
            "POST /v1/operations/init HTTP/1.1\r\nhost: s\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "HTTP/1.1 without Host",
            "GET /healthz HTTP/1.1\r\n\r\n".to_owned(),
            400,
            "malformed_request",
        ),
    ];
    for (what, request, status, code) in cases {
        let (answer, closed) = refusal_of(&app, request.into_bytes()).await;
        println!("{what}: {} {}", answer.status, answer.body);
        assert_problem(&answer, status, code);
        assert!(answer.header("x-correlation-id").is_some(), "{what}");
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
        assert!(
            closed.is_ok(),
            "{what}: the connection was reset: {closed:?}"
        );
    }
    // The refused head's correlation id is kept.
    let (answer, _) = refusal_of(
        &app,
        format!("POST /v1/operations/init HTTP/1.1\r\nhost: s\r\nx-correlation-id: refusal-431\r\nx-api-key: {huge_key}\r\n\r\n").into_bytes(),
    )
    .await;
    assert_eq!(answer.header("x-correlation-id"), Some("refusal-431"));
    assert_eq!(answer.value()["correlation_id"], "refusal-431");
    // On /soap, with a SOAP Content-Type, a SOAP fault with the code.
    let (answer, _) = refusal_of(
        &app,
        format!("POST /soap HTTP/1.1\r\nhost: s\r\ncontent-type: application/soap+xml; charset=UTF-8\r\nx-api-key: {huge_key}\r\n\r\n").into_bytes(),
    )
    .await;
    assert!(
        answer.content_type.starts_with("application/soap+xml"),
        "{:?}",
        answer.content_type
    );
    assert_eq!(answer.code(), "headers_too_large", "{}", answer.body);
    assert!(
        answer.body.contains(":Sender</env:Value>"),
        "{}",
        answer.body
    );
    // The path the refusals are answered on is no door: asked for directly, it is an unknown route.
    let direct = app.get("/_sidecar/refused").await;
    assert_eq!(direct.status, 404, "{}", direct.body);
    assert_eq!(direct.code(), "unknown_operation");
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn expect_100_continue_with_a_length_over_the_limit_gets_413_and_no_continue() {
    let app = keyed_app().await;
    for (path, extra) in [
        (
            "/v1/operations/postStatus",
            "content-type: application/json\r\n",
        ),
        (
            "/soap",
            "content-type: text/xml\r\nsoapaction: \"urn:postStatus\"\r\n",
        ),
    ] {
        let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: s\r\nx-api-key: {KEY}\r\n{extra}expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            // Over server.max_upload_bytes (56 MiB), postStatus's limit.
            200 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (answer, rest) = read_answer(&mut stream).await;
        let after = read_to_close(&mut stream).await.unwrap_or_default();
        println!("{path}: {} {}", answer.status, answer.body);
        assert_ne!(answer.status, 100, "{path}: 100 Continue was sent");
        assert_eq!(
            answer.code(),
            "payload_too_large",
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.value()["operation"], "postStatus", "{}", answer.body);
        let all = [rest, after].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains("100 Continue"),
            "{path}"
        );
    }
    // Without Expect, the same announced body is refused from its head too.
    let (answer, closed) = refusal_of(
        &app,
        format!(
            "POST /v1/operations/postStatus HTTP/1.1\r\nhost: s\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
            200 * 1024 * 1024
        )
        .into_bytes(),
    )
    .await;
    assert_problem(&answer, 413, "payload_too_large");
    assert!(closed.is_ok(), "{closed:?}");
    // A call its head already refuses gets the refusal, not 100 Continue: its body is never asked for.
    for (key, status, code) in [
        ("not-the-key", 401, "unauthenticated"),
        (INIT_ONLY_KEY, 403, "forbidden"),
    ] {
        let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
        let head = format!(
            "POST /v1/operations/postStatus HTTP/1.1\r\nhost: s\r\nx-api-key: {key}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 1000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (answer, rest) = read_answer(&mut stream).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.code(), code, "{}", answer.body);
        assert!(!String::from_utf8_lossy(&rest).contains("100 Continue"));
    }
    // A body within the limit still gets its 100 Continue, then its answer.
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    let head = format!(
        "POST /v1/operations/init HTTP/1.1\r\nhost: s\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 25];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"{}").await.unwrap();
    let (answer, _) = read_answer(&mut stream).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn keep_alive_chunked_bodies_and_pipelining_pass_the_intake() {
    let app = keyed_app().await;
    let mut stream = TcpStream::connect(host_port(&app)).await.unwrap();
    let init = |framing: &str, body: &str| {
        format!("POST /v1/operations/init HTTP/1.1\r\nhost: s\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\n{framing}\r\n{body}")
    };
    // One after the other on one connection.
    for request in [
        "GET /healthz HTTP/1.1\r\nhost: s\r\n\r\n".to_owned(),
        init("content-length: 2\r\n", "{}"),
        init(
            "transfer-encoding: chunked\r\n",
            "1\r\n{\r\n1;ext=x\r\n}\r\n0\r\n\r\n",
        ),
    ] {
        stream.write_all(request.as_bytes()).await.unwrap();
        let (answer, rest) = read_answer(&mut stream).await;
        assert_eq!(answer.status, 200, "{request}: {}", answer.body);
        assert!(rest.is_empty());
    }
    // Pipelined in one write, the last one refused: the others are answered first, in order.
    let pipelined = [
        init("content-length: 2\r\n", "{}"),
        init("transfer-encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
        format!(
            "GET /healthz HTTP/1.1\r\nhost: s\r\n{}\r\n",
            "x-flood: 1\r\n".repeat(200)
        ),
    ]
    .concat();
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let mut statuses = Vec::new();
    let mut last = None;
    let started = Instant::now();
    while statuses.len() < 3 && started.elapsed() < LIMIT {
        let mut buf = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(LIMIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&buf[..n]);
        while let Some(answer) = parse_answer(&rest) {
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let length = answer
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if rest.len() < end + length {
                break;
            }
            rest.drain(..end + length);
            statuses.push(answer.status);
            last = Some(answer);
        }
    }
    assert_eq!(statuses, [200, 200, 431], "{:?}", last.map(|a| a.body));
    assert_eq!(last.unwrap().code(), "headers_too_large");
    // A chunked body that breaks its framing is cut: invalid_request, in the caller's format.
    let (answer, _) = refusal_of(
        &app,
        init("transfer-encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n").into_bytes(),
    )
    .await;
    assert_problem(&answer, 400, "invalid_request");
}

#[tokio::test]
async fn bodies_share_one_budget_and_past_it_a_call_is_overloaded() {
    let app = spawn_app_with(Options::default(), |s| {
        s.server.max_body_bytes = 4096;
        s.server.max_upload_bytes = 4096;
        s.server.max_buffered_body_bytes = 4096;
    })
    .await;
    // A first call announces 3,000 bytes and sends ten: its budget is held while it waits.
    let mut first = TcpStream::connect(host_port(&app)).await.unwrap();
    let pad = "x".repeat(3000 - 12);
    let body = format!("{{\"pad\":\"{pad}\"}}");
    assert_eq!(body.len(), 3000 - 12 + 10);
    let head = format!(
        "POST /v1/operations/init HTTP/1.1\r\nhost: s\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = app
        .post_raw(
            "/v1/operations/init",
            &[("content-type", "application/json")],
            format!("{{\"pad\":\"{}\"}}", "y".repeat(2000)),
        )
        .await;
    println!(
        "second call while the first holds its budget: {} {}",
        second.status, second.body
    );
    assert_eq!(second.status, 503, "{}", second.body);
    assert_eq!(second.code(), "overloaded");
    assert_eq!(second.header("retry-after"), Some("1"));
    // Once the first body is in and answered, its budget is back.
    first.write_all(&body.as_bytes()[10..]).await.unwrap();
    let (answer, _) = read_answer(&mut first).await;
    assert_ne!(answer.status, 503, "{}", answer.body);
    let third = app
        .post_raw(
            "/v1/operations/init",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(third.status, 200, "{}", third.body);
}

/// The resident and peak memory of process `pid` (kB), from /proc.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sidecar's binary on `port`, with one connection `main` to `instance` (`connection_extra`: more
/// of that connection's TOML lines) and the one key [`KEY`].
fn spawn_binary(dir: &Path, port: u16, instance: &str, connection_extra: &str) -> Killed {
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[store]\npath = {:?}\n\n[log]\nformat = \"json\"\nlevel = \"warn\"\n\n[connections.main]\ninstance = \"{instance}\"\n{connection_extra}\n\n[[security.api_keys]]\nname = \"memory\"\nsha256 = \"{}\"\nconnections = [\"*\"]\noperations = [\"*\"]\n",
            dir.join("sidecar.db").display().to_string(),
            digest_hex(KEY)
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mastodon-sidecar"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("MASTODON_SIDECAR")
        {
            command.env_remove(key);
        }
    }
    Killed(
        command
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("serve starts"),
    )
}

/// The sidecar's binary, started on a free port in a folder of its own and answering /healthz.
struct Running {
    pid: u32,
    port: u16,
    client: reqwest::Client,
    url: String,
    _process: Killed,
    _dir: tempfile::TempDir,
}

impl Running {
    /// `connection_extra`: more TOML lines of the connection `main` (to `instance`); `timeout`: the
    /// client's, per request.
    async fn start(instance: &str, connection_extra: &str, timeout: Duration) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = spawn_binary(dir.path(), port, instance, connection_extra);
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        // Ready within 10 s.
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
                if r.status() == 200 {
                    return Running {
                        pid: process.0.id(),
                        port,
                        client,
                        url,
                        _process: process,
                        _dir: dir,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the sidecar did not start");
    }
}

/// Resets the peak resident memory (VmHWM) of a child process to its current RSS (`5` in clear_refs,
/// Linux 4.0 and later); false where the kernel does not allow it.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One large upload, as multipart/form-data and as base64 in JSON: how much the sidecar's peak memory
/// grows over its resting size, printed. A multipart file is sent upstream from the request's own
/// buffer (held once: about 1× the file); a base64 one is held as the request's text and decoded once,
/// straight into the body sent upstream (about 2.7×). The bounds are what one more copy would break.
#[tokio::test]
async fn one_large_upload_holds_the_file_once_as_multipart_and_decodes_base64_once() {
    const FILE: usize = 15 * 1024 * 1024;
    let standin = StandIn::start(Options::default()).await;
    standin.seed_user_token("memory-upload-token", "read write");
    let sidecar = Running::start(
        &standin.url,
        "access_token = \"memory-upload-token\"",
        Duration::from_secs(60),
    )
    .await;
    let (pid, client, url) = (sidecar.pid, sidecar.client.clone(), sidecar.url.clone());

    // A PNG head (so the type is sniffed) and incompressible bytes after it.
    let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0\0\0\x01\0\x08\x06\0\0\0".to_vec();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    while file.len() < FILE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        file.extend_from_slice(&x.to_le_bytes());
    }
    file.truncate(FILE);
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &file);

    // A first, small upload warms the pools and the store up.
    let small = client
        .post(format!("{url}/v1/operations/uploadMedia"))
        .header("x-api-key", KEY)
        .json(&json!({"data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200, "{}", small.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut figures = Vec::new();
    for how in ["multipart/form-data", "base64 in JSON"] {
        let (rest_kb, _) = memory_kb(pid);
        let reset = reset_peak(pid);
        let request = client
            .post(format!("{url}/v1/operations/uploadMedia"))
            .header("x-api-key", KEY);
        let request = if how == "base64 in JSON" {
            request.json(&json!({"data": b64, "description": "a large file"}))
        } else {
            let (content_type, body) = crate::media::form_data(&[
                ("file", Some(("large.png", "image/png")), &file),
                ("description", None, b"a large file"),
            ]);
            request.header("content-type", content_type).body(body)
        };
        let answer = request.send().await.unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert_eq!(status, 200, "{how}: {body}");
        assert_eq!(body["type"], "image", "{how}: {body}");
        let (after_kb, peak_kb) = memory_kb(pid);
        let grown = peak_kb.saturating_sub(rest_kb);
        println!(
            "upload of {} MiB as {how}: RSS {} MiB at rest, peak {} MiB (+{} MiB, {:.2}× the file), {} MiB after{}",
            FILE >> 20,
            rest_kb >> 10,
            peak_kb >> 10,
            grown >> 10,
            (grown * 1024) as f64 / FILE as f64,
            after_kb >> 10,
            if reset { "" } else { " (peak not reset: VmHWM since start)" }
        );
        figures.push((how, reset, grown));
    }
    for (how, reset, grown) in figures {
        if reset {
            // In tenths of the file: multipart 1× (a copy would make it 2×); base64 its text (1.33×),
            // the parsed parameter and the decoded body (1×), and a further copy would pass 3.5×.
            let bound = if how == "base64 in JSON" { 35 } else { 15 };
            assert!(
                grown * 1024 * 10 < (FILE as u64) * bound,
                "{how}: the peak grew by {} MiB for a {} MiB file",
                grown >> 10,
                FILE >> 20
            );
        }
    }
}

#[tokio::test]
async fn a_thousand_unauthenticated_1_mib_bodies_leave_the_process_memory_small() {
    const CONNECTIONS: usize = 1000;
    const BODY: usize = 1024 * 1024;
    let standin = StandIn::start(Options::default()).await;
    let sidecar = Running::start(&standin.url, "", Duration::from_secs(30)).await;
    let (pid, port) = (sidecar.pid, sidecar.port);
    let (client, url) = (sidecar.client.clone(), sidecar.url.clone());
    let keyed = |client: reqwest::Client| {
        let url = url.clone();
        async move {
            client
                .post(format!("{url}/v1/operations/init"))
                .header("x-api-key", KEY)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    assert_eq!(keyed(client.clone()).await.unwrap(), 200);
    let (rss_before, _) = memory_kb(pid);
    println!("open files: {}", open_files_limit());

    // Each connection sends a head announcing 1 MiB (a wrong key on even ones, none on odd ones), then
    // all of the body but its last byte, and holds the connection open.
    let started = Instant::now();
    let chunk = vec![b'x'; 64 * 1024];
    let mut tasks = tokio::task::JoinSet::new();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::channel::<()>(CONNECTIONS);
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    for i in 0..CONNECTIONS {
        let chunk = chunk.clone();
        let held_tx = held_tx.clone();
        let release = release.clone();
        tasks.spawn(async move {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
                let _ = held_tx.send(()).await;
                return (false, 0usize, None);
            };
            let key = if i % 2 == 0 { "x-api-key: wrong-key-for-memory\r\n" } else { "" };
            let head = format!(
                "POST /v1/operations/postStatus HTTP/1.1\r\nhost: s\r\ncontent-type: application/xml\r\n{key}content-length: {BODY}\r\n\r\n"
            );
            let mut sent = 0;
            let mut ok = stream.write_all(head.as_bytes()).await.is_ok();
            while ok && sent < BODY - 1 {
                let n = chunk.len().min(BODY - 1 - sent);
                ok = stream.write_all(&chunk[..n]).await.is_ok();
                if ok {
                    sent += n;
                }
            }
            let _ = held_tx.send(()).await;
            // Read what came back (the refusal), holding the connection until released.
            let mut answer = vec![0u8; 4096];
            let status = match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer)).await {
                Ok(Ok(n)) if n > 12 => std::str::from_utf8(&answer[9..12]).ok().map(str::to_owned),
                _ => None,
            };
            release.notified().await;
            drop(stream);
            (true, sent, status)
        });
    }
    drop(held_tx);
    let mut peak_rss = 0;
    let mut sampled = 0;
    let mut held = 0;
    loop {
        tokio::select! {
            got = held_rx.recv() => match got {
                Some(()) => held += 1,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        let (rss, _) = memory_kb(pid);
        peak_rss = peak_rss.max(rss);
        sampled += 1;
        if held == CONNECTIONS || started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let sending = started.elapsed();
    // A moment with every connection open and sent, for the figures.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While the connections are still open: an authenticated call succeeds.
    let call_started = Instant::now();
    let keyed_status = keyed(client.clone()).await;
    let call_took = call_started.elapsed();
    let (rss_held, hwm) = memory_kb(pid);
    release.notify_waiters();
    let mut opened = 0;
    let mut bytes = 0;
    let mut statuses = std::collections::BTreeMap::new();
    // Tasks still reading are released too.
    loop {
        release.notify_waiters();
        match tokio::time::timeout(Duration::from_millis(200), tasks.join_next()).await {
            Ok(Some(done)) => {
                let (ok, sent, status) = done.unwrap();
                opened += usize::from(ok);
                bytes += sent;
                *statuses
                    .entry(status.unwrap_or_else(|| "none".into()))
                    .or_insert(0) += 1;
            }
            Ok(None) => break,
            Err(_) => continue,
        }
    }
    println!(
        "{opened} of {CONNECTIONS} connections opened, {held} held, {} MiB of unauthenticated body sent in {sending:?}; answers: {statuses:?}",
        bytes / (1024 * 1024)
    );
    println!(
        "sidecar memory: {} MiB before, {} MiB sampled peak ({sampled} samples), {} MiB while held, {} MiB VmHWM (target: under 64 MiB)",
        rss_before / 1024,
        peak_rss / 1024,
        rss_held / 1024,
        hwm / 1024
    );
    println!("authenticated init while held: {keyed_status:?} in {call_took:?}");
    assert_eq!(keyed_status.ok(), Some(200), "the keyed call meanwhile");
    assert_eq!(opened, CONNECTIONS, "every connection opened");
    // Far below what buffering the bodies would take (1,000 MiB): catches a regression, not a timing.
    assert!(hwm < 256 * 1024, "peak resident memory {hwm} kB");
}

#[tokio::test]
async fn over_tls_the_intake_checks_heads_and_keyed_calls_still_pass() {
    crate::helpers::logs();
    let standin = StandIn::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let mut settings = crate::helpers::test_settings(&standin, &dir);
    settings.server.tls_cert = Some(dir.path().join("cert.pem"));
    settings.server.tls_key = Some(dir.path().join("key.pem"));
    settings.security.api_keys = vec![api_key("memory-all", KEY, &["*"])];
    let app = mastodon_sidecar::Application::build(settings)
        .await
        .expect("the sidecar builds with TLS");
    let addr = app.local_addr();
    let shutdown = app.shutdown();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/operations/init", addr.port());
    // Two keyed calls on one kept-alive TLS connection.
    for _ in 0..2 {
        let ok = client
            .post(&url)
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("https answers");
        assert_eq!(ok.status(), 200);
    }
    // A head over the limit, inside TLS: the contract's 431.
    let refused = client
        .post(&url)
        .header("x-api-key", "k".repeat(64 * 1024))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("https answers the refusal");
    assert_eq!(refused.status(), 431);
    assert!(refused.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "headers_too_large", "{body}");
    // A wrong key with a large body: refused, the body unread.
    let wrong = client
        .post(&url)
        .header("x-api-key", "not-the-key")
        .header("content-type", "application/json")
        .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(512 * 1024)))
        .send()
        .await;
    if let Ok(wrong) = wrong {
        assert_eq!(wrong.status(), 401);
    }
    let ok = client
        .post(&url)
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("https answers");
    assert_eq!(ok.status(), 200);
    shutdown.stop().await;
}
