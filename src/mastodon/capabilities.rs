//! What a server can do and how it misbehaves, as a small set of facts the rest of the code asks.
//!
//! Servers that speak Mastodon's API differ, and not politely (`shared/reference/servers.md`). The
//! software is read once, from nodeinfo, and turned here into [`Capabilities`]; code asks
//! `caps.honours_idempotency_key`, never `software == "gotosocial"`. A new server family is one row
//! in [`Capabilities::for_software`] (plus a stand-in profile that reproduces it). Software nobody
//! described gets [`Capabilities::conservative`]: nothing is assumed that would lose a post or a
//! parameter if it were wrong. A connection may override any fact in its configuration
//! (`[connections.NAME.capabilities]`), for a server that was patched or misdetected.

use serde::{Deserialize, Serialize};

/// The software behind a server, from nodeinfo's `software`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Software {
    /// Lower case, as nodeinfo gives it (`mastodon`, `gotosocial`, `takahe`, ...); `unknown` when
    /// the server serves no nodeinfo.
    pub name: String,
    pub version: Option<String>,
}

impl Software {
    pub fn unknown() -> Software {
        Software {
            name: "unknown".to_owned(),
            version: None,
        }
    }

    /// How messages name the server: its software, or "the server".
    pub fn display(&self) -> &str {
        match self.name.as_str() {
            "mastodon" => "Mastodon",
            "gotosocial" => "GoToSocial",
            "takahe" => "Takahē",
            "hollo" => "Hollo",
            "snac" => "snac",
            "mitra" => "Mitra",
            "pleroma" => "Pleroma",
            "akkoma" => "Akkoma",
            _ => "the server",
        }
    }
}

/// How a server counts a status's length, and whether it enforces the limit it advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthRule {
    /// Mastodon: grapheme clusters of spoiler_text + status, each URL counting
    /// `characters_reserved_per_url`, remote mentions without their domain.
    Mastodon,
    /// Code points of spoiler_text + status, URLs at full length (GoToSocial).
    CodePoints,
    /// Code points of the status alone: no URL weighting, the content warning not counted (Takahē).
    StatusOnly,
    /// The advertised limit is not enforced (Hollo, Mitra): the sidecar checks nothing.
    NotEnforced,
    /// Nobody described it: the server decides.
    Unknown,
}

/// How `POST /oauth/token` treats `grant_type=client_credentials`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCredentialsGrant {
    Supported,
    /// Only with `redirect_uri` in the form (GoToSocial, snac).
    NeedsRedirectUri,
    /// Refused (Mitra: `unsupported grant type`).
    Unsupported,
}

/// How `POST /oauth/revoke` wants the token presented, and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeStyle {
    /// `client_id`, `client_secret`, `token` in the form (RFC 7009).
    ClientCredentials,
    /// The token as `Authorization: Bearer` besides the form (Mitra: client credentials alone get 401).
    Bearer,
    /// Revoking deletes the app as well (snac): it must be registered again afterwards.
    DeletesApp,
}

/// Whom a server's rate limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// Per token and account, with `X-RateLimit-*` (Mastodon).
    Account,
    /// Per client IP, shared by every account behind the sidecar (GoToSocial).
    ClientIp,
    /// No limit announced (a 429 may still come, with `Retry-After`).
    None,
}

/// The facts the sidecar relies on, per server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// PKCE S256 (from the OAuth discovery document when the server serves one).
    pub pkce: bool,
    /// A repeat with the same `Idempotency-Key` answers the first status instead of posting again.
    pub honours_idempotency_key: bool,
    /// ... and remembers keys across its own restarts (Mitra keeps them in memory only).
    pub idempotency_survives_restart: bool,
    /// JSON bodies are read like forms (snac reads forms only, and drops a JSON poll silently).
    /// Writes are sent as forms everywhere; this is for the record.
    pub json_bodies: bool,
    pub length_rule: LengthRule,
    /// `scheduled_at` schedules (elsewhere it is ignored and the status published at once).
    pub scheduling: bool,
    /// A content refusal comes as 400 rather than Mastodon's 422.
    pub content_refusal_400: bool,
    /// A refused token may come as 400 with text (Takahē's `Invalid Bearer token`).
    pub token_refusal_400: bool,
    /// A refused token may come as 422 on `verify_credentials` (snac).
    pub token_refusal_422: bool,
    pub client_credentials: ClientCredentialsGrant,
    /// Granular scopes (`read:accounts`) are honoured; else only `read`/`write` (Takahē, Mitra).
    pub granular_scopes: bool,
    /// The `profile` scope exists (Mastodon 4.3+).
    pub profile_scope: bool,
    pub revoke: RevokeStyle,
    pub rate_limit_scope: RateLimitScope,
    /// Pooled connections are kept open (snac closes each one without saying so).
    pub keep_alive: bool,
    /// `visibility=unlisted` is kept (Mitra stores it as public).
    pub unlisted: bool,
    /// `spoiler_text` is kept (Mitra drops it).
    pub spoiler_text: bool,
    /// `language` is kept (Takahē drops it).
    pub language: bool,
    /// Visibilities beyond Mastodon's four that the server documents.
    pub extra_visibilities: Vec<String>,
    /// Status parameters beyond Mastodon's that the server documents (passed through).
    pub extra_status_params: Vec<String>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::conservative()
    }
}

impl Capabilities {
    /// Stock Mastodon 4.3+.
    pub fn mastodon() -> Capabilities {
        Capabilities {
            pkce: true,
            honours_idempotency_key: true,
            idempotency_survives_restart: true,
            json_bodies: true,
            length_rule: LengthRule::Mastodon,
            scheduling: true,
            content_refusal_400: false,
            token_refusal_400: false,
            token_refusal_422: false,
            client_credentials: ClientCredentialsGrant::Supported,
            granular_scopes: true,
            profile_scope: true,
            revoke: RevokeStyle::ClientCredentials,
            rate_limit_scope: RateLimitScope::Account,
            keep_alive: true,
            unlisted: true,
            spoiler_text: true,
            language: true,
            extra_visibilities: Vec::new(),
            extra_status_params: Vec::new(),
        }
    }

    /// For software nobody described: assume nothing that would lose a post or a parameter.
    /// Idempotency keys are not trusted, bodies go as forms, length and scheduling are left to the
    /// server (and its answer checked), any refusal shape is recognised, and no PKCE unless the
    /// discovery document says so.
    pub fn conservative() -> Capabilities {
        Capabilities {
            pkce: false,
            honours_idempotency_key: false,
            idempotency_survives_restart: false,
            json_bodies: false,
            length_rule: LengthRule::Unknown,
            scheduling: true,
            content_refusal_400: true,
            token_refusal_400: true,
            token_refusal_422: true,
            client_credentials: ClientCredentialsGrant::NeedsRedirectUri,
            granular_scopes: false,
            profile_scope: false,
            revoke: RevokeStyle::Bearer,
            rate_limit_scope: RateLimitScope::None,
            keep_alive: true,
            unlisted: true,
            spoiler_text: true,
            language: true,
            extra_visibilities: Vec::new(),
            extra_status_params: Vec::new(),
        }
    }

    /// The facts of servers.md, by software name (lower case). `pkce` is then set from the
    /// discovery document by the probe.
    pub fn for_software(name: &str) -> Capabilities {
        let base = Capabilities::mastodon();
        match name {
            "mastodon" => base,
            "gotosocial" => Capabilities {
                pkce: false,
                honours_idempotency_key: false,
                idempotency_survives_restart: false,
                length_rule: LengthRule::CodePoints,
                content_refusal_400: true,
                client_credentials: ClientCredentialsGrant::NeedsRedirectUri,
                profile_scope: false,
                rate_limit_scope: RateLimitScope::ClientIp,
                extra_visibilities: vec!["mutuals_only".to_owned()],
                extra_status_params: vec!["content_type".to_owned(), "local_only".to_owned()],
                ..base
            },
            "takahe" => Capabilities {
                pkce: false,
                honours_idempotency_key: false,
                idempotency_survives_restart: false,
                length_rule: LengthRule::StatusOnly,
                scheduling: false,
                content_refusal_400: true,
                token_refusal_400: true,
                granular_scopes: false,
                profile_scope: false,
                rate_limit_scope: RateLimitScope::None,
                language: false,
                ..base
            },
            "hollo" => Capabilities {
                length_rule: LengthRule::NotEnforced,
                scheduling: false,
                profile_scope: false,
                rate_limit_scope: RateLimitScope::None,
                ..base
            },
            "snac" => Capabilities {
                pkce: false,
                honours_idempotency_key: false,
                idempotency_survives_restart: false,
                json_bodies: false,
                length_rule: LengthRule::Unknown,
                // It answers a Status to `scheduled_at`: published at once.
                scheduling: false,
                token_refusal_422: true,
                client_credentials: ClientCredentialsGrant::NeedsRedirectUri,
                profile_scope: false,
                revoke: RevokeStyle::DeletesApp,
                rate_limit_scope: RateLimitScope::None,
                keep_alive: false,
                language: false,
                ..base
            },
            "mitra" => Capabilities {
                pkce: false,
                idempotency_survives_restart: false,
                length_rule: LengthRule::NotEnforced,
                scheduling: false,
                content_refusal_400: true,
                client_credentials: ClientCredentialsGrant::Unsupported,
                granular_scopes: false,
                revoke: RevokeStyle::Bearer,
                rate_limit_scope: RateLimitScope::None,
                unlisted: false,
                spoiler_text: false,
                extra_visibilities: vec!["subscribers".to_owned(), "conversation".to_owned()],
                extra_status_params: vec![
                    "content_type".to_owned(),
                    "title".to_owned(),
                    "quote_id".to_owned(),
                    "group_id".to_owned(),
                ],
                ..base
            },
            _ => Capabilities::conservative(),
        }
    }

    /// Applies a connection's configured overrides.
    pub fn with_overrides(mut self, o: &CapabilityOverrides) -> Capabilities {
        macro_rules! take {
            ($($field:ident),*) => {$(
                if let Some(v) = &o.$field { self.$field = v.clone(); }
            )*};
        }
        take!(
            pkce,
            honours_idempotency_key,
            idempotency_survives_restart,
            json_bodies,
            length_rule,
            scheduling,
            content_refusal_400,
            token_refusal_400,
            token_refusal_422,
            client_credentials,
            granular_scopes,
            profile_scope,
            revoke,
            rate_limit_scope,
            keep_alive,
            unlisted,
            spoiler_text,
            language,
            extra_visibilities,
            extra_status_params
        );
        self
    }

    /// Whether `visibility` is one the server keeps as given.
    pub fn keeps_visibility(&self, visibility: &str) -> bool {
        match visibility {
            "public" | "private" | "direct" => true,
            "unlisted" => self.unlisted,
            other => self.extra_visibilities.iter().any(|v| v == other),
        }
    }
}

/// `[connections.NAME.capabilities]`: any fact of [`Capabilities`], to correct what the sidecar
/// derived from the server's software.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityOverrides {
    pub pkce: Option<bool>,
    pub honours_idempotency_key: Option<bool>,
    pub idempotency_survives_restart: Option<bool>,
    pub json_bodies: Option<bool>,
    pub length_rule: Option<LengthRule>,
    pub scheduling: Option<bool>,
    pub content_refusal_400: Option<bool>,
    pub token_refusal_400: Option<bool>,
    pub token_refusal_422: Option<bool>,
    pub client_credentials: Option<ClientCredentialsGrant>,
    pub granular_scopes: Option<bool>,
    pub profile_scope: Option<bool>,
    pub revoke: Option<RevokeStyle>,
    pub rate_limit_scope: Option<RateLimitScope>,
    pub keep_alive: Option<bool>,
    pub unlisted: Option<bool>,
    pub spoiler_text: Option<bool>,
    pub language: Option<bool>,
    pub extra_visibilities: Option<Vec<String>>,
    pub extra_status_params: Option<Vec<String>>,
}

impl CapabilityOverrides {
    pub fn is_empty(&self) -> bool {
        *self == CapabilityOverrides::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_software_gets_the_conservative_set() {
        let caps = Capabilities::for_software("friendica");
        assert_eq!(caps, Capabilities::conservative());
        assert!(!caps.honours_idempotency_key);
        assert_eq!(caps.length_rule, LengthRule::Unknown);
    }

    #[test]
    fn each_family_differs_where_servers_md_says() {
        assert!(Capabilities::for_software("mastodon").honours_idempotency_key);
        assert!(!Capabilities::for_software("gotosocial").honours_idempotency_key);
        assert!(!Capabilities::for_software("takahe").scheduling);
        assert!(Capabilities::for_software("takahe").token_refusal_400);
        assert!(!Capabilities::for_software("snac").keep_alive);
        assert_eq!(
            Capabilities::for_software("snac").revoke,
            RevokeStyle::DeletesApp
        );
        let mitra = Capabilities::for_software("mitra");
        assert_eq!(mitra.revoke, RevokeStyle::Bearer);
        assert!(!mitra.keeps_visibility("unlisted"));
        assert!(mitra.keeps_visibility("subscribers"));
        assert!(!mitra.idempotency_survives_restart);
        assert!(Capabilities::for_software("gotosocial").keeps_visibility("mutuals_only"));
    }

    #[test]
    fn configured_overrides_win() {
        let o = CapabilityOverrides {
            honours_idempotency_key: Some(true),
            length_rule: Some(LengthRule::NotEnforced),
            ..Default::default()
        };
        let caps = Capabilities::for_software("gotosocial").with_overrides(&o);
        assert!(caps.honours_idempotency_key);
        assert_eq!(caps.length_rule, LengthRule::NotEnforced);
        assert_eq!(caps.rate_limit_scope, RateLimitScope::ClientIp);
    }
}
