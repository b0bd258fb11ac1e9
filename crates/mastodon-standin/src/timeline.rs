//! `GET /api/v1/scheduled_statuses`, paged like every list (see [`crate::paging`]). The
//! account's statuses (`GET /api/v1/accounts/:id/statuses`), where a client that lost an
//! answer finds its post, are in `feeds.rs` with the other timelines.

use actix_web::HttpResponse;
use serde_json::Value;

use crate::http::{authorize, Ctx};
use crate::paging::{self, Page};
use crate::shapes;
use crate::state::lock;

/// `GET /api/v1/scheduled_statuses`: where the profile schedules (Mastodon, GoToSocial);
/// a user token with `read` or `read:statuses`; newest first.
pub fn scheduled_statuses(ctx: &Ctx<'_>) -> HttpResponse {
    let profile = ctx.shared.opts.profile;
    if !profile.schedules() {
        return shapes::not_found(profile);
    }
    if let Err(denied) = authorize(ctx, &["read", "read:statuses"], true) {
        return denied.response(ctx);
    }
    let page = Page::read(ctx, paging::STATUSES);
    let store = lock(&ctx.shared.store);
    let items: Vec<(String, &[u8])> = store
        .scheduled
        .iter()
        .map(|s| (s.id.clone(), s.body.as_ref()))
        .collect();
    let items = page.apply(items);
    let cursors: Vec<&str> = items.iter().map(|(c, _)| c.as_str()).collect();
    let link = page.link(ctx, &cursors);
    let values: Vec<Value> = items
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap_or(Value::Null))
        .collect();
    paging::answer(&values, link)
}
