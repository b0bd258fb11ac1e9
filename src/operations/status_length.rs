//! How Mastodon counts a status's length, so an over-long one is refused before calling out.
//!
//! Mastodon (`StatusLengthValidator`) counts grapheme clusters over `spoiler_text` + `status`, after
//! replacing every URL by `characters_reserved_per_url` characters and shortening every remote mention
//! `@user@domain` to `@user`. This follows that rule on whitespace-separated words; where it errs, it
//! errs short, so Mastodon stays the final judge and a valid status is never refused here.

use unicode_segmentation::UnicodeSegmentation;

/// The length Mastodon will count for this status.
pub fn countable_length(spoiler_text: &str, status: &str, url_cost: u64) -> u64 {
    count(spoiler_text, url_cost) + count(status, url_cost)
}

fn count(text: &str, url_cost: u64) -> u64 {
    text.split_word_bounds_whitespace()
        .into_iter()
        .map(|piece| piece_length(piece, url_cost))
        .sum()
}

trait SplitKeepingWhitespace {
    fn split_word_bounds_whitespace(&self) -> Vec<&str>;
}

impl SplitKeepingWhitespace for str {
    /// Splits into runs of whitespace and runs of anything else, keeping both.
    fn split_word_bounds_whitespace(&self) -> Vec<&str> {
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut in_space: Option<bool> = None;
        for (i, c) in self.char_indices() {
            let space = c.is_whitespace();
            if in_space.is_some_and(|s| s != space) {
                pieces.push(&self[start..i]);
                start = i;
            }
            in_space = Some(space);
        }
        if start < self.len() {
            pieces.push(&self[start..]);
        }
        pieces
    }
}

fn piece_length(piece: &str, url_cost: u64) -> u64 {
    let graphemes = |s: &str| s.graphemes(true).count() as u64;
    if piece.starts_with(char::is_whitespace) {
        return graphemes(piece);
    }
    // A URL may be wrapped in punctuation: "(https://a.example/x)." counts as ( + 23 + ).
    if let Some(at) = piece.find("https://").or_else(|| piece.find("http://")) {
        let (before, rest) = piece.split_at(at);
        let url_end = rest
            .trim_end_matches(['.', ',', ':', ';', '!', '?', ')', '\'', '"'])
            .len();
        let host_start = rest.find("//").map_or(0, |i| i + 2);
        if url_end > host_start {
            return graphemes(before) + url_cost + graphemes(&rest[url_end..]);
        }
    }
    // `@user@domain.tld` counts as `@user`.
    if let Some(mention) = piece.strip_prefix('@') {
        let user_len = mention
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(mention.len());
        let after_user = &mention[user_len..];
        if user_len > 0 {
            if let Some(domain) = after_user.strip_prefix('@') {
                let domain_len = domain
                    .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
                    .unwrap_or(domain.len());
                let domain_part = domain[..domain_len].trim_end_matches('.');
                if domain_part.contains('.') {
                    let rest = &domain[domain_part.len()..];
                    return 1 + graphemes(&mention[..user_len]) + graphemes(rest);
                }
            }
        }
    }
    graphemes(piece)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_counts_grapheme_clusters() {
        assert_eq!(countable_length("", "hello world", 23), 11);
        // A family emoji is one grapheme made of several code points.
        assert_eq!(countable_length("", "👨‍👩‍👧‍👦!", 23), 2);
        assert_eq!(countable_length("cw ", "é", 23), 4);
    }

    #[test]
    fn every_url_costs_the_reserved_characters() {
        let long = format!("see https://example.org/{}", "a".repeat(200));
        assert_eq!(countable_length("", &long, 23), 4 + 23);
        assert_eq!(
            countable_length("", "(https://a.example/x).", 23),
            1 + 23 + 2
        );
        assert_eq!(countable_length("", "https://", 23), 8);
    }

    #[test]
    fn remote_mentions_count_without_their_domain() {
        assert_eq!(
            countable_length("", "hi @alice@social.example!", 23),
            3 + 6 + 1
        );
        assert_eq!(countable_length("", "@bob", 23), 4);
        assert_eq!(countable_length("", "mail a@b", 23), 8);
    }
}
