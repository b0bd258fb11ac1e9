//! Media: `POST /api/v2/media` (multipart `file`, `description`, `focus`, `thumbnail`),
//! `GET /api/v1/media/:id`, `PUT /api/v1/media/:id`, with the instance's limits enforced as
//! Mastodon's validations word them (422 `Validation failed: ...`, not 413) and
//! deterministic processing: small images are ready at once (200); larger ones
//! (`media_processing_threshold`) and every video or audio answer 202 with `url: null`,
//! then 206 to `media_processing_polls` GETs (or until `media_processing_time`), then 200.
//! What arrived (size, type, a SHA-256) is kept for tests (`StandIn::media`).

use std::time::Instant;

use actix_web::http::header;
use actix_web::HttpResponse;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::http::{self, authorize, Ctx};
use crate::profiles::Profile;
use crate::routes::segment;
use crate::shapes;
use crate::state::lock;
use crate::world::{media_value, MediaRec};

/// One part of a multipart body.
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// A `Content-Disposition` parameter (`name="file"`).
fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts of a `multipart/form-data` body (`None`: not multipart, or malformed).
pub fn multipart<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    let boundary = disposition_param(content_type, "boundary")?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut pos = find(body, delimiter, 0)? + delimiter.len();
    loop {
        if body.get(pos..pos + 2) == Some(b"--") {
            return Some(parts);
        }
        // Skip the CRLF after the delimiter.
        pos = find(body, b"\r\n", pos)? + 2;
        let headers_end = find(body, b"\r\n\r\n", pos)?;
        let headers = std::str::from_utf8(&body[pos..headers_end]).ok()?;
        let data_start = headers_end + 4;
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(delimiter);
        let data_end = find(body, &next_delimiter, data_start)?;
        let (mut name, mut filename, mut ctype) = (None, None, None);
        for line in headers.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            if h.trim().eq_ignore_ascii_case("content-disposition") {
                name = disposition_param(v, "name");
                filename = disposition_param(v, "filename");
            } else if h.trim().eq_ignore_ascii_case("content-type") {
                ctype = Some(v.trim().to_ascii_lowercase());
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            content_type: ctype,
            data: &body[data_start..data_end],
        });
        pos = data_end + next_delimiter.len();
    }
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(data: &[u8]) -> Option<(u64, u64)> {
    if data.len() < 24 || &data[..8] != b"\x89PNG\r\n\x1a\n" || &data[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(data[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(data[20..24].try_into().ok()?);
    Some((w.into(), h.into()))
}

/// Paperclip's humanized size (`16 MB`), as in "File file size must be less than 16 MB".
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["Bytes", "KB", "MB", "GB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if (size - size.round()).abs() < 0.05 {
        format!("{} {}", size.round(), UNITS[unit])
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

/// A content refusal in the profile's shape (422 `{"error"}` on Mastodon).
fn invalid(profile: Profile, message: &str) -> HttpResponse {
    shapes::refused(profile, message)
}

/// `focus=x,y` as Mastodon reads it: two floats, whatever else.
fn focus(v: &str) -> Option<(f64, f64)> {
    let (x, y) = v.split_once(',')?;
    Some((
        x.trim().parse().unwrap_or(0.0),
        y.trim().parse().unwrap_or(0.0),
    ))
}

/// `POST /api/v2/media`: `write` or `write:media`, a user token.
pub fn upload(ctx: &Ctx<'_>, body: &[u8]) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["write", "write:media"], true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let opts = &shared.opts;
    let profile = opts.profile;
    let content_type = ctx
        .req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = multipart(content_type, body).unwrap_or_default();
    let field = |name: &str| {
        parts
            .iter()
            .find(|p| p.name == name && p.filename.is_none())
            .map(|p| String::from_utf8_lossy(p.data).into_owned())
            .or_else(|| crate::params::text(ctx.params, name))
    };
    let Some(file) = parts
        .iter()
        .find(|p| p.name == "file" && p.filename.is_some())
    else {
        return http::error(400, "param is missing or the value is empty: file");
    };
    let ctype = file
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if !crate::api::SUPPORTED_MIME_TYPES.contains(&ctype.as_str()) {
        return invalid(profile, "File content type is invalid, File is invalid");
    }
    let kind = match ctype.split('/').next() {
        Some("video") => "video",
        Some("audio") => "audio",
        _ if ctype == "image/gif" => "gifv",
        _ => "image",
    };
    let size = file.data.len() as u64;
    let limit = if kind == "image" {
        opts.image_size_limit
    } else {
        opts.video_size_limit
    };
    if size > limit {
        return invalid(
            profile,
            &format!("File file size must be less than {}", human_size(limit)),
        );
    }
    let (width, height) = png_size(file.data).unwrap_or((640, 480));
    if kind == "image" && width * height > opts.image_matrix_limit {
        // `Mastodon::DimensionsValidationError`, a `ValidationError`: 422 without prefix.
        return match profile {
            Profile::Mastodon => {
                http::error(422, &format!("{width}x{height} images are not supported"))
            }
            _ => invalid(
                profile,
                &format!("{width}x{height} images are not supported"),
            ),
        };
    }
    let description = field("description").filter(|d| !d.is_empty());
    if let Some(d) = &description {
        if d.chars().count() as u64 > opts.description_limit {
            return invalid(
                profile,
                &format!(
                    "Description is too long (maximum is {} characters)",
                    opts.description_limit
                ),
            );
        }
    }
    let processed = kind == "image" && size <= opts.media_processing_threshold;
    let rec = MediaRec {
        id: shared.next_id().to_string(),
        kind,
        content_type: ctype,
        filename: file.filename.clone(),
        size: file.data.len(),
        sha256: Sha256::digest(file.data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        description,
        focus: field("focus").as_deref().and_then(focus),
        width,
        height,
        processed,
        polls: 0,
        uploaded: Instant::now(),
        status_id: None,
    };
    let answer = media_value(shared, &rec);
    let status = if rec.is_processed(opts) { 200 } else { 202 };
    lock(&shared.store).world.media.push(rec);
    http::json_value(status, &answer)
}

/// `POST /api/v1/media`: the same upload, answered 200 even while processing (`url` null until done),
/// as Mastodon's deprecated route does.
pub fn upload_v1(ctx: &Ctx<'_>, body: &[u8]) -> HttpResponse {
    let resp = upload(ctx, body);
    if resp.status().as_u16() != 202 {
        return resp;
    }
    let store = lock(&ctx.shared.store);
    match store.world.media.last() {
        Some(m) => http::json_value(200, &media_value(ctx.shared, m)),
        None => resp,
    }
}

/// `GET /api/v1/media/:id` and `PUT /api/v1/media/:id`: the uploader's unattached media only
/// (404 otherwise); 206 while processing, 200 once done. A GET counts as one poll.
pub fn show_or_update(ctx: &Ctx<'_>, update: bool) -> HttpResponse {
    if let Err(denied) = authorize(ctx, &["write", "write:media"], true) {
        return denied.response(ctx);
    }
    let shared = ctx.shared;
    let opts = &shared.opts;
    let id = segment(ctx.req.path(), 3);
    let mut store = lock(&shared.store);
    let Some(m) = store
        .world
        .media
        .iter_mut()
        .find(|m| m.id == id && m.status_id.is_none() && !m.sha256.is_empty())
    else {
        return shapes::not_found(opts.profile);
    };
    if update {
        if let Some(d) = crate::params::text(ctx.params, "description") {
            if d.chars().count() as u64 > opts.description_limit {
                return invalid(
                    opts.profile,
                    &format!(
                        "Description is too long (maximum is {} characters)",
                        opts.description_limit
                    ),
                );
            }
            m.description = (!d.is_empty()).then_some(d);
        }
        if let Some(f) = crate::params::text(ctx.params, "focus") {
            m.focus = focus(&f);
        }
    }
    let ready = m.is_processed(opts);
    let answer = media_value(shared, m);
    if !ready && !update {
        m.polls += 1;
        if m.polls >= opts.media_processing_polls {
            m.processed = true;
        }
    }
    http::json_value(if ready { 200 } else { 206 }, &answer)
}

/// The attachments of `media_ids` as `POST`/`PUT /api/v1/statuses` checks them
/// (`PostStatusService#validate_media!`): each must be an unattached upload (or, unless
/// `strict_media_ids`, an id never uploaded, taken as an image) and processed.
/// `Err` is the refusal message (a `Mastodon::ValidationError`: 422 `{"error"}`).
pub fn check_ids(
    ctx: &Ctx<'_>,
    ids: &[String],
    editing: Option<&str>,
) -> Result<Vec<Value>, String> {
    let shared = ctx.shared;
    let opts = &shared.opts;
    let store = lock(&shared.store);
    let mut missing = Vec::new();
    let mut out = Vec::new();
    let mut not_ready = false;
    for id in ids {
        match store.world.media(id) {
            Some(m) if m.status_id.is_none() || m.status_id.as_deref() == editing => {
                not_ready |= !m.is_processed(opts);
                out.push(media_value(shared, m));
            }
            Some(_) => missing.push(id.clone()),
            // snac ignores media ids it does not know: the status is posted without them.
            None if opts.profile == Profile::Snac => {}
            None if opts.strict_media_ids => missing.push(id.clone()),
            None => out.push(crate::entities::media_attachment(shared, id)),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "Media {} not found or already attached to another post",
            missing.join(", ")
        ));
    }
    if ids.len() > 1
        && out
            .iter()
            .any(|m| matches!(m["type"].as_str(), Some("video" | "audio")))
    {
        return Err("Cannot attach a video to a post that already contains images".into());
    }
    if not_ready {
        return Err(
            "Cannot attach files that have not finished processing. Try again in a moment!".into(),
        );
    }
    Ok(out)
}

/// Marks uploads as attached to `status`.
pub fn attach(store: &mut crate::state::StatusStore, ids: &[String], status: &str) {
    for m in store.world.media.iter_mut().filter(|m| ids.contains(&m.id)) {
        m.status_id = Some(status.to_owned());
    }
}
