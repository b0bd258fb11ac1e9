//! What a server says about itself: limits and capabilities, read rather than assumed.
//!
//! Mastodon-compatible servers differ. The character limit is 500 on stock Mastodon and anything on
//! others; PKCE exists from Mastodon 4.3 on. So `init` asks `/api/v2/instance`, falls back to
//! `/api/v1/instance` (where some forks put `max_toot_chars`), and reads the OAuth discovery document
//! for PKCE support instead of guessing from version strings. Nodeinfo names the software, from
//! which [`Capabilities`] follow (see `capabilities.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::capabilities::{Capabilities, CapabilityOverrides, Software};
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
    /// What the server says of media (`configuration.media_attachments`); unset parts are left to it.
    #[serde(default)]
    pub media: MediaLimits,
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

/// `configuration.media_attachments`: what an upload must be, as the server published it. Each part
/// is `None` when the server does not say, and the check is then the server's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLimits {
    /// The MIME types it takes (`image/png`, ...); `None`: not published.
    pub supported_mime_types: Option<Vec<String>>,
    /// The most bytes of an image.
    pub image_size_limit: Option<u64>,
    /// The most bytes of a video or audio file.
    pub video_size_limit: Option<u64>,
    /// The most characters of a description (alt text).
    pub description_limit: Option<u64>,
}

impl MediaLimits {
    fn read(media: &Value) -> MediaLimits {
        // A list of texts only, each bounded: a hostile instance's list is not taken whole.
        let types = media["supported_mime_types"].as_array().map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter(|t| t.len() <= 128)
                .take(512)
                .map(|t| t.to_ascii_lowercase())
                .collect::<Vec<_>>()
        });
        MediaLimits {
            supported_mime_types: types.filter(|t| !t.is_empty()),
            image_size_limit: media["image_size_limit"].as_u64().filter(|n| *n > 0),
            video_size_limit: media["video_size_limit"].as_u64().filter(|n| *n > 0),
            description_limit: media["description_limit"].as_u64().filter(|n| *n > 0),
        }
    }

    /// The size limit for a file of `content_type` (video and audio have their own).
    pub fn size_limit(&self, content_type: &str) -> Option<u64> {
        if content_type.starts_with("video/") || content_type.starts_with("audio/") {
            self.video_size_limit
        } else {
            self.image_size_limit
        }
    }
}

/// Mastodon's default when a server does not say how many characters a URL costs.
const DEFAULT_URL_COST: u64 = 23;

impl InstanceInfo {
    /// Probes the server: instance v2, else v1; the OAuth discovery document (PKCE); nodeinfo (the
    /// software, and so the capabilities), with the connection's overrides applied last.
    ///
    /// `/api/v2/instance` failing in any way (5xx as Takahē before set-up, 404 text as Hollo's, absent
    /// as on snac, a body that is not JSON) falls back to v1; only v1 failing fails the probe.
    pub async fn probe(
        client: &MastodonClient,
        overrides: &CapabilityOverrides,
    ) -> Result<InstanceInfo> {
        let mut info = match client.get(Endpoint::INSTANCE_V2, None).await {
            Ok(v2) if v2.is_object() => Self::from_v2(client.base().as_str(), &v2),
            outcome => {
                if let Err(e) = &outcome {
                    tracing::info!(
                        code = e.kind.code(),
                        status = e.upstream.as_ref().map(|u| u.status),
                        "no usable /api/v2/instance; reading /api/v1/instance"
                    );
                }
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
        info.software = read_software(client).await;
        let mut caps = Capabilities::for_software(&info.software.name);
        // The discovery document is the server's own word on PKCE; the table only guesses.
        caps.pkce = info.pkce;
        info.capabilities = caps.with_overrides(overrides);
        info.pkce = info.capabilities.pkce;
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
            media: MediaLimits::read(&config["media_attachments"]),
            pkce: false,
            software: Software::unknown(),
            capabilities: Capabilities::conservative(),
            probed_at: unix_now(),
        }
    }
}

/// The discovery document of nodeinfo, and the route label of the document it links to.
const NODEINFO_LINKS: Endpoint = Endpoint::NODEINFO_WELL_KNOWN;
const NODEINFO_DOCUMENT: Endpoint = Endpoint::NODEINFO;

/// The software from nodeinfo, or `unknown` when the server serves none (never an error: the
/// conservative capabilities are the answer to not knowing).
async fn read_software(client: &MastodonClient) -> Software {
    let links = match client.get_optional(NODEINFO_LINKS).await {
        Ok(Some(links)) => links,
        Ok(None) => return Software::unknown(),
        Err(e) => {
            tracing::info!(
                code = e.kind.code(),
                "no nodeinfo; the server's software is unknown"
            );
            return Software::unknown();
        }
    };
    let Some(path) = nodeinfo_path(&links) else {
        tracing::info!("nodeinfo links name no usable document; the server's software is unknown");
        return Software::unknown();
    };
    match client.get_path(NODEINFO_DOCUMENT, &path, None).await {
        Ok(doc) => software_of(&doc),
        Err(e) => {
            tracing::info!(
                code = e.kind.code(),
                "the nodeinfo document failed; the server's software is unknown"
            );
            Software::unknown()
        }
    }
}

/// The path of the newest nodeinfo document the links name. Only the path (and query) is kept:
/// it is fetched from the configured instance, never from the host a link names (Takahē's links
/// carry its public domain, and a hostile server could name any host).
fn nodeinfo_path(links: &Value) -> Option<String> {
    let mut best: Option<(String, String)> = None;
    for link in links["links"].as_array()? {
        let rel = link["rel"].as_str().unwrap_or_default();
        let Some(href) = link["href"].as_str() else {
            continue;
        };
        if !rel.starts_with("http://nodeinfo.diaspora.software/ns/schema/") {
            continue;
        }
        let path = match url::Url::parse(href) {
            Ok(url) => match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            },
            // A relative reference: a path on the instance itself.
            Err(_) if href.starts_with('/') && !href.starts_with("//") => href.to_owned(),
            Err(_) => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rel > r.as_str()) {
            best = Some((rel.to_owned(), path));
        }
    }
    best.map(|(_, path)| path)
}

fn software_of(doc: &Value) -> Software {
    let name = doc["software"]["name"]
        .as_str()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n.len() <= 64);
    match name {
        Some(name) => Software {
            name,
            version: doc["software"]["version"]
                .as_str()
                .map(|v| v.chars().take(64).collect()),
        },
        None => Software::unknown(),
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
    fn nodeinfo_is_read_from_the_configured_instance_whatever_host_the_link_names() {
        let links = json!({"links": [
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "https://takahe.test/nodeinfo/2.0/"},
            {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": "https://evil.example/nodeinfo_2_1?x=1"},
            {"rel": "self", "href": "/elsewhere"}]});
        assert_eq!(nodeinfo_path(&links).as_deref(), Some("/nodeinfo_2_1?x=1"));
        let relative = json!({"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "/nodeinfo/2.0"}]});
        assert_eq!(nodeinfo_path(&relative).as_deref(), Some("/nodeinfo/2.0"));
        let protocol_relative = json!({"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": "//evil.example/x"}]});
        assert_eq!(nodeinfo_path(&protocol_relative), None);
        assert_eq!(nodeinfo_path(&json!({})), None);
    }

    #[test]
    fn the_software_name_is_lower_cased_and_bounded() {
        let s = software_of(&json!({"software": {"name": "GoToSocial", "version": "0.20.0-rc1"}}));
        assert_eq!(s.name, "gotosocial");
        assert_eq!(s.version.as_deref(), Some("0.20.0-rc1"));
        assert_eq!(software_of(&json!({"software": {}})), Software::unknown());
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
