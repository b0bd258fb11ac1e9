//! `multipart/form-data` on the REST path (RFC 7578), for `uploadMedia`: the way curl (`-F
//! file=@cat.png`), Node-RED, Power Automate and most HTTP tools send a file.
//!
//! The part named `file` is the file, kept as a slice of the request's body (not copied); every other
//! part is a text parameter, named as in JSON. A name ending in `[]` may repeat (a list); any other
//! name given twice is refused, as a duplicate JSON key is: ambiguous input is not guessed at. The
//! input is hostile: boundaries, part heads and the number of parts are bounded, and every malformed
//! shape is `invalid_request`, never a panic.

use bytes::Bytes;
use memchr::memmem;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::operations::media::FilePart;

/// The most parts a body may have, and the most bytes of one part's head.
const MAX_PARTS: usize = 64;
const MAX_PART_HEAD: usize = 8 * 1024;
/// The most bytes of a text part (text parameters are short; the file is its own part).
const MAX_TEXT_PART: usize = 1024 * 1024;

/// Whether `content_type` announces `multipart/form-data`.
pub fn is_form_data(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("multipart/form-data"))
    })
}

/// The parameters (text parts) and the file (the part `file`) of a `multipart/form-data` body.
pub fn parse(content_type: &str, body: &Bytes) -> Result<(Value, Option<FilePart>)> {
    let boundary = boundary(content_type)?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let next_part = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(next_part.as_bytes());
    let malformed = |what: &str| Error::invalid(format!("the multipart/form-data body {what}"));

    // The first delimiter opens the body, or follows a preamble and its line break.
    let mut pos = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        finder
            .find(body)
            .map(|at| at + next_part.len())
            .ok_or_else(|| malformed("holds no part opened by its boundary"))?
    };
    let mut params = Map::new();
    let mut file = None;
    let mut parts = 0;
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            break;
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its line break.
        let skip = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if !rest[skip..].starts_with(b"\r\n") {
            return Err(malformed("has a boundary not followed by a line break"));
        }
        pos += skip + 2;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(malformed(&format!("has more than {MAX_PARTS} parts")));
        }
        let head_len = memmem::find(
            &body[pos..body.len().min(pos + MAX_PART_HEAD + 4)],
            b"\r\n\r\n",
        )
        .ok_or_else(|| {
            malformed(&format!(
                "has a part whose head does not end within {MAX_PART_HEAD} bytes"
            ))
        })?;
        let head = std::str::from_utf8(&body[pos..pos + head_len])
            .map_err(|_| malformed("has a part head that is not UTF-8"))?;
        let data_start = pos + head_len + 4;
        let data_len = finder
            .find(&body[data_start..])
            .ok_or_else(|| malformed("does not end with its closing boundary"))?;
        let data = body.slice(data_start..data_start + data_len);
        pos = data_start + data_len + next_part.len();

        let part = PartHead::read(head).map_err(|e| malformed(&e))?;
        if part.name == "file" {
            if file.is_some() {
                return Err(malformed(
                    "holds the part `file` twice; send one file per upload",
                ));
            }
            file = Some(FilePart {
                data,
                file_name: part.file_name,
                content_type: part.content_type,
            });
            continue;
        }
        if data.len() > MAX_TEXT_PART {
            return Err(malformed(&format!(
                "has a text part `{}` over {MAX_TEXT_PART} bytes; only the part `file` may be a file",
                part.name
            )));
        }
        let text = std::str::from_utf8(&data).map_err(|_| {
            malformed(&format!(
                "has a text part `{}` that is not UTF-8",
                part.name
            ))
        })?;
        let (name, list) = match part.name.strip_suffix("[]") {
            Some(name) => (name.to_owned(), true),
            None => (part.name, false),
        };
        match params.get_mut(&name) {
            None if list => {
                params.insert(name, Value::Array(vec![Value::from(text)]));
            }
            None => {
                params.insert(name, Value::from(text));
            }
            Some(Value::Array(items)) if list => items.push(Value::from(text)),
            Some(_) => {
                return Err(Error::invalid(format!(
                    "the part `{name}` is given twice; a list is named `{name}[]`"
                )))
            }
        }
    }
    Ok((Value::Object(params), file))
}

/// The `boundary` parameter of a Content-Type: 1 to 70 characters (RFC 2046), quoted or not.
fn boundary(content_type: &str) -> Result<String> {
    let value = content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    });
    match value {
        Some(b) if (1..=70).contains(&b.len()) && b.bytes().all(|c| c.is_ascii_graphic() || c == b' ') => Ok(b),
        _ => Err(Error::invalid(
            "multipart/form-data needs a boundary parameter of 1 to 70 characters in its Content-Type",
        )),
    }
}

/// What a part's head says.
struct PartHead {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
}

impl PartHead {
    fn read(head: &str) -> std::result::Result<PartHead, String> {
        let mut disposition = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let Some((field, value)) = line.split_once(':') else {
                return Err("has a part head line that is not a header".to_owned());
            };
            let field = field.trim();
            let slot = if field.eq_ignore_ascii_case("content-disposition") {
                &mut disposition
            } else if field.eq_ignore_ascii_case("content-type") {
                &mut content_type
            } else {
                continue;
            };
            if slot.replace(value.trim().to_owned()).is_some() {
                return Err(format!("has a part with two {field} headers"));
            }
        }
        let disposition = disposition.ok_or("has a part without Content-Disposition")?;
        let mut fields = disposition.split(';');
        if !fields
            .next()
            .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("form-data"))
        {
            return Err("has a part whose Content-Disposition is not form-data".to_owned());
        }
        let (mut name, mut file_name) = (None, None);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(value),
                "filename" => file_name = Some(value),
                _ => {}
            }
        }
        let name = name
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .ok_or("has a part without a name (or with one over 128 bytes)")?;
        Ok(PartHead {
            name,
            // A path some browsers still send (C:\fakepath\cat.png): the last segment only.
            file_name: file_name
                .map(|f| f.rsplit(['/', '\\']).next().unwrap_or("").to_owned())
                .filter(|f| !f.is_empty()),
            content_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (name, file, data) in parts {
            out.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
            if let Some(f) = file {
                out.extend_from_slice(
                    format!("; filename=\"{f}\"\r\nContent-Type: image/png").as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn text_parts_are_parameters_and_the_file_part_is_a_slice() {
        let b = body(&[
            ("description", None, b"a cat"),
            (
                "file",
                Some("C:\\fakepath\\cat.png"),
                b"\x89PNG\r\n--Xy not a boundary",
            ),
            ("media_ids[]", None, b"1"),
            ("media_ids[]", None, b"2"),
        ]);
        let (params, file) = parse(TYPE, &b).unwrap();
        assert_eq!(params["description"], "a cat");
        assert_eq!(params["media_ids"], serde_json::json!(["1", "2"]));
        let file = file.unwrap();
        assert_eq!(&file.data[..], b"\x89PNG\r\n--Xy not a boundary");
        assert_eq!(file.file_name.as_deref(), Some("cat.png"));
        assert_eq!(file.content_type.as_deref(), Some("image/png"));
        assert!(is_form_data(Some("Multipart/Form-Data; boundary=x")));
        assert!(!is_form_data(Some("application/json")));
    }

    #[test]
    fn ambiguous_and_malformed_bodies_are_refused() {
        let twice = body(&[("description", None, b"a"), ("description", None, b"b")]);
        assert!(parse(TYPE, &twice)
            .unwrap_err()
            .detail
            .contains("given twice"));
        let files = body(&[("file", Some("a"), b"1"), ("file", Some("b"), b"2")]);
        assert!(parse(TYPE, &files).is_err());
        assert!(parse("multipart/form-data", &twice).is_err(), "no boundary");
        let unclosed =
            Bytes::from_static(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue");
        assert!(parse(TYPE, &unclosed).is_err());
        let headless = Bytes::from_static(b"--XyZ\r\n\r\nvalue\r\n--XyZ--");
        assert!(parse(TYPE, &headless).is_err());
        let not_utf8 = body(&[("description", None, b"\xff\xfe")]);
        assert!(parse(TYPE, &not_utf8).is_err());
        for cut in 0..twice.len() {
            let _ = parse(TYPE, &twice.slice(..cut));
        }
    }
}
