//! Plain XML: parsing any document into a small tree, the tree into parameters, and values into XML.
//!
//! Parameters are matched by local name, whatever the namespace (MI's payloadFactory puts its elements
//! in `http://ws.apache.org/ns/synapse`). An element with children is an object; repeated elements are
//! a list; an element made only of `<jsonElement>` children is MI's form of a list; an empty element or
//! one with `xsi:nil="true"` is an absent parameter, so a template that always emits every element
//! works. A DTD is refused outright (no entity expansion, no external fetch), and depth and element
//! count are bounded, so a hostile document costs little.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Deeper documents are refused: parameters nest two levels (`poll/options`), envelopes four.
pub const MAX_DEPTH: usize = 32;
/// More elements are refused: a status with a poll is a few dozen.
pub const MAX_ELEMENTS: usize = 10_000;

const XSI_NS: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";

/// One element of a parsed document.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub namespace: Option<String>,
    pub local: String,
    /// Attributes by namespace and local name.
    pub attributes: Vec<(Option<String>, String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attribute(&self, namespace: Option<&str>, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(ns, l, _)| l == local && (namespace.is_none() || ns.as_deref() == namespace))
            .map(|(_, _, v)| v.as_str())
    }
}

fn malformed(detail: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the XML body is malformed: {detail}"))
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element> {
    let text =
        std::str::from_utf8(body).map_err(|_| Error::invalid("the XML body is not UTF-8"))?;
    let mut reader = NsReader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            // The namespace borrows the reader; own it so attributes can be resolved below.
            Ok((ns, event)) => (namespace(&ns), event),
            Err(e) => {
                let at = reader.buffer_position();
                return Err(malformed(format!("{e} (at byte {at})")));
            }
        };
        match event {
            Event::DocType(_) => {
                return Err(Error::invalid(
                    "a DTD is not accepted in the XML body (no entity declarations, no external references)",
                ))
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(Error::invalid(format!(
                        "the XML body has more than {MAX_ELEMENTS} elements"
                    )));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::invalid(format!(
                        "the XML body nests deeper than {MAX_DEPTH} levels"
                    )));
                }
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                let mut element = Element {
                    namespace: ns,
                    local: utf8(start.local_name().as_ref())?,
                    ..Element::default()
                };
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(malformed)?;
                    let (attr_ns, local) = reader.resolve_attribute(attribute.key);
                    let value = attribute.unescape_value().map_err(malformed)?;
                    element.attributes.push((
                        namespace(&attr_ns),
                        utf8(local.as_ref())?,
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(t) => {
                let t = t.xml_content().map_err(malformed)?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&t),
                    None if t.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let c = c.decode().map_err(malformed)?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if let Some(c) = r.resolve_char_ref().map_err(malformed)? {
                    c.to_string()
                } else {
                    let name = r.decode().map_err(malformed)?;
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed(format!("undefined entity &{name};")))?
                        .to_owned()
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| Error::invalid("the XML body is empty"))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn namespace(ns: &ResolveResult<'_>) -> Option<String> {
    match ns {
        ResolveResult::Bound(ns) => std::str::from_utf8(ns.as_ref()).ok().map(str::to_owned),
        _ => None,
    }
}

fn utf8(bytes: &[u8]) -> Result<String> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Error::invalid("the XML body is not UTF-8"))
}

/// The parameters an element's children carry, as a JSON object (never null: no parameters is `{}`).
pub fn parameters(element: &Element) -> Result<Value> {
    let has_text = !element.text.trim().is_empty();
    if element.children.is_empty() && has_text {
        return Err(Error::invalid(format!(
            "<{}> must hold one element per parameter, not text",
            element.local
        )));
    }
    Ok(children_to_object(element).unwrap_or_else(|| Value::Object(Map::new())))
}

/// The value an element stands for, or `None` where it stands for an absent parameter.
fn to_value(element: &Element) -> Option<Value> {
    let nil = element.attributes.iter().any(|(ns, l, v)| {
        l == "nil" && ns.as_deref().map(str::as_bytes) == Some(XSI_NS) && v == "true"
    });
    if nil {
        return None;
    }
    if element.children.is_empty() {
        return (!element.text.trim().is_empty()).then(|| Value::String(element.text.clone()));
    }
    if element.children.iter().all(|c| c.local == "jsonElement") {
        let items: Vec<Value> = element.children.iter().filter_map(to_value).collect();
        return (!items.is_empty()).then_some(Value::Array(items));
    }
    children_to_object(element)
}

fn children_to_object(element: &Element) -> Option<Value> {
    let mut map = Map::new();
    for child in &element.children {
        let Some(value) = to_value(child) else {
            continue;
        };
        match map.get_mut(&child.local) {
            None => {
                map.insert(child.local.clone(), value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(first) => {
                let first = first.take();
                map.insert(child.local.clone(), Value::Array(vec![first, value]));
            }
        }
    }
    (!map.is_empty()).then_some(Value::Object(map))
}

/// Appends `value` as the content of an element: an object's fields become child elements, a list
/// repeats its element, null is left out.
pub fn write_children(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                write_element(out, key, v);
            }
        }
        Value::Array(items) => {
            for item in items {
                write_element(out, "item", item);
            }
        }
        Value::Null => {}
        scalar => write_text(out, scalar),
    }
}

/// Appends `<name>value</name>` (or one such element per list item).
pub fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                if let Value::Array(_) = item {
                    // A list of lists: the inner list gets its own element, its items `<item>`.
                    open(out, name);
                    write_children(out, item);
                    close_tag(out, name);
                } else {
                    write_element(out, name, item);
                }
            }
        }
        Value::Object(map) if map.is_empty() => {
            out.push('<');
            push_name(out, name);
            out.push_str("/>");
        }
        other => {
            open(out, name);
            write_children(out, other);
            close_tag(out, name);
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    push_name(out, name);
    out.push('>');
}

fn close_tag(out: &mut String, name: &str) {
    out.push_str("</");
    push_name(out, name);
    out.push('>');
}

fn write_text(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => escape_into(out, s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        _ => {}
    }
}

/// Escapes text for XML 1.0, replacing characters XML cannot carry at all (most C0 controls).
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Writes a JSON key as an XML name: keys are Mastodon's snake_case, but a key from a server's custom
/// data could be anything, and the document must stay well-formed.
fn push_name(out: &mut String, name: &str) {
    let mut first = true;
    for c in name.chars() {
        let ok = c.is_alphanumeric() || c == '_' || (!first && (c == '-' || c == '.'));
        if first && (c.is_ascii_digit() || !ok) {
            out.push('_');
        }
        if ok {
            out.push(c);
        } else if !first {
            out.push('_');
        }
        first = false;
    }
    if first {
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(xml: &str) -> Value {
        parameters(&parse(xml.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn repeated_elements_become_lists_and_empty_ones_disappear() {
        let v = params(
            "<postStatus xmlns=\"http://ws.apache.org/ns/synapse\"><status>a &amp; b</status>\
             <media_ids>1</media_ids><media_ids>2</media_ids><spoiler_text/><language></language>\
             <poll><options>x</options><options>y</options><expires_in>300</expires_in></poll></postStatus>",
        );
        assert_eq!(
            v,
            json!({"status": "a & b", "media_ids": ["1", "2"],
                   "poll": {"options": ["x", "y"], "expires_in": "300"}})
        );
    }

    #[test]
    fn mi_json_arrays_and_nil_are_understood() {
        let v = params(
            "<jsonObject><media_ids><jsonElement>1</jsonElement><jsonElement>2</jsonElement></media_ids>\
             <in_reply_to_id xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:nil=\"true\"/></jsonObject>",
        );
        assert_eq!(v, json!({"media_ids": ["1", "2"]}));
    }

    #[test]
    fn a_dtd_and_undefined_entities_are_refused() {
        let e = parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>").unwrap_err();
        assert!(e.detail.contains("DTD"), "{}", e.detail);
        let e = parse(b"<x>&a;</x>").unwrap_err();
        assert!(e.detail.contains("undefined entity"), "{}", e.detail);
    }

    #[test]
    fn depth_and_malformed_documents_are_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .detail
            .contains("nests deeper"));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a></a><b/>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn values_are_written_as_elements_with_lists_repeated_and_null_left_out() {
        let mut out = String::new();
        write_children(
            &mut out,
            &json!({"id": "1", "tags": ["a", "b"], "card": null, "account": {"acct": "x<y"},
                    "emojis": [], "ok": true, "n": 3, "2fa": "z", "weird key": "w", "ctl": "a\u{1}b"}),
        );
        assert_eq!(
            out,
            "<id>1</id><tags>a</tags><tags>b</tags><account><acct>x&lt;y</acct></account>\
             <ok>true</ok><n>3</n><_2fa>z</_2fa><weird_key>w</weird_key><ctl>a\u{FFFD}b</ctl>"
        );
    }
}
