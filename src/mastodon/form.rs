//! Writes as forms with Rails' bracket keys: the one body encoding every server reads.
//!
//! snac reads form bodies only (a JSON `poll` object is dropped with a 200), and Mitra re-reads a
//! JSON body it cannot parse as a form; every server reads `poll[options][]=a&poll[options][]=b`.
//! So a write's parameters, kept as a JSON object in the core, are flattened here: an object's
//! members become `parent[child]`, an array's items repeat `parent[]`, `true`/`false` and numbers
//! become their text, and null is left out.

use serde_json::Value;

/// The form pairs of a JSON object's members, in order.
pub fn pairs(params: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(members) = params {
        for (name, value) in members {
            flatten(name.clone(), value, &mut out);
        }
    }
    out
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) => {
            for item in items {
                flatten(format!("{key}[]"), item, out);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                flatten(format!("{key}[{name}]"), member, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_parameters_get_bracket_keys() {
        let body = json!({"status": "q", "media_ids": ["1", "2"], "sensitive": true,
            "poll": {"options": ["a", "b"], "expires_in": 600, "multiple": false}, "language": null});
        assert_eq!(
            pairs(&body),
            vec![
                ("status".to_owned(), "q".to_owned()),
                ("media_ids[]".to_owned(), "1".to_owned()),
                ("media_ids[]".to_owned(), "2".to_owned()),
                ("sensitive".to_owned(), "true".to_owned()),
                ("poll[options][]".to_owned(), "a".to_owned()),
                ("poll[options][]".to_owned(), "b".to_owned()),
                ("poll[expires_in]".to_owned(), "600".to_owned()),
                ("poll[multiple]".to_owned(), "false".to_owned()),
            ]
        );
    }
}
