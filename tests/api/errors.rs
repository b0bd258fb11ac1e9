//! Every error code of the contract (section 3, "Errors"), provoked through the real HTTP server and
//! checked in each of the four formats: problem+json, plain XML, SOAP 1.1 and SOAP 1.2 faults.
//!
//! The checks collect every deviation before failing, so one run shows the whole picture.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use mastodon_sidecar::error::{Error, ErrorKind};
use mastodon_sidecar::wire::{self, xml::Element, SoapVersion};
use mastodon_standin::Options;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Answer, Format, TestApp, FORMATS};

const STATUSES: &str = "POST /api/v1/statuses";
const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

// ---------------------------------------------------------------------------------------------
// What an error must look like
// ---------------------------------------------------------------------------------------------

/// The `operation` field an error must carry.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Exactly this operation.
    Is(&'static str),
    /// None is known: null in JSON, left out in XML.
    Null,
    /// Either: the request named it only indirectly (a SOAPAction, a path) before it failed to decode.
    NullOr(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Expect {
    code: &'static str,
    /// The HTTP status of the JSON and plain XML renderings (and the `status` field everywhere).
    status: u16,
    /// SOAP side: Client/Sender (true) or Server/Receiver (false).
    sender: bool,
    operation: Op,
    /// `Some(status)` iff Mastodon answered.
    upstream: Option<u16>,
    /// A SOAP fault code that replaces Client/Server (e.g. `MustUnderstand`).
    fault_code: Option<&'static str>,
}

impl Expect {
    const fn new(code: &'static str, status: u16, sender: bool, operation: Op) -> Expect {
        Expect {
            code,
            status,
            sender,
            operation,
            upstream: None,
            fault_code: None,
        }
    }

    const fn upstream(mut self, status: u16) -> Expect {
        self.upstream = Some(status);
        self
    }
}

fn child<'a>(element: &'a Element, local: &str) -> Option<&'a Element> {
    element.children.iter().find(|c| c.local == local)
}

fn child_names(element: &Element) -> Vec<String> {
    element.children.iter().map(|c| c.local.clone()).collect()
}

/// Every way `answer` deviates from `expect` when rendered in `format`.
fn deviations(format: Format, answer: &Answer, expect: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    let mut fail = |m: String| out.push(m);
    let head = || {
        let body: String = answer.body.chars().take(600).collect();
        format!("(HTTP {}, {}) {body}", answer.status, answer.content_type)
    };

    // HTTP status and content type.
    let (status, content_type) = match format {
        Format::Json => (expect.status, "application/problem+json"),
        Format::Xml => (expect.status, "application/xml"),
        Format::Soap11 => (500, "text/xml"),
        Format::Soap12 => (
            if expect.sender && expect.fault_code.is_none() {
                400
            } else {
                500
            },
            "application/soap+xml",
        ),
    };
    if answer.status != status {
        fail(format!(
            "HTTP status {} instead of {status}: {}",
            answer.status,
            head()
        ));
    }
    if !answer.content_type.starts_with(content_type) {
        fail(format!(
            "content-type {:?} instead of {content_type}: {}",
            answer.content_type,
            head()
        ));
    }
    let correlation = answer.header("x-correlation-id").map(str::to_owned);
    if correlation.as_deref().is_none_or(str::is_empty) {
        fail("no X-Correlation-ID header".into());
    }

    // The fields, and the element that holds them (XML, SOAP) for the exact set of names.
    let (fields, holder): (Value, Option<Element>) = match format {
        Format::Json => match serde_json::from_str::<Value>(&answer.body) {
            Ok(v) => (v, None),
            Err(e) => {
                fail(format!("the body is not JSON ({e}): {}", head()));
                return out;
            }
        },
        _ => {
            let root = match wire::xml::parse(answer.body.as_bytes()) {
                Ok(root) => root,
                Err(e) => {
                    fail(format!("the body is not well-formed XML ({e}): {}", head()));
                    return out;
                }
            };
            let holder = match format {
                Format::Xml => {
                    if root.local != "error" {
                        fail(format!(
                            "the root is <{}>, not <error>: {}",
                            root.local,
                            head()
                        ));
                        return out;
                    }
                    root
                }
                Format::Soap11 | Format::Soap12 => {
                    let (ns, detail_name) = if format == Format::Soap11 {
                        (SOAP11_NS, "detail")
                    } else {
                        (SOAP12_NS, "Detail")
                    };
                    if root.local != "Envelope" || root.namespace.as_deref() != Some(ns) {
                        fail(format!("not a SOAP envelope of {ns}: {}", head()));
                        return out;
                    }
                    let Some(fault) = child(&root, "Body").and_then(|b| b.children.first()) else {
                        fail(format!("no Body child: {}", head()));
                        return out;
                    };
                    if fault.local != "Fault" {
                        fail(format!(
                            "the Body holds <{}>, not a Fault: {}",
                            fault.local,
                            head()
                        ));
                        return out;
                    }
                    let side = match (format, expect.fault_code, expect.sender) {
                        (Format::Soap11, Some(code), _) => format!("soapenv:{code}"),
                        (Format::Soap11, None, true) => "soapenv:Client".into(),
                        (Format::Soap11, None, false) => "soapenv:Server".into(),
                        (_, Some(code), _) => format!("env:{code}"),
                        (_, None, true) => "env:Sender".into(),
                        (_, None, false) => "env:Receiver".into(),
                    };
                    let (code_text, reason_text) = if format == Format::Soap11 {
                        (
                            child(fault, "faultcode").map(|e| e.text.trim().to_owned()),
                            child(fault, "faultstring").map(|e| e.text.clone()),
                        )
                    } else {
                        (
                            child(fault, "Code")
                                .and_then(|c| child(c, "Value"))
                                .map(|e| e.text.trim().to_owned()),
                            child(fault, "Reason")
                                .and_then(|r| child(r, "Text"))
                                .map(|e| e.text.clone()),
                        )
                    };
                    if code_text.as_deref() != Some(side.as_str()) {
                        fail(format!(
                            "fault code {code_text:?} instead of {side}: {}",
                            head()
                        ));
                    }
                    let Some(detail) = child(fault, detail_name) else {
                        fail(format!("no <{detail_name}> in the fault: {}", head()));
                        return out;
                    };
                    // The fields are the children of the one detail entry, `tns:error`.
                    let entries: Vec<&Element> = detail.children.iter().collect();
                    let [error] = entries.as_slice() else {
                        fail(format!(
                            "<{detail_name}> holds {} entries, not the one <tns:error>: {}",
                            entries.len(),
                            head()
                        ));
                        return out;
                    };
                    if error.local != "error"
                        || error.namespace.as_deref() != Some("urn:mastodon-sidecar:v1")
                    {
                        fail(format!(
                            "the detail entry is <{}> in {:?}, not tns:error: {}",
                            error.local,
                            error.namespace,
                            head()
                        ));
                        return out;
                    }
                    let detail = *error;
                    let detail_text = wire::xml::parameters(detail)
                        .ok()
                        .and_then(|v| v["detail"].as_str().map(str::to_owned));
                    if reason_text.is_none() || reason_text != detail_text {
                        fail(format!(
                            "the fault's reason {reason_text:?} is not the detail {detail_text:?}"
                        ));
                    }
                    detail.clone()
                }
                Format::Json => unreachable!(),
            };
            match wire::xml::parameters(&holder) {
                Ok(v) => (v, Some(holder)),
                Err(e) => {
                    fail(format!("the fields cannot be read ({e}): {}", head()));
                    return out;
                }
            }
        }
    };

    let in_json = format == Format::Json;
    // The exact set of fields.
    let mut expected: BTreeSet<&str> = [
        "type",
        "title",
        "status",
        "detail",
        "code",
        "operation",
        "correlation_id",
    ]
    .into_iter()
    .collect();
    if expect.upstream.is_some() {
        expected.insert("upstream");
    }
    let operation_null = match &holder {
        None => fields.get("operation").is_some_and(Value::is_null),
        Some(_) => fields.get("operation").is_none(),
    };
    let names: Vec<String> = match (&holder, &fields) {
        (Some(holder), _) => child_names(holder),
        (None, Value::Object(map)) => map.keys().cloned().collect(),
        (None, other) => {
            fail(format!("the body is {other}, not an object"));
            return out;
        }
    };
    let mut expected_names = expected.clone();
    if !in_json && operation_null {
        // XML leaves null out.
        expected_names.remove("operation");
    }
    let got: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    if got != expected_names || got.len() != names.len() {
        fail(format!("fields {names:?} instead of {expected_names:?}"));
    }

    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |v: Option<&Value>| -> Option<u64> {
        match v? {
            Value::Number(n) if in_json => n.as_u64(),
            Value::String(s) if !in_json => s.trim().parse().ok(),
            _ => None,
        }
    };
    let type_uri = format!("urn:mastodon-sidecar:error:{}", expect.code);
    if text("type").as_deref() != Some(type_uri.as_str()) {
        fail(format!(
            "type {:?} instead of {type_uri}",
            fields.get("type")
        ));
    }
    if text("title").is_none_or(|t| t.trim().is_empty()) {
        fail(format!(
            "title {:?} is not a non-empty text",
            fields.get("title")
        ));
    }
    if number(fields.get("status")) != Some(u64::from(expect.status)) {
        fail(format!(
            "status field {:?} instead of {}",
            fields.get("status"),
            expect.status
        ));
    }
    if text("detail").is_none_or(|t| t.trim().is_empty()) {
        fail(format!(
            "detail {:?} is not a non-empty text",
            fields.get("detail")
        ));
    }
    if text("code").as_deref() != Some(expect.code) {
        fail(format!(
            "code {:?} instead of {}",
            fields.get("code"),
            expect.code
        ));
    }
    let operation = text("operation");
    let operation_ok = match expect.operation {
        Op::Is(op) => operation.as_deref() == Some(op),
        Op::Null => operation_null,
        Op::NullOr(op) => operation_null || operation.as_deref() == Some(op),
    };
    if !operation_ok || (!operation_null && operation.is_none()) {
        fail(format!(
            "operation {:?} instead of {:?}",
            fields.get("operation"),
            expect.operation
        ));
    }
    if text("correlation_id") != correlation {
        fail(format!(
            "correlation_id {:?} is not the X-Correlation-ID header {correlation:?}",
            fields.get("correlation_id")
        ));
    }
    if let Some(up_status) = expect.upstream {
        let upstream = fields.get("upstream").cloned().unwrap_or(Value::Null);
        if number(upstream.get("status")) != Some(u64::from(up_status)) {
            fail(format!(
                "upstream {upstream} does not carry status {up_status}"
            ));
        }
        if upstream
            .get("error")
            .and_then(Value::as_str)
            .is_none_or(|e| e.trim().is_empty())
        {
            fail(format!(
                "upstream {upstream} does not carry Mastodon's error text"
            ));
        }
        let keys: BTreeSet<&str> = upstream
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if keys != BTreeSet::from(["status", "error"]) {
            fail(format!(
                "upstream has the fields {keys:?} instead of status and error"
            ));
        }
    }
    if expect.code == "rate_limited" {
        let retry = answer.header("retry-after");
        if retry
            .and_then(|r| r.trim().parse::<u64>().ok())
            .is_none_or(|s| s == 0)
        {
            fail(format!(
                "Retry-After {retry:?} is not a positive number of seconds"
            ));
        }
    }
    out
}

fn label(what: &str, format: Format) -> impl Fn(String) -> String + '_ {
    move |m| format!("{what} in {format:?}: {m}")
}

/// The fields as JSON, whatever the format (SOAP: the detail's).
fn fields(answer: &Answer) -> Value {
    if answer.content_type.contains("json") {
        serde_json::from_str(&answer.body).unwrap_or(Value::Null)
    } else {
        answer.value()
    }
}

// ---------------------------------------------------------------------------------------------
// Provoking each code
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Row {
    UnknownParameter,
    MalformedBody,
    TooLongForTheInstance,
    MastodonRefusesTheContent,
    InlineConnectionWhileOff,
    UnknownOperation,
    UnknownConnection,
    NoTokenYet,
    BodyTooLarge,
    UnsupportedMediaType,
    MastodonForbids,
    MastodonRateLimits,
    MastodonAnswers503,
    InstanceUnreachable,
    MastodonTooSlow,
}

/// Rows the sidecar decides on its own.
const LOCAL_ROWS: [Row; 10] = [
    Row::UnknownParameter,
    Row::MalformedBody,
    Row::TooLongForTheInstance,
    Row::InlineConnectionWhileOff,
    Row::UnknownOperation,
    Row::UnknownConnection,
    Row::NoTokenYet,
    Row::BodyTooLarge,
    Row::UnsupportedMediaType,
    Row::InstanceUnreachable,
];

/// Rows where Mastodon's answer (or its silence) decides.
const UPSTREAM_ROWS: [Row; 5] = [
    Row::MastodonRefusesTheContent,
    Row::MastodonForbids,
    Row::MastodonRateLimits,
    Row::MastodonAnswers503,
    Row::MastodonTooSlow,
];

fn soap(format: Format) -> bool {
    matches!(format, Format::Soap11 | Format::Soap12)
}

const SOAP11_UNCLOSED: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><postStatus><status>x</status>"#;
const SOAP12_UNCLOSED: &str = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><postStatus><status>x</status>"#;

impl Row {
    fn expect(self, format: Format) -> Expect {
        use Op::*;
        let soap_op = |op| if soap(format) { NullOr(op) } else { Is(op) };
        match self {
            Row::UnknownParameter => {
                Expect::new("invalid_request", 400, true, Is("verifyCredentials"))
            }
            Row::MalformedBody => Expect::new("invalid_request", 400, true, soap_op("postStatus")),
            Row::TooLongForTheInstance => {
                Expect::new("validation_failed", 422, true, Is("postStatus"))
            }
            Row::MastodonRefusesTheContent => {
                Expect::new("validation_failed", 422, true, Is("postStatus")).upstream(422)
            }
            Row::InlineConnectionWhileOff => Expect::new("forbidden", 403, true, Is("init")),
            Row::UnknownOperation => Expect::new("unknown_operation", 404, true, Null),
            Row::UnknownConnection => {
                Expect::new("unknown_connection", 404, true, Is("verifyCredentials"))
            }
            Row::NoTokenYet => {
                Expect::new("credentials_missing", 409, true, Is("verifyCredentials"))
            }
            Row::BodyTooLarge => Expect::new("payload_too_large", 413, true, soap_op("postStatus")),
            Row::UnsupportedMediaType => {
                Expect::new("unsupported_media_type", 415, true, soap_op("postStatus"))
            }
            Row::MastodonForbids => {
                Expect::new("upstream_rejected", 403, true, Is("postStatus")).upstream(403)
            }
            Row::MastodonRateLimits => {
                Expect::new("rate_limited", 429, false, Is("postStatus")).upstream(429)
            }
            Row::MastodonAnswers503 => {
                Expect::new("upstream_unavailable", 502, false, Is("postStatus")).upstream(503)
            }
            Row::InstanceUnreachable => {
                Expect::new("upstream_unavailable", 502, false, Is("verifyCredentials"))
            }
            // A read: a post past the timeout may exist, and is `outcome_unknown` (exactly_once.rs).
            Row::MastodonTooSlow => {
                Expect::new("upstream_timeout", 504, false, Is("verifyCredentials"))
            }
        }
    }

    async fn app(self) -> TestApp {
        match self {
            Row::BodyTooLarge => {
                // postStatus carries files, so the upload limit is its limit.
                spawn_app_with(Options::default(), |s| {
                    s.server.max_body_bytes = 4096;
                    s.server.max_upload_bytes = 4096;
                })
                .await
            }
            Row::InstanceUnreachable => {
                let port = free_port();
                spawn_app_with(Options::default(), move |s| {
                    let main = s.connections.get_mut("main").unwrap();
                    main.instance = format!("http://127.0.0.1:{port}").parse().unwrap();
                    main.access_token = Some("tok-unreachable".into());
                })
                .await
            }
            Row::MastodonTooSlow => {
                let app = spawn_app_with(Options::default(), |s| {
                    let main = s.connections.get_mut("main").unwrap();
                    main.timeout_ms = 300;
                    main.connect_timeout_ms = Some(300);
                })
                .await;
                app.connect_account(Format::Json).await;
                app
            }
            Row::TooLongForTheInstance
            | Row::MastodonRefusesTheContent
            | Row::MastodonForbids
            | Row::MastodonRateLimits
            | Row::MastodonAnswers503 => {
                let app = spawn_app().await;
                app.connect_account(Format::Json).await;
                app
            }
            _ => spawn_app().await,
        }
    }

    /// Provokes the row's error; returns the format the answer must be in, and the answer.
    async fn provoke(self, app: &TestApp, format: Format) -> (Format, Answer) {
        let short = json!({"status": "hello from an error test"});
        match self {
            Row::UnknownParameter => (
                format,
                app.call(format, "verifyCredentials", json!({"bogus": 1}))
                    .await,
            ),
            Row::MalformedBody => {
                let answer = match format {
                    Format::Json => {
                        app.post_raw(
                            "/v1/operations/postStatus",
                            &[("content-type", "application/json")],
                            r#"{"status": "trunc"#,
                        )
                        .await
                    }
                    Format::Xml => {
                        app.post_raw(
                            "/v1/operations/postStatus",
                            &[("content-type", "application/xml")],
                            "<postStatus><status>x</status>",
                        )
                        .await
                    }
                    Format::Soap11 => {
                        app.post_raw(
                            "/soap",
                            &[
                                ("content-type", "text/xml; charset=UTF-8"),
                                ("SOAPAction", "\"urn:postStatus\""),
                            ],
                            SOAP11_UNCLOSED,
                        )
                        .await
                    }
                    Format::Soap12 => {
                        app.post_raw(
                            "/soap",
                            &[(
                                "content-type",
                                "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\"",
                            )],
                            SOAP12_UNCLOSED,
                        )
                        .await
                    }
                };
                (format, answer)
            }
            Row::TooLongForTheInstance => (
                format,
                app.call(format, "postStatus", json!({"status": "x".repeat(501)}))
                    .await,
            ),
            Row::MastodonRefusesTheContent => {
                app.standin.fail_next(STATUSES, 422, 1);
                (format, app.call(format, "postStatus", short).await)
            }
            Row::InlineConnectionWhileOff => (
                format,
                app.call(
                    format,
                    "init",
                    json!({"instance": "https://mastodon.example"}),
                )
                .await,
            ),
            Row::UnknownOperation => (format, app.call(format, "nope", json!({})).await),
            Row::UnknownConnection => (
                format,
                app.call(format, "verifyCredentials", json!({"connection": "nosuch"}))
                    .await,
            ),
            Row::NoTokenYet => (
                format,
                app.call(format, "verifyCredentials", json!({})).await,
            ),
            Row::BodyTooLarge => (
                format,
                app.call(
                    format,
                    "postStatus",
                    json!({"status": "x".repeat(10 * 1024)}),
                )
                .await,
            ),
            Row::UnsupportedMediaType => match format {
                Format::Json => (
                    Format::Json,
                    app.post_raw(
                        "/v1/operations/postStatus",
                        &[("content-type", "text/plain")],
                        "status=hello",
                    )
                    .await,
                ),
                Format::Xml => (
                    Format::Xml,
                    app.post_raw(
                        "/v1/operations/postStatus",
                        &[
                            ("content-type", "text/plain"),
                            ("accept", "application/xml"),
                        ],
                        "status=hello",
                    )
                    .await,
                ),
                // A SOAP 1.2 request is application/soap+xml, which is accepted: a refused media
                // type on /soap can only be answered in SOAP 1.1.
                Format::Soap11 | Format::Soap12 => (
                    Format::Soap11,
                    app.post_raw(
                        "/soap",
                        &[("content-type", "application/json")],
                        r#"{"status": "hello"}"#,
                    )
                    .await,
                ),
            },
            Row::MastodonForbids => {
                app.standin.fail_next(STATUSES, 403, 1);
                (format, app.call(format, "postStatus", short).await)
            }
            Row::MastodonRateLimits => {
                // The previous format's 429 left the window exhausted for a second; until it resets
                // the sidecar refuses without asking Mastodon (no `upstream`). Let it reset, so
                // this format sees Mastodon's own 429.
                // (The reset is read to the whole second, and a Retry-After rounds up: two seconds.)
                tokio::time::sleep(Duration::from_millis(2100)).await;
                app.standin.fail_next(STATUSES, 429, 1);
                (format, app.call(format, "postStatus", short).await)
            }
            Row::MastodonAnswers503 => {
                // More 503s than the retries a status is allowed (1 + max_retries = 3 attempts).
                app.standin.fail_next(STATUSES, 503, 3);
                let answer = app.call(format, "postStatus", short).await;
                // Four formats × three failed attempts would open the instance's circuit breaker;
                // a success in between keeps each format's answer Mastodon's own 503.
                let ok = app
                    .call(Format::Json, "postStatus", json!({"status": "recovered"}))
                    .await;
                assert_eq!(ok.status, 200, "{}", ok.body);
                (format, answer)
            }
            Row::InstanceUnreachable => (
                format,
                app.call(format, "verifyCredentials", json!({})).await,
            ),
            Row::MastodonTooSlow => {
                app.standin.delay_next(
                    "GET /api/v1/accounts/verify_credentials",
                    Duration::from_secs(2),
                    3,
                );
                (
                    format,
                    app.call(format, "verifyCredentials", json!({})).await,
                )
            }
        }
    }

    /// What the row's answers must say beyond the common shape.
    fn extra(self, answer: &Answer) -> Vec<String> {
        let fields = fields(answer);
        let detail = fields["detail"].as_str().unwrap_or_default().to_owned();
        let upstream_error = fields["upstream"]["error"].as_str().unwrap_or_default();
        let mut out = Vec::new();
        match self {
            Row::NoTokenYet
                if !(detail.contains("getToken") || detail.contains("authorizeUrl")) =>
            {
                out.push(format!(
                    "the detail {detail:?} does not name the operation to run first"
                ));
            }
            Row::MastodonForbids => {
                if upstream_error != "This action is not allowed" {
                    out.push(format!(
                        "upstream.error {upstream_error:?} is not Mastodon's text"
                    ));
                }
                if !detail.contains("This action is not allowed") {
                    out.push(format!(
                        "the detail {detail:?} does not carry Mastodon's text"
                    ));
                }
            }
            Row::MastodonRefusesTheContent if upstream_error != "Validation failed" => {
                out.push(format!(
                    "upstream.error {upstream_error:?} is not Mastodon's text"
                ));
            }
            _ => {}
        }
        out
    }

    /// Checks on the stand-in once every format was tried.
    fn after(self, app: &TestApp) -> Vec<String> {
        match self {
            Row::TooLongForTheInstance if app.standin.hits(STATUSES) != 0 => vec![format!(
                "{self:?}: Mastodon received {} POST /api/v1/statuses for a status the sidecar must refuse itself",
                app.standin.hits(STATUSES)
            )],
            _ => Vec::new(),
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn run_rows(rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    for &row in rows {
        let app = row.app().await;
        for format in FORMATS {
            let (rendered, answer) = row.provoke(&app, format).await;
            let what = format!("{row:?} sent as {format:?}");
            let name = label(&what, rendered);
            problems.extend(
                deviations(rendered, &answer, &row.expect(format))
                    .into_iter()
                    .map(&name),
            );
            problems.extend(row.extra(&answer).into_iter().map(&name));
        }
        problems.extend(row.after(&app));
    }
    problems
}

fn report(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} deviation(s) from the contract:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_error_the_sidecar_finds_itself_is_answered_in_the_callers_format() {
    report(&run_rows(&LOCAL_ROWS).await);
}

#[tokio::test]
async fn every_error_mastodon_causes_is_answered_in_the_callers_format() {
    report(&run_rows(&UPSTREAM_ROWS).await);
}

/// The contract's table, row for row: code, HTTP status, SOAP side.
const TABLE: [(ErrorKind, &str, u16, bool); 14] = [
    (ErrorKind::InvalidRequest, "invalid_request", 400, true),
    (ErrorKind::ValidationFailed, "validation_failed", 422, true),
    (ErrorKind::Unauthenticated, "unauthenticated", 401, true),
    (ErrorKind::Forbidden, "forbidden", 403, true),
    (ErrorKind::UnknownOperation, "unknown_operation", 404, true),
    (
        ErrorKind::UnknownConnection,
        "unknown_connection",
        404,
        true,
    ),
    (
        ErrorKind::CredentialsMissing,
        "credentials_missing",
        409,
        true,
    ),
    (ErrorKind::PayloadTooLarge, "payload_too_large", 413, true),
    (
        ErrorKind::UnsupportedMediaType,
        "unsupported_media_type",
        415,
        true,
    ),
    (ErrorKind::UpstreamRejected, "upstream_rejected", 400, true),
    (ErrorKind::RateLimited, "rate_limited", 429, false),
    (
        ErrorKind::UpstreamUnavailable,
        "upstream_unavailable",
        502,
        false,
    ),
    (ErrorKind::UpstreamTimeout, "upstream_timeout", 504, false),
    (ErrorKind::Internal, "internal", 500, false),
];

fn wire_format(format: Format) -> wire::Format {
    match format {
        Format::Json => wire::Format::Json,
        Format::Xml => wire::Format::Xml,
        Format::Soap11 => wire::Format::Soap(SoapVersion::V11),
        Format::Soap12 => wire::Format::Soap(SoapVersion::V12),
    }
}

/// A rendered reply as the HTTP layer would send it, with the correlation header it adds.
fn answer_of(reply: wire::Reply, correlation_id: &str) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-correlation-id",
        HeaderValue::from_str(correlation_id).unwrap(),
    );
    if let Some(seconds) = reply.retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    Answer {
        status: reply.status,
        content_type: reply.content_type.to_owned(),
        headers,
        body: String::from_utf8(reply.body).expect("UTF-8"),
    }
}

#[test]
fn unauthenticated_and_internal_render_like_every_other_code_in_every_format() {
    let mut problems = Vec::new();
    for (kind, code, status, sender) in TABLE {
        let mut error = match kind {
            ErrorKind::Internal => Error::internal(),
            ErrorKind::Unauthenticated => Error::new(
                kind,
                "send the key as Authorization: Bearer <key> or X-API-Key",
            ),
            _ => Error::new(kind, format!("a {code} for the table")),
        };
        if kind == ErrorKind::RateLimited {
            error.retry_after = Some(7);
        }
        for format in FORMATS {
            let reply = wire::failure(wire_format(format), &error, Some("init"), "cid");
            let answer = answer_of(reply, "cid");
            let expect = Expect::new(code, status, sender, Op::Is("init"));
            let what = format!("{code} rendered");
            problems.extend(
                deviations(format, &answer, &expect)
                    .into_iter()
                    .map(label(&what, format)),
            );
        }
    }
    report(&problems);
}

#[tokio::test]
async fn a_callers_activityid_is_echoed_and_carried_in_the_error_body() {
    let app = spawn_app().await;
    for format in FORMATS {
        let answer = app
            .call_with(
                format,
                "verifyCredentials",
                json!({"connection": "nosuch"}),
                &[("activityid", "mi-activity-0042")],
            )
            .await;
        let expect = Expect::new("unknown_connection", 404, true, Op::Is("verifyCredentials"));
        report(&deviations(format, &answer, &expect));
        assert_eq!(
            answer.header("x-correlation-id"),
            Some("mi-activity-0042"),
            "{format:?}"
        );
        assert_eq!(
            fields(&answer)["correlation_id"],
            "mi-activity-0042",
            "{format:?}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn an_unusable_activityid_is_sanitised_the_same_way_every_time() {
    let app = spawn_app().await;
    let long = "a".repeat(500);
    let mut seen = BTreeSet::new();
    for bad in ["mi<activity>", long.as_str()] {
        for format in FORMATS {
            let answer = app
                .call_with(
                    format,
                    "verifyCredentials",
                    json!({"connection": "nosuch"}),
                    &[("activityid", bad)],
                )
                .await;
            let header = answer
                .header("x-correlation-id")
                .expect("an X-Correlation-ID header")
                .to_owned();
            assert_ne!(header, bad, "{format:?}");
            assert!(
                !header.is_empty() && header.len() <= 128,
                "{format:?}: {header:?}"
            );
            assert!(!header.contains('<'), "{format:?}: {header:?}");
            assert_eq!(
                fields(&answer)["correlation_id"],
                header.as_str(),
                "{format:?}"
            );
            // The same raw id gives the same sanitised one in every format (an ESB's resend keeps
            // its identity); the two raw ids give two.
            seen.insert(header.clone());
        }
    }
    assert_eq!(seen.len(), 2, "one sanitised id per raw id: {seen:?}");
}

#[tokio::test]
async fn a_get_on_an_unknown_path_is_a_problem_json_unknown_operation() {
    let app = spawn_app().await;
    let answer = app.get("/nope/nothing-here").await;
    let problems = deviations(
        Format::Json,
        &answer,
        &Expect::new("unknown_operation", 404, true, Op::Null),
    );
    report(&problems);
}

#[tokio::test]
async fn a_get_on_an_operation_is_a_problem_json_invalid_request() {
    let app = spawn_app().await;
    let answer = app.get("/v1/operations/postStatus").await;
    let problems = deviations(
        Format::Json,
        &answer,
        &Expect::new("invalid_request", 400, true, Op::NullOr("postStatus")),
    );
    report(&problems);
}

#[tokio::test]
async fn a_header_block_that_must_be_understood_is_a_must_understand_fault() {
    let app = spawn_app().await;
    let soap11 = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><x:Security xmlns:x="urn:example:security" soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body><init/></soapenv:Body></soapenv:Envelope>"#;
    let soap12 = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><x:Security xmlns:x="urn:example:security" env:mustUnderstand="true"/></env:Header><env:Body><init/></env:Body></env:Envelope>"#;
    let mut expect = Expect::new("invalid_request", 400, true, Op::NullOr("init"));
    expect.fault_code = Some("MustUnderstand");
    let mut problems = Vec::new();
    let a11 = app
        .post_raw(
            "/soap",
            &[
                ("content-type", "text/xml; charset=UTF-8"),
                ("SOAPAction", "\"urn:init\""),
            ],
            soap11,
        )
        .await;
    problems.extend(
        deviations(Format::Soap11, &a11, &expect)
            .into_iter()
            .map(label("mustUnderstand", Format::Soap11)),
    );
    let a12 = app
        .post_raw(
            "/soap",
            &[(
                "content-type",
                "application/soap+xml; charset=UTF-8; action=\"urn:init\"",
            )],
            soap12,
        )
        .await;
    problems.extend(
        deviations(Format::Soap12, &a12, &expect)
            .into_iter()
            .map(label("mustUnderstand", Format::Soap12)),
    );
    report(&problems);
}

#[tokio::test]
async fn a_soap_action_naming_another_operation_than_the_body_is_a_client_fault() {
    let app = spawn_app().await;
    let soap11 = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><init xmlns="http://ws.apache.org/ns/synapse"/></soapenv:Body></soapenv:Envelope>"#;
    let soap12 = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><init xmlns="http://ws.apache.org/ns/synapse"/></env:Body></env:Envelope>"#;
    let expect = Expect::new("invalid_request", 400, true, Op::NullOr("init"));
    let mut problems = Vec::new();
    let a11 = app
        .post_raw(
            "/soap",
            &[
                ("content-type", "text/xml; charset=UTF-8"),
                ("SOAPAction", "\"urn:postStatus\""),
            ],
            soap11,
        )
        .await;
    problems.extend(
        deviations(Format::Soap11, &a11, &expect)
            .into_iter()
            .map(label("SOAPAction mismatch", Format::Soap11)),
    );
    let a12 = app
        .post_raw(
            "/soap",
            &[(
                "content-type",
                "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\"",
            )],
            soap12,
        )
        .await;
    problems.extend(
        deviations(Format::Soap12, &a12, &expect)
            .into_iter()
            .map(label("action mismatch", Format::Soap12)),
    );
    // Nothing reached Mastodon.
    assert_eq!(app.standin.hits(STATUSES), 0);
    report(&problems);
}
