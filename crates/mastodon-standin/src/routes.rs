//! Every route the stand-in knows, as `"METHOD /template"` (the names of hit counts and
//! recorded requests); `:name` segments match any one path segment. A route known here may
//! still be a 404 on a profile that lacks it (snac's nodeinfo paths on Mastodon, ...).
//!
//! The list is written once, in the `routes!` invocation below: it makes both [`ROUTES`] and
//! [`Route`], so the two cannot drift apart. Order matters where templates overlap: the first
//! match wins, so `/api/v1/accounts/verify_credentials` comes before `/api/v1/accounts/:id`.

macro_rules! routes {
    ($($variant:ident => $template:literal,)*) => {
        /// Every route the stand-in serves, as `"METHOD /template"`.
        pub const ROUTES: [&str; [$($template),*].len()] = [$($template),*];

        /// A served route; the discriminant indexes [`ROUTES`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Route {
            $($variant,)*
        }

        impl Route {
            const ALL: [Route; [$($template),*].len()] = [$(Route::$variant),*];
        }
    };
}

routes! {
    InstanceV2 => "GET /api/v2/instance",
    InstanceV1 => "GET /api/v1/instance",
    WellKnown => "GET /.well-known/oauth-authorization-server",
    CreateApp => "POST /api/v1/apps",
    VerifyApp => "GET /api/v1/apps/verify_credentials",
    Authorize => "GET /oauth/authorize",
    AuthorizeNative => "GET /oauth/authorize/native",
    Token => "POST /oauth/token",
    Revoke => "POST /oauth/revoke",
    VerifyCredentials => "GET /api/v1/accounts/verify_credentials",
    PostStatus => "POST /api/v1/statuses",
    AccountStatuses => "GET /api/v1/accounts/:id/statuses",
    ScheduledStatuses => "GET /api/v1/scheduled_statuses",
    NodeInfoLinks => "GET /.well-known/nodeinfo",
    NodeInfo20 => "GET /nodeinfo/2.0",
    NodeInfo21 => "GET /nodeinfo/2.1",
    SnacNodeInfo20 => "GET /nodeinfo_2_0",
    SnacNodeInfo21 => "GET /nodeinfo_2_1",
    // Media.
    UploadMedia => "POST /api/v2/media",
    UploadMediaV1 => "POST /api/v1/media",
    GetMedia => "GET /api/v1/media/:id",
    UpdateMedia => "PUT /api/v1/media/:id",
    // Statuses.
    GetStatus => "GET /api/v1/statuses/:id",
    EditStatus => "PUT /api/v1/statuses/:id",
    DeleteStatus => "DELETE /api/v1/statuses/:id",
    StatusContext => "GET /api/v1/statuses/:id/context",
    Favourite => "POST /api/v1/statuses/:id/favourite",
    Unfavourite => "POST /api/v1/statuses/:id/unfavourite",
    Reblog => "POST /api/v1/statuses/:id/reblog",
    Unreblog => "POST /api/v1/statuses/:id/unreblog",
    Bookmark => "POST /api/v1/statuses/:id/bookmark",
    Unbookmark => "POST /api/v1/statuses/:id/unbookmark",
    Pin => "POST /api/v1/statuses/:id/pin",
    Unpin => "POST /api/v1/statuses/:id/unpin",
    GetScheduled => "GET /api/v1/scheduled_statuses/:id",
    UpdateScheduled => "PUT /api/v1/scheduled_statuses/:id",
    DeleteScheduled => "DELETE /api/v1/scheduled_statuses/:id",
    // Timelines.
    HomeTimeline => "GET /api/v1/timelines/home",
    PublicTimeline => "GET /api/v1/timelines/public",
    TagTimeline => "GET /api/v1/timelines/tag/:hashtag",
    ListTimeline => "GET /api/v1/timelines/list/:list_id",
    Bookmarks => "GET /api/v1/bookmarks",
    Favourites => "GET /api/v1/favourites",
    // Notifications.
    Notifications => "GET /api/v1/notifications",
    ClearNotifications => "POST /api/v1/notifications/clear",
    GetNotification => "GET /api/v1/notifications/:id",
    DismissNotification => "POST /api/v1/notifications/:id/dismiss",
    // Search.
    Search => "GET /api/v2/search",
    // Accounts (the fixed paths before `:id`).
    LookupAccount => "GET /api/v1/accounts/lookup",
    Relationships => "GET /api/v1/accounts/relationships",
    GetAccount => "GET /api/v1/accounts/:id",
    Followers => "GET /api/v1/accounts/:id/followers",
    Following => "GET /api/v1/accounts/:id/following",
    Follow => "POST /api/v1/accounts/:id/follow",
    Unfollow => "POST /api/v1/accounts/:id/unfollow",
    // Polls.
    GetPoll => "GET /api/v1/polls/:id",
    Vote => "POST /api/v1/polls/:id/votes",
    // Lists.
    Lists => "GET /api/v1/lists",
    CreateList => "POST /api/v1/lists",
    GetList => "GET /api/v1/lists/:id",
    UpdateList => "PUT /api/v1/lists/:id",
    DeleteList => "DELETE /api/v1/lists/:id",
    ListAccounts => "GET /api/v1/lists/:id/accounts",
    AddListAccounts => "POST /api/v1/lists/:id/accounts",
    RemoveListAccounts => "DELETE /api/v1/lists/:id/accounts",
}

impl Route {
    /// The route for a method and a path (a trailing slash is ignored, as Rails does).
    pub fn resolve(method: &str, path: &str) -> Option<Route> {
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        Route::ALL.into_iter().find(|r| {
            let (m, p) = ROUTES[*r as usize].split_once(' ').unwrap_or_default();
            m == method && matches_template(p, path)
        })
    }

    /// The route's template, e.g. `"POST /api/v1/statuses"`.
    pub fn name(self) -> &'static str {
        ROUTES[self as usize]
    }

    pub fn from_name(name: &str) -> Option<Route> {
        ROUTES
            .iter()
            .position(|r| *r == name)
            .map(|i| Route::ALL[i])
    }
}

fn matches_template(template: &str, path: &str) -> bool {
    if !template.contains(':') {
        return template == path;
    }
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with(':') && !ps.is_empty() => {}
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// The `n`th segment of a path, counting from 0 after the leading slash
/// (`/api/v1/statuses/7/favourite`: 3 is `"7"`), percent-decoded lazily by the caller.
pub fn segment(path: &str, n: usize) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .nth(n)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_paths_win_over_ids_and_every_template_resolves_to_itself() {
        assert_eq!(
            Route::resolve("GET", "/api/v1/accounts/verify_credentials"),
            Some(Route::VerifyCredentials)
        );
        assert_eq!(
            Route::resolve("GET", "/api/v1/accounts/lookup"),
            Some(Route::LookupAccount)
        );
        assert_eq!(
            Route::resolve("POST", "/api/v1/notifications/clear"),
            Some(Route::ClearNotifications)
        );
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(Route::from_name(r.name()), Some(*r));
        }
    }
}
