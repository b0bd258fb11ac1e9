//! The address policy end to end: an inline instance whose name resolves to an address that only
//! looks public (NAT64 of a private one, 6to4, IPv4-compatible, site-local) is refused before any
//! connection is attempted.

use std::net::IpAddr;

use mastodon_sidecar::mastodon::address::{connect_lookups, override_resolution};
use mastodon_standin::Options;
use serde_json::json;

use crate::helpers::{spawn_app_with, FORMATS};

#[tokio::test]
async fn an_inline_name_resolving_to_nat64_of_a_private_address_is_refused_unconnected() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "nat64.inline.test",
            "64:ff9b::a01:203",
            "embedding 10.1.2.3",
        ),
        (
            "sixtofour.inline.test",
            "2002:a01:203::1",
            "embedding 10.1.2.3",
        ),
        ("compat.inline.test", "::127.0.0.1", "embedding 127.0.0.1"),
        ("sitelocal.inline.test", "fec0::1", "site-local"),
        ("classe.inline.test", "240.0.0.1", "reserved"),
    ];
    for (host, address, _) in cases {
        override_resolution(host, vec![address.parse::<IpAddr>().unwrap()]);
    }
    let app = spawn_app_with(Options::default(), |s| {
        s.security.allow_inline_connections = true;
        s.security.allowed_instances = vec!["*.inline.test".into()];
    })
    .await;
    for (host, address, why) in cases {
        for format in FORMATS {
            let refused = app
                .call(
                    format,
                    "init",
                    json!({
                        "connection": "adhoc",
                        "instance": format!("https://{host}"),
                        "access_token": "inline-token-4471c2e9",
                    }),
                )
                .await;
            assert_eq!(
                refused.code(),
                "forbidden",
                "{host} {format:?}: {}",
                refused.body
            );
            let detail = refused.value()["detail"].as_str().unwrap().to_owned();
            let shown = address.parse::<IpAddr>().unwrap().to_string();
            assert!(detail.contains(&shown) && detail.contains(why), "{detail}");
            assert!(
                !refused.body.contains("inline-token-4471c2e9"),
                "{}",
                refused.body
            );
        }
        // Refused at the check: the resolver a connection connects through was never asked.
        assert_eq!(connect_lookups(host), 0, "{host} was resolved to connect");
    }
    assert_eq!(app.standin.hits("GET /api/v2/instance"), 0);
}
