//! The handlers: decode, run, encode. Each stays a few lines; logic belongs to `operations/` and `wire/`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::intake::soap_operation;
use super::limits::{body_limit_for, body_limit_setting};
use super::{AppState, ConnectionSignals, CorrelationId};
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
    let operation = Operation::from_name(name);
    let format = meta.fallback_format(false);
    call(&state, &req, payload, format, operation, |body| {
        if wire::is_form_data(meta.content_type) {
            wire::decode_form_data_request(name, &meta, body)
        } else {
            wire::decode_operation_request(name, &meta, body)
        }
    })
    .await
}

pub async fn soap(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let meta = request_meta(req.headers());
    let operation = soap_operation(meta.soap_action, meta.content_type);
    let format = meta.fallback_format(true);
    call(&state, &req, payload, format, operation, |body| {
        wire::decode_soap_request(&meta, body)
    })
    .await
}

/// One operation call, in this order: the caller's key, the rights the head already tells (the
/// operation named by the path or the SOAP action) and the bound on calls in flight are checked
/// BEFORE a byte of the body is read, so a caller that is refused costs no buffer, whatever its body;
/// then the body is read within its limit and the shared budget, decoded, checked against the key's
/// connections, and run. Every refusal is rendered in the caller's format (told from the headers
/// until the body is decoded), logged and counted like any outcome.
async fn call(
    state: &AppState,
    req: &HttpRequest,
    mut payload: web::Payload,
    format: Format,
    operation: Option<Operation>,
    decode: impl FnOnce(&Bytes) -> Result<Decoded, Rejected>,
) -> HttpResponse {
    let started = Instant::now();
    let caller = state.keys.authenticate(presented_key(req.headers()));
    let key = caller.as_ref().ok().copied().flatten();
    let refused = |error: Error| Outcome::Refused {
        transport: format.transport(),
        rejected: Rejected {
            format,
            operation,
            error,
        },
    };
    let admitted = match (&caller, key, operation) {
        (Err(error), _, _) => Err(error.clone()),
        (Ok(_), Some(key), Some(op)) => key.authorize_operation(op),
        _ => Ok(()),
    };
    // Bounded, not queued: past the bound a caller learns at once and can retry elsewhere.
    let permit = match admitted.and_then(|()| {
        state.in_flight.try_acquire().map_err(|_| {
            Error::overloaded(
                "the sidecar has as many calls in flight as server.max_in_flight allows; retry shortly",
            )
        })
    }) {
        Ok(permit) => permit,
        Err(error) => {
            discard_unread(req, &mut payload);
            return finish(state, req, started, key, refused(error)).await;
        }
    };
    let (body, _held) = match read_body(req, &mut payload, state, operation).await {
        Ok(read) => read,
        Err(error) => {
            discard_unread(req, &mut payload);
            return finish(state, req, started, key, refused(error)).await;
        }
    };
    let outcome = match decode(&body) {
        Ok(call) => {
            let connection = security::call_connection(&state.core, call.operation, &call.params);
            match key.map_or(Ok(()), |k| {
                k.authorize(call.operation, connection.as_deref())
            }) {
                Ok(()) => Outcome::Admitted(call),
                Err(error) => Outcome::Refused {
                    transport: call.request_format.transport(),
                    rejected: Rejected {
                        format: call.response_format,
                        operation: Some(call.operation),
                        error,
                    },
                },
            }
        }
        Err(rejected) => Outcome::Refused {
            transport: rejected.format.transport(),
            rejected,
        },
    };
    drop(body);
    let response = finish(state, req, started, key, outcome).await;
    drop(permit);
    response
}

/// A call past its checks, or refused with what is known for rendering the refusal.
enum Outcome {
    Admitted(Decoded),
    Refused {
        transport: &'static str,
        rejected: Rejected,
    },
}

/// Runs an admitted call (or answers a refusal), records it and renders the answer. `key` is the
/// caller's key when it presented a known one.
async fn finish(
    state: &AppState,
    req: &HttpRequest,
    started: Instant,
    key: Option<&ApiKey>,
    outcome: Outcome,
) -> HttpResponse {
    let correlation_id = correlation_id(req);
    let call_api = state.keys.call_api_routes(key);
    let key = key.map(ApiKey::name);
    let (operation, transport, kind, reply) = match outcome {
        Outcome::Admitted(call) => {
            let cx = CallContext::new(correlation_id.clone(), call.operation, call_api);
            if let Some(file) = call.file {
                *cx.file
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(file);
            }
            let result = operations::execute(&state.core, call.operation, call.params, &cx).await;
            let kind = result.as_ref().err().map(|e| e.kind);
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
                kind,
                reply,
            )
        }
        Outcome::Refused {
            transport,
            rejected,
        } => {
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
                Some(rejected.error.kind),
                reply,
            )
        }
    };
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

/// A call was answered before its body was read whole. When more of the body is still to come, actix
/// closes the connection after the answer; the intake is told to drop that rest instead of letting
/// actix buffer it while the connection lingers.
fn discard_unread(req: &HttpRequest, payload: &mut web::Payload) {
    use futures_util::FutureExt;
    loop {
        match payload.next().now_or_never() {
            // Already buffered: dropped.
            Some(Some(Ok(_))) => continue,
            // The body ended (or broke, and actix closes): nothing is coming.
            Some(None | Some(Err(_))) => return,
            None => break,
        }
    }
    if let Some(signals) = req.conn_data::<ConnectionSignals>() {
        signals.0.discard_input();
    }
}

/// `GET /_sidecar/refused`: the synthetic request the intake sends in place of a head it refused
/// (too large, too many fields, too long a target, not HTTP, a body announced over its limit). It
/// answers that refusal in the contract's error shape, in the format the refused head's
/// Content-Type/Accept ask for, and the connection closes after it. Without a refusal waiting (a
/// caller asked for this path itself), it is an unknown route.
pub async fn refused(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(refusal) = req
        .conn_data::<ConnectionSignals>()
        .and_then(|signals| signals.0.take_refusal())
    else {
        return not_found(req).await;
    };
    let meta = request_meta(req.headers());
    let format = meta.fallback_format(refusal.soap);
    let error = Error::new(refusal.kind, refusal.detail);
    let reply = failed(
        format,
        &error,
        refusal.operation,
        &correlation_id(&req),
        None,
    );
    state.metrics.observe_operation(
        refusal.operation.map_or("unknown", Operation::name),
        format.transport(),
        error.kind.code(),
        0.0,
    );
    respond(reply)
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
/// exceed the operation's limit ([`body_limit_for`]), and holding its bytes against the budget all
/// requests share (`server.max_buffered_body_bytes`): the permit comes back with the body and is
/// held until the call ends.
async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    operation: Option<Operation>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Error> {
    let timeout = state.request_read_timeout;
    let limit = body_limit_for(&state.server, operation);
    let read = read_body_bounded(
        req,
        payload,
        limit,
        body_limit_setting(operation),
        &state.body_budget,
    );
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(Error::invalid(format!(
                "the body did not arrive within {} s (server.request_read_timeout_s)",
                timeout.as_secs()
            )))
        })
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`, and taking its bytes from
/// `budget` before they are buffered (`overloaded` when the budget is spent).
async fn read_body_bounded(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    setting: &str,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Error> {
    let too_large = || {
        Error::new(
            ErrorKind::PayloadTooLarge,
            format!("the body exceeds {limit} bytes ({setting})"),
        )
    };
    let spent = || {
        Error::overloaded(
            "the sidecar holds as many request bodies as server.max_buffered_body_bytes allows; retry shortly",
        )
    };
    let take = |bytes: usize| {
        let bytes = u32::try_from(bytes).map_err(|_| too_large())?;
        Arc::clone(budget)
            .try_acquire_many_owned(bytes)
            .map_err(|_| spent())
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // An announced length is reserved whole, before anything is read; otherwise chunk by chunk.
    let mut held = match declared {
        Some(n) if n > 0 => Some(take(n)?),
        _ => None,
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if declared.is_none_or(|n| body.len() + chunk.len() > n) {
            let more = take(chunk.len())?;
            match held.as_mut() {
                Some(permit) => permit.merge(more),
                None => held = Some(more),
            }
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), held))
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
pub async fn wsdl(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let asks_for_wsdl = url::form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name.eq_ignore_ascii_case("wsdl"));
    if !asks_for_wsdl {
        return method_not_allowed(req).await;
    }
    let endpoint = format!("{}/soap", base_url(&req, state.tls));
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(wire::wsdl::document(&endpoint))
}

/// `GET /openapi.json`: the OpenAPI description of the JSON API, its server the URL it was fetched
/// from. No key is needed.
pub async fn openapi(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let document = wire::openapi::document(&base_url(&req, state.tls));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(wire::json::render(&document))
}

/// The URL the request came to, without a path: the connection's scheme (or the proxy's, from
/// `Forwarded`/`X-Forwarded-Proto`, when present) and the host the caller named. What cannot be read,
/// or is not a plain scheme or host, falls back to `http` and `127.0.0.1:8080`: the value goes into
/// documents a tool will fetch from, so nothing but a host name, an address and a port passes.
fn base_url(req: &HttpRequest, tls: bool) -> String {
    // actix reads `Forwarded`, then `X-Forwarded-Proto`; without either, the listener tells.
    let proxied = req.headers().contains_key(header::FORWARDED)
        || req.headers().contains_key("x-forwarded-proto");
    let https = if proxied {
        req.connection_info().scheme().eq_ignore_ascii_case("https")
    } else {
        tls
    };
    let scheme = if https { "https" } else { "http" };
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
