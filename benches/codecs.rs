//! The hot codecs of `postStatus`: decoding a request (SOAP 1.1 envelope, JSON body, plain XML body)
//! and encoding the answer (a realistic Status as JSON, plain XML and SOAP 1.1).
//!
//! `cargo bench --bench codecs` (the end-to-end benchmark is `crates/bench`, see the README).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mastodon_sidecar::operations::Operation;
use mastodon_sidecar::wire::{self, Format, RequestMeta, SoapVersion};
use serde_json::Value;

/// A Status exactly as `crates/mastodon-standin` answers `POST /api/v1/statuses` (1,660 bytes).
const STATUS: &str = r##"{"id":"117659891457261568","created_at":"2026-11-22T11:37:44.863Z","in_reply_to_id":null,"in_reply_to_account_id":null,"sensitive":false,"spoiler_text":"","visibility":"unlisted","language":"en","uri":"http://127.0.0.1:40533/users/sidecar/statuses/117659891457261568","url":"http://127.0.0.1:40533/@sidecar/117659891457261568","replies_count":0,"reblogs_count":0,"favourites_count":0,"edited_at":null,"favourited":false,"reblogged":false,"muted":false,"bookmarked":false,"pinned":false,"content":"<p>Order 1042 shipped <a href=\"http://127.0.0.1:40533/tags/logistics\" class=\"mention hashtag\" rel=\"tag\">#<span>logistics</span></a></p>","filtered":[],"reblog":null,"application":{"name":"mastodon-standin","website":null},"account":{"id":"109348276342907810","username":"sidecar","acct":"sidecar","display_name":"Sidecar Bot","locked":false,"bot":true,"discoverable":true,"indexable":true,"group":false,"created_at":"2022-11-15T00:00:00.000Z","note":"<p>Posts on behalf of the sidecar.</p>","url":"http://127.0.0.1:40533/@sidecar","uri":"http://127.0.0.1:40533/users/sidecar","avatar":"http://127.0.0.1:40533/avatars/original/missing.png","avatar_static":"http://127.0.0.1:40533/avatars/original/missing.png","header":"http://127.0.0.1:40533/headers/original/missing.png","header_static":"http://127.0.0.1:40533/headers/original/missing.png","followers_count":0,"following_count":0,"statuses_count":1,"last_status_at":"2026-11-22","hide_collections":false,"noindex":false,"emojis":[],"roles":[],"fields":[]},"media_attachments":[],"mentions":[],"tags":[{"name":"logistics","url":"http://127.0.0.1:40533/tags/logistics"}],"emojis":[],"card":null,"poll":null}"##;

/// What MI sends with `format="soap11"` (the same envelope the end-to-end benchmark posts).
const SOAP11_REQUEST: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body><postStatus xmlns="http://ws.apache.org/ns/synapse"><status>Order 1042 shipped #logistics</status><visibility>unlisted</visibility></postStatus></soapenv:Body></soapenv:Envelope>"#;

const JSON_REQUEST: &str = r#"{"status":"Order 1042 shipped #logistics","visibility":"unlisted"}"#;

const XML_REQUEST: &str = r#"<postStatus xmlns="http://ws.apache.org/ns/synapse"><status>Order 1042 shipped #logistics</status><visibility>unlisted</visibility></postStatus>"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_postStatus");

    let soap_meta = RequestMeta {
        content_type: Some("text/xml; charset=UTF-8"),
        accept: None,
        soap_action: Some("\"urn:postStatus\""),
    };
    let decoded = wire::decode_soap_request(&soap_meta, SOAP11_REQUEST.as_bytes()).unwrap();
    assert_eq!(decoded.operation, Operation::PostStatus);
    group.throughput(Throughput::Bytes(SOAP11_REQUEST.len() as u64));
    group.bench_function("soap11_envelope", |b| {
        b.iter(|| {
            wire::decode_soap_request(black_box(&soap_meta), black_box(SOAP11_REQUEST.as_bytes()))
        })
    });

    let json_meta = RequestMeta {
        content_type: Some("application/json"),
        ..RequestMeta::default()
    };
    let decoded =
        wire::decode_operation_request("postStatus", &json_meta, JSON_REQUEST.as_bytes()).unwrap();
    assert_eq!(decoded.params["status"], "Order 1042 shipped #logistics");
    group.throughput(Throughput::Bytes(JSON_REQUEST.len() as u64));
    group.bench_function("json_body", |b| {
        b.iter(|| {
            wire::decode_operation_request(
                black_box("postStatus"),
                black_box(&json_meta),
                black_box(JSON_REQUEST.as_bytes()),
            )
        })
    });

    let xml_meta = RequestMeta {
        content_type: Some("application/xml; charset=UTF-8"),
        ..RequestMeta::default()
    };
    let decoded =
        wire::decode_operation_request("postStatus", &xml_meta, XML_REQUEST.as_bytes()).unwrap();
    assert_eq!(decoded.params["status"], "Order 1042 shipped #logistics");
    group.throughput(Throughput::Bytes(XML_REQUEST.len() as u64));
    group.bench_function("xml_body", |b| {
        b.iter(|| {
            wire::decode_operation_request(
                black_box("postStatus"),
                black_box(&xml_meta),
                black_box(XML_REQUEST.as_bytes()),
            )
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let status: Value = serde_json::from_str(STATUS).unwrap();
    let mut group = c.benchmark_group("encode_status");
    group.throughput(Throughput::Bytes(STATUS.len() as u64));
    for (name, format) in [
        ("json", Format::Json),
        ("xml", Format::Xml),
        ("soap11", Format::Soap(SoapVersion::V11)),
    ] {
        let reply = wire::success(format, Operation::PostStatus, &status);
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.len() > 1000,
            "{name}: {} bytes",
            reply.body.len()
        );
        group.bench_function(name, |b| {
            b.iter(|| wire::success(black_box(format), Operation::PostStatus, black_box(&status)))
        });
    }
    group.finish();

    // What the sidecar also does per call: parse Mastodon's answer into a Value.
    let mut group = c.benchmark_group("parse_upstream");
    group.throughput(Throughput::Bytes(STATUS.len() as u64));
    group.bench_function("status_json", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(STATUS.as_bytes())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
