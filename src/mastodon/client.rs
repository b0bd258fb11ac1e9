//! HTTP calls to one Mastodon-compatible server, and the classification of what comes back.
//!
//! One client per connection, because timeouts, retries and the rate-limit policy are per connection.
//! Each call runs within one budget (`timeout_ms`, retries included): it waits for its turn under the
//! connection's in-flight bound, respects what the server's rate-limit headers said (pacing near the
//! limit, failing fast or waiting at zero), asks the instance's circuit breaker, and then sends.
//!
//! What is sent again, and when (a request is never repeated past the budget):
//! - Nothing reached the server (a connect failure, or a request hyper handed back unsent): repeated on
//!   every route, up to `max_retries`, with backoff and jitter.
//! - A reused keep-alive connection that the server had closed, found reset or at end of file before
//!   any byte of an answer (snac closes every connection without saying `Connection: close`): repeated
//!   at once on a fresh connection, at most once per call, on every route; from then on this connection
//!   keeps no idle connections to that server (see [`MastodonClient::stop_pooling`]).
//! - Idempotent routes (GETs, revocation) also repeat a broken exchange and a 502/503/504 up to
//!   `max_retries`, and a 500 once.
//! - Non-idempotent routes (app registration, the token, statuses) are never sent again once they may
//!   have reached the server: whether to resend is the caller's decision (postStatus keeps a ledger).
//!   Such a failure carries [`Error::in_doubt`] when the server may have processed the request: a
//!   timeout or a broken exchange after sending, or a gateway's 502/503/504.
//! - A timeout has used the budget; a 4xx other than 429 is a refusal no repeat changes; a 429 waits for
//!   the time the server gave only when `on_rate_limit = "wait"` allows it.
//!
//! The circuit breaker counts transport failures, timeouts and 502/503/504 answers. Any other answer,
//! a prompt 500 included (one caller's input: a mistyped code, a reply to a missing status), shows the
//! server working and counts as a success: it must not fail every connection to the instance.
//!
//! Every attempt is measured under its route template, never the concrete URL. Bodies are read with a
//! cap, because an inline connection may point at a server nobody vetted. What the server said in a
//! refusal is kept (its JSON `error` and `error_description`, or a bounded excerpt of a text or HTML
//! page), with every secret the request carried, and every secret the process knows, replaced by
//! `[redacted]` before it goes anywhere; a 2xx answer's strings are scrubbed alike (see `redact.rs`).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::address::PublicOnlyResolver;
use super::redact::{KnownSecrets, Secrets};
use super::resilience::{backoff, Before, Breaker, Window};
use crate::config::{ConnectionSettings, OnRateLimit};
use crate::error::{mentions_bad_token, Error, ErrorKind, Result};
use crate::metrics::Metrics;

/// How long a call waits for a free slot under the connection's `max_in_flight`.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// The most of an answer that is read; a Status or an Account is a few KiB.
const MAX_UPSTREAM_BODY: usize = 4 * 1024 * 1024;

/// When a 429 carries neither `Retry-After` nor `X-RateLimit-Reset`, the wait assumed. It is a guess
/// (and the detail says so): short, so that a caller is not kept away long on nothing.
pub const RATE_LIMIT_GUESS: Duration = Duration::from_secs(5);

/// The longest excerpt of a text or HTML error page that is kept, in characters.
const EXCERPT_CHARS: usize = 300;
/// The longest JSON `error`/`error_description` text that is kept, in characters.
const JSON_TEXT_CHARS: usize = 500;

/// A route: the method and the path template used as the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// `"POST /api/v1/statuses"`, the `endpoint` label.
    pub label: &'static str,
    /// Whether sending it twice has the effect of sending it once, so a failed attempt may be repeated.
    pub idempotent: bool,
    /// Whether the server judges the caller's content here, so that a 400 refuses that content
    /// (`validation_failed`): GoToSocial, Takahē and Mitra refuse content with 400, not 422.
    pub content: bool,
    /// The rate-limit window the server counts this route in (Mastodon keeps separate ones for
    /// media uploads and deletions): the key under which its `X-RateLimit-*` answers are kept.
    pub bucket: &'static str,
}

impl Endpoint {
    /// The top-level fields of a 2xx answer that are the secrets this route exists to obtain: kept
    /// as they are (the operation stores them and leaves them out of what callers see), while every
    /// other string of an answer is scrubbed of known secrets.
    pub fn obtains(self) -> &'static [&'static str] {
        match self.label {
            "POST /api/v1/apps" => &["client_secret"],
            "POST /oauth/token" => &["access_token", "refresh_token"],
            _ => &[],
        }
    }

    /// A write whose caller resolves a lost answer itself (postStatus, through its ledger): a
    /// reused connection closed before any answer is not repeated here either, because a server
    /// that created the status and then dropped the connection looks the same as one that had closed
    /// the idle connection; the caller looks before it resends.
    pub const fn resolved_by_caller(self) -> bool {
        self.content && !self.idempotent
    }
}

macro_rules! endpoint {
    ($name:ident, $method:literal, $path:literal, $idempotent:literal) => {
        endpoint!($name, $method, $path, $idempotent, false);
    };
    ($name:ident, $method:literal, $path:literal, $idempotent:literal, $content:literal) => {
        pub const $name: Endpoint = Endpoint {
            method: $method,
            path: $path,
            label: concat!($method, " ", $path),
            idempotent: $idempotent,
            content: $content,
            bucket: concat!($method, " ", $path),
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
    // A code is single-use: a repeat after the server took it fails, and would hide the real answer.
    endpoint!(TOKEN, "POST", "/oauth/token", false);
    endpoint!(REVOKE, "POST", "/oauth/revoke", true);
    endpoint!(
        VERIFY_CREDENTIALS,
        "GET",
        "/api/v1/accounts/verify_credentials",
        true
    );
    // Not idempotent: three of five servers ignore `Idempotency-Key` and the others forget it, so a
    // resend may post twice. Whether to resend is the caller's decision (postStatus, with its ledger).
    endpoint!(POST_STATUS, "POST", "/api/v1/statuses", false, true);
    // Read to resolve a post whose answer was lost (operations/post_once.rs).
    endpoint!(
        ACCOUNT_STATUSES,
        "GET",
        "/api/v1/accounts/:id/statuses",
        true
    );
    endpoint!(
        SCHEDULED_STATUSES,
        "GET",
        "/api/v1/scheduled_statuses",
        true
    );
}

/// A successful answer: its status (a media upload answers 202 while it is processed), its JSON
/// (`Null` when empty) and its `Link` header (the cursors of a page).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub value: Value,
    pub link: Option<String>,
}

/// A request body for [`MastodonClient::call`].
pub enum Body<'a> {
    /// Nothing (the parameters, if any, went into the query).
    Empty,
    /// A form; keys as given, so bracket keys repeat (`account_ids[]`).
    Form(&'a [(String, String)]),
    /// A `multipart/form-data` body encoded once ([`super::multipart::Multipart`]), as its chunks in
    /// order: a file that came as a multipart part itself is one of them, a slice of the caller's
    /// request, sent without being copied.
    Multipart {
        content_type: String,
        parts: Vec<bytes::Bytes>,
    },
}

/// What the rate-limit headers of one answer said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// When the window resets, as Unix seconds (Mastodon sends ISO 8601, not epoch seconds).
    pub reset_unix: Option<i64>,
    /// When `Retry-After` (seconds or an HTTP date) says to come back, as Unix seconds.
    pub retry_after_unix: Option<i64>,
}

impl RateLimit {
    fn from_headers(headers: &HeaderMap, now: i64) -> RateLimit {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| text(name).and_then(|v| v.trim().parse::<i64>().ok());
        RateLimit {
            limit: number("x-ratelimit-limit"),
            remaining: number("x-ratelimit-remaining"),
            reset_unix: text("x-ratelimit-reset").and_then(parse_reset),
            retry_after_unix: text("retry-after").and_then(|v| parse_retry_after(v, now)),
        }
    }

    /// When a 429 may be retried, and who said so: `Retry-After` first (it is about this refusal),
    /// then the window's reset, else the documented guess.
    fn refusal_ends(&self, now: i64) -> (i64, Told) {
        match (self.retry_after_unix, self.reset_unix) {
            (Some(at), _) => (at.max(now), Told::RetryAfter),
            // A reset already past says the window is open again; a second is the least to wait.
            (None, Some(at)) => (at.max(now + 1), Told::Reset),
            (None, None) => (now + RATE_LIMIT_GUESS.as_secs() as i64, Told::Guess),
        }
    }
}

/// Where the wait of a 429 came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Told {
    RetryAfter,
    Reset,
    Guess,
}

/// `X-RateLimit-Reset` is ISO 8601 with fractional seconds on Mastodon; some forks send epoch seconds.
/// Times are compared in whole seconds (see [`WAIT_MARGIN`] for the waits).
fn parse_reset(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(epoch) = value.parse::<i64>() {
        return Some(epoch);
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Added to a wait the client sleeps itself: reset times and the clock are read in whole seconds, so
/// a wait of exactly the difference could end up to a second before the server's window does.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// `Retry-After`: delay seconds, or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), as Unix seconds.
fn parse_retry_after(value: &str, now: i64) -> Option<i64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)));
    }
    // IMF-fixdate is an RFC 2822 date with the zone `GMT`.
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

pub(crate) use crate::clock::unix_now;

/// What the HTTP clients of a connection are built from, kept to build the unpooled one alike.
#[derive(Clone, Copy)]
struct HttpConfig {
    connect_timeout: Duration,
    timeout: Duration,
    public_only: bool,
}

fn build_http(config: HttpConfig, pooled: bool) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        // These APIs never redirect; following a redirect could carry a token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mastodon-sidecar/", env!("CARGO_PKG_VERSION")))
        .connector_layer(NoteNewConnections);
    if !pooled {
        builder = builder.pool_max_idle_per_host(0);
    }
    if config.public_only {
        builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
    }
    builder.build().map_err(|e| {
        tracing::error!(error = %e, "cannot build the HTTP client");
        Error::internal()
    })
}

tokio::task_local! {
    /// Within one attempt: whether the connector was asked for a new connection. When it was not, the
    /// request went out on a pooled (reused) connection.
    static OPENED: Cell<bool>;
}

/// A connector layer that notes, in the task of the request, that a new connection is being opened.
///
/// hyper-util calls the connector from the request's own future (the connect future is polled beside
/// the pool checkout, and only when no idle connection is ready), so the task-local is the attempt's.
/// If a checkout wins after a connect was started, the attempt is noted as on a new connection although
/// it reused one: that errs on the side of not repeating.
#[derive(Clone, Copy)]
struct NoteNewConnections;

impl<S> tower_layer::Layer<S> for NoteNewConnections {
    type Service = Noted<S>;
    fn layer(&self, inner: S) -> Noted<S> {
        Noted(inner)
    }
}

#[derive(Clone)]
struct Noted<S>(S);

impl<S, R> tower_service::Service<R> for Noted<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, destination: R) -> Self::Future {
        // Outside an attempt's scope (nothing else sends through this client) there is nothing to note.
        let _ = OPENED.try_with(|opened| opened.set(true));
        self.0.call(destination)
    }
}

/// A client bound to one connection's server, policies and metric labels.
#[derive(Clone)]
pub struct MastodonClient {
    http: reqwest::Client,
    /// A client that keeps no idle connections, used from the first reused connection the server
    /// had closed: shared by every clone of this connection's client.
    unpooled: Arc<OnceLock<reqwest::Client>>,
    config: HttpConfig,
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
    /// Every secret of the process, scrubbed from what this server says (see `redact.rs`).
    known: Arc<KnownSecrets>,
}

/// Whether, and how often, a failed attempt may be sent again (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    Never,
    UpToMax,
    /// A reused connection the server had closed: once per call, at once, on any route.
    OnceReused,
    /// A prompt 500 on an idempotent route: once.
    OnceServerError,
}

/// An attempt that failed in a way that may be worth repeating.
struct Failed {
    reason: &'static str,
    error: Error,
    repeat: Repeat,
}

/// An admitted attempt. Unless its outcome is recorded, dropping it frees the breaker's probe slot, so
/// a cancelled call, or an outcome that says nothing about the server, never leaves it half-open.
struct Admission<'a> {
    breaker: &'a Breaker,
    recorded: bool,
}

impl Admission<'_> {
    fn record(mut self, healthy: bool) {
        self.breaker.record(healthy);
        self.recorded = true;
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.release();
        }
    }
}

/// How a transport failure came about, as far as reqwest and hyper tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// The connection could not be made (a connect timeout included): nothing was sent.
    Connect,
    /// hyper handed the request back unsent (its `is_canceled`): nothing was sent.
    NotSent,
    /// A reused connection was reset or at end of file before any answer: the server had closed it.
    ReusedClosed,
    /// The budget ran out after the request may have gone out.
    Timeout,
    /// The exchange broke after the request was sent (or while the answer was read).
    Broken { answered: bool },
}

/// A failed exchange: reqwest's error, and what is known of how far it got.
struct Broken {
    error: reqwest::Error,
    /// The answer's head had arrived (the body broke off).
    answered: bool,
    /// The attempt asked the connector for a new connection (see [`NoteNewConnections`]).
    opened: bool,
}

impl Broken {
    fn transport(&self) -> Transport {
        let e = &self.error;
        if e.is_connect() {
            Transport::Connect
        } else if e.is_timeout() {
            Transport::Timeout
        } else if self.answered {
            Transport::Broken { answered: true }
        } else if any_source(e, |h: &hyper::Error| h.is_canceled()) {
            Transport::NotSent
        } else if !self.opened && closed_before_answer(e) {
            Transport::ReusedClosed
        } else {
            Transport::Broken { answered: false }
        }
    }
}

/// Whether the connection was found closed before an answer's head was complete.
///
/// reqwest does not say why a send failed, so hyper's error is looked for through the `source()`
/// chain: `is_incomplete_message` is an end of file while the answer's head was awaited (hyper does not
/// tell zero bytes from part of a head; in the keep-alive race, where the server closed the idle
/// connection as the request went out, no byte comes), and an I/O reset, broken pipe or abort is the
/// same race seen as the peer's RST. With [`Broken::opened`] false it happened on a reused connection.
fn closed_before_answer(e: &reqwest::Error) -> bool {
    any_source(e, |h: &hyper::Error| h.is_incomplete_message())
        || any_source(e, |io: &std::io::Error| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            )
        })
}

/// Whether some error of `e`'s source chain is a `T` for which `test` holds.
fn any_source<T: std::error::Error + 'static>(
    e: &reqwest::Error,
    test: impl Fn(&T) -> bool,
) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = source {
        if current.downcast_ref::<T>().is_some_and(&test) {
            return true;
        }
        source = current.source();
    }
    false
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
        let config = HttpConfig {
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms()),
            timeout,
            public_only,
        };
        let http = build_http(config, true)?;
        let mut base = settings.instance.clone();
        // `join` with an absolute path replaces the base path; keep the base as given minus a slash.
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(MastodonClient {
            http,
            unpooled: Arc::default(),
            config,
            base,
            connection: name.to_owned(),
            timeout,
            // At most 10 (`config::CONNECTION_BOUNDS`).
            max_retries: u32::try_from(settings.max_retries).unwrap_or(u32::MAX),
            on_rate_limit: settings.on_rate_limit,
            max_rate_limit_wait: Duration::from_secs(settings.max_rate_limit_wait_s),
            max_in_flight: settings.max_in_flight,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            windows: Arc::default(),
            breaker,
            metrics,
            known: Arc::default(),
        })
    }

    /// Scrubs the secrets of `known` (shared by the connections of a process) from every answer,
    /// besides the secrets each request carries.
    pub fn with_known_secrets(mut self, known: Arc<KnownSecrets>) -> Self {
        self.known = known;
        self
    }

    /// What an answer to a request carrying `token` is scrubbed of.
    fn secrets(&self, token: Option<&SecretString>) -> Secrets {
        Secrets::new(&self.known, token)
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

    /// A concrete path under the base, refused unless it can only name this server.
    fn path_url(&self, endpoint: Endpoint, path_and_query: &str) -> Result<Url> {
        // The path is not logged: it may carry what a caller sent.
        let refuse = |why: &'static str| {
            tracing::error!(
                endpoint = endpoint.label,
                why,
                "refused a path that could leave the server"
            );
            Error::internal()
        };
        let p = path_and_query;
        if !p.starts_with('/') || p.starts_with("//") {
            return Err(refuse("not a path starting with a single slash"));
        }
        if p.contains("://")
            || p.contains('\\')
            || p.contains('#')
            || p.chars().any(char::is_control)
        {
            return Err(refuse("a scheme, backslash, fragment or control character"));
        }
        let url = Url::parse(&self.url(p)).map_err(|_| refuse("not a valid URL"))?;
        // Whatever the parser made of it (dot segments, percent-encoded dots), it stays on this
        // origin and under the base's path.
        let prefix = self.base.path().trim_end_matches('/');
        let under_base = url.path() == prefix || url.path().starts_with(&format!("{prefix}/"));
        if url.origin() != self.base.origin() || !under_base {
            return Err(refuse("it resolves outside the base"));
        }
        Ok(url)
    }

    fn build(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Request> {
        request.build().map_err(|e| {
            tracing::error!(endpoint = endpoint.label, error = %e.without_url(), "cannot build the request");
            Error::internal()
        })
    }

    /// GET an endpoint that may not exist on this server: `Ok(None)` on 404 (and 410).
    pub async fn get_optional(&self, endpoint: Endpoint) -> Result<Option<Value>> {
        let request = self.build(endpoint, self.http.get(self.endpoint_url(endpoint)))?;
        match self.send(endpoint, request, &self.secrets(None)).await {
            Ok(answer) => Ok(Some(answer.value)),
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
        let request = self.build(endpoint, request)?;
        self.send(endpoint, request, &self.secrets(token))
            .await
            .map(|a| a.value)
    }

    /// GET a concrete path under the base (`/api/v1/accounts/123/statuses?limit=20`), labelled and
    /// governed by `endpoint` (its template is the metric label). A path that could name another host
    /// (no leading slash, `//`, `://`, a backslash, a fragment, a control character) is refused.
    pub async fn get_path(
        &self,
        endpoint: Endpoint,
        path_and_query: &str,
        token: Option<&SecretString>,
    ) -> Result<Value> {
        if endpoint.method != "GET" {
            tracing::error!(
                endpoint = endpoint.label,
                "refused a GET labelled as another method"
            );
            return Err(Error::internal());
        }
        let mut request = self.http.get(self.path_url(endpoint, path_and_query)?);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        let request = self.build(endpoint, request)?;
        self.send(endpoint, request, &self.secrets(token))
            .await
            .map(|a| a.value)
    }

    /// POST a form body (OAuth endpoints take forms on every server).
    pub async fn post_form(&self, endpoint: Endpoint, form: &[(&str, &str)]) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(self.endpoint_url(endpoint))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let secrets = self.secrets(None).with_fields(form.iter().copied());
        let request = self.build(endpoint, request)?;
        self.send(endpoint, request, &secrets)
            .await
            .map(|a| a.value)
    }

    /// POST a form body with an optional user token and extra headers. Keys are sent as given, so
    /// bracket keys (`poll[options][]`) repeat as servers expect them.
    pub async fn post_form_as(
        &self,
        endpoint: Endpoint,
        token: Option<&SecretString>,
        pairs: &[(String, String)],
        headers: &[(&'static str, String)],
    ) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut request = self
            .http
            .post(self.endpoint_url(endpoint))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let secrets = self
            .secrets(token)
            .with_fields(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let request = self.build(endpoint, request)?;
        self.send(endpoint, request, &secrets)
            .await
            .map(|a| a.value)
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
        let fields = body
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)));
        let secrets = self.secrets(token).with_fields(fields);
        let request = self.build(endpoint, request)?;
        self.send(endpoint, request, &secrets)
            .await
            .map(|a| a.value)
    }

    /// Any request of a declared operation: `method` on a concrete path under the base (checked as
    /// [`MastodonClient::get_path`] checks it), labelled and governed by `endpoint`, with the user token,
    /// the body, and extra headers. Answers the status, the JSON and the `Link` header.
    pub async fn call(
        &self,
        endpoint: Endpoint,
        path_and_query: &str,
        token: Option<&SecretString>,
        body: Body<'_>,
        headers: &[(&'static str, String)],
    ) -> Result<Answer> {
        let method = Method::from_bytes(endpoint.method.as_bytes()).map_err(|_| {
            tracing::error!(endpoint = endpoint.label, "not an HTTP method");
            Error::internal()
        })?;
        let mut request = self
            .http
            .request(method, self.path_url(endpoint, path_and_query)?);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, bearer(token));
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut secrets = self.secrets(token);
        let mut parts = None;
        match body {
            Body::Empty => {}
            Body::Form(pairs) => {
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                request = request
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(encoded);
                secrets = secrets.with_fields(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            Body::Multipart {
                content_type,
                parts: chunks,
            } => {
                // The chunks are `Bytes`: every attempt shares them (see `send_parts`). The length is
                // announced, so the server gets a Content-Length, not a chunked body.
                let length: usize = chunks.iter().map(bytes::Bytes::len).sum();
                request = request
                    .header(CONTENT_TYPE, content_type)
                    .header(CONTENT_LENGTH, length);
                parts = Some(chunks);
            }
        }
        let request = self.build(endpoint, request)?;
        self.send_parts(endpoint, request, &secrets, parts.as_deref())
            .await
    }

    /// The client to send with: the unpooled one once the server has closed a reused connection.
    fn http(&self) -> &reqwest::Client {
        self.unpooled.get().unwrap_or(&self.http)
    }

    /// The server closed a reused connection before answering, or its software is known not to
    /// keep connections alive although it does not say so (snac). From now on this connection opens
    /// one per request, which costs a handshake but never meets a connection the server already closed.
    pub fn stop_pooling(&self) {
        if self.unpooled.get().is_some() {
            return;
        }
        // Should building fail (logged), the pooled client stays and each such reset is repeated once.
        if let Ok(client) = build_http(self.config, false) {
            if self.unpooled.set(client).is_ok() {
                tracing::info!(
                    connection = %self.connection,
                    server = %self.host(),
                    "the server closed a reused connection before answering; connections to it are no longer kept for reuse"
                );
            }
        }
    }

    fn admit(&self) -> Result<Admission<'_>> {
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
        Ok(Admission {
            breaker: &self.breaker,
            recorded: false,
        })
    }

    /// Sends `request` under the connection's policies; see the module documentation.
    async fn send(
        &self,
        endpoint: Endpoint,
        request: reqwest::Request,
        secrets: &Secrets,
    ) -> Result<Answer> {
        self.send_parts(endpoint, request, secrets, None).await
    }

    /// [`MastodonClient::send`], with the body given as chunks (`parts`) that each attempt streams
    /// again: reqwest cannot repeat a streamed body, so `request` has none and every attempt gets
    /// its own stream over the same shared chunks.
    async fn send_parts(
        &self,
        endpoint: Endpoint,
        request: reqwest::Request,
        secrets: &Secrets,
        parts: Option<&[bytes::Bytes]>,
    ) -> Result<Answer> {
        // A short, bounded wait for a slot absorbs bursts; past it the caller learns at once rather
        // than joining a queue that only grows.
        let overloaded = || {
            Error::overloaded(format!(
                "connection {:?} has had {} calls to {} in flight for a second (max_in_flight); retry shortly",
                self.connection,
                self.max_in_flight,
                self.host()
            ))
        };
        let _permit = tokio::time::timeout(SLOT_WAIT.min(self.timeout), self.in_flight.acquire())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| overloaded())?;
        let mut deadline = Instant::now() + self.timeout;
        let mut attempt: u32 = 0;
        let mut waited_for_reset = false;
        let mut repeated_reused = false;
        let mut repeated_server_error = false;
        // Once an attempt may have been processed, the call's failure stays in doubt whatever follows.
        let mut in_doubt = false;
        let doubtful = |mut e: Error, in_doubt: bool| {
            e.in_doubt |= in_doubt;
            e
        };
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
                    let wait = self
                        .wait_for_reset(endpoint, reset_unix, waited_for_reset)
                        .map_err(|e| doubtful(e, in_doubt))?;
                    tokio::time::sleep(wait).await;
                    deadline += wait;
                    waited_for_reset = true;
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(doubtful(self.timeout_error(attempt), in_doubt));
            }
            let Some(mut this_attempt) = request.try_clone() else {
                tracing::error!(
                    endpoint = endpoint.label,
                    "a request body could not be repeated"
                );
                return Err(Error::internal());
            };
            if let Some(parts) = parts {
                // Owned (the stream outlives this borrow); cloning `Bytes` copies no data.
                let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
                    parts.iter().map(|p| Ok(p.clone())).collect();
                *this_attempt.body_mut() = Some(reqwest::Body::wrap_stream(
                    futures_util::stream::iter(chunks),
                ));
            }
            *this_attempt.timeout_mut() = Some(remaining);
            let admission = self.admit().map_err(|e| doubtful(e, in_doubt))?;
            let failed = match self
                .attempt(endpoint, this_attempt, attempt, secrets, admission)
                .await
            {
                Attempt::Done(result) => return result.map_err(|e| doubtful(e, in_doubt)),
                Attempt::RateLimited { error, reset_unix } => {
                    match self.wait_for_reset(endpoint, reset_unix, waited_for_reset) {
                        Ok(wait) => {
                            self.metrics.upstream_retry(endpoint.label, "rate_limited");
                            tracing::info!(
                                endpoint = endpoint.label,
                                wait_s = wait.as_secs(),
                                "rate limited; waiting for the time the server gave"
                            );
                            tokio::time::sleep(wait).await;
                            deadline += wait;
                            waited_for_reset = true;
                            continue;
                        }
                        Err(_) => return Err(doubtful(error, in_doubt)),
                    }
                }
                Attempt::Failed(failed) => failed,
            };
            in_doubt |= failed.error.in_doubt;
            let allowed = match failed.repeat {
                Repeat::Never => false,
                Repeat::UpToMax => attempt < self.max_retries,
                // Not a failure of the server's but the pool's: allowed even with `max_retries = 0`.
                Repeat::OnceReused => !repeated_reused,
                Repeat::OnceServerError => !repeated_server_error && attempt < self.max_retries,
            };
            // The fresh connection is known to be needed at once; anything else backs off.
            let pause = if failed.repeat == Repeat::OnceReused {
                Duration::ZERO
            } else {
                backoff(attempt)
            };
            if !allowed || Instant::now() + pause >= deadline {
                return Err(doubtful(failed.error, in_doubt));
            }
            match failed.repeat {
                Repeat::OnceReused => repeated_reused = true,
                Repeat::OnceServerError => repeated_server_error = true,
                Repeat::Never | Repeat::UpToMax => {}
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

    /// One exchange, measured, with its outcome classified and told to the breaker.
    async fn attempt(
        &self,
        endpoint: Endpoint,
        request: reqwest::Request,
        attempt: u32,
        secrets: &Secrets,
        admission: Admission<'_>,
    ) -> Attempt {
        let started = Instant::now();
        let outcome = exchange(self.http(), request).await;
        let seconds = started.elapsed().as_secs_f64();
        let (status, headers, body) = match outcome {
            Err(broken) => {
                self.metrics.observe_upstream(endpoint.label, None, seconds);
                let transport = broken.transport();
                if transport == Transport::ReusedClosed {
                    // The pool's race, not the server's health: the admission is released unrecorded.
                    drop(admission);
                    self.stop_pooling();
                } else {
                    admission.record(false);
                }
                let error =
                    self.transport_error(endpoint, transport, &broken.error, attempt, secrets);
                let (reason, repeat) = match transport {
                    Transport::Connect => ("connect", Repeat::UpToMax),
                    Transport::NotSent => ("transport", Repeat::UpToMax),
                    Transport::ReusedClosed if endpoint.resolved_by_caller() => {
                        ("transport", Repeat::Never)
                    }
                    Transport::ReusedClosed => ("transport", Repeat::OnceReused),
                    // A timeout used the whole remaining budget.
                    Transport::Timeout => ("timeout", Repeat::Never),
                    Transport::Broken { .. } if endpoint.idempotent => {
                        ("transport", Repeat::UpToMax)
                    }
                    Transport::Broken { .. } => ("transport", Repeat::Never),
                };
                tracing::warn!(
                    endpoint = endpoint.label,
                    code = error.kind.code(),
                    in_doubt = error.in_doubt,
                    error = %secrets.scrub(&broken.error.without_url().to_string()),
                    "no answer from the server"
                );
                return Attempt::Failed(Failed {
                    reason,
                    repeat,
                    error,
                });
            }
            Ok(answer) => answer,
        };
        self.metrics
            .observe_upstream(endpoint.label, Some(status.as_u16()), seconds);
        self.judge(endpoint, status, &headers, &body, secrets, admission)
    }

    /// What an answer comes to: its status, headers and body classified (a success's JSON scrubbed,
    /// a refusal's text kept scrubbed and bounded, a 429's wait, whether a 5xx may be repeated), the
    /// rate-limit headers remembered and the breaker told. No I/O: what [`classify_for_fuzzing`]
    /// runs too.
    fn judge(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &Secrets,
        admission: Admission<'_>,
    ) -> Attempt {
        let now = unix_now();
        let rate = RateLimit::from_headers(headers, now);
        self.remember(endpoint, &rate);
        if status.is_success() {
            admission.record(true);
            let link = headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .map(|v| secrets.scrub(v));
            return Attempt::Done(self.success(endpoint, status, body, secrets).map(|value| {
                Answer {
                    status: status.as_u16(),
                    value,
                    link,
                }
            }));
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let text = error_text(body, content_type, secrets);
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The server answered: it works, and says how long to stay away.
            admission.record(true);
            let (reset_unix, told) = rate.refusal_ends(now);
            if told != Told::Guess {
                self.exhaust(endpoint, &rate, reset_unix);
            }
            let error = self.rate_limited(endpoint, reset_unix, told, text);
            tracing::info!(
                endpoint = endpoint.label,
                retry_after_s = error.retry_after,
                told = ?told,
                "the server rate-limits the request"
            );
            return Attempt::RateLimited { error, reset_unix };
        }
        let mut error = self.classify_refusal(endpoint, status, text);
        tracing::info!(
            endpoint = endpoint.label,
            status = status.as_u16(),
            code = error.kind.code(),
            "the server refused the request"
        );
        if matches!(status.as_u16(), 502..=504) {
            // A gateway's answer: the server behind it may have processed the request, or be down.
            admission.record(false);
            error.in_doubt = true;
            return Attempt::Failed(Failed {
                reason: "status_5xx",
                repeat: if endpoint.idempotent {
                    Repeat::UpToMax
                } else {
                    Repeat::Never
                },
                error,
            });
        }
        // Any other answer, a prompt 500 included, shows the server working.
        admission.record(true);
        if status.is_server_error() {
            return Attempt::Failed(Failed {
                reason: "status_5xx",
                repeat: if endpoint.idempotent {
                    Repeat::OnceServerError
                } else {
                    Repeat::Never
                },
                error,
            });
        }
        // A 4xx (or a redirect) says the server works and refuses this request: never repeated.
        Attempt::Done(Err(error))
    }

    /// A 2xx: its JSON, scrubbed of secrets but for the ones the route obtains, or `Null` when
    /// empty (Takahē's revocation answers an empty 200).
    fn success(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        body: &[u8],
        secrets: &Secrets,
    ) -> Result<Value> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        let parsed: std::result::Result<Value, _> = serde_json::from_slice(body);
        parsed
            .map(|mut value| {
                secrets.scrub_value(&mut value, endpoint.obtains());
                value
            })
            .map_err(|_| {
                tracing::warn!(
                    endpoint = endpoint.label,
                    status = status.as_u16(),
                    "the server answered with a body that is not JSON"
                );
                let mut e = Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!(
                        "{} answered {} with a body that is not JSON; is the instance URL right?",
                        self.host(),
                        endpoint.label
                    ),
                )
                .with_upstream(status.as_u16(), None);
                // It answered success, but what it did cannot be read.
                e.in_doubt = !endpoint.idempotent;
                e
            })
    }

    fn window(&self, endpoint: Endpoint) -> Window {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.get(endpoint.bucket).cloned().unwrap_or_default()
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
        if let Some(limit) = rate.limit {
            self.metrics.ratelimit_limit(&self.connection).set(limit);
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.insert(
            endpoint.bucket,
            Window {
                limit: rate.limit,
                remaining: rate.remaining,
                reset_unix: rate.reset_unix,
            },
        );
    }

    /// After a 429 with a time from the server: the route is used up until then, so the next calls
    /// fail fast (or wait) on that same time without calling out.
    fn exhaust(&self, endpoint: Endpoint, rate: &RateLimit, until_unix: i64) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.insert(
            endpoint.bucket,
            Window {
                limit: rate.limit,
                remaining: Some(0),
                reset_unix: Some(until_unix),
            },
        );
    }

    /// How long to wait until `reset_unix`, or the `rate_limited` error when the policy says fail, the
    /// wait does not fit `max_rate_limit_wait_s`, or a wait already happened for this call.
    fn wait_for_reset(
        &self,
        endpoint: Endpoint,
        reset_unix: i64,
        waited: bool,
    ) -> Result<Duration> {
        let seconds = seconds_until(reset_unix);
        let wait = Duration::from_secs(seconds);
        if self.on_rate_limit == OnRateLimit::Wait && !waited && wait <= self.max_rate_limit_wait {
            return Ok(wait + WAIT_MARGIN);
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

    /// The `rate_limited` error of a 429, telling the caller the wait and where it came from.
    fn rate_limited(
        &self,
        endpoint: Endpoint,
        reset_unix: i64,
        told: Told,
        text: Option<String>,
    ) -> Error {
        let seconds = seconds_until(reset_unix);
        let host = self.host();
        let label = endpoint.label;
        let mut detail = match told {
            Told::RetryAfter => {
                format!("{host} rate-limits {label}; retry in {seconds} s (its Retry-After)")
            }
            Told::Reset => format!(
                "{host} rate-limits {label}; retry in {seconds} s (its X-RateLimit-Reset: {})",
                format_unix(reset_unix)
            ),
            Told::Guess => format!(
                "{host} rate-limits {label} and gave no time (neither Retry-After nor X-RateLimit-Reset); retry in {seconds} s is a guess"
            ),
        };
        if let Some(text) = &text {
            detail.push_str(&format!("; it said: {text}"));
        }
        let mut e = Error::new(ErrorKind::RateLimited, detail).with_upstream(429, text);
        e.retry_after = Some(seconds);
        e
    }

    /// The server as messages name it: its host, and its port when not the scheme's default.
    fn host(&self) -> String {
        server_name(&self.base)
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

    fn transport_error(
        &self,
        endpoint: Endpoint,
        transport: Transport,
        e: &reqwest::Error,
        retries: u32,
        secrets: &Secrets,
    ) -> Error {
        let host = self.host();
        let cause = secrets.scrub(&root_cause(e));
        // A write the server may have taken says so, for whoever decides about resending it.
        let maybe_processed = if endpoint.idempotent {
            ""
        } else {
            "; the server may have processed the request"
        };
        let (mut error, in_doubt) = match transport {
            Transport::Connect => (
                Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!("cannot connect to {host}: {cause}"),
                ),
                false,
            ),
            Transport::NotSent => (
                Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!("the connection to {host} closed before the request was sent: {cause}"),
                ),
                false,
            ),
            Transport::ReusedClosed => (
                Error::new(
                    ErrorKind::UpstreamUnavailable,
                    format!("{host} closed a reused connection before answering: {cause}"),
                ),
                endpoint.resolved_by_caller(),
            ),
            Transport::Timeout => {
                let mut error = self.timeout_error(retries);
                error.detail.push_str(maybe_processed);
                (error, true)
            }
            Transport::Broken { answered } => {
                let what = if answered {
                    format!("the answer from {host} to {} broke off", endpoint.label)
                } else {
                    format!(
                        "the exchange with {host} broke off after {} was sent",
                        endpoint.label
                    )
                };
                (
                    Error::new(
                        ErrorKind::UpstreamUnavailable,
                        format!("{what}: {cause}{maybe_processed}"),
                    ),
                    true,
                )
            }
        };
        error.in_doubt = in_doubt;
        error
    }

    fn classify_refusal(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        text: Option<String>,
    ) -> Error {
        let code = status.as_u16();
        let host = self.host();
        let label = endpoint.label;
        let refused = |text: &Option<String>| match text {
            Some(t) => format!("{host} refused {label}: {t}"),
            None => format!("{host} refused {label} with HTTP {code}"),
        };
        let token_refusal = code == 400 && text.as_deref().is_some_and(mentions_bad_token);
        let content_refused = || {
            Error::new(
                ErrorKind::ValidationFailed,
                text.clone().unwrap_or_else(|| {
                    format!("{host} refused the content ({label}, HTTP {code})")
                }),
            )
        };
        match code {
            422 => content_refused(),
            // A token refusal stays upstream_rejected 400, for the token logic to recognise.
            400 if endpoint.content && !token_refusal => content_refused(),
            403 if text.as_deref().is_some_and(is_scope_refusal) => Error::new(
                ErrorKind::UpstreamRejected,
                format!(
                    "{host} refused {label}: the token lacks a scope this server needs for that route ({}); `read` and `write` work on every server (Takahē and Mitra honour only those)",
                    text.as_deref().unwrap_or_default()
                ),
            ),
            400..=499 => Error::new(ErrorKind::UpstreamRejected, refused(&text)),
            300..=399 => Error::new(
                ErrorKind::UpstreamUnavailable,
                format!("{host} answered {label} with a redirect; is the instance URL right?"),
            ),
            _ => Error::new(
                ErrorKind::UpstreamUnavailable,
                match &text {
                    Some(t) => format!("{host} failed on {label} with HTTP {code}: {t}"),
                    None => format!("{host} failed on {label} with HTTP {code}"),
                },
            ),
        }
        .with_upstream(code, text)
    }
}

/// The secret [`classify_for_fuzzing`]'s request carries as its bearer token (and the process
/// knows): a fuzz target puts it in answers and checks it never comes out.
#[doc(hidden)]
pub const FUZZ_SECRET: &str = "fuzz-secret_T0k3n/+=.9Zq";

/// The routes [`classify_for_fuzzing`] judges an answer for: a read, a content write, a write
/// that is not idempotent, and the token route (which obtains `access_token`).
#[doc(hidden)]
pub const FUZZ_ROUTES: [Endpoint; 4] = [
    Endpoint::VERIFY_CREDENTIALS,
    Endpoint::POST_STATUS,
    Endpoint::CREATE_APP,
    Endpoint::TOKEN,
];

/// For the fuzz target `classify_answer` only: judges one answer (`status`, `headers`, `body`) to
/// a request on `FUZZ_ROUTES[route % 4]` carrying [`FUZZ_SECRET`], with the real classification
/// and redaction code ([`MastodonClient::judge`]), and answers what the client would hand on: the
/// JSON and the scrubbed `Link` of a success, or the error. A status outside 100..=999 is taken as
/// 502, as hyper would never hand one on.
#[doc(hidden)]
pub fn classify_for_fuzzing(
    route: u8,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(Value, Option<String>)> {
    static CLIENT: OnceLock<MastodonClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        let metrics = Metrics::new().expect("metrics register");
        let settings =
            ConnectionSettings::for_instance(Url::parse("https://fuzz.example").expect("a URL"));
        let breaker = Arc::new(Breaker::new(
            "https://fuzz.example",
            metrics.clone(),
            Duration::from_secs(30),
        ));
        let known = Arc::new(KnownSecrets::default());
        known.add_str(FUZZ_SECRET);
        MastodonClient::new("fuzz", &settings, metrics, breaker, false)
            .expect("a client")
            .with_known_secrets(known)
    });
    let endpoint = FUZZ_ROUTES[usize::from(route) % FUZZ_ROUTES.len()];
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    let token = SecretString::from(FUZZ_SECRET.to_owned());
    let secrets = client.secrets(Some(&token));
    // Recorded or released like any attempt's; the breaker's state decides nothing here.
    let admission = Admission {
        breaker: &client.breaker,
        recorded: false,
    };
    match client.judge(endpoint, status, &map, body, &secrets, admission) {
        Attempt::Done(Ok(answer)) => Ok((answer.value, answer.link)),
        Attempt::Done(Err(error)) => Err(error),
        Attempt::RateLimited { error, .. } => Err(error),
        Attempt::Failed(failed) => Err(failed.error),
    }
}

/// Sends one request and reads its answer with the cap. The task-local notes whether the request
/// asked for a new connection.
async fn exchange(
    http: &reqwest::Client,
    request: reqwest::Request,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), Broken> {
    OPENED
        .scope(Cell::new(false), async {
            let sent = http.execute(request).await;
            let opened = OPENED.try_with(Cell::get).unwrap_or(true);
            let mut response = sent.map_err(|error| Broken {
                error,
                answered: false,
                opened,
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|error| Broken {
                error,
                answered: true,
                opened,
            })? {
                if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
                    // Keep what fits: enough to classify an error, and a success will fail to parse.
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        })
        .await
}

/// What one attempt came to.
enum Attempt {
    /// A final answer: a success, or a refusal that no repeat would change.
    Done(Result<Answer>),
    /// 429: wait for the time the server gave (when the policy allows) or give up.
    RateLimited {
        error: Error,
        reset_unix: i64,
    },
    Failed(Failed),
}

/// Whole seconds from now until `at`, at least one.
fn seconds_until(at: i64) -> u64 {
    (at - unix_now()).max(1) as u64
}

/// `host`, or `host:port` when the URL names a port other than its scheme's default.
fn server_name(url: &Url) -> String {
    let host = url.host_str().unwrap_or("the server");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
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

/// Whether a 403's text says the token lacks a scope (Mastodon's and Takahē's wordings).
fn is_scope_refusal(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("out_of_scope") || text.contains("outside the authorized scopes")
}

/// What the server said in a refusal, scrubbed of `secrets`: its JSON `error` and `error_description`,
/// or an excerpt of a text or HTML body; nothing for an empty body or JSON without those fields.
fn error_text(body: &[u8], content_type: &str, secrets: &Secrets) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let pick = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        let text = match (pick("error"), pick("error_description")) {
            (Some(e), Some(d)) if e != d => format!("{e}: {d}"),
            (Some(e), _) => e,
            (None, Some(d)) => d,
            (None, None) => return None,
        };
        // Scrubbed before it is cut, so that no part of a secret survives at the cut.
        return Some(truncate(&secrets.scrub(&text), JSON_TEXT_CHARS)).filter(|t| !t.is_empty());
    }
    let html = content_type.to_ascii_lowercase().contains("html")
        || body.trim_ascii_start().starts_with(b"<");
    excerpt(body, html, secrets)
}

/// A bounded, one-line excerpt of a text or HTML body: tags stripped (with what `<script>` and
/// `<style>` hold), basic entities decoded, whitespace collapsed, secrets scrubbed, then cut.
fn excerpt(body: &[u8], html: bool, secrets: &Secrets) -> Option<String> {
    let raw = String::from_utf8_lossy(body);
    let text = if html {
        decode_entities(&strip_tags(&raw))
    } else {
        raw.into_owned()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return None;
    }
    Some(truncate(&secrets.scrub(&collapsed), EXCERPT_CHARS))
}

/// At most `max` characters, the last an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The text of an HTML page: each tag or comment becomes a space; scripts and styles go whole.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let after = &rest[open..];
        if let Some(comment) = after.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(close) = after.find('>') else {
            // An unterminated tag: nothing after it is text.
            return out;
        };
        let tag = &after[1..close];
        rest = &after[close + 1..];
        let name = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "script" || name == "style" {
            // ASCII lowercasing keeps byte offsets, so the position found applies to `rest`.
            let end_tag = format!("</{name}");
            rest = match rest.to_ascii_lowercase().find(&end_tag) {
                Some(at) => rest[at..].find('>').map_or("", |end| &rest[at + end + 1..]),
                None => "",
            };
        }
    }
    out.push_str(rest);
    out
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references; anything else is
/// left as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name.strip_prefix('#').and_then(|number| {
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => number.parse::<u32>().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
    fn the_fuzzing_entry_judges_answers_as_the_client_does() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let json = h(&[("content-type", "application/json")]);
        // A page echoing the token: scrubbed, bounded, classified.
        let page = format!("<html><body><p>bad token {FUZZ_SECRET}</p></body></html>");
        let e = classify_for_fuzzing(
            0,
            401,
            &h(&[("content-type", "text/html")]),
            page.as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamRejected);
        assert!(!e.detail.contains(FUZZ_SECRET), "{}", e.detail);
        assert!(e.detail.contains("[redacted]"), "{}", e.detail);
        // The token route keeps what it obtains, and scrubs the rest.
        let body = format!(r#"{{"access_token":"{FUZZ_SECRET}","note":"{FUZZ_SECRET}"}}"#);
        let (value, _) = classify_for_fuzzing(3, 200, &json, body.as_bytes()).unwrap();
        assert_eq!(value["access_token"], FUZZ_SECRET);
        assert_eq!(value["note"], "[redacted]");
        let (value, _) = classify_for_fuzzing(0, 200, &json, body.as_bytes()).unwrap();
        assert_eq!(value["access_token"], "[redacted]");
        // A 429 tells a wait; a 2xx that is not JSON is upstream_unavailable; a gateway's 502 is in doubt.
        let e = classify_for_fuzzing(1, 429, &h(&[("retry-after", "30")]), b"").unwrap_err();
        assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, Some(30)));
        let e = classify_for_fuzzing(1, 200, &[], b"<html>").unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamUnavailable);
        let e = classify_for_fuzzing(1, 502, &[], b"\xff\x00").unwrap_err();
        assert!(e.in_doubt && e.upstream.is_some_and(|u| u.status == 502));
        let e =
            classify_for_fuzzing(1, 422, &json, br#"{"error":"Text is too long"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ValidationFailed);
    }

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
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = 1_000_000;
        assert_eq!(parse_retry_after("7", now), Some(now + 7));
        assert_eq!(parse_retry_after(" 120 ", now), Some(now + 120));
        assert_eq!(parse_retry_after("0", now), Some(now));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 10:35:00 GMT", now),
            Some(1_795_343_700)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(i64::MAX),
            "absurd, but not a wrap-around"
        );
    }

    #[test]
    fn a_429_waits_what_the_server_said_or_a_named_guess() {
        let now = 1_000;
        let rate = |retry_after_unix, reset_unix| RateLimit {
            retry_after_unix,
            reset_unix,
            ..RateLimit::default()
        };
        assert_eq!(
            rate(Some(now + 7), Some(now + 300)).refusal_ends(now),
            (now + 7, Told::RetryAfter),
            "Retry-After is about this refusal"
        );
        assert_eq!(
            rate(None, Some(now + 300)).refusal_ends(now),
            (now + 300, Told::Reset)
        );
        assert_eq!(
            rate(None, Some(now - 10)).refusal_ends(now),
            (now + 1, Told::Reset)
        );
        assert_eq!(
            rate(None, None).refusal_ends(now),
            (now + RATE_LIMIT_GUESS.as_secs() as i64, Told::Guess)
        );
    }

    #[test]
    fn the_server_is_named_with_its_port_when_not_the_default() {
        let name = |u: &str| server_name(&Url::parse(u).unwrap());
        assert_eq!(name("http://127.0.0.1:3000"), "127.0.0.1:3000");
        assert_eq!(name("https://social.example"), "social.example");
        assert_eq!(name("https://social.example:443/prefix"), "social.example");
        assert_eq!(name("http://social.example:80"), "social.example");
        assert_eq!(name("https://social.example:8443"), "social.example:8443");
        assert_eq!(name("http://[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn json_error_text_combines_error_and_description() {
        let none = Secrets::default();
        assert_eq!(
            error_text(
                br#"{"error":"invalid_grant","error_description":"The grant is invalid"}"#,
                "application/json",
                &none
            ),
            Some("invalid_grant: The grant is invalid".to_owned())
        );
        assert_eq!(
            error_text(
                br#"{"error":"Record not found"}"#,
                "application/json",
                &none
            ),
            Some("Record not found".to_owned())
        );
        assert_eq!(
            error_text(br#"{"id":"1"}"#, "application/json", &none),
            None
        );
        assert_eq!(error_text(b"", "text/html", &none), None);
        assert_eq!(error_text(b"  \r\n", "text/plain", &none), None);
    }

    #[test]
    fn an_html_page_becomes_a_short_plain_excerpt() {
        let none = Secrets::default();
        let page = br#"<!DOCTYPE html><html><head><title>Bad</title>
            <style>body { color: red }</style><script type="text/javascript">var x = "<b>hidden</b>";</script>
            </head><body><!-- a comment --><h1>400 Bad Request</h1>
            <p>Tom &amp; Jerry &lt;3 &quot;quotes&quot; &#39;apos&#39; &#x41;&#66;&nbsp;end &unknown; & alone</p>
            <SCRIPT>alert(1)</SCRIPT></body></html>"#;
        assert_eq!(
            error_text(page, "text/html; charset=utf-8", &none).as_deref(),
            Some(r#"Bad 400 Bad Request Tom & Jerry <3 "quotes" 'apos' AB end &unknown; & alone"#)
        );
        // Takahē's token refusal, and snac's page, whatever the content type says.
        assert_eq!(
            error_text(b"Invalid Bearer token", "text/html", &none).as_deref(),
            Some("Invalid Bearer token")
        );
        assert_eq!(
            error_text(b"<h1>400 Bad Request (snac/2.94)</h1>", "", &none).as_deref(),
            Some("400 Bad Request (snac/2.94)")
        );
        // Plain text keeps its angle brackets and ampersands.
        assert_eq!(
            error_text(b"too many requests: a < b && c", "text/plain", &none).as_deref(),
            Some("too many requests: a < b && c")
        );
        assert_eq!(
            error_text(b"<p>unterminated <b", "text/html", &none).as_deref(),
            Some("unterminated")
        );
        assert_eq!(
            error_text(b"<html><script>x</script></html>", "text/html", &none),
            None
        );
    }

    #[test]
    fn an_excerpt_is_bounded() {
        let none = Secrets::default();
        let long = format!("<p>{}</p>", "word ".repeat(500));
        let excerpt = error_text(long.as_bytes(), "text/html", &none).unwrap();
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS);
        assert!(excerpt.ends_with('…'));
        let json = format!(r#"{{"error":"{}"}}"#, "é".repeat(2000));
        let text = error_text(json.as_bytes(), "application/json", &none).unwrap();
        assert_eq!(text.chars().count(), JSON_TEXT_CHARS);
        // Invalid UTF-8 does not stop the excerpt.
        assert_eq!(
            error_text(b"bad \xff byte", "text/plain", &none).as_deref(),
            Some("bad \u{fffd} byte")
        );
    }

    #[test]
    fn every_secret_the_request_carried_is_scrubbed() {
        let token = SecretString::from("tok-abc123");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "the-code"),
            ("client_id", "public-id"),
            ("client_secret", "s3cr3t/+="),
            ("code_verifier", "verifier-xyz"),
            ("password", "hunter2"),
            ("refresh_token", "refresh-1"),
            ("access_token", "access-1"),
            ("token", "tok-abc123"),
            ("redirect_uri", "urn:ietf:wg:oauth:2.0:oob"),
        ];
        let secrets = Secrets::new(&KnownSecrets::default(), Some(&token)).with_fields(form);
        let echoed = "Bearer tok-abc123 code=the-code secret s3cr3t/+= (sent as s3cr3t%2F%2B%3D) \
                      verifier-xyz hunter2 refresh-1 access-1 for public-id";
        let scrubbed = secrets.scrub(echoed);
        for secret in [
            "tok-abc123",
            "the-code",
            "s3cr3t",
            "verifier-xyz",
            "hunter2",
            "refresh-1",
            "access-1",
        ] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(scrubbed.contains("public-id"), "not a secret: {scrubbed}");
        assert!(
            scrubbed.contains("Bearer [redacted] code=[redacted]"),
            "{scrubbed}"
        );

        // In a JSON error, and in an HTML page, before the excerpt is cut.
        let json = br#"{"error":"invalid_grant","error_description":"code the-code is unknown"}"#;
        assert_eq!(
            error_text(json, "application/json", &secrets).as_deref(),
            Some("invalid_grant: code [redacted] is unknown")
        );
        let page = format!("<p>{}the-code</p>", "x".repeat(EXCERPT_CHARS - 4));
        let excerpt = error_text(page.as_bytes(), "text/html", &secrets).unwrap();
        assert!(
            !excerpt.contains("the-"),
            "no part of the secret at the cut: {excerpt}"
        );

        // A secret inside another is not left half-replaced.
        let nested = Secrets::default().with_fields([("code", "abc"), ("token", "xxabcxx")]);
        assert_eq!(nested.scrub("xxabcxx abc"), "[redacted] [redacted]");
        // Empty values scrub nothing.
        let empty = Secrets::default().with_fields([("code", "")]);
        assert_eq!(empty.scrub("text"), "text");
    }

    #[test]
    fn scope_refusals_are_recognised_in_every_wording() {
        assert!(is_scope_refusal("out_of_scope_for_token"));
        assert!(is_scope_refusal(
            "This action is outside the authorized scopes"
        ));
        assert!(!is_scope_refusal("Forbidden"));
    }
}
