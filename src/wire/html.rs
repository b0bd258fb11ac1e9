//! The small HTML pages a browser sees at the end of the OAuth redirect flow.
//!
//! Everything interpolated is escaped, and the pages forbid scripts, framing and referrers (the URL
//! that led here carried a one-time code).

use super::xml::escape_into;
use super::Reply;

/// Headers every page carries, besides its content type.
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

pub fn page(status: u16, title: &str, message: &str) -> Reply {
    let mut out = String::with_capacity(1024);
    out.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    escape_into(&mut out, title);
    out.push_str(
        "</title><style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}h1{font-size:1.4em}</style></head><body><h1>",
    );
    escape_into(&mut out, title);
    out.push_str("</h1><p>");
    escape_into(&mut out, message);
    out.push_str("</p></body></html>");
    Reply {
        status,
        content_type: "text/html; charset=utf-8",
        body: out.into_bytes(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_text_is_escaped() {
        let reply = page(400, "Nope", "<script>alert(1)</script>");
        let body = String::from_utf8(reply.body).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
