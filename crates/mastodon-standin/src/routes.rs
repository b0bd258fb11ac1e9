//! Every route the stand-in knows, as `"METHOD /template"` (the names of hit counts and
//! recorded requests); `:name` segments match any one path segment. A route known here may
//! still be a 404 on a profile that lacks it (snac's nodeinfo paths on Mastodon, ...).

/// Every route the stand-in serves, as `"METHOD /template"`.
pub const ROUTES: [&str; 18] = [
    "GET /api/v2/instance",
    "GET /api/v1/instance",
    "GET /.well-known/oauth-authorization-server",
    "POST /api/v1/apps",
    "GET /api/v1/apps/verify_credentials",
    "GET /oauth/authorize",
    "GET /oauth/authorize/native",
    "POST /oauth/token",
    "POST /oauth/revoke",
    "GET /api/v1/accounts/verify_credentials",
    "POST /api/v1/statuses",
    "GET /api/v1/accounts/:id/statuses",
    "GET /api/v1/scheduled_statuses",
    "GET /.well-known/nodeinfo",
    "GET /nodeinfo/2.0",
    "GET /nodeinfo/2.1",
    "GET /nodeinfo_2_0",
    "GET /nodeinfo_2_1",
];

/// A served route; the discriminant indexes [`ROUTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    InstanceV2,
    InstanceV1,
    WellKnown,
    CreateApp,
    VerifyApp,
    Authorize,
    AuthorizeNative,
    Token,
    Revoke,
    VerifyCredentials,
    PostStatus,
    AccountStatuses,
    ScheduledStatuses,
    NodeInfoLinks,
    NodeInfo20,
    NodeInfo21,
    SnacNodeInfo20,
    SnacNodeInfo21,
}

impl Route {
    const ALL: [Route; 18] = [
        Route::InstanceV2,
        Route::InstanceV1,
        Route::WellKnown,
        Route::CreateApp,
        Route::VerifyApp,
        Route::Authorize,
        Route::AuthorizeNative,
        Route::Token,
        Route::Revoke,
        Route::VerifyCredentials,
        Route::PostStatus,
        Route::AccountStatuses,
        Route::ScheduledStatuses,
        Route::NodeInfoLinks,
        Route::NodeInfo20,
        Route::NodeInfo21,
        Route::SnacNodeInfo20,
        Route::SnacNodeInfo21,
    ];

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

/// The `:id` of `/api/v1/accounts/:id/statuses`.
pub fn account_id(path: &str) -> &str {
    path.trim_start_matches("/api/v1/accounts/")
        .split('/')
        .next()
        .unwrap_or_default()
}
