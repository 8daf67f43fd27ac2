//! The header names of every signature scheme, and the allocation-free parsers of their values.

use http::header::{GetAll, ValueIter};
use http::{HeaderMap, HeaderName, HeaderValue};

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

/// A header a verifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadHeader {
    NoPos,
    StandardSignature,
    Stripe,
    GitHub,
    Shopify,
    WebhookId,
    WebhookTimestamp,
}

/// How many [`ReadHeader`]s there are.
const READ_HEADERS: usize = 7;

impl ReadHeader {
    fn name(self) -> HeaderName {
        match self {
            ReadHeader::NoPos => NOPOS_SIGNATURE,
            ReadHeader::StandardSignature => WEBHOOK_SIGNATURE,
            ReadHeader::Stripe => STRIPE_SIGNATURE,
            ReadHeader::GitHub => GITHUB_SIGNATURE,
            ReadHeader::Shopify => SHOPIFY_HMAC_SHA256,
            ReadHeader::WebhookId => WEBHOOK_ID,
            ReadHeader::WebhookTimestamp => WEBHOOK_TIMESTAMP,
        }
    }

    fn of(name: &HeaderName) -> Option<ReadHeader> {
        Some(match name.as_str() {
            "x-nopos-signature" => ReadHeader::NoPos,
            "webhook-signature" => ReadHeader::StandardSignature,
            "stripe-signature" => ReadHeader::Stripe,
            "x-hub-signature-256" => ReadHeader::GitHub,
            "x-shopify-hmac-sha256" => ReadHeader::Shopify,
            "webhook-id" => ReadHeader::WebhookId,
            "webhook-timestamp" => ReadHeader::WebhookTimestamp,
            _ => return None,
        })
    }
}

/// The largest map [`HeaderLookup`] scans; larger ones are only ever searched by hash. Scanning
/// costs a few nanoseconds per header, so up to here it stays below the cost of the hashed
/// lookups it replaces.
const SCAN_LIMIT: usize = 32;

/// Finds the headers a verifier reads, allocation-free.
///
/// `HeaderMap` hashes a custom name (FNV, a multiply per byte) on every lookup, about 20 ns for
/// these names; Standard Webhooks needs three of them after the NoPOS header's. So the first name
/// is looked up by hash, as one lookup costs about what a pass over a typical request's dozen
/// headers does, and the first time a second name is needed, one pass over a map of up to
/// [`SCAN_LIMIT`] values notes where every name the verifier reads is.
pub(crate) struct HeaderLookup<'h> {
    headers: &'h HeaderMap,
    looked_up: bool,
    /// Per [`ReadHeader`]: the first value and how many there are, once scanned.
    scanned: Option<[(Option<&'h HeaderValue>, usize); READ_HEADERS]>,
}

impl<'h> HeaderLookup<'h> {
    pub(crate) fn new(headers: &'h HeaderMap) -> HeaderLookup<'h> {
        HeaderLookup {
            headers,
            looked_up: false,
            scanned: None,
        }
    }

    /// Every value of `header`, in order.
    #[inline]
    pub(crate) fn values(&mut self, header: ReadHeader) -> HeaderValues<'h> {
        if self.scanned.is_none() && self.looked_up && self.headers.len() <= SCAN_LIMIT {
            self.scanned = Some(self.scan());
        }
        let Some(found) = self.scanned else {
            self.looked_up = true;
            return HeaderValues::All(self.headers.get_all(header.name()));
        };
        match found[header as usize] {
            (None, _) => HeaderValues::None,
            (Some(value), 1) => HeaderValues::One(value),
            // Repeated headers are rare: their values are then looked up in order.
            _ => HeaderValues::All(self.headers.get_all(header.name())),
        }
    }

    fn scan(&self) -> [(Option<&'h HeaderValue>, usize); READ_HEADERS] {
        let mut found = [(None, 0); READ_HEADERS];
        for (name, value) in self.headers {
            if let Some(header) = ReadHeader::of(name) {
                let (first, count) = &mut found[header as usize];
                first.get_or_insert(value);
                *count += 1;
            }
        }
        found
    }
}

/// The values of one header, from a [`HeaderLookup`].
pub(crate) enum HeaderValues<'h> {
    None,
    One(&'h HeaderValue),
    All(GetAll<'h, HeaderValue>),
}

impl<'h> HeaderValues<'h> {
    #[inline]
    pub(crate) fn iter(&self) -> HeaderValuesIter<'h> {
        match self {
            HeaderValues::None => HeaderValuesIter::One(None),
            HeaderValues::One(value) => HeaderValuesIter::One(Some(value)),
            HeaderValues::All(values) => HeaderValuesIter::All(values.iter()),
        }
    }

    /// The value, when there is exactly one.
    pub(crate) fn single(&self) -> Option<&'h HeaderValue> {
        let mut values = self.iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

pub(crate) enum HeaderValuesIter<'h> {
    One(Option<&'h HeaderValue>),
    All(ValueIter<'h, HeaderValue>),
}

impl<'h> Iterator for HeaderValuesIter<'h> {
    type Item = &'h HeaderValue;

    #[inline]
    fn next(&mut self) -> Option<&'h HeaderValue> {
        match self {
            HeaderValuesIter::One(value) => value.take(),
            HeaderValuesIter::All(values) => values.next(),
        }
    }
}

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
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    // One pass: accumulate and check together; the value is thrown away unless every byte was a
    // digit, and 18 digits cannot overflow.
    let mut all_digits = true;
    let mut value = 0i64;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        all_digits &= digit < 10;
        value = value.wrapping_mul(10).wrapping_add(i64::from(digit));
    }
    all_digits.then_some(if negative { -value } else { value })
}

/// How many well-formed signatures are decoded once into a stack buffer. An emitter sends one per
/// active secret: one, or two during a rotation. Any beyond these are decoded again for each
/// secret tried, so a header with more is still checked in full; a larger buffer only costs every
/// verification its initialization.
pub(crate) const BUFFERED_SIGNATURES: usize = 4;

/// Candidate signatures from a header, the first [`BUFFERED_SIGNATURES`] decoded once into a stack
/// buffer: checking them against several secrets then neither re-parses nor allocates.
pub(crate) struct Candidates {
    tags: [[u8; super::TAG_LEN]; BUFFERED_SIGNATURES],
    len: usize,
    overflowed: bool,
}

impl Candidates {
    pub(crate) fn new() -> Candidates {
        Candidates {
            tags: [[0; super::TAG_LEN]; BUFFERED_SIGNATURES],
            len: 0,
            overflowed: false,
        }
    }

    /// Collects the first [`BUFFERED_SIGNATURES`] of `tags`, noting whether there are more.
    pub(crate) fn collect(tags: impl Iterator<Item = [u8; super::TAG_LEN]>) -> Candidates {
        let mut candidates = Candidates::new();
        for tag in tags {
            if !candidates.push(tag) {
                break;
            }
        }
        candidates
    }

    /// Buffers `tag`; `false` (and marks the set as overflowed) when the buffer is full.
    pub(crate) fn push(&mut self, tag: [u8; super::TAG_LEN]) -> bool {
        if self.len == BUFFERED_SIGNATURES {
            self.overflowed = true;
            return false;
        }
        self.tags[self.len] = tag;
        self.len += 1;
        true
    }

    /// The buffered signatures, in header order.
    pub(crate) fn buffered(&self) -> &[[u8; super::TAG_LEN]] {
        &self.tags[..self.len]
    }

    /// Whether well-formed signatures follow the buffered ones (decode them from the header with
    /// `.skip(BUFFERED_SIGNATURES)`).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether the header held no well-formed signature at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The parts of a `t=…,v1=…` header (NoPOS and Stripe), parsed in one pass without allocating.
pub(crate) struct TimestampedHeader<'a> {
    /// The `t` value, when present and valid.
    pub(crate) timestamp: Option<i64>,
    /// The digits `timestamp` was parsed from.
    pub(crate) timestamp_digits: &'a [u8],
    /// The well-formed `v1` signatures (see [`Candidates`]).
    pub(crate) candidates: Candidates,
    value: &'a [u8],
}

impl<'a> TimestampedHeader<'a> {
    /// Splits the header into entries; entries with other keys (`v0`, future versions) and
    /// malformed entries are skipped, whitespace around entries is ignored.
    pub(crate) fn parse(value: &'a [u8]) -> TimestampedHeader<'a> {
        let refused = |value| TimestampedHeader {
            timestamp: None,
            timestamp_digits: b"",
            candidates: Candidates::new(),
            value,
        };
        let mut timestamp = None;
        let mut timestamp_digits: &[u8] = b"";
        let mut candidates = Candidates::new();
        for (key, val) in entries(value) {
            match key {
                b"t" => {
                    // More than one `t` is ambiguous: refuse the header rather than pick one.
                    if timestamp.is_some() {
                        return refused(value);
                    }
                    timestamp = parse_unix_seconds(val);
                    if timestamp.is_none() {
                        return refused(value);
                    }
                    timestamp_digits = val;
                }
                b"v1" if !candidates.overflowed() => {
                    if let Some(tag) = decode_hex_tag(val) {
                        candidates.push(tag);
                    }
                }
                _ => {}
            }
        }
        TimestampedHeader {
            timestamp,
            timestamp_digits,
            candidates,
            value,
        }
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
    split_at_commas(value).filter_map(|entry| {
        let entry = trim(entry);
        let eq = entry.iter().position(|&b| b == b'=')?;
        Some((trim(&entry[..eq]), trim(&entry[eq + 1..])))
    })
}

/// What `value.split(|&b| b == b',')` yields, found eight bytes at a time: a byte-by-byte search
/// through the 64 hex digits of each signature was a third of the cost of parsing the header.
fn split_at_commas(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_at_any(value, [b',', b','])
}

/// What `value.split(|&b| separators.contains(&b))` yields, searching a word at a time.
fn split_at_any(value: &[u8], separators: [u8; 2]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        if let Some(at) = find_any(current, separators) {
            rest = Some(&current[at + 1..]);
            Some(&current[..at])
        } else {
            rest = None;
            Some(current)
        }
    })
}

/// The index of the first byte of `haystack` that is one of `needles`, comparing a word at a time.
fn find_any(haystack: &[u8], needles: [u8; 2]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // Bytes equal to the needle become zero; the classic zero-byte test flags them, and its lowest
    // flag is always exact (borrows only run upwards), so the lowest of either needle's is too.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH_BITS;
    let [first, second] = needles.map(|needle| ONES * u64::from(needle));
    let (words, tail) = haystack.as_chunks::<8>();
    for (index, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let found = zero_bytes(word ^ first) | zero_bytes(word ^ second);
        if found != 0 {
            return Some(index * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|b| needles.contains(b))
        .map(|at| words.len() * 8 + at)
}

/// The value of each lowercase hex digit; [`NOT_HEX`] for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut digit: u8 = 0;
    while digit < 16 {
        let symbol = b"0123456789abcdef"[digit as usize];
        values[symbol as usize] = digit;
        digit += 1;
    }
    values
};
/// Marks a byte that is not a lowercase hex digit; any value with a high nibble set would do.
const NOT_HEX: u8 = 0xF0;

/// 64 lowercase hex digits into a tag; `None` for anything else. Uppercase is refused because
/// every producer writes lowercase, and accepting both would let a flipped case bit still verify.
///
/// One table lookup per digit, checked once at the end: the `hex` crate's per-digit branches made
/// this the most expensive step of verifying a small body. The digits are the untrusted candidate,
/// never the expected tag, so indexing a table with them leaks nothing secret.
pub(crate) fn decode_hex_tag(hex_digits: &[u8]) -> Option<[u8; super::TAG_LEN]> {
    if hex_digits.len() != 2 * super::TAG_LEN {
        return None;
    }
    let mut tag = [0u8; super::TAG_LEN];
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(hex_digits.chunks_exact(2)) {
        let high = HEX_VALUES[usize::from(pair[0])];
        let low = HEX_VALUES[usize::from(pair[1])];
        invalid |= high | low;
        *byte = (high << 4) | low;
    }
    (invalid & NOT_HEX == 0).then_some(tag)
}

/// Lowercase hex of a tag into `out`.
pub(crate) fn encode_hex_tag(tag: &[u8; super::TAG_LEN], out: &mut [u8; 2 * super::TAG_LEN]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in tag.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0F)];
    }
}

/// The standard base64 alphabet.
const BASE64_SYMBOLS: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// The value of each base64 symbol; [`NOT_BASE64`] for every other byte.
const BASE64_VALUES: [u8; 256] = {
    let mut values = [NOT_BASE64; 256];
    let mut value: u8 = 0;
    while value < 64 {
        values[BASE64_SYMBOLS[value as usize] as usize] = value;
        value += 1;
    }
    values
};
/// Marks a byte that is not a base64 symbol; symbol values use only the low six bits.
const NOT_BASE64: u8 = 0xC0;
/// Symbols in the base64 of a tag without padding: 32 bytes are 256 bits, in 43 six-bit symbols
/// whose last two bits are zero.
const BASE64_TAG_SYMBOLS: usize = 43;
/// The padded base64 of a tag: the symbols and one `=`.
pub(crate) const BASE64_TAG_LEN: usize = BASE64_TAG_SYMBOLS + 1;

/// Standard base64 of exactly 32 bytes into a tag, with or without its `=`; `None` for anything
/// else, including non-canonical encodings (the unused low bits of the last symbol set).
///
/// Accepts exactly what the `base64` crate's standard engine with indifferent padding decodes to
/// 32 bytes (a test checks both against each other), without its general-purpose overhead. As with
/// hex, only the untrusted candidate is ever decoded.
pub(crate) fn decode_base64_tag(encoded: &[u8]) -> Option<[u8; super::TAG_LEN]> {
    let symbols = match encoded {
        [symbols @ .., b'='] if symbols.len() == BASE64_TAG_SYMBOLS => symbols,
        _ if encoded.len() == BASE64_TAG_SYMBOLS => encoded,
        _ => return None,
    };
    let value = |symbol: u8| BASE64_VALUES[usize::from(symbol)];
    let mut tag = [0u8; super::TAG_LEN];
    let mut invalid = 0u8;
    // Ten groups of four symbols carry the first 30 bytes.
    for (group, bytes) in symbols.chunks_exact(4).zip(tag.chunks_exact_mut(3)) {
        let [a, b, c, d] = [group[0], group[1], group[2], group[3]].map(value);
        invalid |= a | b | c | d;
        let bits = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        bytes.copy_from_slice(&bits.to_be_bytes()[1..]);
    }
    // The last three symbols carry 16 bits and two zero bits.
    let [a, b, c] = [symbols[40], symbols[41], symbols[42]].map(value);
    invalid |= a | b | c;
    let bits = ((u32::from(a) << 12) | (u32::from(b) << 6) | u32::from(c)) << 6;
    let [_, high, low, unused] = bits.to_be_bytes();
    tag[30] = high;
    tag[31] = low;
    (invalid & NOT_BASE64 == 0 && unused == 0).then_some(tag)
}

/// Padded standard base64 of a tag into `out`.
pub(crate) fn encode_base64_tag(tag: &[u8; super::TAG_LEN], out: &mut [u8; BASE64_TAG_LEN]) {
    let symbol = |bits: u32, shift: u32| BASE64_SYMBOLS[((bits >> shift) & 0x3F) as usize];
    for (bytes, symbols) in tag.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let bits = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        symbols.copy_from_slice(&[
            symbol(bits, 18),
            symbol(bits, 12),
            symbol(bits, 6),
            symbol(bits, 0),
        ]);
    }
    let bits = (u32::from(tag[30]) << 10) | (u32::from(tag[31]) << 2);
    out[40] = symbol(bits, 12);
    out[41] = symbol(bits, 6);
    out[42] = symbol(bits, 0);
    out[43] = b'=';
}

/// `v1,<base64>` entries of a `webhook-signature` header (space-separated); other versions and
/// malformed entries are skipped.
pub(crate) fn standard_v1_signatures(value: &[u8]) -> impl Iterator<Item = [u8; super::TAG_LEN]> {
    split_at_any(value, [b' ', b'\t'])
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
        assert_eq!(h.candidates.buffered(), &[[0; 32]]);
        assert!(!h.candidates.overflowed());
        assert_eq!(TimestampedHeader::parse(b"t=1,t=2,v1=00").timestamp, None);
        assert_eq!(TimestampedHeader::parse(b"t=abc").timestamp, None);
        assert_eq!(TimestampedHeader::parse(b"v1=00").timestamp, None);
        assert_eq!(parse_unix_seconds(b"9999999999999999999"), None);
        assert_eq!(parse_unix_seconds(b"-5"), Some(-5));
        assert_eq!(parse_unix_seconds(b"+5"), None);
    }

    #[test]
    fn hex_encoding_matches_the_hex_crate_for_every_byte() {
        for first in (0..=255u8).step_by(32) {
            let tag: [u8; 32] =
                std::array::from_fn(|i| first.wrapping_add(u8::try_from(i).unwrap()));
            let mut digits = [0u8; 64];
            encode_hex_tag(&tag, &mut digits);
            assert_eq!(digits.to_vec(), hex::encode(tag).into_bytes());
        }
    }

    #[test]
    fn hex_tags_round_trip_and_refuse_anything_else() {
        let tag: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 8).unwrap());
        let mut digits = [0u8; 64];
        encode_hex_tag(&tag, &mut digits);
        assert_eq!(digits.to_vec(), hex::encode(tag).into_bytes());
        assert_eq!(decode_hex_tag(&digits), Some(tag));
        assert_eq!(decode_hex_tag(&digits[..62]), None);
        for bad in [b'A', b'g', b' ', b'/', b':', b'`', 0xFF, 0] {
            let mut broken = digits;
            broken[17] = bad;
            assert_eq!(decode_hex_tag(&broken), None, "{bad}");
        }
    }

    #[test]
    fn signatures_beyond_the_buffer_are_still_found() {
        let entry = |i: u8| format!(",v1={}", hex::encode([i; 32]));
        let header: String = std::iter::once("t=5".to_owned())
            .chain((0..10).map(entry))
            .collect();
        let h = TimestampedHeader::parse(header.as_bytes());
        assert_eq!(h.candidates.buffered().len(), BUFFERED_SIGNATURES);
        assert!(h.candidates.overflowed());
        let rest: Vec<_> = h.v1_signatures().skip(BUFFERED_SIGNATURES).collect();
        let expected: Vec<_> = (BUFFERED_SIGNATURES..10)
            .map(|i| [u8::try_from(i).unwrap(); 32])
            .collect();
        assert_eq!(rest, expected);
    }

    /// The `base64` crate's reading of a tag, which [`decode_base64_tag`] must match.
    fn base64_crate_tag(encoded: &[u8]) -> Option<[u8; 32]> {
        use base64::Engine as _;
        use base64::engine::general_purpose::GeneralPurpose;
        use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let decoded = LENIENT.decode(encoded).ok()?;
        decoded.try_into().ok()
    }

    #[test]
    fn base64_tags_round_trip_and_match_the_base64_crate() {
        use base64::Engine as _;
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..2000 {
            let tag: [u8; 32] = std::array::from_fn(|_| next().to_le_bytes()[0]);
            let mut out = [0u8; BASE64_TAG_LEN];
            encode_base64_tag(&tag, &mut out);
            assert_eq!(
                out.to_vec(),
                base64::engine::general_purpose::STANDARD
                    .encode(tag)
                    .into_bytes()
            );
            assert_eq!(decode_base64_tag(&out), Some(tag));
            assert_eq!(decode_base64_tag(&out[..43]), Some(tag));
            // Corrupt one or two bytes, or cut or extend, and compare with the base64 crate.
            let mut broken = out.to_vec();
            let at = usize::try_from(next() % 44).unwrap();
            broken[at] = next().to_le_bytes()[0] % 128;
            if round % 3 == 0 {
                let at = usize::try_from(next() % 44).unwrap();
                broken[at] = b"=+/Aa0 \t-_"[usize::try_from(next() % 10).unwrap()];
            }
            match round % 5 {
                0 => broken.truncate(43),
                1 => broken.push(b'='),
                2 => broken.truncate(42),
                _ => {}
            }
            assert_eq!(
                decode_base64_tag(&broken),
                base64_crate_tag(&broken),
                "{}",
                String::from_utf8_lossy(&broken)
            );
        }
        for bad in [&b""[..], b"=", b"====", &[b'A'; 44], &[b'A'; 45]] {
            assert_eq!(decode_base64_tag(bad), base64_crate_tag(bad));
        }
    }

    #[test]
    fn unix_seconds_parse_like_i64() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "007",
            "1731234600",
            "999999999999999999",
            "-999999999999999999",
        ] {
            assert_eq!(
                parse_unix_seconds(text.as_bytes()),
                Some(text.parse().unwrap()),
                "{text}"
            );
        }
        for text in [
            "",
            "-",
            "--1",
            "+1",
            "1 ",
            " 1",
            "1.0",
            "1e3",
            "0x10",
            "١",
            "1000000000000000000",
        ] {
            assert_eq!(parse_unix_seconds(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn splitting_matches_slice_split() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..80 {
            for _ in 0..50 {
                let value: Vec<u8> = (0..len)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        b",,a\xac\x2d\x2b\xff\x00"[usize::try_from(rng % 8).unwrap()]
                    })
                    .collect();
                let ours: Vec<&[u8]> = split_at_commas(&value).collect();
                let std: Vec<&[u8]> = value.split(|&b| b == b',').collect();
                assert_eq!(ours, std, "{value:?}");
                let ours: Vec<&[u8]> = split_at_any(&value, [b'a', 0xFF]).collect();
                let std: Vec<&[u8]> = value.split(|&b| b == b'a' || b == 0xFF).collect();
                assert_eq!(ours, std, "{value:?}");
            }
        }
    }

    #[test]
    fn scanned_and_hashed_lookups_agree() {
        use http::HeaderValue;
        let all = [
            ReadHeader::NoPos,
            ReadHeader::StandardSignature,
            ReadHeader::Stripe,
            ReadHeader::GitHub,
            ReadHeader::Shopify,
            ReadHeader::WebhookId,
            ReadHeader::WebhookTimestamp,
        ];
        assert_eq!(all.len(), READ_HEADERS);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        for (i, header) in all.into_iter().enumerate() {
            assert_eq!(ReadHeader::of(&header.name()), Some(header));
            // None of the first, one of the second, two of the third, and so on.
            for n in 0..i % 3 {
                headers.append(header.name(), HeaderValue::from(n));
            }
        }
        headers.insert("user-agent", HeaderValue::from_static("test"));
        let values = |lookup: &mut HeaderLookup<'_>, header: ReadHeader| -> Vec<Vec<u8>> {
            let values = lookup.values(header);
            values.iter().map(|v| v.as_bytes().to_vec()).collect()
        };
        for header in all {
            let expected: Vec<Vec<u8>> = headers
                .get_all(header.name())
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect();
            // Hashed: the first lookup of a fresh `HeaderLookup`.
            let mut lookup = HeaderLookup::new(&headers);
            assert_eq!(values(&mut lookup, header), expected, "{header:?}");
            assert!(lookup.scanned.is_none());
            // Scanned: any later one.
            assert_eq!(values(&mut lookup, header), expected, "{header:?}");
            assert!(lookup.scanned.is_some());
            assert_eq!(lookup.values(header).is_empty(), expected.is_empty());
            let single = lookup
                .values(header)
                .single()
                .map(|v| v.as_bytes().to_vec());
            assert_eq!(single, (expected.len() == 1).then(|| expected[0].clone()));
        }
        // A map too large to scan is searched by hash every time.
        for i in 0..SCAN_LIMIT {
            headers.append("x-filler", HeaderValue::from(i));
        }
        let mut lookup = HeaderLookup::new(&headers);
        for header in all {
            let expected = headers.get_all(header.name()).iter().count();
            assert_eq!(lookup.values(header).iter().count(), expected);
        }
        assert!(lookup.scanned.is_none());
    }

    #[test]
    fn trim_handles_edges() {
        assert_eq!(trim(b""), b"");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b" a b "), b"a b");
    }
}
