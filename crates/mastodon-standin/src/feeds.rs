//! What the stand-in account reads and who it knows: timelines (home, public, tag, list),
//! notifications, search, accounts (lookup, show, followers / following, relationships,
//! follow / unfollow) and lists, each paginated as [`crate::paging`] describes with the
//! endpoint's default limit. Scopes follow Mastodon's controllers: reads that work without
//! a token use `authorize_if_got_token!`; home, notifications, relationships and lists
//! need a user token.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::entities::ACCOUNT_ID;
use crate::http::{self, authorize, authorize_if_token, Ctx};
use crate::paging::{self, Page};
use crate::params::{boolean, list, text};
use crate::routes::{segment, Route};
use crate::shapes;
use crate::social::visible;
use crate::state::{lock, StatusStore, StoredStatus};
use crate::world::{self, account_value, notification_value, relationship, status_value};

fn not_found(ctx: &Ctx<'_>) -> HttpResponse {
    shapes::not_found(ctx.shared.opts.profile)
}

/// An array param that may also come as one scalar (`types[]=a` or `types=a`).
fn many(p: &Value, key: &str) -> Vec<String> {
    list(p, key)
        .or_else(|| text(p, key).map(|v| vec![v]))
        .unwrap_or_default()
}

/// A page of statuses chosen by `keep`, with its Link header.
fn status_page(
    ctx: &Ctx<'_>,
    store: &StatusStore,
    keep: impl Fn(&StoredStatus) -> bool,
) -> HttpResponse {
    let items: Vec<(String, &StoredStatus)> = store
        .list
        .iter()
        .filter(|s| keep(s))
        .map(|s| (s.id.clone(), s))
        .collect();
    cursor_page(ctx, items)
}

/// A page of statuses paged by cursors of their own (oldest first), with its Link header. The
/// cursors are the status ids for timelines, and the bookmark's or favourite's own id for those
/// lists: Mastodon pages `/api/v1/bookmarks` by `Bookmark#id`, so a caller that put a status id in
/// `max_id` would get the wrong page.
fn cursor_page(ctx: &Ctx<'_>, items: Vec<(String, &StoredStatus)>) -> HttpResponse {
    let page = Page::read(ctx, paging::STATUSES);
    let page_items = page.apply(items);
    let cursors: Vec<&str> = page_items.iter().map(|(c, _)| c.as_str()).collect();
    let link = page.link(ctx, &cursors);
    let mut body = vec![b'['];
    for (i, (_, s)) in page_items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&s.body);
    }
    body.push(b']');
    let mut resp = http::json(200, body);
    paging::set_link(&mut resp, link);
    resp
}

fn has_media(s: &StoredStatus, store: &StatusStore) -> bool {
    let of = s
        .reblog_of
        .as_deref()
        .and_then(|r| store.status(r))
        .unwrap_or(s);
    !of.media_ids.is_empty()
}

/// `local` / `remote` / `only_media` of the public and tag timelines.
fn origin_filter(ctx: &Ctx<'_>) -> impl Fn(&StoredStatus, &StatusStore) -> bool {
    let p = ctx.params;
    let local = boolean(p, "local").unwrap_or(false);
    let remote = boolean(p, "remote").unwrap_or(false);
    let only_media = boolean(p, "only_media").unwrap_or(false);
    move |s, store| {
        (!local || s.local) && (!remote || !s.local) && (!only_media || has_media(s, store))
    }
}

/// The four timelines.
pub fn timeline(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let token = match route {
        Route::HomeTimeline => authorize(ctx, &["read", "read:statuses"], true).map(Some),
        Route::ListTimeline => authorize(ctx, &["read", "read:lists"], true).map(Some),
        _ => authorize_if_token(ctx, &["read", "read:statuses"]),
    };
    let token = match token {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let authed = token.is_some();
    let store = lock(&ctx.shared.store);
    let w = &store.world;
    match route {
        Route::HomeTimeline => status_page(ctx, &store, |s| {
            let follow = w.follow(ACCOUNT_ID, &s.account_id);
            (s.account_id == ACCOUNT_ID
                || follow.is_some_and(|f| s.reblog_of.is_none() || f.reblogs))
                && visible(s, &store, true)
        }),
        Route::PublicTimeline => {
            let origin = origin_filter(ctx);
            status_page(ctx, &store, |s| {
                s.visibility == "public" && s.reblog_of.is_none() && origin(s, &store)
            })
        }
        Route::TagTimeline => {
            let tag = decode(segment(ctx.req.path(), 4)).to_lowercase();
            let lower = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .map(|t| t.trim_start_matches('#').to_lowercase())
                    .collect()
            };
            let any = lower(many(ctx.params, "any"));
            let all = lower(many(ctx.params, "all"));
            let none = lower(many(ctx.params, "none"));
            let origin = origin_filter(ctx);
            status_page(ctx, &store, |s| {
                s.visibility == "public"
                    && s.reblog_of.is_none()
                    && (s.tags.contains(&tag) || any.iter().any(|t| s.tags.contains(t)))
                    && all.iter().all(|t| s.tags.contains(t))
                    && !none.iter().any(|t| s.tags.contains(t))
                    && origin(s, &store)
                    && (authed || visible(s, &store, false))
            })
        }
        _ => {
            let Some(l) = w.list(segment(ctx.req.path(), 4)) else {
                return not_found(ctx);
            };
            let members: Vec<&str> = l.members.iter().map(|(_, a)| a.as_str()).collect();
            status_page(ctx, &store, |s| {
                members.contains(&s.account_id.as_str()) && visible(s, &store, true)
            })
        }
    }
}

/// `GET /api/v1/bookmarks` and `GET /api/v1/favourites`: the stand-in account's bookmarked or
/// favourited statuses, newest bookmark (favourite) first, paged by the bookmark's (favourite's) id
/// as Mastodon's BookmarksController and FavouritesController do; a user token with `read` or
/// `read:bookmarks` (`read:favourites`). Statuses the account may no longer see are left out.
pub fn marked(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let scopes: &[&str] = match route {
        Route::Bookmarks => &["read", "read:bookmarks"],
        _ => &["read", "read:favourites"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let store = lock(&ctx.shared.store);
    let w = &store.world;
    let marks: Vec<(u64, &str)> = match route {
        Route::Bookmarks => w.bookmarks.iter().map(|b| (b.0, b.1.as_str())).collect(),
        _ => w
            .favourites
            .iter()
            .filter(|f| f.1 == ACCOUNT_ID)
            .map(|f| (f.0, f.2.as_str()))
            .collect(),
    };
    let mut items: Vec<(String, &StoredStatus)> = marks
        .into_iter()
        .filter_map(|(mark, sid)| {
            let s = store.list.iter().find(|s| s.id == sid)?;
            visible(s, &store, true).then(|| (mark.to_string(), s))
        })
        .collect();
    items.sort_by(|a, b| paging::cmp_id(&a.0, &b.0));
    cursor_page(ctx, items)
}

fn decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `GET /api/v1/accounts/:id/statuses` (`pinned`, `exclude_replies`, `exclude_reblogs`,
/// `only_media`, `tagged`); without a token, public and unlisted statuses only.
pub fn account_statuses(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize_if_token(ctx, &["read", "read:statuses"]) {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let authed = token.is_some();
    let id = segment(ctx.req.path(), 3).to_owned();
    let store = lock(&ctx.shared.store);
    if !store.knows_account(&id) {
        return not_found(ctx);
    }
    let p = ctx.params;
    let pinned = boolean(p, "pinned").unwrap_or(false);
    let exclude_replies = boolean(p, "exclude_replies").unwrap_or(false);
    let exclude_reblogs = boolean(p, "exclude_reblogs").unwrap_or(false);
    let only_media = boolean(p, "only_media").unwrap_or(false);
    let tagged = text(p, "tagged")
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_start_matches('#').to_lowercase());
    status_page(ctx, &store, |s| {
        s.account_id == id
            && visible(s, &store, authed)
            && (!pinned || store.world.pins.iter().any(|(_, p)| *p == s.id))
            && (!exclude_replies || s.in_reply_to.is_none())
            && (!exclude_reblogs || s.reblog_of.is_none())
            && (!only_media || has_media(s, &store))
            && tagged.as_ref().is_none_or(|t| s.tags.contains(t))
    })
}

/// `GET /api/v1/notifications` (`types[]`, `exclude_types[]`, `account_id`).
pub fn notifications(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["read", "read:notifications"], true) {
        return denied.response(ctx);
    }
    let p = ctx.params;
    let types = many(p, "types");
    let exclude = many(p, "exclude_types");
    let from = text(p, "account_id").filter(|a| !a.is_empty());
    let page = Page::read(ctx, paging::ACCOUNTS);
    let store = lock(&ctx.shared.store);
    let items: Vec<(String, &world::NotificationRec)> = store
        .world
        .notifications
        .iter()
        .filter(|n| {
            n.recipient == ACCOUNT_ID
                && (types.is_empty() || types.contains(&n.kind))
                && !exclude.contains(&n.kind)
                && from.as_ref().is_none_or(|a| *a == n.from)
        })
        .map(|n| (n.id.to_string(), n))
        .collect();
    let items = page.apply(items);
    let cursors: Vec<&str> = items.iter().map(|(c, _)| c.as_str()).collect();
    let link = page.link(ctx, &cursors);
    let values: Vec<Value> = items
        .iter()
        .map(|(_, n)| notification_value(ctx.shared, &store, n))
        .collect();
    paging::answer(&values, link)
}

/// `GET /api/v1/notifications/:id`, `POST .../:id/dismiss`, `POST .../clear`.
pub fn notification(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let scopes: &[&str] = match route {
        Route::GetNotification => &["read", "read:notifications"],
        _ => &["write", "write:notifications"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let mut store = lock(&ctx.shared.store);
    let w = &mut store.world;
    if route == Route::ClearNotifications {
        w.notifications.retain(|n| n.recipient != ACCOUNT_ID);
        return http::json(200, "{}");
    }
    let id = segment(ctx.req.path(), 3);
    let Some(i) = w
        .notifications
        .iter()
        .position(|n| n.recipient == ACCOUNT_ID && n.id.to_string() == id)
    else {
        return not_found(ctx);
    };
    if route == Route::DismissNotification {
        w.notifications.remove(i);
        return http::json(200, "{}");
    }
    let v = notification_value(ctx.shared, &store, &store.world.notifications[i]);
    http::json_value(200, &v)
}

/// `GET /api/v2/search`: `q`, `type`, `resolve`, `following`, `account_id`, `limit`
/// (20, at most 40), `offset`. Without a token, no statuses (Mastodon searches statuses
/// for signed-in users only), and `offset` or `resolve` is a 401.
pub fn search(ctx: &Ctx<'_>) -> HttpResponse {
    let token = match authorize_if_token(ctx, &["read", "read:search"]) {
        Ok(t) => t,
        Err(denied) => return denied.response(ctx),
    };
    let p = ctx.params;
    let authed = token.is_some();
    if !authed && boolean(p, "resolve").unwrap_or(false) {
        return http::error(
            401,
            "Search queries that resolve remote resources are not supported without authentication",
        );
    }
    let offset = text(p, "offset")
        .and_then(|o| o.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if !authed && offset > 0 {
        return http::error(
            401,
            "Search queries pagination is not supported without authentication",
        );
    }
    let q = text(p, "q").unwrap_or_default().trim().to_lowercase();
    let kind = text(p, "type").filter(|t| !t.is_empty());
    let limit = text(p, "limit")
        .and_then(|l| l.trim().parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 40);
    let following = boolean(p, "following").unwrap_or(false);
    let by = text(p, "account_id").filter(|a| !a.is_empty());
    let wants = |t: &str| kind.as_deref().is_none_or(|k| k == t);
    let store = lock(&ctx.shared.store);
    let shared = ctx.shared;
    let mut accounts = Vec::new();
    let mut statuses = Vec::new();
    let mut hashtags = Vec::new();
    if q.is_empty() {
        return http::json_value(
            200,
            &json!({"accounts": accounts, "statuses": statuses, "hashtags": hashtags}),
        );
    }
    if wants("accounts") {
        let needle = q.trim_start_matches('@');
        let mut ids = vec![ACCOUNT_ID.to_owned()];
        ids.extend(store.world.accounts.iter().map(|a| a.id.clone()));
        accounts = ids
            .iter()
            .filter(|id| !following || store.world.follow(ACCOUNT_ID, id).is_some())
            .filter_map(|id| account_value(shared, &store, id))
            .filter(|a| {
                ["acct", "username", "display_name"].iter().any(|k| {
                    a[*k]
                        .as_str()
                        .is_some_and(|v| v.to_lowercase().contains(needle))
                })
            })
            .skip(offset)
            .take(limit)
            .collect();
    }
    if wants("statuses") && authed {
        statuses = store
            .list
            .iter()
            .rev()
            .filter(|s| {
                s.reblog_of.is_none()
                    && visible(s, &store, true)
                    && s.text.to_lowercase().contains(&q)
                    && by.as_ref().is_none_or(|a| *a == s.account_id)
            })
            .skip(offset)
            .take(limit)
            .map(status_value)
            .collect();
    }
    if wants("hashtags") {
        let needle = q.trim_start_matches('#');
        let mut names: Vec<&str> = Vec::new();
        for s in &store.list {
            for t in &s.tags {
                if t.starts_with(needle) && !names.contains(&t.as_str()) {
                    names.push(t);
                }
            }
        }
        hashtags = names
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|n| json!({"name": n, "url": format!("{}/tags/{n}", shared.base), "history": []}))
            .collect();
    }
    http::json_value(
        200,
        &json!({"accounts": accounts, "statuses": statuses, "hashtags": hashtags}),
    )
}

/// `GET /api/v1/accounts/:id` and `GET /api/v1/accounts/lookup?acct=`.
pub fn account(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize_if_token(ctx, &["read", "read:accounts"]) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let store = lock(&shared.store);
    let id = if segment(ctx.req.path(), 3) == "lookup" {
        let acct = text(ctx.params, "acct").unwrap_or_default();
        let acct = acct.trim().trim_start_matches('@');
        let acct = match acct.split_once('@') {
            Some((name, domain)) if domain == shared.domain => name,
            _ => acct,
        };
        if acct.eq_ignore_ascii_case(crate::entities::USERNAME) {
            Some(ACCOUNT_ID.to_owned())
        } else {
            store
                .world
                .accounts
                .iter()
                .find(|a| a.acct.eq_ignore_ascii_case(acct))
                .map(|a| a.id.clone())
        }
    } else {
        Some(segment(ctx.req.path(), 3).to_owned())
    };
    match id.and_then(|id| account_value(shared, &store, &id)) {
        Some(v) => http::json_value(200, &v),
        None => not_found(ctx),
    }
}

/// `GET /api/v1/accounts/relationships?id[]=`: the known ones, in the order asked.
pub fn relationships(ctx: &Ctx<'_>) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["read", "read:follows"], true) {
        return denied.response(ctx);
    }
    let store = lock(&ctx.shared.store);
    let values: Vec<Value> = many(ctx.params, "id")
        .iter()
        .filter(|id| store.knows_account(id))
        .map(|id| relationship(&store, id))
        .collect();
    http::json_value(200, &Value::Array(values))
}

/// `GET /api/v1/accounts/:id/followers` and `/following`: accounts, paginated by the
/// Follow's id (40, at most 80).
pub fn follows(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    if let Err(denied) = authorize_if_token(ctx, &["read", "read:accounts"]) {
        return denied.response(ctx);
    }
    let id = segment(ctx.req.path(), 3);
    let store = lock(&ctx.shared.store);
    if !store.knows_account(id) {
        return not_found(ctx);
    }
    let page = Page::read(ctx, paging::ACCOUNTS);
    let items: Vec<(String, &str)> = store
        .world
        .follows
        .iter()
        .filter_map(|f| match route {
            Route::Followers if f.target == id => Some((f.id.to_string(), f.follower.as_str())),
            Route::Following if f.follower == id => Some((f.id.to_string(), f.target.as_str())),
            _ => None,
        })
        .collect();
    let items = page.apply(items);
    let cursors: Vec<&str> = items.iter().map(|(c, _)| c.as_str()).collect();
    let link = page.link(ctx, &cursors);
    let values: Vec<Value> = items
        .iter()
        .filter_map(|(_, a)| account_value(ctx.shared, &store, a))
        .collect();
    paging::answer(&values, link)
}

/// `POST /api/v1/accounts/:id/follow` (`reblogs`, `notify`, `languages[]`) and `/unfollow`:
/// the Relationship. Following oneself or an unknown account is 404, as `FollowService`.
pub fn follow(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["follow", "write", "write:follows"], true) {
        return denied.response(ctx);
    }
    let id = segment(ctx.req.path(), 3).to_owned();
    let mut store = lock(&ctx.shared.store);
    if id == ACCOUNT_ID || store.world.account(&id).is_none() {
        return not_found(ctx);
    }
    if route == Route::Follow {
        let p = ctx.params;
        let languages = list(p, "languages");
        world::follow(
            ctx.shared,
            &mut store,
            ACCOUNT_ID,
            &id,
            boolean(p, "reblogs"),
            boolean(p, "notify"),
            languages,
        );
    } else {
        store
            .world
            .follows
            .retain(|f| !(f.follower == ACCOUNT_ID && f.target == id));
    }
    http::json_value(200, &relationship(&store, &id))
}

fn list_value(l: &world::ListRec) -> Value {
    json!({
        "id": l.id,
        "title": l.title,
        "replies_policy": l.replies_policy,
        "exclusive": l.exclusive,
    })
}

const REPLIES_POLICIES: [&str; 3] = ["followed", "list", "none"];

/// `GET/POST /api/v1/lists`, `GET/PUT/DELETE /api/v1/lists/:id`.
pub fn lists(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let scopes: &[&str] = match route {
        Route::Lists | Route::GetList => &["read", "read:lists"],
        _ => &["write", "write:lists"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let p = ctx.params;
    let mut store = lock(&shared.store);
    let lists = &mut store.world.lists;
    if route == Route::Lists {
        let values: Vec<Value> = lists.iter().map(list_value).collect();
        return http::json_value(200, &Value::Array(values));
    }
    let title = text(p, "title").map(|t| t.trim().to_owned());
    let policy = text(p, "replies_policy").filter(|r| !r.is_empty());
    let mut errors = Vec::new();
    if matches!(route, Route::CreateList | Route::UpdateList) {
        if route == Route::CreateList && title.as_deref().is_none_or(str::is_empty)
            || title.as_deref() == Some("")
        {
            errors.push("Title can't be blank");
        }
        if policy
            .as_deref()
            .is_some_and(|r| !REPLIES_POLICIES.contains(&r))
        {
            errors.push("Replies policy is not included in the list");
        }
    }
    if !errors.is_empty() {
        return shapes::refused(shared.opts.profile, &errors.join(", "));
    }
    if route == Route::CreateList {
        let l = world::ListRec {
            id: shared.next_id().to_string(),
            title: title.unwrap_or_default(),
            replies_policy: policy.unwrap_or_else(|| "list".to_owned()),
            exclusive: boolean(p, "exclusive").unwrap_or(false),
            members: Vec::new(),
        };
        let v = list_value(&l);
        lists.push(l);
        return http::json_value(200, &v);
    }
    let id = segment(ctx.req.path(), 3);
    let Some(i) = lists.iter().position(|l| l.id == id) else {
        return not_found(ctx);
    };
    match route {
        Route::DeleteList => {
            lists.remove(i);
            http::json(200, "{}")
        }
        Route::UpdateList => {
            let l = &mut lists[i];
            if let Some(t) = title {
                l.title = t;
            }
            if let Some(r) = policy {
                l.replies_policy = r;
            }
            if let Some(e) = boolean(p, "exclusive") {
                l.exclusive = e;
            }
            http::json_value(200, &list_value(l))
        }
        _ => http::json_value(200, &list_value(&lists[i])),
    }
}

/// `GET/POST/DELETE /api/v1/lists/:id/accounts` (`account_ids[]`). Adding an account the
/// stand-in does not follow is 404 (`ListAccount` does `Follow.find_by!`); one already
/// in the list 422. `limit=0` answers every member unpaginated.
pub fn list_accounts(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let scopes: &[&str] = match route {
        Route::ListAccounts => &["read", "read:lists"],
        _ => &["write", "write:lists"],
    };
    if let Err(denied) = authorize(ctx, scopes, true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let id = segment(ctx.req.path(), 3).to_owned();
    let mut store = lock(&shared.store);
    let Some(li) = store.world.lists.iter().position(|l| l.id == id) else {
        return not_found(ctx);
    };
    let ids = many(ctx.params, "account_ids");
    match route {
        Route::AddListAccounts => {
            for a in &ids {
                if !store.knows_account(a)
                    || (a != ACCOUNT_ID && store.world.follow(ACCOUNT_ID, a).is_none())
                {
                    return not_found(ctx);
                }
                if store.world.lists[li].members.iter().any(|(_, m)| m == a) {
                    return shapes::refused(shared.opts.profile, "Account has already been taken");
                }
            }
            for a in ids {
                let lid = shared.next_id();
                store.world.lists[li].members.push((lid, a));
            }
            http::json(200, "{}")
        }
        Route::RemoveListAccounts => {
            store.world.lists[li]
                .members
                .retain(|(_, m)| !ids.contains(m));
            http::json(200, "{}")
        }
        _ => {
            let unlimited = text(ctx.params, "limit").is_some_and(|l| l.trim() == "0");
            let items: Vec<(String, String)> = store.world.lists[li]
                .members
                .iter()
                .map(|(lid, a)| (lid.to_string(), a.clone()))
                .collect();
            if unlimited {
                let values: Vec<Value> = items
                    .iter()
                    .filter_map(|(_, a)| account_value(shared, &store, a))
                    .collect();
                return http::json_value(200, &Value::Array(values));
            }
            let page = Page::read(ctx, paging::ACCOUNTS);
            let items = page.apply(items);
            let cursors: Vec<&str> = items.iter().map(|(c, _)| c.as_str()).collect();
            let link = page.link(ctx, &cursors);
            let values: Vec<Value> = items
                .iter()
                .filter_map(|(_, a)| account_value(shared, &store, a))
                .collect();
            paging::answer(&values, link)
        }
    }
}
