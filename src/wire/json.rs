//! JSON in, JSON out, and errors as `application/problem+json` (RFC 9457).

use serde_json::Value;

use crate::error::{Error, Result};

/// Parses a JSON body; an empty body means no parameters.
pub fn parse(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    // serde_json refuses nesting deeper than 128 levels, so a hostile body cannot exhaust the stack.
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends too early",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "the data does not fit",
            serde_json::error::Category::Io => "it could not be read",
        };
        Error::invalid(format!(
            "the JSON body is malformed ({what} at line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

pub fn render(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}
