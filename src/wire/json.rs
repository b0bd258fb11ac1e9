//! JSON in, JSON out, and errors as `application/problem+json` (RFC 9457).
//!
//! A request body is read into a `Value` by [`Strict`], a visitor that builds the same value
//! serde_json would, but refuses an object that names a key twice (at any depth): serde_json keeps
//! the last one silently, so `{"status": "a", "status": "b"}` would post `b` by guessing. The check
//! is the map insert the value is built with anyway, so it costs nothing more than the plain parse.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};

/// How much of a repeated key a detail repeats.
const MAX_QUOTED_KEY: usize = 64;
/// What the visitor's error starts with, so [`parse`] tells it from a syntax error.
const DUPLICATE: &str = "duplicate key ";

/// Parses a JSON body; an empty body means no parameters.
pub fn parse(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    // serde_json refuses nesting deeper than 128 levels, so a hostile body cannot exhaust the stack.
    match serde_json::from_slice::<Strict>(body) {
        Ok(Strict(value)) => Ok(value),
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let message = e.to_string();
            if let Some(key) = message.strip_prefix(DUPLICATE) {
                // The message is `duplicate key `k` at line L column C`: keep the key only.
                let key = key.rsplit_once(" at line ").map_or(key, |(k, _)| k);
                return Err(Error::invalid(format!(
                    "the JSON body gives the key {key} more than once (at line {line}, column {column}); give each parameter once"
                )));
            }
            let what = match e.classify() {
                serde_json::error::Category::Eof => "it ends too early",
                serde_json::error::Category::Syntax => "a syntax error",
                serde_json::error::Category::Data => "the data does not fit",
                serde_json::error::Category::Io => "it could not be read",
            };
            Err(Error::invalid(format!(
                "the JSON body is malformed ({what} at line {line}, column {column})"
            )))
        }
    }
}

pub fn render(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A JSON value whose objects name each key once (see the module documentation).
pub struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number; null as serde_json does otherwise.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    let shown: String = slot.key().chars().take(MAX_QUOTED_KEY).collect();
                    return Err(de::Error::custom(format!("{DUPLICATE}`{shown}`")));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth_and_named() {
        for (body, key) in [
            (r#"{"status":"a","status":"b"}"#, "status"),
            (
                r#"{"poll":{"options":["a","b"],"expires_in":1,"expires_in":2}}"#,
                "expires_in",
            ),
            (
                r#"{"media":[{"file":"x"},{"file":"y","file":"z"}]}"#,
                "file",
            ),
            (r#"[{"a":1,"a":1}]"#, "a"),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidRequest);
            assert!(
                e.detail
                    .contains(&format!("the key `{key}` more than once")),
                "{body}: {}",
                e.detail
            );
            assert!(e.detail.contains("line 1, column"), "{}", e.detail);
        }
    }

    #[test]
    fn the_value_is_what_serde_json_reads_and_lists_still_repeat() {
        let body = br#"{"status":"s\u00e9","media_ids":["1","1"],"n":-3,"f":1.5,"big":18446744073709551615,
            "t":true,"z":null,"poll":{"options":["a","a"]},"same":{"k":1},"other":{"k":2}}"#;
        assert_eq!(
            parse(body).unwrap(),
            serde_json::from_slice::<Value>(body).unwrap()
        );
        assert_eq!(parse(b" \n").unwrap(), Value::Null);
        assert_eq!(parse(b"[1,[2]]").unwrap(), json!([1, [2]]));
    }

    /// The hot path (a postStatus body as MI sends it): the refusing visitor against serde_json's own
    /// `Value`, printed (`cargo test --release --lib wire::json -- --nocapture`), never asserted.
    #[test]
    fn the_duplicate_check_costs_about_what_the_plain_parse_does() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mi_post_status.json"
        ))
        .unwrap();
        let rounds = 20_000;
        let time = |f: &dyn Fn() -> Value| {
            let started = std::time::Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(f());
            }
            started.elapsed() / rounds
        };
        let plain = time(&|| serde_json::from_slice::<Value>(&body).unwrap());
        let strict = time(&|| parse(&body).unwrap());
        println!(
            "postStatus JSON decode ({} bytes): serde_json Value {plain:?}, duplicate-refusing {strict:?} per body",
            body.len()
        );
        assert_eq!(
            parse(&body).unwrap(),
            serde_json::from_slice::<Value>(&body).unwrap()
        );
    }

    #[test]
    fn syntax_errors_and_deep_nesting_stay_malformed() {
        let e = parse(b"{\"a\":").unwrap_err();
        assert!(e.detail.contains("ends too early"), "{}", e.detail);
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert!(e.detail.contains("malformed"), "{}", e.detail);
        let long = format!("{{\"{0}\":1,\"{0}\":2}}", "k".repeat(10_000));
        let e = parse(long.as_bytes()).unwrap_err();
        assert!(e.detail.len() < 300, "{}", e.detail.len());
    }
}
