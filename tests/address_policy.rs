//! The address policy (SSRF guard) over a table of addresses and URLs, including the numeric
//! host forms that WHATWG URL parsers (and so reqwest) read as IPv4 addresses.

use std::net::IpAddr;

use nopos_webhooks::{
    AddressPolicy, BlockedTarget, EndpointUrl, HostCheck, HostError, NonPublicReason as R, UrlError,
};

/// What the default policy decides about an input.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refused with this reason.
    Blocked(R),
    /// An allowed IP literal.
    Public,
    /// A hostname, left to connect time.
    Resolve,
    /// Not even a valid endpoint URL.
    InvalidUrl,
}
use Expect::{Blocked, InvalidUrl, Public, Resolve};

const TABLE: &[(&str, Expect)] = &[
    // --- IPv4 ---
    ("0.0.0.0", Blocked(R::Unspecified)),
    ("0.1.2.3", Blocked(R::ThisNetwork)),
    ("127.0.0.1", Blocked(R::Loopback)),
    ("127.255.255.254", Blocked(R::Loopback)),
    ("10.0.0.1", Blocked(R::Private)),
    ("172.16.0.1", Blocked(R::Private)),
    ("172.31.255.255", Blocked(R::Private)),
    ("172.32.0.1", Public),
    ("192.168.1.1", Blocked(R::Private)),
    ("100.64.0.1", Blocked(R::SharedAddressSpace)),
    ("100.127.255.255", Blocked(R::SharedAddressSpace)),
    ("100.128.0.1", Public),
    ("169.254.169.254", Blocked(R::LinkLocal)),
    ("192.0.0.8", Blocked(R::ProtocolAssignment)),
    ("192.0.2.10", Blocked(R::Documentation)),
    ("198.51.100.7", Blocked(R::Documentation)),
    ("203.0.113.9", Blocked(R::Documentation)),
    ("198.18.0.1", Blocked(R::Benchmarking)),
    ("198.19.255.255", Blocked(R::Benchmarking)),
    ("192.88.99.1", Blocked(R::Reserved)),
    ("224.0.0.1", Blocked(R::Multicast)),
    ("239.255.255.250", Blocked(R::Multicast)),
    ("240.0.0.1", Blocked(R::Reserved)),
    ("255.255.255.255", Blocked(R::Broadcast)),
    ("8.8.8.8", Public),
    ("93.184.215.14", Public),
    // --- IPv6 ---
    ("::", Blocked(R::Unspecified)),
    ("::1", Blocked(R::Loopback)),
    ("::ffff:127.0.0.1", Blocked(R::Loopback)),
    ("::ffff:169.254.169.254", Blocked(R::LinkLocal)),
    ("::ffff:8.8.8.8", Public),
    ("::127.0.0.1", Blocked(R::Loopback)),
    ("::ffff:0:10.1.2.3", Blocked(R::Private)),
    ("64:ff9b::a9fe:a9fe", Blocked(R::LinkLocal)),
    ("64:ff9b::808:808", Public),
    ("64:ff9b:1::1", Blocked(R::LocalTranslation)),
    ("2002:7f00:1::", Blocked(R::Loopback)),
    ("2002:0808:0808::1", Public),
    ("fd00::1", Blocked(R::UniqueLocal)),
    ("fc00::1", Blocked(R::UniqueLocal)),
    ("fe80::1", Blocked(R::LinkLocal)),
    ("fec0::1", Blocked(R::SiteLocal)),
    ("ff02::1", Blocked(R::Multicast)),
    ("100::1", Blocked(R::Discard)),
    ("2001:db8::1", Blocked(R::Documentation)),
    ("3fff::1", Blocked(R::Documentation)),
    ("2001:2::1", Blocked(R::Benchmarking)),
    ("2001::1", Blocked(R::ProtocolAssignment)),
    ("4000::1", Blocked(R::Reserved)),
    ("2606:4700:4700::1111", Public),
    // --- URLs ---
    ("http://[::ffff:127.0.0.1]/", Blocked(R::Loopback)),
    ("http://0x7f.1/", Blocked(R::Loopback)),
    ("http://0X7F.0.0.1/", Blocked(R::Loopback)),
    ("http://2130706433/", Blocked(R::Loopback)),
    ("http://0177.0.0.1/", Blocked(R::Loopback)),
    ("http://127.1/", Blocked(R::Loopback)),
    ("http://127.0.0.1./", Blocked(R::Loopback)),
    ("http://0/", Blocked(R::Unspecified)),
    ("http://0xa9fea9fe/", Blocked(R::LinkLocal)),
    ("http://169.254.169.254/latest", Blocked(R::LinkLocal)),
    (
        "http://169.254.169.254:80/latest/meta-data/",
        Blocked(R::LinkLocal),
    ),
    ("http://[fd00::1]/", Blocked(R::UniqueLocal)),
    ("http://[64:ff9b::a9fe:a9fe]/", Blocked(R::LinkLocal)),
    ("http://[2002:7f00:1::]/", Blocked(R::Loopback)),
    ("http://[::1]:8080/hooks", Blocked(R::Loopback)),
    ("http://10.0.0.1:8080/", Blocked(R::Private)),
    ("http://localhost/", Blocked(R::Loopback)),
    ("http://api.localhost:3000/", Blocked(R::Loopback)),
    ("https://93.184.215.14/", Public),
    ("https://[2606:4700:4700::1111]/hooks", Public),
    ("https://example.com/", Resolve),
    ("https://your-app.com/webhooks/nopos", Resolve),
    ("https://127.0.0.1.nip.io/", Resolve),
    ("https://localhost.example.com/", Resolve),
    ("http://1.2.3.4.5/", InvalidUrl),
    ("http://256.0.0.1/", InvalidUrl),
    ("http://09/", InvalidUrl),
    ("http://1..1/", InvalidUrl),
    ("http://[fe80::1%25eth0]/", InvalidUrl),
    ("http://%31%32%37.0.0.1/", InvalidUrl),
];

fn decide(policy: &AddressPolicy, input: &str) -> Expect {
    let result = if input.contains("://") {
        let Ok(url) = EndpointUrl::parse(input) else {
            return InvalidUrl;
        };
        policy.check_url(&url)
    } else {
        let ip: IpAddr = input.parse().expect("table addresses parse");
        policy.check_ip(ip).map(|()| HostCheck::Allowed(ip))
    };
    match result {
        Ok(HostCheck::Allowed(_)) => Public,
        Ok(HostCheck::ResolveThenCheck) => Resolve,
        Ok(other) => panic!("unexpected {other:?}"),
        Err(blocked) => Blocked(blocked.reason().expect("every refusal has a reason")),
    }
}

#[test]
fn default_policy_table() {
    assert!(TABLE.len() >= 40, "the issue asks for at least 40 rows");
    let policy = AddressPolicy::default();
    let mut failures = Vec::new();
    for (input, expected) in TABLE {
        let got = decide(&policy, input);
        if &got != expected {
            failures.push(format!("{input}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn dangerous_opt_in_allows_private_unicast_only() {
    let policy = AddressPolicy::new().dangerous_allow_private_targets();
    assert!(policy.allows_private_targets());
    assert!(!AddressPolicy::new().allows_private_targets());
    for (input, expected) in TABLE {
        let got = decide(&policy, input);
        let want = match expected {
            Blocked(reason) if reason.is_private_unicast() => {
                if input.contains("localhost") {
                    Resolve
                } else {
                    Public
                }
            }
            other => other.clone(),
        };
        assert_eq!(got, want, "{input}");
    }
    // Never a sensible target, even for local development.
    for still_refused in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
        assert!(
            policy.check_ip(still_refused.parse().unwrap()).is_err(),
            "{still_refused}"
        );
    }
}

#[test]
fn refusals_name_the_address_and_reason() {
    let err = AddressPolicy::default()
        .check_ip("169.254.169.254".parse().unwrap())
        .unwrap_err();
    assert_eq!(
        err,
        BlockedTarget::NonPublicAddress {
            address: "169.254.169.254".parse().unwrap(),
            reason: R::LinkLocal
        }
    );
    assert_eq!(
        err.to_string(),
        "address 169.254.169.254 is not allowed: link-local"
    );
}

#[test]
fn numeric_host_url_errors_are_typed() {
    assert!(matches!(
        EndpointUrl::parse("http://1.2.3.4.5/"),
        Err(UrlError::InvalidHost(HostError::InvalidIpv4(_)))
    ));
    // The URL keeps its text; its host is the address a client will connect to.
    let url = EndpointUrl::parse("http://0x7f.1/hooks").unwrap();
    assert_eq!(url.as_str(), "http://0x7f.1/hooks");
    assert_eq!(url.host().ip(), Some("127.0.0.1".parse().unwrap()));
}
