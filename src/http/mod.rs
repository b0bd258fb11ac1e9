//! The HTTP layer: routes, the correlation middleware and the handlers.
//!
//! A handler reads the body (bounded), lets `wire/` decode it, runs the operation, lets `wire/` encode
//! the answer, and records the call in metrics and the log. It holds no logic of its own: that lives
//! in `operations/` (what to do) and `wire/` (how it looks). Every answer, including a framework-level
//! failure such as an unknown route, is rendered through the same error classification.
//!
//! Every request head has passed the intake first (`intake.rs`): a head actix-http could not take, or
//! one announcing a body over its operation's limit ([`limits::body_limit_for`]), is answered there in
//! the contract's error shape and never reaches a handler.
//!
//! Operation calls (`/v1/operations/{operation}`, `/soap`) need an API key when keys are configured. The
//! key, the rights the head already decides (the operation in the path, or the SOAP action) and
//! `server.max_in_flight` are checked before a byte of the body is read, and a body is read only
//! within the budget `server.max_buffered_body_bytes` shares among all requests; the refusal is
//! rendered, logged and counted like any outcome. `/healthz`, `/readyz`, `/metrics`, the OAuth callback and the two documents
//! (`GET /soap?wsdl`, `GET /openapi.json`) need none.

mod handlers;
mod intake;
pub mod limits;
mod middleware;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::web;

use crate::metrics::Metrics;
use crate::operations::Core;

/// What every handler shares.
pub struct AppState {
    pub core: Arc<Core>,
    pub metrics: Metrics,
    pub server: Arc<crate::config::ServerSettings>,
    /// Bytes of request bodies held at once, across all requests (`server.max_buffered_body_bytes`).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// The listener serves TLS: the scheme of the documents' URLs when no proxy header names one.
    pub tls: bool,
    /// Set when shutdown begins: `/readyz` answers 503 so no new traffic is routed here.
    pub draining: Arc<AtomicBool>,
    /// Bounds the calls in flight (`server.max_in_flight`): beyond it, `overloaded` at once.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub request_read_timeout: std::time::Duration,
    /// The callers' API keys; empty when callers need none.
    pub keys: crate::security::Keys,
}

/// The correlation id of the request, put into the request's extensions by the middleware.
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

pub fn configure(cfg: &mut web::ServiceConfig, callback_path: &str) {
    cfg.route(callback_path, web::get().to(handlers::oauth_callback));
    cfg.route(intake::REFUSED_PATH, web::get().to(handlers::refused));
    cfg.service(
        web::resource("/v1/operations/{operation}")
            .route(web::post().to(handlers::operation))
            .default_service(web::to(handlers::method_not_allowed)),
    )
    .service(
        web::resource("/soap")
            .route(web::post().to(handlers::soap))
            .route(web::get().to(handlers::wsdl))
            .default_service(web::to(handlers::method_not_allowed)),
    )
    .route("/openapi.json", web::get().to(handlers::openapi))
    .route("/metrics", web::get().to(handlers::metrics))
    .route("/healthz", web::get().to(handlers::healthz))
    .route("/readyz", web::get().to(handlers::readyz))
    .default_service(web::to(handlers::not_found));
}

pub use intake::{ConnectionSignals, Intake, Policy};
pub use middleware::correlate;
