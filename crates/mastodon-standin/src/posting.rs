//! Creating a checked post: the Status (or, with `scheduled_at` where the profile
//! schedules, the ScheduledStatus), stored and then its `Idempotency-Key` recorded, in that
//! order, as Mastodon does: the key exists only once the status does.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::web::Bytes;
use serde_json::json;

use crate::entities::{self, Account, AppRef, Poll, Status, Tag, ACCOUNT_ID, USERNAME};
use crate::profiles::Profile;
use crate::state::{lock, Shared, StoredStatus};
use crate::statuses::PollParams;
use crate::world;
use crate::{text as status_text, time};

/// Mitra remembers this many keys, shared by every account.
const MITRA_KEYS: usize = 100;

/// A post that passed every check, waiting to be created.
pub struct Draft {
    pub profile: Profile,
    /// The `Idempotency-Key` to record, when the profile honours it.
    pub key: Option<String>,
    pub scheduled_at: Option<i64>,
    pub status: String,
    pub spoiler: String,
    pub sensitive: bool,
    pub visibility: String,
    pub language: Option<String>,
    pub in_reply_to: Option<String>,
    pub media_ids: Vec<String>,
    /// The MediaAttachments of `media_ids`, checked.
    pub media: Vec<serde_json::Value>,
    pub poll: Option<PollParams>,
    /// GoToSocial's `local_only`.
    pub local_only: Option<bool>,
    pub app_id: String,
    pub app_name: String,
    pub app_website: Option<String>,
}

/// A time-ordered UUID for Mitra (its ids are UUIDs): the snowflake, then random bits.
fn uuid(snowflake: u64) -> String {
    let hex = format!("{snowflake:016x}{:016x}", rand::random::<u64>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Draft {
    /// Creates the post and answers its body.
    pub fn create(mut self, shared: &Shared) -> Bytes {
        let snowflake = shared.next_id();
        let id = match self.profile {
            Profile::Mitra => uuid(snowflake),
            _ => snowflake.to_string(),
        };
        let media = std::mem::take(&mut self.media);
        if let Some(at) = self.scheduled_at {
            return self.schedule(shared, id, at, media);
        }
        let now = time::now_ms();
        let rendered = status_text::render(&self.status, &shared.base, USERNAME, &shared.domain);
        let poll_id = self.poll.as_ref().map(|_| shared.next_id());
        let statuses_count = shared.statuses_count.fetch_add(1, Ordering::Relaxed) + 1;
        shared.last_status_ms.store(now, Ordering::Relaxed);
        let entity = Status {
            id: id.clone(),
            created_at: time::iso_millis(now),
            in_reply_to_id: self.in_reply_to.clone(),
            in_reply_to_account_id: self.in_reply_to.as_ref().map(|_| ACCOUNT_ID),
            sensitive: self.sensitive,
            spoiler_text: &self.spoiler,
            visibility: &self.visibility,
            language: self.language.as_deref(),
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
            local_only: self.local_only,
            content: rendered.content,
            filtered: entities::none(),
            reblog: None,
            application: AppRef {
                name: &self.app_name,
                website: self.app_website.as_deref(),
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
            poll: self.poll.as_ref().map(|p| {
                let expires = now + p.expires_in.unwrap_or(0).max(0) as u64 * 1000;
                Poll::new(poll_id.unwrap_or(0), expires, p.multiple, p.options.clone())
            }),
        };
        let poll = entity
            .poll
            .as_ref()
            .map(|p| (p.expires_at.clone(), p.multiple, p.options.len()));
        let mut body = Bytes::from(serde_json::to_vec(&entity).unwrap_or_default());
        let tags = entity.tags.iter().map(|t| t.name.to_lowercase()).collect();
        let mut store = lock(&shared.store);
        // Others' mentions come only from the world's accounts, so the hot path (no
        // world) skips this.
        let mentioned = if store.world.accounts.is_empty() {
            Vec::new()
        } else {
            world::mentioned(shared, &store, &self.status)
        };
        if !mentioned.is_empty() {
            let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(list) = v["mentions"].as_array_mut() {
                for m in &mentioned {
                    if let Some(a) = world::account_value(shared, &store, m) {
                        list.push(json!({"id": a["id"], "username": a["username"], "url": a["url"], "acct": a["acct"]}));
                    }
                }
            }
            body = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        }
        store.ids.insert(id.clone());
        store.list.push(StoredStatus {
            id: id.clone(),
            visibility: self.visibility.clone(),
            body: body.clone(),
            account_id: ACCOUNT_ID.to_owned(),
            in_reply_to: self.in_reply_to.clone(),
            tags,
            text: self.status.clone(),
            spoiler: self.spoiler.clone(),
            media_ids: self.media_ids.clone(),
            reblog_of: None,
            poll_id: poll_id.map(|p| p.to_string()),
            local: true,
        });
        if !self.media_ids.is_empty() {
            crate::media::attach(&mut store, &self.media_ids, &id);
        }
        if let (Some(pid), Some((_, multiple, options))) = (poll_id, poll) {
            store.world.polls.push(world::PollRec {
                id: pid.to_string(),
                status_id: id.clone(),
                author: ACCOUNT_ID.to_owned(),
                options,
                multiple,
                expires_ms: now
                    + self
                        .poll
                        .as_ref()
                        .and_then(|p| p.expires_in)
                        .unwrap_or(0)
                        .max(0) as u64
                        * 1000,
                votes: Vec::new(),
            });
        }
        for m in &mentioned {
            world::notify(shared, &mut store, m, "mention", ACCOUNT_ID, Some(&id));
        }
        if let Some(parent) = &self.in_reply_to {
            // The parent's `replies_count`.
            world::refresh(&mut store, parent);
        }
        if let Some(key) = self.key {
            if self.profile == Profile::Mitra && store.idempotency.len() >= MITRA_KEYS {
                let oldest = store
                    .idempotency
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    store.idempotency.remove(&k);
                }
            }
            store
                .idempotency
                .insert(key, (body.clone(), Instant::now()));
        }
        body
    }

    /// A ScheduledStatus; Mastodon ignores the `Idempotency-Key` of scheduled posts
    /// (mastodon issue #30039), so none is recorded.
    fn schedule(
        self,
        shared: &Shared,
        id: String,
        at: i64,
        media: Vec<serde_json::Value>,
    ) -> Bytes {
        let media_ids = (!self.media_ids.is_empty()).then_some(&self.media_ids);
        let body = json!({
            "id": id,
            "scheduled_at": time::iso_millis(at as u64),
            "params": {
                "text": self.status,
                "poll": self.poll.as_ref().map(|p| json!({
                    "options": p.options,
                    "expires_in": p.expires_in,
                    "multiple": p.multiple,
                    "hide_totals": p.hide_totals,
                })),
                "media_ids": media_ids,
                "sensitive": self.sensitive,
                "spoiler_text": self.spoiler,
                "visibility": self.visibility,
                "language": self.language,
                "in_reply_to_id": self.in_reply_to,
                "application_id": self.app_id,
                "scheduled_at": null,
                "idempotency": null,
                "with_rate_limit": false,
            },
            "media_attachments": media,
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        lock(&shared.store)
            .scheduled
            .push(crate::state::ScheduledRec {
                id: id.clone(),
                body: body.clone(),
            });
        body
    }
}
