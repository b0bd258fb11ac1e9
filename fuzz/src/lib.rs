//! What the fuzz targets share: how the first bytes of an input choose the call's path and headers,
//! and the checks every answer must pass (well-formed JSON, well-formed XML 1.0 that the sidecar's own
//! parser reads back, the expected root, the error fields).

use mastodon_sidecar::error::{Error, ErrorKind};
use mastodon_sidecar::operations::Operation;
use mastodon_sidecar::wire::{self, Decoded, Format, Rejected, Reply, SoapVersion};
use quick_xml::events::Event;
use serde_json::Value;

pub const FORMATS: [Format; 4] = [
    Format::Json,
    Format::Xml,
    Format::Soap(SoapVersion::V11),
    Format::Soap(SoapVersion::V12),
];

/// Path names: every operation, case variants (accepted), and names that are none (refused).
const PATH_NAMES: [&str; 16] = [
    "init",
    "createApp",
    "authorizeUrl",
    "getToken",
    "verifyCredentials",
    "postStatus",
    "revokeToken",
    "POSTSTATUS",
    "Init",
    "",
    "nope",
    "postStatus ",
    "..%2Fsoap",
    "postStatus\0",
    "p\u{f6}stStatus",
    "jsonObject",
];

pub fn path_name(selector: u8) -> &'static str {
    PATH_NAMES[usize::from(selector) % PATH_NAMES.len()]
}

const ACCEPTS: [Option<&str>; 8] = [
    None,
    Some("application/json"),
    Some("application/xml"),
    Some("*/*"),
    Some("application/xml;q=0.5, application/json"),
    Some("text/html"),
    Some("application/problem+xml"),
    Some("application/json;q=NaN, application/xml;q=-1, ;;,="),
];

pub fn accept(selector: u8) -> Option<&'static str> {
    ACCEPTS[usize::from(selector) % ACCEPTS.len()]
}

/// Chooses an operation, never failing (for renderings).
pub fn operation(selector: u8) -> Operation {
    Operation::ALL[usize::from(selector) % Operation::ALL.len()]
}

pub fn error_kind(selector: u8) -> ErrorKind {
    ErrorKind::ALL[usize::from(selector) % ErrorKind::ALL.len()]
}

/// Splits off `n` bytes, as few as there are.
pub fn take(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// What a decoder answered, rendered as the handler would (the parameters stand in for a result), and
/// checked.
pub fn check_outcome(outcome: &Result<Decoded, Rejected>) {
    match outcome {
        Ok(call) => {
            let reply = wire::success(call.response_format, call.operation, &call.params);
            assert_eq!(reply.status, 200);
            check_success(call.response_format, call.operation, &call.params, &reply);
        }
        Err(rejected) => {
            let op = rejected.operation.map(Operation::name);
            let reply = wire::failure(rejected.format, &rejected.error, op, "fuzz-correlation");
            check_failure(rejected.format, &rejected.error, &reply);
        }
    }
}

/// A success rendering: parses again, with the expected root; JSON comes back equal (floats aside).
pub fn check_success(format: Format, operation: Operation, result: &Value, reply: &Reply) {
    let text = utf8(&reply.body);
    let response = format!("{}Response", operation.name());
    match format {
        Format::Json => {
            assert_eq!(reply.content_type, "application/json");
            let back: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("JSON output does not parse ({e}): {text:?}"));
            if !has_float(result) {
                assert_eq!(&back, result, "JSON output does not round-trip");
            }
        }
        Format::Xml => {
            assert_eq!(reply.content_type, "application/xml");
            if let Some(root) = check_xml(text) {
                assert_eq!(root.local, response, "{text:?}");
            }
        }
        Format::Soap(version) => {
            assert_eq!(reply.content_type, version.content_type());
            if let Some(root) = check_xml(text) {
                let payload = soap_payload(&root, version, text);
                assert_eq!(payload.local, response, "{text:?}");
                assert_eq!(
                    payload.namespace.as_deref(),
                    Some(wire::soap::SIDECAR_NS),
                    "{text:?}"
                );
            }
        }
    }
}

/// An error rendering: parses again, carries the code, and (JSON) the detail exactly.
pub fn check_failure(format: Format, error: &Error, reply: &Reply) {
    let text = utf8(&reply.body);
    assert!(
        (400..=599).contains(&reply.status),
        "status {}",
        reply.status
    );
    match format {
        Format::Json => {
            assert_eq!(reply.content_type, "application/problem+json");
            let back: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("problem+json does not parse ({e}): {text:?}"));
            assert_eq!(back["code"], error.kind.code());
            assert_eq!(back["detail"], error.detail.as_str());
            assert_eq!(back["status"], error.http_status());
            assert_eq!(reply.status, error.http_status());
        }
        Format::Xml => {
            assert_eq!(reply.status, error.http_status());
            if let Some(root) = check_xml(text) {
                assert_eq!(root.local, "error", "{text:?}");
                let fields = wire::xml::parameters(&root).expect("error fields");
                assert_eq!(fields["code"], error.kind.code(), "{text:?}");
            }
        }
        Format::Soap(version) => {
            assert_eq!(reply.content_type, version.content_type());
            if let Some(root) = check_xml(text) {
                let fault = soap_payload(&root, version, text);
                assert_eq!(fault.local, "Fault", "{text:?}");
                let detail = fault
                    .children
                    .iter()
                    .find(|c| c.local == "detail" || c.local == "Detail")
                    .unwrap_or_else(|| panic!("a fault without detail: {text:?}"));
                // The detail holds one typed <m:error> in the sidecar's namespace (the WSDL's fault
                // element), whose children are the fields.
                let error_element = detail
                    .children
                    .iter()
                    .find(|c| {
                        c.local == "error" && c.namespace.as_deref() == Some(wire::soap::SIDECAR_NS)
                    })
                    .unwrap_or_else(|| panic!("a fault detail without m:error: {text:?}"));
                let fields = wire::xml::parameters(error_element).expect("fault fields");
                assert_eq!(fields["code"], error.kind.code(), "{text:?}");
            }
        }
    }
}

fn utf8(body: &[u8]) -> &str {
    std::str::from_utf8(body).unwrap_or_else(|e| panic!("the output is not UTF-8: {e}"))
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn soap_payload<'a>(
    root: &'a wire::xml::Element,
    version: SoapVersion,
    text: &str,
) -> &'a wire::xml::Element {
    assert_eq!(root.local, "Envelope", "{text:?}");
    assert_eq!(
        root.namespace.as_deref(),
        Some(version.namespace()),
        "{text:?}"
    );
    let body = root
        .children
        .iter()
        .find(|c| c.local == "Body" && c.namespace.as_deref() == Some(version.namespace()))
        .unwrap_or_else(|| panic!("an envelope without Body: {text:?}"));
    body.children
        .first()
        .unwrap_or_else(|| panic!("an empty Body: {text:?}"))
}

/// Checks that `text` is a well-formed XML 1.0 document (characters, names, nesting, one root, only
/// predefined entities) and that the sidecar's own parser reads it back. Returns the parsed root, or
/// `None` when the document is well-formed but beyond the parser's depth or element limits (a result
/// nested deeper than any request may be).
pub fn check_xml(text: &str) -> Option<wire::xml::Element> {
    if let Some(c) = text.chars().find(|&c| !is_xml_char(c)) {
        panic!("the output holds {c:?}, which XML 1.0 cannot carry: {text:?}");
    }
    if let Err(why) = well_formed(text) {
        panic!("the output is not well-formed XML ({why}): {text:?}");
    }
    match wire::xml::parse(text.as_bytes()) {
        Ok(root) => Some(root),
        Err(e) if e.detail.contains("nests deeper") || e.detail.contains("more than") => None,
        Err(e) => panic!(
            "wire::xml::parse refuses the output ({}): {text:?}",
            e.detail
        ),
    }
}

/// A strict pass with quick-xml's plain reader, independent of the sidecar's parser and its limits.
fn well_formed(text: &str) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} at {}", reader.buffer_position()))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = std::str::from_utf8(start.name().as_ref())
                    .map_err(|e| e.to_string())?
                    .to_owned();
                if !is_qname(&name) {
                    return Err(format!("<{name}> is not an XML name"));
                }
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| e.to_string())?;
                    let key =
                        std::str::from_utf8(attribute.key.as_ref()).map_err(|e| e.to_string())?;
                    if !is_qname(key) {
                        return Err(format!("attribute {key:?} is not an XML name"));
                    }
                    if attribute.value.contains(&b'<') {
                        return Err(format!("attribute {key:?} holds '<'"));
                    }
                    attribute.unescape_value().map_err(|e| e.to_string())?;
                }
                if depth == 0 {
                    roots += 1;
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => depth = depth.checked_sub(1).ok_or("unbalanced end tag")?,
            Event::Text(t) => {
                let t = t.xml_content().map_err(|e| e.to_string())?;
                if depth == 0 && !t.trim().is_empty() {
                    return Err("text outside the root".into());
                }
                if t.contains("]]>") {
                    return Err("]]> in text".into());
                }
            }
            Event::GeneralRef(r) => {
                if depth == 0 {
                    return Err("a reference outside the root".into());
                }
                if r.resolve_char_ref().map_err(|e| e.to_string())?.is_none() {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    if quick_xml::escape::resolve_predefined_entity(&name).is_none() {
                        return Err(format!("undefined entity &{name};"));
                    }
                }
            }
            Event::DocType(_) => return Err("a DTD".into()),
            Event::CData(_) | Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    match (depth, roots) {
        (0, 1) => Ok(()),
        (0, n) => Err(format!("{n} root elements")),
        _ => Err("the document ends inside an element".into()),
    }
}

/// XML 1.0 `Char`.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// XML 1.0 (fifth edition) `NameStartChar`, without ':'.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (fifth edition) `NameChar`, without ':'.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// `prefix:local` or `local`, both NCNames.
fn is_qname(name: &str) -> bool {
    match name.split_once(':') {
        Some((prefix, local)) => is_ncname(prefix) && is_ncname(local),
        None => is_ncname(name),
    }
}
