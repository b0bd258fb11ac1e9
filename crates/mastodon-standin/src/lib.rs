//! A Mastodon server stand-in: behaves like Mastodon 4.3+ wherever the sidecar depends on it
//! (instance documents, nodeinfo, app registration, OAuth 2 with PKCE, verify_credentials,
//! posting with idempotency keys, reading an account's statuses back, per-token rate
//! limits) and the rest of the client API the sidecar's operations reach (media uploads,
//! status actions and edits, timelines, notifications, search, accounts and follows, polls,
//! lists, each paginated as Mastodon pages), with seeding helpers for other accounts and
//! their posts, fault injection (including answers lost after the post was made) and request
//! inspection for tests, and fast enough to benchmark the sidecar against. A [`Profile`]
//! makes it behave instead as GoToSocial, Takahē, Hollo, snac or Mitra were observed to.
//!
//! ```no_run
//! # async fn demo() {
//! use mastodon_standin::{Options, StandIn};
//! let standin = StandIn::start(Options::default()).await;
//! standin.seed_user_token("tok", "read write");
//! // point the client at standin.url ...
//! assert_eq!(standin.hits("POST /api/v1/statuses"), 0);
//! # }
//! ```
//!
//! Facts about Mastodon's behaviour are in `/work/shared/reference/mastodon-api.md`; about the
//! other servers in `/work/shared/reference/servers.md`.
#![forbid(unsafe_code)]

mod api;
mod apps;
mod entities;
mod faults;
mod feeds;
mod front;
mod http;
mod limits;
mod media;
mod nodeinfo;
mod oauth;
mod paging;
mod params;
mod posting;
mod profiles;
mod routes;
mod shapes;
mod social;
mod state;
mod statuses;
mod text;
mod time;
mod timeline;
mod token;
mod world;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpServer};
use serde_json::Value;

use state::{lock, Fault, Shared};

pub use entities::{ACCOUNT_ID, DISPLAY_NAME, USERNAME};
pub use profiles::Profile;
pub use state::{Echo, ROUTES};
pub use world::SeedStatus;

/// How the stand-in presents itself. [`Options::for_profile`] gives each server's settings;
/// the fields can then be changed one by one.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server software imitated (default [`Profile::Mastodon`]): error shapes, OAuth
    /// quirks, posting rules, nodeinfo.
    pub profile: Profile,
    /// The version the instance documents report (default `"4.3.2"`); below 4.3 the
    /// `profile` scope does not exist.
    pub version: String,
    /// `configuration.statuses.max_characters` (default 500).
    pub max_characters: u64,
    /// What every URL counts for (default 23).
    pub characters_reserved_per_url: u64,
    /// At most this many `media_ids` (default 4).
    pub max_media_attachments: u64,
    /// PKCE and `/.well-known/oauth-authorization-server` (default true); false behaves like
    /// Mastodon before 4.3: the document is a 404 and `code_challenge` is ignored.
    pub pkce: bool,
    /// `/api/v2/instance` (default true); false: it is a 404 and `/api/v1/instance` carries
    /// `max_toot_chars` (older servers and forks).
    pub v2_instance: bool,
    /// Requests per 5-minute window (default 300): per token on Mastodon, per client IP on
    /// GoToSocial; the other profiles have no such limit.
    pub rate_limit: u64,
    /// Takahē and Hollo: whether an admin identity and domain exist (default true;
    /// `for_profile` makes both false: `/api/v2/instance` fails until set up).
    pub set_up: bool,
    /// How long an authorization code lives (default 10 minutes; Takahē 60 s, Mitra 5 min).
    pub code_lifetime: Duration,
    /// `configuration.media_attachments.image_size_limit` (default 16 MiB, Mastodon's), and
    /// enforced: a larger image is 422 "File file size must be less than ...".
    pub image_size_limit: u64,
    /// `video_size_limit` (default 99 MiB), enforced for video/* and audio/*.
    pub video_size_limit: u64,
    /// `image_matrix_limit` (width × height, default 33,177,600); enforced on PNGs, whose
    /// size the stand-in reads.
    pub image_matrix_limit: u64,
    /// `video_matrix_limit` (default 8,294,400), advertised only.
    pub video_matrix_limit: u64,
    /// `video_frame_rate_limit` (default 120), advertised only.
    pub video_frame_rate_limit: u64,
    /// `description_limit` in characters (default 1500), enforced.
    pub description_limit: u64,
    /// Images larger than this (bytes, default 64 KiB), and every video or audio file,
    /// answer 202 and are processed asynchronously.
    pub media_processing_threshold: u64,
    /// An attachment being processed answers 206 to this many `GET /api/v1/media/:id`
    /// (default 1), then is processed: 202, 206, 200.
    pub media_processing_polls: u32,
    /// Or it is processed once this long has passed since the upload (default: never by time).
    pub media_processing_time: Option<Duration>,
    /// `POST /api/v1/statuses` with a `media_ids` entry never uploaded: `true` answers 422
    /// "Media N not found or already attached to another post" as Mastodon 4.3 does;
    /// `false` (default, which older tests rely on) takes it as an uploaded image. Known ids
    /// are checked either way (processing, attached elsewhere).
    pub strict_media_ids: bool,
    /// `POST /api/v2/media` exists (default); `false`: it is a 404 and only `/api/v1/media` uploads.
    pub media_v2: bool,
    /// At most this many pinned statuses (default 5, Mastodon's).
    pub max_pinned_statuses: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: "4.3.2".to_owned(),
            max_characters: 500,
            characters_reserved_per_url: 23,
            max_media_attachments: 4,
            pkce: true,
            v2_instance: true,
            rate_limit: 300,
            profile: Profile::Mastodon,
            set_up: true,
            code_lifetime: Duration::from_secs(600),
            image_size_limit: 16 * 1024 * 1024,
            video_size_limit: 99 * 1024 * 1024,
            image_matrix_limit: 33_177_600,
            video_matrix_limit: 8_294_400,
            video_frame_rate_limit: 120,
            description_limit: 1500,
            media_processing_threshold: 64 * 1024,
            media_processing_polls: 1,
            media_processing_time: None,
            strict_media_ids: false,
            media_v2: true,
            max_pinned_statuses: 5,
        }
    }
}

/// A running stand-in. It serves until [`StandIn::stop`] or the end of the process (dropping
/// the value does not stop it).
pub struct StandIn {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    /// snac's connection-closing front, when there is one.
    front: Option<tokio::task::AbortHandle>,
}

impl StandIn {
    /// Starts on `127.0.0.1:0` (a free port), serving in the background of the current tokio
    /// runtime (works in `#[tokio::test]` and `#[actix_web::test]`).
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(options: Options) -> StandIn {
        StandIn::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), options)
            .await
            .expect("mastodon-standin: cannot listen on 127.0.0.1")
    }

    /// Starts on `listen` with one worker thread.
    pub async fn start_on(listen: SocketAddr, options: Options) -> std::io::Result<StandIn> {
        StandIn::start_with_workers(listen, options, 1).await
    }

    /// Starts on `listen` with `workers` worker threads (at least one).
    pub async fn start_with_workers(
        listen: SocketAddr,
        options: Options,
        workers: usize,
    ) -> std::io::Result<StandIn> {
        let public = TcpListener::bind(listen)?;
        let addr = public.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        } else {
            addr
        };
        let domain = host.to_string();
        let url = format!("http://{domain}");
        let snac = options.profile == Profile::Snac;
        // snac: the server sits on a private port behind the front (see `front.rs`).
        let listener = if snac {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
        } else {
            public.try_clone()?
        };
        let inner = listener.local_addr()?;
        // Uploads up to the largest media limit must arrive whole, so that the limit is the
        // stand-in's answer (a 422), not the framework's.
        let payload_limit = (options.image_size_limit.max(options.video_size_limit) as usize)
            .saturating_add(1024 * 1024)
            .max(4 * 1024 * 1024);
        let shared = Arc::new(Shared::new(options, url.clone(), domain));
        let data = web::Data::from(Arc::clone(&shared));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(payload_limit))
                .default_service(web::to(http::dispatch))
        })
        .on_connect(faults::on_connect)
        .workers(workers.max(1))
        .backlog(4096)
        .disable_signals()
        .shutdown_timeout(1);
        if snac {
            server = server.keep_alive(KeepAlive::Disabled);
        }
        let server = server.listen(listener)?.run();
        let handle = server.handle();
        tokio::spawn(server);
        let front = if snac {
            public.set_nonblocking(true)?;
            let public = tokio::net::TcpListener::from_std(public)?;
            Some(tokio::spawn(front::run(public, inner)).abort_handle())
        } else {
            drop(public);
            None
        };
        Ok(StandIn {
            url,
            addr,
            shared,
            handle,
            front,
        })
    }

    /// Stops serving at once: the listener closes and open connections are dropped.
    pub async fn stop(&self) {
        if let Some(front) = &self.front {
            front.abort();
        }
        self.handle.stop(false).await;
    }

    /// Adds a user token for the stand-in's account (tests that skip OAuth, benchmarks).
    /// `scopes` is space-separated, e.g. `"read write"`.
    pub fn seed_user_token(&self, token: &str, scopes: &str) {
        let scopes = scopes.split_whitespace().map(str::to_owned).collect();
        self.shared.insert_token(
            token.to_owned(),
            Arc::clone(&self.shared.seed_app),
            true,
            scopes,
        );
    }

    /// Every token that works now (user and app tokens, seeded or issued).
    pub fn tokens(&self) -> Vec<String> {
        self.shared
            .tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Every token stops working, as when the user revokes the app's access.
    pub fn revoke_all_tokens(&self) {
        self.shared
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The next `count` requests to `route` (e.g. `"POST /api/v1/statuses"`) are answered
    /// `status` with a Mastodon-shaped body; a 429 also carries `X-RateLimit-Remaining: 0`
    /// and an `X-RateLimit-Reset` one second ahead. Faults queue in order with
    /// [`StandIn::delay_next`]'s.
    pub fn fail_next(&self, route: &str, status: u16, count: usize) {
        self.shared.add_fault(route, Fault::Fail(status), count);
    }

    /// The next `count` requests to `route` are repeated back whole (method, path, query, every
    /// header, the body), as an error in the shape `echo` says or inside the real answer.
    pub fn echo_next(&self, route: &str, echo: Echo, count: usize) {
        self.shared.add_fault(route, Fault::Echo(echo), count);
    }

    /// Every echo from now on also repeats `text`: what a hostile server learned from other
    /// requests (another connection's token, say). Empty: the request only.
    pub fn echo_also(&self, text: &str) {
        *lock(&self.shared.echo_also) = text.to_owned();
    }

    /// The next `count` requests to `route` wait `delay` and are then handled normally.
    pub fn delay_next(&self, route: &str, delay: Duration, count: usize) {
        self.shared.add_fault(route, Fault::Delay(delay), count);
    }

    /// The next `count` requests to `route` are handled (a post is created), then the
    /// connection is closed without any answer: the answer is lost in transit.
    pub fn create_then_drop(&self, route: &str, count: usize) {
        self.shared.add_fault(route, Fault::CreateThenDrop, count);
    }

    /// The next `count` requests to `route` are handled (a post is created), then answered
    /// `status` (a 5xx, say) with a Mastodon-shaped body instead of the real answer.
    pub fn create_then_fail(&self, route: &str, status: u16, count: usize) {
        self.shared
            .add_fault(route, Fault::CreateThenFail(status), count);
    }

    /// The next `count` requests to `route` are checked, held `delay`, and the post is then
    /// created even when the client has gone away meanwhile. Where the profile honours the
    /// `Idempotency-Key`, the key is recorded only once the post exists, as Mastodon does, so
    /// a resend during the stall posts again. On other routes: wait, then handle.
    pub fn stall_then_create(&self, route: &str, delay: Duration, count: usize) {
        self.shared
            .add_fault(route, Fault::StallThenCreate(delay), count);
    }

    /// Forgets every recorded `Idempotency-Key`, as Mitra does when it restarts (it keeps them
    /// in memory).
    pub fn forget_idempotency_keys(&self) {
        lock(&self.shared.store).idempotency.clear();
    }

    /// From now on the person at the authorize page clicks deny (`true`) or approves
    /// (`false`, the default). Only Mastodon and Hollo have a deny button; elsewhere the
    /// authorization is approved anyway.
    pub fn deny_authorizations(&self, deny: bool) {
        self.shared
            .deny
            .store(deny, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every Status actually created (not idempotent replays nor scheduled posts), in order,
    /// as it was answered.
    pub fn statuses(&self) -> Vec<Value> {
        let bodies: Vec<_> = lock(&self.shared.store)
            .list
            .iter()
            .map(|s| s.body.clone())
            .collect();
        bodies
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
            .collect()
    }

    /// Every app registered, as answered (with `client_secret`).
    pub fn apps(&self) -> Vec<Value> {
        lock(&self.shared.apps).clone()
    }

    /// How many requests reached `route`: a template of [`ROUTES`] such as
    /// `"POST /api/v1/statuses"`, or `"METHOD /path"` for paths the stand-in does not serve.
    pub fn hits(&self, route: &str) -> usize {
        self.shared.hits(route)
    }

    /// The params of the last request to `route` as JSON: query and body merged, form bodies
    /// turned into objects the way Rails nests them (`scopes[]=read` is `{"scopes":["read"]}`).
    /// `Null` when the body could not be parsed; `None` when no request came.
    pub fn last_body(&self, route: &str) -> Option<Value> {
        self.shared.last(route).map(|r| (*r.params).clone())
    }

    /// A header (case-insensitive name) of the last request to `route`.
    pub fn last_header(&self, route: &str, name: &str) -> Option<String> {
        let rec = self.shared.last(route)?;
        let value = rec.headers.get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// A new account besides the stand-in's own: `"alice"` (local) or
    /// `"bob@remote.example"` (remote). Answers its id; the same name gives the same id.
    pub fn seed_account(&self, name: &str) -> String {
        let mut store = lock(&self.shared.store);
        world::seed_account(&self.shared, &mut store, name)
    }

    /// A public status by `account` (a seeded id, or [`ACCOUNT_ID`]); hashtags and mentions
    /// are read from `text` (a mention of `@sidecar` notifies the stand-in account).
    /// Answers its id.
    ///
    /// # Panics
    /// When `account` is unknown.
    pub fn seed_status(&self, account: &str, text: &str) -> String {
        self.seed_status_with(
            account,
            SeedStatus {
                text: text.to_owned(),
                ..SeedStatus::default()
            },
        )
    }

    /// A status by `account` with visibility, reply, media or poll (see [`SeedStatus`]).
    ///
    /// # Panics
    /// When `account` is unknown.
    pub fn seed_status_with(&self, account: &str, seed: SeedStatus) -> String {
        let mut store = lock(&self.shared.store);
        world::seed_status(&self.shared, &mut store, account, seed)
            .expect("mastodon-standin: seed_status of an unknown account")
    }

    /// `follower` follows `target` (ids); answers the Follow's id (what followers/following
    /// paginate by). A follow of the stand-in account notifies it.
    pub fn seed_follow(&self, follower: &str, target: &str) -> String {
        let mut store = lock(&self.shared.store);
        world::follow(&self.shared, &mut store, follower, target, None, None, None).to_string()
    }

    /// `account` favourites `status` (a favourite of the stand-in account's status notifies it).
    pub fn seed_favourite(&self, account: &str, status: &str) {
        let mut store = lock(&self.shared.store);
        world::favourite(&self.shared, &mut store, account, status);
    }

    /// `account` reblogs `status`; answers the reblog's id.
    pub fn seed_reblog(&self, account: &str, status: &str) -> Option<String> {
        let mut store = lock(&self.shared.store);
        world::reblog(&self.shared, &mut store, account, status)
    }

    /// A notification of the stand-in account: `kind` (`mention`, `favourite`, `follow`,
    /// `reblog`, `poll`, `status`, ...) from account `from`, about `status`. Answers its id.
    pub fn seed_notification(&self, kind: &str, from: &str, status: Option<&str>) -> String {
        let mut store = lock(&self.shared.store);
        world::notify(&self.shared, &mut store, ACCOUNT_ID, kind, from, status).to_string()
    }

    /// A list of the stand-in account with `members` (account ids, added whether followed
    /// or not). Answers its id.
    pub fn seed_list(&self, title: &str, members: &[&str]) -> String {
        let mut store = lock(&self.shared.store);
        let id = self.shared.next_id().to_string();
        let members = members
            .iter()
            .map(|m| (self.shared.next_id(), (*m).to_owned()))
            .collect();
        store.world.lists.push(world::ListRec {
            id: id.clone(),
            title: title.to_owned(),
            replies_policy: "list".to_owned(),
            exclusive: false,
            members,
        });
        id
    }

    /// Every upload, in order: `{id, type, content_type, filename, size, sha256,
    /// description, focus, processed, status_id}` (what arrived, for tests to assert).
    pub fn media(&self) -> Vec<Value> {
        let store = lock(&self.shared.store);
        store
            .world
            .media
            .iter()
            .filter(|m| !m.sha256.is_empty())
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "type": m.kind,
                    "content_type": m.content_type,
                    "filename": m.filename,
                    "size": m.size,
                    "sha256": m.sha256,
                    "description": m.description,
                    "focus": m.focus.map(|(x, y)| serde_json::json!({"x": x, "y": y})),
                    "processed": m.is_processed(&self.shared.opts),
                    "status_id": m.status_id,
                })
            })
            .collect()
    }

    /// Every notification (of every account) as `{id, recipient, type, account_id,
    /// status_id}`, oldest first.
    pub fn notifications(&self) -> Vec<Value> {
        let store = lock(&self.shared.store);
        store
            .world
            .notifications
            .iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id.to_string(),
                    "recipient": n.recipient,
                    "type": n.kind,
                    "account_id": n.from,
                    "status_id": n.status_id,
                })
            })
            .collect()
    }
}
