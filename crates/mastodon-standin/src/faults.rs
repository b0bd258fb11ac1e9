//! Injected faults beyond the plain ones: a failure answer shaped like Mastodon's, an answer
//! lost in transit (the connection closed once the work is done), and a stall after which
//! the post is created even if the client has gone. The exactly-once tests rest on these.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::http::{error, json, rate_headers};
use crate::posting::Draft;
use crate::shapes;
use crate::state::Shared;
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
