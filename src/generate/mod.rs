//! Files generated from the operation declarations (`operations!` in `operations/mod.rs`): the WSO2
//! MI connector (`mi.rs`) and the Power Automate / Logic Apps custom connector (`power_automate.rs`). A generator answers its files as relative paths and bytes;
//! `mastodon-sidecar generate` writes them, and `tests/api/generated.rs` holds the committed copies to
//! what the declarations generate, so adding an operation and forgetting to regenerate fails the build
//! instead of shipping a connector that lacks it.

pub mod mi;
pub mod power_automate;

use std::io;
use std::path::Path;

use crate::operations::Operation;

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Relative to the generator's output folder, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

impl File {
    pub fn text(path: impl Into<String>, text: impl Into<String>) -> File {
        File {
            path: path.into(),
            bytes: text.into().into_bytes(),
        }
    }
}

/// Writes `files` under `dir`, creating folders as needed. Files already there that the generator
/// does not make are left alone (the caller's own); a generated file is overwritten.
pub fn write(dir: &Path, files: &[File]) -> io::Result<()> {
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.bytes)?;
    }
    Ok(())
}

/// Text for XML content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `postStatus` → `Post Status`: the display name tools show.
pub fn title(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// `in_reply_to_id` → `In Reply To Id`.
pub fn field_title(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
            first.unwrap_or_default() + chars.as_str()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The group an operation belongs to, for the connector's components and the documents' tags: the
/// first segment of its Mastodon route after the version (`/api/v1/lists/:id` → `lists`), or, for the
/// operations that are more than one call, what their name says.
pub fn group(op: Operation) -> &'static str {
    if let Some(endpoint) = op.route() {
        let mut segments = endpoint.path.split('/').filter(|s| !s.is_empty());
        let _api = segments.next();
        let _version = segments.next();
        return match segments.next() {
            Some("statuses") | Some("scheduled_statuses") => "statuses",
            Some("timelines") => "timelines",
            Some("notifications") => "notifications",
            Some("search") => "search",
            Some("accounts") => "accounts",
            Some("polls") => "polls",
            Some("lists") => "lists",
            Some("instance") => "instance",
            Some("media") => "media",
            _ => "api",
        };
    }
    let name = op.name();
    if op == Operation::Init {
        "config"
    } else if op == Operation::CallApi {
        "api"
    } else if name.contains("Media") {
        "media"
    } else if name.contains("Status") {
        "statuses"
    } else {
        "oauth"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_titles() {
        assert_eq!(title("postStatus"), "Post Status");
        assert_eq!(title("getStatusContext"), "Get Status Context");
        assert_eq!(field_title("in_reply_to_id"), "In Reply To Id");
        assert_eq!(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn every_operation_has_a_group() {
        for op in Operation::ALL {
            assert!(!group(op).is_empty());
        }
        assert_eq!(group(Operation::PostStatus), "statuses");
        assert_eq!(group(Operation::GetToken), "oauth");
        assert_eq!(group(Operation::ListScheduledStatuses), "statuses");
        assert_eq!(group(Operation::GetListAccounts), "lists");
    }
}
