//! Where outbound requests (webhook deliveries) may go. A merchant chooses the URL, so
//! without this rule Tenure would send requests into the operator's own network: the
//! cloud metadata service, the database, an admin port. Only public unicast addresses
//! are allowed, unless the operator allows private targets for development
//! ([`TargetPolicy::AllowPrivate`]). The check applies to an address, however it was
//! spelt in the URL (the URL parser normalises `2130706433`, `0x7f000001` and `127.1`)
//! and to every address a name resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which addresses outbound requests may reach: an operator setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetPolicy {
    /// Public unicast addresses only (the default).
    #[default]
    PublicOnly,
    /// Any address, the operator's own network included: for development and tests,
    /// where receivers listen on 127.0.0.1.
    AllowPrivate,
}

impl TargetPolicy {
    /// The policy an operator's "allow private targets" switch stands for.
    pub fn allowing_private(allow: bool) -> Self {
        if allow {
            Self::AllowPrivate
        } else {
            Self::PublicOnly
        }
    }

    /// Why a request may not go to `ip` under this policy, or `None` when it may.
    pub fn refusal(self, ip: IpAddr) -> Option<NonPublic> {
        match self {
            Self::AllowPrivate => None,
            Self::PublicOnly => non_public(ip),
        }
    }

    /// Whether a host name is refused before any lookup: `localhost` and its
    /// subdomains always mean this machine (RFC 6761), whatever DNS says.
    pub fn refuses_name(self, host: &str) -> bool {
        self == Self::PublicOnly && is_local_name(host)
    }
}

/// The kind of non-public address a request was refused for. Its `Display` is the
/// wording an integrator reads ("a loopback address").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonPublic {
    Loopback,
    /// RFC 1918 and IPv6 unique local (fc00::/7) and site-local (fec0::/10) addresses.
    Private,
    LinkLocal,
    /// Carrier-grade NAT space, 100.64.0.0/10 (RFC 6598).
    Shared,
    /// 0.0.0.0/8 and `::`, which reach this machine when connected to.
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// Any other range set aside from the public internet (benchmarking, IETF protocol
    /// assignments, the old class E, the IPv6 discard prefix).
    Reserved,
}

impl std::fmt::Display for NonPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Shared => "a shared (carrier-grade NAT) address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved address",
        })
    }
}

/// `localhost`, `localhost.` and anything under `.localhost`, in any case.
pub fn is_local_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn non_public(ip: IpAddr) -> Option<NonPublic> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<NonPublic> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => NonPublic::Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => NonPublic::Private,
        (100, 64..=127, _) => NonPublic::Shared,
        (127, _, _) => NonPublic::Loopback,
        (169, 254, _) => NonPublic::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => NonPublic::Documentation,
        // IETF protocol assignments (192.0.0.0/24), the retired 6to4 relay anycast
        // (192.88.99.0/24) and benchmarking (198.18.0.0/15).
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => NonPublic::Reserved,
        (224..=239, _, _) => NonPublic::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => NonPublic::Broadcast,
        (240..=255, _, _) => NonPublic::Reserved,
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<NonPublic> {
    if ip.is_unspecified() {
        return Some(NonPublic::Unspecified);
    }
    if ip.is_loopback() {
        return Some(NonPublic::Loopback);
    }
    // An IPv4 address carried inside an IPv6 one reaches that IPv4 address: v4-mapped
    // (::ffff:a.b.c.d), the deprecated v4-compatible (::a.b.c.d), NAT64's well-known
    // prefix (64:ff9b::/96) and 6to4 (2002:aabb:ccdd::/48).
    if let Some(v4) = embedded_v4(ip) {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        0xfc00..=0xfdff => NonPublic::Private,
        0xfe80..=0xfebf => NonPublic::LinkLocal,
        0xfec0..=0xfeff => NonPublic::Private,
        0xff00..=0xffff => NonPublic::Multicast,
        0x2001 if s[1] == 0x0db8 => NonPublic::Documentation,
        // 3fff::/20, the second documentation prefix (RFC 9637).
        0x3fff if s[1] <= 0x0fff => NonPublic::Documentation,
        // The discard prefix 100::/64 and NAT64's local-use prefix 64:ff9b:1::/48.
        0x0100 if s[1..4] == [0, 0, 0] => NonPublic::Reserved,
        0x0064 if s[1] == 0xff9b && s[2] == 1 => NonPublic::Private,
        // Anything else under ::/8 (besides the forms above) is reserved by the IETF.
        0x0000 => NonPublic::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for, if it embeds one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(ip: &str) -> Option<NonPublic> {
        non_public(ip.parse().unwrap_or_else(|_| panic!("{ip} is an address")))
    }

    #[test]
    fn every_non_public_range_is_named() {
        use NonPublic::*;
        for (ip, expected) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Shared),
            ("100.127.255.254", Shared),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("169.254.169.254", LinkLocal),
            ("192.0.2.10", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.7", Documentation),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::1", Private),
            ("2002:7f00:1::1", Loopback),
            ("2002:c0a8:101::", Private),
            ("fd00::1", Private),
            ("fc00::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("100::1", Reserved),
            // v4-compatible: 0.0.0.2 is in "this network", 0.0.0.0/8.
            ("::2", Unspecified),
        ] {
            assert_eq!(kind(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn localhost_names_are_local_in_any_case_and_with_a_root_dot() {
        for name in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "api.localhost",
            "a.b.LocalHost.",
        ] {
            assert!(is_local_name(name), "{name}");
        }
        for name in [
            "localhost.example.com",
            "notlocalhost",
            "example.com",
            "localhostx",
        ] {
            assert!(!is_local_name(name), "{name}");
        }
    }

    #[test]
    fn allowing_private_targets_allows_every_address_and_name() {
        let policy = TargetPolicy::allowing_private(true);
        assert_eq!(policy.refusal("127.0.0.1".parse().unwrap()), None);
        assert_eq!(policy.refusal("fd00::1".parse().unwrap()), None);
        assert!(!policy.refuses_name("localhost"));
        let strict = TargetPolicy::allowing_private(false);
        assert_eq!(
            strict.refusal("127.0.0.1".parse().unwrap()),
            Some(NonPublic::Loopback)
        );
        assert!(strict.refuses_name("localhost"));
        assert_eq!(TargetPolicy::default(), strict);
    }

    proptest! {
        /// An IPv4 address refused or allowed is refused or allowed the same when it
        /// comes mapped into IPv6, or through NAT64's well-known prefix.
        #[test]
        fn an_embedded_ipv4_address_classifies_as_itself(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            let [a, b, c, d] = v4.octets();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0,
                u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            prop_assert_eq!(non_public(IpAddr::V6(v4.to_ipv6_mapped())), non_public(IpAddr::V4(v4)));
            prop_assert_eq!(non_public(IpAddr::V6(nat64)), non_public(IpAddr::V4(v4)));
        }
    }
}
