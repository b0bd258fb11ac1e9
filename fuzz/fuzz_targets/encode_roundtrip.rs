//! The encoders: whatever a decoder accepts is rendered as a result in all four formats, and an error
//! of any kind with the input as its detail (and as Mastodon's error text and the correlation id) in
//! one of them; every rendering must parse again (JSON with serde_json, equal to what went in; XML
//! well-formed and read back by `wire::xml::parse`). The first byte picks the decoder (bits 0-1: JSON,
//! plain XML, SOAP 1.1, SOAP 1.2), the operation (bits 2-4), the error kind (bits 2-6), the error's
//! format (bits 5-6) and whether Mastodon answered (bit 7); the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mastodon_sidecar::error::{Error, Upstream};
use mastodon_sidecar::operations::Operation;
use mastodon_sidecar::wire::{self, RequestMeta};
use mastodon_sidecar_fuzz::{check_failure, check_success, error_kind, operation, FORMATS};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let op = operation(selector >> 2);
    let decoded = match selector & 0x03 {
        0 => wire::decode_operation_request(op.name(), &meta("application/json"), body),
        1 => wire::decode_operation_request(op.name(), &meta("application/xml"), body),
        2 => wire::decode_soap_request(&meta("text/xml"), body),
        _ => wire::decode_soap_request(&meta("application/soap+xml"), body),
    };
    if let Ok(call) = &decoded {
        for format in FORMATS {
            let reply = wire::success(format, call.operation, &call.params);
            check_success(format, call.operation, &call.params, &reply);
        }
    }

    let text = String::from_utf8_lossy(body);
    let mut error = Error::new(error_kind(selector >> 2), text.clone());
    if selector & 0x80 != 0 {
        error.upstream = Some(Upstream {
            status: 400 + u16::from(selector & 0x7f),
            error: Some(text.clone().into_owned()),
        });
    }
    // One format per input (rendering and checking all four would halve the rate for little more).
    let format = FORMATS[usize::from(selector >> 5) & 0x03];
    let names = [Some(op.name()), None, Some(Operation::PostStatus.name())];
    let operation = names[usize::from(selector) % names.len()];
    let reply = wire::failure(format, &error, operation, &text);
    check_failure(format, &error, &reply);
});

fn meta(content_type: &str) -> RequestMeta<'_> {
    RequestMeta {
        content_type: Some(content_type),
        accept: None,
        soap_action: None,
    }
}
