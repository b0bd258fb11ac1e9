//! Correlation: every request gets an id (the caller's or a fresh one), a span carrying it, the
//! `X-Correlation-ID` response header, and one access-log record.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

use super::CorrelationId;
use crate::telemetry;

pub async fn correlate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = telemetry::correlation_id(|name| req.headers().get(name).map(|v| v.as_bytes()));
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let quiet = matches!(req.path(), "/metrics" | "/healthz" | "/readyz");
    let span = tracing::info_span!("request", correlation_id = %id);
    let method = req.method().clone();
    let path: String = req.path().chars().take(200).collect();
    let started = Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(
            HeaderName::from_static(telemetry::CORRELATION_RESPONSE_HEADER),
            value,
        );
    }
    let status = res.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if quiet {
            tracing::debug!(%method, path, status, elapsed_ms, "request served");
        } else {
            tracing::info!(%method, path, status, elapsed_ms, "request served");
        }
    });
    Ok(res)
}
