//! Read-only REST endpoints: the instance documents (v2 and v1) and
//! `GET /api/v1/accounts/verify_credentials`, as each profile serves them.

use std::sync::atomic::Ordering;

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::entities::{Account, VAPID_KEY};
use crate::http::{self, authorize, Ctx};
use crate::profiles::Profile;
use crate::shapes;
use crate::state::Shared;

const TITLE: &str = "Mastodon Stand-in";
const DESCRIPTION: &str =
    "A stand-in for a Mastodon server, for the sidecar's tests and benchmarks.";

fn account(shared: &Shared) -> Account<'_> {
    Account::new(
        shared,
        shared.statuses_count.load(Ordering::Relaxed),
        shared.last_status_ms.load(Ordering::Relaxed),
    )
}

fn host(shared: &Shared) -> &str {
    shared
        .domain
        .rsplit_once(':')
        .map_or(shared.domain.as_str(), |(h, _)| h)
}

fn statuses_config(shared: &Shared) -> Value {
    let o = &shared.opts;
    let mut v = json!({
        "max_characters": o.max_characters,
        "max_media_attachments": o.max_media_attachments,
        "characters_reserved_per_url": o.characters_reserved_per_url,
    });
    // Mitra advertises no URL weighting at all.
    if o.profile == Profile::Mitra {
        if let Value::Object(m) = &mut v {
            m.remove("characters_reserved_per_url");
        }
    }
    v
}

/// The `domain` (v2) / `uri` (v1): Mitra leaves the port out.
fn domain(shared: &Shared) -> &str {
    match shared.opts.profile {
        Profile::Mitra => host(shared),
        _ => &shared.domain,
    }
}

/// The MIME types uploads may have.
pub const SUPPORTED_MIME_TYPES: [&str; 28] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/heic",
    "image/heif",
    "image/webp",
    "image/avif",
    "video/webm",
    "video/mp4",
    "video/quicktime",
    "video/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wave",
    "audio/vnd.wave",
    "audio/ogg",
    "audio/vorbis",
    "audio/mpeg",
    "audio/mp3",
    "audio/webm",
    "audio/flac",
    "audio/aac",
    "audio/m4a",
    "audio/x-m4a",
    "audio/mp4",
    "audio/3gpp",
    "video/x-ms-asf",
];

/// `configuration.media_attachments`, from the options the upload route enforces.
fn media_config(shared: &Shared) -> Value {
    let o = &shared.opts;
    json!({
        "supported_mime_types": SUPPORTED_MIME_TYPES,
        "description_limit": o.description_limit,
        "image_size_limit": o.image_size_limit,
        "image_matrix_limit": o.image_matrix_limit,
        "video_size_limit": o.video_size_limit,
        "video_frame_rate_limit": o.video_frame_rate_limit,
        "video_matrix_limit": o.video_matrix_limit,
    })
}

fn polls_config(shared: &Shared) -> Value {
    if shared.opts.profile == Profile::Mitra {
        return json!({
            "max_options": 20,
            "max_characters_per_option": 1000,
            "min_expiration": 0,
            "max_expiration": 1_u64 << 30,
        });
    }
    json!({
        "max_options": crate::statuses::POLL_MAX_OPTIONS,
        "max_characters_per_option": crate::statuses::POLL_MAX_CHARS,
        "min_expiration": crate::statuses::POLL_MIN_EXPIRATION,
        "max_expiration": crate::statuses::POLL_MAX_EXPIRATION,
    })
}

fn rules() -> Value {
    json!([
        {"id": "1", "text": "Be excellent to each other.", "hint": ""},
        {"id": "2", "text": "No spam: automated posts are for tests only.", "hint": ""},
    ])
}

/// The Instance (v2) document.
pub fn instance_v2(shared: &Shared) -> Value {
    let base = &shared.base;
    let domain = &shared.domain;
    let mut doc = json!({
        "domain": self::domain(shared),
        "title": TITLE,
        "version": shared.opts.version,
        "source_url": "https://github.com/mastodon/mastodon",
        "description": DESCRIPTION,
        "usage": {"users": {"active_month": 1}},
        "thumbnail": {
            "url": format!("{base}/packs/media/images/preview-6399aebd96ccf025654e2977454f168f.png"),
            "blurhash": "UeKUpFxuo~R%0nW;WCnhF6RjaJt757oJodS$",
            "versions": {
                "@1x": format!("{base}/packs/media/images/preview-6399aebd96ccf025654e2977454f168f.png"),
                "@2x": format!("{base}/packs/media/images/preview-6399aebd96ccf025654e2977454f168f.png"),
            },
        },
        "icon": [
            {"src": format!("{base}/packs/media/icons/android-chrome-36x36.png"), "size": "36x36"},
            {"src": format!("{base}/packs/media/icons/android-chrome-192x192.png"), "size": "192x192"},
        ],
        "languages": ["en"],
        "configuration": {
            "urls": {
                "streaming": format!("ws://{domain}"),
                "status": null,
                "about": format!("{base}/about"),
                "privacy_policy": format!("{base}/privacy-policy"),
                "terms_of_service": null,
            },
            "vapid": {"public_key": VAPID_KEY},
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": shared.opts.max_pinned_statuses},
            "statuses": statuses_config(shared),
            "media_attachments": media_config(shared),
            "polls": polls_config(shared),
            "translation": {"enabled": false},
        },
        "registrations": {
            "enabled": false,
            "approval_required": false,
            "message": null,
            "url": null,
        },
        "api_versions": {"mastodon": 2},
        "contact": {
            "email": format!("admin@{}", host(shared)),
            "account": account(shared),
        },
        "rules": rules(),
    });
    if shared.opts.profile == Profile::Mitra {
        doc["limits"] = json!({"posts": {"character_limit": shared.opts.max_characters}});
    }
    doc
}

/// `GET /api/v2/instance`: a 404 on servers that only have v1 (snac, old Mastodon); Takahē
/// answers a 500 page and Hollo a text/plain 404 until an admin has set them up.
pub fn get_instance_v2(ctx: &Ctx<'_>) -> HttpResponse {
    let opts = &ctx.shared.opts;
    match opts.profile {
        Profile::Takahe if !opts.set_up => return shapes::takahe_page(500),
        Profile::Hollo if !opts.set_up => return shapes::not_found(Profile::Hollo),
        _ if !opts.v2_instance => return shapes::not_found(opts.profile),
        _ => {}
    }
    http::json_value(200, &instance_v2(ctx.shared))
}

/// `GET /api/v1/instance`: `configuration` on 4.x, `max_toot_chars` on old servers and forks.
pub fn get_instance_v1(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let base = &shared.base;
    let domain = &shared.domain;
    let mut doc = json!({
        "uri": self::domain(shared),
        "title": TITLE,
        "short_description": DESCRIPTION,
        "description": DESCRIPTION,
        "email": format!("admin@{}", host(shared)),
        "version": shared.opts.version,
        "urls": {"streaming_api": format!("ws://{domain}")},
        "stats": {
            "user_count": 1,
            "status_count": shared.statuses_count.load(Ordering::Relaxed),
            "domain_count": 0,
        },
        "thumbnail": format!("{base}/packs/media/images/preview-6399aebd96ccf025654e2977454f168f.png"),
        "languages": ["en"],
        "registrations": false,
        "approval_required": false,
        "invites_enabled": false,
    });
    if let Value::Object(o) = &mut doc {
        // Old Mastodon (no v2) and its forks say `max_toot_chars`; snac's v1 is its only
        // document and carries the configuration.
        if shared.opts.v2_instance || shared.opts.profile != Profile::Mastodon {
            o.insert(
                "configuration".into(),
                json!({
                    "accounts": {"max_featured_tags": 10},
                    "statuses": statuses_config(shared),
                    "media_attachments": media_config(shared),
                    "polls": polls_config(shared),
                }),
            );
        } else {
            o.insert("max_toot_chars".into(), shared.opts.max_characters.into());
        }
        o.insert(
            "contact_account".into(),
            serde_json::to_value(account(shared)).unwrap_or(Value::Null),
        );
        o.insert("rules".into(), rules());
    }
    http::json_value(200, &doc)
}

/// `GET /api/v1/accounts/verify_credentials`: a user token with `profile`, `read` or
/// `read:accounts`.
pub fn verify_credentials(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["profile", "read", "read:accounts"], true) {
        return denied.response(ctx);
    }
    match serde_json::to_vec(&account(ctx.shared).with_source()) {
        Ok(body) => http::json(200, body),
        Err(_) => http::error(500, "Internal server error"),
    }
}
