//! `POST /api/v1/statuses`, in the order Mastodon works: token and scope checks, the reply
//! target (`set_thread`), the `Idempotency-Key`, media and poll checks, scheduling, the
//! Status validations, and finally the post.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::entities::{self, Account, AppRef, Poll, Status, Tag, ACCOUNT_ID, USERNAME};
use crate::http::{self, authorize, Ctx};
use crate::params::{boolean, list, text};
use crate::state::{lock, IDEMPOTENCY_TTL};
use crate::{text as status_text, time};

pub const POLL_MAX_OPTIONS: usize = 4;
pub const POLL_MAX_CHARS: usize = 50;
pub const POLL_MIN_EXPIRATION: i64 = 300;
pub const POLL_MAX_EXPIRATION: i64 = 2_629_746;
/// Scheduled posts must be at least this far ahead.
const MIN_SCHEDULE_OFFSET_MS: i64 = 5 * 60 * 1000;
const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

fn blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Ruby's `String#to_i`: the leading integer, 0 when there is none.
fn to_i(s: &str) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// A posting language Mastodon would keep (`en`, `fil`, `pt-BR`); others fall back to `en`.
fn language(given: Option<String>) -> String {
    given
        .filter(|l| {
            let (lang, region) = l.split_once('-').unwrap_or((l, ""));
            (2..=3).contains(&lang.len())
                && lang.chars().all(|c| c.is_ascii_lowercase())
                && (region.is_empty()
                    || (region.len() == 2 && region.chars().all(|c| c.is_ascii_uppercase())))
        })
        .unwrap_or_else(|| "en".to_owned())
}

struct PollParams {
    options: Vec<String>,
    expires_in: Option<i64>,
    multiple: bool,
    hide_totals: bool,
}

fn poll_params(poll: &Value) -> PollParams {
    PollParams {
        options: list(poll, "options").unwrap_or_default(),
        expires_in: text(poll, "expires_in")
            .filter(|s| !s.trim().is_empty())
            .map(|s| to_i(&s)),
        multiple: boolean(poll, "multiple").unwrap_or(false),
        hide_totals: boolean(poll, "hide_totals").unwrap_or(false),
    }
}

/// `PollValidator`'s messages, as nested-attribute errors of the Status.
fn poll_errors(poll: &PollParams, errors: &mut Vec<String>) {
    if poll.options.len() < 2 {
        errors.push("Poll options must have more than one item".into());
    } else if poll.options.len() > POLL_MAX_OPTIONS {
        errors.push(format!(
            "Poll options can't contain more than {POLL_MAX_OPTIONS} items"
        ));
    }
    if poll
        .options
        .iter()
        .any(|o| o.chars().count() > POLL_MAX_CHARS)
    {
        errors.push(format!(
            "Poll options cannot be longer than {POLL_MAX_CHARS} characters each"
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for o in &poll.options {
        let o = o.trim();
        if seen.contains(&o) {
            errors.push("Poll options must not contain duplicate items".into());
            break;
        }
        seen.push(o);
    }
    match poll.expires_in {
        None => errors.push("Poll expires at is too far into the future".into()),
        Some(s) if s > POLL_MAX_EXPIRATION => {
            errors.push("Poll expires at is too far into the future".into())
        }
        Some(s) if s < POLL_MIN_EXPIRATION => errors.push("Poll expires at is too soon".into()),
        Some(_) => {}
    }
}

/// `POST /api/v1/statuses`.
pub fn post_status(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize(ctx, &["write", "write:statuses"], true) {
        Ok(t) => t,
        Err(denied) => return denied.response(),
    };
    let shared = ctx.shared;
    let opts = &shared.opts;
    let p = ctx.params;

    // `set_thread`, then the idempotency replay.
    let in_reply_to = text(p, "in_reply_to_id").filter(|s| !s.trim().is_empty());
    let idempotency = ctx
        .req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    if in_reply_to.is_some() || idempotency.is_some() {
        let store = lock(&shared.store);
        if let Some(id) = &in_reply_to {
            if !id.parse::<u64>().is_ok_and(|id| store.ids.contains(&id)) {
                return http::error(
                    404,
                    "The post you are trying to reply to does not appear to exist.",
                );
            }
        }
        if let Some(key) = &idempotency {
            if let Some((body, at)) = store.idempotency.get(key) {
                if at.elapsed() < IDEMPOTENCY_TTL {
                    return http::json(200, body.clone());
                }
            }
        }
    }

    let status = text(p, "status").unwrap_or_default().trim().to_owned();
    let media_ids: Vec<String> = list(p, "media_ids")
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .collect();
    let poll = p
        .get("poll")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .map(poll_params);
    if !media_ids.is_empty()
        && (media_ids.len() as u64 > opts.max_media_attachments || poll.is_some())
    {
        return http::error(
            422,
            &format!(
                "Cannot attach more than {} files",
                opts.max_media_attachments
            ),
        );
    }

    let spoiler = text(p, "spoiler_text")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let sensitive = boolean(p, "sensitive").unwrap_or(false) || !spoiler.is_empty();
    let visibility = text(p, "visibility")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "public".to_owned());
    let language = language(text(p, "language"));
    let now = time::now_ms();
    let mut scheduled_at = None;
    if let Some(s) = text(p, "scheduled_at").filter(|s| !s.trim().is_empty()) {
        match time::parse_iso8601(&s) {
            // A time in the past posts at once, as Mastodon does.
            Some(at) if at > now as i64 => scheduled_at = Some(at),
            Some(_) => {}
            None => return http::error(422, "Record invalid"),
        }
    }

    let mut errors: Vec<String> = Vec::new();
    if !VISIBILITIES.contains(&visibility.as_str()) {
        errors.push("Visibility is not included in the list".into());
    }
    if blank(&status) && media_ids.is_empty() {
        errors.push("Text can't be blank".into());
    }
    let combined = format!("{spoiler}{status}");
    if status_text::countable_length(&combined, opts.characters_reserved_per_url)
        > opts.max_characters
    {
        errors.push(format!(
            "Text character limit of {} exceeded",
            opts.max_characters
        ));
    }
    if let Some(poll) = &poll {
        poll_errors(poll, &mut errors);
    }
    if errors.is_empty() && scheduled_at.is_some_and(|at| at <= now as i64 + MIN_SCHEDULE_OFFSET_MS)
    {
        errors.push("Scheduled at The scheduled date must be in the future".into());
    }
    if !errors.is_empty() {
        return http::error(422, &format!("Validation failed: {}", errors.join(", ")));
    }

    let media: Vec<Value> = media_ids
        .iter()
        .map(|id| entities::media_attachment(shared, id))
        .collect();
    let id = shared.next_id();

    if let Some(at) = scheduled_at {
        let body = json!({
            "id": id.to_string(),
            "scheduled_at": time::iso_millis(at as u64),
            "params": {
                "text": status,
                "poll": poll.as_ref().map(|p| json!({
                    "options": p.options,
                    "expires_in": p.expires_in,
                    "multiple": p.multiple,
                    "hide_totals": p.hide_totals,
                })),
                "media_ids": (!media_ids.is_empty()).then_some(&media_ids),
                "sensitive": sensitive,
                "spoiler_text": spoiler,
                "visibility": visibility,
                "language": language,
                "in_reply_to_id": in_reply_to,
                "application_id": token.app.id,
                "scheduled_at": null,
                "idempotency": null,
                "with_rate_limit": false,
            },
            "media_attachments": media,
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        if let Some(key) = idempotency {
            let mut store = lock(&shared.store);
            if let Some((existing, at)) = store.idempotency.get(&key) {
                if at.elapsed() < IDEMPOTENCY_TTL {
                    return http::json(200, existing.clone());
                }
            }
            store
                .idempotency
                .insert(key, (body.clone(), Instant::now()));
        }
        return http::json(200, body);
    }

    let rendered = status_text::render(&status, &shared.base, USERNAME, &shared.domain);
    let statuses_count = shared.statuses_count.fetch_add(1, Ordering::Relaxed) + 1;
    shared.last_status_ms.store(now, Ordering::Relaxed);
    let entity = Status {
        id: id.to_string(),
        created_at: time::iso_millis(now),
        in_reply_to_id: in_reply_to.clone(),
        in_reply_to_account_id: in_reply_to.as_ref().map(|_| ACCOUNT_ID),
        sensitive,
        spoiler_text: &spoiler,
        visibility: &visibility,
        language: &language,
        uri: format!("{}/users/{USERNAME}/statuses/{id}", shared.base),
        url: format!("{}/@{USERNAME}/{id}", shared.base),
        replies_count: 0,
        reblogs_count: 0,
        favourites_count: 0,
        edited_at: None,
        favourited: false,
        reblogged: false,
        muted: false,
        bookmarked: false,
        pinned: false,
        content: rendered.content,
        filtered: entities::none(),
        reblog: None,
        application: AppRef {
            name: &token.app.name,
            website: token.app.website.as_deref(),
        },
        account: Account::new(shared, statuses_count, now),
        media_attachments: media,
        mentions: if rendered.mentions_self {
            vec![entities::self_mention(shared)]
        } else {
            Vec::new()
        },
        tags: rendered
            .tags
            .into_iter()
            .map(|name| Tag {
                url: format!("{}/tags/{name}", shared.base),
                name,
            })
            .collect(),
        emojis: entities::none(),
        card: None,
        poll: poll.map(|p| {
            let expires = now + p.expires_in.unwrap_or(0).max(0) as u64 * 1000;
            Poll::new(shared.next_id(), expires, p.multiple, p.options)
        }),
    };
    let body = Bytes::from(serde_json::to_vec(&entity).unwrap_or_default());

    let mut store = lock(&shared.store);
    if let Some(key) = idempotency {
        // A concurrent request with the same key got there first: answer its status.
        if let Some((existing, at)) = store.idempotency.get(&key) {
            if at.elapsed() < IDEMPOTENCY_TTL {
                let existing = existing.clone();
                drop(store);
                shared.statuses_count.fetch_sub(1, Ordering::Relaxed);
                return http::json(200, existing);
            }
        }
        store
            .idempotency
            .insert(key, (body.clone(), Instant::now()));
    }
    store.ids.insert(id);
    store.list.push(body.clone());
    drop(store);
    http::json(200, body)
}
