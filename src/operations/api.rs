//! The parameter structs of the operations that are one call to the server (see the `operations!`
//! table in `mod.rs`): each field is a parameter of Mastodon's route, named as Mastodon names it, or
//! (`connection`) the sidecar's own. A field named like a `:segment` of the route's path fills it;
//! the rest go into the query (GET, DELETE) or the form body.

use super::params::params;

params! {
    /// Only the connection.
    pub struct ConnectionOnly {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
    }
}

params! {
    pub struct StatusId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The status's id
        pub id: String = required,
    }
}

params! {
    pub struct ReblogParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The status's id
        pub id: String = required,
        /// public, unlisted or private (the boost's own visibility)
        pub visibility: Option<String>,
    }
}

params! {
    pub struct EditStatusParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The status's id
        pub id: String = required,
        /// The new text
        pub status: Option<String>,
        /// The new content warning
        pub spoiler_text: Option<String>,
        /// Mark the media as sensitive
        pub sensitive: Option<bool>,
        /// The language (ISO 639-1)
        pub language: Option<String>,
        /// The attachments it keeps or gains (ids of uploaded media)
        pub media_ids: Option<Vec<String>>,
        /// A new poll (replaces the old one, and its votes)
        pub poll: Option<super::post_status::PollParams>,
    }
}

params! {
    pub struct MediaId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The attachment's id
        pub id: String = required,
    }
}

params! {
    pub struct UpdateMediaParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The attachment's id
        pub id: String = required,
        /// The new alt text: what the media shows, for people who cannot see it
        pub description: Option<String>,
        /// The new focal point as x,y, each from -1.0 to 1.0
        pub focus: Option<String>,
    }
}

params! {
    pub struct ScheduledId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The scheduled status's id
        pub id: String = required,
    }
}

params! {
    pub struct RescheduleParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The scheduled status's id
        pub id: String = required,
        /// The new time (ISO 8601, at least 5 minutes ahead)
        pub scheduled_at: String = required,
    }
}

params! {
    /// A page of a list the server paginates.
    pub struct PageParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct PublicTimelineParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// Only statuses from this server
        pub local: Option<bool>,
        /// Only statuses from other servers
        pub remote: Option<bool>,
        /// Only statuses with media
        pub only_media: Option<bool>,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct HashtagTimelineParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The hashtag, without #
        pub hashtag: String = required,
        /// Also statuses with any of these hashtags
        pub any: Option<Vec<String>>,
        /// Only statuses with all of these hashtags too
        pub all: Option<Vec<String>>,
        /// Not statuses with any of these hashtags
        pub none: Option<Vec<String>>,
        /// Only statuses from this server
        pub local: Option<bool>,
        /// Only statuses from other servers
        pub remote: Option<bool>,
        /// Only statuses with media
        pub only_media: Option<bool>,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct ListTimelineParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The list's id
        pub list_id: String = required,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct NotificationsParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// Only these types: mention, status, reblog, follow, follow_request, favourite, poll, update
        pub types: Option<Vec<String>>,
        /// Not these types
        pub exclude_types: Option<Vec<String>>,
        /// Only notifications from this account
        pub account_id: Option<String>,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct NotificationId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The notification's id
        pub id: String = required,
    }
}

params! {
    pub struct SearchParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// What to search for
        pub q: String = required,
        /// accounts, statuses or hashtags (all three by default)
        pub kind: Option<String> as "type",
        /// Look the query up on other servers (a URL or user@domain)
        pub resolve: Option<bool>,
        /// Only accounts the connection's account follows
        pub following: Option<bool>,
        /// Only statuses by this account
        pub account_id: Option<String>,
        /// Leave out hashtags not reviewed by the moderators
        pub exclude_unreviewed: Option<bool>,
        /// How many results of each type at most
        pub limit: Option<u64>,
        /// How many results to skip (the next page)
        pub offset: Option<u64>,
        /// Items older than this id
        pub max_id: Option<String>,
        /// Items just newer than this id
        pub min_id: Option<String>,
    }
}

params! {
    pub struct LookupParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The account's acct: user (local) or user@domain
        pub acct: String = required,
    }
}

params! {
    pub struct AccountId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The account's id
        pub id: String = required,
    }
}

params! {
    pub struct AccountStatusesParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The account's id
        pub id: String = required,
        /// Only pinned statuses
        pub pinned: Option<bool>,
        /// Leave out replies
        pub exclude_replies: Option<bool>,
        /// Leave out boosts
        pub exclude_reblogs: Option<bool>,
        /// Only statuses with media
        pub only_media: Option<bool>,
        /// Only statuses with this hashtag
        pub tagged: Option<String>,
        /// How many items at most (the server caps it, 40 on Mastodon)
        pub limit: Option<u64>,
        /// Items older than this cursor: the `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor (the newest first)
        pub since_id: Option<String>,
        /// Items just newer than this cursor (the oldest first): the `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    /// A page of an account's followers or follows: the cursors are the follows', not the accounts'
    /// ids, so only the answer's `next`/`prev` give the right ones.
    pub struct AccountPageParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The account's id
        pub id: String = required,
        /// How many items at most (the server caps it, 80 on Mastodon)
        pub limit: Option<u64>,
        /// The `next.max_id` of the previous page (not an account id)
        pub max_id: Option<String>,
        /// Items newer than this cursor
        pub since_id: Option<String>,
        /// The `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct RelationshipsParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The accounts' ids
        pub id: Option<Vec<String>>,
        /// Also accounts that suspended (Mastodon 4.3)
        pub with_suspended: Option<bool>,
    }
}

params! {
    pub struct FollowParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The account's id
        pub id: String = required,
        /// Show its boosts in the home timeline (true by default)
        pub reblogs: Option<bool>,
        /// Notify of each of its posts
        pub notify: Option<bool>,
        /// Only its statuses in these languages (ISO 639-1)
        pub languages: Option<Vec<String>>,
    }
}

params! {
    pub struct PollId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The poll's id
        pub id: String = required,
    }
}

params! {
    pub struct VoteParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The poll's id
        pub id: String = required,
        /// The chosen options, by index from 0
        pub choices: Option<Vec<String>>,
    }
}

params! {
    pub struct ListId {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The list's id
        pub id: String = required,
    }
}

params! {
    pub struct CreateListParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The list's title
        pub title: String = required,
        /// Which replies show: followed, list or none
        pub replies_policy: Option<String>,
        /// Keep the list's statuses out of the home timeline
        pub exclusive: Option<bool>,
    }
}

params! {
    pub struct ListPageParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The list's id
        pub id: String = required,
        /// How many items at most (0 for all, on Mastodon)
        pub limit: Option<u64>,
        /// The `next.max_id` of the previous page
        pub max_id: Option<String>,
        /// Items newer than this cursor
        pub since_id: Option<String>,
        /// The `prev.min_id` of a page
        pub min_id: Option<String>,
    }
}

params! {
    pub struct ListAccountsParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The list's id
        pub id: String = required,
        /// The accounts' ids (accounts the connection's account follows)
        pub account_ids: Option<Vec<String>>,
    }
}
