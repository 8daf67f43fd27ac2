//! The header names of every signature scheme, and the allocation-free parsers of their values.

use http::HeaderName;

/// `x-nopos-signature`: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`.
pub const NOPOS_SIGNATURE: HeaderName = HeaderName::from_static("x-nopos-signature");
/// `webhook-id` (Standard Webhooks): the message id, the event id for NoPOS deliveries.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// `webhook-timestamp` (Standard Webhooks): Unix seconds.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// `webhook-signature` (Standard Webhooks): space-separated `v1,<base64>` entries.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// `stripe-signature`: same construction and format as `x-nopos-signature`.
pub const STRIPE_SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");
/// `x-hub-signature-256` (GitHub): `sha256=<hex>` over the body, no timestamp.
pub const GITHUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
/// `x-shopify-hmac-sha256` (Shopify): base64 over the body, no timestamp.
pub const SHOPIFY_HMAC_SHA256: HeaderName = HeaderName::from_static("x-shopify-hmac-sha256");

/// Strips ASCII spaces and tabs from both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parses plain decimal Unix seconds (optional leading `-`, at most 18 digits so it cannot
/// overflow); `None` for anything else.
pub(crate) fn parse_unix_seconds(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if negative { -value } else { value })
}

/// The parts of a `t=…,v1=…` header (NoPOS and Stripe), parsed without allocating.
pub(crate) struct TimestampedHeader<'a> {
    /// The `t` value, when present and valid.
    pub(crate) timestamp: Option<i64>,
    value: &'a [u8],
}

impl<'a> TimestampedHeader<'a> {
    /// Splits the header into entries; entries with other keys (`v0`, future versions) and
    /// malformed entries are skipped, whitespace around entries is ignored.
    pub(crate) fn parse(value: &'a [u8]) -> TimestampedHeader<'a> {
        let mut timestamp = None;
        for (key, val) in entries(value) {
            if key == b"t" {
                // More than one `t` is ambiguous: refuse the header rather than pick one.
                if timestamp.is_some() {
                    return TimestampedHeader {
                        timestamp: None,
                        value,
                    };
                }
                timestamp = parse_unix_seconds(val);
                if timestamp.is_none() {
                    return TimestampedHeader {
                        timestamp: None,
                        value,
                    };
                }
            }
        }
        TimestampedHeader { timestamp, value }
    }

    /// The `v1` signatures that decode to 32 bytes of hex; others are skipped.
    pub(crate) fn v1_signatures(&self) -> impl Iterator<Item = [u8; super::TAG_LEN]> + 'a {
        entries(self.value)
            .filter(|(key, _)| *key == b"v1")
            .filter_map(|(_, val)| decode_hex_tag(val))
    }
}

/// `key=value` entries of a comma-separated header, trimmed; entries without `=` are skipped.
fn entries(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|&b| b == b',').filter_map(|entry| {
        let entry = trim(entry);
        let eq = entry.iter().position(|&b| b == b'=')?;
        Some((trim(&entry[..eq]), trim(&entry[eq + 1..])))
    })
}

/// 64 lowercase hex digits into a tag; `None` for anything else. Uppercase is refused because
/// every producer writes lowercase, and accepting both would let a flipped case bit still verify.
pub(crate) fn decode_hex_tag(hex_digits: &[u8]) -> Option<[u8; super::TAG_LEN]> {
    if !hex_digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut tag = [0u8; super::TAG_LEN];
    hex::decode_to_slice(hex_digits, &mut tag).ok()?;
    Some(tag)
}

/// Standard base64 (padded or not) of exactly 32 bytes into a tag; `None` for anything else.
pub(crate) fn decode_base64_tag(encoded: &[u8]) -> Option<[u8; super::TAG_LEN]> {
    use base64::Engine as _;
    use base64::engine::general_purpose::GeneralPurpose;
    use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // 32 bytes are 43–44 characters; anything longer cannot be a tag.
    if encoded.len() > 44 {
        return None;
    }
    let mut buf = [0u8; 33];
    let len = LENIENT.decode_slice(encoded, &mut buf).ok()?;
    if len != super::TAG_LEN {
        return None;
    }
    let mut tag = [0u8; super::TAG_LEN];
    tag.copy_from_slice(&buf[..super::TAG_LEN]);
    Some(tag)
}

/// `v1,<base64>` entries of a `webhook-signature` header (space-separated); other versions and
/// malformed entries are skipped.
pub(crate) fn standard_v1_signatures(value: &[u8]) -> impl Iterator<Item = [u8; super::TAG_LEN]> {
    value
        .split(|&b| b == b' ' || b == b'\t')
        .filter_map(|entry| entry.strip_prefix(b"v1,"))
        .filter_map(decode_base64_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamped_header_parsing() {
        let h = TimestampedHeader::parse(
            b" t=1700000000 , v0=ab, v1=zz, junk ,v1=0000000000000000000000000000000000000000000000000000000000000000",
        );
        assert_eq!(h.timestamp, Some(1_700_000_000));
        assert_eq!(h.v1_signatures().count(), 1);
        assert_eq!(TimestampedHeader::parse(b"t=1,t=2,v1=00").timestamp, None);
        assert_eq!(TimestampedHeader::parse(b"t=abc").timestamp, None);
        assert_eq!(TimestampedHeader::parse(b"v1=00").timestamp, None);
        assert_eq!(parse_unix_seconds(b"9999999999999999999"), None);
        assert_eq!(parse_unix_seconds(b"-5"), Some(-5));
        assert_eq!(parse_unix_seconds(b"+5"), None);
    }

    #[test]
    fn trim_handles_edges() {
        assert_eq!(trim(b""), b"");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b" a b "), b"a b");
    }
}
