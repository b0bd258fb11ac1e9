//! What one does with a status once it exists, as Mastodon 4.3's controllers do it:
//! `GET/PUT/DELETE /api/v1/statuses/:id`, its context, the idempotent favourite / reblog /
//! bookmark / pin actions and their undoing, scheduled statuses by id, and polls. Scopes are
//! the controllers' `doorkeeper_authorize!` lines; reads take `authorize_if_got_token!`
//! (no token is fine, a bad one is a 401). Unknown ids are 404 `Record not found`; what
//! a validation refuses is 422 `Validation failed: ...`.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::entities::{ACCOUNT_ID, USERNAME};
use crate::http::{self, authorize, authorize_if_token, Ctx};
use crate::params::{boolean, list, text};
use crate::profiles::Profile;
use crate::routes::{segment, Route};
use crate::shapes;
use crate::state::{lock, StatusStore, StoredStatus};
use crate::world::{self, status_value};
use crate::{statuses, time};

const NOT_ALLOWED: &str = "This action is not allowed";

fn not_found(ctx: &Ctx<'_>) -> HttpResponse {
    shapes::not_found(ctx.shared.opts.profile)
}

fn refused(ctx: &Ctx<'_>, message: &str) -> HttpResponse {
    shapes::refused(ctx.shared.opts.profile, message)
}

/// Whether the stand-in account (with a token) or anyone (without) may see `s`.
pub fn visible(s: &StoredStatus, store: &StatusStore, authed: bool) -> bool {
    match s.visibility.as_str() {
        "public" | "unlisted" => true,
        _ if !authed => false,
        _ if s.account_id == ACCOUNT_ID => true,
        "private" => store.world.follow(ACCOUNT_ID, &s.account_id).is_some(),
        _ => s.text.contains(&format!("@{USERNAME}")),
    }
}

fn id<'a>(ctx: &Ctx<'a>) -> &'a str {
    segment(ctx.req.path(), 3)
}

/// `GET /api/v1/statuses/:id`.
pub fn show(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize_if_token(ctx, &["read", "read:statuses"]) {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let store = lock(&ctx.shared.store);
    match store
        .status(id(ctx))
        .filter(|s| visible(s, &store, token.is_some()))
    {
        Some(s) => http::json(200, s.body.clone()),
        None => not_found(ctx),
    }
}

/// `GET /api/v1/statuses/:id/context`: ancestors oldest first, descendants depth first.
pub fn context(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize_if_token(ctx, &["read", "read:statuses"]) {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let authed = token.is_some();
    let store = lock(&ctx.shared.store);
    let Some(me) = store.status(id(ctx)).filter(|s| visible(s, &store, authed)) else {
        return not_found(ctx);
    };
    let mut ancestors = Vec::new();
    let mut parent = me.in_reply_to.clone();
    while let Some(p) = parent {
        let Some(s) = store.status(&p) else { break };
        if visible(s, &store, authed) {
            ancestors.push(status_value(s));
        }
        parent = s.in_reply_to.clone();
    }
    ancestors.reverse();
    let mut descendants = Vec::new();
    let mut stack = vec![me.id.clone()];
    while let Some(at) = stack.pop() {
        let children: Vec<&StoredStatus> = store
            .list
            .iter()
            .filter(|s| s.in_reply_to.as_deref() == Some(at.as_str()))
            .collect();
        // Depth first, oldest child first.
        for c in children.iter().rev() {
            stack.push(c.id.clone());
        }
        if at != me.id {
            if let Some(s) = store.status(&at).filter(|s| visible(s, &store, authed)) {
                descendants.push(status_value(s));
            }
        }
    }
    http::json_value(
        200,
        &json!({"ancestors": ancestors, "descendants": descendants}),
    )
}

/// `PUT /api/v1/statuses/:id`: the author's own status; answers it with `edited_at`
/// (a submission that changes nothing is no edit).
pub fn edit(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["write", "write:statuses"], true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let profile = shared.opts.profile;
    let p = ctx.params;
    let sid = id(ctx).to_owned();
    let (old_text, old_spoiler, old_media, old_value) = {
        let store = lock(&shared.store);
        let Some(s) = store.status(&sid) else {
            return not_found(ctx);
        };
        if s.account_id != ACCOUNT_ID || s.reblog_of.is_some() {
            return http::error(403, NOT_ALLOWED);
        }
        (
            s.text.clone(),
            s.spoiler.clone(),
            s.media_ids.clone(),
            status_value(s),
        )
    };
    let status = text(p, "status").map_or(old_text.clone(), |s| s.trim().to_owned());
    let spoiler = text(p, "spoiler_text").map_or(old_spoiler.clone(), |s| s.trim().to_owned());
    let media_ids: Vec<String> = list(p, "media_ids")
        .map(|m| m.into_iter().filter(|m| !m.trim().is_empty()).collect())
        .unwrap_or_else(|| old_media.clone());
    let poll = p
        .get("poll")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .map(statuses::poll_params);
    if media_ids.len() as u64 > shared.opts.max_media_attachments
        || (!media_ids.is_empty() && poll.is_some())
    {
        return http::error(
            422,
            &format!(
                "Cannot attach more than {} files",
                shared.opts.max_media_attachments
            ),
        );
    }
    let media = match crate::media::check_ids(ctx, &media_ids, Some(&sid)) {
        Ok(m) => m,
        Err(message) if profile == Profile::Mastodon => return http::error(422, &message),
        Err(message) => return refused(ctx, &message),
    };
    let mut errors = Vec::new();
    if status.trim().is_empty() && media_ids.is_empty() && poll.is_none() {
        errors.push(statuses::blank_message(profile).to_owned());
    }
    if let Some(e) = statuses::too_long(profile, &shared.opts, &status, &spoiler) {
        errors.push(e);
    }
    if let Some(pp) = &poll {
        statuses::poll_errors(profile, pp, &mut errors);
    }
    if !errors.is_empty() {
        return refused(ctx, &errors.join(", "));
    }
    let sensitive = boolean(p, "sensitive")
        .unwrap_or_else(|| old_value["sensitive"].as_bool().unwrap_or(false))
        || !spoiler.is_empty();
    let language = match text(p, "language") {
        Some(l) => statuses::stored_language(profile, Some(l)).unwrap_or(None),
        None => old_value["language"].as_str().map(str::to_owned),
    };
    let changed = status != old_text
        || spoiler != old_spoiler
        || media_ids != old_media
        || poll.is_some()
        || Some(sensitive) != old_value["sensitive"].as_bool()
        || language.as_deref() != old_value["language"].as_str();
    let mut store = lock(&shared.store);
    if !changed {
        return match store.status(&sid) {
            Some(s) => http::json(200, s.body.clone()),
            None => not_found(ctx),
        };
    }
    let rendered = crate::text::render(&status, &shared.base, USERNAME, &shared.domain);
    let now = time::now_ms();
    let poll_value = poll.as_ref().map(|pp| {
        let pid = shared.next_id();
        let expires = now + pp.expires_in.unwrap_or(0).max(0) as u64 * 1000;
        store.world.polls.retain(|p| p.status_id != sid);
        store.world.polls.push(world::PollRec {
            id: pid.to_string(),
            status_id: sid.clone(),
            author: ACCOUNT_ID.to_owned(),
            options: pp.options.len(),
            multiple: pp.multiple,
            expires_ms: expires,
            votes: Vec::new(),
        });
        (
            pid.to_string(),
            serde_json::to_value(crate::entities::Poll::new(
                pid,
                expires,
                pp.multiple,
                pp.options.clone(),
            ))
            .unwrap_or(Value::Null),
        )
    });
    for m in store.world.media.iter_mut() {
        if m.status_id.as_deref() == Some(sid.as_str()) && !media_ids.contains(&m.id) {
            m.status_id = None;
        }
    }
    crate::media::attach(&mut store, &media_ids, &sid);
    let tags: Vec<String> = rendered.tags.clone();
    let base = shared.base.clone();
    world::rewrite(&mut store, &sid, |v| {
        v["content"] = rendered.content.clone().into();
        v["spoiler_text"] = spoiler.clone().into();
        v["sensitive"] = sensitive.into();
        v["language"] = language.clone().into();
        v["edited_at"] = time::iso_millis(now).into();
        v["media_attachments"] = media.clone().into();
        v["tags"] = tags
            .iter()
            .map(|t| json!({"name": t, "url": format!("{base}/tags/{t}")}))
            .collect::<Vec<_>>()
            .into();
        if let Some((_, pv)) = &poll_value {
            v["poll"] = pv.clone();
        } else if !media_ids.is_empty() {
            v["poll"] = Value::Null;
        }
    });
    if let Some(s) = store.status_mut(&sid) {
        s.text = status;
        s.spoiler = spoiler;
        s.media_ids = media_ids;
        s.tags = tags;
        if let Some((pid, _)) = poll_value {
            s.poll_id = Some(pid);
        }
    }
    match store.status(&sid) {
        Some(s) => http::json(200, s.body.clone()),
        None => not_found(ctx),
    }
}

/// `DELETE /api/v1/statuses/:id`: the author's own; answers it with its source `text`.
pub fn delete(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["write", "write:statuses"], true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let sid = id(ctx).to_owned();
    let mut store = lock(&shared.store);
    let Some(s) = store.status(&sid) else {
        return not_found(ctx);
    };
    if s.account_id != ACCOUNT_ID {
        return http::error(403, NOT_ALLOWED);
    }
    let mut v = status_value(s);
    v["text"] = s.text.clone().into();
    v["spoiler_text"] = s.spoiler.clone().into();
    let parent = s.in_reply_to.clone();
    let was_post = s.reblog_of.is_none();
    // The status and every reblog of it go.
    let gone: Vec<String> = store
        .list
        .iter()
        .filter(|x| x.id == sid || x.reblog_of.as_deref() == Some(sid.as_str()))
        .map(|x| x.id.clone())
        .collect();
    store.list.retain(|x| !gone.contains(&x.id));
    for g in &gone {
        store.ids.remove(g);
    }
    let w = &mut store.world;
    w.favourites.retain(|f| f.2 != sid);
    w.bookmarks.retain(|b| b.1 != sid);
    w.pins.retain(|p| p.1 != sid);
    w.polls.retain(|p| p.status_id != sid);
    w.notifications
        .retain(|n| n.status_id.as_deref() != Some(sid.as_str()));
    if was_post {
        let _ = shared.statuses_count.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |c| Some(c.saturating_sub(1)),
        );
    } else if let Some(of) = v["reblog"]["id"].as_str().map(str::to_owned) {
        world::refresh(&mut store, &of);
    }
    if let Some(p) = parent {
        world::refresh(&mut store, &p);
    }
    http::json_value(200, &v)
}

/// The favourite / reblog / bookmark / pin actions and their undoing.
pub fn action(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let scopes: &[&str] = match route {
        Route::Favourite | Route::Unfavourite => &["write", "write:favourites"],
        Route::Bookmark | Route::Unbookmark => &["write", "write:bookmarks"],
        Route::Pin | Route::Unpin => &["write", "write:accounts"],
        _ => &["write", "write:statuses"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let sid = id(ctx).to_owned();
    let mut store = lock(&shared.store);
    let Some(s) = store.status(&sid).filter(|s| visible(s, &store, true)) else {
        return not_found(ctx);
    };
    // Acting on a reblog acts on what it reblogs.
    let sid = s.reblog_of.clone().unwrap_or(sid);
    let Some(s) = store.status(&sid) else {
        return not_found(ctx);
    };
    let (visibility, author) = (s.visibility.clone(), s.account_id.clone());
    let mut answer_id = sid.clone();
    match route {
        Route::Favourite => {
            world::favourite(shared, &mut store, ACCOUNT_ID, &sid);
        }
        Route::Unfavourite => {
            store
                .world
                .favourites
                .retain(|f| !(f.1 == ACCOUNT_ID && f.2 == sid));
        }
        Route::Reblog => {
            if !matches!(visibility.as_str(), "public" | "unlisted") {
                return http::error(403, NOT_ALLOWED);
            }
            match world::reblog(shared, &mut store, ACCOUNT_ID, &sid) {
                Some(r) => answer_id = r,
                None => return not_found(ctx),
            }
        }
        Route::Unreblog => {
            let gone: Vec<String> = store
                .list
                .iter()
                .filter(|x| {
                    x.reblog_of.as_deref() == Some(sid.as_str()) && x.account_id == ACCOUNT_ID
                })
                .map(|x| x.id.clone())
                .collect();
            store.list.retain(|x| !gone.contains(&x.id));
            for g in &gone {
                store.ids.remove(g);
            }
        }
        Route::Bookmark => {
            if !store.world.bookmarks.iter().any(|b| b.1 == sid) {
                let bid = shared.next_id();
                store.world.bookmarks.push((bid, sid.clone()));
            }
        }
        Route::Unbookmark => store.world.bookmarks.retain(|b| b.1 != sid),
        Route::Pin => {
            if !store.world.pins.iter().any(|p| p.1 == sid) {
                // StatusPinValidator's order.
                let error = if author != ACCOUNT_ID {
                    Some("Someone else's post cannot be pinned")
                } else if visibility == "direct" {
                    Some("Posts that are only visible to mentioned users cannot be pinned")
                } else if store.world.pins.len() >= shared.opts.max_pinned_statuses {
                    Some("You have already pinned the maximum number of posts")
                } else {
                    None
                };
                if let Some(e) = error {
                    return refused(ctx, e);
                }
                let pid = shared.next_id();
                store.world.pins.push((pid, sid.clone()));
            }
        }
        Route::Unpin => store.world.pins.retain(|p| p.1 != sid),
        _ => return not_found(ctx),
    }
    world::refresh(&mut store, &sid);
    match store.status(&answer_id) {
        Some(s) => http::json(200, s.body.clone()),
        None => not_found(ctx),
    }
}

fn scheduled_index(store: &StatusStore, id: &str) -> Option<usize> {
    store.scheduled.iter().position(|s| s.id == id)
}

/// `GET`, `PUT` (`scheduled_at`, at least 5 minutes ahead) and `DELETE`
/// `/api/v1/scheduled_statuses/:id`.
pub fn scheduled(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let profile = ctx.shared.opts.profile;
    if !profile.schedules() {
        return shapes::not_found(profile);
    }
    let scopes: &[&str] = match route {
        Route::GetScheduled => &["read", "read:statuses"],
        _ => &["write", "write:statuses"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let mut store = lock(&ctx.shared.store);
    let Some(i) = scheduled_index(&store, id(ctx)) else {
        return not_found(ctx);
    };
    match route {
        Route::DeleteScheduled => {
            store.scheduled.remove(i);
            http::json(200, "{}")
        }
        Route::UpdateScheduled => {
            let at = text(ctx.params, "scheduled_at").and_then(|s| time::parse_iso8601(&s));
            match at {
                Some(at) if at > time::now_ms() as i64 + 5 * 60 * 1000 => {
                    let mut v: Value =
                        serde_json::from_slice(&store.scheduled[i].body).unwrap_or_default();
                    v["scheduled_at"] = time::iso_millis(at as u64).into();
                    store.scheduled[i].body = serde_json::to_vec(&v).unwrap_or_default().into();
                    http::json_value(200, &v)
                }
                _ => refused(ctx, "Scheduled at The scheduled date must be in the future"),
            }
        }
        _ => http::json(200, store.scheduled[i].body.clone()),
    }
}

/// `GET /api/v1/polls/:id`.
pub fn poll(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize_if_token(ctx, &["read", "read:statuses"]) {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let store = lock(&ctx.shared.store);
    let pid = id(ctx);
    match store.world.polls.iter().find(|p| {
        p.id == pid
            && store
                .status(&p.status_id)
                .is_some_and(|s| visible(s, &store, token.is_some()))
    }) {
        Some(p) => http::json_value(200, &world::poll_value(&store, p)),
        None => not_found(ctx),
    }
}

/// `POST /api/v1/polls/:id/votes` (`choices[]`, option indexes): `VoteValidator`'s
/// refusals, in its order (ended, no such option, own poll, already voted).
pub fn vote(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["write", "write:statuses"], true) {
        return denied.response(ctx);
    }
    let mut store = lock(&ctx.shared.store);
    let pid = id(ctx).to_owned();
    let Some(i) = store.world.polls.iter().position(|p| p.id == pid) else {
        return not_found(ctx);
    };
    let choices: Vec<i64> = list(ctx.params, "choices")
        .unwrap_or_default()
        .iter()
        .map(|c| c.trim().parse::<i64>().unwrap_or(-1))
        .collect();
    {
        let p = &store.world.polls[i];
        let mut mine: Vec<usize> = p
            .votes
            .iter()
            .filter(|(a, _)| a == ACCOUNT_ID)
            .map(|(_, c)| *c)
            .collect();
        for &choice in &choices {
            let mut errors = Vec::new();
            if time::now_ms() >= p.expires_ms {
                errors.push("The poll has already ended");
            }
            if choice < 0 || choice as usize >= p.options {
                errors.push("The chosen vote option does not exist");
            }
            if p.author == ACCOUNT_ID {
                errors.push("You cannot vote in your own polls");
            }
            let already = if p.multiple {
                mine.contains(&(choice.max(0) as usize))
            } else {
                !mine.is_empty()
            };
            if already {
                errors.push("You have already voted on this poll");
            }
            if !errors.is_empty() {
                return refused(ctx, &errors.join(", "));
            }
            mine.push(choice as usize);
        }
    }
    for choice in choices {
        store.world.polls[i]
            .votes
            .push((ACCOUNT_ID.to_owned(), choice as usize));
    }
    let p = &store.world.polls[i];
    let value = world::poll_value(&store, p);
    let status_id = p.status_id.clone();
    let for_status = value.clone();
    world::rewrite(&mut store, &status_id, |v| v["poll"] = for_status);
    http::json_value(200, &value)
}
