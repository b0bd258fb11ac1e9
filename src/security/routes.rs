//! The route patterns that let `callApi` reach a part of Mastodon's API: `security.call_api_routes`
//! (callers without keys, and the CLI) and each key's `call_api`.
//!
//! A pattern is `METHOD /api/path`, the method one of GET, POST, PUT, PATCH, DELETE or `*`; in the
//! path, `*` stands for exactly one segment and a final `**` for any number of them (at least one).
//! Nothing else is special: a pattern is matched against the path callApi was given after that path
//! was checked (no dot segments, no encoded slashes), so it cannot be widened by the caller.

use std::fmt;

/// The methods callApi sends.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// One `METHOD /api/...` pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// `None`: any method.
    method: Option<&'static str>,
    segments: Vec<Segment>,
    text: String,
}

impl fmt::Debug for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl RoutePattern {
    /// Reads `GET /api/v1/trends/**`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<RoutePattern, String> {
        let text = text.trim();
        let Some((method, path)) = text.split_once(' ') else {
            return Err(format!(
                "{text:?} is not `METHOD /api/path` (e.g. \"GET /api/v1/trends/**\")"
            ));
        };
        let method = match method.trim() {
            "*" => None,
            m => Some(
                METHODS
                    .into_iter()
                    .find(|known| known.eq_ignore_ascii_case(m))
                    .ok_or_else(|| {
                        format!("{text:?}: the method is one of {} or *", METHODS.join(", "))
                    })?,
            ),
        };
        let path = path.trim();
        let Some(rest) = path.strip_prefix("/api/") else {
            return Err(format!("{text:?}: the path begins with /api/"));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = vec![Segment::Literal("api".to_owned())];
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "**" if i + 1 == parts.len() => Segment::Rest,
                "**" => return Err(format!("{text:?}: ** may only end a pattern")),
                "*" => Segment::One,
                "" | "." | ".." => {
                    return Err(format!(
                        "{text:?}: empty and dot segments are never matched"
                    ))
                }
                p if p.contains('*') => {
                    return Err(format!(
                        "{text:?}: * stands for a whole segment, not part of one"
                    ))
                }
                p if !check_segment(p) => {
                    return Err(format!(
                        "{text:?}: {p:?} holds characters a path segment cannot"
                    ))
                }
                p => Segment::Literal(p.to_owned()),
            };
            segments.push(segment);
        }
        Ok(RoutePattern {
            method,
            segments,
            text: text.to_owned(),
        })
    }

    /// Whether `method path` matches; `path` is one callApi already checked ([`check_path`]).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.is_some_and(|m| m != method) {
            return false;
        }
        let given: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut at = 0;
        for segment in &self.segments {
            match segment {
                Segment::Rest => return at < given.len(),
                Segment::One => {
                    if at >= given.len() {
                        return false;
                    }
                }
                Segment::Literal(l) => {
                    if given.get(at) != Some(&l.as_str()) {
                        return false;
                    }
                }
            }
            at += 1;
        }
        at == given.len()
    }
}

/// The characters of a segment callApi takes: RFC 3986's unreserved and sub-delims, `:`, `@`, and
/// `%` escapes that decode to none of `/`, `\`, `.`, `?`, `#` or a control character (so an escape
/// cannot hide a segment or a dot segment from the patterns).
pub fn check_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let Some(hex) = segment.get(i + 1..i + 3) else {
                return false;
            };
            let Ok(decoded) = u8::from_str_radix(hex, 16) else {
                return false;
            };
            if matches!(decoded, b'/' | b'\\' | b'.' | b'?' | b'#' | b'%')
                || decoded.is_ascii_control()
            {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// A path callApi may send: under `/api/`, at most 1,024 bytes, no query or fragment, no empty or
/// dot segments, only [`check_segment`]'s characters. The message says what is wrong.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.len() > 1024 {
        return Err("the path is longer than 1024 bytes".to_owned());
    }
    let Some(rest) = path.strip_prefix("/api/") else {
        return Err("the path must begin with /api/ (callApi reaches Mastodon's API only, not /oauth or other pages)".to_owned());
    };
    if path.contains(['?', '#']) {
        return Err(
            "the path holds no query or fragment: give query parameters in `params`".to_owned(),
        );
    }
    for segment in rest.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err("the path has an empty or dot segment".to_owned());
        }
        if !check_segment(segment) {
            return Err(format!(
                "the path segment {:?} holds characters that are not allowed (encode them; encoded /, \\, ., ?, # and control characters are refused)",
                segment.chars().take(64).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Patterns callApi may reach: none means callApi is off.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    patterns: Vec<RoutePattern>,
}

impl Routes {
    /// The patterns of `texts`, or every message of those that cannot be read.
    pub fn parse(texts: &[String]) -> Result<Routes, Vec<String>> {
        let mut patterns = Vec::new();
        let mut problems = Vec::new();
        for text in texts {
            match RoutePattern::parse(text) {
                Ok(p) => patterns.push(p),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(Routes { patterns })
        } else {
            Err(problems)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn allows(&self, method: &str, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(method, path))
    }

    /// The patterns, for a refusal's message.
    pub fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> RoutePattern {
        RoutePattern::parse(text).unwrap()
    }

    #[test]
    fn one_star_is_one_segment_and_a_final_double_star_the_rest() {
        let one = p("GET /api/v1/statuses/*/context");
        assert!(one.matches("GET", "/api/v1/statuses/123/context"));
        assert!(!one.matches("GET", "/api/v1/statuses/123/456/context"));
        assert!(!one.matches("POST", "/api/v1/statuses/123/context"));
        assert!(!one.matches("GET", "/api/v1/statuses/123"));
        let rest = p("* /api/v1/trends/**");
        assert!(rest.matches("GET", "/api/v1/trends/tags"));
        assert!(rest.matches("DELETE", "/api/v1/trends/a/b/c"));
        assert!(!rest.matches("GET", "/api/v1/trends"));
        assert!(!rest.matches("GET", "/api/v1/trendsx/tags"));
        assert!(p("post /api/v1/filters").matches("POST", "/api/v1/filters"));
    }

    #[test]
    fn patterns_that_cannot_mean_one_thing_are_refused() {
        for bad in [
            "GET",
            "FETCH /api/v1/x",
            "GET /oauth/token",
            "GET /api/v1/**/x",
            "GET /api/v1/st*",
            "GET /api/v1/../apps",
            "GET /api//v1",
            "GET /api/v1/a b",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_checked_before_any_pattern_sees_them() {
        assert!(check_path("/api/v1/statuses/1%402/context").is_ok());
        for bad in [
            "/oauth/token",
            "/api/v1/../v1/apps",
            "/api/v1/./x",
            "/api//v1",
            "/api/v1/x?y=1",
            "/api/v1/%2e%2e/apps",
            "/api/v1/a%2Fb",
            "/api/v1/a%0d%0aX: y",
            "/api/v1/a\r\nb",
            "/api/v1/a%zz",
            "/api/v1/é",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_path(&format!("/api/{}", "a".repeat(1100))).is_err());
    }
}
