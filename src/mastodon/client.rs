//! HTTP calls to one Mastodon server, and the classification of what comes back.
//!
//! One client per connection, because timeouts, retries and the rate-limit policy are per connection.
//! Each call runs within one budget (`timeout_ms`, retries included): it waits for its turn under the
//! connection's in-flight bound, respects what Mastodon's `X-RateLimit-*` headers said (pacing near
//! the limit, failing fast or waiting at zero), asks the instance's circuit breaker, and retries what
//! is safe to repeat with backoff and jitter: a connect failure always (nothing reached Mastodon),
//! a 5xx or a broken exchange only for idempotent routes (GETs, revocation, and statuses, which always
//! carry an `Idempotency-Key` that stays the same across attempts). A 4xx other than 429 is never
//! retried. Every attempt is measured under its route template, never the concrete URL. Bodies are
//! read with a cap, because an inline connection may point at a server nobody vetted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::address::PublicOnlyResolver;
use super::resilience::{backoff, Before, Breaker, Window};
use crate::config::{ConnectionSettings, OnRateLimit};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;

/// How long a call waits for a free slot under the connection's `max_in_flight`.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// The most of a Mastodon answer that is read; a Status or an Account is a few KiB.
const MAX_UPSTREAM_BODY: usize = 4 * 1024 * 1024;

/// A Mastodon route: the method and the path template used as the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// `"POST /api/v1/statuses"`, the `endpoint` label.
    pub label: &'static str,
    /// Whether sending it twice has the effect of sending it once, so a failed attempt may be repeated.
    pub idempotent: bool,
}

macro_rules! endpoint {
    ($name:ident, $method:literal, $path:literal, $idempotent:literal) => {
        pub const $name: Endpoint = Endpoint {
            method: $method,
            path: $path,
            label: concat!($method, " ", $path),
            idempotent: $idempotent,
        };
    };
}

impl Endpoint {
    endpoint!(INSTANCE_V2, "GET", "/api/v2/instance", true);
    endpoint!(INSTANCE_V1, "GET", "/api/v1/instance", true);
    endpoint!(NODEINFO_WELL_KNOWN, "GET", "/.well-known/nodeinfo", true);
    // The document's path comes from the links; the label stays one template.
    endpoint!(NODEINFO, "GET", "/nodeinfo", true);
    endpoint!(
        OAUTH_METADATA,
        "GET",
        "/.well-known/oauth-authorization-server",
        true
    );
    // A second registration would be a second app (and Mastodon allows five per ten minutes).
    endpoint!(CREATE_APP, "POST", "/api/v1/apps", false);
    // A code is single-use: a repeat after Mastodon took it fails, and would hide the real answer.
    endpoint!(TOKEN, "POST", "/oauth/token", false);
    endpoint!(REVOKE, "POST", "/oauth/revoke", true);
    endpoint!(
        VERIFY_CREDENTIALS,
        "GET",
        "/api/v1/accounts/verify_credentials",
        true
    );
    // Idempotent because every post carries an Idempotency-Key (see operations/post_status.rs).
    endpoint!(POST_STATUS, "POST", "/api/v1/statuses", true);
    // Read to resolve a post whose answer was lost (operations/post_once.rs).
    endpoint!(ACCOUNT_STATUSES, "GET", "/api/v1/accounts/:id/statuses", true);
    endpoint!(SCHEDULED_STATUSES, "GET", "/api/v1/scheduled_statuses", true);
}

/// What the `X-RateLimit-*` headers of one answer said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// When the window resets, as Unix seconds (Mastodon sends ISO 8601, not epoch seconds).
    pub reset_unix: Option<i64>,
}

impl RateLimit {
    fn from_headers(headers: &HeaderMap) -> RateLimit {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<i64>().ok());
        RateLimit {
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset_unix: text("x-ratelimit-reset").and_then(parse_reset),
        }
    }
}

/// `X-RateLimit-Reset` is ISO 8601 with fractional seconds on Mastodon; some forks send epoch seconds.
fn parse_reset(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(epoch) = value.parse::<i64>() {
        return Some(epoch);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

pub(crate) use crate::clock::unix_now;

/// A client bound to one connection's server, policies and metric labels.
#[derive(Clone)]
pub struct MastodonClient {
    http: reqwest::Client,
    base: Url,
    connection: String,
    timeout: Duration,
    max_retries: u32,
    on_rate_limit: OnRateLimit,
    max_rate_limit_wait: Duration,
    max_in_flight: usize,
    in_flight: Arc<Semaphore>,
    windows: Arc<Mutex<HashMap<&'static str, Window>>>,
    breaker: Arc<Breaker>,
    metrics: Metrics,
}

/// An attempt that failed in a way that may be worth repeating.
struct Failed {
    reason: &'static str,
    error: Error,
    safe_to_repeat: bool,
}

impl MastodonClient {
    /// `public_only`: resolve the server's name to public addresses only (inline connections).
    pub fn new(
        name: &str,
        settings: &ConnectionSettings,
        metrics: Metrics,
        breaker: Arc<Breaker>,
        public_only: bool,
    ) -> Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(timeout)
            // Mastodon never redirects its API; following a redirect could carry a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mastodon-sidecar/", env!("CARGO_PKG_VERSION")));
        if public_only {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let http = builder.build().map_err(|e| {
            tracing::error!(error = %e, "cannot build the HTTP client");
            Error::internal()
        })?;
        let mut base = settings.instance.clone();
        // `join` with an absolute path replaces the base path; keep the base as given minus a slash.
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(MastodonClient {
            http,
            base,
            connection: name.to_owned(),
            timeout,
            max_retries: settings.max_retries,
            on_rate_limit: settings.on_rate_limit,
            max_rate_limit_wait: Duration::from_secs(settings.max_rate_limit_wait_s),
            max_in_flight: settings.max_in_flight,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            windows: Arc::default(),
            breaker,
            metrics,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `https://host[/prefix]` + `path`, as a string.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// The same as a `Url`, built from the parsed base: parsing the string again on every call
    /// (host normalisation included) showed in the profile.
    fn endpoint_url(&self, endpoint: Endpoint) -> Url {
        let mut url = self.base.clone();
        let path = format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            endpoint.path
        );
        url.set_path(&path);
        url
    }

    /// GET an endpoint that may not exist on this server: `Ok(None)` on 404 (and 410).
    pub async fn get_optional(&self, endpoint: Endpoint) -> Result<Option<Value>> {
        let request = self.http.get(self.endpoint_url(endpoint));
        match self.send(endpoint, request).await {
            Ok(value) => Ok(Some(value)),
            Err(e) => match &e.upstream {
                Some(up) if up.status == 404 || up.status == 410 => Ok(None),
                _ => Err(e),
            },
        }
    }

    pub async fn get(&self, endpoint: Endpoint, token: Option<&SecretString>) -> Result<Value> {
        let mut request = self.http.request(Method::GET, self.endpoint_url(endpoint));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        self.send(endpoint, request).await
    }

    /// POST a form body (OAuth endpoints take forms on every server version).
    pub async fn post_form(&self, endpoint: Endpoint, form: &[(&str, &str)]) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(self.endpoint_url(endpoint))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        self.send(endpoint, request).await
    }

    /// POST a JSON body, optionally with a user token and extra headers.
    pub async fn post_json(
        &self,
        endpoint: Endpoint,
        token: Option<&SecretString>,
        body: &Value,
        headers: &[(&'static str, String)],
    ) -> Result<Value> {
        let mut request = self.http.post(self.endpoint_url(endpoint)).json(body);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        self.send(endpoint, request).await
    }

    /// Sends `request` under the connection's policies; see the module documentation.
    async fn send(&self, endpoint: Endpoint, request: reqwest::RequestBuilder) -> Result<Value> {
        // A short, bounded wait for a slot absorbs bursts; past it the caller learns at once rather
        // than joining a queue that only grows.
        let overloaded = || {
            Error::overloaded(format!(
                "connection {:?} has had {} calls to Mastodon in flight for a second (max_in_flight); retry shortly",
                self.connection, self.max_in_flight
            ))
        };
        let _permit = tokio::time::timeout(SLOT_WAIT.min(self.timeout), self.in_flight.acquire())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| overloaded())?;
        let mut deadline = Instant::now() + self.timeout;
        let mut attempt: u32 = 0;
        let mut waited_for_reset = false;
        loop {
            match self.window(endpoint).before_sending(unix_now()) {
                Before::Send => {}
                Before::Pace(pause) => {
                    if Instant::now() + pause < deadline {
                        tracing::debug!(
                            endpoint = endpoint.label,
                            pause_ms = pause.as_millis() as u64,
                            "pacing near the rate limit"
                        );
                        tokio::time::sleep(pause).await;
                    }
                }
                Before::Exhausted { reset_unix } => {
                    let wait = self.wait_for_reset(endpoint, reset_unix, waited_for_reset)?;
                    tokio::time::sleep(wait).await;
                    deadline += wait;
                    waited_for_reset = true;
                }
            }
            self.breaker.admit().map_err(|refused| {
                let until = refused
                    .until_unix
                    .map(|t| format!(" until {}", format_unix(t)))
                    .unwrap_or_else(|| " while a probe request is under way".to_owned());
                Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!(
                        "the circuit breaker for {} is open{until} after repeated failures; calls fail fast",
                        self.host()
                    ),
                )
            })?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timeout_error(attempt));
            }
            let Some(this_attempt) = request.try_clone() else {
                tracing::error!(
                    endpoint = endpoint.label,
                    "a request body could not be repeated"
                );
                return Err(Error::internal());
            };
            let failed = match self
                .attempt(endpoint, this_attempt.timeout(remaining), attempt)
                .await
            {
                Attempt::Done(result) => return result,
                Attempt::RateLimited { error, reset_unix } => {
                    match self.wait_for_reset(endpoint, reset_unix, waited_for_reset) {
                        Ok(wait) => {
                            self.metrics.upstream_retry(endpoint.label, "rate_limited");
                            tracing::info!(
                                endpoint = endpoint.label,
                                wait_s = wait.as_secs(),
                                "rate limited; waiting for the reset"
                            );
                            tokio::time::sleep(wait).await;
                            deadline += wait;
                            waited_for_reset = true;
                            continue;
                        }
                        Err(_) => return Err(error),
                    }
                }
                Attempt::Failed(failed) => failed,
            };
            let pause = backoff(attempt);
            if !failed.safe_to_repeat
                || attempt >= self.max_retries
                || Instant::now() + pause >= deadline
            {
                return Err(failed.error);
            }
            attempt += 1;
            self.metrics.upstream_retry(endpoint.label, failed.reason);
            tracing::info!(
                endpoint = endpoint.label,
                reason = failed.reason,
                attempt,
                pause_ms = pause.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(pause).await;
        }
    }

    /// One exchange, measured, with its outcome classified.
    async fn attempt(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
        attempt: u32,
    ) -> Attempt {
        let started = Instant::now();
        let outcome = self.exchange(request).await;
        let seconds = started.elapsed().as_secs_f64();
        let (status, headers, body) = match outcome {
            Err(e) => {
                self.metrics.observe_upstream(endpoint.label, None, seconds);
                self.breaker.record(false);
                let error = self.classify_transport_error(&e, attempt);
                let reason = if e.is_connect() {
                    "connect"
                } else if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                // A timeout used the whole remaining budget; a connect failure never reached Mastodon.
                let safe_to_repeat = e.is_connect() || (endpoint.idempotent && !e.is_timeout());
                tracing::warn!(
                    endpoint = endpoint.label,
                    code = error.kind.code(),
                    error = %e.without_url(),
                    "no answer from Mastodon"
                );
                return Attempt::Failed(Failed {
                    reason,
                    safe_to_repeat,
                    error,
                });
            }
            Ok(answer) => answer,
        };
        self.metrics
            .observe_upstream(endpoint.label, Some(status.as_u16()), seconds);
        let rate = RateLimit::from_headers(&headers);
        self.remember(endpoint, &rate);
        if status.is_success() {
            self.breaker.record(true);
            return Attempt::Done(serde_json::from_slice(&body).map_err(|_| {
                tracing::warn!(
                    endpoint = endpoint.label,
                    status = status.as_u16(),
                    "Mastodon answered with a body that is not JSON"
                );
                Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!(
                        "{} answered {} with a body that is not JSON; is it a Mastodon server?",
                        self.host(),
                        endpoint.label
                    ),
                )
                .with_upstream(status.as_u16(), None)
            }));
        }
        let error = self.classify_refusal(endpoint, status, &body, &rate);
        tracing::info!(
            endpoint = endpoint.label,
            status = status.as_u16(),
            code = error.kind.code(),
            "Mastodon refused the request"
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.breaker.record(true);
            let reset_unix = rate.reset_unix.unwrap_or_else(|| unix_now() + 60);
            return Attempt::RateLimited { error, reset_unix };
        }
        if status.is_server_error() {
            self.breaker.record(false);
            return Attempt::Failed(Failed {
                reason: "status_5xx",
                safe_to_repeat: endpoint.idempotent,
                error,
            });
        }
        // A 4xx (or a redirect) says the server works and refuses this request: never repeated.
        self.breaker.record(true);
        Attempt::Done(Err(error))
    }

    fn window(&self, endpoint: Endpoint) -> Window {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.get(endpoint.label).cloned().unwrap_or_default()
    }

    fn remember(&self, endpoint: Endpoint, rate: &RateLimit) {
        if rate.remaining.is_none() {
            return;
        }
        if let Some(remaining) = rate.remaining {
            self.metrics
                .ratelimit_remaining(&self.connection)
                .set(remaining);
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.insert(
            endpoint.label,
            Window {
                limit: rate.limit,
                remaining: rate.remaining,
                reset_unix: rate.reset_unix,
            },
        );
    }

    /// How long to wait for the window to reset, or the `rate_limited` error when the policy says
    /// fail, the wait does not fit `max_rate_limit_wait_s`, or a wait already happened for this call.
    fn wait_for_reset(
        &self,
        endpoint: Endpoint,
        reset_unix: i64,
        waited: bool,
    ) -> Result<Duration> {
        let seconds = (reset_unix - unix_now()).max(0) as u64 + 1;
        let wait = Duration::from_secs(seconds);
        if self.on_rate_limit == OnRateLimit::Wait && !waited && wait <= self.max_rate_limit_wait {
            return Ok(wait);
        }
        let mut e = Error::new(
            ErrorKind::RateLimited,
            format!(
                "{}'s rate limit for {} is used up until {}; retry in {seconds} s",
                self.host(),
                endpoint.label,
                format_unix(reset_unix)
            ),
        );
        e.retry_after = Some(seconds);
        Err(e)
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
                // Keep what fits: enough to classify an error, and a success will fail to parse.
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    fn host(&self) -> String {
        self.base.host_str().unwrap_or("the server").to_owned()
    }

    fn timeout_error(&self, retries: u32) -> Error {
        let tries = if retries > 0 {
            format!(" ({} attempts)", retries + 1)
        } else {
            String::new()
        };
        Error::new(
            ErrorKind::UpstreamTimeout,
            format!(
                "{} did not answer within {} ms{tries}",
                self.host(),
                self.timeout.as_millis()
            ),
        )
    }

    fn classify_transport_error(&self, e: &reqwest::Error, retries: u32) -> Error {
        let host = self.host();
        if e.is_timeout() {
            self.timeout_error(retries)
        } else if e.is_connect() {
            Error::new(
                ErrorKind::UpstreamUnavailable,
                format!("cannot connect to {host}: {}", root_cause(e)),
            )
        } else if e.is_redirect() || e.status().is_some_and(|s| s.is_redirection()) {
            Error::new(
                ErrorKind::UpstreamUnavailable,
                format!("{host} answered with a redirect; is the instance URL right?"),
            )
        } else {
            Error::new(
                ErrorKind::UpstreamUnavailable,
                format!("the exchange with {host} failed: {}", root_cause(e)),
            )
        }
    }

    fn classify_refusal(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        body: &[u8],
        rate: &RateLimit,
    ) -> Error {
        let text = error_text(body);
        let code = status.as_u16();
        let host = self.host();
        match code {
            422 => Error::new(
                ErrorKind::ValidationFailed,
                text.clone()
                    .unwrap_or_else(|| format!("{host} refused the content")),
            ),
            429 => {
                let retry_after = rate
                    .reset_unix
                    .map(|reset| (reset - unix_now()).max(1) as u64)
                    .unwrap_or(60);
                let mut e = Error::new(
                    ErrorKind::RateLimited,
                    format!(
                        "{host} rate-limits this client; retry in {retry_after} s ({})",
                        endpoint.label
                    ),
                );
                e.retry_after = Some(retry_after);
                e
            }
            400..=499 => Error::new(
                ErrorKind::UpstreamRejected,
                match &text {
                    Some(t) => format!("{host} refused {}: {t}", endpoint.label),
                    None => format!("{host} refused {} with HTTP {code}", endpoint.label),
                },
            ),
            300..=399 => Error::new(
                ErrorKind::UpstreamUnavailable,
                format!(
                    "{host} answered {} with a redirect; is the instance URL right?",
                    endpoint.label
                ),
            ),
            _ => Error::new(
                ErrorKind::UpstreamUnavailable,
                format!("{host} failed on {} with HTTP {code}", endpoint.label),
            ),
        }
        .with_upstream(code, text)
    }
}

/// What one attempt came to.
enum Attempt {
    /// A final answer: a success, or a refusal that no repeat would change.
    Done(Result<Value>),
    /// 429: wait for the reset (when the policy allows) or give up.
    RateLimited {
        error: Error,
        reset_unix: i64,
    },
    Failed(Failed),
}

/// A Unix time as RFC 3339, for messages.
pub fn format_unix(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

fn bearer(token: &SecretString) -> String {
    format!("Bearer {}", token.expose_secret())
}

/// Mastodon's `{"error": ..., "error_description": ...}`, capped, or nothing when the body is not that.
fn error_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let pick = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let text = match (pick("error"), pick("error_description")) {
        (Some(e), Some(d)) if e != d => format!("{e}: {d}"),
        (Some(e), _) => e,
        (None, Some(d)) => d,
        (None, None) => return None,
    };
    Some(text.chars().take(500).collect())
}

/// The innermost cause of a transport error, without the URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_reset_is_read_as_iso_8601_or_epoch() {
        assert_eq!(
            parse_reset("2026-11-22T10:35:00.000000Z"),
            Some(1_795_343_700)
        );
        assert_eq!(parse_reset("1795343700"), Some(1_795_343_700));
        assert_eq!(parse_reset("soon"), None);
    }

    #[test]
    fn mastodons_error_text_combines_error_and_description() {
        assert_eq!(
            error_text(br#"{"error":"invalid_grant","error_description":"The grant is invalid"}"#),
            Some("invalid_grant: The grant is invalid".to_owned())
        );
        assert_eq!(
            error_text(br#"{"error":"Record not found"}"#),
            Some("Record not found".to_owned())
        );
        assert_eq!(error_text(b"<html>"), None);
    }
}
