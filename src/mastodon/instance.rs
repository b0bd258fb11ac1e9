//! What a server says about itself: limits and capabilities, read rather than assumed.
//!
//! Mastodon-compatible servers differ. The character limit is 500 on stock Mastodon and anything on
//! others; PKCE exists from Mastodon 4.3 on. So `init` asks `/api/v2/instance`, falls back to
//! `/api/v1/instance` (where some forks put `max_toot_chars`), and reads the OAuth discovery document
//! for PKCE support instead of guessing from version strings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::capabilities::{Capabilities, Software};
use super::client::{unix_now, Endpoint, MastodonClient};
use crate::error::Result;

/// Limits and capabilities of one server, as probed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The base URL the sidecar talks to.
    pub url: String,
    pub domain: Option<String>,
    pub version: Option<String>,
    /// `None` when the server does not say: the sidecar then leaves the check to the server.
    pub max_characters: Option<u64>,
    pub characters_reserved_per_url: u64,
    pub max_media_attachments: Option<u64>,
    pub poll_max_options: Option<u64>,
    pub poll_min_expiration: Option<u64>,
    pub poll_max_expiration: Option<u64>,
    /// Whether the server takes PKCE S256 (from the discovery document).
    pub pkce: bool,
    /// The software behind the server (nodeinfo), and what follows from it.
    #[serde(default = "Software::unknown")]
    pub software: Software,
    /// The server's capabilities: derived from `software`, PKCE from the discovery document, then
    /// the connection's configured overrides.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Unix seconds of the probe.
    pub probed_at: i64,
}

/// Mastodon's default when a server does not say how many characters a URL costs.
const DEFAULT_URL_COST: u64 = 23;

impl InstanceInfo {
    /// Probes the server: instance v2, else v1, and the OAuth discovery document.
    pub async fn probe(client: &MastodonClient) -> Result<InstanceInfo> {
        let mut info = match client.get_optional(Endpoint::INSTANCE_V2).await? {
            Some(v2) => Self::from_v2(client.base().as_str(), &v2),
            None => {
                let v1 = client.get(Endpoint::INSTANCE_V1, None).await?;
                Self::from_v1(client.base().as_str(), &v1)
            }
        };
        // A server without the discovery document (Mastodon < 4.3, most forks) does not take PKCE.
        // A failure to fetch it is not a reason to fail the probe: assume no PKCE, which still works.
        info.pkce = match client.get_optional(Endpoint::OAUTH_METADATA).await {
            Ok(Some(doc)) => supports_s256(&doc),
            Ok(None) => false,
            Err(e) => {
                tracing::info!(
                    code = e.kind.code(),
                    "no OAuth discovery document; PKCE off"
                );
                false
            }
        };
        Ok(info)
    }

    pub fn from_v2(url: &str, v2: &Value) -> InstanceInfo {
        let mut info = Self::with_limits(url, v2, &v2["configuration"]);
        info.domain = v2["domain"].as_str().map(str::to_owned);
        info
    }

    pub fn from_v1(url: &str, v1: &Value) -> InstanceInfo {
        let mut info = Self::with_limits(url, v1, &v1["configuration"]);
        info.domain = v1["uri"]
            .as_str()
            .map(|uri| {
                uri.trim_start_matches("https://")
                    .trim_start_matches("http://")
            })
            .map(str::to_owned);
        // Older servers and some forks put the limit at the top, sometimes as a string.
        info.max_characters = info
            .max_characters
            .or_else(|| v1["max_toot_chars"].as_u64())
            .or_else(|| v1["max_toot_chars"].as_str().and_then(|s| s.parse().ok()));
        info
    }

    /// What v1 and v2 share: the version and the `configuration` block.
    fn with_limits(url: &str, instance: &Value, config: &Value) -> InstanceInfo {
        let statuses = &config["statuses"];
        let polls = &config["polls"];
        InstanceInfo {
            url: url.to_owned(),
            domain: None,
            version: instance["version"].as_str().map(str::to_owned),
            max_characters: statuses["max_characters"].as_u64(),
            characters_reserved_per_url: statuses["characters_reserved_per_url"]
                .as_u64()
                .unwrap_or(DEFAULT_URL_COST),
            max_media_attachments: statuses["max_media_attachments"].as_u64(),
            poll_max_options: polls["max_options"].as_u64(),
            poll_min_expiration: polls["min_expiration"].as_u64(),
            poll_max_expiration: polls["max_expiration"].as_u64(),
            pkce: false,
            software: Software::unknown(),
            capabilities: Capabilities::conservative(),
            probed_at: unix_now(),
        }
    }
}

fn supports_s256(doc: &Value) -> bool {
    doc["code_challenge_methods_supported"]
        .as_array()
        .is_some_and(|methods| methods.iter().any(|m| m.as_str() == Some("S256")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_limits_are_read_from_configuration() {
        let v2 = json!({"domain": "m.example", "version": "4.3.2", "configuration": {
            "statuses": {"max_characters": 5000, "max_media_attachments": 4, "characters_reserved_per_url": 23},
            "polls": {"max_options": 4, "min_expiration": 300, "max_expiration": 2629746}}});
        let info = InstanceInfo::from_v2("https://m.example", &v2);
        assert_eq!(info.max_characters, Some(5000));
        assert_eq!(info.poll_max_options, Some(4));
        assert_eq!(info.domain.as_deref(), Some("m.example"));
    }

    #[test]
    fn v1_falls_back_to_max_toot_chars_as_number_or_string() {
        let info = InstanceInfo::from_v1("u", &json!({"uri": "a.example", "max_toot_chars": 1000}));
        assert_eq!(info.max_characters, Some(1000));
        let info =
            InstanceInfo::from_v1("u", &json!({"uri": "a.example", "max_toot_chars": "640"}));
        assert_eq!(info.max_characters, Some(640));
        let info = InstanceInfo::from_v1("u", &json!({"uri": "a.example"}));
        assert_eq!(info.max_characters, None);
    }

    #[test]
    fn pkce_needs_s256_in_the_discovery_document() {
        assert!(supports_s256(
            &json!({"code_challenge_methods_supported": ["S256"]})
        ));
        assert!(!supports_s256(
            &json!({"code_challenge_methods_supported": ["plain"]})
        ));
        assert!(!supports_s256(&json!({})));
    }
}
