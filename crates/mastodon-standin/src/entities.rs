//! Mastodon's JSON entities (Account, Status, Poll, Application), serialized straight from
//! borrowed structs so that answering a post does not build a `serde_json::Value` tree.

use serde::Serialize;
use serde_json::{json, Value};

use crate::state::{App, Shared};
use crate::time;

pub const ACCOUNT_ID: &str = "109348276342907810";
pub const USERNAME: &str = "sidecar";
pub const DISPLAY_NAME: &str = "Sidecar Bot";
pub const ACCOUNT_CREATED_AT: &str = "2022-11-15T00:00:00.000Z";
pub const NOTE: &str = "<p>Posts on behalf of the sidecar.</p>";
pub const VAPID_KEY: &str =
    "BCk-QqERU0q-CfYZjcuB6lnyyOYfJ2AifKqfeGIm7Z-HiTU5T9eTG5GxVA0_OH5mMlI4UkkDTpaZwozy0TzdZ2M=";

const NONE: &[Value] = &[];

#[derive(Serialize)]
pub struct Account<'a> {
    id: &'static str,
    username: &'static str,
    acct: &'static str,
    display_name: &'static str,
    locked: bool,
    bot: bool,
    discoverable: bool,
    indexable: bool,
    group: bool,
    created_at: &'static str,
    note: &'static str,
    url: &'a str,
    uri: &'a str,
    avatar: &'a str,
    avatar_static: &'a str,
    header: &'a str,
    header_static: &'a str,
    followers_count: u64,
    following_count: u64,
    statuses_count: u64,
    last_status_at: Option<String>,
    hide_collections: bool,
    noindex: bool,
    emojis: &'a [Value],
    roles: &'a [Value],
    fields: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Value>,
}

/// The account's URLs, computed once.
pub struct AccountUrls {
    pub url: String,
    pub uri: String,
    pub avatar: String,
    pub header: String,
}

impl AccountUrls {
    pub fn new(base: &str) -> AccountUrls {
        AccountUrls {
            url: format!("{base}/@{USERNAME}"),
            uri: format!("{base}/users/{USERNAME}"),
            avatar: format!("{base}/avatars/original/missing.png"),
            header: format!("{base}/headers/original/missing.png"),
        }
    }
}

impl<'a> Account<'a> {
    /// The stand-in's account with its current counters.
    pub fn new(shared: &'a Shared, statuses_count: u64, last_status_ms: u64) -> Account<'a> {
        let urls = &shared.account_urls;
        Account {
            id: ACCOUNT_ID,
            username: USERNAME,
            acct: USERNAME,
            display_name: DISPLAY_NAME,
            locked: false,
            bot: true,
            discoverable: true,
            indexable: true,
            group: false,
            created_at: ACCOUNT_CREATED_AT,
            note: NOTE,
            url: &urls.url,
            uri: &urls.uri,
            avatar: &urls.avatar,
            avatar_static: &urls.avatar,
            header: &urls.header,
            header_static: &urls.header,
            followers_count: 0,
            following_count: 0,
            statuses_count,
            last_status_at: (last_status_ms > 0).then(|| time::date(last_status_ms)),
            hide_collections: false,
            noindex: false,
            emojis: NONE,
            roles: NONE,
            fields: NONE,
            source: None,
            role: None,
        }
    }

    /// The CredentialAccount of `verify_credentials`: adds `source` and `role`.
    pub fn with_source(mut self) -> Self {
        self.source = Some(json!({
            "privacy": "public",
            "sensitive": false,
            "language": "en",
            "note": "Posts on behalf of the sidecar.",
            "fields": [],
            "follow_requests_count": 0,
            "hide_collections": false,
            "discoverable": true,
            "indexable": true,
        }));
        self.role = Some(json!({
            "id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": false,
        }));
        self
    }
}

#[derive(Serialize)]
pub struct AppRef<'a> {
    pub name: &'a str,
    pub website: Option<&'a str>,
}

#[derive(Serialize)]
pub struct PollOption {
    pub title: String,
    pub votes_count: u64,
}

#[derive(Serialize)]
pub struct Poll {
    pub id: String,
    pub expires_at: String,
    pub expired: bool,
    pub multiple: bool,
    pub votes_count: u64,
    pub voters_count: u64,
    pub voted: bool,
    pub own_votes: Vec<u64>,
    pub options: Vec<PollOption>,
    pub emojis: &'static [Value],
}

impl Poll {
    pub fn new(id: u64, expires_ms: u64, multiple: bool, options: Vec<String>) -> Poll {
        Poll {
            id: id.to_string(),
            expires_at: time::iso_millis(expires_ms),
            expired: false,
            multiple,
            votes_count: 0,
            voters_count: 0,
            // Mastodon counts the author as having voted on their own poll.
            voted: true,
            own_votes: Vec::new(),
            options: options
                .into_iter()
                .map(|title| PollOption {
                    title,
                    votes_count: 0,
                })
                .collect(),
            emojis: NONE,
        }
    }
}

#[derive(Serialize)]
pub struct Tag {
    pub name: String,
    pub url: String,
}

#[derive(Serialize)]
pub struct Status<'a> {
    pub id: String,
    pub created_at: String,
    pub in_reply_to_id: Option<String>,
    pub in_reply_to_account_id: Option<&'static str>,
    pub sensitive: bool,
    pub spoiler_text: &'a str,
    pub visibility: &'a str,
    pub language: Option<&'a str>,
    pub uri: String,
    pub url: String,
    pub replies_count: u64,
    pub reblogs_count: u64,
    pub favourites_count: u64,
    pub edited_at: Option<String>,
    pub favourited: bool,
    pub reblogged: bool,
    pub muted: bool,
    pub bookmarked: bool,
    pub pinned: bool,
    /// GoToSocial's extra field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_only: Option<bool>,
    pub content: String,
    pub filtered: &'a [Value],
    pub reblog: Option<Value>,
    pub application: AppRef<'a>,
    pub account: Account<'a>,
    pub media_attachments: Vec<Value>,
    pub mentions: Vec<Value>,
    pub tags: Vec<Tag>,
    pub emojis: &'a [Value],
    pub card: Option<Value>,
    pub poll: Option<Poll>,
}

/// An empty `[]` for entity fields.
pub fn none() -> &'static [Value] {
    NONE
}

/// The Mention of the stand-in's own account.
pub fn self_mention(shared: &Shared) -> Value {
    json!({
        "id": ACCOUNT_ID,
        "username": USERNAME,
        "url": format!("{}/@{USERNAME}", shared.base),
        "acct": USERNAME,
    })
}

/// A MediaAttachment for an id given in `media_ids` (the stand-in has no media store, so
/// every id is taken as an uploaded image).
pub fn media_attachment(shared: &Shared, id: &str) -> Value {
    let base = &shared.base;
    json!({
        "id": id,
        "type": "image",
        "url": format!("{base}/system/media_attachments/files/{id}/original/image.png"),
        "preview_url": format!("{base}/system/media_attachments/files/{id}/small/image.png"),
        "remote_url": null,
        "preview_remote_url": null,
        "text_url": null,
        "meta": {
            "original": {"width": 640, "height": 480, "size": "640x480", "aspect": 1.3333333333333333},
            "small": {"width": 461, "height": 346, "size": "461x346", "aspect": 1.3323699421965318},
        },
        "description": null,
        "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}",
    })
}

/// The Application as `GET /api/v1/apps/verify_credentials` shows it (no secret).
pub fn app_json(app: &App) -> Value {
    json!({
        "id": app.id,
        "name": app.name,
        "website": app.website,
        "scopes": app.scopes,
        "redirect_uris": app.redirect_uris,
        "redirect_uri": app.redirect_uris.join("\n"),
        "vapid_key": app.vapid_key,
    })
}

/// The CredentialApplication answered by `POST /api/v1/apps`.
pub fn credential_app_json(app: &App) -> Value {
    let mut v = app_json(app);
    if let Value::Object(o) = &mut v {
        o.insert("client_id".into(), app.client_id.clone().into());
        o.insert("client_secret".into(), app.client_secret.clone().into());
        o.insert("client_secret_expires_at".into(), 0.into());
    }
    v
}
