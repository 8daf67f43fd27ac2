//! The address policy: which network addresses deliveries may be sent to.
//!
//! This module owns the SSRF guard of DESIGN §4. It is pure: it classifies addresses and URL hosts
//! handed to it, and never resolves a name or opens a socket. Adapters call it twice:
//!
//! 1. at registration, on the URL's host ([`AddressPolicy::check_host`]): an IP literal is decided
//!    there and then, a hostname is left to step 2;
//! 2. at connect time, on **every** address the resolver returned for the host
//!    ([`AddressPolicy::check_ip`]), so that a name that resolved to a public address at
//!    registration and to `127.0.0.1` later (DNS rebinding) is still refused.
//!
//! # Numeric hosts
//! HTTP clients built on the WHATWG URL standard (browsers, the `url` crate that reqwest uses)
//! read `http://0x7f.1/`, `http://2130706433/`, `http://0177.0.0.1/` and `http://127.1/` as
//! `127.0.0.1`, and never ask DNS about them. A check that treated those hosts as names would
//! pass them through to a resolver-based guard that is never consulted, so this module parses
//! such hosts exactly as the WHATWG IPv4 parser does ([`parse_ipv4_host`]) and classifies the
//! resulting address; a host whose last label is numeric but which is not a valid WHATWG IPv4
//! address is refused outright, since no client would send it anywhere we could predict.
//!
//! # What counts as public
//! Conservatively, only global unicast: every special-purpose block of the IANA IPv4 and IPv6
//! registries is refused, including blocks some of whose addresses are technically routable
//! (`192.0.0.0/24`, `2001::/23`), because none of them is a plausible webhook receiver. IPv6
//! addresses that embed an IPv4 address (mapped `::ffff:0:0/96`, compatible `::/96`, translated
//! `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classified by the embedded
//! address, because that is where a packet to them ends up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast address. See [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NonPublicReason {
    /// `0.0.0.0` or `::`: "any address"; connecting to it reaches the local host on Linux.
    Unspecified,
    /// `0.0.0.0/8`, "this network" (RFC 791); like `0.0.0.0`, it reaches the local host.
    ThisNetwork,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT shared space (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` (including the cloud metadata service `169.254.169.254`) or `fe80::/10`.
    LinkLocal,
    /// `192.0.0.0/24`, IETF protocol assignments (RFC 6890), or `2001::/23`, its IPv6
    /// counterpart (Teredo, ORCHID, AMT, …).
    ProtocolAssignment,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` or `2001:2::/48`, network benchmarking (RFC 2544, RFC 5180).
    Benchmarking,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4` (future use), the former 6to4 relay anycast `192.88.99.0/24`, or IPv6
    /// outside the global unicast `2000::/3` not named by another reason.
    Reserved,
    /// `fc00::/7`, IPv6 unique local addresses (RFC 4193).
    UniqueLocal,
    /// `fec0::/10`, deprecated IPv6 site-local addresses.
    SiteLocal,
    /// `100::/64`, the IPv6 discard prefix (RFC 6666).
    Discard,
    /// `64:ff9b:1::/48`, NAT64 prefix for local use (RFC 8215): translated inside one network.
    LocalTranslation,
}

impl NonPublicReason {
    /// A short lowercase description, such as `loopback` or `private network`.
    pub fn description(self) -> &'static str {
        match self {
            NonPublicReason::Unspecified => "unspecified address",
            NonPublicReason::ThisNetwork => "this-network address",
            NonPublicReason::Loopback => "loopback",
            NonPublicReason::Private => "private network",
            NonPublicReason::SharedAddressSpace => "carrier-grade nat shared space",
            NonPublicReason::LinkLocal => "link-local",
            NonPublicReason::ProtocolAssignment => "ietf protocol assignment",
            NonPublicReason::Documentation => "documentation range",
            NonPublicReason::Benchmarking => "benchmarking range",
            NonPublicReason::Multicast => "multicast",
            NonPublicReason::Broadcast => "broadcast",
            NonPublicReason::Reserved => "reserved range",
            NonPublicReason::UniqueLocal => "unique local address",
            NonPublicReason::SiteLocal => "site-local address",
            NonPublicReason::Discard => "discard prefix",
            NonPublicReason::LocalTranslation => "local-use nat64 prefix",
        }
    }

    /// Whether [`AddressPolicy::dangerous_allow_private_targets`] lifts this reason: every
    /// unicast range does; unspecified, this-network, multicast and broadcast addresses are
    /// never a sensible place to send a request and stay refused.
    pub fn is_private_unicast(self) -> bool {
        !matches!(
            self,
            NonPublicReason::Unspecified
                | NonPublicReason::ThisNetwork
                | NonPublicReason::Multicast
                | NonPublicReason::Broadcast
        )
    }
}

impl fmt::Display for NonPublicReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// Classifies `ip`: `Ok(())` for a public unicast address, otherwise why it is not one.
///
/// ```
/// use nopos_webhooks::{NonPublicReason, net};
///
/// assert_eq!(net::classify("93.184.215.14".parse()?), Ok(()));
/// assert_eq!(net::classify("169.254.169.254".parse()?), Err(NonPublicReason::LinkLocal));
/// // IPv4-mapped IPv6 is classified by the IPv4 address inside it.
/// assert_eq!(net::classify("::ffff:127.0.0.1".parse()?), Err(NonPublicReason::Loopback));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn classify(ip: IpAddr) -> Result<(), NonPublicReason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classifies an IPv4 address; see [`classify`].
pub fn classify_v4(ip: Ipv4Addr) -> Result<(), NonPublicReason> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip.is_unspecified() => NonPublicReason::Unspecified,
        _ if ip.is_broadcast() => NonPublicReason::Broadcast,
        (0, _, _) => NonPublicReason::ThisNetwork,
        (127, _, _) => NonPublicReason::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => NonPublicReason::Private,
        (100, 64..=127, _) => NonPublicReason::SharedAddressSpace,
        (169, 254, _) => NonPublicReason::LinkLocal,
        (192, 0, 0) => NonPublicReason::ProtocolAssignment,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => NonPublicReason::Documentation,
        (198, 18..=19, _) => NonPublicReason::Benchmarking,
        (192, 88, 99) | (240..=255, _, _) => NonPublicReason::Reserved,
        (224..=239, _, _) => NonPublicReason::Multicast,
        _ => return Ok(()),
    };
    Err(reason)
}

/// Classifies an IPv6 address; see [`classify`].
pub fn classify_v6(ip: Ipv6Addr) -> Result<(), NonPublicReason> {
    if ip.is_unspecified() {
        return Err(NonPublicReason::Unspecified);
    }
    if ip.is_loopback() {
        return Err(NonPublicReason::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let reason = match s {
        [0x0100, 0, 0, 0, ..] => NonPublicReason::Discard,
        [0x0064, 0xff9b, 0x0001, ..] => NonPublicReason::LocalTranslation,
        [0x2001, 0x0002, 0, ..] => NonPublicReason::Benchmarking,
        [0x2001, 0x0db8, ..] | [0x3fff, 0x0000..=0x0fff, ..] => NonPublicReason::Documentation,
        [0x2001, 0x0000..=0x01ff, ..] => NonPublicReason::ProtocolAssignment,
        [0xfc00..=0xfdff, ..] => NonPublicReason::UniqueLocal,
        [0xfe80..=0xfebf, ..] => NonPublicReason::LinkLocal,
        [0xfec0..=0xfeff, ..] => NonPublicReason::SiteLocal,
        [0xff00..=0xffff, ..] => NonPublicReason::Multicast,
        // Everything outside global unicast 2000::/3 is unassigned or special.
        [first, ..] if first & 0xe000 != 0x2000 => NonPublicReason::Reserved,
        _ => return Ok(()),
    };
    Err(reason)
}

/// The IPv4 address a packet to `ip` really goes to, for the IPv6 forms that embed one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    match ip.segments() {
        // ::a.b.c.d (deprecated IPv4-compatible), ::ffff:a.b.c.d (mapped),
        // ::ffff:0:a.b.c.d (SIIT translated), 64:ff9b::a.b.c.d (well-known NAT64 prefix).
        [0, 0, 0, 0, 0, 0 | 0xffff, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(Ipv4Addr::new(o[12], o[13], o[14], o[15])),
        // 2002:AABB:CCDD::/48, 6to4: the IPv4 address sits right after the prefix.
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Why [`parse_ipv4_host`] refused a numeric host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ipv4HostError {
    /// The host has more than four dot-separated parts.
    #[error("numeric host has more than four parts")]
    TooManyParts,
    /// A part is empty or not a decimal, `0x` hexadecimal or `0`-octal number.
    #[error("numeric host has a part that is not a number")]
    InvalidPart,
    /// A part is too large for its position (over 255, or the last part over what remains).
    #[error("numeric host has a part out of range")]
    OutOfRange,
}

/// Reads `host` the way the WHATWG URL standard's IPv4 parser does, which is how browsers and
/// the `url` crate (and so reqwest) read it.
///
/// Returns `Ok(None)` when the host is a domain name (its last label is not numeric), the IPv4
/// address when it is a numeric host, and an error when it ends in a number but is not a valid
/// address (`1.2.3.4.5`, `09`, `256.1.1.1`). The host is expected lowercase (URL hosts are
/// case-insensitive; [`crate::EndpointUrl`] lowercases them) and not percent-encoded.
///
/// ```
/// use std::net::Ipv4Addr;
/// use nopos_webhooks::net::parse_ipv4_host;
///
/// for host in ["127.0.0.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.1", "127.0.0.1."] {
///     assert_eq!(parse_ipv4_host(host), Ok(Some(Ipv4Addr::LOCALHOST)), "{host}");
/// }
/// assert_eq!(parse_ipv4_host("example.com"), Ok(None));
/// assert!(parse_ipv4_host("1.2.3.4.5").is_err());
/// ```
pub fn parse_ipv4_host(host: &str) -> Result<Option<Ipv4Addr>, Ipv4HostError> {
    let mut parts: Vec<&str> = host.split('.').collect();
    // A single trailing dot is allowed (`127.0.0.1.`); the empty label after it is dropped.
    if parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    let Some(last) = parts.last() else {
        return Ok(None);
    };
    let ends_in_number =
        !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || ipv4_number(last).is_ok());
    if !ends_in_number {
        return Ok(None);
    }
    if parts.len() > 4 {
        return Err(Ipv4HostError::TooManyParts);
    }
    let mut numbers = [0u64; 4];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        *slot = ipv4_number(part)?;
    }
    let count = parts.len();
    let (init, last) = (&numbers[..count - 1], numbers[count - 1]);
    if init.iter().any(|&n| n > 255) {
        return Err(Ipv4HostError::OutOfRange);
    }
    // The last part fills every byte the earlier parts did not: 4 bytes alone, 1 byte of four.
    let last_bits = 8 * (5 - count);
    if last >= 1u64 << last_bits {
        return Err(Ipv4HostError::OutOfRange);
    }
    let mut address = last;
    for (i, &n) in init.iter().enumerate() {
        address += n << (8 * (3 - i));
    }
    Ok(Some(Ipv4Addr::from(
        u32::try_from(address).map_err(|_| Ipv4HostError::OutOfRange)?,
    )))
}

/// One part of a WHATWG IPv4 host: decimal, `0x`/`0X` hexadecimal or `0`-prefixed octal.
/// Values beyond `u64` saturate, which is out of range for every position anyway.
fn ipv4_number(part: &str) -> Result<u64, Ipv4HostError> {
    if part.is_empty() {
        return Err(Ipv4HostError::InvalidPart);
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    let mut value: u64 = 0;
    for c in digits.chars() {
        let digit = c.to_digit(radix).ok_or(Ipv4HostError::InvalidPart)?;
        value = value
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(digit));
    }
    Ok(value)
}

/// A URL host, as an HTTP client will read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Host {
    /// A domain name, lowercase, without a trailing dot; decided only once it is resolved.
    Domain(String),
    /// An IP address literal: dotted or otherwise numeric IPv4, or bracketed IPv6.
    Ip(IpAddr),
}

impl Host {
    /// Parses a URL's host: `[v6]` literals, WHATWG numeric IPv4 hosts, or a domain name of
    /// ASCII letters, digits, `-` and `_` in dot-separated labels. Case is ignored.
    ///
    /// # Errors
    /// [`HostError`] saying what is wrong.
    pub fn parse(host: &str) -> Result<Host, HostError> {
        if host.is_empty() {
            return Err(HostError::Empty);
        }
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
            // Zone ids (`%25eth0`) fail here on purpose: they only name local interfaces.
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| HostError::InvalidIpv6);
        }
        if host.len() > MAX_HOST_LEN {
            return Err(HostError::TooLong);
        }
        // Percent-encoding is refused rather than decoded: `%31%32%37.0.0.1` is 127.0.0.1 to a
        // WHATWG parser, and only a narrow alphabet leaves no such second reading.
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(HostError::InvalidCharacter);
        }
        let lower = host.to_ascii_lowercase();
        if let Some(ip) = parse_ipv4_host(&lower)? {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.split('.').any(str::is_empty) {
            return Err(HostError::EmptyLabel);
        }
        Ok(Host::Domain(name.to_owned()))
    }

    /// The IP address, for a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The longest host name accepted (DNS names are at most 253 characters).
pub const MAX_HOST_LEN: usize = 253;

/// Why a URL host could not be read. See [`Host::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The host is empty.
    #[error("host is empty")]
    Empty,
    /// Longer than [`MAX_HOST_LEN`] characters.
    #[error("host is longer than {MAX_HOST_LEN} characters")]
    TooLong,
    /// A character other than ASCII letters, digits, `-`, `_` and `.` (percent-encoding and
    /// non-ASCII names included; use the `xn--` form of internationalized names).
    #[error("host may only contain ascii letters, digits, '-', '_' and '.'")]
    InvalidCharacter,
    /// Two dots in a row, or a leading dot.
    #[error("host has an empty label")]
    EmptyLabel,
    /// Bracketed, but not a valid IPv6 address (zone ids are not accepted).
    #[error("host is not a valid bracketed ipv6 address")]
    InvalidIpv6,
    /// The last label is numeric, so HTTP clients read the host as IPv4, but it is not a valid
    /// IPv4 address.
    #[error("numeric host is not a valid ipv4 address: {0}")]
    InvalidIpv4(#[from] Ipv4HostError),
}

/// Which addresses deliveries may go to.
///
/// # Default
/// Only public unicast addresses ([`classify`]); hostnames named `localhost` or ending in
/// `.localhost` are refused too, because resolvers answer them with loopback by convention
/// (RFC 6761) without asking DNS.
///
/// Local development, and deployments that deliver inside a private network on purpose, opt in
/// with [`AddressPolicy::dangerous_allow_private_targets`].
///
/// ```
/// use nopos_webhooks::{AddressPolicy, EndpointUrl, HostCheck, NonPublicReason};
///
/// let policy = AddressPolicy::default();
/// let url = EndpointUrl::parse("http://0x7f.1/hooks")?;
/// assert_eq!(
///     policy.check_url(&url).unwrap_err().reason(),
///     Some(NonPublicReason::Loopback),
/// );
/// // A hostname is decided at connect time, on each address it resolves to.
/// let url = EndpointUrl::parse("https://example.com/hooks")?;
/// assert_eq!(policy.check_url(&url)?, HostCheck::ResolveThenCheck);
/// assert!(policy.check_ip("10.0.0.7".parse()?).is_err());
///
/// let local = AddressPolicy::default().dangerous_allow_private_targets();
/// assert!(local.check_ip("10.0.0.7".parse()?).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// Not `Copy`: allow-lists of named hosts or ranges are likely additions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow_private: bool,
}

/// What [`AddressPolicy::check_url`] decided about a URL that it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostCheck {
    /// The host is an IP literal the policy allows; no DNS is involved.
    Allowed(IpAddr),
    /// The host is a name: resolve it, and call [`AddressPolicy::check_ip`] on every address
    /// before connecting to any of them.
    ResolveThenCheck,
}

/// Why the [`AddressPolicy`] refused a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockedTarget {
    /// The address is not a public unicast address, and the policy does not allow it.
    #[error("address {address} is not allowed: {reason}")]
    NonPublicAddress {
        /// The refused address.
        address: IpAddr,
        /// Why it is not public.
        reason: NonPublicReason,
    },
    /// The host is `localhost` or a `.localhost` name, which resolvers map to loopback.
    #[error("host {0} is a localhost name")]
    LocalhostName(String),
}

impl BlockedTarget {
    /// The address classification behind the refusal; [`NonPublicReason::Loopback`] for
    /// localhost names.
    pub fn reason(&self) -> Option<NonPublicReason> {
        match self {
            BlockedTarget::NonPublicAddress { reason, .. } => Some(*reason),
            BlockedTarget::LocalhostName(_) => Some(NonPublicReason::Loopback),
        }
    }
}

impl AddressPolicy {
    /// The safe default: public unicast addresses only.
    pub fn new() -> AddressPolicy {
        AddressPolicy::default()
    }

    /// Also allows loopback, private, link-local (including the cloud metadata address
    /// `169.254.169.254`), CGNAT, unique-local and other non-public **unicast** addresses, and
    /// localhost names. Unspecified, multicast and broadcast addresses stay refused.
    ///
    /// Dangerous: anyone who can register an endpoint can then make the dispatcher send POST
    /// requests into its own network. Use it for local development, or when only trusted
    /// operators register endpoints.
    #[must_use]
    pub fn dangerous_allow_private_targets(mut self) -> AddressPolicy {
        self.allow_private = true;
        self
    }

    /// Whether private targets are allowed.
    pub fn allows_private_targets(&self) -> bool {
        self.allow_private
    }

    /// Checks one address: at connect time, call it on every address the resolver returned.
    ///
    /// # Errors
    /// [`BlockedTarget::NonPublicAddress`] when the policy refuses the address.
    pub fn check_ip(&self, address: IpAddr) -> Result<(), BlockedTarget> {
        match classify(address) {
            Ok(()) => Ok(()),
            Err(reason) if self.allow_private && reason.is_private_unicast() => Ok(()),
            Err(reason) => Err(BlockedTarget::NonPublicAddress { address, reason }),
        }
    }

    /// Checks a parsed host: IP literals are decided, names other than localhost names are left
    /// to [`HostCheck::ResolveThenCheck`].
    ///
    /// # Errors
    /// [`BlockedTarget`] when the policy refuses the host.
    pub fn check_host(&self, host: &Host) -> Result<HostCheck, BlockedTarget> {
        match host {
            Host::Ip(ip) => self.check_ip(*ip).map(|()| HostCheck::Allowed(*ip)),
            Host::Domain(name) => {
                let localhost = name == "localhost" || name.ends_with(".localhost");
                if localhost && !self.allow_private {
                    Err(BlockedTarget::LocalhostName(name.clone()))
                } else {
                    Ok(HostCheck::ResolveThenCheck)
                }
            }
        }
    }

    /// Checks an endpoint URL's host; call it at registration (and whenever a URL changes).
    ///
    /// # Errors
    /// [`BlockedTarget`] when the policy refuses the host.
    pub fn check_url(&self, url: &crate::EndpointUrl) -> Result<HostCheck, BlockedTarget> {
        self.check_host(url.host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatwg_ipv4_forms() {
        type Expected = Result<Option<[u8; 4]>, Ipv4HostError>;
        let cases: &[(&str, Expected)] = &[
            ("0", Ok(Some([0, 0, 0, 0]))),
            ("0x", Ok(Some([0, 0, 0, 0]))),
            ("0x7f.1", Ok(Some([127, 0, 0, 1]))),
            ("0X7F.0.0.1", Ok(Some([127, 0, 0, 1]))),
            ("017700000001", Ok(Some([127, 0, 0, 1]))),
            ("1.2.65535", Ok(Some([1, 2, 255, 255]))),
            ("4294967295", Ok(Some([255, 255, 255, 255]))),
            ("4294967296", Err(Ipv4HostError::OutOfRange)),
            ("1.2.65536", Err(Ipv4HostError::OutOfRange)),
            ("256.1.1.1", Err(Ipv4HostError::OutOfRange)),
            ("99999999999999999999999999", Err(Ipv4HostError::OutOfRange)),
            ("09", Err(Ipv4HostError::InvalidPart)),
            ("1..1", Err(Ipv4HostError::InvalidPart)),
            ("a.1", Err(Ipv4HostError::InvalidPart)),
            ("foo.0x", Err(Ipv4HostError::InvalidPart)),
            ("1.2.3.4.5", Err(Ipv4HostError::TooManyParts)),
            ("1.2.3.4.", Ok(Some([1, 2, 3, 4]))),
            ("example.com", Ok(None)),
            ("1.2.3.x", Ok(None)),
            ("0xg", Ok(None)),
            (".", Ok(None)),
        ];
        for (host, expected) in cases {
            let got = parse_ipv4_host(host).map(|ip| ip.map(|ip| ip.octets()));
            assert_eq!(&got, expected, "{host}");
        }
    }

    #[test]
    fn embedded_forms() {
        let cases = [
            ("::ffff:10.0.0.1", Err(NonPublicReason::Private)),
            ("::ffff:0:7f00:1", Err(NonPublicReason::Loopback)),
            ("::a9fe:a9fe", Err(NonPublicReason::LinkLocal)),
            ("64:ff9b::a9fe:a9fe", Err(NonPublicReason::LinkLocal)),
            ("64:ff9b::5db8:d70e", Ok(())),
            ("2002:c0a8:0101::1", Err(NonPublicReason::Private)),
            ("2002:5db8:d70e::1", Ok(())),
            ("::2", Err(NonPublicReason::ThisNetwork)),
        ];
        for (ip, expected) in cases {
            assert_eq!(classify(ip.parse().unwrap()), expected, "{ip}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("Example.COM."),
            Ok(Host::Domain("example.com".into()))
        );
        assert_eq!(Host::parse("a..b"), Err(HostError::EmptyLabel));
        assert_eq!(Host::parse("a%41"), Err(HostError::InvalidCharacter));
        assert_eq!(Host::parse("[fe80::1%25eth0]"), Err(HostError::InvalidIpv6));
        assert_eq!(Host::parse("[::1"), Err(HostError::InvalidIpv6));
        assert_eq!(Host::parse(""), Err(HostError::Empty));
        assert_eq!(
            Host::parse("1.2.3.4.5"),
            Err(HostError::InvalidIpv4(Ipv4HostError::TooManyParts))
        );
        assert_eq!(Host::parse("[::1]").unwrap().to_string(), "[::1]");
    }
}
