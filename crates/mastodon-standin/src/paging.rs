//! Mastodon's pagination for every list it answers: `limit` (each endpoint's default, at
//! most twice that, as `limit_param` does), `max_id` / `since_id` / `min_id` compared with
//! each item's *cursor*, and the `Link` header with absolute URLs on the stand-in's own
//! base and the request's other query params kept (sorted, as Rails' `to_query` writes
//! them). The cursor is not always the item's id: followers and following page by the
//! Follow's id, list members by the ListAccount's, so a client that builds `max_id` from
//! the last account it saw gets the wrong page, as on Mastodon.

use std::cmp::Ordering;

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponse;
use serde_json::Value;

use crate::http::{self, Ctx};
use crate::params::text;

/// Statuses: 20, at most 40.
pub const STATUSES: usize = 20;
/// Notifications, followers, following, list members: 40, at most 80.
pub const ACCOUNTS: usize = 40;

/// Ids compare as numbers when both are (snowflakes), else as strings (Mitra's
/// time-ordered UUIDs).
pub fn cmp_id(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// The paging params of a request.
pub struct Page {
    pub limit: usize,
    max_id: Option<String>,
    since_id: Option<String>,
    min_id: Option<String>,
}

impl Page {
    /// `limit` as Mastodon's `limit_param(default)`: `[limit.to_i.abs, default * 2].min`
    /// (and at least 1).
    pub fn read(ctx: &Ctx<'_>, default: usize) -> Page {
        let p = ctx.params;
        let cursor = |name: &str| text(p, name).filter(|s| !s.trim().is_empty());
        let limit = text(p, "limit")
            .map(|l| {
                let l = l.trim();
                let digits = l.trim_start_matches('-');
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                digits[..end].parse::<usize>().unwrap_or(0)
            })
            .map_or(default, |l| l.min(default * 2))
            .max(1);
        Page {
            limit,
            max_id: cursor("max_id"),
            since_id: cursor("since_id"),
            min_id: cursor("min_id"),
        }
    }

    /// One page of `items` (cursor, item), given oldest first; answered newest first.
    pub fn apply<T>(&self, items: Vec<(String, T)>) -> Vec<(String, T)> {
        let candidates = items.into_iter().filter(|(c, _)| {
            self.max_id
                .as_deref()
                .is_none_or(|m| cmp_id(c, m) == Ordering::Less)
                && self
                    .since_id
                    .as_deref()
                    .is_none_or(|m| cmp_id(c, m) == Ordering::Greater)
                && self
                    .min_id
                    .as_deref()
                    .is_none_or(|m| cmp_id(c, m) == Ordering::Greater)
        });
        if self.min_id.is_some() {
            // The items right after `min_id`, still answered newest first.
            let mut page: Vec<_> = candidates.take(self.limit).collect();
            page.reverse();
            page
        } else {
            let mut all: Vec<_> = candidates.collect();
            let skip = all.len().saturating_sub(self.limit);
            let mut page = all.split_off(skip);
            page.reverse();
            page
        }
    }

    /// The `Link` header of a page (cursors newest first): `next` (older, `max_id`) when
    /// the page is full, `prev` (newer, `min_id`) when it is not empty, as Mastodon's
    /// `insert_pagination_headers` writes them.
    pub fn link(&self, ctx: &Ctx<'_>, cursors: &[&str]) -> Option<String> {
        let (newest, oldest) = (cursors.first()?, cursors.last()?);
        let mut links = Vec::new();
        if cursors.len() >= self.limit {
            links.push(format!(
                "<{}>; rel=\"next\"",
                url_with(ctx, "max_id", oldest)
            ));
        }
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url_with(ctx, "min_id", newest)
        ));
        Some(links.join(", "))
    }
}

/// The request's absolute URL with its cursors replaced by `name=value`, the query sorted
/// as Rails' `Hash#to_query` sorts it (an array's `k[]=a&k[]=b` stays together, in order).
fn url_with(ctx: &Ctx<'_>, name: &str, value: &str) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(ctx.req.query_string().as_bytes()) {
        if matches!(
            k.as_ref(),
            "max_id" | "since_id" | "min_id" | "access_token"
        ) {
            continue;
        }
        let pair = format!("{}={}", enc(&k), enc(&v));
        match groups.iter_mut().find(|(key, _)| *key == k) {
            Some((_, pairs)) => pairs.push(pair),
            None => groups.push((k.into_owned(), vec![pair])),
        }
    }
    let mut elements: Vec<String> = groups.into_iter().map(|(_, p)| p.join("&")).collect();
    elements.push(format!("{}={}", enc(name), enc(value)));
    elements.sort();
    format!(
        "{}{}?{}",
        ctx.shared.base,
        ctx.req.path(),
        elements.join("&")
    )
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A JSON array answer with its `Link` header.
pub fn answer(items: &[Value], link: Option<String>) -> HttpResponse {
    let mut resp = http::json(200, serde_json::to_vec(items).unwrap_or_default());
    set_link(&mut resp, link);
    resp
}

pub fn set_link(resp: &mut HttpResponse, link: Option<String>) {
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: usize, max: Option<&str>, min: Option<&str>) -> Page {
        Page {
            limit,
            max_id: max.map(str::to_owned),
            since_id: None,
            min_id: min.map(str::to_owned),
        }
    }

    #[test]
    fn pages_are_newest_first_and_min_id_takes_the_oldest_after_it() {
        let items: Vec<(String, u32)> = (1..=9).map(|i| (i.to_string(), i)).collect();
        let ids = |v: Vec<(String, u32)>| v.into_iter().map(|(_, i)| i).collect::<Vec<_>>();
        assert_eq!(ids(page(3, None, None).apply(items.clone())), [9, 8, 7]);
        assert_eq!(
            ids(page(3, Some("7"), None).apply(items.clone())),
            [6, 5, 4]
        );
        assert_eq!(ids(page(3, None, Some("2")).apply(items)), [5, 4, 3]);
    }
}
