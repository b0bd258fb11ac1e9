//! Plain XML: parsing any document into a small tree, the tree into parameters, and values into XML.
//!
//! Parameters are matched by local name, whatever the namespace (MI's payloadFactory puts its elements
//! in `http://ws.apache.org/ns/synapse`). An element with children is an object; repeated elements are
//! a list; an element made only of `<jsonElement>` children is MI's form of a list; an empty element or
//! one with `xsi:nil="true"` is an absent parameter, so a template that always emits every element
//! works. A DTD is refused outright (no entity expansion, no external fetch), and depth, element count
//! and attribute count are bounded, so a hostile document costs little.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde_json::{Map, Value};

use super::entities::{self, Shape};
use crate::error::{Error, Result};

/// Deeper documents are refused: parameters nest two levels (`poll/options`), envelopes four.
pub const MAX_DEPTH: usize = 32;
/// More elements are refused: a status with a poll is a few dozen.
pub const MAX_ELEMENTS: usize = 10_000;
/// More attributes on one element are refused: an envelope declares a few namespaces. The parser's
/// duplicate check and namespace lookups cost time per attribute (and declaration) already seen, so an
/// unbounded flood of them would cost time quadratic in the body's size.
pub const MAX_ATTRIBUTES_PER_ELEMENT: usize = 64;
/// More attributes in the whole document are refused (see [`MAX_ATTRIBUTES_PER_ELEMENT`]).
pub const MAX_ATTRIBUTES: usize = 10_000;
/// How much of a parser error (which may quote names or text from the body) a detail repeats.
const MAX_QUOTED: usize = 200;

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
    Error::invalid(format!("the XML body is malformed: {}", bounded(detail)))
}

/// At most [`MAX_QUOTED`] characters of `text`: a parser error can quote a name or an entity as long
/// as the body, and the detail goes back to the caller and into the log.
fn bounded(text: impl std::fmt::Display) -> String {
    let mut text = text.to_string();
    if let Some((cut, _)) = text.char_indices().nth(MAX_QUOTED) {
        text.truncate(cut);
        text.push('\u{2026}');
    }
    text
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
    let mut attribute_count = 0usize;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            // The namespace borrows the reader; own it so attributes can be resolved below.
            Ok((ns, event)) => (namespace(&ns), event),
            Err(e) => {
                let at = reader.buffer_position();
                return Err(malformed(format!("{} (at byte {at})", bounded(e))));
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
                // Counted without the duplicate check, which is what costs per attribute seen.
                let mut attributes = start.attributes();
                attributes.with_checks(false);
                let here = attributes.take(MAX_ATTRIBUTES_PER_ELEMENT + 1).count();
                if here > MAX_ATTRIBUTES_PER_ELEMENT {
                    return Err(Error::invalid(format!(
                        "an element of the XML body has more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes"
                    )));
                }
                attribute_count += here;
                if attribute_count > MAX_ATTRIBUTES {
                    return Err(Error::invalid(format!(
                        "the XML body has more than {MAX_ATTRIBUTES} attributes"
                    )));
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
                // XML 1.0 line ends (CR LF and CR become LF); quick-xml's `xml_content` applies XML
                // 1.1's, which would also turn U+0085 and U+2028 in a status into line feeds.
                let t = t.xml10_content().map_err(malformed)?;
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

/// Appends `value` as the content of an element of type `shape`: the declared fields in declared
/// order, then, in one `<extra>` element, the fields `shape` does not declare and the declared ones
/// whose value does not fit (see [`entities`]). A shape without declared fields (any object) is
/// written as it came. So what is written is what the WSDL's types declare.
pub fn write_typed_children(out: &mut String, value: &Value, shape: &'static Shape) {
    match value {
        Value::Null => {}
        _ if shape.is_free() => write_children(out, value),
        Value::Object(map) => {
            let (declared, others) = entities::split(shape, map);
            for (field, value) in declared {
                write_typed_element(out, field.name, value, field.ty);
            }
            if !others.is_empty() {
                open(out, entities::EXTRA);
                for (key, value) in &others {
                    write_element(out, key, value);
                }
                close_tag(out, entities::EXTRA);
            }
        }
        // Not an object where one was declared: kept, as the content of `<extra>`.
        other => {
            open(out, entities::EXTRA);
            write_children(out, other);
            close_tag(out, entities::EXTRA);
        }
    }
}

/// Appends `<name>` of type `ty` holding `value`, one per item of a list (a value [`entities::split`]
/// found to fit).
fn write_typed_element(out: &mut String, name: &str, value: &Value, ty: entities::Type) {
    match (value, ty) {
        (Value::Null, _) => {}
        (Value::Array(items), _) => {
            for item in items {
                write_typed_element(out, name, item, ty);
            }
        }
        (Value::Object(map), _) if map.is_empty() => {
            out.push('<');
            push_name(out, name);
            out.push_str("/>");
        }
        (_, entities::Type::Object(inner)) => {
            open(out, name);
            write_typed_children(out, value, inner);
            close_tag(out, name);
        }
        (scalar, _) => {
            open(out, name);
            write_text(out, scalar);
            close_tag(out, name);
        }
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
/// data could be anything, and the document must stay well-formed. A character is kept when it is a
/// letter, digit, `_` (or, after the first, `-` and `.`) that XML 1.0 also allows there: not every
/// Unicode alphanumeric is (`µ`, `ª`, `²`, `①`, `Ⓐ` are not); the others become `_`.
fn push_name(out: &mut String, name: &str) {
    let mut first = true;
    for c in name.chars() {
        let ok = (c.is_alphanumeric() || c == '_' || (!first && (c == '-' || c == '.')))
            && if first {
                is_name_start_char(c) || c.is_ascii_digit()
            } else {
                is_name_char(c)
            };
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

/// XML 1.0 (fifth edition) `NameStartChar`, without `:`.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (fifth edition) `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
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
    fn line_ends_are_normalized_as_xml_1_0_says() {
        let v = params("<x><status>a\u{2028}b\u{85}c\r\nd\re</status></x>");
        assert_eq!(v, json!({"status": "a\u{2028}b\u{85}c\nd\ne"}));
    }

    #[test]
    fn attribute_floods_and_long_quotes_are_cut_short() {
        let many: String = (0..=MAX_ATTRIBUTES_PER_ELEMENT)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        let e = parse(format!("<x{many}/>").as_bytes()).unwrap_err();
        assert!(e.detail.contains("attributes"), "{}", e.detail);
        let some: String = (0..MAX_ATTRIBUTES_PER_ELEMENT)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        let each = format!("<y{some}/>");
        let doc = format!(
            "<x>{}</x>",
            each.repeat(MAX_ATTRIBUTES / MAX_ATTRIBUTES_PER_ELEMENT)
        );
        assert!(parse(doc.as_bytes()).is_ok());
        let doc = format!(
            "<x>{}</x>",
            each.repeat(MAX_ATTRIBUTES / MAX_ATTRIBUTES_PER_ELEMENT + 1)
        );
        let e = parse(doc.as_bytes()).unwrap_err();
        assert!(e.detail.contains("attributes"), "{}", e.detail);
        let name = "n".repeat(100_000);
        let e = parse(format!("<x>&{name};</x>").as_bytes()).unwrap_err();
        assert!(e.detail.len() < 400, "{}", e.detail.len());
    }

    #[test]
    fn names_xml_does_not_allow_are_written_with_underscores() {
        let mut out = String::new();
        write_children(
            &mut out,
            &json!({"\u{b5}": 1, "a\u{aa}\u{b2}b": 2, "\u{2460}x": 3, "\u{24b6}": 4, "\u{e9}t\u{e9}": 5, "\u{540d}\u{524d}": 6}),
        );
        assert_eq!(
            out,
            "<_>1</_><a__b>2</a__b><_x>3</_x><_>4</_><\u{e9}t\u{e9}>5</\u{e9}t\u{e9}><\u{540d}\u{524d}>6</\u{540d}\u{524d}>"
        );
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
