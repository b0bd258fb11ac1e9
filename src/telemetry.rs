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

/// The caller's correlation id when it is usable, else a fresh one.
pub fn correlation_id<'a>(header: impl Fn(&str) -> Option<&'a str>) -> String {
    CORRELATION_HEADERS
        .iter()
        .filter_map(|name| header(name))
        .map(str::trim)
        .find(|v| is_acceptable_correlation_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Short and printable: it is copied into headers, logs and bodies, so nothing that could break them.
fn is_acceptable_correlation_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activityid_wins_over_the_other_headers() {
        let headers = [("activityid", "mi-1"), ("x-request-id", "r-2")];
        let get = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        assert_eq!(correlation_id(get), "mi-1");
    }

    #[test]
    fn an_unusable_id_is_replaced_by_a_fresh_one() {
        let headers = [("x-correlation-id", "evil\"<id>\n")];
        let get = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let id = correlation_id(get);
        assert_ne!(id, "evil\"<id>\n");
        assert_eq!(id.len(), 36);
    }
}
