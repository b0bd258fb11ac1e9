//! The result entities, declared once: every field's name, type, whether it is always there, and what
//! it means. The XML and SOAP encoders write results in the order declared here, the WSDL's types and
//! the OpenAPI response schemas are generated from here, and [`json_schema`] gives a self-contained
//! JSON Schema of any of them, so the documents and what is sent cannot drift.
//!
//! The fields follow Mastodon's documented entities (docs.joinmastodon.org, `entities/*`). Servers
//! differ (GoToSocial, Akkoma, Takahē, Hollo, Mitra, snac leave fields out, add their own, and answer
//! null where Mastodon answers a value), so only the fields every server sends are required, every
//! other one may be absent or null, and the entities Mastodon answers stay open: a field declared
//! nowhere here is kept. In JSON it is passed through where the server put it (the schemas say
//! `additionalProperties: true`); in XML it goes into the entity's trailing `<extra>` element, whose
//! content is free (`xs:any`), because an `xs:sequence` of named elements followed by a wildcard would
//! be ambiguous (XML Schema's unique particle attribution) and the fields must come in schema order.
//! A declared field whose value does not fit its declared type (an object where text was declared, a
//! date that is not an `xs:dateTime`) goes into `<extra>` too, so the XML sent always validates.
//!
//! The sidecar's own results (`init`, `authorizeUrl`, `getToken`, `revokeToken`, the page wrapper and
//! the error) are closed: they hold exactly the fields declared, and the document tests hold the
//! operations to that.

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};

use serde_json::{json, Map, Value};

use crate::operations::{Entity, Returns};

/// An object the sidecar answers: an XSD complexType and an OpenAPI component of this name.
#[derive(Debug)]
pub struct Shape {
    /// The type's name in the WSDL (`tns:{name}`) and the OpenAPI components.
    pub name: &'static str,
    pub description: &'static str,
    /// The fields, in the order the XML encoder writes them. None: a free object, written as it came.
    pub fields: &'static [Field],
    /// Whether fields declared nowhere may come (Mastodon's entities): kept, in XML in `<extra>`.
    pub open: bool,
}

/// One field of a [`Shape`].
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The JSON key, and the XML element name.
    pub name: &'static str,
    pub ty: Type,
    /// A list: in XML the element repeats (none for an empty list).
    pub many: bool,
    /// Always present and never null on every server; every other field may be absent or null
    /// (in XML a null, like an empty list, is no element at all).
    pub required: bool,
    pub description: &'static str,
}

/// What a field's value is.
#[derive(Clone, Copy, Debug)]
pub enum Type {
    /// Text (`xs:string`).
    Text,
    /// Text, a number or a boolean, whichever the server sent (`xs:string` in XML).
    Scalar,
    /// A whole number (`xs:long`).
    Integer,
    /// A number (`xs:double`).
    Number,
    Boolean,
    /// An ISO 8601 / RFC 3339 date and time (`xs:dateTime`).
    DateTime,
    /// A nested object.
    Object(&'static Shape),
}

/// The name of the trailing element that carries, in XML, the fields an open entity does not
/// declare (and declared fields whose value does not fit the declared type).
pub const EXTRA: &str = "extra";

const fn one(name: &'static str, ty: Type, description: &'static str) -> Field {
    Field {
        name,
        ty,
        many: false,
        required: false,
        description,
    }
}

const fn req(name: &'static str, ty: Type, description: &'static str) -> Field {
    Field {
        name,
        ty,
        many: false,
        required: true,
        description,
    }
}

const fn many(name: &'static str, ty: Type, description: &'static str) -> Field {
    Field {
        name,
        ty,
        many: true,
        required: false,
        description,
    }
}

const fn open(name: &'static str, description: &'static str, fields: &'static [Field]) -> Shape {
    Shape {
        name,
        description,
        fields,
        open: true,
    }
}

const fn closed(name: &'static str, description: &'static str, fields: &'static [Field]) -> Shape {
    Shape {
        name,
        description,
        fields,
        open: false,
    }
}

use Type::{Boolean, DateTime, Integer, Number, Object, Scalar, Text};

/// Any object, written as it came: the free content of `<extra>`, and results the sidecar cannot
/// know (`Entity::Any`).
pub static ANY: Shape = open("Any", "Any object, as the server answered it", &[]);

/// Mastodon's `{}`.
pub static EMPTY: Shape = open(
    "Empty",
    "An empty object (Mastodon answers {}; another server may say more)",
    &[],
);

pub static CUSTOM_EMOJI: Shape = open(
    "CustomEmoji",
    "A custom emoji",
    &[
        req("shortcode", Text, "The name, without colons"),
        one("url", Text, "The image URL"),
        one("static_url", Text, "A still image URL"),
        one(
            "visible_in_picker",
            Boolean,
            "Whether it is offered in the picker",
        ),
        one("category", Text, "Its category"),
    ],
);

pub static ACCOUNT_FIELD: Shape = open(
    "AccountField",
    "A name and value on a profile",
    &[
        one("name", Text, "The label"),
        one("value", Text, "The value (HTML)"),
        one(
            "verified_at",
            DateTime,
            "When the link in the value was verified",
        ),
    ],
);

pub static ACCOUNT: Shape = open(
    "Account",
    "A user or group, and its profile",
    &[
        req("id", Text, "The account's id (opaque text)"),
        req("username", Text, "The user name, without the domain"),
        req(
            "acct",
            Text,
            "user for a local account, user@domain for a remote one",
        ),
        one("url", Text, "The profile page"),
        one("uri", Text, "The ActivityPub actor id"),
        one("display_name", Text, "The profile's name"),
        one("note", Text, "The profile's bio (HTML)"),
        one("avatar", Text, "The avatar image URL"),
        one("avatar_static", Text, "A still avatar image URL"),
        one("header", Text, "The header image URL"),
        one("header_static", Text, "A still header image URL"),
        one("locked", Boolean, "Whether follows must be approved"),
        many(
            "fields",
            Object(&ACCOUNT_FIELD),
            "The profile's name/value pairs",
        ),
        many(
            "emojis",
            Object(&CUSTOM_EMOJI),
            "Custom emojis in the name and bio",
        ),
        one("bot", Boolean, "Whether it is automated"),
        one("group", Boolean, "Whether it is a group"),
        one(
            "discoverable",
            Boolean,
            "Whether it may be featured in the directory",
        ),
        one(
            "indexable",
            Boolean,
            "Whether its public posts may be searched",
        ),
        one(
            "noindex",
            Boolean,
            "Whether it asks search engines not to index it",
        ),
        one(
            "hide_collections",
            Boolean,
            "Whether its follows and followers are hidden",
        ),
        one("moved", Object(&ACCOUNT), "The account it moved to"),
        one("suspended", Boolean, "Whether it is suspended"),
        one("limited", Boolean, "Whether it is hidden by moderators"),
        one("memorial", Boolean, "Whether it is a memorial"),
        one("created_at", Text, "When it was created: midnight of that day (ISO 8601) on Mastodon, the date alone on some servers"),
        one(
            "last_status_at",
            Text,
            "The day of its last status (a date; some servers give a date and time)",
        ),
        one("statuses_count", Integer, "How many statuses it posted"),
        one("followers_count", Integer, "How many follow it"),
        one("following_count", Integer, "How many it follows"),
        many("roles", Object(&ANY), "Its highlighted roles"),
        one(
            "source",
            Object(&ANY),
            "verifyCredentials: the profile's source text and defaults",
        ),
        one("role", Object(&ANY), "verifyCredentials: the user's role"),
    ],
);

pub static MEDIA_ATTACHMENT: Shape = open(
    "MediaAttachment",
    "An uploaded image, video or audio file",
    &[
        req("id", Text, "The attachment's id"),
        req("type", Text, "image, gifv, video, audio or unknown"),
        one("url", Text, "The file's URL (null while it is processed)"),
        one("preview_url", Text, "A preview image URL"),
        one(
            "remote_url",
            Text,
            "The file on its own server, for a remote attachment",
        ),
        one("preview_remote_url", Text, "The preview on its own server"),
        one("text_url", Text, "A short URL (deprecated)"),
        one(
            "meta",
            Object(&ANY),
            "Sizes, durations and focal point, as the server gives them",
        ),
        one("description", Text, "The alternative text"),
        one("blurhash", Text, "A blurred preview (BlurHash)"),
    ],
);

pub static MENTION: Shape = open(
    "Mention",
    "An account mentioned in a status",
    &[
        req("id", Text, "The account's id"),
        one("username", Text, "The user name"),
        one("url", Text, "The profile page"),
        req("acct", Text, "user or user@domain"),
    ],
);

pub static TAG_HISTORY: Shape = open(
    "TagHistory",
    "A day's use of a hashtag",
    &[
        one("day", Scalar, "The day (UNIX seconds)"),
        one("uses", Scalar, "Statuses with the tag that day"),
        one("accounts", Scalar, "Accounts that used it that day"),
    ],
);

pub static TAG: Shape = open(
    "Tag",
    "A hashtag",
    &[
        one("id", Text, "The tag's id"),
        req("name", Text, "The tag, without #"),
        one("url", Text, "The tag's page"),
        many("history", Object(&TAG_HISTORY), "Its recent use, by day"),
        one("following", Boolean, "Whether the user follows it"),
    ],
);

pub static POLL_OPTION: Shape = open(
    "PollOption",
    "One choice of a poll",
    &[
        req("title", Text, "The choice's text"),
        one(
            "votes_count",
            Integer,
            "Votes for it (null while totals are hidden)",
        ),
    ],
);

pub static POLL: Shape = open(
    "Poll",
    "A poll attached to a status",
    &[
        req("id", Text, "The poll's id"),
        one("expires_at", DateTime, "When it ends (null: never)"),
        one("expired", Boolean, "Whether it has ended"),
        one("multiple", Boolean, "Whether several choices may be voted"),
        one("votes_count", Integer, "Votes received"),
        one(
            "voters_count",
            Integer,
            "Accounts that voted (multiple-choice polls)",
        ),
        many("options", Object(&POLL_OPTION), "The choices"),
        many(
            "emojis",
            Object(&CUSTOM_EMOJI),
            "Custom emojis in the choices",
        ),
        one("voted", Boolean, "Whether the user voted"),
        many("own_votes", Integer, "The indexes of the user's choices"),
    ],
);

pub static PREVIEW_CARD: Shape = open(
    "PreviewCard",
    "The preview of a link in a status",
    &[
        one("url", Text, "The link"),
        one("title", Text, "Its title"),
        one("description", Text, "Its description"),
        one("type", Text, "link, photo, video or rich"),
        one("author_name", Text, "Its author"),
        one("author_url", Text, "Its author's page"),
        one("provider_name", Text, "Its site"),
        one("provider_url", Text, "Its site's URL"),
        one("html", Text, "An embed (HTML)"),
        one("width", Integer, "Width of the embed or image"),
        one("height", Integer, "Height of the embed or image"),
        one("image", Text, "A preview image URL"),
        one("image_description", Text, "The image's alternative text"),
        one("embed_url", Text, "An embed URL"),
        one("blurhash", Text, "A blurred preview"),
        one("language", Text, "Its language"),
        one("published_at", DateTime, "When it was published"),
        many("authors", Object(&ANY), "Its fediverse authors"),
    ],
);

pub static STATUS_APPLICATION: Shape = open(
    "StatusApplication",
    "The app that posted a status",
    &[
        one("name", Text, "The app's name"),
        one("website", Text, "The app's website"),
    ],
);

pub static QUOTE: Shape = open(
    "Quote",
    "A status this status quotes (Mastodon 4.5)",
    &[
        one(
            "state",
            Text,
            "pending, accepted, rejected, revoked, deleted or unauthorized",
        ),
        one(
            "quoted_status",
            Object(&STATUS),
            "The quoted status, where it may be shown",
        ),
        one(
            "quoted_status_id",
            Text,
            "The quoted status's id (nested quotes)",
        ),
    ],
);

pub static STATUS: Shape = open(
    "Status",
    "A status (post) and its author",
    &[
        req("id", Text, "The status's id"),
        one("uri", Text, "The ActivityPub object id"),
        req("created_at", DateTime, "When it was posted"),
        req("account", Object(&ACCOUNT), "Its author"),
        req("content", Text, "The text (HTML)"),
        one(
            "visibility",
            Text,
            "public, unlisted, private or direct (some servers have more)",
        ),
        one("sensitive", Boolean, "Whether its media is sensitive"),
        one("spoiler_text", Text, "The content warning"),
        many("media_attachments", Object(&MEDIA_ATTACHMENT), "Its media"),
        one(
            "application",
            Object(&STATUS_APPLICATION),
            "The app that posted it (own statuses)",
        ),
        many("mentions", Object(&MENTION), "The accounts it mentions"),
        many("tags", Object(&TAG), "Its hashtags"),
        many("emojis", Object(&CUSTOM_EMOJI), "Custom emojis in it"),
        one("reblogs_count", Integer, "Boosts"),
        one("favourites_count", Integer, "Favourites"),
        one("replies_count", Integer, "Replies"),
        one("quotes_count", Integer, "Quotes"),
        one("url", Text, "Its page"),
        one("in_reply_to_id", Text, "The status it replies to"),
        one("in_reply_to_account_id", Text, "The account it replies to"),
        one(
            "reblog",
            Object(&STATUS),
            "The boosted status, when this one is a boost",
        ),
        one("poll", Object(&POLL), "Its poll"),
        one(
            "card",
            Object(&PREVIEW_CARD),
            "The preview of its first link",
        ),
        one("language", Text, "Its language (ISO 639)"),
        one(
            "text",
            Text,
            "Its source text (answered by deleteStatus, to redraft it)",
        ),
        one("edited_at", DateTime, "When it was last edited"),
        one("favourited", Boolean, "Whether the user favourited it"),
        one("reblogged", Boolean, "Whether the user boosted it"),
        one("muted", Boolean, "Whether the user muted its conversation"),
        one("bookmarked", Boolean, "Whether the user bookmarked it"),
        one(
            "pinned",
            Boolean,
            "Whether it is pinned to its author's profile",
        ),
        many("filtered", Object(&ANY), "The user's filters it matched"),
        one("quote", Object(&QUOTE), "The status it quotes"),
        one("quote_approval", Object(&ANY), "Who may quote it"),
    ],
);

pub static SCHEDULED_POLL: Shape = open(
    "ScheduledPoll",
    "The poll a scheduled status will have",
    &[
        many("options", Scalar, "The choices"),
        one("expires_in", Scalar, "Seconds it will last"),
        one("multiple", Scalar, "Whether several choices may be voted"),
        one(
            "hide_totals",
            Scalar,
            "Whether totals stay hidden until it ends",
        ),
    ],
);

pub static SCHEDULED_PARAMS: Shape = open(
    "ScheduledStatusParams",
    "The parameters the status will be posted with, as they were given (text, numbers or booleans)",
    &[
        one("text", Text, "The text"),
        one("poll", Object(&SCHEDULED_POLL), "The poll"),
        many("media_ids", Scalar, "The media to attach"),
        one("sensitive", Scalar, "Whether the media is sensitive"),
        one("spoiler_text", Text, "The content warning"),
        one("visibility", Text, "The visibility"),
        one("in_reply_to_id", Scalar, "The status it will reply to"),
        one("language", Text, "The language"),
        one(
            "application_id",
            Scalar,
            "The app's internal id (deprecated)",
        ),
        one("scheduled_at", Scalar, "Always null"),
        one("idempotency", Text, "The idempotency key"),
        one("with_rate_limit", Scalar, "Deprecated"),
        one("quoted_status_id", Scalar, "The status it will quote"),
        one(
            "quote_approval_policy",
            Text,
            "Who will be allowed to quote it",
        ),
    ],
);

pub static SCHEDULED_STATUS: Shape = open(
    "ScheduledStatus",
    "A status to be posted later",
    &[
        req("id", Text, "The scheduled status's id"),
        req("scheduled_at", DateTime, "When it will be posted"),
        req("params", Object(&SCHEDULED_PARAMS), "What will be posted"),
        many(
            "media_attachments",
            Object(&MEDIA_ATTACHMENT),
            "The media it will have",
        ),
    ],
);

/// `postStatus`'s result: a Status, or a ScheduledStatus when `scheduled_at` was given. XML Schema
/// cannot choose between two sequences that both begin with `id`, so this is one type with the
/// fields of both, none required: the Status's, then the ScheduledStatus's own.
pub static STATUS_OR_SCHEDULED: LazyLock<Shape> = LazyLock::new(|| {
    let mut fields: Vec<Field> = STATUS.fields.to_vec();
    for f in SCHEDULED_STATUS.fields {
        if !fields.iter().any(|g| g.name == f.name) {
            fields.push(*f);
        }
    }
    for f in &mut fields {
        f.required = false;
    }
    Shape {
        name: "StatusOrScheduledStatus",
        description: "A Status; or, when scheduled_at was given, a ScheduledStatus (id, scheduled_at, params, media_attachments)",
        fields: Vec::leak(fields),
        open: true,
    }
});

pub static NOTIFICATION: Shape = open(
    "Notification",
    "Something that happened to the user: a mention, a boost, a follow...",
    &[
        req("id", Text, "The notification's id"),
        req(
            "type",
            Text,
            "mention, status, reblog, follow, follow_request, favourite, poll, update, quote, ...",
        ),
        one("group_key", Text, "Its group (grouped notifications)"),
        req("created_at", DateTime, "When it happened"),
        req("account", Object(&ACCOUNT), "The account that acted"),
        one("status", Object(&STATUS), "The status concerned"),
        one(
            "report",
            Object(&ANY),
            "The report concerned (admin.report)",
        ),
        one(
            "event",
            Object(&ANY),
            "The severance event (severed_relationships)",
        ),
        one(
            "moderation_warning",
            Object(&ANY),
            "The warning (moderation_warning)",
        ),
    ],
);

pub static LIST: Shape = open(
    "List",
    "A list of accounts, with its own timeline",
    &[
        req("id", Text, "The list's id"),
        req("title", Text, "Its title"),
        one("replies_policy", Text, "followed, list or none"),
        one(
            "exclusive",
            Boolean,
            "Whether its members leave the home timeline",
        ),
    ],
);

pub static RELATIONSHIP: Shape = open(
    "Relationship",
    "How the user relates to an account",
    &[
        req("id", Text, "The account's id"),
        one("following", Boolean, "The user follows it"),
        one("showing_reblogs", Boolean, "Its boosts are shown"),
        one("notifying", Boolean, "Its posts are notified"),
        many("languages", Text, "The languages followed"),
        one("followed_by", Boolean, "It follows the user"),
        one("blocking", Boolean, "The user blocks it"),
        one("blocked_by", Boolean, "It blocks the user"),
        one("muting", Boolean, "The user mutes it"),
        one(
            "muting_notifications",
            Boolean,
            "The user mutes its notifications",
        ),
        one("requested", Boolean, "A follow request is pending"),
        one("requested_by", Boolean, "It asked to follow the user"),
        one("domain_blocking", Boolean, "The user blocks its domain"),
        one("endorsed", Boolean, "The user features it"),
        one("note", Text, "The user's note on it"),
    ],
);

pub static CONTEXT: Shape = open(
    "Context",
    "A status's thread",
    &[
        many(
            "ancestors",
            Object(&STATUS),
            "The statuses it replies to, oldest first",
        ),
        many("descendants", Object(&STATUS), "The replies to it"),
    ],
);

pub static SEARCH: Shape = open(
    "Search",
    "What a search found",
    &[
        many("accounts", Object(&ACCOUNT), "Accounts"),
        many("statuses", Object(&STATUS), "Statuses"),
        many("hashtags", Object(&TAG), "Hashtags"),
    ],
);

pub static INSTANCE_USERS: Shape = open(
    "InstanceUsers",
    "Users",
    &[one(
        "active_month",
        Integer,
        "Users active in the last 30 days",
    )],
);

pub static INSTANCE_USAGE: Shape = open(
    "InstanceUsage",
    "How the server is used",
    &[one("users", Object(&INSTANCE_USERS), "Users")],
);

pub static INSTANCE_THUMBNAIL: Shape = open(
    "InstanceThumbnail",
    "The server's banner",
    &[
        one("url", Text, "The image URL"),
        one("blurhash", Text, "A blurred preview"),
        one("versions", Object(&ANY), "Other resolutions (@1x, @2x)"),
    ],
);

pub static INSTANCE_ICON: Shape = open(
    "InstanceIcon",
    "An icon of the server",
    &[
        one("src", Text, "The image URL"),
        one("size", Text, "Its size, as WIDTHxHEIGHT"),
    ],
);

pub static INSTANCE_URLS: Shape = open(
    "InstanceUrls",
    "The server's URLs",
    &[
        one("streaming", Text, "The streaming API"),
        one("status", Text, "Its status page"),
        one("about", Text, "Its about page"),
        one("privacy_policy", Text, "Its privacy policy"),
        one("terms_of_service", Text, "Its terms of service"),
    ],
);

pub static INSTANCE_VAPID: Shape = open(
    "InstanceVapid",
    "Web push",
    &[one("public_key", Text, "The VAPID public key")],
);

pub static INSTANCE_ACCOUNTS: Shape = open(
    "InstanceAccountLimits",
    "Limits on accounts",
    &[
        one(
            "max_featured_tags",
            Integer,
            "Featured hashtags per profile",
        ),
        one(
            "max_pinned_statuses",
            Integer,
            "Pinned statuses per profile",
        ),
    ],
);

pub static INSTANCE_STATUSES: Shape = open(
    "InstanceStatusLimits",
    "Limits on statuses",
    &[
        one("max_characters", Integer, "Characters per status"),
        one("max_media_attachments", Integer, "Media per status"),
        one("characters_reserved_per_url", Integer, "What a URL counts"),
    ],
);

pub static INSTANCE_MEDIA: Shape = open(
    "InstanceMediaLimits",
    "Limits on media",
    &[
        many("supported_mime_types", Text, "The file types taken"),
        one(
            "description_limit",
            Integer,
            "Characters of alternative text",
        ),
        one("image_size_limit", Integer, "Bytes per image"),
        one("image_matrix_limit", Integer, "Pixels per image"),
        one("video_size_limit", Integer, "Bytes per video"),
        one("video_frame_rate_limit", Integer, "Frames per second"),
        one("video_matrix_limit", Integer, "Pixels per video frame"),
    ],
);

pub static INSTANCE_POLLS: Shape = open(
    "InstancePollLimits",
    "Limits on polls",
    &[
        one("max_options", Integer, "Choices per poll"),
        one(
            "max_characters_per_option",
            Integer,
            "Characters per choice",
        ),
        one("min_expiration", Integer, "Shortest duration, in seconds"),
        one("max_expiration", Integer, "Longest duration, in seconds"),
    ],
);

pub static INSTANCE_TRANSLATION: Shape = open(
    "InstanceTranslation",
    "Translation",
    &[one(
        "enabled",
        Boolean,
        "Whether statuses can be translated",
    )],
);

pub static INSTANCE_CONFIGURATION: Shape = open(
    "InstanceConfiguration",
    "The server's configuration and limits",
    &[
        one("urls", Object(&INSTANCE_URLS), "URLs"),
        one("vapid", Object(&INSTANCE_VAPID), "Web push"),
        one("accounts", Object(&INSTANCE_ACCOUNTS), "Limits on accounts"),
        one("statuses", Object(&INSTANCE_STATUSES), "Limits on statuses"),
        one(
            "media_attachments",
            Object(&INSTANCE_MEDIA),
            "Limits on media",
        ),
        one("polls", Object(&INSTANCE_POLLS), "Limits on polls"),
        one("translation", Object(&INSTANCE_TRANSLATION), "Translation"),
    ],
);

pub static INSTANCE_REGISTRATIONS: Shape = open(
    "InstanceRegistrations",
    "Sign-ups",
    &[
        one("enabled", Boolean, "Whether sign-ups are open"),
        one("approval_required", Boolean, "Whether they are reviewed"),
        one("message", Text, "A message when they are closed (HTML)"),
        one("url", Text, "Where to sign up elsewhere"),
        one("min_age", Integer, "The minimum age"),
        one("reason_required", Boolean, "Whether a reason must be given"),
    ],
);

pub static INSTANCE_CONTACT: Shape = open(
    "InstanceContact",
    "Whom to contact",
    &[
        one("email", Text, "An email address"),
        one("account", Object(&ACCOUNT), "An account"),
    ],
);

pub static RULE: Shape = open(
    "Rule",
    "A server rule",
    &[
        one("id", Text, "The rule's id"),
        one("text", Text, "The rule"),
        one("hint", Text, "More about it"),
    ],
);

pub static INSTANCE: Shape = open(
    "Instance",
    "The server: its name, version, configuration and limits (GET /api/v2/instance)",
    &[
        one("domain", Text, "Its domain"),
        one("title", Text, "Its name"),
        one(
            "version",
            Text,
            "Its version (Mastodon's, or the compatible one a server claims)",
        ),
        one("source_url", Text, "Its source code"),
        one("description", Text, "A short description"),
        one("usage", Object(&INSTANCE_USAGE), "Usage"),
        one("thumbnail", Object(&INSTANCE_THUMBNAIL), "Its banner"),
        many("icon", Object(&INSTANCE_ICON), "Its icons"),
        many("languages", Text, "Its languages (ISO 639)"),
        one(
            "configuration",
            Object(&INSTANCE_CONFIGURATION),
            "Configuration and limits",
        ),
        one("registrations", Object(&INSTANCE_REGISTRATIONS), "Sign-ups"),
        one(
            "api_versions",
            Object(&ANY),
            "API versions by implementation",
        ),
        one("contact", Object(&INSTANCE_CONTACT), "Whom to contact"),
        many("rules", Object(&RULE), "Its rules"),
    ],
);

pub static APPLICATION: Shape = open(
    "Application",
    "createApp: the app as the server registered it (its secret only where expose_secrets allows)",
    &[
        one("id", Text, "The app's id"),
        req("name", Text, "Its name"),
        one("website", Text, "Its website"),
        many("scopes", Text, "The scopes it may ask for"),
        many("redirect_uris", Text, "Where the authorization may go"),
        one(
            "redirect_uri",
            Text,
            "The same, newline-separated (deprecated)",
        ),
        one("client_id", Text, "The OAuth client id"),
        one(
            "client_secret",
            Text,
            "The OAuth client secret (only with expose_secrets)",
        ),
        one(
            "client_secret_expires_at",
            Scalar,
            "When the secret expires (0: never)",
        ),
        one("vapid_key", Text, "The web push key (deprecated)"),
        one("connection", Text, "The sidecar connection it belongs to"),
    ],
);

pub static SOFTWARE: Shape = closed(
    "Software",
    "The software behind the server (nodeinfo)",
    &[
        req(
            "name",
            Text,
            "mastodon, gotosocial, takahe, ..., or unknown",
        ),
        one("version", Text, "Its version"),
    ],
);

pub static INSTANCE_SUMMARY: Shape = closed(
    "InstanceSummary",
    "What the sidecar learned of the server",
    &[
        req("url", Text, "The URL the sidecar talks to"),
        one("domain", Text, "Its domain"),
        one("version", Text, "Its version"),
        one(
            "max_characters",
            Integer,
            "Characters per status (null: the server does not say)",
        ),
        req("pkce", Boolean, "Whether it takes PKCE (S256)"),
        req("software", Object(&SOFTWARE), "Its software"),
        req(
            "capabilities",
            Object(&ANY),
            "What the sidecar takes it to do, by name",
        ),
    ],
);

pub static CONNECTED_ACCOUNT: Shape = closed(
    "ConnectedAccount",
    "The account the user token acts for",
    &[
        one("id", Scalar, "Its id"),
        one("acct", Scalar, "user or user@domain"),
        one("url", Scalar, "Its profile page"),
    ],
);

pub static CONNECTION_REPORT: Shape = closed(
    "ConnectionReport",
    "init: the connection's server, its limits, and the credentials held",
    &[
        req("connection", Text, "The connection's name"),
        req("instance", Object(&INSTANCE_SUMMARY), "The server"),
        req(
            "app_registered",
            Boolean,
            "Whether an app is registered (createApp ran)",
        ),
        req(
            "user_token",
            Boolean,
            "Whether a user token is held and valid (getToken ran)",
        ),
        one("account", Object(&CONNECTED_ACCOUNT), "The token's account"),
    ],
);

pub static AUTHORIZATION_URL: Shape = closed(
    "AuthorizationUrl",
    "authorizeUrl: the page a person opens to approve the app",
    &[
        req("url", Text, "The authorization URL"),
        req("state", Text, "The state to give getToken with the code"),
    ],
);

pub static TOKEN_REPORT: Shape = closed(
    "TokenReport",
    "getToken: the token obtained and kept (itself only where expose_secrets allows)",
    &[
        req("connection", Text, "The connection's name"),
        req(
            "grant_type",
            Text,
            "authorization_code or client_credentials",
        ),
        req("token_type", Text, "Bearer"),
        req("scope", Text, "The scopes granted, space-separated"),
        req("created_at", Integer, "When it was issued (UNIX seconds)"),
        one(
            "expires_in",
            Integer,
            "Seconds until it expires, where the server says",
        ),
        one("access_token", Text, "The token (only with expose_secrets)"),
    ],
);

pub static REVOCATION: Shape = closed(
    "Revocation",
    "revokeToken: the token revoked and forgotten",
    &[
        req("connection", Text, "The connection's name"),
        req("token_kind", Text, "user or app"),
        req("revoked", Boolean, "true"),
        one("note", Text, "What else happened"),
    ],
);

/// The cursors of a page, from the server's `Link` header: give them back to read on.
pub static CURSOR: Shape = closed(
    "Cursor",
    "The parameters that read the next (or previous) page",
    &[
        one("max_id", Text, "Older than this"),
        one("since_id", Text, "Newer than this"),
        one("min_id", Text, "Immediately newer than this"),
        one("offset", Text, "Skip this many"),
    ],
);

pub static UPSTREAM: Shape = closed(
    "Upstream",
    "What the server answered, where it answered",
    &[
        req("status", Integer, "Its HTTP status"),
        one("error", Text, "Its error text"),
    ],
);

/// Every error, in every format: the problem+json body, the plain-XML `<error>`, and (as the element
/// `tns:error`) the SOAP fault's detail.
pub static ERROR: Shape = closed(
    "Error",
    "An error: what went wrong, classified (see the contract's error table)",
    &[
        req("type", Text, "urn:mastodon-sidecar:error:<code>"),
        req("title", Text, "The code's title"),
        req("status", Integer, "The HTTP status"),
        req("detail", Text, "What went wrong and what to do"),
        req("code", Text, "The error code"),
        one("operation", Text, "The operation, where known"),
        req("correlation_id", Text, "The call's correlation id"),
        one(
            "upstream",
            Object(&UPSTREAM),
            "What the server answered, where it answered",
        ),
    ],
);

/// The declaration of `entity`.
pub fn shape(entity: Entity) -> &'static Shape {
    match entity {
        Entity::Account => &ACCOUNT,
        Entity::Status => &STATUS,
        Entity::StatusOrScheduled => &STATUS_OR_SCHEDULED,
        Entity::ScheduledStatus => &SCHEDULED_STATUS,
        Entity::Context => &CONTEXT,
        Entity::MediaAttachment => &MEDIA_ATTACHMENT,
        Entity::Notification => &NOTIFICATION,
        Entity::Poll => &POLL,
        Entity::List => &LIST,
        Entity::Relationship => &RELATIONSHIP,
        Entity::Instance => &INSTANCE,
        Entity::Search => &SEARCH,
        Entity::Application => &APPLICATION,
        Entity::ConnectionReport => &CONNECTION_REPORT,
        Entity::AuthorizationUrl => &AUTHORIZATION_URL,
        Entity::TokenReport => &TOKEN_REPORT,
        Entity::Revocation => &REVOCATION,
        Entity::Empty => &EMPTY,
        Entity::Any => &ANY,
    }
}

/// The shape of an operation's whole result: the entity, a page of them (`{items, next, prev}`) or a
/// list (`{items}`). Pages and lists are made once per entity and kept.
pub fn result_shape(returns: Returns) -> &'static Shape {
    match returns {
        Returns::One(entity) => shape(entity),
        Returns::Page(entity) => wrapper(shape(entity), true),
        Returns::List(entity) => wrapper(shape(entity), false),
    }
}

/// `{items, next, prev}` (a page) or `{items}` (a list) of `inner`, made at most once each.
fn wrapper(inner: &'static Shape, page: bool) -> &'static Shape {
    static MADE: Mutex<Vec<(&'static str, bool, &'static Shape)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, shape)) = made
        .iter()
        .find(|(name, p, _)| *name == inner.name && *p == page)
    {
        return shape;
    }
    // Leaked once per entity and kind (a bounded, small number): the shapes live as long as the
    // statics they wrap.
    let mut fields = vec![many(
        "items",
        Object(inner),
        "The entities, in the server's order",
    )];
    let (name, description) = if page {
        fields.push(one(
            "next",
            Object(&CURSOR),
            "Give these parameters to read older entities; absent at the end",
        ));
        fields.push(one(
            "prev",
            Object(&CURSOR),
            "Give these parameters to read newer entities",
        ));
        (
            format!("{}Page", inner.name),
            "A page of entities and the cursors to read on",
        )
    } else {
        (
            format!("{}List", inner.name),
            "The entities (the server does not page them)",
        )
    };
    let shape: &'static Shape = Box::leak(Box::new(Shape {
        name: String::leak(name),
        description,
        fields: Vec::leak(fields),
        open: false,
    }));
    made.push((inner.name, page, shape));
    shape
}

/// Every named shape the results and errors of `returns` use, each once, in a stable order (the
/// ones reached first first).
pub fn shapes_used(all: impl IntoIterator<Item = Returns>) -> Vec<&'static Shape> {
    fn visit(
        shape: &'static Shape,
        seen: &mut BTreeSet<&'static str>,
        out: &mut Vec<&'static Shape>,
    ) {
        if !seen.insert(shape.name) {
            return;
        }
        out.push(shape);
        for f in shape.fields {
            if let Object(inner) = f.ty {
                visit(inner, seen, out);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    visit(&ANY, &mut seen, &mut out);
    visit(&ERROR, &mut seen, &mut out);
    for returns in all {
        visit(result_shape(returns), &mut seen, &mut out);
    }
    out
}

impl Shape {
    /// The declared field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether the value is written as it came (no declared fields).
    pub fn is_free(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Whether `value` (not null) can be written as one element of type `ty` that its schema accepts.
pub fn fits(ty: Type, value: &Value) -> bool {
    match (ty, value) {
        (Object(_), Value::Object(_)) => true,
        (Object(_), _) | (_, Value::Object(_) | Value::Array(_) | Value::Null) => false,
        (Text | Scalar, _) => true,
        (Boolean, Value::Bool(_)) => true,
        (Boolean, Value::String(s)) => matches!(s.as_str(), "true" | "false" | "1" | "0"),
        (Integer, Value::Number(n)) => n.is_i64(),
        (Integer, Value::String(s)) => s.parse::<i64>().is_ok() && !s.starts_with('+'),
        (Number, Value::Number(_)) => true,
        (Number, Value::String(s)) => {
            s.parse::<f64>().is_ok_and(f64::is_finite)
                && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        }
        (DateTime, Value::String(s)) => is_xsd_date_time(s),
        (Integer | Number | DateTime | Boolean, _) => false,
    }
}

/// An `xs:dateTime` that is also an RFC 3339 timestamp: `YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)`, a real
/// date, the offset within ±14:00.
fn is_xsd_date_time(s: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    let b = s.as_bytes();
    // RFC 3339 also takes `t`, `z` and a space; XML Schema only `T` and `Z`.
    if b.len() < 20 || b[10] != b'T' || s.contains(['t', 'z', ' ']) {
        return false;
    }
    match time::OffsetDateTime::parse(s, &Rfc3339) {
        Ok(at) => at.offset().whole_minutes().unsigned_abs() <= 14 * 60,
        Err(_) => false,
    }
}

/// How nullable fields and nested entities are written in a JSON Schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Self-contained (no `$ref`; nested entities inlined, a recursive one cut at its second
    /// appearance on a path), in the subset JSON Schema draft-04 and Swagger 2.0 share (`type`,
    /// `properties`, `items`, `required`, `description`, `format: date-time`). A field that may be
    /// null is simply not required: a caller that treats null as absent validates with it.
    Portable,
    /// OpenAPI 3.0: nested entities as `$ref` to `#/components/schemas/{name}`, and every field
    /// that is not required `nullable: true` (a nested one as `allOf: [$ref]` with `nullable`).
    OpenApi30,
}

/// The self-contained JSON Schema of `entity` ([`Dialect::Portable`]): for WSO2 MI output schemas,
/// Swagger 2.0 documents and the like.
pub fn json_schema(entity: Entity) -> Value {
    schema_of(shape(entity), Dialect::Portable, &mut Vec::new())
}

/// The self-contained JSON Schema of an operation's whole result: the entity (`One`), a page
/// `{items, next, prev}` (`Page`) or a list `{items}` (`List`).
pub fn result_json_schema(returns: Returns) -> Value {
    schema_of(result_shape(returns), Dialect::Portable, &mut Vec::new())
}

/// The schema of `shape` in `dialect`; `path` is the shapes being inlined around it (Portable).
pub fn schema_of(shape: &'static Shape, dialect: Dialect, path: &mut Vec<&'static str>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    path.push(shape.name);
    for f in shape.fields {
        properties.insert(f.name.to_owned(), field_schema(f, dialect, path));
        if f.required {
            required.push(f.name);
        }
    }
    path.pop();
    let mut schema = json!({
        "type": "object",
        "description": shape.description,
    });
    if !properties.is_empty() {
        schema["properties"] = Value::Object(properties);
    }
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema["additionalProperties"] = json!(shape.open);
    schema
}

fn field_schema(f: &Field, dialect: Dialect, path: &mut Vec<&'static str>) -> Value {
    let nullable = !f.required && dialect == Dialect::OpenApi30;
    let mut item = match f.ty {
        Text => json!({"type": "string"}),
        Scalar => json!({}),
        Integer => json!({"type": "integer"}),
        Number => json!({"type": "number"}),
        Boolean => json!({"type": "boolean"}),
        DateTime => json!({"type": "string", "format": "date-time"}),
        Object(inner) => match dialect {
            Dialect::OpenApi30 => {
                json!({"allOf": [{"$ref": format!("#/components/schemas/{}", inner.name)}]})
            }
            // A shape already inlined twice on this path (a boost's boost, a moved account's
            // move) is cut short: any object.
            Dialect::Portable if path.iter().filter(|n| **n == inner.name).count() >= 2 => {
                json!({"type": "object", "description": inner.description, "additionalProperties": true})
            }
            Dialect::Portable => schema_of(inner, dialect, path),
        },
    };
    if f.many {
        let mut array = json!({"type": "array", "items": item});
        array["description"] = json!(f.description);
        if nullable {
            array["nullable"] = json!(true);
        }
        return array;
    }
    if let Value::Object(map) = &mut item {
        map.insert("description".into(), json!(f.description));
        if nullable {
            map.insert("nullable".into(), json!(true));
        }
    }
    item
}

/// The OpenAPI 3.0 components of every shape the operations' results and the errors use, by name.
pub fn openapi_components(all: impl IntoIterator<Item = Returns>) -> Map<String, Value> {
    shapes_used(all)
        .into_iter()
        .map(|shape| {
            (
                shape.name.to_owned(),
                schema_of(shape, Dialect::OpenApi30, &mut Vec::new()),
            )
        })
        .collect()
}

/// Declared fields with their values, in declared order.
pub type Declared<'a> = Vec<(&'static Field, &'a Value)>;
/// Other fields by key, in the object's order.
pub type Others<'a> = Vec<(&'a str, &'a Value)>;

/// The fields of `map` that `shape` declares and that fit, in declared order, and the others (extra
/// fields, and declared ones whose value does not fit), in the map's order. Null values and empty
/// lists are left out of both: XML writes no element for them.
pub fn split<'a>(shape: &'static Shape, map: &'a Map<String, Value>) -> (Declared<'a>, Others<'a>) {
    let mut declared = Vec::with_capacity(shape.fields.len());
    let mut others: Others<'a> = Vec::new();
    for f in shape.fields {
        let Some(value) = map.get(f.name) else {
            continue;
        };
        match value {
            Value::Null => {}
            Value::Array(items) if f.many => {
                if items.iter().all(|v| v.is_null() || fits(f.ty, v)) {
                    declared.push((f, value));
                } else {
                    others.push((f.name, value));
                }
            }
            // One value where a list is declared: a list of one, as the XML would read it back.
            v if f.many && fits(f.ty, v) => declared.push((f, value)),
            v if !f.many && fits(f.ty, v) => declared.push((f, value)),
            _ => others.push((f.name, value)),
        }
    }
    for (key, value) in map {
        if !value.is_null() && shape.field(key).is_none() {
            others.push((key.as_str(), value));
        }
    }
    (declared, others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::Operation;

    #[test]
    fn names_are_unique_and_no_field_is_called_extra() {
        let shapes = shapes_used(Operation::ALL.iter().map(|op| op.returns()));
        let mut names = BTreeSet::new();
        for s in &shapes {
            assert!(names.insert(s.name), "{} twice", s.name);
            let mut fields = BTreeSet::new();
            for f in s.fields {
                assert!(fields.insert(f.name), "{}.{} twice", s.name, f.name);
                assert_ne!(f.name, EXTRA, "{}", s.name);
                assert!(!f.description.is_empty(), "{}.{}", s.name, f.name);
            }
        }
        for entity in [
            "Status",
            "Account",
            "MediaAttachment",
            "Notification",
            "ScheduledStatus",
            "Poll",
            "List",
            "Relationship",
            "Instance",
            "Application",
            "Context",
            "Search",
            "ConnectionReport",
            "AuthorizationUrl",
            "TokenReport",
            "Revocation",
            "StatusPage",
            "RelationshipList",
            "Error",
        ] {
            assert!(names.contains(entity), "{entity} is not used");
        }
    }

    #[test]
    fn the_portable_schema_is_self_contained_and_bounded() {
        let schema = json_schema(Entity::Status);
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("nullable") && !text.contains("oneOf"));
        // The boost is inlined once, its own boost cut short.
        let reblog = &schema["properties"]["reblog"];
        assert_eq!(
            reblog["properties"]["account"]["properties"]["acct"]["type"],
            "string"
        );
        assert!(reblog["properties"]["reblog"]["properties"].is_null());
        assert_eq!(schema["properties"]["created_at"]["format"], "date-time");
        assert_eq!(schema["additionalProperties"], true);
        let page = result_json_schema(Returns::Page(Entity::Notification));
        assert_eq!(page["properties"]["items"]["type"], "array");
        assert_eq!(
            page["properties"]["items"]["items"]["properties"]["type"]["type"],
            "string"
        );
        assert_eq!(
            page["properties"]["next"]["properties"]["max_id"]["type"],
            "string"
        );
        assert!(text.len() < 200_000, "{}", text.len());
    }

    #[test]
    fn values_fit_their_types_as_xml_schema_reads_them() {
        assert!(fits(DateTime, &json!("2022-11-15T00:00:00.000Z")));
        assert!(fits(DateTime, &json!("2022-11-15T00:00:00+02:00")));
        assert!(!fits(DateTime, &json!("2022-11-15")));
        assert!(!fits(DateTime, &json!("2022-02-30T00:00:00Z")));
        assert!(!fits(DateTime, &json!("2022-11-15t00:00:00z")));
        assert!(fits(Integer, &json!(-1)) && fits(Integer, &json!("42")));
        assert!(
            !fits(Integer, &json!(1.5))
                && !fits(Integer, &json!("x"))
                && !fits(Integer, &json!(u64::MAX))
        );
        assert!(fits(Number, &json!(1.5)) && !fits(Number, &json!("inf")));
        assert!(fits(Boolean, &json!("true")) && !fits(Boolean, &json!("yes")));
        assert!(fits(Text, &json!(3)) && !fits(Text, &json!({"a": 1})));
        assert!(fits(Object(&ANY), &json!({})) && !fits(Object(&ANY), &json!("x")));
    }

    #[test]
    fn fields_are_split_into_declared_order_and_the_rest() {
        let map = json!({"local_only": true, "content": "<p>x</p>", "id": "1", "created_at": "soon", "tags": [], "card": null})
            .as_object()
            .unwrap()
            .clone();
        let (declared, others) = split(&STATUS, &map);
        let names: Vec<&str> = declared.iter().map(|(f, _)| f.name).collect();
        assert_eq!(names, ["id", "content", "tags"]);
        let others: Vec<&str> = others.iter().map(|(k, _)| *k).collect();
        assert_eq!(others, ["created_at", "local_only"]);
    }
}
