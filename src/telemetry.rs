//! Logging and correlation ids (contract, section 4).
//!
//! Logs are structured (`tracing` key/value fields), written as JSON or pretty text. Every record made
//! while a request is served carries its correlation id through the request span. The correlation id
//! comes from the caller (`activityid`, MI's header, then `X-Correlation-ID`, then `X-Request-ID`) or is
//! made here; what a caller sends is untrusted, so it is used only when short and printable.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Headers that may carry the caller's correlation id, in order of preference.
pub const CORRELATION_HEADERS: [&str; 3] = ["activityid", "x-correlation-id", "x-request-id"];

/// The header the correlation id is echoed in.
pub const CORRELATION_RESPONSE_HEADER: &str = "x-correlation-id";

/// Installs the global subscriber. Call once, at start-up.
pub fn init<W>(settings: &LogSettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The level was validated with the configuration; fall back to `info` rather than fail here.
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
    };
    // A second call (tests build several applications in one process) keeps the first subscriber.
    let _ = result;
}

/// The caller's correlation id, else a fresh one.
///
/// Whatever the caller sent is kept as its identity: an ESB resends a message with the same id, and
/// the derived idempotency key must come out the same. An id that is not short and printable
/// (spaces, `#`, braces, non-ASCII, over 128 bytes) cannot be copied into headers and logs as it is,
/// so it is sanitised deterministically: its printable part, then `~` and a hash of all its bytes.
/// The same raw id always gives the same sanitised one, and two raw ids differ in it too.
pub fn correlation_id<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> String {
    CORRELATION_HEADERS
        .iter()
        .filter_map(|name| header(name))
        .map(|v| v.trim_ascii())
        .find(|v| !v.is_empty())
        .map(sanitised)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// How much of an unusable id's printable part is kept before the hash.
const SANITISED_PREFIX: usize = 64;

fn sanitised(raw: &[u8]) -> String {
    if is_acceptable_correlation_id(raw) {
        // Checked: ASCII only.
        return String::from_utf8_lossy(raw).into_owned();
    }
    use sha2::{Digest, Sha256};
    let prefix: String = raw
        .iter()
        .filter(|b| is_acceptable_byte(**b))
        .take(SANITISED_PREFIX)
        .map(|b| char::from(*b))
        .collect();
    let hash = hex::encode(Sha256::digest(raw));
    format!("{prefix}~{}", &hash[..32])
}

fn is_acceptable_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b)
}

/// Short and printable: it is copied into headers, logs and bodies, so nothing that could break them.
fn is_acceptable_correlation_id(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 128 && value.iter().all(|b| is_acceptable_byte(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(headers: &[(&str, &[u8])]) -> String {
        correlation_id(|name| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }

    #[test]
    fn activityid_wins_over_the_other_headers() {
        assert_eq!(
            id_of(&[("activityid", b"mi-1"), ("x-request-id", b"r-2")]),
            "mi-1"
        );
    }

    #[test]
    fn an_unprintable_id_is_sanitised_the_same_way_every_time() {
        for raw in [
            &b"evil\"<id>\n"[..],
            b"order 1042 #retry",
            b"{urn:uuid}",
            "caf\u{e9}-1".as_bytes(),
            &[b'a'; 200],
        ] {
            let id = id_of(&[("activityid", raw)]);
            assert_eq!(id, id_of(&[("activityid", raw)]), "{raw:?}");
            assert!(
                id.len() <= 128 && id.bytes().all(is_acceptable_byte_or_tilde),
                "{id}"
            );
        }
        assert_ne!(
            id_of(&[("activityid", b"order 1")]),
            id_of(&[("activityid", b"order 2")])
        );
        // Without any id, a fresh one each time.
        assert_ne!(id_of(&[]), id_of(&[]));
        assert_eq!(id_of(&[("activityid", b"  ")]).len(), 36);
    }

    fn is_acceptable_byte_or_tilde(b: u8) -> bool {
        b == b'~' || is_acceptable_byte(b)
    }
}
