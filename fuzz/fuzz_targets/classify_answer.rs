//! An answer from the server (status, headers, body of any kind: JSON, text, HTML, garbage), judged
//! by the client's real classification and redaction (`mastodon::classify_for_fuzzing`) for a request
//! that carried `FUZZ_SECRET` as its token.
//!
//! Input: byte 0, bits 0-1, the route (a read, postStatus, createApp, the token route); bytes 1-2 the
//! status (big-endian, folded into 100..=599); byte 3 the number of headers (at most 7), then each
//! as a name selector byte, a length byte and that many bytes of value; the rest is the body. In
//! header values and the body, `$S` stands for the secret as sent, `$P` percent-encoded, `$J`
//! JSON-escaped (with `\/`) and `$U` with its first letter as a JSON `\u` escape.
//!
//! Never a panic; a 2xx is a success or `upstream_unavailable` (not JSON), anything else an error of
//! the upstream kinds carrying the status; a 429 tells a wait; texts are bounded; the secret (as sent,
//! percent-encoded, JSON-escaped) is in no detail, no `upstream.error`, no `Link` and no string or
//! key of a success but the top-level fields the route exists to obtain; a JSON success that holds
//! no secret once parsed is passed on exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mastodon_sidecar::error::ErrorKind;
use mastodon_sidecar::mastodon::{classify_for_fuzzing, FUZZ_ROUTES, FUZZ_SECRET};
use mastodon_sidecar_fuzz::take;
use serde_json::Value;

const HEADER_NAMES: [&str; 8] = [
    "content-type",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "link",
    "date",
    "x-request-id",
];

/// The secret in the forms an echo may carry it, as the markers stand for them.
fn forms() -> [(&'static str, String); 4] {
    let percent: String = FUZZ_SECRET
        .bytes()
        .map(|b| {
            // As a form encodes it (`url::form_urlencoded`), which is one of the forms scrubbed.
            if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let json = serde_json::to_string(FUZZ_SECRET).unwrap();
    let json = json[1..json.len() - 1].replace('/', "\\/");
    let first = FUZZ_SECRET.chars().next().unwrap();
    let unicode = format!("\\u{:04x}{}", first as u32, &FUZZ_SECRET[first.len_utf8()..]);
    [
        ("$S", FUZZ_SECRET.to_owned()),
        ("$P", percent),
        ("$J", json),
        ("$U", unicode),
    ]
}

fn expand(bytes: &[u8], forms: &[(&'static str, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if let Some((marker, form)) = forms.iter().find(|(m, _)| rest.starts_with(m.as_bytes())) {
            out.extend_from_slice(form.as_bytes());
            i += marker.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The forms of the secret that must never come out (the `\u` one parses back to the plain secret).
fn leaks<'a>(text: &str, forms: &'a [(&'static str, String)]) -> Option<&'a str> {
    forms[..3]
        .iter()
        .map(|(_, f)| f.as_str())
        .find(|f| text.contains(f))
}

fn check_value(value: &Value, keep: &[&str], forms: &[(&'static str, String)], at: &str) {
    match value {
        Value::String(s) => {
            if let Some(form) = leaks(s, forms) {
                panic!("the secret ({form}) is in the success at {at}: {s:?}");
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| check_value(item, &[], forms, at)),
        Value::Object(map) => {
            for (key, field) in map {
                if let Some(form) = leaks(key, forms) {
                    panic!("the secret ({form}) is a key of the success at {at}: {key:?}");
                }
                if !keep.contains(&key.as_str()) {
                    check_value(field, &[], forms, &format!("{at}.{key}"));
                }
            }
        }
        _ => {}
    }
}

/// Whether a parsed value holds the secret in any form the scrubbing replaces (each begins with the
/// part of the secret no encoding changes).
fn holds_secret(value: &Value) -> bool {
    const STEM: &str = "fuzz-secret_T0k3n";
    match value {
        Value::String(s) => s.contains(STEM),
        Value::Array(items) => items.iter().any(holds_secret),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(STEM) || holds_secret(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, rest) = take(data, 4);
    let [route, high, low, count] = match head {
        [a, b, c, d] => [*a, *b, *c, *d],
        _ => return,
    };
    let status = 100 + u16::from_be_bytes([high, low]) % 500;
    let forms = forms();
    let mut rest = rest;
    let mut headers = Vec::new();
    for _ in 0..count % 8 {
        let (spec, after) = take(rest, 2);
        let [name, len] = match spec {
            [a, b] => [*a, *b],
            _ => break,
        };
        let (value, after) = take(after, usize::from(len));
        rest = after;
        let value = String::from_utf8_lossy(&expand(value, &forms)).into_owned();
        headers.push((
            HEADER_NAMES[usize::from(name) % HEADER_NAMES.len()].to_owned(),
            value,
        ));
    }
    let body = expand(rest, &forms);
    let endpoint = FUZZ_ROUTES[usize::from(route) % FUZZ_ROUTES.len()];

    match classify_for_fuzzing(route, status, &headers, &body) {
        Ok((value, link)) => {
            assert!((200..300).contains(&status), "a success for HTTP {status}");
            check_value(&value, endpoint.obtains(), &forms, "$");
            if let Some(link) = &link {
                if let Some(form) = leaks(link, &forms) {
                    panic!("the secret ({form}) is in the Link: {link:?}");
                }
            }
            if let Ok(parsed) = serde_json::from_slice::<Value>(&body) {
                if !holds_secret(&parsed) {
                    assert_eq!(value, parsed, "a JSON success is passed on as it was");
                }
            } else {
                assert!(
                    body.iter().all(u8::is_ascii_whitespace),
                    "a success that is not JSON"
                );
                assert_eq!(value, Value::Null);
            }
        }
        Err(error) => {
            let upstream = error
                .upstream
                .as_ref()
                .unwrap_or_else(|| panic!("HTTP {status}: no upstream part: {}", error.detail));
            assert_eq!(upstream.status, status, "{}", error.detail);
            if (200..300).contains(&status) {
                assert_eq!(error.kind, ErrorKind::UpstreamUnavailable, "{}", error.detail);
            } else {
                assert!(
                    matches!(
                        error.kind,
                        ErrorKind::UpstreamRejected
                            | ErrorKind::UpstreamUnavailable
                            | ErrorKind::ValidationFailed
                            | ErrorKind::RateLimited
                    ),
                    "HTTP {status}: {:?}",
                    error.kind
                );
            }
            if status == 429 {
                assert_eq!(error.kind, ErrorKind::RateLimited);
                assert!(error.retry_after.is_some_and(|s| s >= 1), "a 429 tells a wait");
            }
            if matches!(status, 502..=504) {
                assert!(error.in_doubt, "a gateway's answer leaves a write in doubt");
            }
            assert!(
                error.detail.chars().count() <= 1_000,
                "a detail of {} characters",
                error.detail.chars().count()
            );
            if let Some(form) = leaks(&error.detail, &forms) {
                panic!("the secret ({form}) is in the detail: {:?}", error.detail);
            }
            if let Some(text) = &upstream.error {
                assert!(text.chars().count() <= 500, "upstream.error of {} characters", text.chars().count());
                if let Some(form) = leaks(text, &forms) {
                    panic!("the secret ({form}) is in upstream.error: {text:?}");
                }
            }
        }
    }
});
