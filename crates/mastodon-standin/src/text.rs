//! Status text the way Mastodon treats it: entity extraction (URLs, hashtags, mentions),
//! the length rule of `StatusLengthValidator` (grapheme clusters, every URL counted as
//! `characters_reserved_per_url`, `@user@domain` counted as `@user`) and the HTML of
//! `TextFormatter` (paragraphs, `<br />`, linkified URLs and hashtags).

use unicode_segmentation::UnicodeSegmentation as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Url,
    /// `#name`, name starting one byte after `start`.
    Tag,
    /// `@user` or `@user@domain`; `user_end` is where the user name ends.
    Mention {
        user_end: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Entity {
    start: usize,
    end: usize,
    kind: Kind,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn prev_char(text: &str, at: usize) -> Option<char> {
    text[..at].chars().next_back()
}

/// Non-overlapping entities, left to right (URLs win over what they contain).
fn scan(text: &str) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let found = match text.as_bytes()[i] {
            b'h' | b'H' => url_at(text, i),
            b'#' => tag_at(text, i),
            b'@' => mention_at(text, i),
            _ => None,
        };
        match found {
            Some(e) => {
                out.push(e);
                i = e.end;
            }
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

fn url_at(text: &str, i: usize) -> Option<Entity> {
    let rest = &text[i..];
    let scheme = if rest.len() >= 8 && rest[..8].eq_ignore_ascii_case("https://") {
        8
    } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case("http://") {
        7
    } else {
        return None;
    };
    if prev_char(text, i).is_some_and(|c| c.is_alphanumeric() || "@＠$#＃".contains(c)) {
        return None;
    }
    let mut end = rest
        .find(|c: char| c.is_whitespace() || c.is_control() || "<>\"`".contains(c))
        .unwrap_or(rest.len());
    // Trailing punctuation is not part of the URL; a closing parenthesis only when unbalanced.
    while let Some(last) = rest[..end].chars().next_back() {
        let unbalanced = |open: char, close: char| {
            last == close && rest[..end].matches(open).count() < rest[..end].matches(close).count()
        };
        if ".,:;!?'*".contains(last) || unbalanced('(', ')') || unbalanced('[', ']') {
            end -= last.len_utf8();
        } else {
            break;
        }
    }
    let host = &rest[scheme..end];
    if host.is_empty() || host.starts_with(['/', '.', ':']) {
        return None;
    }
    Some(Entity {
        start: i,
        end: i + end,
        kind: Kind::Url,
    })
}

fn tag_at(text: &str, i: usize) -> Option<Entity> {
    if prev_char(text, i).is_some_and(|c| is_word(c) || c == '/' || c == ')') {
        return None;
    }
    let rest = &text[i + 1..];
    let len = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
    let name = &rest[..len];
    if !name.chars().any(char::is_alphabetic) {
        return None;
    }
    Some(Entity {
        start: i,
        end: i + 1 + len,
        kind: Kind::Tag,
    })
}

fn mention_at(text: &str, i: usize) -> Option<Entity> {
    if prev_char(text, i).is_some_and(|c| is_word(c) || c == '/') {
        return None;
    }
    let rest = &text[i + 1..];
    let user_len = trimmed_run(rest, |c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if user_len == 0 {
        return None;
    }
    let user_end = i + 1 + user_len;
    let mut end = user_end;
    if let Some(domain) = text[user_end..].strip_prefix('@') {
        let dlen = trimmed_run(domain, |c| is_word(c) || ".-".contains(c));
        if dlen > 0 {
            end = user_end + 1 + dlen;
        }
    }
    Some(Entity {
        start: i,
        end,
        kind: Kind::Mention { user_end },
    })
}

/// Length of the leading run of `ok` characters, without trailing `.` or `-`.
fn trimmed_run(s: &str, ok: impl Fn(char) -> bool) -> usize {
    let run = s.find(|c: char| !ok(c)).unwrap_or(s.len());
    s[..run].trim_end_matches(['.', '-']).len()
}

/// The length Mastodon checks against `max_characters`.
pub fn countable_length(text: &str, per_url: u64) -> u64 {
    let mut n = 0u64;
    let mut at = 0;
    for e in scan(text) {
        n += text[at..e.start].graphemes(true).count() as u64;
        n += match e.kind {
            Kind::Url => per_url,
            Kind::Tag => text[e.start..e.end].graphemes(true).count() as u64,
            Kind::Mention { user_end } => text[e.start..user_end].graphemes(true).count() as u64,
        };
        at = e.end;
    }
    n + text[at..].graphemes(true).count() as u64
}

/// HTML-escapes like Rails' `ERB::Util.html_escape`.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// A status text rendered as Mastodon would.
pub struct Rendered {
    pub content: String,
    /// Hashtags, lowercased, first occurrence order, unique.
    pub tags: Vec<String>,
    /// Whether the text mentions the stand-in's own account.
    pub mentions_self: bool,
}

/// Renders `text` to Mastodon's HTML; `base` is `http://host:port`, `username` the local
/// account that mentions may resolve to.
pub fn render(text: &str, base: &str, username: &str, domain: &str) -> Rendered {
    let mut r = Rendered {
        content: String::with_capacity(text.len() + 16),
        tags: Vec::new(),
        mentions_self: false,
    };
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    for para in text
        .split("\n\n")
        .filter(|p| !p.trim_matches('\n').is_empty())
    {
        r.content.push_str("<p>");
        for (k, line) in para.trim_matches('\n').split('\n').enumerate() {
            if k > 0 {
                r.content.push_str("<br />");
            }
            render_line(&mut r, line, base, username, domain);
        }
        r.content.push_str("</p>");
    }
    r
}

fn render_line(r: &mut Rendered, line: &str, base: &str, username: &str, domain: &str) {
    let mut at = 0;
    for e in scan(line) {
        escape_into(&mut r.content, &line[at..e.start]);
        let raw = &line[e.start..e.end];
        match e.kind {
            Kind::Url => push_link(&mut r.content, raw),
            Kind::Tag => {
                let name = &raw[1..];
                let lower = name.to_lowercase();
                r.content.push_str("<a href=\"");
                escape_into(&mut r.content, base);
                r.content.push_str("/tags/");
                escape_into(&mut r.content, &lower);
                r.content
                    .push_str("\" class=\"mention hashtag\" rel=\"tag\">#<span>");
                escape_into(&mut r.content, name);
                r.content.push_str("</span></a>");
                if !r.tags.contains(&lower) {
                    r.tags.push(lower);
                }
            }
            Kind::Mention { user_end } => {
                let user = &line[e.start + 1..user_end];
                let host = line.get(user_end + 1..e.end).unwrap_or("");
                let local = user.eq_ignore_ascii_case(username)
                    && (host.is_empty() || host.eq_ignore_ascii_case(domain));
                if local {
                    r.mentions_self = true;
                    r.content
                        .push_str("<span class=\"h-card\" translate=\"no\"><a href=\"");
                    escape_into(&mut r.content, base);
                    r.content.push_str("/@");
                    r.content.push_str(username);
                    r.content.push_str("\" class=\"u-url mention\">@<span>");
                    r.content.push_str(username);
                    r.content.push_str("</span></a></span>");
                } else {
                    escape_into(&mut r.content, raw);
                }
            }
        }
        at = e.end;
    }
    escape_into(&mut r.content, &line[at..]);
}

/// Mastodon's shortened link: scheme (and `www.`) hidden, 30 characters shown.
fn push_link(out: &mut String, url: &str) {
    let lower = url.to_ascii_lowercase();
    let mut prefix = if lower.starts_with("https://") { 8 } else { 7 };
    if lower[prefix..].starts_with("www.") {
        prefix += 4;
    }
    let rest = &url[prefix..];
    let cut = rest.char_indices().nth(30).map(|(i, _)| i);
    let (shown, hidden) = rest.split_at(cut.unwrap_or(rest.len()));
    out.push_str("<a href=\"");
    escape_into(out, url);
    out.push_str("\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\"><span class=\"invisible\">");
    escape_into(out, &url[..prefix]);
    out.push_str(if cut.is_some() {
        "</span><span class=\"ellipsis\">"
    } else {
        "</span><span class=\"\">"
    });
    escape_into(out, shown);
    out.push_str("</span><span class=\"invisible\">");
    escape_into(out, hidden);
    out.push_str("</span></a>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_mastodon() {
        assert_eq!(countable_length("hello", 23), 5);
        assert_eq!(
            countable_length("see https://example.com/a/very/long/path.", 23),
            4 + 23 + 1
        );
        assert_eq!(countable_length("hi @alice@example.social", 23), 3 + 6);
        assert_eq!(countable_length("👍🏽 é", 23), 3);
        assert_eq!(countable_length("mail@https://x.y", 23), 16);
    }

    #[test]
    fn renders_html() {
        let r = render(
            "Hi <b> & #Rust\nline two\n\npara https://www.example.com/x @sidecar",
            "http://h",
            "sidecar",
            "h",
        );
        assert_eq!(
            r.content,
            "<p>Hi &lt;b&gt; &amp; <a href=\"http://h/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#<span>Rust</span></a><br />line two</p>\
             <p>para <a href=\"https://www.example.com/x\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\">\
             <span class=\"invisible\">https://www.</span><span class=\"\">example.com/x</span><span class=\"invisible\"></span></a> \
             <span class=\"h-card\" translate=\"no\"><a href=\"http://h/@sidecar\" class=\"u-url mention\">@<span>sidecar</span></a></span></p>"
        );
        assert_eq!(r.tags, vec!["rust".to_owned()]);
        assert!(r.mentions_self);
        assert_eq!(
            render("plain", "http://h", "sidecar", "h").content,
            "<p>plain</p>"
        );
    }
}
