//! The handlers: decode, run, encode. Each stays a few lines; logic belongs to `operations/` and `wire/`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{AppState, CorrelationId};
use crate::error::{Error, ErrorKind};
use crate::operations::{self, CallContext, Operation};
use crate::security::{self, ApiKey};
use crate::wire::{self, Decoded, Format, Rejected, Reply, RequestMeta};

pub async fn operation(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let name = req.match_info().get("operation").unwrap_or_default();
    let meta = request_meta(req.headers());
    let decoded = match read_body(&req, payload, &state).await {
        Ok(body) => wire::decode_operation_request(name, &meta, &body),
        Err(error) => Err(Rejected {
            format: meta.fallback_format(false),
            operation: Operation::from_name(name),
            error,
        }),
    };
    run(&state, &req, decoded).await
}

pub async fn soap(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let meta = request_meta(req.headers());
    let decoded = match read_body(&req, payload, &state).await {
        Ok(body) => wire::decode_soap_request(&meta, &body),
        Err(error) => Err(Rejected {
            format: meta.fallback_format(true),
            operation: None,
            error,
        }),
    };
    run(&state, &req, decoded).await
}

/// Runs a decoded call (or answers its rejection), and records it. The caller's key is checked here,
/// after decoding, so that a refusal comes in the caller's format and is counted like any outcome:
/// without a valid key (when keys are configured) every call is `unauthenticated`, whatever its body;
/// a key outside its rights makes a decoded call `forbidden`.
async fn run(
    state: &AppState,
    req: &HttpRequest,
    decoded: Result<Decoded, Rejected>,
) -> HttpResponse {
    let started = Instant::now();
    let correlation_id = correlation_id(req);
    let caller = state.keys.authenticate(presented_key(req.headers()));
    let key = caller.as_ref().ok().copied().flatten().map(ApiKey::name);
    let admitted = match (decoded, &caller) {
        (Ok(call), Ok(Some(key))) => {
            let connection = security::call_connection(&state.core, call.operation, &call.params);
            match key.authorize(call.operation, connection.as_deref()) {
                Ok(()) => Ok(call),
                Err(error) => Err((
                    call.request_format.transport(),
                    Rejected {
                        format: call.response_format,
                        operation: Some(call.operation),
                        error,
                    },
                )),
            }
        }
        (Ok(call), Ok(None)) => Ok(call),
        (Ok(call), Err(error)) => Err((
            call.request_format.transport(),
            Rejected {
                format: call.response_format,
                operation: Some(call.operation),
                error: error.clone(),
            },
        )),
        (Err(rejected), Err(error)) => Err((
            rejected.format.transport(),
            Rejected {
                error: error.clone(),
                ..rejected
            },
        )),
        (Err(rejected), Ok(_)) => Err((rejected.format.transport(), rejected)),
    };
    let (operation, transport, outcome) = match admitted {
        Ok(call) => {
            let cx = CallContext {
                correlation_id: correlation_id.clone(),
                operation: call.operation,
                call_api: state
                    .keys
                    .call_api_routes(caller.as_ref().ok().copied().flatten()),
            };
            // Bounded, not queued: past the bound a caller learns at once and can retry elsewhere.
            let result = match state.in_flight.try_acquire() {
                Ok(_permit) => {
                    operations::execute(&state.core, call.operation, call.params, &cx).await
                }
                Err(_) => Err(Error::overloaded(
                    "the sidecar has as many calls in flight as server.max_in_flight allows; retry shortly",
                )),
            };
            let outcome = result.as_ref().err().map(|e| e.kind);
            let reply = match &result {
                Ok(value) => wire::success(call.response_format, call.operation, value),
                Err(e) => failed(
                    call.response_format,
                    e,
                    Some(call.operation),
                    &correlation_id,
                    key,
                ),
            };
            (
                Some(call.operation),
                call.request_format.transport(),
                (outcome, reply),
            )
        }
        Err((transport, rejected)) => {
            let reply = failed(
                rejected.format,
                &rejected.error,
                rejected.operation,
                &correlation_id,
                key,
            );
            (
                rejected.operation,
                transport,
                (Some(rejected.error.kind), reply),
            )
        }
    };
    let (kind, reply) = outcome;
    state.metrics.observe_operation(
        operation.map_or("unknown", Operation::name),
        transport,
        kind.map_or("ok", ErrorKind::code),
        started.elapsed().as_secs_f64(),
    );
    let mut response = respond(reply);
    if kind == Some(ErrorKind::Unauthenticated) {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(security::CHALLENGE),
        );
    }
    response
}

/// The API key the request carries (`X-API-Key`, or `Authorization: Bearer`).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    security::presented_key(
        text(header::AUTHORIZATION),
        text(header::HeaderName::from_static("x-api-key")),
    )
}

/// Renders an error and logs it once, at a level that says whose fault it is. `key` is the name of the
/// caller's API key when it presented a known one (never the key itself).
fn failed(
    format: Format,
    error: &Error,
    operation: Option<Operation>,
    correlation_id: &str,
    key: Option<&str>,
) -> Reply {
    let op = operation.map(Operation::name);
    if error.kind.blames_sender() {
        tracing::info!(operation = op, code = error.kind.code(), key, detail = %error.detail, "operation refused");
    } else {
        tracing::warn!(operation = op, code = error.kind.code(), key, detail = %error.detail, "operation failed");
    }
    wire::failure(format, error, op, correlation_id)
}

fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, reply.content_type));
    if let Some(seconds) = reply.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.body(reply.body)
}

fn request_meta(headers: &HeaderMap) -> RequestMeta<'_> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RequestMeta {
        content_type: text("content-type"),
        accept: text("accept"),
        soap_action: text("soapaction"),
    }
}

fn correlation_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default()
}

/// Reads the body within `server.request_read_timeout_s`, refusing it as soon as it is known to
/// exceed `server.max_body_bytes`.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Bytes, Error> {
    let timeout = state.request_read_timeout;
    tokio::time::timeout(
        timeout,
        read_body_bounded(req, payload, state.max_body_bytes),
    )
    .await
    .unwrap_or_else(|_| {
        Err(Error::invalid(format!(
            "the body did not arrive within {} s (server.request_read_timeout_s)",
            timeout.as_secs()
        )))
    })
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`.
async fn read_body_bounded(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Error> {
    let too_large = || {
        Error::new(
            ErrorKind::PayloadTooLarge,
            format!("the body exceeds {limit} bytes (server.max_body_bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `GET /oauth/callback?code=..&state=..`: finishes an authorization and answers a page for a person.
pub async fn oauth_callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    use crate::operations::callback::{oauth_callback, CallbackRefusal};
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    let outcome = oauth_callback(
        &state.core,
        query.get("code").cloned().map(Into::into),
        query.get("state").map(String::as_str),
        query.get("error").map(String::as_str),
    )
    .await;
    let reply = match outcome {
        Ok(done) => wire::html::page(200, "Account connected", &done.describe()),
        Err(refusal) => {
            let (status, title, message) = refusal.describe();
            if let CallbackRefusal::Failed(e) = &refusal {
                tracing::warn!(code = e.kind.code(), detail = %e.detail, "OAuth callback failed");
            }
            tracing::info!(status, outcome = title, "OAuth callback refused");
            wire::html::page(status, title, &message)
        }
    };
    let mut response = respond(reply);
    for (name, value) in wire::html::PAGE_HEADERS {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    response
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot render metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "draining"}));
    }
    match state.core.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "store unavailable"}))
        }
    }
}

/// `GET /soap?wsdl` (the query's name in any case): the WSDL, its ports at the URL it was fetched
/// from. Any other GET of `/soap` is refused like every method but POST. No key is needed.
pub async fn wsdl(req: HttpRequest) -> HttpResponse {
    let asks_for_wsdl = url::form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name.eq_ignore_ascii_case("wsdl"));
    if !asks_for_wsdl {
        return method_not_allowed(req).await;
    }
    let endpoint = format!("{}/soap", base_url(&req));
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(wire::wsdl::document(&endpoint))
}

/// `GET /openapi.json`: the OpenAPI description of the JSON API, its server the URL it was fetched
/// from. No key is needed.
pub async fn openapi(req: HttpRequest) -> HttpResponse {
    let document = wire::openapi::document(&base_url(&req));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(wire::json::render(&document))
}

/// The URL the request came to, without a path: the connection's scheme (or the proxy's, from
/// `Forwarded`/`X-Forwarded-Proto`, when present) and the host the caller named. What cannot be read,
/// or is not a plain scheme or host, falls back to `http` and `127.0.0.1:8080`: the value goes into
/// documents a tool will fetch from, so nothing but a host name, an address and a port passes.
fn base_url(req: &HttpRequest) -> String {
    // actix reads `Forwarded`, then `X-Forwarded-Proto`, then whether the listener has TLS.
    let scheme = if req.connection_info().scheme().eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("127.0.0.1:8080");
    format!("{scheme}://{host}")
}

/// Unknown routes still answer in the contract's error shape, never a framework page.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path: String = req.path().chars().take(100).collect();
    let error = Error::new(
        ErrorKind::UnknownOperation,
        format!(
            "there is no {method} {path}; operations are POST /v1/operations/{{operation}} and POST /soap"
        ),
    );
    reject_outside_operation(&req, error, false)
}

pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let error = Error::invalid(format!(
        "{} is not accepted here; operations are called with POST",
        req.method()
    ));
    let soap = req.path() == "/soap";
    reject_outside_operation(&req, error, soap)
}

fn reject_outside_operation(req: &HttpRequest, error: Error, soap: bool) -> HttpResponse {
    let meta = request_meta(req.headers());
    let format = meta.fallback_format(soap);
    respond(failed(format, &error, None, &correlation_id(req), None))
}
