//! A body to `POST /soap`. The first byte picks the SOAP version's Content-Type (bits 0-1: 1.1 as
//! `text/xml`, 1.2 as `application/soap+xml`, plain `application/xml`, or a type SOAP does not use)
//! and the action (bits 2-3: none, the name of an operation chosen by bits 4-7, an empty quoted one,
//! or arbitrary text: then the next byte is its length and that many bytes follow). The action travels
//! as `SOAPAction` for 1.1 and as the `action` parameter for 1.2. Never a panic; an accepted call is
//! answered in its SOAP version, and its action (if any) names its operation; either renders
//! well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mastodon_sidecar::error::ErrorKind;
use mastodon_sidecar::wire::{self, Format, RequestMeta};
use mastodon_sidecar_fuzz::{check_outcome, operation, take};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (action, body) = match (selector >> 2) & 0x03 {
        0 => (None, rest),
        1 => (
            Some(format!("\"urn:{}\"", operation(selector >> 4).name())),
            rest,
        ),
        2 => (Some("\"\"".to_owned()), rest),
        _ => {
            let (len, rest) = take(rest, 1);
            let (text, body) = take(rest, len.first().copied().unwrap_or(0).into());
            (Some(String::from_utf8_lossy(text).into_owned()), body)
        }
    };
    let soap12_type;
    let (content_type, soap_action) = match selector & 0x03 {
        0 => ("text/xml; charset=utf-8", action.as_deref()),
        1 => {
            soap12_type = match &action {
                Some(a) => format!("application/soap+xml; charset=utf-8; action={a}"),
                None => "application/soap+xml; charset=utf-8".to_owned(),
            };
            (soap12_type.as_str(), None)
        }
        2 => ("application/xml", action.as_deref()),
        _ => ("application/json", action.as_deref()),
    };
    let meta = RequestMeta {
        content_type: Some(content_type),
        accept: None,
        soap_action,
    };
    let outcome = wire::decode_soap_request(&meta, body);
    match &outcome {
        Ok(call) => {
            let Format::Soap(_) = call.request_format else {
                panic!("/soap decoded {:?}", call.request_format);
            };
            assert_eq!(call.response_format, call.request_format);
            assert!(call.params.is_object(), "{:?}", call.params);
            assert_ne!(selector & 0x03, 3, "a JSON Content-Type accepted on /soap");
        }
        Err(rejected) => {
            assert!(
                matches!(
                    rejected.error.kind,
                    ErrorKind::InvalidRequest
                        | ErrorKind::UnknownOperation
                        | ErrorKind::UnsupportedMediaType
                ),
                "{:?}: {}",
                rejected.error.kind,
                rejected.error.detail
            );
            // Whatever went wrong, /soap answers in SOAP.
            assert!(
                matches!(rejected.format, Format::Soap(_)),
                "{:?}",
                rejected.format
            );
        }
    }
    check_outcome(&outcome);
});
