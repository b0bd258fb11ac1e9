//! `postStatus`: publish (or schedule) a status, once, and as asked.
//!
//! What the server would refuse is refused here first, against the limits the server itself
//! published (never a hard-coded 500) and the rule its software counts by; a limit that would refuse
//! is read again once first. What the server is known to drop or change (its capabilities:
//! scheduling, Mitra's `unlisted` and `spoiler_text`, Takahē's `language`) is refused before
//! sending, with what to do; whatever else it drops is found in its answer and reported
//! (`upstream_ignored`). The body goes as a form with bracket keys, which every server reads.
//! Sending, and exactly-once, live in `post_once.rs`. Every post carries a key: the caller's, or
//! one derived from the connection, the correlation id and the parameters, so an ESB that retries
//! the same message posts it once, while different statuses in one flow still post separately.

use super::params::{params, HeaderText};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::context::{object, Core};
use super::media;
use super::post_once::{post_once, Post};
use super::status_length::countable_length;
use super::status_match::Expected;
use super::CallContext;
use crate::error::{Error, Result};
use crate::mastodon::{InstanceInfo, LengthRule};

params! {
    pub struct PostStatusParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The text (required unless media_ids or poll is given)
        pub status: Option<String>,
        /// Ids of attachments uploaded already
        pub media_ids: Option<Vec<String>>,
        /// Files to upload first and attach (after media_ids), each with its alt text
        pub media: Option<Vec<super::media::MediaItem>>,
        /// A poll instead of media
        pub poll: Option<PollParams>,
        /// The id of the status this one replies to
        pub in_reply_to_id: Option<String>,
        /// Mark the media as sensitive
        pub sensitive: Option<bool>,
        /// A content warning shown instead of the text
        pub spoiler_text: Option<String>,
        /// public, unlisted, private or direct
        pub visibility: Option<String>,
        /// The language of the status (ISO 639-1)
        pub language: Option<String>,
        /// When to publish (ISO 8601, at least 5 minutes ahead): answers a ScheduledStatus
        pub scheduled_at: Option<String>,
        /// Makes a retried post post once (derived from the correlation id when absent)
        pub idempotency_key: Option<HeaderText>,
        /// GoToSocial and Mitra: text/plain, text/markdown or text/html
        pub content_type: Option<String>,
        /// GoToSocial: keep the status on this server, not federated
        pub local_only: Option<bool>,
    }
}

params! {
    pub struct PollParams {
        /// The choices, at least two
        pub options: Option<Vec<String>>,
        /// Seconds until the poll closes
        pub expires_in: Option<u64>,
        /// Allow more than one choice
        pub multiple: Option<bool>,
        /// Hide the counts until the poll closes
        pub hide_totals: Option<bool>,
    }
}

const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

/// The longest `idempotency_key` taken.
const MAX_KEY_LEN: usize = 256;

pub async fn post_status(
    core: &Core,
    mut p: PostStatusParams,
    call: &CallContext,
) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    // Fail fast without a (working) token, before probing anything.
    let token = core.require_user_token(&conn).await?;
    let caller_key = checked_key(p.idempotency_key.as_ref().map(|k| k.0.as_str()))?;
    let mut info = core.instance_info_if_known(&conn).await;
    let body = match validated_body(&p, info.as_ref()) {
        // A limit read a while ago may have been raised since: read it again once before refusing
        // (not when it was just read, so refused posts do not become a probe each).
        Err(e)
            if e.detail.contains(LIMIT_REFUSAL)
                && info.as_ref().is_some_and(|i| {
                    crate::mastodon::unix_now() - i.probed_at > LIMIT_RECHECK_AFTER_S
                }) =>
        {
            info = core.refresh_instance_info(&conn).await.ok();
            validated_body(&p, info.as_ref())?
        }
        other => other?,
    };
    if let Some(info) = &info {
        refuse_what_the_server_drops(&p, info)?;
    }
    // Every file is checked against the server's limits and encoded before anything is sent; the
    // base64 texts are let go once encoded.
    let uploads = match p.media.take() {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .map(|item| media::encode(&item.file()?, info.as_ref().map(|i| &i.media)))
            .collect::<Result<Vec<_>>>()?,
    };
    let key = match caller_key {
        Some(key) => key.to_owned(),
        None if uploads.is_empty() => {
            derived_idempotency_key(&conn.name, &call.correlation_id, &body)
        }
        // The files are part of what the message asks: a different file is a different post.
        None => {
            let mut asked = body.clone();
            asked["media"] = uploads
                .iter()
                .map(|u| Value::from(u.fingerprint.as_str()))
                .collect();
            derived_idempotency_key(&conn.name, &call.correlation_id, &asked)
        }
    };
    // Uploaded first, each once per message (a retried message reuses them), then posted with
    // the ids the server gave.
    let body = if uploads.is_empty() {
        body
    } else {
        let mut ids = p.media_ids.take().unwrap_or_default();
        for (i, encoded) in uploads.into_iter().enumerate() {
            let upload_key = media::upload_key(&conn.name, &key, &i.to_string(), &encoded);
            let (attachment, processed) = media::upload(core, &conn, &upload_key, &encoded).await?;
            let id = super::status_match::id_text(&attachment["id"]).unwrap_or_default();
            if !processed {
                return Err(media::still_processing(&id));
            }
            ids.push(id);
        }
        p.media_ids = Some(ids);
        validated_body(&p, info.as_ref())?
    };
    let fingerprint = fingerprint(&body);
    let expected = expected(&p);
    let post = Post {
        conn: &conn,
        key: &key,
        header_key: header_key(&key),
        fingerprint,
        body: &body,
        expected: &expected,
    };
    post_once(core, &post, token).await
}

/// The caller's key, checked: it goes into the ledger, so it is bounded (control characters were
/// refused when it was read: it goes into a header, see [`HeaderText`]).
fn checked_key(key: Option<&str>) -> Result<Option<&str>> {
    let Some(key) = key else { return Ok(None) };
    if key.chars().count() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "idempotency_key is at most {MAX_KEY_LEN} characters"
        )));
    }
    Ok(Some(key))
}

/// The header form of a key: as it is when it is printable ASCII, else a hash of it (a header
/// cannot carry other bytes; the ledger keeps the key itself).
fn header_key(key: &str) -> String {
    if key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        key.to_owned()
    } else {
        format!(
            "sidecar-{}",
            &hex::encode(Sha256::digest(key.as_bytes()))[..40]
        )
    }
}

fn fingerprint(body: &Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

fn expected(p: &PostStatusParams) -> Expected {
    Expected {
        status: p.status.clone().unwrap_or_default(),
        spoiler_text: p.spoiler_text.clone(),
        visibility: p.visibility.clone(),
        in_reply_to_id: p.in_reply_to_id.clone(),
        poll_options: p.poll.as_ref().and_then(|poll| poll.options.clone()),
        media_count: p.media_ids.as_ref().map_or(0, Vec::len),
        language: p.language.clone(),
        sensitive: p.sensitive,
        scheduled: p.scheduled_at.is_some(),
    }
}

/// Refuses, before anything is sent, what this server's software is known to drop or change with
/// a 200. Servers nobody described are not refused anything: their answer is checked instead.
fn refuse_what_the_server_drops(p: &PostStatusParams, info: &InstanceInfo) -> Result<()> {
    let caps = &info.capabilities;
    let name = info.software.display();
    let known = info.software.name != "unknown";
    let refuse = |what: String| Err(Error::validation(what));
    if p.scheduled_at.is_some() && !caps.scheduling {
        return refuse(format!(
            "{name} ignores scheduled_at and would publish the status at once; post it at the time instead"
        ));
    }
    if p.spoiler_text
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
        && !caps.spoiler_text
    {
        return refuse(format!(
            "{name} drops spoiler_text (the content warning); leave it out, or put the warning in the text"
        ));
    }
    if let Some(visibility) = &p.visibility {
        if known && !caps.keeps_visibility(visibility) {
            let mut kept: Vec<&str> = VISIBILITIES
                .into_iter()
                .filter(|v| caps.keeps_visibility(v))
                .collect();
            kept.extend(caps.extra_visibilities.iter().map(String::as_str));
            return refuse(format!(
                "{name} does not keep visibility {visibility:?} (it would store another); it keeps {}",
                kept.join(", ")
            ));
        }
    }
    if p.language.is_some() && !caps.language {
        return refuse(format!(
            "{name} does not keep `language` (it would store its own); leave it out"
        ));
    }
    for (param, given) in [
        ("content_type", p.content_type.is_some()),
        ("local_only", p.local_only.is_some()),
    ] {
        if given && known && !caps.extra_status_params.iter().any(|x| x == param) {
            return refuse(format!(
                "{name} does not take `{param}` (GoToSocial and Mitra do); leave it out"
            ));
        }
    }
    Ok(())
}

/// A cached limit older than this is read again before it refuses a post.
const LIMIT_RECHECK_AFTER_S: i64 = 30;

/// Marks a refusal that came from a cached limit, so the limit can be read again once.
const LIMIT_REFUSAL: &str = "the server's limit";

/// Checks the parameters against Mastodon's rules and the server's limits, and builds the body.
fn validated_body(p: &PostStatusParams, info: Option<&InstanceInfo>) -> Result<Value> {
    let status = p.status.as_deref().unwrap_or("");
    let media = p.media_ids.as_deref().unwrap_or(&[]);
    let attachments = media.len() + p.media.as_ref().map_or(0, Vec::len);
    if status.trim().is_empty() && attachments == 0 {
        return Err(Error::validation(
            "the status is blank: give `status` text, `media_ids` or `media`",
        ));
    }
    if attachments > 0 && p.poll.is_some() {
        return Err(Error::validation(
            "a status carries media (media_ids, media) or a poll, not both",
        ));
    }
    if let Some(id) = media.iter().find(|id| id.trim().is_empty()) {
        return Err(Error::validation(format!("media id {id:?} is blank")));
    }
    if let Some(visibility) = &p.visibility {
        // Other servers add their own visibilities: only a server known to be Mastodon is held to
        // its four (the others are checked against their capabilities, or left to the server).
        let stock = info.is_some_and(|i| i.software.name == "mastodon");
        if stock && !VISIBILITIES.contains(&visibility.as_str()) {
            return Err(Error::validation(format!(
                "visibility {visibility:?} is not one of {}",
                VISIBILITIES.join(", ")
            )));
        }
    }
    if let Some(info) = info {
        check_length(p, status, info)?;
        if let Some(max) = info.max_media_attachments {
            if attachments as u64 > max {
                return Err(Error::validation(format!(
                    "{attachments} attachments given (media_ids and media); {LIMIT_REFUSAL} is {max} per status"
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
        ("content_type", p.content_type.clone().map(Value::from)),
        ("local_only", p.local_only.map(Value::from)),
    ]))
}

/// The length as this server's software counts it; a server whose rule is unknown, or that does
/// not enforce its limit, decides for itself.
fn check_length(p: &PostStatusParams, status: &str, info: &InstanceInfo) -> Result<()> {
    let Some(max) = info.max_characters else {
        return Ok(());
    };
    let spoiler = p.spoiler_text.as_deref().unwrap_or("");
    let url_cost = info.characters_reserved_per_url;
    let (length, how) = match info.capabilities.length_rule {
        LengthRule::Mastodon => (
            countable_length(spoiler, status, url_cost),
            format!("spoiler_text included, each URL counting {url_cost}"),
        ),
        LengthRule::CodePoints => (
            (spoiler.chars().count() + status.chars().count()) as u64,
            "code points, spoiler_text included, URLs at full length".to_owned(),
        ),
        LengthRule::StatusOnly => (
            status.chars().count() as u64,
            "code points of the text, URLs at full length".to_owned(),
        ),
        LengthRule::NotEnforced | LengthRule::Unknown => return Ok(()),
    };
    if length > max {
        return Err(Error::validation(format!(
            "the status is {length} characters as {} counts them ({how}); {LIMIT_REFUSAL} is {max}",
            info.software.display()
        )));
    }
    Ok(())
}

/// The poll against the server's advertised limits, as the body's `poll` object.
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
                    "{} poll options given; {LIMIT_REFUSAL} is {max}",
                    options.len()
                )));
            }
        }
        if let Some(min) = info.poll_min_expiration.filter(|min| expires_in < *min) {
            return Err(Error::validation(format!(
                "poll expires_in is {expires_in} s; {LIMIT_REFUSAL} is at least {min} s"
            )));
        }
        if let Some(max) = info.poll_max_expiration.filter(|max| expires_in > *max) {
            return Err(Error::validation(format!(
                "poll expires_in is {expires_in} s; {LIMIT_REFUSAL} is at most {max} s"
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

/// The same message (same connection, correlation id and parameters) always gets the same key;
/// anything else gets another. The correlation id is the caller's identity for the message, kept
/// whatever its bytes (see `telemetry::correlation_id`).
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
    use crate::mastodon::{Capabilities, Software};

    fn params(v: Value) -> PostStatusParams {
        serde_json::from_value(v).unwrap()
    }

    fn info(max: u64) -> InstanceInfo {
        let mut info = InstanceInfo::from_v2(
            "https://m.example",
            &json!({"domain": "m.example", "version": "4.3.2", "configuration": {
                "statuses": {"max_characters": max, "max_media_attachments": 4, "characters_reserved_per_url": 23},
                "polls": {"max_options": 4, "min_expiration": 300, "max_expiration": 2629746}}}),
        );
        info.software = Software {
            name: "mastodon".into(),
            version: Some("4.3.2".into()),
        };
        info.capabilities = Capabilities::mastodon();
        info
    }

    fn info_of(software: &str, max: u64) -> InstanceInfo {
        let mut info = info(max);
        info.software.name = software.into();
        info.capabilities = Capabilities::for_software(software);
        info
    }

    #[test]
    fn each_software_counts_length_its_own_way() {
        let url = format!("https://example.org/{}", "a".repeat(100));
        let with_url = params(json!({"status": format!("{} {url}", "x".repeat(400))}));
        // Mastodon counts the URL as 23: 424 fits 500. GoToSocial counts it whole: 520 does not.
        assert!(validated_body(&with_url, Some(&info_of("mastodon", 500))).is_ok());
        assert!(validated_body(&with_url, Some(&info_of("gotosocial", 500))).is_err());
        // Takahē does not count the content warning.
        let cw = params(json!({"status": "x".repeat(400), "spoiler_text": "y".repeat(200)}));
        assert!(validated_body(&cw, Some(&info_of("takahe", 500))).is_ok());
        assert!(validated_body(&cw, Some(&info_of("mastodon", 500))).is_err());
        // Hollo and Mitra do not enforce what they advertise; unknown software decides itself.
        let long = params(json!({"status": "x".repeat(20_000)}));
        for software in ["hollo", "mitra", "friendica"] {
            assert!(
                validated_body(&long, Some(&info_of(software, 5000))).is_ok(),
                "{software}"
            );
        }
    }

    #[test]
    fn what_a_server_would_drop_is_refused_before_sending() {
        let unlisted = params(json!({"status": "a", "visibility": "unlisted"}));
        assert!(refuse_what_the_server_drops(&unlisted, &info_of("mitra", 5000)).is_err());
        assert!(refuse_what_the_server_drops(&unlisted, &info_of("mastodon", 500)).is_ok());
        let cw = params(json!({"status": "a", "spoiler_text": "cw"}));
        assert!(refuse_what_the_server_drops(&cw, &info_of("mitra", 5000)).is_err());
        let later = params(json!({"status": "a", "scheduled_at": "2030-01-01T00:00:00Z"}));
        for software in ["takahe", "hollo", "mitra"] {
            let e = refuse_what_the_server_drops(&later, &info_of(software, 500)).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::ValidationFailed);
        }
        assert!(refuse_what_the_server_drops(&later, &info_of("mastodon", 500)).is_ok());
        let mutuals = params(json!({"status": "a", "visibility": "mutuals_only"}));
        assert!(refuse_what_the_server_drops(&mutuals, &info_of("gotosocial", 500)).is_ok());
        assert!(validated_body(&mutuals, Some(&info_of("gotosocial", 500))).is_ok());
        assert!(validated_body(&mutuals, Some(&info_of("mastodon", 500))).is_err());
        let markdown = params(json!({"status": "a", "content_type": "text/markdown"}));
        assert!(refuse_what_the_server_drops(&markdown, &info_of("gotosocial", 500)).is_ok());
        assert!(refuse_what_the_server_drops(&markdown, &info_of("mastodon", 500)).is_err());
        // Unknown software is refused nothing: its answer is checked instead.
        assert!(refuse_what_the_server_drops(&unlisted, &info_of("friendica", 500)).is_ok());
    }

    #[test]
    fn keys_with_control_characters_are_refused_and_others_fit_a_header() {
        for bad in ["a\r\nX-Evil: 1", "nul\0", "tab\t", "del\u{7f}", "c1\u{85}"] {
            let e = crate::operations::check_parameters(
                crate::operations::Operation::PostStatus,
                json!({"status": "s", "idempotency_key": bad}),
            )
            .expect_err(bad);
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidRequest);
            assert!(e.detail.contains("`idempotency_key`"), "{}", e.detail);
            assert!(e.detail.contains("control character"), "{}", e.detail);
        }
        assert!(checked_key(Some(&"k".repeat(257))).is_err());
        assert_eq!(header_key("order-1042"), "order-1042");
        let hashed = header_key("caf\u{e9}");
        assert!(hashed.starts_with("sidecar-") && hashed.is_ascii());
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
