//! HTTP calls to one Mastodon server, and the classification of what comes back.
//!
//! One client per connection, because connect and total timeouts are per connection. Every call is
//! measured under its route template (never the concrete URL, which may hold an id), and every answer's
//! `X-RateLimit-*` headers update the connection's gauge. Bodies are read with a cap, because an inline
//! connection may point at a server nobody vetted.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::config::ConnectionSettings;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;

/// The most of a Mastodon answer that is read; a Status or an Account is a few KiB.
const MAX_UPSTREAM_BODY: usize = 4 * 1024 * 1024;

/// A Mastodon route: the method and the path template used as the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// `"POST /api/v1/statuses"`, the `endpoint` label.
    pub label: &'static str,
}

macro_rules! endpoint {
    ($name:ident, $method:literal, $path:literal) => {
        pub const $name: Endpoint = Endpoint {
            method: $method,
            path: $path,
            label: concat!($method, " ", $path),
        };
    };
}

impl Endpoint {
    endpoint!(INSTANCE_V2, "GET", "/api/v2/instance");
    endpoint!(INSTANCE_V1, "GET", "/api/v1/instance");
    endpoint!(
        OAUTH_METADATA,
        "GET",
        "/.well-known/oauth-authorization-server"
    );
    endpoint!(CREATE_APP, "POST", "/api/v1/apps");
    endpoint!(TOKEN, "POST", "/oauth/token");
    endpoint!(REVOKE, "POST", "/oauth/revoke");
    endpoint!(
        VERIFY_CREDENTIALS,
        "GET",
        "/api/v1/accounts/verify_credentials"
    );
    endpoint!(POST_STATUS, "POST", "/api/v1/statuses");
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

/// A client bound to one connection's server, timeouts and metric labels.
#[derive(Clone)]
pub struct MastodonClient {
    http: reqwest::Client,
    base: Url,
    connection: String,
    timeout: Duration,
    metrics: Metrics,
}

impl MastodonClient {
    pub fn new(name: &str, settings: &ConnectionSettings, metrics: Metrics) -> Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(timeout)
            // Mastodon never redirects its API; following a redirect could carry a token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "mastodon-sidecar/",
                env!("CARGO_PKG_VERSION"),
                " (+https://github.com/mastodon-sidecar)"
            ))
            .build()
            .map_err(|e| {
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

    /// GET an endpoint that may not exist on this server: `Ok(None)` on 404 (and 410).
    pub async fn get_optional(&self, endpoint: Endpoint) -> Result<Option<Value>> {
        let request = self.http.get(self.url(endpoint.path));
        match self.send(endpoint, request).await {
            Ok((value, _)) => Ok(Some(value)),
            Err(e) => match &e.upstream {
                Some(up) if up.status == 404 || up.status == 410 => Ok(None),
                _ => Err(e),
            },
        }
    }

    pub async fn get(&self, endpoint: Endpoint, token: Option<&SecretString>) -> Result<Value> {
        let mut request = self.http.request(Method::GET, self.url(endpoint.path));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        self.send(endpoint, request).await.map(|(v, _)| v)
    }

    /// POST a form body (OAuth endpoints take forms on every server version).
    pub async fn post_form(&self, endpoint: Endpoint, form: &[(&str, &str)]) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(self.url(endpoint.path))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        self.send(endpoint, request).await.map(|(v, _)| v)
    }

    /// POST a JSON body, optionally with a user token and extra headers.
    pub async fn post_json(
        &self,
        endpoint: Endpoint,
        token: Option<&SecretString>,
        body: &Value,
        headers: &[(&'static str, String)],
    ) -> Result<Value> {
        let mut request = self.http.post(self.url(endpoint.path)).json(body);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        self.send(endpoint, request).await.map(|(v, _)| v)
    }

    async fn send(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<(Value, RateLimit)> {
        let started = Instant::now();
        let outcome = self.exchange(request).await;
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Err(e) => {
                self.metrics.observe_upstream(endpoint.label, None, seconds);
                let error = self.classify_transport_error(&e);
                tracing::warn!(
                    endpoint = endpoint.label,
                    code = error.kind.code(),
                    error = %e.without_url(),
                    "no answer from Mastodon"
                );
                Err(error)
            }
            Ok((status, headers, body)) => {
                self.metrics
                    .observe_upstream(endpoint.label, Some(status.as_u16()), seconds);
                let rate = RateLimit::from_headers(&headers);
                if let Some(remaining) = rate.remaining {
                    self.metrics
                        .ratelimit_remaining(&self.connection)
                        .set(remaining);
                }
                if status.is_success() {
                    let value = serde_json::from_slice(&body).map_err(|_| {
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
                    })?;
                    Ok((value, rate))
                } else {
                    let error = self.classify_refusal(endpoint, status, &body, &rate);
                    tracing::info!(
                        endpoint = endpoint.label,
                        status = status.as_u16(),
                        code = error.kind.code(),
                        "Mastodon refused the request"
                    );
                    Err(error)
                }
            }
        }
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

    fn classify_transport_error(&self, e: &reqwest::Error) -> Error {
        let host = self.host();
        if e.is_timeout() {
            Error::new(
                ErrorKind::UpstreamTimeout,
                format!(
                    "{host} did not answer within {} ms",
                    self.timeout.as_millis()
                ),
            )
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
                let now = unix_now();
                let retry_after = rate
                    .reset_unix
                    .map(|reset| (reset - now).max(1) as u64)
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
