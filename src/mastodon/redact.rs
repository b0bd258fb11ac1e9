//! Scrubbing secrets out of whatever a server says.
//!
//! A server's answer is untrusted text: a proxy, a debugging server or a hostile inline instance may
//! repeat what it was sent (the form with `client_secret` and `code`, the `Authorization` header),
//! or a secret it learned elsewhere. So every text that comes from a server, an error's `error` and
//! `error_description`, an excerpt of a page, a transport error, and every string of a 2xx answer, is
//! scrubbed before the client hands it on: details, `upstream.error`, log fields and the entities
//! passed through to callers are all built from scrubbed text, so no other layer has to remember.
//!
//! Two sources of secrets, applied together by [`Secrets::scrub`]:
//! - [`KnownSecrets`]: every long-lived secret the sidecar knows, shared by all connections of a
//!   process (a server may echo another connection's token): pinned client secrets and tokens from
//!   configuration, API key digests, the store key and URL, inline connections' credentials, and
//!   every app secret and token obtained or read from the store.
//! - What the request itself carries: its bearer token and the secret-named fields of its body
//!   (authorization codes and PKCE verifiers are single-use and never need the registry).
//!
//! Each secret is matched as sent and as an echo may encode it: percent-encoded (form bodies, `+`
//! or `%20` for a space, upper or lower hex), JSON-escaped (with `\/` too), HTML-escaped, and for an
//! app the base64 of `client_id:client_secret` (HTTP Basic).

use std::cmp::Reverse;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, RwLock};

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Form or JSON fields whose values are secrets: scrubbed from whatever the server says back.
pub const SECRET_FIELDS: [&str; 7] = [
    "client_secret",
    "code",
    "code_verifier",
    "token",
    "access_token",
    "refresh_token",
    "password",
];

/// At most this many lasting secrets are remembered; past it the oldest go first. Tokens of a
/// long-running process accumulate (inline connections may be redefined with new tokens); a bound
/// keeps the registry from growing without end, and the oldest are the least likely to be live.
const MAX_KNOWN: usize = 4096;
/// At most this many passing secrets (authorization codes, PKCE verifiers) are remembered. They are
/// kept apart because a caller chooses codes: a flood of made-up ones must push out only codes,
/// never a token or a pinned secret.
const MAX_PASSING: usize = 64;

/// The forms in which an echo may carry `secret`.
fn variants(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    out.push(lower_hex(&form));
    out.push(lower_hex(&percent));
    out.push(form);
    out.push(percent);
    if let Ok(json) = serde_json::to_string(secret) {
        let json = json[1..json.len() - 1].to_owned();
        out.push(json.replace('/', "\\/"));
        out.push(json);
    }
    out.push(
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;"),
    );
    out.sort_unstable();
    out.dedup();
    out
}

/// `%2F` → `%2f`: the hex digits of percent escapes in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
}

/// One bounded set of secrets, oldest first.
struct Shelf {
    bound: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl Shelf {
    fn new(bound: usize) -> Shelf {
        Shelf {
            bound,
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// False when it was there already.
    fn add(&mut self, secret: &str) -> bool {
        if !self.seen.insert(secret.to_owned()) {
            return false;
        }
        self.order.push_back(secret.to_owned());
        if self.order.len() > self.bound {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

struct Registry {
    lasting: Shelf,
    passing: Shelf,
    /// Every variant of every secret of both shelves, longest first: what scrubbing walks. Built
    /// when first asked for after a change, so that many additions in a row cost one sort, and a
    /// request only clones an `Arc`.
    variants: Option<Arc<Vec<String>>>,
}

/// Every secret the sidecar knows, shared by every connection's client: the lasting ones and the
/// recent passing ones. `Debug` says how many, never which.
pub struct KnownSecrets(RwLock<Registry>);

impl Default for KnownSecrets {
    fn default() -> Self {
        KnownSecrets(RwLock::new(Registry {
            lasting: Shelf::new(MAX_KNOWN),
            passing: Shelf::new(MAX_PASSING),
            variants: None,
        }))
    }
}

impl std::fmt::Debug for KnownSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0.read().unwrap_or_else(|p| p.into_inner());
        write!(
            f,
            "KnownSecrets({} secrets, {} passing)",
            r.lasting.order.len(),
            r.passing.order.len()
        )
    }
}

impl KnownSecrets {
    /// A lasting secret: a client secret, a token, a pinned value.
    pub fn add(&self, secret: &SecretString) {
        self.add_str(secret.expose_secret());
    }

    /// An app's credentials: the secret, and the HTTP Basic form of the pair.
    pub fn add_app(&self, client_id: &str, secret: &SecretString) {
        self.add(secret);
        let pair = format!("{client_id}:{}", secret.expose_secret());
        self.add_str(&base64::engine::general_purpose::STANDARD.encode(pair));
    }

    pub fn add_str(&self, secret: &str) {
        self.put(secret, false);
    }

    /// A single-use secret (an authorization code, a PKCE verifier): remembered among the last
    /// [`MAX_PASSING`], so that an echo of it in a later answer is scrubbed too.
    pub fn add_passing(&self, secret: &str) {
        self.put(secret, true);
    }

    fn put(&self, secret: &str, passing: bool) {
        if secret.is_empty() {
            return;
        }
        let known =
            |r: &Registry| r.lasting.seen.contains(secret) || r.passing.seen.contains(secret);
        if known(&self.0.read().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        let mut registry = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known(&registry) {
            return;
        }
        let shelf = if passing {
            &mut registry.passing
        } else {
            &mut registry.lasting
        };
        if shelf.add(secret) {
            registry.variants = None;
        }
    }

    fn snapshot(&self) -> Arc<Vec<String>> {
        if let Some(built) = &self.0.read().unwrap_or_else(|p| p.into_inner()).variants {
            return Arc::clone(built);
        }
        let mut registry = self.0.write().unwrap_or_else(|p| p.into_inner());
        let registry = &mut *registry;
        let (lasting, passing) = (&registry.lasting, &registry.passing);
        let built = registry.variants.get_or_insert_with(|| {
            let mut all: Vec<String> = lasting
                .order
                .iter()
                .chain(passing.order.iter())
                .flat_map(|s| variants(s))
                .collect();
            all.sort_unstable();
            all.dedup();
            // Longest first, so that a secret containing another is replaced whole.
            all.sort_by_key(|v| Reverse(v.len()));
            Arc::new(all)
        });
        Arc::clone(built)
    }
}

/// The secrets one request's answer is scrubbed of: the known ones and the request's own.
#[derive(Default)]
pub struct Secrets {
    known: Arc<Vec<String>>,
    own: Vec<String>,
}

impl Secrets {
    /// The known secrets, plus the request's bearer token.
    pub fn new(known: &KnownSecrets, token: Option<&SecretString>) -> Secrets {
        let mut secrets = Secrets {
            known: known.snapshot(),
            own: Vec::new(),
        };
        if let Some(token) = token {
            secrets.add(token.expose_secret());
        }
        secrets
    }

    /// Adds the values of the fields named in [`SECRET_FIELDS`].
    pub fn with_fields<'a>(
        mut self,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Secrets {
        for (name, value) in fields {
            if SECRET_FIELDS.contains(&name) {
                self.add(value);
            }
        }
        self
    }

    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        for v in variants(value) {
            if !self.own.contains(&v) {
                self.own.push(v);
            }
        }
        self.own.sort_by_key(|v| Reverse(v.len()));
    }

    /// Every secret variant, the request's and the known ones merged longest first, so that a
    /// secret containing another is replaced whole whichever list holds which.
    fn each(&self) -> impl Iterator<Item = &str> {
        let (mut own, mut known) = (self.own.iter().peekable(), self.known.iter().peekable());
        std::iter::from_fn(move || {
            let take_own = match (own.peek(), known.peek()) {
                (Some(o), Some(k)) => o.len() >= k.len(),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if take_own { own.next() } else { known.next() }.map(String::as_str)
        })
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out: Option<String> = None;
        for secret in self.each() {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(secret) {
                out = Some(current.replace(secret, REDACTED));
            }
        }
        out.unwrap_or_else(|| text.to_owned())
    }

    /// Scrubs every string of a JSON answer, keys included, except the top-level fields in `keep`:
    /// the secrets the call exists to obtain (a token answer's `access_token`), which the operation
    /// stores and removes from what callers see.
    pub fn scrub_value(&self, value: &mut Value, keep: &[&str]) {
        if self.own.is_empty() && self.known.is_empty() {
            return;
        }
        match value {
            Value::Object(map) => {
                let fields = std::mem::take(map);
                for (key, mut field) in fields {
                    if !keep.contains(&key.as_str()) {
                        self.scrub_value(&mut field, &[]);
                    }
                    map.insert(self.scrub(&key), field);
                }
            }
            other => self.scrub_nested(other),
        }
    }

    fn scrub_nested(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if self.each().any(|v| s.contains(v)) {
                    *s = self.scrub(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_nested(i)),
            Value::Object(_) => self.scrub_value(value, &[]),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_encoding_of_a_known_secret_is_scrubbed() {
        let known = KnownSecrets::default();
        let secret = "s3cr/t+va lue&\"x\"";
        known.add_app("client-1", &secret.to_owned().into());
        let secrets = Secrets::new(&known, None);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("client-1:{secret}"));
        for echo in [
            secret.to_owned(),
            "s3cr%2Ft%2Bva+lue%26%22x%22".to_owned(),
            "s3cr%2Ft%2Bva%20lue%26%22x%22".to_owned(),
            "s3cr%2ft%2bva%20lue%26%22x%22".to_owned(),
            r#"s3cr/t+va lue&\"x\""#.to_owned(),
            r#"s3cr\/t+va lue&\"x\""#.to_owned(),
            "s3cr/t+va lue&amp;&quot;x&quot;".to_owned(),
            format!("Basic {basic}"),
        ] {
            let out = secrets.scrub(&format!("got <{echo}> ok"));
            assert!(
                out.contains(REDACTED) && out.contains("ok"),
                "{echo}: {out}"
            );
            assert!(
                !out.contains("s3cr") && !out.contains(&basic),
                "{echo}: {out}"
            );
        }
    }

    #[test]
    fn the_request_secrets_and_the_known_ones_are_scrubbed_together() {
        let known = KnownSecrets::default();
        known.add_str("other-connections-token");
        let secrets = Secrets::new(&known, Some(&"this-requests-token".to_owned().into()))
            .with_fields([("code", "the-code"), ("scope", "read")]);
        let out = secrets.scrub("other-connections-token this-requests-token the-code read");
        assert_eq!(out, "[redacted] [redacted] [redacted] read");
    }

    #[test]
    fn a_json_answer_is_scrubbed_but_for_the_fields_obtained() {
        let known = KnownSecrets::default();
        known.add_str("known-token-1234");
        let secrets = Secrets::new(&known, None);
        let mut answer = json!({
            "access_token": "known-token-1234",
            "note": "you sent known-token-1234",
            "fields": [{"name": "x", "value": "Bearer known-token-1234"}],
            "known-token-1234": 1,
            "source": {"note": "known-token-1234"},
        });
        secrets.scrub_value(&mut answer, &["access_token"]);
        let text = answer.to_string();
        assert_eq!(answer["access_token"], "known-token-1234");
        assert_eq!(text.matches("known-token-1234").count(), 1, "{text}");
        assert_eq!(answer["note"], "you sent [redacted]");
        assert_eq!(answer["fields"][0]["value"], "Bearer [redacted]");
        assert_eq!(answer["source"]["note"], "[redacted]");
        assert_eq!(answer["[redacted]"], 1);
    }

    #[test]
    fn the_registry_is_bounded_and_its_debug_names_no_secret() {
        let known = KnownSecrets::default();
        for i in 0..MAX_KNOWN + 10 {
            known.add_str(&format!("secret-number-{i:05}"));
        }
        let debug = format!("{known:?}");
        assert_eq!(
            debug,
            format!("KnownSecrets({MAX_KNOWN} secrets, 0 passing)")
        );
        let secrets = Secrets::new(&known, None);
        assert_eq!(secrets.scrub("secret-number-00000"), "secret-number-00000");
        assert_eq!(
            secrets.scrub(&format!("secret-number-{:05}", MAX_KNOWN + 9)),
            REDACTED
        );
    }

    /// What scrubbing a Status-sized answer costs, with one connection's secrets and with a full
    /// passing shelf plus a hundred connections'. Printed, not asserted.
    #[test]
    fn scrubbing_an_answer_costs_little() {
        let status = json!({
            "id": "113", "content": "<p>hello world</p>".repeat(20), "visibility": "public",
            "account": {"id": "1", "acct": "sidecar", "note": "x".repeat(200), "fields": []},
            "media_attachments": [], "mentions": [], "tags": [], "emojis": [],
            "url": "https://example.org/@sidecar/113", "spoiler_text": "", "language": "en",
        });
        for connections in [1usize, 100] {
            let known = KnownSecrets::default();
            for i in 0..connections {
                known.add_app(&format!("client-{i}"), &format!("secret-{i:040}").into());
                known.add_str(&format!("token-{i:040}"));
            }
            for i in 0..MAX_PASSING {
                known.add_passing(&format!("code-{i:040}"));
            }
            let token: SecretString = "token-0000000000000000000000000000000000000000"
                .to_owned()
                .into();
            let rounds = 200;
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                let secrets = Secrets::new(&known, Some(&token));
                let mut answer = status.clone();
                secrets.scrub_value(&mut answer, &[]);
            }
            println!(
                "scrub: {connections} connections, {} variants: {:.1} µs per Status answer (debug build)",
                known.snapshot().len(),
                started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
            );
        }
    }

    #[test]
    fn a_flood_of_passing_secrets_pushes_out_no_lasting_one() {
        let known = KnownSecrets::default();
        known.add_str("the-lasting-token");
        for i in 0..MAX_PASSING * 3 {
            known.add_passing(&format!("made-up-code-{i:05}"));
        }
        let secrets = Secrets::new(&known, None);
        assert_eq!(secrets.scrub("the-lasting-token"), REDACTED);
        let last = format!("made-up-code-{:05}", MAX_PASSING * 3 - 1);
        assert_eq!(secrets.scrub(&last), REDACTED);
        assert_eq!(secrets.scrub("made-up-code-00000"), "made-up-code-00000");
    }
}
