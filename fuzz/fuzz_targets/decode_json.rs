//! A JSON body to `POST /v1/operations/{operation}`. The first byte picks the path's operation name
//! (low nibble) and the Accept header (high nibble); the rest is the body. Never a panic; an accepted
//! body is exactly what serde_json reads; a refusal is `invalid_request` (or `unknown_operation` for a
//! name that is none) in JSON or XML, and of a body serde_json reads only for a key given twice in
//! one object; either renders well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mastodon_sidecar::error::ErrorKind;
use mastodon_sidecar::operations::Operation;
use mastodon_sidecar::wire::{self, Format, RequestMeta};
use mastodon_sidecar_fuzz::{accept, check_outcome, path_name};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = path_name(selector & 0x0f);
    let meta = RequestMeta {
        content_type: Some("application/json"),
        accept: accept(selector >> 4),
        soap_action: None,
    };
    let outcome = wire::decode_operation_request(name, &meta, body);
    match &outcome {
        Ok(call) => {
            assert!(call.operation.name().eq_ignore_ascii_case(name));
            assert_eq!(call.request_format, Format::Json);
            assert!(matches!(call.response_format, Format::Json | Format::Xml));
            let expected = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(body).expect("accepted, so serde_json reads it")
            };
            assert_eq!(call.params, expected);
        }
        Err(rejected) => {
            assert!(matches!(rejected.format, Format::Json | Format::Xml));
            if Operation::from_name(name).is_some() && serde_json::from_slice::<Value>(body).is_ok()
            {
                // What serde_json reads is refused only for a key given twice in one object.
                assert!(
                    rejected.error.detail.contains("more than once"),
                    "{}",
                    rejected.error.detail
                );
            }
            let expected = match Operation::from_name(name) {
                Some(_) => ErrorKind::InvalidRequest,
                None => ErrorKind::UnknownOperation,
            };
            assert_eq!(rejected.error.kind, expected, "{}", rejected.error.detail);
        }
    }
    check_outcome(&outcome);
});
