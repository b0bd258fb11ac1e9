//! The stand-in's shared state: routes, apps, tokens, authorization codes, posted statuses,
//! per-token rate limits, fault injection and request recording.
//!
//! The hot path (`POST /api/v1/statuses`) takes a read lock on the token table, a short
//! per-route lock to record the request and a short lock to store the status; hit counts,
//! rate limits and ids are atomics, and fault injection costs one atomic load when idle.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::Value;

pub use crate::routes::{Route, ROUTES};
use crate::{time, Options};

/// A registered application.
pub struct App {
    pub id: String,
    pub name: String,
    pub website: Option<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    pub vapid_key: &'static str,
}

/// An access token: a user token (the stand-in's account) or an app token.
pub struct Token {
    pub app: Arc<App>,
    pub user: bool,
    pub scopes: Vec<String>,
    /// Rate-limit window (high 32 bits: unix seconds / period) and requests in it (low 32).
    rate: AtomicU64,
}

impl Token {
    /// Whether the token carries any of `wanted` (Doorkeeper's `acceptable?`).
    pub fn has_any(&self, wanted: &[&str]) -> bool {
        self.scopes.iter().any(|s| wanted.contains(&s.as_str()))
    }
}

/// An authorization code waiting for `POST /oauth/token`.
pub struct Grant {
    pub app: Arc<App>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub challenge: Option<String>,
    pub expires: Instant,
}

/// One recorded request: its params as JSON and its headers.
pub struct Recorded {
    pub params: Arc<Value>,
    pub headers: HeaderMap,
}

/// An injected fault.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer this status instead of handling the request.
    Fail(u16),
    /// Wait, then handle the request.
    Delay(Duration),
    /// Handle the request (a post is created), then close the connection unanswered.
    CreateThenDrop,
    /// Handle the request (a post is created), then answer this status instead.
    CreateThenFail(u16),
    /// Check the request, wait, then create the post even when the client has gone.
    StallThenCreate(Duration),
    /// Repeat the whole request back (see [`Echo`]).
    Echo(Echo),
}

/// How an echoing server repeats a request (method, path, query, every header, the body) back:
/// what a debugging proxy or a hostile server does, to show nothing it is sent leaks further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// This status, with `{"error": echo, "error_description": echo}`.
    Json(u16),
    /// This status, with the echo as `text/plain`.
    Text(u16),
    /// This status, with an HTML page holding the echo (HTML-escaped).
    Html(u16),
    /// Handled normally; a JSON object answer gains an `"echo"` field.
    InAnswer,
}

/// A created status as answered (from the stand-in account's point of view: `favourited`,
/// counts, ... are rewritten into `body` whenever they change), with what listing and
/// filtering it needs.
pub struct StoredStatus {
    pub id: String,
    pub visibility: String,
    pub body: Bytes,
    /// The author's account id.
    pub account_id: String,
    pub in_reply_to: Option<String>,
    /// Hashtags, lowercased.
    pub tags: Vec<String>,
    /// The source text and content warning (what `DELETE` and edits answer as `text`).
    pub text: String,
    pub spoiler: String,
    pub media_ids: Vec<String>,
    /// For a reblog: the reblogged status's id.
    pub reblog_of: Option<String>,
    pub poll_id: Option<String>,
    /// Whether the author is a local account (public timeline's `local` / `remote`).
    pub local: bool,
}

/// A ScheduledStatus as answered.
pub struct ScheduledRec {
    pub id: String,
    pub body: Bytes,
}

/// Posted statuses, serialized as answered, the scheduled ones, the idempotency keys, and
/// the rest of the account's world (other accounts, follows, media, lists, ...), all under
/// one lock so that a status and what points at it change together.
#[derive(Default)]
pub struct StatusStore {
    /// In creation order.
    pub list: Vec<StoredStatus>,
    pub ids: HashSet<String>,
    pub idempotency: HashMap<String, (Bytes, Instant)>,
    /// ScheduledStatus bodies, in creation order.
    pub scheduled: Vec<ScheduledRec>,
    pub world: crate::world::World,
}

/// How long Mastodon remembers an `Idempotency-Key`.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);
/// Mastodon's per-token window: 5 minutes.
pub const RATE_PERIOD_SECS: u64 = 300;

/// The outcome of counting one request against a token's limit.
pub struct Rate {
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
    pub throttled: bool,
}

/// Everything the handlers share.
pub struct Shared {
    pub opts: Options,
    /// `http://host:port`
    pub base: String,
    /// `host:port`
    pub domain: String,
    /// Whether the configured version is 4.3 or later (the `profile` scope exists).
    pub has_profile_scope: bool,
    pub account_urls: crate::entities::AccountUrls,
    hits: Vec<AtomicUsize>,
    other_hits: Mutex<HashMap<String, usize>>,
    last: Vec<Mutex<Option<Arc<Recorded>>>>,
    other_last: Mutex<HashMap<String, Arc<Recorded>>>,
    faults_pending: AtomicUsize,
    faults: Mutex<HashMap<String, VecDeque<(Fault, usize)>>>,
    /// What an echo repeats besides the request: what a hostile server learned elsewhere.
    pub echo_also: Mutex<String>,
    pub tokens: RwLock<HashMap<String, Arc<Token>>>,
    /// Every registered app, as answered (with its secret).
    pub apps: Mutex<Vec<Value>>,
    pub apps_by_client: RwLock<HashMap<String, Arc<App>>>,
    pub seed_app: Arc<App>,
    pub grants: Mutex<HashMap<String, Grant>>,
    pub store: Mutex<StatusStore>,
    last_id: AtomicU64,
    next_app_id: AtomicU64,
    pub statuses_count: AtomicU64,
    pub last_status_ms: AtomicU64,
    /// The pre-rendered OAuth discovery document.
    pub well_known: Bytes,
    /// GoToSocial's and Mitra's limits per client IP.
    pub ip_limits: crate::limits::IpLimits,
    /// Whether the person at the authorize page denies (where there is a deny button).
    pub deny: std::sync::atomic::AtomicBool,
}

/// Locks a mutex, ignoring poisoning (a panicking handler must not wedge the stand-in).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 32 random bytes, base64url without padding: 43 characters, like Doorkeeper's secrets.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Shared {
    pub fn new(opts: Options, base: String, domain: String) -> Shared {
        let has_profile_scope =
            opts.profile != crate::Profile::Mastodon || version_at_least(&opts.version, 4, 3);
        let seed_app = Arc::new(App {
            id: "1".to_owned(),
            name: "mastodon-standin".to_owned(),
            website: None,
            scopes: vec![
                "read".into(),
                "write".into(),
                "follow".into(),
                "push".into(),
            ],
            redirect_uris: vec![crate::oauth::OOB.to_owned()],
            client_id: random_secret(),
            client_secret: random_secret(),
            vapid_key: crate::entities::VAPID_KEY,
        });
        let mut shared = Shared {
            opts,
            account_urls: crate::entities::AccountUrls::new(&base),
            base,
            domain,
            has_profile_scope,
            hits: ROUTES.iter().map(|_| AtomicUsize::new(0)).collect(),
            other_hits: Mutex::default(),
            last: ROUTES.iter().map(|_| Mutex::new(None)).collect(),
            other_last: Mutex::default(),
            faults_pending: AtomicUsize::new(0),
            faults: Mutex::default(),
            echo_also: Mutex::default(),
            tokens: RwLock::default(),
            apps: Mutex::default(),
            apps_by_client: RwLock::default(),
            seed_app,
            grants: Mutex::default(),
            store: Mutex::default(),
            last_id: AtomicU64::new(0),
            next_app_id: AtomicU64::new(2),
            statuses_count: AtomicU64::new(0),
            last_status_ms: AtomicU64::new(0),
            well_known: Bytes::new(),
            ip_limits: crate::limits::IpLimits::default(),
            deny: std::sync::atomic::AtomicBool::new(false),
        };
        shared.well_known = Bytes::from(crate::oauth::well_known_doc(&shared).to_string());
        shared
    }

    /// A new snowflake-like id: milliseconds since the epoch shifted 16 bits, strictly increasing.
    pub fn next_id(&self) -> u64 {
        let candidate = time::now_ms() << 16;
        let prev = self
            .last_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(candidate.max(last + 1))
            })
            .unwrap_or(0);
        candidate.max(prev + 1)
    }

    /// A new small sequential id (apps).
    pub fn next_app_id(&self) -> u64 {
        self.next_app_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a request reaching a route (`other` is `"METHOD /path"` for unknown routes).
    pub fn count_hit(&self, route: Option<Route>, other: &str) {
        match route {
            Some(r) => {
                self.hits[r as usize].fetch_add(1, Ordering::Relaxed);
            }
            None => *lock(&self.other_hits).entry(other.to_owned()).or_default() += 1,
        }
    }

    pub fn hits(&self, name: &str) -> usize {
        let key = normalize_route(name);
        match Route::from_name(&key) {
            Some(r) => self.hits[r as usize].load(Ordering::Relaxed),
            None => lock(&self.other_hits).get(&key).copied().unwrap_or(0),
        }
    }

    pub fn record(&self, route: Option<Route>, other: &str, rec: Recorded) {
        let rec = Arc::new(rec);
        match route {
            Some(r) => *lock(&self.last[r as usize]) = Some(rec),
            None => {
                lock(&self.other_last).insert(other.to_owned(), rec);
            }
        }
    }

    pub fn last(&self, name: &str) -> Option<Arc<Recorded>> {
        let key = normalize_route(name);
        match Route::from_name(&key) {
            Some(r) => lock(&self.last[r as usize]).clone(),
            None => lock(&self.other_last).get(&key).cloned(),
        }
    }

    pub fn add_fault(&self, route: &str, fault: Fault, count: usize) {
        if count == 0 {
            return;
        }
        let mut faults = lock(&self.faults);
        faults
            .entry(normalize_route(route))
            .or_default()
            .push_back((fault, count));
        self.faults_pending.fetch_add(1, Ordering::SeqCst);
    }

    /// The next fault queued for `route`, if any (one atomic load when none is queued).
    pub fn take_fault(&self, route: &str) -> Option<Fault> {
        if self.faults_pending.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut faults = lock(&self.faults);
        let queue = faults.get_mut(route)?;
        let (fault, left) = queue.front_mut()?;
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            queue.pop_front();
            self.faults_pending.fetch_sub(1, Ordering::SeqCst);
        }
        Some(fault)
    }

    pub fn token(&self, token: &str) -> Option<Arc<Token>> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    pub fn insert_token(&self, token: String, app: Arc<App>, user: bool, scopes: Vec<String>) {
        let tok = Arc::new(Token {
            app,
            user,
            scopes,
            rate: AtomicU64::new(0),
        });
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token, tok);
    }

    pub fn remove_token(&self, token: &str) -> Option<Arc<Token>> {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token)
    }

    /// Deletes an app and every token it holds (snac's revocation).
    pub fn remove_app(&self, client_id: &str) {
        self.apps_by_client
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(client_id);
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, t| t.app.client_id != client_id);
    }

    pub fn app_by_client(&self, client_id: &str) -> Option<Arc<App>> {
        self.apps_by_client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            .cloned()
    }

    /// Counts one request against the token's fixed 5-minute window (rack-attack style:
    /// the request that makes the count exceed the limit is throttled).
    pub fn count_rate(&self, token: &Token) -> Rate {
        let limit = self.opts.rate_limit;
        let now = time::now_secs();
        let window = now / RATE_PERIOD_SECS;
        let update = |packed: u64| {
            let (w, n) = (packed >> 32, packed & 0xffff_ffff);
            Some(if w == window & 0xffff_ffff {
                (w << 32) | (n + 1).min(0xffff_ffff)
            } else {
                ((window & 0xffff_ffff) << 32) | 1
            })
        };
        let prev = token
            .rate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, update)
            .unwrap_or(0);
        let count = update(prev).unwrap_or(0) & 0xffff_ffff;
        Rate {
            limit,
            remaining: limit.saturating_sub(count),
            reset_ms: (window + 1) * RATE_PERIOD_SECS * 1000,
            throttled: count > limit,
        }
    }
}

/// `"post  /api/v1/statuses/"` → `"POST /api/v1/statuses"`.
pub fn normalize_route(route: &str) -> String {
    let route = route.trim();
    let (method, path) = route.split_once(char::is_whitespace).unwrap_or(("", route));
    let path = path.trim();
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    format!("{} {}", method.to_ascii_uppercase(), path)
}

fn version_at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}
