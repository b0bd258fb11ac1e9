//! Reading back what was posted: `GET /api/v1/accounts/:id/statuses` (newest first, paged by
//! `max_id` / `since_id` / `min_id` with a `Link` header, as Mastodon pages) and
//! `GET /api/v1/scheduled_statuses`. A client that lost an answer finds its post here.

use std::cmp::Ordering;

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponse;

use crate::entities::ACCOUNT_ID;
use crate::http::{self, authorize, Ctx};
use crate::params::text;
use crate::routes;
use crate::shapes;
use crate::state::lock;

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 40;

/// Ids compare as numbers when both are (snowflakes), else as strings (Mitra's
/// time-ordered UUIDs).
fn cmp_id(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn limit(ctx: &Ctx<'_>) -> usize {
    text(ctx.params, "limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT)
}

fn json_array<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

/// `GET /api/v1/accounts/:id/statuses`: the stand-in's account only; without a valid token,
/// only public and unlisted statuses.
pub fn account_statuses(ctx: &Ctx<'_>) -> HttpResponse {
    let shared = ctx.shared;
    let id = routes::account_id(ctx.req.path());
    if id != ACCOUNT_ID {
        return shapes::not_found(shared.opts.profile);
    }
    let p = ctx.params;
    let cursor = |name: &str| text(p, name).filter(|s| !s.trim().is_empty());
    let (max_id, since_id, min_id) = (cursor("max_id"), cursor("since_id"), cursor("min_id"));
    let limit = limit(ctx);
    let authed = ctx.token.is_some();
    let store = lock(&shared.store);
    // Oldest first.
    let candidates = store.list.iter().filter(|s| {
        (authed || matches!(s.visibility.as_str(), "public" | "unlisted"))
            && max_id
                .as_deref()
                .is_none_or(|m| cmp_id(&s.id, m) == Ordering::Less)
            && since_id
                .as_deref()
                .is_none_or(|m| cmp_id(&s.id, m) == Ordering::Greater)
            && min_id
                .as_deref()
                .is_none_or(|m| cmp_id(&s.id, m) == Ordering::Greater)
    });
    let page: Vec<_> = if min_id.is_some() {
        // The statuses right after `min_id`, still answered newest first.
        let mut page: Vec<_> = candidates.take(limit).collect();
        page.reverse();
        page
    } else {
        candidates.rev().take(limit).collect()
    };
    let body = json_array(page.iter().map(|s| s.body.as_ref()));
    let link = match (page.first(), page.last()) {
        (Some(newest), Some(oldest)) => {
            let base = format!(
                "{}/api/v1/accounts/{ACCOUNT_ID}/statuses?limit={limit}",
                shared.base
            );
            Some(format!(
                "<{base}&max_id={}>; rel=\"next\", <{base}&min_id={}>; rel=\"prev\"",
                oldest.id, newest.id
            ))
        }
        _ => None,
    };
    drop(store);
    let mut resp = http::json(200, body);
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// `GET /api/v1/scheduled_statuses`: where the profile schedules (Mastodon, GoToSocial);
/// a user token with `read` or `read:statuses`; newest first.
pub fn scheduled_statuses(ctx: &Ctx<'_>) -> HttpResponse {
    let profile = ctx.shared.opts.profile;
    if !profile.schedules() {
        return shapes::not_found(profile);
    }
    if let Err(denied) = authorize(ctx, &["read", "read:statuses"], true) {
        return denied.response(ctx);
    }
    let limit = limit(ctx);
    let store = lock(&ctx.shared.store);
    let body = json_array(store.scheduled.iter().rev().take(limit).map(|b| b.as_ref()));
    drop(store);
    http::json(200, body)
}
