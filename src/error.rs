//! The one error type of the sidecar and its table.
//!
//! Every failure, whether the caller sent something wrong, the sidecar's policy refused it or Mastodon
//! answered badly, becomes an [`Error`] with an [`ErrorKind`]. The kind decides the code, the HTTP status,
//! the SOAP side and the title in one exhaustive table ([`ErrorKind::code`] and friends); the renderers in
//! `wire/` turn an error into problem+json, plain XML or a SOAP fault. Nothing here knows about a wire
//! format, and no secret may ever be put into a detail: details are shown to callers and written to logs.

use std::fmt;

/// The classification of every error the sidecar can answer with (contract, section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidRequest,
    ValidationFailed,
    Unauthenticated,
    Forbidden,
    UnknownOperation,
    UnknownConnection,
    CredentialsMissing,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamRejected,
    RateLimited,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The sidecar's own bound on calls in flight is reached (an addition to the contract's table).
    Overloaded,
    /// The same post (connection and idempotency key) is being sent by another call right now.
    InProgress,
    /// A post may or may not exist: the server's answer was lost and it cannot be told yet.
    OutcomeUnknown,
    /// The server answered success but dropped or changed what the caller asked for.
    UpstreamIgnored,
    Internal,
    /// The HTTP layer refused the head: over its size, or more header fields than it takes (431).
    HeadersTooLarge,
    /// The HTTP layer refused the request target as too long (414).
    UriTooLong,
    /// The HTTP layer could not read the request as HTTP/1.1 (400).
    MalformedRequest,
}

impl ErrorKind {
    /// Every kind, for tests and documents that walk the table.
    pub const ALL: [ErrorKind; 21] = [
        ErrorKind::InvalidRequest,
        ErrorKind::ValidationFailed,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::UnknownOperation,
        ErrorKind::UnknownConnection,
        ErrorKind::CredentialsMissing,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::UpstreamRejected,
        ErrorKind::RateLimited,
        ErrorKind::UpstreamUnavailable,
        ErrorKind::UpstreamTimeout,
        ErrorKind::Overloaded,
        ErrorKind::InProgress,
        ErrorKind::OutcomeUnknown,
        ErrorKind::UpstreamIgnored,
        ErrorKind::Internal,
        ErrorKind::HeadersTooLarge,
        ErrorKind::UriTooLong,
        ErrorKind::MalformedRequest,
    ];

    /// The stable, machine-readable code callers branch on.
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ValidationFailed => "validation_failed",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::UnknownOperation => "unknown_operation",
            ErrorKind::UnknownConnection => "unknown_connection",
            ErrorKind::CredentialsMissing => "credentials_missing",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::UpstreamRejected => "upstream_rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::InProgress => "in_progress",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::UpstreamIgnored => "upstream_ignored",
            ErrorKind::Internal => "internal",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::UriTooLong => "uri_too_long",
            ErrorKind::MalformedRequest => "malformed_request",
        }
    }

    /// The HTTP status for JSON and plain XML (`upstream_rejected` uses Mastodon's own, see [`Error::http_status`]).
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::ValidationFailed => 422,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::UnknownOperation => 404,
            ErrorKind::UnknownConnection => 404,
            ErrorKind::CredentialsMissing => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::UpstreamRejected => 400,
            ErrorKind::RateLimited => 429,
            ErrorKind::UpstreamUnavailable => 502,
            ErrorKind::UpstreamTimeout => 504,
            ErrorKind::Overloaded => 503,
            ErrorKind::InProgress => 409,
            ErrorKind::OutcomeUnknown => 502,
            ErrorKind::UpstreamIgnored => 502,
            ErrorKind::Internal => 500,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::UriTooLong => 414,
            ErrorKind::MalformedRequest => 400,
        }
    }

    /// Whether the fault lies with the sender (SOAP `Client` / `Sender`) or with the server side.
    pub const fn blames_sender(self) -> bool {
        !matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::UpstreamUnavailable
                | ErrorKind::UpstreamTimeout
                | ErrorKind::Overloaded
                | ErrorKind::OutcomeUnknown
                | ErrorKind::UpstreamIgnored
                | ErrorKind::Internal
        )
    }

    /// A short human title, the same for every error of the kind.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "The request is malformed",
            ErrorKind::ValidationFailed => "The content was refused",
            ErrorKind::Unauthenticated => "Authentication required",
            ErrorKind::Forbidden => "Not allowed",
            ErrorKind::UnknownOperation => "Unknown operation",
            ErrorKind::UnknownConnection => "Unknown connection",
            ErrorKind::CredentialsMissing => "Credentials missing",
            ErrorKind::PayloadTooLarge => "Payload too large",
            ErrorKind::UnsupportedMediaType => "Unsupported media type",
            ErrorKind::UpstreamRejected => "The server rejected the request",
            ErrorKind::RateLimited => "Rate limited by the server",
            ErrorKind::UpstreamUnavailable => "The server is unavailable",
            ErrorKind::UpstreamTimeout => "The server did not answer in time",
            ErrorKind::Overloaded => "The sidecar is at capacity",
            ErrorKind::InProgress => "The same post is being sent",
            ErrorKind::OutcomeUnknown => "The post may exist",
            ErrorKind::UpstreamIgnored => "The server ignored part of the request",
            ErrorKind::Internal => "Internal error",
            ErrorKind::HeadersTooLarge => "The request head is too large",
            ErrorKind::UriTooLong => "The request target is too long",
            ErrorKind::MalformedRequest => "The request is not well-formed HTTP/1.1",
        }
    }

    /// `urn:mastodon-sidecar:error:<code>`, the problem+json `type`.
    pub fn type_uri(self) -> String {
        format!("urn:mastodon-sidecar:error:{}", self.code())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What Mastodon answered, when it answered: its HTTP status and its `error` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub status: u16,
    pub error: Option<String>,
}

/// A classified error with the detail a caller needs to act on it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Error {
    pub kind: ErrorKind,
    /// Shown to the caller and logged: never a secret.
    pub detail: String,
    pub upstream: Option<Upstream>,
    /// Seconds until Mastodon's rate-limit window resets (`rate_limited` only).
    pub retry_after: Option<u64>,
    /// A SOAP fault code that overrides Client/Server, e.g. `MustUnderstand`.
    pub soap_fault_code: Option<&'static str>,
    /// The request may have been processed by the server and no answer says how: a timeout or a
    /// broken exchange after sending, or a gateway's 502/503/504. A write that failed so must be
    /// resolved (was it created?) before it is sent again.
    pub in_doubt: bool,
}

impl Error {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            upstream: None,
            retry_after: None,
            soap_fault_code: None,
            in_doubt: false,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, detail)
    }

    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::ValidationFailed, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }

    pub fn credentials_missing(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::CredentialsMissing, detail)
    }

    /// A bug or an unexpected local failure. The caller only learns that it happened; the cause goes to the
    /// log through `tracing` at the place where it is known.
    /// Too many calls in flight: the caller should retry after a moment, not queue without bound.
    pub fn overloaded(detail: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Overloaded, detail);
        e.retry_after = Some(1);
        e
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "the sidecar failed unexpectedly; the log has the cause under this correlation id",
        )
    }

    pub fn with_upstream(mut self, status: u16, error: Option<String>) -> Self {
        self.upstream = Some(Upstream { status, error });
        self
    }

    /// Whether the server refused the token the request carried: any upstream 401, or an upstream 400
    /// whose text names an invalid, expired or revoked bearer or access token (Takahē answers a bad
    /// token with 400 text/html `Invalid Bearer token`). A 422 on verify_credentials (snac) is left
    /// to the caller, which knows the route.
    pub fn is_token_refusal(&self) -> bool {
        match &self.upstream {
            Some(up) if up.status == 401 => true,
            Some(up) if up.status == 400 => up.error.as_deref().is_some_and(mentions_bad_token),
            _ => false,
        }
    }

    /// The HTTP status of the JSON and plain XML renderings.
    pub fn http_status(&self) -> u16 {
        match (self.kind, &self.upstream) {
            // The contract passes Mastodon's own 4xx through, so that a flow can branch on it.
            (ErrorKind::UpstreamRejected, Some(up)) if (400..500).contains(&up.status) => up.status,
            (kind, _) => kind.http_status(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a server's text says a bearer or access token is invalid, expired or revoked. An OAuth
/// `invalid_grant` (a code) names neither, so it is not taken for a token refusal.
pub fn mentions_bad_token(text: &str) -> bool {
    let text = text.to_lowercase();
    let names_token =
        text.contains("bearer") || text.contains("access token") || text.contains("access_token");
    let bad = text.contains("invalid") || text.contains("expired") || text.contains("revoked");
    names_token && bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_code_and_a_client_or_server_side() {
        let mut codes: Vec<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            let status = kind.http_status();
            assert!((400..600).contains(&status), "{kind}");
            // 429 is Mastodon's rate limit: not the sender's fault; 431 is.
            assert_eq!(
                kind.blames_sender(),
                status < 500 && status != 429,
                "{kind}"
            );
        }
    }

    #[test]
    fn token_refusals_are_told_apart_from_other_refusals() {
        let rejected = |status, text: Option<&str>| {
            Error::new(ErrorKind::UpstreamRejected, "no")
                .with_upstream(status, text.map(str::to_owned))
        };
        assert!(rejected(401, None).is_token_refusal());
        assert!(rejected(401, Some("The access token is invalid")).is_token_refusal());
        assert!(rejected(400, Some("Invalid Bearer token")).is_token_refusal());
        assert!(rejected(400, Some("access_token expired")).is_token_refusal());
        assert!(rejected(400, Some("The access token was revoked")).is_token_refusal());
        assert!(!rejected(400, Some("Status is too long")).is_token_refusal());
        assert!(!rejected(
            400,
            Some("invalid_grant: The provided authorization grant is invalid, expired, revoked")
        )
        .is_token_refusal());
        assert!(!rejected(400, None).is_token_refusal());
        assert!(
            !rejected(422, Some("This method requires an authenticated user")).is_token_refusal()
        );
        assert!(!rejected(403, Some("invalid bearer token")).is_token_refusal());
        assert!(!Error::new(ErrorKind::UpstreamUnavailable, "down").is_token_refusal());
    }

    #[test]
    fn upstream_rejected_keeps_mastodons_status() {
        let e = Error::new(ErrorKind::UpstreamRejected, "no").with_upstream(404, None);
        assert_eq!(e.http_status(), 404);
        let e = Error::new(ErrorKind::UpstreamRejected, "no");
        assert_eq!(e.http_status(), 400);
    }
}
