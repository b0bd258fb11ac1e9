//! The stand-in account's world beyond its own posts: other accounts, follows, favourites,
//! bookmarks, pins, notifications, lists, uploaded media and poll votes. Everything lives in
//! [`crate::state::StatusStore`] (one lock with the statuses it points at).
//!
//! The viewer is always the stand-in's account (every user token is its token): the flags a
//! Status carries (`favourited`, `reblogged`, `bookmarked`, `pinned`) and its counts are
//! rewritten into the stored body by [`refresh`] whenever they change, so listings stay a
//! copy of bytes. Other accounts act only through the seeding helpers on `StandIn`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::web::Bytes;
use serde_json::{json, Value};

use crate::entities::{self, Account, ACCOUNT_ID, USERNAME};
use crate::state::{Shared, StatusStore, StoredStatus};
use crate::time;

/// An account other than the stand-in's own.
pub struct AccountRec {
    pub id: String,
    pub username: String,
    /// `username` for a local account, `username@domain` for a remote one.
    pub acct: String,
    pub display_name: String,
    pub local: bool,
    pub created_ms: u64,
}

/// `follower` follows `target`; the id is the Follow's, which paginates followers/following.
pub struct FollowRec {
    pub id: u64,
    pub follower: String,
    pub target: String,
    pub reblogs: bool,
    pub notify: bool,
    pub languages: Option<Vec<String>>,
}

pub struct NotificationRec {
    pub id: u64,
    pub recipient: String,
    pub kind: String,
    pub from: String,
    pub status_id: Option<String>,
    pub created_ms: u64,
}

pub struct ListRec {
    pub id: String,
    pub title: String,
    pub replies_policy: String,
    pub exclusive: bool,
    /// (ListAccount id, account id), in insertion order.
    pub members: Vec<(u64, String)>,
}

/// An uploaded file, with what tests assert about what arrived.
pub struct MediaRec {
    pub id: String,
    /// `image`, `gifv`, `video`, `audio`.
    pub kind: &'static str,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: usize,
    pub sha256: String,
    pub description: Option<String>,
    pub focus: Option<(f64, f64)>,
    pub width: u64,
    pub height: u64,
    /// Processed at upload (small images) or marked so by polling.
    pub processed: bool,
    /// GETs answered 206 so far.
    pub polls: u32,
    pub uploaded: Instant,
    pub status_id: Option<String>,
}

pub struct PollRec {
    pub id: String,
    pub status_id: String,
    pub author: String,
    pub options: usize,
    pub multiple: bool,
    pub expires_ms: u64,
    /// (account id, choice index).
    pub votes: Vec<(String, usize)>,
}

#[derive(Default)]
pub struct World {
    pub accounts: Vec<AccountRec>,
    pub follows: Vec<FollowRec>,
    pub notifications: Vec<NotificationRec>,
    pub lists: Vec<ListRec>,
    pub media: Vec<MediaRec>,
    /// (Favourite id, account id, status id).
    pub favourites: Vec<(u64, String, String)>,
    /// (Bookmark id, status id): the stand-in account's.
    pub bookmarks: Vec<(u64, String)>,
    /// (StatusPin id, status id): the stand-in account's.
    pub pins: Vec<(u64, String)>,
    pub polls: Vec<PollRec>,
}

impl World {
    pub fn account(&self, id: &str) -> Option<&AccountRec> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn media(&self, id: &str) -> Option<&MediaRec> {
        self.media.iter().find(|m| m.id == id)
    }

    pub fn follow(&self, follower: &str, target: &str) -> Option<&FollowRec> {
        self.follows
            .iter()
            .find(|f| f.follower == follower && f.target == target)
    }

    pub fn list(&self, id: &str) -> Option<&ListRec> {
        self.lists.iter().find(|l| l.id == id)
    }
}

impl StatusStore {
    pub fn status(&self, id: &str) -> Option<&StoredStatus> {
        if !self.ids.contains(id) {
            return None;
        }
        self.list.iter().rev().find(|s| s.id == id)
    }

    pub fn status_mut(&mut self, id: &str) -> Option<&mut StoredStatus> {
        if !self.ids.contains(id) {
            return None;
        }
        self.list.iter_mut().rev().find(|s| s.id == id)
    }

    /// Whether an account id is known (the stand-in's or a seeded one).
    pub fn knows_account(&self, id: &str) -> bool {
        id == ACCOUNT_ID || self.world.account(id).is_some()
    }
}

impl MediaRec {
    /// Processed by now: flagged so, or `media_processing_ms` has passed since the upload.
    pub fn is_processed(&self, opts: &crate::Options) -> bool {
        self.processed
            || opts
                .media_processing_time
                .is_some_and(|t| self.uploaded.elapsed() >= t)
    }
}

/// The Account entity of `id` (the stand-in's own with its counters, or a seeded one).
pub fn account_value(shared: &Shared, store: &StatusStore, id: &str) -> Option<Value> {
    let w = &store.world;
    let followers = w.follows.iter().filter(|f| f.target == id).count();
    let following = w.follows.iter().filter(|f| f.follower == id).count();
    if id == ACCOUNT_ID {
        let mut v = serde_json::to_value(Account::new(
            shared,
            shared.statuses_count.load(Ordering::Relaxed),
            shared.last_status_ms.load(Ordering::Relaxed),
        ))
        .ok()?;
        v["followers_count"] = followers.into();
        v["following_count"] = following.into();
        return Some(v);
    }
    let a = w.account(id)?;
    let statuses = store.list.iter().filter(|s| s.account_id == id).count();
    let base = &shared.base;
    let url = if a.local {
        format!("{base}/@{}", a.username)
    } else {
        format!(
            "https://{}/@{}",
            a.acct.split_once('@').map_or("", |(_, d)| d),
            a.username
        )
    };
    Some(json!({
        "id": a.id,
        "username": a.username,
        "acct": a.acct,
        "display_name": a.display_name,
        "locked": false,
        "bot": false,
        "discoverable": true,
        "indexable": true,
        "group": false,
        "created_at": time::date(a.created_ms),
        "note": "",
        "url": url,
        "uri": if a.local { format!("{base}/users/{}", a.username) } else { url.clone() },
        "avatar": shared.account_urls.avatar,
        "avatar_static": shared.account_urls.avatar,
        "header": shared.account_urls.header,
        "header_static": shared.account_urls.header,
        "followers_count": followers,
        "following_count": following,
        "statuses_count": statuses,
        "last_status_at": null,
        "hide_collections": false,
        "noindex": false,
        "emojis": [],
        "roles": [],
        "fields": [],
    }))
}

/// The Relationship of the stand-in account with `id`.
pub fn relationship(store: &StatusStore, id: &str) -> Value {
    let w = &store.world;
    let out = w.follow(ACCOUNT_ID, id);
    json!({
        "id": id,
        "following": out.is_some(),
        "showing_reblogs": out.is_some_and(|f| f.reblogs),
        "notifying": out.is_some_and(|f| f.notify),
        "languages": out.and_then(|f| f.languages.clone()),
        "followed_by": w.follow(id, ACCOUNT_ID).is_some(),
        "blocking": false,
        "blocked_by": false,
        "muting": false,
        "muting_notifications": false,
        "requested": false,
        "requested_by": false,
        "domain_blocking": false,
        "endorsed": false,
        "note": "",
    })
}

/// The MediaAttachment entity of an upload; `url` is null while it is processing.
pub fn media_value(shared: &Shared, m: &MediaRec) -> Value {
    let base = &shared.base;
    let id = &m.id;
    let ext = m
        .content_type
        .split_once('/')
        .map_or("bin", |(_, e)| e)
        .to_owned();
    let processed = m.is_processed(&shared.opts);
    let (w, h) = (m.width, m.height);
    let aspect = if h > 0 { w as f64 / h as f64 } else { 1.0 };
    let mut meta = json!({
        "original": {"width": w, "height": h, "size": format!("{w}x{h}"), "aspect": aspect},
        "small": {"width": w.min(640), "height": h.min(480), "size": format!("{}x{}", w.min(640), h.min(480)), "aspect": aspect},
    });
    if let Some((x, y)) = m.focus {
        meta["focus"] = json!({"x": x, "y": y});
    }
    json!({
        "id": id,
        "type": m.kind,
        "url": processed.then(|| format!("{base}/system/media_attachments/files/{id}/original/file.{ext}")),
        "preview_url": format!("{base}/system/media_attachments/files/{id}/small/file.png"),
        "remote_url": null,
        "preview_remote_url": null,
        "text_url": null,
        "meta": meta,
        "description": m.description,
        "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}",
    })
}

/// What a stored status's body looks like now.
pub fn status_value(s: &StoredStatus) -> Value {
    serde_json::from_slice(&s.body).unwrap_or(Value::Null)
}

fn store_body(s: &mut StoredStatus, v: &Value) {
    s.body = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
}

/// Rewrites the counts and the stand-in account's flags of status `id` (and of every reblog
/// wrapper carrying it) into their bodies.
pub fn refresh(store: &mut StatusStore, id: &str) {
    let w = &store.world;
    let favourites = w.favourites.iter().filter(|f| f.2 == id).count();
    let favourited = w.favourites.iter().any(|f| f.2 == id && f.1 == ACCOUNT_ID);
    let bookmarked = w.bookmarks.iter().any(|b| b.1 == id);
    let pinned = w.pins.iter().any(|p| p.1 == id);
    let reblogs = store
        .list
        .iter()
        .filter(|s| s.reblog_of.as_deref() == Some(id))
        .count();
    let reblogged = store
        .list
        .iter()
        .any(|s| s.reblog_of.as_deref() == Some(id) && s.account_id == ACCOUNT_ID);
    let replies = store
        .list
        .iter()
        .filter(|s| s.in_reply_to.as_deref() == Some(id))
        .count();
    let patch = |v: &mut Value| {
        v["favourites_count"] = favourites.into();
        v["favourited"] = favourited.into();
        v["bookmarked"] = bookmarked.into();
        v["pinned"] = pinned.into();
        v["reblogs_count"] = reblogs.into();
        v["reblogged"] = reblogged.into();
        v["replies_count"] = replies.into();
    };
    let mut inner = None;
    if let Some(s) = store.status_mut(id) {
        let mut v = status_value(s);
        patch(&mut v);
        store_body(s, &v);
        inner = Some(v);
    }
    let Some(inner) = inner else { return };
    for s in store
        .list
        .iter_mut()
        .filter(|s| s.reblog_of.as_deref() == Some(id))
    {
        let mut v = status_value(s);
        v["reblog"] = inner.clone();
        store_body(s, &v);
    }
}

/// Rewrites a stored status's body through `f` (edits, poll results).
pub fn rewrite(store: &mut StatusStore, id: &str, f: impl FnOnce(&mut Value)) {
    if let Some(s) = store.status_mut(id) {
        let mut v = status_value(s);
        f(&mut v);
        store_body(s, &v);
    }
}

/// The Poll entity of a stored poll, as the stand-in account sees it.
pub fn poll_value(store: &StatusStore, p: &PollRec) -> Value {
    let titles: Vec<Value> = store
        .status(&p.status_id)
        .map(status_value)
        .and_then(|v| v["poll"]["options"].as_array().cloned())
        .unwrap_or_default();
    let mut voters: Vec<&str> = p.votes.iter().map(|(a, _)| a.as_str()).collect();
    voters.sort_unstable();
    voters.dedup();
    let own: Vec<usize> = p
        .votes
        .iter()
        .filter(|(a, _)| a == ACCOUNT_ID)
        .map(|(_, c)| *c)
        .collect();
    let options: Vec<Value> = (0..p.options)
        .map(|i| {
            json!({
                "title": titles.get(i).map_or(Value::Null, |t| t["title"].clone()),
                "votes_count": p.votes.iter().filter(|(_, c)| *c == i).count(),
            })
        })
        .collect();
    json!({
        "id": p.id,
        "expires_at": time::iso_millis(p.expires_ms),
        "expired": time::now_ms() >= p.expires_ms,
        "multiple": p.multiple,
        "votes_count": p.votes.len(),
        "voters_count": voters.len(),
        "voted": p.author == ACCOUNT_ID || !own.is_empty(),
        "own_votes": own,
        "options": options,
        "emojis": [],
    })
}

/// A notification for `recipient`.
pub fn notify(
    shared: &Shared,
    store: &mut StatusStore,
    recipient: &str,
    kind: &str,
    from: &str,
    status_id: Option<&str>,
) -> u64 {
    let id = shared.next_id();
    store.world.notifications.push(NotificationRec {
        id,
        recipient: recipient.to_owned(),
        kind: kind.to_owned(),
        from: from.to_owned(),
        status_id: status_id.map(str::to_owned),
        created_ms: time::now_ms(),
    });
    id
}

/// The Notification entity.
pub fn notification_value(shared: &Shared, store: &StatusStore, n: &NotificationRec) -> Value {
    let status = n
        .status_id
        .as_deref()
        .and_then(|id| store.status(id))
        .map(status_value);
    let mut v = json!({
        "id": n.id.to_string(),
        "type": n.kind,
        "created_at": time::iso_millis(n.created_ms),
        "group_key": format!("ungrouped-{}", n.id),
        "account": account_value(shared, store, &n.from),
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

/// The local accounts mentioned in `text` (`@name` or `@name@this-domain`), by id.
pub fn mentioned(shared: &Shared, store: &StatusStore, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_whitespace()) {
        let Some(name) = word.strip_prefix('@') else {
            continue;
        };
        let name = name.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
        let name = match name.split_once('@') {
            Some((n, d)) if d == shared.domain => n,
            Some(_) => {
                if let Some(a) = store.world.accounts.iter().find(|a| a.acct == name) {
                    out.push(a.id.clone());
                }
                continue;
            }
            None => name,
        };
        if let Some(a) = store
            .world
            .accounts
            .iter()
            .find(|a| a.local && a.username.eq_ignore_ascii_case(name))
        {
            out.push(a.id.clone());
        }
    }
    out.dedup();
    out
}

/// What a seeded status is made of (`StandIn::seed_status_with`).
#[derive(Clone, Debug)]
pub struct SeedStatus {
    pub text: String,
    /// `public` (default), `unlisted`, `private`, `direct`.
    pub visibility: String,
    pub in_reply_to: Option<String>,
    pub spoiler_text: String,
    /// Attach one processed image.
    pub with_media: bool,
    /// Poll options, `expires_in` seconds, multiple.
    pub poll: Option<(Vec<String>, u64, bool)>,
}

impl Default for SeedStatus {
    fn default() -> Self {
        SeedStatus {
            text: String::new(),
            visibility: "public".to_owned(),
            in_reply_to: None,
            spoiler_text: String::new(),
            with_media: false,
            poll: None,
        }
    }
}

/// Creates a status by a seeded account (or the stand-in's own, `ACCOUNT_ID`); mentions of
/// local accounts notify them.
pub fn seed_status(
    shared: &Shared,
    store: &mut StatusStore,
    account: &str,
    seed: SeedStatus,
) -> Option<String> {
    let author = account_value(shared, store, account)?;
    let local = account == ACCOUNT_ID || store.world.account(account).is_some_and(|a| a.local);
    let id = shared.next_id().to_string();
    let now = time::now_ms();
    let username = author["username"].as_str().unwrap_or(USERNAME).to_owned();
    let rendered = crate::text::render(&seed.text, &shared.base, USERNAME, &shared.domain);
    let mut media = Vec::new();
    let mut media_ids = Vec::new();
    if seed.with_media {
        let mid = shared.next_id().to_string();
        let rec = MediaRec {
            id: mid.clone(),
            kind: "image",
            content_type: "image/png".to_owned(),
            filename: None,
            size: 0,
            sha256: String::new(),
            description: None,
            focus: None,
            width: 640,
            height: 480,
            processed: true,
            polls: 0,
            uploaded: Instant::now(),
            status_id: Some(id.clone()),
        };
        media.push(media_value(shared, &rec));
        media_ids.push(mid);
        store.world.media.push(rec);
    }
    let poll = seed.poll.as_ref().map(|(options, expires_in, multiple)| {
        let pid = shared.next_id();
        let expires = now + expires_in * 1000;
        store.world.polls.push(PollRec {
            id: pid.to_string(),
            status_id: id.clone(),
            author: account.to_owned(),
            options: options.len(),
            multiple: *multiple,
            expires_ms: expires,
            votes: Vec::new(),
        });
        let mut p = serde_json::to_value(entities::Poll::new(
            pid,
            expires,
            *multiple,
            options.clone(),
        ))
        .unwrap_or(Value::Null);
        p["voted"] = (account == ACCOUNT_ID).into();
        p
    });
    let mentions: Vec<String> = mentioned(shared, store, &seed.text);
    let mut mention_values: Vec<Value> = Vec::new();
    if rendered.mentions_self {
        mention_values.push(entities::self_mention(shared));
    }
    for m in &mentions {
        if let Some(a) = account_value(shared, store, m) {
            mention_values.push(json!({"id": a["id"], "username": a["username"], "url": a["url"], "acct": a["acct"]}));
        }
    }
    let reply_account = seed
        .in_reply_to
        .as_deref()
        .and_then(|r| store.status(r))
        .map(|s| s.account_id.clone());
    let body = json!({
        "id": id,
        "created_at": time::iso_millis(now),
        "in_reply_to_id": seed.in_reply_to,
        "in_reply_to_account_id": reply_account,
        "sensitive": !seed.spoiler_text.is_empty(),
        "spoiler_text": seed.spoiler_text,
        "visibility": seed.visibility,
        "language": "en",
        "uri": format!("{}/users/{username}/statuses/{id}", shared.base),
        "url": format!("{}/@{username}/{id}", shared.base),
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "edited_at": null,
        "favourited": false,
        "reblogged": false,
        "muted": false,
        "bookmarked": false,
        "pinned": false,
        "content": rendered.content,
        "filtered": [],
        "reblog": null,
        "application": null,
        "account": author,
        "media_attachments": media,
        "mentions": mention_values,
        "tags": rendered.tags.iter().map(|t| json!({"name": t, "url": format!("{}/tags/{t}", shared.base)})).collect::<Vec<_>>(),
        "emojis": [],
        "card": null,
        "poll": poll,
    });
    store.ids.insert(id.clone());
    store.list.push(StoredStatus {
        id: id.clone(),
        visibility: seed.visibility.clone(),
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        account_id: account.to_owned(),
        in_reply_to: seed.in_reply_to.clone(),
        tags: rendered.tags.clone(),
        text: seed.text.clone(),
        spoiler: seed.spoiler_text.clone(),
        media_ids,
        reblog_of: None,
        poll_id: store
            .world
            .polls
            .last()
            .filter(|p| p.status_id == id)
            .map(|p| p.id.clone()),
        local,
    });
    if account == ACCOUNT_ID {
        shared.statuses_count.fetch_add(1, Ordering::Relaxed);
        shared.last_status_ms.store(now, Ordering::Relaxed);
    }
    if rendered.mentions_self && account != ACCOUNT_ID {
        notify(shared, store, ACCOUNT_ID, "mention", account, Some(&id));
    }
    for m in mentions.iter().filter(|m| m.as_str() != account) {
        notify(shared, store, m, "mention", account, Some(&id));
    }
    if let Some(parent) = seed.in_reply_to.as_deref() {
        refresh(store, parent);
    }
    Some(id)
}

/// A reblog of `status` by `account`: the wrapper status; idempotent.
pub fn reblog(
    shared: &Shared,
    store: &mut StatusStore,
    account: &str,
    status: &str,
) -> Option<String> {
    if let Some(existing) = store
        .list
        .iter()
        .find(|s| s.reblog_of.as_deref() == Some(status) && s.account_id == account)
    {
        return Some(existing.id.clone());
    }
    let author = account_value(shared, store, account)?;
    let original = store.status(status)?;
    let original_author = original.account_id.clone();
    let visibility = original.visibility.clone();
    let id = shared.next_id().to_string();
    let now = time::now_ms();
    let username = author["username"].as_str().unwrap_or(USERNAME).to_owned();
    let body = json!({
        "id": id,
        "created_at": time::iso_millis(now),
        "in_reply_to_id": null,
        "in_reply_to_account_id": null,
        "sensitive": false,
        "spoiler_text": "",
        "visibility": visibility,
        "language": null,
        "uri": format!("{}/users/{username}/statuses/{id}/activity", shared.base),
        "url": null,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "edited_at": null,
        "favourited": false,
        "reblogged": account == ACCOUNT_ID,
        "muted": false,
        "bookmarked": false,
        "pinned": false,
        "content": "",
        "filtered": [],
        "reblog": null,
        "application": null,
        "account": author,
        "media_attachments": [],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": null,
        "poll": null,
    });
    store.ids.insert(id.clone());
    store.list.push(StoredStatus {
        id: id.clone(),
        visibility,
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        account_id: account.to_owned(),
        in_reply_to: None,
        tags: Vec::new(),
        text: String::new(),
        spoiler: String::new(),
        media_ids: Vec::new(),
        reblog_of: Some(status.to_owned()),
        poll_id: None,
        local: true,
    });
    if original_author != account {
        notify(
            shared,
            store,
            &original_author,
            "reblog",
            account,
            Some(status),
        );
    }
    refresh(store, status);
    Some(id)
}

/// A favourite of `status` by `account`; idempotent.
pub fn favourite(shared: &Shared, store: &mut StatusStore, account: &str, status: &str) -> bool {
    let Some(author) = store.status(status).map(|s| s.account_id.clone()) else {
        return false;
    };
    if !store
        .world
        .favourites
        .iter()
        .any(|f| f.1 == account && f.2 == status)
    {
        let id = shared.next_id();
        store
            .world
            .favourites
            .push((id, account.to_owned(), status.to_owned()));
        if author != account {
            notify(shared, store, &author, "favourite", account, Some(status));
        }
    }
    refresh(store, status);
    true
}

/// `follower` follows `target` (options updated when it already does); a follow of the
/// stand-in account notifies it.
pub fn follow(
    shared: &Shared,
    store: &mut StatusStore,
    follower: &str,
    target: &str,
    reblogs: Option<bool>,
    notify_posts: Option<bool>,
    languages: Option<Vec<String>>,
) -> u64 {
    if let Some(f) = store
        .world
        .follows
        .iter_mut()
        .find(|f| f.follower == follower && f.target == target)
    {
        if let Some(r) = reblogs {
            f.reblogs = r;
        }
        if let Some(n) = notify_posts {
            f.notify = n;
        }
        if languages.is_some() {
            f.languages = languages;
        }
        return f.id;
    }
    let id = shared.next_id();
    store.world.follows.push(FollowRec {
        id,
        follower: follower.to_owned(),
        target: target.to_owned(),
        reblogs: reblogs.unwrap_or(true),
        notify: notify_posts.unwrap_or(false),
        languages,
    });
    if store.knows_account(target) {
        notify(shared, store, target, "follow", follower, None);
    }
    id
}

/// A new seeded account: `name` or `name@remote.domain`.
pub fn seed_account(shared: &Shared, store: &mut StatusStore, name: &str) -> String {
    let name = name.trim_start_matches('@');
    if let Some(a) = store.world.accounts.iter().find(|a| a.acct == name) {
        return a.id.clone();
    }
    let id = shared.next_id().to_string();
    let (username, local) = match name.split_once('@') {
        Some((u, d)) if d == shared.domain => (u.to_owned(), true),
        Some((u, _)) => (u.to_owned(), false),
        None => (name.to_owned(), true),
    };
    let mut display: String = username.clone();
    if let Some(first) = display.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    store.world.accounts.push(AccountRec {
        id: id.clone(),
        acct: if local {
            username.clone()
        } else {
            name.to_owned()
        },
        username,
        display_name: display,
        local,
        created_ms: time::now_ms(),
    });
    id
}
