//! Lenient readers for operation parameters.
//!
//! One parameter struct serves every wire format, so its fields must accept what each format can
//! express: plain XML and SOAP carry only text (`<sensitive>true</sensitive>`, `<expires_in>300</expires_in>`)
//! and a list of one is a single element; MI's XML-to-JSON conversion guesses types, so an id may arrive
//! as a number and a one-element list as a scalar. These functions accept all of that and nothing
//! ambiguous: `"yes"` is not a boolean, `"3.5"` is not a count.

use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn scalar_to_string<E: de::Error>(v: Value) -> Result<Option<String>, E> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(E::custom(format!(
            "expected text, found {}",
            describe(&other)
        ))),
    }
}

/// Text; a number or a boolean is taken as its text (MI turns `"123"` into `123`).
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scalar_to_string(Value::deserialize(d)?)
}

/// Like [`opt_string`], for values that must never be printed.
pub fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(opt_string(d)?
        .filter(|s| !s.is_empty())
        .map(SecretString::from))
}

/// `true`/`false` as JSON booleans or as text.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => match s.trim() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            "" => Ok(None),
            other => Err(de::Error::custom(format!(
                "expected true or false, found {other:?}"
            ))),
        },
        other => Err(de::Error::custom(format!(
            "expected true or false, found {}",
            describe(&other)
        ))),
    }
}

/// A whole number, as a JSON number or as text.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a whole number, found {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a whole number, found {s:?}"))),
        other => Err(de::Error::custom(format!(
            "expected a whole number, found {}",
            describe(&other)
        ))),
    }
}

/// A list of text: a JSON array, or one value standing for a list of one (XML, MI's JSON).
pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| scalar_to_string(item).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        scalar => Ok(scalar_to_string(scalar)?.map(|s| vec![s])),
    }
}

/// A list that may also come as one string separated by spaces or newlines (Mastodon's own form for
/// `redirect_uris`).
pub fn opt_list_or_separated<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Ok(opt_list(d)?.map(|items| {
        items
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct P {
        #[serde(default, deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "opt_list")]
        l: Option<Vec<String>>,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
    }

    #[test]
    fn xml_text_and_mi_guesses_are_read_as_the_field_type() {
        let p: P =
            serde_json::from_value(json!({"b": "true", "n": "300", "l": "7", "s": 12})).unwrap();
        assert_eq!(p.b, Some(true));
        assert_eq!(p.n, Some(300));
        assert_eq!(p.l, Some(vec!["7".to_owned()]));
        assert_eq!(p.s.as_deref(), Some("12"));
        let p: P = serde_json::from_value(json!({"l": [1, "2"]})).unwrap();
        assert_eq!(p.l, Some(vec!["1".to_owned(), "2".to_owned()]));
    }

    #[test]
    fn ambiguous_values_are_refused() {
        assert!(serde_json::from_value::<P>(json!({"b": "yes"})).is_err());
        assert!(serde_json::from_value::<P>(json!({"n": "3.5"})).is_err());
        assert!(serde_json::from_value::<P>(json!({"n": -1})).is_err());
        assert!(serde_json::from_value::<P>(json!({"s": {"a": 1}})).is_err());
    }
}
