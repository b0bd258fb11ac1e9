//! Media: `uploadMedia`, and the uploads `postStatus` makes first for its `media` items.
//!
//! A file arrives as base64 (JSON, plain XML, SOAP) or raw (a `multipart/form-data` part on the REST
//! path) and is held once more at most: base64 is decoded straight into the multipart body sent
//! upstream ([`Multipart`]), never into a copy of its own, and a raw part is sent from the request's
//! own buffer, not copied at all. What the server published of its media
//! (`configuration.media_attachments`: types, sizes, description length) is checked before anything
//! is sent; what it did not publish is left to it.
//!
//! An upload goes to `POST /api/v2/media` (`/api/v1/media` on a server without the v2 route), then,
//! while the server is still processing it (202, or `url` null), is followed with
//! `GET /api/v1/media/:id` (206 while processing) for up to `server.media_processing_wait_s`.
//!
//! Uploads go through the write ledger (`rest::write_once`) under a key derived from the message, so
//! a retried message reuses its uploads instead of uploading again. A lost answer to an upload is
//! sent again rather than left in doubt: an attachment no status uses is invisible, and servers
//! remove it, so a second one costs storage for a while, never a duplicate anyone sees.

use std::time::{Duration, Instant};

use bytes::Bytes;
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::context::{Connection, Core};
use super::params::{params, Base64};
use super::rest::{path_segment, write_once};
use super::status_match::id_text;
use super::{CallContext, Operation, Writes};
use crate::error::{Error, ErrorKind, Result};
use crate::mastodon::multipart::Multipart;
use crate::mastodon::{Answer, Body, Endpoint, MediaLimits};

params! {
    pub struct UploadMediaParams {
        /// The configured connection (may be left out with one, or one named default)
        pub connection: Option<String>,
        /// The file, base64 (required, unless the REST call is multipart/form-data with the file in the part `file`)
        pub data: Option<Base64>,
        /// The file's name (default: one made from its type)
        pub file_name: Option<String>,
        /// Its MIME type, e.g. image/png (default: told from its first bytes, else from file_name)
        pub content_type: Option<String>,
        /// Alt text: what the media shows, for people who cannot see it
        pub description: Option<String>,
        /// The focal point as x,y, each from -1.0 to 1.0 (0,0 is the centre)
        pub focus: Option<String>,
    }
}

params! {
    /// One `media` item of `postStatus`: a file uploaded before the status is posted.
    pub struct MediaItem {
        /// The file, base64
        pub data: Option<Base64> = required,
        /// The file's name (default: one made from its type)
        pub file_name: Option<String>,
        /// Its MIME type, e.g. image/png (default: told from its first bytes, else from file_name)
        pub content_type: Option<String>,
        /// Alt text: what the media shows, for people who cannot see it
        pub description: Option<String>,
        /// The focal point as x,y, each from -1.0 to 1.0 (0,0 is the centre)
        pub focus: Option<String>,
    }
}

/// A file sent as a raw `multipart/form-data` part (the REST path of `uploadMedia`): a slice of the
/// request's own body, so it is not copied before it is encoded for the server.
#[derive(Clone)]
pub struct FilePart {
    pub data: Bytes,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for FilePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The length, never the bytes: a file is the caller's content.
        f.debug_struct("FilePart")
            .field("bytes", &self.data.len())
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Where a file's bytes are.
pub enum FileData<'a> {
    Base64(&'a Base64),
    Raw(&'a Bytes),
}

/// One file to upload, with what goes beside it.
pub struct File<'a> {
    pub data: FileData<'a>,
    pub file_name: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub description: Option<&'a str>,
    pub focus: Option<&'a str>,
}

impl MediaItem {
    pub fn file(&self) -> Result<File<'_>> {
        let Some(data) = &self.data else {
            return Err(Error::invalid(
                "a media item needs `data` (the file, base64)",
            ));
        };
        Ok(File {
            data: FileData::Base64(data),
            file_name: self.file_name.as_deref(),
            content_type: self.content_type.as_deref(),
            description: self.description.as_deref(),
            focus: self.focus.as_deref(),
        })
    }
}

/// An upload encoded for the server: the multipart body and what identifies it.
pub struct Encoded {
    content_type: String,
    /// The body's chunks (see [`Multipart`]): a raw file is one of them, not a copy.
    parts: Vec<Bytes>,
    /// The file's MIME type, as sent.
    pub media_type: String,
    /// The file's size in bytes.
    pub size: usize,
    /// What the upload is (the file's SHA-256, its type, name, description, focus), for the ledger.
    pub fingerprint: String,
}

/// The route uploads go to, and the older one for servers without it. Mastodon counts uploads in a
/// window of their own (30 per 30 minutes), so they share one rate-limit bucket. A repeat is safe
/// (see the module's note), so the client may resend an attempt that failed in transit.
const UPLOAD_V1: Endpoint = Endpoint {
    method: "POST",
    path: "/api/v1/media",
    label: "POST /api/v1/media",
    idempotent: true,
    content: true,
    bucket: "media",
};

/// How long to wait between looks at an attachment still being processed: doubling, bounded.
const FIRST_LOOK: Duration = Duration::from_millis(250);
const LONGEST_LOOK: Duration = Duration::from_secs(4);
/// The longest file name and description kept, and the most bytes of a MIME type.
const MAX_FILE_NAME: usize = 255;
const MAX_TYPE: usize = 127;

pub async fn upload_media(core: &Core, p: UploadMediaParams, call: &CallContext) -> Result<Value> {
    let conn = core.connection(p.connection.as_deref())?;
    // Fail fast without a (working) token, before encoding anything.
    core.require_user_token(&conn).await?;
    // Taken, not borrowed: what of the request is not the file is let go once it is encoded (the file
    // itself is sent from the request's own buffer, see `encode`).
    let part = call.take_file();
    let (raw, file_name, content_type);
    let data = match (&p.data, &part) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "the file came twice: as `data` and as the multipart part `file`; send one",
            ))
        }
        (Some(b64), None) => {
            file_name = p.file_name.as_deref();
            content_type = p.content_type.as_deref();
            FileData::Base64(b64)
        }
        (None, Some(part)) => {
            raw = part.data.clone();
            file_name = p.file_name.as_deref().or(part.file_name.as_deref());
            content_type = p.content_type.as_deref().or(part.content_type.as_deref());
            FileData::Raw(&raw)
        }
        (None, None) => {
            return Err(Error::invalid(
                "uploadMedia needs the parameter `data` (the file, base64), or on the REST path a multipart/form-data part `file`",
            ))
        }
    };
    let file = File {
        data,
        file_name,
        content_type,
        description: p.description.as_deref(),
        focus: p.focus.as_deref(),
    };
    let info = core.instance_info_if_known(&conn).await;
    let encoded = encode(&file, info.as_ref().map(|i| &i.media))?;
    drop(part);
    drop(p);
    let key = upload_key(&conn.name, &call.correlation_id, "", &encoded);
    let (attachment, _processed) = upload(core, &conn, &key, &encoded).await?;
    Ok(attachment)
}

/// The ledger key of an upload: from the connection, the message (its correlation id, or the key of
/// the post it belongs to) and the upload itself.
pub fn upload_key(connection: &str, message: &str, within: &str, encoded: &Encoded) -> String {
    let mut hash = Sha256::new();
    for part in [
        connection,
        "uploadMedia",
        message,
        within,
        &encoded.fingerprint,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("uploadMedia:{}", hex::encode(&hash.finalize()[..16]))
}

/// Checks `file` against the server's published limits and encodes it as the multipart body of an
/// upload: description and focus first, then the file, decoded straight into the body (base64) or
/// sent from the caller's own buffer (a multipart part).
pub fn encode(file: &File<'_>, limits: Option<&MediaLimits>) -> Result<Encoded> {
    let description = file.description.filter(|d| !d.is_empty());
    if let (Some(d), Some(max)) = (description, limits.and_then(|l| l.description_limit)) {
        let chars = d.chars().count() as u64;
        if chars > max {
            return Err(Error::validation(format!(
                "the description has {chars} characters; the server's limit is {max}"
            )));
        }
    }
    let focus = file.focus.map(checked_focus).transpose()?;
    let file_name = file.file_name.map(str::trim).filter(|n| !n.is_empty());
    if file_name.is_some_and(|n| n.chars().count() > MAX_FILE_NAME) {
        return Err(Error::invalid(format!(
            "file_name is longer than {MAX_FILE_NAME} characters"
        )));
    }
    let declared = file
        .content_type
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(checked_type)
        .transpose()?;

    let (capacity, head) = match &file.data {
        FileData::Base64(b64) => (b64.decoded_len_bound(), b64.head_bytes()),
        FileData::Raw(bytes) => (bytes.len(), bytes[..bytes.len().min(64)].to_vec()),
    };
    let media_type = match declared {
        Some(t) => t,
        None => sniff(&head)
            .or_else(|| file_name.and_then(by_extension))
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::invalid(
                    "the file's type cannot be told from its bytes or its name: give content_type (e.g. image/png)",
                )
            })?,
    };
    if let Some(types) = limits.and_then(|l| l.supported_mime_types.as_ref()) {
        if !types.contains(&media_type) {
            return Err(Error::validation(format!(
                "the server does not take {media_type} files; it takes {}",
                shown_types(types)
            )));
        }
    }
    let size_limit = limits.and_then(|l| l.size_limit(&media_type));
    // A raw file's size is known before it is copied; a base64 one's once it is decoded.
    if let (Some(max), FileData::Raw(bytes)) = (size_limit, &file.data) {
        refuse_size(bytes.len() as u64, max, &media_type)?;
    }

    let mut body = Multipart::new(capacity);
    if let Some(d) = description {
        body.text("description", d);
    }
    if let Some(f) = &focus {
        body.text("focus", f);
    }
    let name = match file_name {
        Some(n) => n.to_owned(),
        None => format!("file.{}", extension_of(&media_type)),
    };
    let mut hash = Sha256::new();
    let size = match &file.data {
        FileData::Base64(b64) => {
            let buf = body.file("file", &name, &media_type);
            let start = buf.len();
            b64.decode_into(buf)
                .map_err(|e| Error::invalid(format!("the parameter `data` {e}")))?;
            hash.update(&buf[start..]);
            buf.len() - start
        }
        FileData::Raw(bytes) => {
            hash.update(&bytes[..]);
            body.file_bytes("file", &name, &media_type, Bytes::clone(bytes));
            bytes.len()
        }
    };
    if size == 0 {
        return Err(Error::invalid("the file is empty"));
    }
    if let Some(max) = size_limit {
        refuse_size(size as u64, max, &media_type)?;
    }
    for part in [
        media_type.as_str(),
        &name,
        description.unwrap_or(""),
        focus.as_deref().unwrap_or(""),
    ] {
        hash.update([0]);
        hash.update(part.as_bytes());
    }
    let fingerprint = hex::encode(hash.finalize());
    let (content_type, parts) = body.finish();
    Ok(Encoded {
        content_type,
        parts,
        media_type,
        size,
        fingerprint,
    })
}

fn refuse_size(size: u64, max: u64, media_type: &str) -> Result<()> {
    if size > max {
        return Err(Error::validation(format!(
            "the file is {size} bytes; the server takes {media_type} files of at most {max} bytes"
        )));
    }
    Ok(())
}

/// The first types of a server's list, for an error detail.
fn shown_types(types: &[String]) -> String {
    let mut shown: Vec<&str> = types.iter().take(12).map(String::as_str).collect();
    if types.len() > shown.len() {
        shown.push("...");
    }
    shown.join(", ")
}

/// `x,y`, each a number from -1 to 1, as Mastodon reads a focal point; answered normalized.
fn checked_focus(focus: &str) -> Result<String> {
    let bad = || {
        Error::invalid(format!(
            "focus {:?} is not x,y with each from -1.0 to 1.0",
            focus.chars().take(40).collect::<String>()
        ))
    };
    let (x, y) = focus.split_once(',').ok_or_else(bad)?;
    let read = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && (-1.0..=1.0).contains(n))
    };
    match (read(x), read(y)) {
        (Some(x), Some(y)) => Ok(format!("{x},{y}")),
        _ => Err(bad()),
    }
}

/// A MIME type as a caller gives it: `type/subtype`, token characters only (it goes into a part's
/// header), lower case; parameters (`; charset=`) dropped.
fn checked_type(given: &str) -> Result<String> {
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) && essence.len() <= MAX_TYPE => Ok(essence),
        _ => Err(Error::invalid(format!(
            "content_type {:?} is not a MIME type such as image/png",
            given.chars().take(60).collect::<String>()
        ))),
    }
}

/// The type of a file told from its first bytes: the formats Mastodon-compatible servers take.
fn sniff(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let brand = || head.get(8..12);
    Some(match () {
        _ if at(0, b"\x89PNG\r\n\x1a\n") => "image/png",
        _ if at(0, b"\xff\xd8\xff") => "image/jpeg",
        _ if at(0, b"GIF87a") || at(0, b"GIF89a") => "image/gif",
        _ if at(0, b"RIFF") && at(8, b"WEBP") => "image/webp",
        _ if at(0, b"RIFF") && at(8, b"WAVE") => "audio/wave",
        _ if at(4, b"ftyp") => match brand()? {
            b"avif" | b"avis" => "image/avif",
            b"heic" | b"heix" | b"mif1" | b"msf1" => "image/heic",
            b"qt  " => "video/quicktime",
            b"M4A " => "audio/mp4",
            _ => "video/mp4",
        },
        _ if at(0, b"\x1a\x45\xdf\xa3") => "video/webm",
        _ if at(0, b"OggS") => "audio/ogg",
        _ if at(0, b"fLaC") => "audio/flac",
        _ if at(0, b"ID3") || at(0, b"\xff\xfb") || at(0, b"\xff\xf3") => "audio/mpeg",
        _ => return None,
    })
}

/// The type of a file told from its name's extension.
fn by_extension(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "heic" | "heif" => "image/heic",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wave",
        "flac" => "audio/flac",
        "m4a" => "audio/mp4",
        _ => return None,
    })
}

fn extension_of(media_type: &str) -> &str {
    match media_type {
        "image/jpeg" => "jpg",
        "image/heic" => "heic",
        "video/quicktime" => "mov",
        "audio/mpeg" => "mp3",
        "audio/wave" => "wav",
        "audio/mp4" => "m4a",
        other => other
            .split_once('/')
            .map(|(_, s)| s)
            .filter(|s| s.len() <= 10 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or("bin"),
    }
}

/// Uploads `encoded` once per `key` (a repeat answers the kept attachment) and follows it while the
/// server processes it. Answers the attachment and whether it is processed (its `url` set).
pub async fn upload(
    core: &Core,
    conn: &Connection,
    key: &str,
    encoded: &Encoded,
) -> Result<(Value, bool)> {
    let answer = write_once(
        core,
        conn,
        Operation::UploadMedia,
        Writes::Idempotent,
        key,
        &encoded.fingerprint,
        || send(core, conn, encoded),
    )
    .await?;
    if !answer.value.is_object() || id_text(&answer.value["id"]).is_none() {
        return Err(Error::new(
            ErrorKind::UpstreamUnavailable,
            "the server answered the upload without an attachment id",
        ));
    }
    if answer.status != 202 && processed(&answer.value) {
        return Ok((answer.value, true));
    }
    follow(core, conn, answer.value).await
}

/// Whether an attachment is ready to attach: the server gives its `url` once it is processed.
fn processed(attachment: &Value) -> bool {
    attachment["url"].as_str().is_some_and(|u| !u.is_empty())
}

/// One upload: `POST /api/v2/media`, or `/api/v1/media` when the server has no v2 route (a 404 that
/// created nothing: a route that is absent).
async fn send(core: &Core, conn: &Connection, encoded: &Encoded) -> Result<Answer> {
    let Some(v2) = Operation::UploadMedia.route() else {
        return Err(Error::internal());
    };
    let once = |endpoint: Endpoint| {
        let body = Body::Multipart {
            content_type: encoded.content_type.clone(),
            parts: encoded.parts.clone(),
        };
        let client = &conn.client;
        core.with_user_token(conn, move |token: SecretString| async move {
            client
                .call(endpoint, endpoint.path, Some(&token), body, &[])
                .await
        })
    };
    match once(v2).await {
        Err(e) if e.upstream.as_ref().is_some_and(|u| u.status == 404) => {
            tracing::info!(connection = %conn.name, "no POST /api/v2/media; uploading to /api/v1/media");
            once(UPLOAD_V1).await
        }
        other => other,
    }
}

/// Looks at an attachment being processed until it is, or `server.media_processing_wait_s` ends;
/// then answers it as it is.
async fn follow(core: &Core, conn: &Connection, mut attachment: Value) -> Result<(Value, bool)> {
    let Some(endpoint) = Operation::GetMedia.route() else {
        return Err(Error::internal());
    };
    let id = id_text(&attachment["id"]).unwrap_or_default();
    // The id came from the server: it fills one path segment and nothing else.
    let path = format!("/api/v1/media/{}", path_segment("id", &id)?);
    let until = Instant::now() + Duration::from_secs(core.settings.server.media_processing_wait_s);
    let mut pause = FIRST_LOOK;
    while Instant::now() + pause <= until {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_LOOK);
        let client = &conn.client;
        let path = path.as_str();
        let look = core
            .with_user_token(conn, move |token: SecretString| async move {
                client
                    .call(endpoint, path, Some(&token), Body::Empty, &[])
                    .await
            })
            .await?;
        if look.value.is_object() {
            attachment = look.value;
        }
        if look.status == 200 && processed(&attachment) {
            return Ok((attachment, true));
        }
    }
    tracing::info!(connection = %conn.name, "an attachment is still being processed after server.media_processing_wait_s");
    Ok((attachment, false))
}

/// The refusal of a post whose upload is still being processed: the same message, sent again,
/// reuses the upload and looks again.
pub fn still_processing(id: &str) -> Error {
    let mut e = Error::new(
        ErrorKind::UpstreamUnavailable,
        format!(
            "the server is still processing media {id} after server.media_processing_wait_s; send the same message again to post with it (the upload is reused)"
        ),
    );
    e.retry_after = Some(5);
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x02\0\0\0\x02\x08\x06\0\0\0";

    fn b64(bytes: &[u8]) -> Base64 {
        Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn file<'a>(data: &'a Base64) -> File<'a> {
        File {
            data: FileData::Base64(data),
            file_name: None,
            content_type: None,
            description: Some("a red square"),
            focus: Some("0.5, -0.25"),
        }
    }

    #[test]
    fn a_file_is_decoded_into_the_body_once_with_its_parts() {
        let data = b64(PNG);
        let e = encode(&file(&data), None).unwrap();
        assert_eq!(e.media_type, "image/png");
        assert_eq!(e.size, PNG.len());
        let body = e.parts.concat();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"description\"\r\n\r\na red square\r\n"));
        assert!(text.contains("name=\"focus\"\r\n\r\n0.5,-0.25\r\n"));
        assert!(text.contains("filename=\"file.png\"\r\nContent-Type: image/png\r\n\r\n"));
        assert!(body.windows(PNG.len()).any(|w| w == PNG));
    }

    #[test]
    fn the_servers_limits_refuse_before_anything_is_sent() {
        let data = b64(PNG);
        let limits = MediaLimits {
            supported_mime_types: Some(vec!["image/jpeg".into()]),
            ..Default::default()
        };
        let e = encode(&file(&data), Some(&limits)).err().unwrap();
        assert_eq!(e.kind, ErrorKind::ValidationFailed);
        assert!(
            e.detail.contains("image/png") && e.detail.contains("image/jpeg"),
            "{}",
            e.detail
        );

        let limits = MediaLimits {
            image_size_limit: Some(10),
            ..Default::default()
        };
        let e = encode(&file(&data), Some(&limits)).err().unwrap();
        assert!(e.detail.contains("at most 10 bytes"), "{}", e.detail);

        let limits = MediaLimits {
            description_limit: Some(5),
            ..Default::default()
        };
        let e = encode(&file(&data), Some(&limits)).err().unwrap();
        assert!(e.detail.contains("limit is 5"), "{}", e.detail);
    }

    #[test]
    fn bad_input_is_named() {
        let text = Base64("not base64 at all!".into());
        let mut f = file(&text);
        f.content_type = Some("image/png");
        let e = encode(&f, None).err().unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(e.detail.contains("`data` is not base64"), "{}", e.detail);

        let data = b64(b"plain bytes of no known kind");
        let e = encode(&file(&data), None).err().unwrap();
        assert!(e.detail.contains("give content_type"), "{}", e.detail);

        let mut f = file(&data);
        f.content_type = Some("image/png\r\nX-Evil: 1");
        assert!(encode(&f, None).is_err());
        f.content_type = Some("text/plain");
        f.focus = Some("2,0");
        assert!(encode(&f, None).err().unwrap().detail.contains("focus"));
        f.focus = None;
        f.file_name = Some("notes.txt");
        assert_eq!(encode(&f, None).unwrap().media_type, "text/plain");
    }

    #[test]
    fn base64_is_read_wrapped_unpadded_or_url_safe() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(50_000).collect();
        let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let wrapped: String = standard
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        for text in [standard, wrapped, url_safe] {
            let mut out = bytes::BytesMut::new();
            Base64(text).decode_into(&mut out).unwrap();
            assert_eq!(&out[..], &bytes[..]);
        }
        let mut out = bytes::BytesMut::new();
        assert!(Base64("aGk=aGk=".into()).decode_into(&mut out).is_err());
        assert!(out.is_empty(), "nothing is left of a refused text");
    }

    #[test]
    fn types_are_told_from_bytes_then_names() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), Some("video/mp4"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(by_extension("Cat.JPG"), Some("image/jpeg"));
        assert_eq!(extension_of("image/png"), "png");
        assert_eq!(extension_of("application/x-weird+thing"), "bin");
    }
}
