//! `POST /api/v1/statuses`, checked in the order Mastodon works: token and scope checks, the
//! reply target (`set_thread`), the `Idempotency-Key`, media and poll checks, scheduling,
//! the Status validations; each profile's own rules on the way. What passes becomes a
//! [`Draft`] that `posting.rs` turns into the status, so that a fault can come between the
//! checks and the creation, as a slow server's processing does.

use actix_web::HttpResponse;
use serde_json::Value;

use crate::http::{self, authorize, Ctx};
use crate::params::{boolean, list, text};
use crate::posting::Draft;
use crate::profiles::Profile;
use crate::shapes;
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

pub struct PollParams {
    pub options: Vec<String>,
    pub expires_in: Option<i64>,
    pub multiple: bool,
    pub hide_totals: bool,
}

pub fn poll_params(poll: &Value) -> PollParams {
    PollParams {
        options: list(poll, "options").unwrap_or_default(),
        expires_in: text(poll, "expires_in")
            .filter(|s| !s.trim().is_empty())
            .map(|s| to_i(&s)),
        multiple: boolean(poll, "multiple").unwrap_or(false),
        hide_totals: boolean(poll, "hide_totals").unwrap_or(false),
    }
}

/// `PollValidator`'s messages, as nested-attribute errors of the Status; Mitra's own.
pub fn poll_errors(profile: Profile, poll: &PollParams, errors: &mut Vec<String>) {
    if profile == Profile::Mitra {
        if poll.options.len() < 2 {
            errors.push("too few poll options".into());
        } else if poll.options.len() > 20 {
            errors.push("too many poll options".into());
        } else if poll.options.iter().any(|o| o.chars().count() > 1000) {
            errors.push("poll option is too long".into());
        }
        return;
    }
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

/// What `POST /api/v1/statuses` comes to before anything is created.
pub enum Prepared {
    /// Refused, or an idempotent replay: answer this.
    Answer(HttpResponse),
    /// Accepted: create it (then answer it, unless a fault says otherwise).
    Create(Box<Draft>),
}

fn is_uuid(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    s.len() == 36 && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// The visibilities a profile accepts.
fn visibility_known(profile: Profile, v: &str) -> bool {
    match profile {
        Profile::GoToSocial => VISIBILITIES.contains(&v) || v == "mutuals_only",
        Profile::Mitra => VISIBILITIES.contains(&v) || v == "subscribers" || v == "conversation",
        _ => VISIBILITIES.contains(&v),
    }
}

/// The language stored: Mastodon's fallback to `en`, Takahē's none, snac's `en` always,
/// Mitra's ISO 639-1 check (`Err`: 400).
pub fn stored_language(profile: Profile, given: Option<String>) -> Result<Option<String>, ()> {
    let given = given.filter(|l| !l.trim().is_empty());
    match profile {
        Profile::Takahe => Ok(None),
        Profile::Snac => Ok(Some("en".to_owned())),
        Profile::Mitra => match given {
            None => Ok(None),
            Some(l) if l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()) => Ok(Some(l)),
            Some(_) => Err(()),
        },
        _ => Ok(Some(language(given))),
    }
}

/// Whether a status is too long under the profile's rule (Hollo and Mitra do not check).
pub fn too_long(
    profile: Profile,
    opts: &crate::Options,
    status: &str,
    spoiler: &str,
) -> Option<String> {
    let max = opts.max_characters;
    let over = match profile {
        Profile::Mastodon => {
            status_text::countable_length(
                &format!("{spoiler}{status}"),
                opts.characters_reserved_per_url,
            ) > max
        }
        // Code points of status and CW, URLs at full length whatever is advertised.
        Profile::GoToSocial => (status.chars().count() + spoiler.chars().count()) as u64 > max,
        // Python's len(status): no URL weighting, the CW not counted.
        Profile::Takahe => status.chars().count() as u64 > max,
        Profile::Snac => {
            status_text::countable_length(status, opts.characters_reserved_per_url) > max
        }
        Profile::Hollo | Profile::Mitra => false,
    };
    over.then(|| match profile {
        Profile::Mastodon => format!("Text character limit of {max} exceeded"),
        Profile::Takahe => "Status is too long".to_owned(),
        _ => format!("status too long, limit is {max}"),
    })
}

pub fn blank_message(profile: Profile) -> &'static str {
    match profile {
        Profile::Mastodon => "Text can't be blank",
        Profile::GoToSocial => "no status content, content warning, media, or poll provided",
        Profile::Takahe => "Status is empty",
        Profile::Mitra => "post can not be empty",
        _ => "status is required",
    }
}

/// `POST /api/v1/statuses` up to the point of creation.
pub fn prepare(ctx: &Ctx<'_>) -> Prepared {
    use Prepared::Answer;
    let token = match authorize(ctx, &["write", "write:statuses"], true) {
        Ok(t) => t,
        Err(denied) => return Answer(denied.response(ctx)),
    };
    let shared = ctx.shared;
    let opts = &shared.opts;
    let profile = opts.profile;
    let p = ctx.params;

    // `set_thread`, then the idempotency replay: the key is only looked up here; it is
    // recorded once the status exists (so a repeat arriving meanwhile posts again).
    let mut in_reply_to = text(p, "in_reply_to_id").filter(|s| !s.trim().is_empty());
    let idempotency = ctx
        .req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && profile.honours_idempotency())
        .map(str::to_owned);
    if in_reply_to.is_some() || idempotency.is_some() {
        let store = lock(&shared.store);
        if let Some(id) = &in_reply_to {
            if !store.ids.contains(id) {
                match profile {
                    Profile::Mastodon => {
                        return Answer(http::error(
                            404,
                            "The post you are trying to reply to does not appear to exist.",
                        ))
                    }
                    Profile::GoToSocial => return Answer(http::error(404, "Not Found")),
                    Profile::Hollo => return Answer(shapes::internal_error(profile)),
                    Profile::Mitra if !is_uuid(id) => {
                        return Answer(shapes::mitra(400, "post can not be empty"))
                    }
                    Profile::Mitra => {
                        return Answer(shapes::mitra(400, "parent post does not exist"))
                    }
                    // Posted as a non-reply.
                    Profile::Takahe | Profile::Snac => in_reply_to = None,
                }
            }
        }
        if let Some(key) = &idempotency {
            if let Some((body, at)) = store.idempotency.get(key) {
                if at.elapsed() < IDEMPOTENCY_TTL {
                    return Answer(http::json(200, body.clone()));
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
    let mut poll = p
        .get("poll")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .map(poll_params);
    if !media_ids.is_empty()
        && (media_ids.len() as u64 > opts.max_media_attachments || poll.is_some())
    {
        let message = format!(
            "Cannot attach more than {} files",
            opts.max_media_attachments
        );
        return Answer(match profile {
            Profile::Mastodon => http::error(422, &message),
            _ => shapes::refused(profile, &message),
        });
    }
    let media = if media_ids.is_empty() {
        Vec::new()
    } else {
        match crate::media::check_ids(ctx, &media_ids, None) {
            Ok(media) => media,
            Err(message) => {
                return Answer(match profile {
                    Profile::Mastodon => http::error(422, &message),
                    _ => shapes::refused(profile, &message),
                })
            }
        }
    };

    // Mitra has no content warning: it is dropped.
    let spoiler = match profile {
        Profile::Mitra => String::new(),
        _ => text(p, "spoiler_text")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    let sensitive = boolean(p, "sensitive").unwrap_or(false) || !spoiler.is_empty();
    let mut visibility = text(p, "visibility")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "public".to_owned());
    let Ok(language) = stored_language(profile, text(p, "language")) else {
        return Answer(shapes::mitra(400, "invalid language code"));
    };
    let content_type = text(p, "content_type").filter(|c| !c.is_empty());
    if profile == Profile::Mitra {
        if !matches!(
            content_type.as_deref(),
            None | Some("text/markdown" | "text/html")
        ) {
            return Answer(shapes::mitra(400, "unsupported content type"));
        }
        if !visibility_known(profile, &visibility) {
            return Answer(shapes::mitra(400, "invalid visibility parameter"));
        }
        if visibility == "direct" && !status.contains('@') {
            return Answer(shapes::mitra(
                400,
                "direct message should have at least one recipient",
            ));
        }
        // Stored, and answered, as public.
        if visibility == "unlisted" {
            visibility = "public".to_owned();
        }
    }
    let now = time::now_ms();
    let mut scheduled_at = None;
    if profile.schedules() {
        if let Some(s) = text(p, "scheduled_at").filter(|s| !s.trim().is_empty()) {
            match time::parse_iso8601(&s) {
                // A time in the past posts at once, as Mastodon does.
                Some(at) if at > now as i64 => scheduled_at = Some(at),
                Some(_) => {}
                None => return Answer(shapes::refused(profile, "Record invalid")),
            }
        }
    }

    let mut errors: Vec<String> = Vec::new();
    if !visibility_known(profile, &visibility) {
        errors.push("Visibility is not included in the list".into());
    }
    if blank(&status) && media_ids.is_empty() {
        errors.push(blank_message(profile).into());
    }
    if let Some(e) = too_long(profile, opts, &status, &spoiler) {
        errors.push(e);
    }
    if let Some(pp) = &poll {
        if profile == Profile::Snac {
            // snac ignores what it cannot use.
            if pp.options.len() < 2 {
                poll = None;
            }
        } else {
            poll_errors(profile, pp, &mut errors);
        }
    }
    if errors.is_empty() && scheduled_at.is_some_and(|at| at <= now as i64 + MIN_SCHEDULE_OFFSET_MS)
    {
        errors.push("Scheduled at The scheduled date must be in the future".into());
    }
    if !errors.is_empty() {
        return Answer(match profile {
            Profile::Mastodon => shapes::refused(profile, &errors.join(", ")),
            _ => shapes::refused(profile, &errors[0]),
        });
    }

    Prepared::Create(Box::new(Draft {
        profile,
        key: idempotency,
        scheduled_at,
        status,
        spoiler,
        sensitive,
        visibility,
        language,
        in_reply_to,
        media_ids,
        media,
        poll,
        local_only: (profile == Profile::GoToSocial)
            .then(|| boolean(p, "local_only").unwrap_or(false)),
        app_id: token.app.id.clone(),
        app_name: token.app.name.clone(),
        app_website: token.app.website.clone(),
    }))
}
