//! Hostile input through the real HTTP server: entity expansion, external entities, deep nesting,
//! element and attribute floods, oversized and slow bodies, invalid UTF-8. Each answer must be a
//! classified error in the caller's format (or, where the input is merely large, any classified
//! answer), within a bounded time, and the sidecar must go on serving normal calls right after.
//!
//! Timings are printed (`cargo test --test api hostile:: -- --nocapture`), not asserted tightly: the
//! bounds only catch a hang or a runaway, so the tests stay reliable on a loaded two-core machine.

use std::future::Future;
use std::time::{Duration, Instant};

use mastodon_sidecar::wire::xml::{MAX_DEPTH, MAX_ELEMENTS};
use mastodon_standin::Options;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_app_with, Answer, Format, TestApp};

/// A generous ceiling for one hostile request: far above what a correct decoder needs (milliseconds),
/// far below what a quadratic or exponential one would take.
const BOUND: Duration = Duration::from_secs(20);

const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `call` within `limit`, printing how long it took.
async fn timed<T>(what: &str, limit: Duration, call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {limit:?}"));
    let took = started.elapsed();
    println!("{what}: answered in {took:?}");
    (out, took)
}

/// The sidecar still serves: `/healthz` and a plain `init` both answer 200, promptly.
async fn assert_still_serving(app: &TestApp) {
    let (health, _) = timed("healthz after", BOUND, app.get("/healthz")).await;
    assert_eq!(health.status, 200, "healthz: {}", health.body);
    let (init, _) = timed(
        "init after",
        BOUND,
        app.call(Format::Json, "init", json!({})),
    )
    .await;
    assert_eq!(init.status, 200, "init: {}", init.body);
    assert_eq!(init.value()["connection"], "main", "init: {}", init.body);
}

/// `answer` is the error `code` rendered in `format`: status, Content-Type and, for SOAP, the fault's
/// side as the contract's section 3 says.
fn assert_classified(answer: &Answer, format: Format, code: &str, status: u16) {
    let (wire_status, content_type) = match format {
        Format::Json => (status, "application/problem+json"),
        Format::Xml => (status, "application/xml"),
        Format::Soap11 => (500, "text/xml"),
        Format::Soap12 => (if status < 500 { 400 } else { 500 }, "application/soap+xml"),
    };
    assert_eq!(
        answer.status, wire_status,
        "{format:?}: status; body {}",
        answer.body
    );
    assert!(
        answer.content_type.starts_with(content_type),
        "{format:?}: content type {:?}; body {}",
        answer.content_type,
        answer.body
    );
    assert_eq!(answer.code(), code, "{format:?}: {}", answer.body);
    let root = match format {
        Format::Json => return,
        _ => mastodon_sidecar::wire::xml::parse(answer.body.as_bytes()).expect("well-formed"),
    };
    match format {
        Format::Xml => assert_eq!(root.local, "error", "{}", answer.body),
        Format::Soap11 => {
            assert_eq!(
                root.namespace.as_deref(),
                Some(SOAP11_NS),
                "{}",
                answer.body
            );
            assert!(
                answer.body.contains(":Client</faultcode>"),
                "{}",
                answer.body
            );
        }
        Format::Soap12 => {
            assert_eq!(
                root.namespace.as_deref(),
                Some(SOAP12_NS),
                "{}",
                answer.body
            );
            assert!(
                answer.body.contains(":Sender</env:Value>"),
                "{}",
                answer.body
            );
        }
        Format::Json => unreachable!(),
    }
}

/// Each hostile request on a connection of its own. A debug build may decode a large body for seconds
/// on the worker thread; actix's clock (refreshed by a task on that thread) is then stale, its
/// keep-alive deadline already past when the answer goes out, and it closes the connection at once: a
/// client reusing it would race the close (a broken pipe that says nothing about the decoder).
const CLOSE: (&str, &str) = ("connection", "close");

/// Sends `body` for `init` in `format`, as raw bytes: XML and SOAP bodies are given whole (root and
/// all), so a test controls every byte. JSON goes to the REST path as JSON.
async fn send(app: &TestApp, format: Format, body: impl Into<reqwest::Body>) -> Answer {
    match format {
        Format::Json => {
            app.post_raw(
                "/v1/operations/init",
                &[("content-type", "application/json"), CLOSE],
                body,
            )
            .await
        }
        Format::Xml => {
            app.post_raw(
                "/v1/operations/init",
                &[("content-type", "application/xml; charset=UTF-8"), CLOSE],
                body,
            )
            .await
        }
        Format::Soap11 => {
            app.post_raw(
                "/soap",
                &[
                    ("content-type", "text/xml; charset=UTF-8"),
                    ("SOAPAction", "\"urn:init\""),
                    CLOSE,
                ],
                body,
            )
            .await
        }
        Format::Soap12 => {
            app.post_raw(
                "/soap",
                &[
                    (
                        "content-type",
                        "application/soap+xml; charset=UTF-8; action=\"urn:init\"",
                    ),
                    CLOSE,
                ],
                body,
            )
            .await
        }
    }
}

/// `inner` (the `init` element and its content) as a whole document in `format`: as is for plain
/// XML, inside an envelope of the version for SOAP.
fn document(format: Format, prolog: &str, inner: &str) -> String {
    match format {
        Format::Soap11 => format!(
            "{prolog}<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\"><soapenv:Body>{inner}</soapenv:Body></soapenv:Envelope>"
        ),
        Format::Soap12 => format!(
            "{prolog}<env:Envelope xmlns:env=\"{SOAP12_NS}\"><env:Body>{inner}</env:Body></env:Envelope>"
        ),
        _ => format!("{prolog}{inner}"),
    }
}

const XML_FORMATS: [Format; 3] = [Format::Xml, Format::Soap11, Format::Soap12];

/// An answer read off a raw connection: the status, the Content-Type and the body.
fn raw_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = reqwest::header::HeaderMap::new();
    let mut content_type = String::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value.trim().to_owned();
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
            reqwest::header::HeaderValue::from_str(value.trim()),
        ) {
            headers.insert(name, value);
        }
    }
    let body = String::from_utf8_lossy(&bytes[end + 4..]).into_owned();
    Some(Answer {
        status,
        content_type,
        headers,
        body,
    })
}

/// Reads one HTTP/1.1 answer from `stream`: up to its Content-Length, or to the end of the connection.
/// `None` when the connection ended (or was reset) before an answer.
async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Answer> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let answer = raw_answer(&bytes)?;
            let length = answer
                .header("content-length")
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| bytes.len() >= end + 4 + n) {
                return raw_answer(&bytes);
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return raw_answer(&bytes),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

fn host_port(app: &TestApp) -> &str {
    app.address.trim_start_matches("http://")
}

// ---------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"#;

#[tokio::test]
async fn a_dtd_with_internal_entities_billion_laughs_is_refused_fast() {
    let app = spawn_app().await;
    for format in XML_FORMATS {
        let body = document(
            format,
            BILLION_LAUGHS,
            "<init><connection>&lol9;</connection></init>",
        );
        let (answer, _) = timed(
            &format!("billion laughs, {format:?}"),
            BOUND,
            send(&app, format, body),
        )
        .await;
        assert_classified(&answer, format, "invalid_request", 400);
        assert!(answer.body.contains("DTD"), "{}", answer.body);
        assert!(!answer.body.contains("lollol"), "{}", answer.body);
    }
    // An entity used without any DTD is refused too, not left in or silently dropped.
    let answer = send(
        &app,
        Format::Xml,
        "<init><connection>&lol9;</connection></init>",
    )
    .await;
    assert_classified(&answer, Format::Xml, "invalid_request", 400);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn an_external_entity_is_refused_and_the_file_never_shows() {
    let app = spawn_app().await;
    // Whatever the file holds here, none of its lines may come back.
    let secret_lines: Vec<String> = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_else(|_| "root:x:0:0:root:/root:/bin/bash\n".into())
        .lines()
        .filter(|l| l.len() > 8)
        .map(str::to_owned)
        .collect();
    let attacks = [
        (
            r#"<?xml version="1.0"?><!DOCTYPE init [<!ENTITY x SYSTEM "file:///etc/passwd">]>"#,
            "<init><connection>&x;</connection></init>",
        ),
        (
            r#"<!DOCTYPE init [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>"#,
            "<init><connection>main</connection></init>",
        ),
        (
            r#"<!DOCTYPE init SYSTEM "file:///etc/passwd">"#,
            "<init><connection>main</connection></init>",
        ),
    ];
    for format in XML_FORMATS {
        for (prolog, inner) in attacks {
            let (answer, _) = timed(
                &format!("external entity, {format:?}"),
                BOUND,
                send(&app, format, document(format, prolog, inner)),
            )
            .await;
            assert_classified(&answer, format, "invalid_request", 400);
            for line in &secret_lines {
                assert!(
                    !answer.body.contains(line.as_str()),
                    "{format:?}: the answer shows /etc/passwd: {}",
                    answer.body
                );
            }
        }
    }
    // XInclude is not processed either: the element is only an unknown parameter.
    let xinclude = r#"<init xmlns:xi="http://www.w3.org/2001/XInclude"><connection><xi:include href="file:///etc/passwd" parse="text"/></connection></init>"#;
    let answer = send(&app, Format::Xml, xinclude).await;
    for line in &secret_lines {
        assert!(!answer.body.contains(line.as_str()), "{}", answer.body);
    }
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Depth and size of documents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn xml_nested_far_deeper_than_the_limit_is_refused_quickly() {
    let app = spawn_app().await;
    let levels = 100_000;
    for format in XML_FORMATS {
        let inner = format!(
            "<init>{}{}</init>",
            "<a>".repeat(levels),
            "</a>".repeat(levels)
        );
        let (answer, took) = timed(
            &format!("{levels} levels of XML, {format:?}"),
            BOUND,
            send(&app, format, document(format, "", &inner)),
        )
        .await;
        assert_classified(&answer, format, "invalid_request", 400);
        assert!(
            answer.body.contains(&format!("deeper than {MAX_DEPTH}")),
            "{}",
            answer.body
        );
        if took > Duration::from_secs(1) {
            println!("note: {levels} levels took {took:?}, expected well under a second");
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn xml_with_more_elements_than_the_limit_is_refused_quickly() {
    let app = spawn_app().await;
    for format in XML_FORMATS {
        let inner = format!("<init>{}</init>", "<a/>".repeat(MAX_ELEMENTS + 1));
        let (answer, took) = timed(
            &format!("{} elements, {format:?}", MAX_ELEMENTS + 1),
            BOUND,
            send(&app, format, document(format, "", &inner)),
        )
        .await;
        assert_classified(&answer, format, "invalid_request", 400);
        assert!(
            answer
                .body
                .contains(&format!("more than {MAX_ELEMENTS} elements")),
            "{}",
            answer.body
        );
        if took > Duration::from_secs(1) {
            println!("note: the element flood took {took:?}, expected well under a second");
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn json_nested_100000_levels_is_refused_without_exhausting_the_stack() {
    let app = spawn_app().await;
    let levels = 100_000;
    let bodies = [
        format!("{}{}", "[".repeat(levels), "]".repeat(levels)),
        format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels)),
        // Unclosed: the parser must give up on depth before it reaches the end.
        "[".repeat(levels),
    ];
    for body in bodies {
        let (answer, _) = timed(
            "100000 levels of JSON",
            BOUND,
            send(&app, Format::Json, body),
        )
        .await;
        assert_classified(&answer, Format::Json, "invalid_request", 400);
    }
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Body size and pace
// ---------------------------------------------------------------------------------------------

const SMALL_LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn a_body_over_the_limit_with_content_length_is_payload_too_large() {
    let app = spawn_app_with(Options::default(), |s| {
        s.server.max_body_bytes = SMALL_LIMIT
    })
    .await;
    // Just over the limit, and four times over: both refused from the announced length.
    for size in [SMALL_LIMIT + 1, 4 * SMALL_LIMIT] {
        let body = format!("{{\"connection\":\"{}\"}}", "x".repeat(size));
        let (answer, _) = timed(
            &format!("{size} bytes with Content-Length"),
            BOUND,
            send(&app, Format::Json, body),
        )
        .await;
        assert_classified(&answer, Format::Json, "payload_too_large", 413);
    }
    let (answer, _) = timed(
        "too large, SOAP 1.2",
        BOUND,
        send(&app, Format::Soap12, "<x/>".repeat(SMALL_LIMIT)),
    )
    .await;
    assert_classified(&answer, Format::Soap12, "payload_too_large", 413);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_payload_too_large() {
    // reqwest's `stream` feature (for `Body::wrap_stream`) is not enabled in this crate, so the chunked
    // request is written by hand: no Content-Length, `Transfer-Encoding: chunked`, 16 KiB chunks.
    let app = spawn_app_with(Options::default(), |s| {
        s.server.max_body_bytes = SMALL_LIMIT
    })
    .await;
    let stream = TcpStream::connect(host_port(&app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /v1/operations/init HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        host_port(&app)
    );
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 16 * 1024];
        for _ in 0..(4 * SMALL_LIMIT / chunk.len()) {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        // Keep the write half open until the answer is read.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, std::io::Error>(writer)
    });
    let (answer, _) = timed("chunked, too large", BOUND, read_answer(&mut reader)).await;
    sender.abort();
    let answer = answer.expect("an answer before the connection closes");
    assert_classified(&answer, Format::Json, "payload_too_large", 413);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_does_not_stall_other_callers() {
    let app = spawn_app_with(Options::default(), |s| s.server.request_read_timeout_s = 1).await;
    let mut slow = TcpStream::connect(host_port(&app)).await.unwrap();
    let head = format!(
        "POST /v1/operations/init HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"connect",
        host_port(&app)
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();

    // While the slow body is pending, another caller is served at once.
    let (init, others) = timed(
        "another caller during the slow body",
        BOUND,
        app.call(Format::Json, "init", json!({})),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.body);
    // Served before the slow body's timeout ran out, so not queued behind it.
    assert!(
        others < Duration::from_secs(1),
        "the other caller waited {others:?}"
    );

    let (answer, _) = timed("the slow client", BOUND, read_answer(&mut slow)).await;
    let cut_off = started.elapsed();
    println!("the slow client was cut off after {cut_off:?} (request_read_timeout_s = 1)");
    assert!(
        cut_off < Duration::from_secs(4),
        "the slow client held on for {cut_off:?}"
    );
    // An answer, `invalid_request`; or the connection was closed without one.
    if let Some(answer) = answer {
        assert_classified(&answer, Format::Json, "invalid_request", 400);
        assert!(
            answer.body.contains("request_read_timeout_s"),
            "{}",
            answer.body
        );
    }
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Encodings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_utf8_in_json_and_xml_bodies_is_invalid_request() {
    let app = spawn_app().await;
    let json_bodies: [&[u8]; 3] = [
        b"{\"connection\":\"ma\xffin\"}",
        b"{\"conn\xc3\x28ection\":\"main\"}",
        b"\xef\xbb\xbf\xfe{}",
    ];
    for body in json_bodies {
        let answer = send(&app, Format::Json, body.to_vec()).await;
        assert_classified(&answer, Format::Json, "invalid_request", 400);
    }
    for format in XML_FORMATS {
        for inner in [
            &b"<init><connection>ma\xffin</connection></init>"[..],
            &b"<init><conn\xed\xa0\x80ection>main</conn\xed\xa0\x80ection></init>"[..],
            &b"<init a=\"\xc0\xaf\"/>"[..],
        ] {
            let doc = document(format, "", "\u{0}");
            let (before, after) = doc.split_once('\u{0}').unwrap();
            let body = [before.as_bytes(), inner, after.as_bytes()].concat();
            let answer = send(&app, format, body).await;
            assert_classified(&answer, format, "invalid_request", 400);
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_nul_byte_in_a_json_string_is_harmless() {
    let app = spawn_app().await;
    // Escaped, it is a character like any other: the connection simply does not exist.
    let answer = send(&app, Format::Json, r#"{"connection":"ma\u0000in"}"#).await;
    assert!(
        (400..500).contains(&answer.status),
        "{}: {}",
        answer.status,
        answer.body
    );
    assert!(!answer.code().is_empty(), "{}", answer.body);
    // Asked for in XML, the NUL cannot be carried: the document stays well-formed.
    let answer = app
        .post_raw(
            "/v1/operations/init",
            &[
                ("content-type", "application/json"),
                ("accept", "application/xml"),
            ],
            r#"{"connection":"ma\u0000in"}"#,
        )
        .await;
    assert!((400..500).contains(&answer.status), "{}", answer.body);
    assert!(!answer.body.contains('\u{0}'), "{:?}", answer.body);
    assert!(!answer.code().is_empty(), "{}", answer.body);
    // Raw, it is a control character JSON does not allow in a string.
    let answer = send(&app, Format::Json, &b"{\"connection\":\"ma\x00in\"}"[..]).await;
    assert_classified(&answer, Format::Json, "invalid_request", 400);
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Large but not deep
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_element_with_10000_attributes_is_answered_in_bounded_time() {
    let app = spawn_app().await;
    let attributes: String = (0..10_000).map(|i| format!(" a{i}=\"{i}\"")).collect();
    for format in XML_FORMATS {
        let inner = format!("<init{attributes}><connection>main</connection></init>");
        let (answer, took) = timed(
            &format!("10000 attributes, {format:?}"),
            BOUND,
            send(&app, format, document(format, "", &inner)),
        )
        .await;
        assert!(
            answer.status == 200 || !answer.code().is_empty(),
            "{format:?}: {}",
            answer.body
        );
        assert!(
            answer.status != 500 || format == Format::Soap11,
            "{}",
            answer.body
        );
        if took > Duration::from_secs(1) {
            println!("note: 10000 attributes took {took:?}");
        }
    }
    // As many attributes as the default body limit holds, and as many namespace declarations: each
    // costs the parser work per attribute already seen, so they must be cut short.
    let flood: String = (0..80_000).map(|i| format!(" a{i}=\"\"")).collect();
    let namespaces: String = (0..40_000).map(|i| format!(" xmlns:p{i}=\"u\"")).collect();
    let children = "<p:x/>".repeat(MAX_ELEMENTS - 10);
    for (what, inner) in [
        (
            "80000 attributes",
            format!("<init{flood}><connection>main</connection></init>"),
        ),
        (
            "40000 namespace declarations and 10000 children",
            format!("<init{namespaces}>{children}</init>"),
        ),
    ] {
        let body = document(Format::Xml, "", &inner);
        assert!(body.len() < 1024 * 1024, "{}", body.len());
        let (answer, took) = timed(what, BOUND, send(&app, Format::Xml, body)).await;
        assert!(answer.status < 500, "{what}: {}", answer.body);
        assert!(!answer.code().is_empty(), "{what}: {}", answer.body);
        if took > Duration::from_secs(1) {
            println!("note: {what} took {took:?}");
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_5_mib_text_node_within_a_raised_limit_is_answered() {
    let app = spawn_app_with(Options::default(), |s| {
        s.server.max_body_bytes = 8 * 1024 * 1024
    })
    .await;
    // Plain XML only: SOAP bodies go through the same parser, and each 5 MiB decode leaves tens of MiB
    // in the allocator's arenas of this one test process (where `load::` measures RSS growth).
    let text = "a&amp;b ".repeat(5 * 1024 * 1024 / 8);
    let body = format!("<postStatus><status>{text}</status></postStatus>");
    drop(text);
    let (answer, _) = timed(
        "a 5 MiB text node",
        BOUND,
        app.post_raw(
            "/v1/operations/postStatus",
            &[("content-type", "application/xml"), CLOSE],
            body,
        ),
    )
    .await;
    // No account is connected, so whatever the classification, it is not a crash or a bug.
    assert!(!answer.code().is_empty(), "{}", answer.body);
    assert_ne!(answer.code(), "internal", "{}", answer.body);
    assert!(answer.body.len() < 64 * 1024, "the text came back");
    // The same in JSON.
    let body = json!({"status": "ab ".repeat(5 * 1024 * 1024 / 3)}).to_string();
    let (answer, _) = timed(
        "a 5 MiB JSON string",
        BOUND,
        app.post_raw(
            "/v1/operations/postStatus",
            &[("content-type", "application/json"), CLOSE],
            body,
        ),
    )
    .await;
    assert!(!answer.code().is_empty(), "{}", answer.body);
    assert_ne!(answer.code(), "internal", "{}", answer.body);
    assert!(answer.body.len() < 64 * 1024, "the text came back");
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// SOAP headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_soap_header_with_1000_blocks_is_handled_normally() {
    let app = spawn_app().await;
    for (format, prefix, ns) in [
        (Format::Soap11, "soapenv", SOAP11_NS),
        (Format::Soap12, "env", SOAP12_NS),
    ] {
        // No block demands to be understood: most say nothing, some say so explicitly.
        let blocks: String = (0..1000)
            .map(|i| {
                let attribute = match i % 10 {
                    0 => format!(" {prefix}:mustUnderstand=\"0\""),
                    1 => format!(" {prefix}:mustUnderstand=\"false\""),
                    _ => String::new(),
                };
                format!("<h:Trace{i} xmlns:h=\"urn:example:trace\"{attribute}>{i}</h:Trace{i}>")
            })
            .collect();
        let body = format!(
            "<{prefix}:Envelope xmlns:{prefix}=\"{ns}\"><{prefix}:Header>{blocks}</{prefix}:Header><{prefix}:Body><init xmlns=\"http://ws.apache.org/ns/synapse\"><connection>main</connection></init></{prefix}:Body></{prefix}:Envelope>"
        );
        let (answer, _) = timed(
            &format!("1000 header blocks, {format:?}"),
            BOUND,
            send(&app, format, body),
        )
        .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        assert_eq!(answer.value()["connection"], "main", "{}", answer.body);
        assert!(answer.body.contains("initResponse"), "{}", answer.body);
    }
    assert_still_serving(&app).await;
}

// ---------------------------------------------------------------------------------------------
// Ambiguous or header-breaking input
// ---------------------------------------------------------------------------------------------

/// `postStatus` with `inner` as its parameters (XML elements), whole, in `format`.
fn post_document(format: Format, inner: &str) -> (String, String, Vec<(&'static str, String)>) {
    let element = format!("<postStatus xmlns=\"urn:x\">{inner}</postStatus>");
    match format {
        Format::Json => unreachable!("JSON bodies are written as JSON"),
        Format::Xml => (
            "/v1/operations/postStatus".into(),
            element,
            vec![("content-type", "application/xml".into())],
        ),
        Format::Soap11 => (
            "/soap".into(),
            format!("<s:Envelope xmlns:s=\"{SOAP11_NS}\"><s:Body>{element}</s:Body></s:Envelope>"),
            vec![
                ("content-type", "text/xml".into()),
                ("SOAPAction", "\"urn:postStatus\"".into()),
            ],
        ),
        Format::Soap12 => (
            "/soap".into(),
            format!("<s:Envelope xmlns:s=\"{SOAP12_NS}\"><s:Body>{element}</s:Body></s:Envelope>"),
            vec![(
                "content-type",
                "application/soap+xml; action=\"urn:postStatus\"".into(),
            )],
        ),
    }
}

async fn post_xml(app: &TestApp, format: Format, inner: &str) -> Answer {
    let (path, body, headers) = post_document(format, inner);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_raw(&path, &headers, body).await
}

#[tokio::test]
async fn control_characters_in_a_parameter_sent_as_a_header_are_invalid_request_in_every_format() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    // Raw characters (JSON escapes them), and the XML character references that stand for them.
    let raw = [
        "a\r\nX-Injected: 1",
        "nul\u{0}",
        "tab\tkey",
        "del\u{7f}",
        "c1\u{85}",
        "\n",
    ];
    let references = [
        "a&#13;&#10;X-Injected: 1",
        "tab&#9;key",
        "del&#127;",
        "lf&#xA;",
    ];
    for (param, op) in [
        ("idempotency_key", "postStatus"),
        ("access_token", "init"),
        ("instance", "init"),
    ] {
        for value in raw {
            let params = if op == "postStatus" {
                json!({"status": "hi", param: value})
            } else {
                json!({param: value})
            };
            let answer = app.call(Format::Json, op, params).await;
            assert_classified(&answer, Format::Json, "invalid_request", 400);
            assert!(
                answer.value()["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("`{param}`")),
                "{param} {value:?}: {}",
                answer.body
            );
        }
        for format in XML_FORMATS {
            for value in references {
                let answer = if op == "postStatus" {
                    post_xml(
                        &app,
                        format,
                        &format!("<status>hi</status><{param}>{value}</{param}>"),
                    )
                    .await
                } else {
                    let inner = format!("<init><{param}>{value}</{param}></init>");
                    send(&app, format, document(format, "", &inner)).await
                };
                assert_classified(&answer, format, "invalid_request", 400);
                assert!(
                    answer.body.contains("control character"),
                    "{param} {value:?} {format:?}: {}",
                    answer.body
                );
            }
        }
    }
    // Nothing was posted, and a printable key still posts.
    assert!(app.standin.statuses().is_empty());
    let answer = app
        .call(
            Format::Soap12,
            "postStatus",
            json!({"status": "hi", "idempotency_key": "order 1042"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a_json_key_given_twice_is_invalid_request_naming_it_at_any_depth() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    for (body, key) in [
        (r#"{"status":"first","status":"second"}"#, "status"),
        (
            r#"{"status":"s","poll":{"options":["a","b"],"expires_in":300,"expires_in":600}}"#,
            "expires_in",
        ),
    ] {
        let answer = app
            .post_raw(
                "/v1/operations/postStatus",
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_classified(&answer, Format::Json, "invalid_request", 400);
        let detail = answer.value()["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains(&format!("`{key}` more than once")),
            "{detail}"
        );
    }
    assert!(app.standin.statuses().is_empty());
    // A list may repeat a value; that is not a repeated key.
    let answer = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "s", "poll": {"options": ["a", "a"], "expires_in": 300}}),
        )
        .await;
    assert_ne!(answer.code(), "invalid_request", "{}", answer.body);
}

#[tokio::test]
async fn repeated_soap_bodies_headers_and_single_valued_elements_are_invalid_request() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    for (ns, format) in [(SOAP11_NS, Format::Soap11), (SOAP12_NS, Format::Soap12)] {
        for (inner, says) in [
            (
                "<s:Body><postStatus><status>one</status></postStatus></s:Body><s:Body><postStatus><status>two</status></postStatus></s:Body>",
                "more than one Body",
            ),
            (
                "<s:Header/><s:Header/><s:Body><postStatus><status>one</status></postStatus></s:Body>",
                "more than one Header",
            ),
            (
                "<s:Body><postStatus><status>one</status></postStatus><postStatus><status>two</status></postStatus></s:Body>",
                "more than one element",
            ),
        ] {
            let (path, _, headers) = post_document(format, "");
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let body = format!("<s:Envelope xmlns:s=\"{ns}\">{inner}</s:Envelope>");
            let answer = app.post_raw(&path, &headers, body).await;
            assert_classified(&answer, format, "invalid_request", 400);
            assert!(answer.body.contains(says), "{format:?}: {}", answer.body);
        }
    }
    for format in XML_FORMATS {
        for (inner, param) in [
            ("<status>one</status><status>two</status>", "status"),
            ("<status>s</status><sensitive>true</sensitive><sensitive>false</sensitive>", "sensitive"),
            (
                "<status>s</status><poll><options>a</options><options>b</options><expires_in>300</expires_in></poll><poll><options>c</options><options>d</options></poll>",
                "poll",
            ),
            (
                "<status>s</status><poll><options>a</options><options>b</options><expires_in>300</expires_in><expires_in>600</expires_in></poll>",
                "poll.expires_in",
            ),
        ] {
            let answer = post_xml(&app, format, inner).await;
            assert_classified(&answer, format, "invalid_request", 400);
            assert!(
                answer.body.contains(&format!("`{param}`")) && answer.body.contains("repeated"),
                "{format:?} {param}: {}",
                answer.body
            );
        }
    }
    assert!(app.standin.statuses().is_empty());
    // A list parameter repeats its element, as XML lists do.
    let answer = post_xml(
        &app,
        Format::Soap11,
        "<status>s</status><poll><options>a</options><options>b</options><expires_in>300</expires_in></poll>",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_still_serving(&app).await;
}
