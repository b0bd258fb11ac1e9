//! Request parameters the way Rails sees them: the query string merged with a form-urlencoded
//! or JSON body into one JSON object, form keys nested Rails-style (`media_ids[]`,
//! `poll[options][]`, `poll[expires_in]`), and Rails-like casts of the values.

use serde_json::{Map, Value};

/// The body could not be parsed (Rails answers 400).
#[derive(Debug)]
pub struct ParseError;

/// Merges `query` and `body` (JSON when the content type says so, form-urlencoded otherwise)
/// into one object; body keys win.
pub fn parse(query: &str, content_type: &str, body: &[u8]) -> Result<Value, ParseError> {
    let mut map = Map::new();
    if !query.is_empty() {
        parse_form_into(&mut map, query.as_bytes());
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let ct = content_type.to_ascii_lowercase();
        if ct.contains("json") {
            match serde_json::from_slice::<Value>(body).map_err(|_| ParseError)? {
                Value::Object(obj) => map.extend(obj),
                // Rails wraps a non-object JSON body as `_json`.
                other => {
                    map.insert("_json".to_owned(), other);
                }
            }
        } else if ct.is_empty() || ct.contains("x-www-form-urlencoded") {
            parse_form_into(&mut map, body);
        }
    }
    Ok(Value::Object(map))
}

/// Parses `a=1&b[]=2&c[d]=3` into `{"a":"1","b":["2"],"c":{"d":"3"}}` (Rails' nested params).
pub fn parse_form_into(map: &mut Map<String, Value>, input: &[u8]) {
    for (key, value) in form_urlencoded::parse(input) {
        let (base, segments) = split_key(&key);
        if base.is_empty() {
            continue;
        }
        let slot = map.entry(base.to_owned()).or_insert(Value::Null);
        assign(slot, &segments, value.into_owned());
    }
}

fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let base = &key[..open];
    let mut segments = Vec::new();
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            break;
        };
        segments.push(&stripped[..close]);
        rest = &stripped[close + 1..];
    }
    (base, segments)
}

fn assign(slot: &mut Value, segments: &[&str], value: String) {
    let Some((first, rest)) = segments.split_first() else {
        *slot = Value::String(value);
        return;
    };
    if first.is_empty() {
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let Value::Array(items) = slot else {
            return;
        };
        if rest.is_empty() {
            items.push(Value::String(value));
            return;
        }
        // `a[][b]=1&a[][c]=2` fills the last hash until a key repeats, like Rails.
        let reuse = matches!(items.last(), Some(Value::Object(o)) if !o.contains_key(rest[0]));
        if !reuse {
            items.push(Value::Object(Map::new()));
        }
        if let Some(last) = items.last_mut() {
            assign(last, rest, value);
        }
    } else {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(obj) = slot {
            let child = obj.entry((*first).to_owned()).or_insert(Value::Null);
            assign(child, rest, value);
        }
    }
}

/// snac reads form bodies only: of a JSON body, what survives is what a form could carry
/// at the top level (scalars); a `poll` object or a `media_ids` array is dropped.
pub fn scalars_only(v: Value, content_type: &str) -> Value {
    if !content_type.to_ascii_lowercase().contains("json") {
        return v;
    }
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_array() && !v.is_object())
                .collect(),
        ),
        other => other,
    }
}

/// The query and the body read as a form whatever the content type (Mitra's fallback).
pub fn as_form(query: &str, body: &[u8]) -> Value {
    let mut map = Map::new();
    parse_form_into(&mut map, query.as_bytes());
    parse_form_into(&mut map, body);
    Value::Object(map)
}

/// A scalar parameter as text (numbers and booleans too, as Rails would see them in a form).
pub fn text(v: &Value, key: &str) -> Option<String> {
    scalar(v.get(key)?)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean parameter cast like `ActiveModel::Type::Boolean` (`""` is nil).
pub fn boolean(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_f64() != Some(0.0)),
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(!matches!(
            s.as_str(),
            "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF"
        )),
        _ => None,
    }
}

/// An array parameter of scalars (`name[]=` in forms, an array in JSON); a lone scalar is
/// not an array (Rails' strong parameters drop it).
pub fn list(v: &Value, key: &str) -> Option<Vec<String>> {
    match v.get(key)? {
        Value::Array(items) => Some(items.iter().filter_map(scalar).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_form_keys() {
        let v = parse(
            "",
            "application/x-www-form-urlencoded",
            b"status=hi+there&media_ids[]=1&media_ids[]=2&poll[options][]=a&poll[options][]=b&poll[expires_in]=300&scopes[]=read",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"status":"hi there","media_ids":["1","2"],
                   "poll":{"options":["a","b"],"expires_in":"300"},"scopes":["read"]})
        );
    }

    #[test]
    fn json_and_query_merge() {
        let v = parse("a=1&b=2", "application/json; charset=utf-8", br#"{"b":3}"#).unwrap();
        assert_eq!(v, json!({"a":"1","b":3}));
        assert!(parse("", "application/json", b"{").is_err());
        assert_eq!(boolean(&json!({"x":"0"}), "x"), Some(false));
        assert_eq!(boolean(&json!({"x":"yes"}), "x"), Some(true));
        assert_eq!(list(&json!({"x":"1"}), "x"), None);
    }
}
