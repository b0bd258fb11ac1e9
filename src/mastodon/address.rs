//! Which addresses the sidecar may connect to for a caller-supplied instance.
//!
//! An inline connection's instance URL comes from a caller and is hostile until proven otherwise. A
//! check of the name before connecting is not enough (DNS can answer differently a second later), so
//! the client of such a connection resolves through [`PublicOnlyResolver`]: the addresses it connects
//! to are exactly the ones checked here.
//!
//! The policy is one table, [`SPECIAL`]: the IANA special-purpose address registries for IPv4 and
//! IPv6 (iana-ipv4-special-registry, iana-ipv6-special-registry), plus the IPv6 space outside global
//! unicast (`2000::/3`). The most specific row containing an address decides. A row either refuses
//! (loopback, private, documentation, reserved, ...) or says the address embeds an IPv4 address
//! (NAT64, 6to4, IPv4-mapped, IPv4-compatible, Teredo's obfuscated client), which is then judged by
//! the IPv4 rows: `64:ff9b::a01:203` is 10.1.2.3 behind a translator, and connecting to it reaches a
//! private network. Rows whose registry entry has globally reachable exceptions (`192.0.0.0/24`,
//! `2001::/23`) are refused whole: no Mastodon server lives at an anycast service address.
//!
//! Names are resolved through [`lookup`], which tests can answer for a name of their choosing
//! ([`override_resolution`]): a name that resolves to `64:ff9b::a01:203` cannot be had from a
//! real resolver in a test, and the policy must be proven on exactly that path.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, OnceLock};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// An address block: a prefix and its length in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    V4(Ipv4Addr, u8),
    V6(Ipv6Addr, u8),
}

impl Block {
    /// Whether `ip` lies inside the block (an IPv4 block holds only IPv4 addresses, and so on).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self, ip) {
            (Block::V4(net, len), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(*net)),
                u128::from(u32::from(*ip)),
                *len,
                32,
            ),
            (Block::V6(net, len), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(*net), u128::from(*ip), *len, 128)
            }
            _ => false,
        }
    }

    pub fn prefix_len(&self) -> u8 {
        match self {
            Block::V4(_, len) | Block::V6(_, len) => *len,
        }
    }
}

/// Whether the first `len` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, len: u8, width: u8) -> bool {
    if len == 0 {
        return true;
    }
    let shift = u32::from(width - len);
    (a >> shift) == (b >> shift)
}

/// Where an IPv6 address carries an IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedded {
    /// The last 32 bits (NAT64 `64:ff9b::/96`, IPv4-mapped, IPv4-compatible).
    Last32,
    /// Bits 16 to 47 (6to4 `2002::/16`).
    SixToFour,
    /// The last 32 bits, inverted (Teredo's obfuscated client address).
    TeredoClient,
}

impl Embedded {
    pub fn extract(self, ip: &Ipv6Addr) -> Ipv4Addr {
        let bits = u128::from(*ip);
        let v4 = match self {
            Embedded::Last32 => bits as u32,
            Embedded::SixToFour => (bits >> 80) as u32,
            Embedded::TeredoClient => !(bits as u32),
        };
        Ipv4Addr::from(v4)
    }
}

/// What a row says about the addresses in its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a public address: never connected to for an inline connection.
    Refused,
    /// Judged by the IPv4 address it embeds.
    Embeds(Embedded),
}

/// One row of the address policy.
#[derive(Clone, Copy, Debug)]
pub struct Special {
    pub block: Block,
    pub name: &'static str,
    pub verdict: Verdict,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8, name: &'static str) -> Special {
    Special {
        block: Block::V4(Ipv4Addr::new(a, b, c, d), len),
        name,
        verdict: Verdict::Refused,
    }
}

const fn v6(segments: [u16; 8], len: u8, name: &'static str, verdict: Verdict) -> Special {
    let [a, b, c, d, e, f, g, h] = segments;
    Special {
        block: Block::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h), len),
        name,
        verdict,
    }
}

const REFUSED: Verdict = Verdict::Refused;
const LAST32: Verdict = Verdict::Embeds(Embedded::Last32);

/// The special-purpose blocks, from the IANA registries (and IPv6 outside global unicast). The most
/// specific row containing an address decides; an address in no row is public.
pub const SPECIAL: [Special; 46] = [
    // IPv4 (iana-ipv4-special-registry), multicast and the reserved class E.
    v4(0, 0, 0, 0, 8, "\"this network\" (0.0.0.0/8)"),
    v4(10, 0, 0, 0, 8, "private-use (10.0.0.0/8)"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "shared address space, CGNAT (100.64.0.0/10)",
    ),
    v4(127, 0, 0, 0, 8, "loopback (127.0.0.0/8)"),
    v4(169, 254, 0, 0, 16, "link-local (169.254.0.0/16)"),
    v4(172, 16, 0, 0, 12, "private-use (172.16.0.0/12)"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments (192.0.0.0/24)"),
    v4(192, 0, 2, 0, 24, "documentation, TEST-NET-1 (192.0.2.0/24)"),
    v4(192, 31, 196, 0, 24, "AS112-v4 (192.31.196.0/24)"),
    v4(192, 52, 193, 0, 24, "AMT (192.52.193.0/24)"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "deprecated 6to4 relay anycast (192.88.99.0/24)",
    ),
    v4(192, 168, 0, 0, 16, "private-use (192.168.0.0/16)"),
    v4(
        192,
        175,
        48,
        0,
        24,
        "direct delegation AS112 service (192.175.48.0/24)",
    ),
    v4(198, 18, 0, 0, 15, "benchmarking (198.18.0.0/15)"),
    v4(
        198,
        51,
        100,
        0,
        24,
        "documentation, TEST-NET-2 (198.51.100.0/24)",
    ),
    v4(
        203,
        0,
        113,
        0,
        24,
        "documentation, TEST-NET-3 (203.0.113.0/24)",
    ),
    v4(224, 0, 0, 0, 4, "multicast (224.0.0.0/4)"),
    v4(240, 0, 0, 0, 4, "reserved (240.0.0.0/4)"),
    v4(
        255,
        255,
        255,
        255,
        32,
        "limited broadcast (255.255.255.255/32)",
    ),
    // IPv6 (iana-ipv6-special-registry).
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        128,
        "unspecified (::/128)",
        REFUSED,
    ),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (::1/128)", REFUSED),
    v6(
        [0, 0, 0, 0, 0, 0xffff, 0, 0],
        96,
        "IPv4-mapped (::ffff:0:0/96)",
        LAST32,
    ),
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible, deprecated (::/96)",
        LAST32,
    ),
    v6(
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "NAT64 (64:ff9b::/96)",
        LAST32,
    ),
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
        REFUSED,
    ),
    v6(
        [0x100, 0, 0, 0, 0, 0, 0, 0],
        64,
        "discard-only (100::/64)",
        REFUSED,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments (2001::/23)",
        REFUSED,
    ),
    v6(
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        32,
        "Teredo (2001::/32)",
        Verdict::Embeds(Embedded::TeredoClient),
    ),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (2001:db8::/32)",
        REFUSED,
    ),
    v6(
        [0x2002, 0, 0, 0, 0, 0, 0, 0],
        16,
        "6to4 (2002::/16)",
        Verdict::Embeds(Embedded::SixToFour),
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (3fff::/20)",
        REFUSED,
    ),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs (5f00::/16)",
        REFUSED,
    ),
    v6(
        [0xfc00, 0, 0, 0, 0, 0, 0, 0],
        7,
        "unique-local (fc00::/7)",
        REFUSED,
    ),
    v6(
        [0xfe80, 0, 0, 0, 0, 0, 0, 0],
        10,
        "link-local (fe80::/10)",
        REFUSED,
    ),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "site-local, deprecated (fec0::/10)",
        REFUSED,
    ),
    v6(
        [0xff00, 0, 0, 0, 0, 0, 0, 0],
        8,
        "multicast (ff00::/8)",
        REFUSED,
    ),
    // IPv6 outside global unicast (2000::/3) is unassigned or one of the blocks above.
    v6(
        [0, 0, 0, 0, 0, 0, 0, 0],
        3,
        "not global unicast (::/3)",
        REFUSED,
    ),
    v6(
        [0x4000, 0, 0, 0, 0, 0, 0, 0],
        2,
        "not global unicast (4000::/2)",
        REFUSED,
    ),
    v6(
        [0x8000, 0, 0, 0, 0, 0, 0, 0],
        1,
        "not global unicast (8000::/1)",
        REFUSED,
    ),
    // The IPv4 registry's smaller entries inside the rows above, named for messages.
    v4(192, 0, 0, 0, 29, "DS-Lite (192.0.0.0/29)"),
    v4(192, 0, 0, 170, 31, "NAT64/DNS64 discovery (192.0.0.170/31)"),
    v4(0, 0, 0, 0, 32, "unspecified (0.0.0.0/32)"),
    // And the IPv6 registry's, inside 2001::/23.
    v6(
        [0x2001, 0x2, 0, 0, 0, 0, 0, 0],
        48,
        "benchmarking (2001:2::/48)",
        REFUSED,
    ),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "deprecated ORCHID (2001:10::/28)",
        REFUSED,
    ),
    v6(
        [0x2001, 0x20, 0, 0, 0, 0, 0, 0],
        28,
        "ORCHIDv2 (2001:20::/28)",
        REFUSED,
    ),
    v6(
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "direct delegation AS112 service (2620:4f:8000::/48)",
        REFUSED,
    ),
];

/// The most specific row that contains `ip`.
pub fn special(ip: &IpAddr) -> Option<&'static Special> {
    SPECIAL
        .iter()
        .filter(|row| row.block.contains(ip))
        .max_by_key(|row| row.block.prefix_len())
}

/// Why `ip` is not public (its row, and the embedded address's row when it embeds one), or `None`
/// when it is public.
pub fn not_public_because(ip: &IpAddr) -> Option<String> {
    let row = special(ip)?;
    match (row.verdict, ip) {
        (Verdict::Refused, _) => Some(row.name.to_owned()),
        (Verdict::Embeds(how), IpAddr::V6(v6)) => {
            let inner = IpAddr::V4(how.extract(v6));
            // The IPv4 rows embed nothing, so this ends here.
            not_public_because(&inner).map(|why| format!("{}, embedding {inner}: {why}", row.name))
        }
        // An IPv4 row never embeds: a table mistake refuses rather than allows.
        (Verdict::Embeds(_), IpAddr::V4(_)) => Some(row.name.to_owned()),
    }
}

/// Whether an address is on the public internet: in no special-purpose block of [`SPECIAL`], or
/// embedding a public IPv4 address.
pub fn is_public(ip: &IpAddr) -> bool {
    not_public_because(ip).is_none()
}

/// Answers tests give for names of their choosing, and how often each was resolved to connect.
#[derive(Default)]
struct Overrides {
    answers: HashMap<String, Vec<IpAddr>>,
    connects: HashMap<String, usize>,
}

fn overrides() -> &'static Mutex<Overrides> {
    static OVERRIDES: OnceLock<Mutex<Overrides>> = OnceLock::new();
    OVERRIDES.get_or_init(Mutex::default)
}

/// Makes [`lookup`] answer `addresses` for `host` in this process: the test resolver hook. Nothing
/// but a test calls it; without it every name goes to the system resolver.
#[doc(hidden)]
pub fn override_resolution(host: &str, addresses: Vec<IpAddr>) {
    let mut o = overrides().lock().unwrap_or_else(|p| p.into_inner());
    o.answers.insert(host.to_ascii_lowercase(), addresses);
}

/// How often [`PublicOnlyResolver`] (the resolver a connection connects through) was asked for an
/// overridden `host`: zero proves no connection was attempted.
#[doc(hidden)]
pub fn connect_lookups(host: &str) -> usize {
    let o = overrides().lock().unwrap_or_else(|p| p.into_inner());
    o.connects
        .get(&host.to_ascii_lowercase())
        .copied()
        .unwrap_or(0)
}

fn overridden(host: &str, connecting: bool) -> Option<Vec<IpAddr>> {
    let mut o = overrides().lock().unwrap_or_else(|p| p.into_inner());
    let host = host.to_ascii_lowercase();
    let answer = o.answers.get(&host).cloned()?;
    if connecting {
        *o.connects.entry(host).or_default() += 1;
    }
    Some(answer)
}

/// The addresses of `host`: a test's override, else the system resolver's.
pub async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    if let Some(answer) = overridden(host, false) {
        return Ok(answer);
    }
    Ok(tokio::net::lookup_host((host, port))
        .await?
        .map(|a| a.ip())
        .collect())
}

/// Resolves names and keeps only public addresses; a name with none left fails to resolve.
#[derive(Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all = match overridden(&host, true) {
                Some(answer) => answer,
                None => lookup(&host, 0).await?,
            };
            let public: Vec<SocketAddr> = all
                .into_iter()
                .filter(is_public)
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if public.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses that are not public (loopback, private, link-local or special-purpose)")
                        .into();
                return Err(e);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The first address of a block, and the last.
    fn ends(block: Block) -> (IpAddr, IpAddr) {
        match block {
            Block::V4(net, len) => {
                let base = u32::from(net);
                let span = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                (
                    IpAddr::V4(Ipv4Addr::from(base)),
                    IpAddr::V4(Ipv4Addr::from(base | span)),
                )
            }
            Block::V6(net, len) => {
                let base = u128::from(net);
                let span = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                (
                    IpAddr::V6(Ipv6Addr::from(base)),
                    IpAddr::V6(Ipv6Addr::from(base | span)),
                )
            }
        }
    }

    /// The address just past a block's end (None at the end of the space).
    fn just_after(block: Block) -> Option<IpAddr> {
        match ends(block).1 {
            IpAddr::V4(last) => u32::from(last).checked_add(1).map(|n| IpAddr::V4(n.into())),
            IpAddr::V6(last) => u128::from(last)
                .checked_add(1)
                .map(|n| IpAddr::V6(n.into())),
        }
    }

    /// Walks the table: an address inside each row gets that row's verdict (an embedding row's
    /// verdict follows what it embeds), and the address just past each row is not that row's.
    #[test]
    fn every_row_of_the_table_decides_inside_and_not_outside() {
        for row in &SPECIAL {
            let (first, last) = ends(row.block);
            for inside in [first, last] {
                // The most specific row decides: a row may hold smaller rows at its ends.
                let decider = special(&inside).unwrap();
                assert!(
                    decider.block.prefix_len() >= row.block.prefix_len(),
                    "{}: {inside}",
                    row.name
                );
                if std::ptr::eq(decider, row) {
                    let public = is_public(&inside);
                    match row.verdict {
                        Verdict::Refused => assert!(!public, "{}: {inside}", row.name),
                        Verdict::Embeds(how) => {
                            let IpAddr::V6(v6) = inside else {
                                panic!("{}", row.name)
                            };
                            let inner = IpAddr::V4(how.extract(&v6));
                            assert_eq!(public, is_public(&inner), "{}: {inside}", row.name);
                        }
                    }
                }
            }
            // Just outside: never this row.
            if let Some(after) = just_after(row.block) {
                assert!(!row.block.contains(&after), "{}: {after}", row.name);
                let decider = special(&after);
                assert!(
                    decider.is_none_or(|d| !std::ptr::eq(d, row)),
                    "{}: {after} is decided by it",
                    row.name
                );
            }
        }
    }

    #[test]
    fn the_registry_blocks_are_not_public() {
        for s in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.9",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a01:203",
            "64:ff9b::7f00:1",
            "64:ff9b:1::5db8:d822",
            "100::1",
            "2001::1",
            "2001:1::1",
            "2001:db8::1",
            "2002:a01:203::1",
            "2002:7f00:1::",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "::127.0.0.1",
            "::10.1.2.3",
            "4000::1",
            "1fff::1",
        ] {
            assert!(!is_public(&ip(s)), "{s} was judged public");
        }
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_by_what_they_embed() {
        // 10.1.2.3 three ways, 93.184.216.34 (public) three ways.
        assert_eq!(
            not_public_because(&ip("64:ff9b::a01:203")).unwrap(),
            "NAT64 (64:ff9b::/96), embedding 10.1.2.3: private-use (10.0.0.0/8)"
        );
        assert!(not_public_because(&ip("2002:a01:203::1"))
            .unwrap()
            .contains("embedding 10.1.2.3"));
        assert!(not_public_because(&ip("::127.0.0.1"))
            .unwrap()
            .contains("embedding 127.0.0.1"));
        for public in [
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "::ffff:93.184.216.34",
        ] {
            assert!(is_public(&ip(public)), "{public}");
        }
        // Teredo: server 65.54.227.120, client 10.1.2.3 obfuscated (xor all ones) = f5fe:fdfc.
        let teredo_private = ip("2001:0:4136:e378:8000:63bf:f5fe:fdfc");
        assert!(not_public_because(&teredo_private)
            .unwrap()
            .contains("embedding 10.1.2.3"));
        // Client 93.184.216.34 obfuscated = a247:27dd.
        assert!(is_public(&ip("2001:0:4136:e378:8000:63bf:a247:27dd")));
    }

    #[test]
    fn public_addresses_stay_public() {
        for s in [
            "93.184.216.34",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1",
            "2a01:4f8::1",
            "2001:200::1",
            "2003::1",
        ] {
            assert!(is_public(&ip(s)), "{s} was judged not public");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_does_not_resolve() {
        let resolved = PublicOnlyResolver
            .resolve("localhost".parse().unwrap())
            .await;
        assert!(resolved.is_err());
    }

    #[tokio::test]
    async fn an_overridden_name_resolves_as_told_and_is_still_filtered() {
        override_resolution(
            "nat64-unit.test",
            vec![ip("64:ff9b::a01:203"), ip("2002:a01:203::1")],
        );
        assert_eq!(lookup("nat64-unit.test", 443).await.unwrap().len(), 2);
        let resolved = PublicOnlyResolver
            .resolve("nat64-unit.test".parse().unwrap())
            .await;
        assert!(resolved.is_err());
        assert_eq!(connect_lookups("nat64-unit.test"), 1);
    }
}
