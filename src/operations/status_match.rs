//! What a post asked for, checked against what the server answered or shows.
//!
//! Two questions, one description of the post ([`Expected`]):
//! - **Did the server keep what the caller asked for?** Servers drop or change parameters and still
//!   answer 200 (`scheduled_at` ignored and the status published at once, Mitra's `unlisted` stored
//!   as public, its `spoiler_text` dropped, snac's JSON poll lost, Takahē's reply turned into a
//!   non-reply). [`Expected::dropped`] names every difference, so it is reported, never a plain success.
//! - **Is this status the one we sent?** When an answer was lost, the account's latest statuses are
//!   read, and [`Expected::matches`] recognises ours among them. Servers render the text (HTML, links
//!   split in spans, mentions without their domain, Markdown on Mitra), so the comparison is on the
//!   words of the text, not on its bytes.

use serde_json::Value;

/// The parts of a post that can be checked in an answer.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub status: String,
    pub spoiler_text: Option<String>,
    pub visibility: Option<String>,
    pub in_reply_to_id: Option<String>,
    pub poll_options: Option<Vec<String>>,
    pub media_count: usize,
    pub language: Option<String>,
    pub sensitive: Option<bool>,
    pub scheduled: bool,
}

impl Expected {
    /// Every way `answer` (a Status, or a ScheduledStatus when scheduling was asked) differs from
    /// what was asked, in words a caller can act on.
    pub fn dropped(&self, answer: &Value) -> Vec<String> {
        let mut dropped = Vec::new();
        let is_scheduled = answer.get("params").is_some_and(Value::is_object)
            && answer.get("scheduled_at").is_some_and(|v| !v.is_null());
        if self.scheduled && !is_scheduled {
            dropped.push(
                "scheduled_at was ignored: the server published the status at once".to_owned(),
            );
        }
        // A ScheduledStatus carries the parameters under `params`; a Status at its top.
        let shown = if is_scheduled {
            &answer["params"]
        } else {
            answer
        };
        if let Some(visibility) = &self.visibility {
            match shown.get("visibility").and_then(Value::as_str) {
                Some(kept) if kept == visibility => {}
                Some(kept) => {
                    dropped.push(format!("visibility {visibility:?} was stored as {kept:?}"))
                }
                None if is_scheduled => {}
                None => dropped.push(format!("visibility {visibility:?} is not in the answer")),
            }
        }
        if let Some(spoiler) = self
            .spoiler_text
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            let kept = shown
                .get("spoiler_text")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kept.trim() != spoiler.trim() {
                dropped.push("spoiler_text was dropped".to_owned());
            }
        }
        if let Some(reply_to) = &self.in_reply_to_id {
            let kept = id_text(&shown["in_reply_to_id"]);
            if kept.as_deref() != Some(reply_to.as_str()) {
                dropped.push(format!(
                    "in_reply_to_id {reply_to:?} was dropped: the status is not a reply"
                ));
            }
        }
        if let Some(options) = &self.poll_options {
            let kept = shown["poll"]["options"].as_array().map(Vec::len);
            match kept {
                Some(n) if n == options.len() => {}
                Some(n) => dropped.push(format!(
                    "the poll has {n} options, not the {} given",
                    options.len()
                )),
                None => dropped.push("the poll was dropped".to_owned()),
            }
        }
        if self.media_count > 0 && !is_scheduled {
            let kept = answer["media_attachments"].as_array().map_or(0, Vec::len);
            if kept != self.media_count {
                dropped.push(format!(
                    "{kept} of {} media attachments were kept",
                    self.media_count
                ));
            }
        }
        if let Some(language) = &self.language {
            if let Some(kept) = shown.get("language").and_then(Value::as_str) {
                let asked = language.to_ascii_lowercase();
                let kept_lower = kept.to_ascii_lowercase();
                if !(kept_lower == asked || kept_lower.starts_with(&format!("{asked}-"))) {
                    dropped.push(format!("language {language:?} was stored as {kept:?}"));
                }
            }
        }
        if self.sensitive == Some(true) && !is_scheduled && answer["sensitive"] == false {
            dropped.push("sensitive was dropped".to_owned());
        }
        dropped
    }

    /// Whether `candidate` (a Status from the account's timeline, or a ScheduledStatus) is this post.
    pub fn matches(&self, candidate: &Value) -> bool {
        let (text, poll) = if self.scheduled {
            let params = &candidate["params"];
            (
                words(params["text"].as_str().unwrap_or(""), false),
                params["poll"]["options"].as_array().map(Vec::len),
            )
        } else {
            (
                words(candidate["content"].as_str().unwrap_or(""), true),
                candidate["poll"]["options"].as_array().map(Vec::len),
            )
        };
        if let Some(options) = &self.poll_options {
            // A server that dropped the poll shows none; one that kept it shows as many options.
            if poll.is_some_and(|n| n != options.len()) {
                return false;
            }
        }
        let ours = words(&self.status, false);
        if ours.is_empty() {
            // Media only: nothing to compare but the attachments.
            return text.is_empty()
                && candidate["media_attachments"]
                    .as_array()
                    .map_or(0, Vec::len)
                    == self.media_count;
        }
        same_words(&ours, &text)
    }
}

/// An id as text: servers send string ids, a few send numbers.
pub fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Equal, or (for longer texts that a renderer reshaped, e.g. Markdown list numbers) one a
/// subsequence of the other covering at least 75% of it.
fn same_words(a: &[String], b: &[String]) -> bool {
    if a == b {
        return true;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() < 5 || short.len() * 4 < long.len() * 3 {
        return false;
    }
    let mut rest = long.iter();
    short.iter().all(|w| rest.any(|l| l == w))
}

/// The words of a text, lower-cased: runs of letters and digits. `html`: the text is rendered
/// content, so tags become spaces and entities are decoded. A mention `@user@domain` counts as
/// `user` (servers render remote mentions without their domain).
pub fn words(text: &str, html: bool) -> Vec<String> {
    let plain = if html {
        decode_entities(&strip_tags(text))
    } else {
        text.to_owned()
    };
    let mut out = Vec::new();
    for token in plain.split_whitespace() {
        let token = match token.strip_prefix('@') {
            Some(rest) => rest.split('@').next().unwrap_or(""),
            None => token,
        };
        out.extend(
            token
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase),
        );
    }
    out
}

/// The text of rendered content: block tags (paragraphs, line breaks, list items) separate words;
/// inline ones (links, the spans Mastodon splits URLs and mentions into) do not.
fn strip_tags(html: &str) -> String {
    const BLOCKS: [&str; 13] = [
        "p",
        "br",
        "li",
        "div",
        "ol",
        "ul",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    ];
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            // An unclosed `<` is text.
            out.push_str(&rest[open..]);
            return out;
        };
        let tag = &rest[open + 1..open + close];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if BLOCKS.contains(&name.as_str()) {
            out.push(' ');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = after;
            continue;
        };
        let name = &after[..end];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected(status: &str) -> Expected {
        Expected {
            status: status.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn rendered_content_matches_the_text_it_came_from() {
        let e =
            expected("Hi @alice@social.example, see https://example.org/a-very-long-path #news <3");
        let mastodon = r#"<p>Hi <span class="h-card"><a href="https://social.example/@alice" class="u-url mention">@<span>alice</span></a></span>, see <a href="https://example.org/a-very-long-path"><span class="invisible">https://</span><span class="ellipsis">example.org/a-very-lo</span><span class="invisible">ng-path</span></a> <a href="/tags/news">#<span>news</span></a> &lt;3</p>"#;
        assert!(e.matches(&json!({"content": mastodon})));
        assert!(!e.matches(&json!({"content": "<p>Hi alice, see nothing</p>"})));
        let paragraphs = expected("line one\n\nline two");
        assert!(paragraphs.matches(&json!({"content": "<p>line one</p><p>line two</p>"})));
        assert!(!expected("line").matches(&json!({"content": "<p>lineone</p>"})));
    }

    #[test]
    fn markdown_reshaping_still_matches_a_long_text() {
        let e = expected("1. first step here\n2. second step there");
        let mitra = "<ol><li>first step here</li><li>second step there</li></ol>";
        assert!(e.matches(&json!({"content": mitra})));
    }

    #[test]
    fn a_dropped_schedule_visibility_and_spoiler_are_named() {
        let e = Expected {
            status: "x".into(),
            visibility: Some("unlisted".into()),
            spoiler_text: Some("cw".into()),
            scheduled: true,
            ..Default::default()
        };
        let status =
            json!({"id": "1", "content": "<p>x</p>", "visibility": "public", "spoiler_text": ""});
        let dropped = e.dropped(&status);
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        let scheduled = json!({"id": "1", "scheduled_at": "2030-01-01T00:00:00.000Z",
            "params": {"text": "x", "visibility": "unlisted", "spoiler_text": "cw"}});
        assert!(e.dropped(&scheduled).is_empty());
    }

    #[test]
    fn a_lost_poll_or_reply_is_named() {
        let e = Expected {
            status: "q".into(),
            poll_options: Some(vec!["a".into(), "b".into()]),
            in_reply_to_id: Some("7".into()),
            ..Default::default()
        };
        assert_eq!(
            e.dropped(&json!({"poll": null, "in_reply_to_id": null}))
                .len(),
            2
        );
        assert!(e
            .dropped(&json!({"poll": {"options": [{}, {}]}, "in_reply_to_id": "7"}))
            .is_empty());
    }

    #[test]
    fn entities_decode_and_unknown_ones_stay() {
        assert_eq!(
            decode_entities("a &amp; b &#39;c&#x27; &bogus; &"),
            "a & b 'c' &bogus; &"
        );
    }
}
