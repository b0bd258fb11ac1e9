//! `GET /.well-known/nodeinfo` and the nodeinfo 2.0 / 2.1 documents it links to: how a
//! client tells the server software apart. Takahē's links name its public domain
//! (`https://takahe.test`), not the address the client used, so a client must take the path
//! against the instance it was configured with; snac's paths are `/nodeinfo_2_0` and
//! `/nodeinfo_2_1`.

use std::sync::atomic::Ordering;

use actix_web::HttpResponse;
use serde_json::json;

use crate::http::{self, Ctx};
use crate::profiles::Profile;
use crate::routes::Route;
use crate::shapes;

/// The domain Takahē names in its links (its configured public domain).
pub const TAKAHE_PUBLIC: &str = "https://takahe.test";

fn paths(profile: Profile) -> [&'static str; 2] {
    match profile {
        Profile::Snac => ["/nodeinfo_2_0", "/nodeinfo_2_1"],
        Profile::Takahe => ["/nodeinfo/2.0/", "/nodeinfo/2.1/"],
        _ => ["/nodeinfo/2.0", "/nodeinfo/2.1"],
    }
}

/// `GET /.well-known/nodeinfo`.
pub fn links(ctx: &Ctx<'_>) -> HttpResponse {
    let profile = ctx.shared.opts.profile;
    let host = match profile {
        Profile::Takahe => TAKAHE_PUBLIC,
        _ => ctx.shared.base.as_str(),
    };
    // Takahē and Mastodon link 2.0 only.
    let versions: &[(&str, usize)] = match profile {
        Profile::Mastodon | Profile::Takahe => &[("2.0", 0)],
        _ => &[("2.0", 0), ("2.1", 1)],
    };
    let links: Vec<_> = versions
        .iter()
        .map(|(v, i)| {
            json!({
                "rel": format!("http://nodeinfo.diaspora.software/ns/schema/{v}"),
                "href": format!("{host}{}", paths(profile)[*i]),
            })
        })
        .collect();
    http::json_value(200, &json!({ "links": links }))
}

/// `GET /nodeinfo/2.0`, `/nodeinfo/2.1`, `/nodeinfo_2_0`, `/nodeinfo_2_1`: served where
/// the profile's links point, a 404 elsewhere.
pub fn document(ctx: &Ctx<'_>, route: Route) -> HttpResponse {
    let shared = ctx.shared;
    let profile = shared.opts.profile;
    let (version, snac_path) = match route {
        Route::NodeInfo20 => ("2.0", false),
        Route::NodeInfo21 => ("2.1", false),
        Route::SnacNodeInfo20 => ("2.0", true),
        _ => ("2.1", true),
    };
    let served = snac_path == (profile == Profile::Snac)
        && !(version == "2.1" && matches!(profile, Profile::Mastodon | Profile::Takahe));
    if !served {
        return shapes::not_found(profile);
    }
    let mut software = json!({
        "name": profile.name(),
        "version": profile.software_version(&shared.opts),
    });
    if version == "2.1" {
        software["repository"] = json!(format!("https://example.invalid/{}", profile.name()));
    }
    let doc = json!({
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"outbound": [], "inbound": []},
        "usage": {
            "users": {"total": 1, "activeMonth": 1, "activeHalfyear": 1},
            "localPosts": shared.statuses_count.load(Ordering::Relaxed),
        },
        "openRegistrations": false,
        "metadata": {},
    });
    http::json_value(200, &doc)
}
