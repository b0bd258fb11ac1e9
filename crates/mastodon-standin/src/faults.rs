//! Injected faults beyond the plain ones: a failure answer shaped like Mastodon's, an answer
//! lost in transit (the connection closed once the work is done), and a stall after which
//! the post is created even if the client has gone. The exactly-once tests rest on these. And an
//! echo of the whole request, for the tests that no secret a server repeats leaks further.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::http::{error, json, rate_headers, HTML, JSON};
use crate::posting::Draft;
use crate::shapes;
use crate::state::{Echo, Shared};
use crate::time;

/// A second handle on a connection's socket, taken when it is accepted, so that a handler
/// can close the connection without answering.
pub struct Conn(pub socket2::Socket);

/// Keeps a handle on each accepted TCP connection (see [`Conn`]).
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Ok(sock) = socket2::SockRef::from(stream).try_clone() {
            ext.insert(Conn(sock));
        }
    }
}

/// Closes the request's connection at once: the client gets no answer at all.
pub fn drop_connection(req: &HttpRequest) {
    if let Some(conn) = req.conn_data::<Conn>() {
        let _ = conn.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Waits `delay`, then creates the post in a task of its own: a client that gives up (its
/// handler future is dropped) does not stop the creation, as on a real server.
pub async fn stall_then_create(
    shared: Arc<Shared>,
    draft: Box<Draft>,
    delay: Duration,
) -> HttpResponse {
    let profile = shared.opts.profile;
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        draft.create(&shared)
    });
    match task.await {
        Ok(body) => json(200, body),
        Err(_) => shapes::internal_error(profile),
    }
}

/// The whole request as text: method, path and query, every header, the body as sent; then what
/// [`crate::StandIn::echo_also`] set.
pub fn echo_text(shared: &Shared, req: &HttpRequest, body: &[u8]) -> String {
    let mut out = format!("ECHO {} {}", req.method(), req.path());
    if !req.query_string().is_empty() {
        out.push('?');
        out.push_str(req.query_string());
    }
    let mut headers: Vec<String> = req
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    headers.sort();
    for h in headers {
        out.push('\n');
        out.push_str(&h);
    }
    out.push_str("\n\n");
    out.push_str(&String::from_utf8_lossy(body));
    let also = crate::state::lock(&shared.echo_also);
    if !also.is_empty() {
        out.push_str("\n\nalso heard: ");
        out.push_str(&also);
    }
    out
}

/// An error answer repeating `text` in the shape asked for.
pub fn echo_response(echo: Echo, text: &str) -> HttpResponse {
    let build = |status: u16, content_type: &str, body: String| {
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .insert_header((actix_web::http::header::CONTENT_TYPE, content_type))
            .body(body)
    };
    match echo {
        Echo::Json(status) => build(
            status,
            JSON,
            serde_json::json!({"error": text, "error_description": text}).to_string(),
        ),
        Echo::Text(status) => build(status, "text/plain; charset=utf-8", text.to_owned()),
        Echo::Html(status) => {
            let escaped = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;");
            build(
                status,
                HTML,
                format!("<!DOCTYPE html><html><body><h1>Bad request</h1><pre>{escaped}</pre></body></html>"),
            )
        }
        Echo::InAnswer => build(200, JSON, serde_json::json!({ "echo": text }).to_string()),
    }
}

/// A JSON object answer with an `"echo"` field added; any other answer as it was.
pub async fn echo_in_answer(resp: HttpResponse, text: &str) -> HttpResponse {
    let status = resp.status();
    let headers = resp.headers().clone();
    let Ok(bytes) = actix_web::body::to_bytes(resp.into_body()).await else {
        return HttpResponse::InternalServerError().finish();
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("echo".into(), text.into());
            serde_json::to_vec(&map).unwrap_or_default()
        }
        _ => bytes.to_vec(),
    };
    let mut out = HttpResponse::build(status).body(body);
    for (k, v) in &headers {
        if k != actix_web::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// The answer to an injected failure: Mastodon-shaped bodies, 429 with rate-limit headers.
pub fn fault_response(shared: &Shared, status: u16) -> HttpResponse {
    let message = match status {
        400 => "Bad request",
        401 => "The access token is invalid",
        403 => "This action is not allowed",
        404 => "Record not found",
        410 => "Gone",
        422 => "Validation failed",
        429 => "Too many requests",
        500 => "Internal server error",
        502 => "Bad gateway",
        503 => "Service unavailable",
        504 => "Gateway timeout",
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    };
    let mut resp = error(status, message);
    if status == 429 {
        rate_headers(&mut resp, shared.opts.rate_limit, 0, time::now_ms() + 1000);
    }
    resp
}
