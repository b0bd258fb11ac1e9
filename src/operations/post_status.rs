//! `postStatus`: publish (or schedule) a status, once.
//!
//! What the server would refuse is refused here first, against the limits the server itself
//! published (never a hard-coded 500). Every post carries an `Idempotency-Key`: the caller's, or one
//! derived from the correlation id and the status's parameters, so an ESB that retries the same
//! message posts it once, while different statuses in one flow still post separately.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::context::{object, Core};
use super::status_length::countable_length;
use super::{params, CallContext};
use crate::error::{Error, Result};
use crate::mastodon::{Endpoint, InstanceInfo};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostStatusParams {
    #[serde(default, deserialize_with = "params::opt_string")]
    pub connection: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "params::opt_list")]
    pub media_ids: Option<Vec<String>>,
    #[serde(default)]
    pub poll: Option<PollParams>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub in_reply_to_id: Option<String>,
    #[serde(default, deserialize_with = "params::opt_bool")]
    pub sensitive: Option<bool>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub spoiler_text: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub visibility: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub scheduled_at: Option<String>,
    #[serde(default, deserialize_with = "params::opt_string")]
    pub idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollParams {
    #[serde(default, deserialize_with = "params::opt_list")]
    pub options: Option<Vec<String>>,
    #[serde(default, deserialize_with = "params::opt_u64")]
    pub expires_in: Option<u64>,
    #[serde(default, deserialize_with = "params::opt_bool")]
    pub multiple: Option<bool>,
    #[serde(default, deserialize_with = "params::opt_bool")]
    pub hide_totals: Option<bool>,
}

const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

pub async fn post_status(core: &Core, p: PostStatusParams, call: &CallContext) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    // Fail fast without a (working) token, before probing anything.
    let token = core.require_user_token(&conn).await?;
    let info = core.instance_info_if_known(&conn).await;
    let body = validated_body(&p, info.as_ref())?;
    let key = match &p.idempotency_key {
        Some(key) if key.len() > 256 => {
            return Err(Error::invalid("idempotency_key is at most 256 characters"))
        }
        Some(key) => key.clone(),
        None => derived_idempotency_key(&conn.name, &call.correlation_id, &body),
    };
    let client = &conn.client;
    core.use_user_token(&conn, token, |token| async move {
        client
            .post_json(
                Endpoint::POST_STATUS,
                Some(&token),
                &body,
                &[("Idempotency-Key", key)],
            )
            .await
    })
    .await
}

/// Checks the parameters against Mastodon's rules and the server's limits, and builds the JSON body.
fn validated_body(p: &PostStatusParams, info: Option<&InstanceInfo>) -> Result<Value> {
    let status = p.status.as_deref().unwrap_or("");
    let media = p.media_ids.as_deref().unwrap_or(&[]);
    if status.trim().is_empty() && media.is_empty() {
        return Err(Error::validation(
            "the status is blank: give `status` text, or `media_ids`",
        ));
    }
    if !media.is_empty() && p.poll.is_some() {
        return Err(Error::validation(
            "a status carries media_ids or a poll, not both",
        ));
    }
    if let Some(id) = media.iter().find(|id| id.trim().is_empty()) {
        return Err(Error::validation(format!("media id {id:?} is blank")));
    }
    if let Some(visibility) = &p.visibility {
        // Forks (Akkoma, Pleroma, GoToSocial) add their own visibilities; only stock Mastodon is held
        // to its four. Their version string says "compatible".
        let stock = info
            .and_then(|i| i.version.as_deref())
            .is_none_or(|v| !v.contains("compatible"));
        if stock && !VISIBILITIES.contains(&visibility.as_str()) {
            return Err(Error::validation(format!(
                "visibility {visibility:?} is not one of {}",
                VISIBILITIES.join(", ")
            )));
        }
    }
    if let Some(info) = info {
        if let Some(max) = info.max_characters {
            let spoiler = p.spoiler_text.as_deref().unwrap_or("");
            let length = countable_length(spoiler, status, info.characters_reserved_per_url);
            if length > max {
                return Err(Error::validation(format!(
                    "the status is {length} characters (spoiler_text included, each URL counting {}); {} allows {max}",
                    info.characters_reserved_per_url,
                    info.domain.as_deref().unwrap_or("the server"),
                )));
            }
        }
        if let Some(max) = info.max_media_attachments {
            if media.len() as u64 > max {
                return Err(Error::validation(format!(
                    "{} media_ids given; the server allows {max} per status",
                    media.len()
                )));
            }
        }
    }
    let poll = match &p.poll {
        None => None,
        Some(poll) => Some(validated_poll(poll, info)?),
    };
    Ok(object([
        ("status", p.status.clone().map(Value::from)),
        ("media_ids", (!media.is_empty()).then(|| json!(media))),
        ("poll", poll),
        ("in_reply_to_id", p.in_reply_to_id.clone().map(Value::from)),
        ("sensitive", p.sensitive.map(Value::from)),
        ("spoiler_text", p.spoiler_text.clone().map(Value::from)),
        ("visibility", p.visibility.clone().map(Value::from)),
        ("language", p.language.clone().map(Value::from)),
        ("scheduled_at", p.scheduled_at.clone().map(Value::from)),
    ]))
}

fn validated_poll(poll: &PollParams, info: Option<&InstanceInfo>) -> Result<Value> {
    let options = poll.options.as_deref().unwrap_or(&[]);
    if options.len() < 2 {
        return Err(Error::validation("a poll needs at least two options"));
    }
    if options.iter().any(|o| o.trim().is_empty()) {
        return Err(Error::validation("a poll option is blank"));
    }
    let expires_in = poll
        .expires_in
        .ok_or_else(|| Error::validation("a poll needs expires_in, in seconds"))?;
    if let Some(info) = info {
        if let Some(max) = info.poll_max_options {
            if options.len() as u64 > max {
                return Err(Error::validation(format!(
                    "{} poll options given; the server allows {max}",
                    options.len()
                )));
            }
        }
        if let Some(min) = info.poll_min_expiration.filter(|min| expires_in < *min) {
            return Err(Error::validation(format!(
                "poll expires_in is {expires_in} s; the server's minimum is {min} s"
            )));
        }
        if let Some(max) = info.poll_max_expiration.filter(|max| expires_in > *max) {
            return Err(Error::validation(format!(
                "poll expires_in is {expires_in} s; the server's maximum is {max} s"
            )));
        }
    }
    Ok(object([
        ("options", Some(json!(options))),
        ("expires_in", Some(json!(expires_in))),
        ("multiple", poll.multiple.map(Value::from)),
        ("hide_totals", poll.hide_totals.map(Value::from)),
    ]))
}

/// The same message (same correlation id, same parameters) always gets the same key; anything else
/// gets another. Mastodon keeps keys for an hour per account.
fn derived_idempotency_key(connection: &str, correlation_id: &str, body: &Value) -> String {
    let mut hash = Sha256::new();
    for part in [connection, correlation_id, &body.to_string()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("sidecar-{}", &hex::encode(hash.finalize())[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> PostStatusParams {
        serde_json::from_value(v).unwrap()
    }

    fn info(max: u64) -> InstanceInfo {
        InstanceInfo::from_v2(
            "https://m.example",
            &json!({"domain": "m.example", "version": "4.3.2", "configuration": {
                "statuses": {"max_characters": max, "max_media_attachments": 4, "characters_reserved_per_url": 23},
                "polls": {"max_options": 4, "min_expiration": 300, "max_expiration": 2629746}}}),
        )
    }

    #[test]
    fn the_servers_own_limit_decides_the_length() {
        let long = params(json!({"status": "x".repeat(600)}));
        assert!(validated_body(&long, Some(&info(500))).is_err());
        assert!(validated_body(&long, Some(&info(5000))).is_ok());
        // Unknown limits leave the check to the server.
        assert!(validated_body(&long, None).is_ok());
    }

    #[test]
    fn blank_statuses_and_bad_polls_are_refused() {
        assert!(validated_body(&params(json!({"status": "  "})), None).is_err());
        assert!(validated_body(&params(json!({"media_ids": "1"})), None).is_ok());
        let poll = params(json!({"status": "q", "poll": {"options": ["a"], "expires_in": 600}}));
        assert!(validated_body(&poll, None).is_err());
        let poll =
            params(json!({"status": "q", "poll": {"options": ["a", "b"], "expires_in": "60"}}));
        assert!(validated_body(&poll, Some(&info(500))).is_err());
        let both = params(
            json!({"status": "q", "media_ids": ["1"], "poll": {"options": ["a", "b"], "expires_in": 600}}),
        );
        assert!(validated_body(&both, None).is_err());
    }

    #[test]
    fn the_body_keeps_types_mastodon_expects() {
        let p = params(
            json!({"status": "hi", "sensitive": "true", "media_ids": "7",
            "poll": null, "visibility": "unlisted"}),
        );
        let body = validated_body(&p, None).unwrap();
        assert_eq!(
            body,
            json!({"status": "hi", "media_ids": ["7"], "sensitive": true, "visibility": "unlisted"})
        );
    }

    #[test]
    fn derived_keys_differ_by_message_and_repeat_for_the_same_one() {
        let a = json!({"status": "a"});
        let b = json!({"status": "b"});
        assert_eq!(
            derived_idempotency_key("main", "c1", &a),
            derived_idempotency_key("main", "c1", &a)
        );
        assert_ne!(
            derived_idempotency_key("main", "c1", &a),
            derived_idempotency_key("main", "c1", &b)
        );
        assert_ne!(
            derived_idempotency_key("main", "c1", &a),
            derived_idempotency_key("main", "c2", &a)
        );
    }
}
