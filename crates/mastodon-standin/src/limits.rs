//! Rate limits that are not Mastodon's per-token one: GoToSocial's per client IP, shared by
//! every token (with `X-RateLimit-*`), and Mitra's on `POST /oauth/token` (5 at once per IP,
//! then one per 120 s; a text/plain 429 with `Retry-After` and no `X-RateLimit-*`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::{error, rate_headers};
use crate::profiles::Profile;
use crate::routes::Route;
use crate::shapes::{self, TEXT};
use crate::state::{lock, Shared, RATE_PERIOD_SECS};
use crate::time;

const MITRA_BURST: f64 = 5.0;
const MITRA_REFILL: Duration = Duration::from_secs(120);

/// Counters per client IP.
#[derive(Default)]
pub struct IpLimits {
    /// GoToSocial: (window, requests in it).
    windows: Mutex<HashMap<IpAddr, (u64, u64)>>,
    /// Mitra: (tokens left, when counted).
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// The refusal when the request's IP is over its limit on this profile; `None` otherwise.
pub fn per_ip(shared: &Shared, req: &HttpRequest, route: Option<Route>) -> Option<HttpResponse> {
    let ip = req.peer_addr()?.ip();
    match shared.opts.profile {
        Profile::GoToSocial => {
            let limit = shared.opts.rate_limit;
            let window = time::now_secs() / RATE_PERIOD_SECS;
            let mut windows = lock(&shared.ip_limits.windows);
            let entry = windows.entry(ip).or_insert((window, 0));
            if entry.0 != window {
                *entry = (window, 0);
            }
            entry.1 += 1;
            let count = entry.1;
            drop(windows);
            let reset_ms = (window + 1) * RATE_PERIOD_SECS * 1000;
            // The headers on answers that pass are not needed by anyone; the refusal has them.
            (count > limit).then(|| {
                let mut resp = error(429, "Too Many Requests");
                rate_headers(&mut resp, limit, 0, reset_ms);
                resp
            })
        }
        Profile::Mitra if route == Some(Route::Token) => {
            let now = Instant::now();
            let mut buckets = lock(&shared.ip_limits.buckets);
            let (tokens, at) = buckets.entry(ip).or_insert((MITRA_BURST, now));
            let refill = now.duration_since(*at).as_secs_f64() / MITRA_REFILL.as_secs_f64();
            *tokens = (*tokens + refill).min(MITRA_BURST);
            *at = now;
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                return None;
            }
            let wait = ((1.0 - *tokens) * MITRA_REFILL.as_secs_f64()).ceil() as u64;
            let mut resp = shapes::typed(429, TEXT, "Too Many Requests");
            if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(resp)
        }
        _ => None,
    }
}
