//! A plain XML body (`application/xml` or `text/xml`) to `POST /v1/operations/{operation}`. The first
//! byte picks the path's operation name (low nibble), the Accept header (bits 4-6) and the
//! Content-Type (bit 7); the rest is the body. Never a panic; an accepted plain document names the
//! operation and yields an object of parameters; a SOAP envelope there is answered in SOAP; a refusal
//! is a client error; either renders well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mastodon_sidecar::error::ErrorKind;
use mastodon_sidecar::wire::{self, Format, RequestMeta};
use mastodon_sidecar_fuzz::{accept, check_outcome, path_name};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = path_name(selector & 0x0f);
    let content_type = if selector & 0x80 == 0 {
        "application/xml"
    } else {
        "text/xml; charset=UTF-8"
    };
    let meta = RequestMeta {
        content_type: Some(content_type),
        accept: accept((selector >> 4) & 0x07),
        soap_action: None,
    };
    let outcome = wire::decode_operation_request(name, &meta, body);
    match &outcome {
        Ok(call) => {
            assert!(call.operation.name().eq_ignore_ascii_case(name));
            match call.request_format {
                Format::Xml => {
                    assert!(call.params.is_object(), "{:?}", call.params);
                    assert!(matches!(call.response_format, Format::Json | Format::Xml));
                }
                Format::Soap(_) => assert_eq!(call.response_format, call.request_format),
                Format::Json => panic!("an XML body decoded as JSON"),
            }
        }
        Err(rejected) => assert!(
            matches!(
                rejected.error.kind,
                ErrorKind::InvalidRequest | ErrorKind::UnknownOperation
            ),
            "{:?}: {}",
            rejected.error.kind,
            rejected.error.detail
        ),
    }
    check_outcome(&outcome);
});
