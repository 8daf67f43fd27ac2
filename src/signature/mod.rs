//! Webhook signatures: signing deliveries and verifying them, for NoPOS, Standard Webhooks and the
//! providers a POS app also receives webhooks from.
//!
//! This module owns the signature constructions, their header formats and the verification rules
//! (DESIGN §3). It reads no clock (`now` is an argument), allocates nothing on the verify path, and
//! never puts a secret or an expected signature into an error.

mod headers;
pub(crate) mod mac;
mod sign;
mod verify;

pub use headers::{
    GITHUB_SIGNATURE, NOPOS_SIGNATURE, SHOPIFY_HMAC_SHA256, STRIPE_SIGNATURE, WEBHOOK_ID,
    WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
pub use sign::{SignError, SignatureHeaders, sign, sign_nopos, sign_standard};
pub use verify::{
    DEFAULT_MAX_BODY_SIZE, DEFAULT_TOLERANCE, Scheme, Verified, Verifier, VerifyError,
};

use mac::KeyedMac;

/// Length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// HMAC over `parts` in order, from a pre-keyed state: no key schedule, no concatenated copy.
pub(crate) fn tag(key: &KeyedMac, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    key.tag(parts)
}

/// Constant-time equality of two tags: the XOR of every byte is OR-ed together without a branch,
/// and only that one word goes through `subtle`'s optimization barrier. Comparing byte by byte
/// with `subtle` put a barrier on each of the 32 bytes, which cost more than the rest of the
/// comparison.
pub(crate) fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    let mut difference = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
        difference |= word(x) ^ word(y);
    }
    difference.ct_eq(&0)
}

/// Formats a Unix timestamp in plain decimal into `buf`, returning the digits.
pub(crate) fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    // Two digits per division: this runs on every sign and verify.
    use crate::timestamp::DIGIT_PAIRS as PAIRS;
    // `unsigned_abs` keeps i64::MIN correct (19 digits and a sign fit in 20 bytes).
    let mut rest = n.unsigned_abs();
    let mut at = buf.len();
    while rest >= 10 {
        let pair = usize::try_from(rest % 100).unwrap_or(0) * 2;
        rest /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    // `rest` is now a single digit, or 0 after an even number of digits.
    if rest > 0 || at == buf.len() {
        at -= 1;
        buf[at] = b'0' + u8::try_from(rest).unwrap_or(0);
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// The digits `decimal` prints for `timestamp`, where `digits` are the ones it was parsed from:
/// those themselves when they already are exactly that (no leading zero, no `-0`), which spares a
/// verification formatting them again.
pub(crate) fn timestamp_digits<'a>(
    digits: &'a [u8],
    timestamp: i64,
    buf: &'a mut [u8; 20],
) -> &'a [u8] {
    match digits {
        [b'0'] => digits,
        [b'0', ..] | [b'-', b'0', ..] => decimal(timestamp, buf),
        _ => digits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_display() {
        let mut buf = [0u8; 20];
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            1_731_234_600,
            -1,
            -10,
            -100,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes(), "{n}");
        }
        for n in (-2000..2000).chain((0..60).map(|shift| 1i64 << shift)) {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes(), "{n}");
        }
    }

    #[test]
    fn timestamp_digits_are_always_the_canonical_ones() {
        let mut buf = [0u8; 20];
        for text in [
            "0",
            "-0",
            "00",
            "-00",
            "7",
            "007",
            "-7",
            "-007",
            "10",
            "-10",
            "1731234600",
            "01731234600",
            "999999999999999999",
            "-999999999999999999",
        ] {
            let timestamp = headers::parse_unix_seconds(text.as_bytes()).unwrap();
            assert_eq!(
                timestamp_digits(text.as_bytes(), timestamp, &mut buf),
                timestamp.to_string().as_bytes(),
                "{text}"
            );
        }
    }

    #[test]
    fn tags_compare_in_full() {
        let a = [7u8; TAG_LEN];
        assert!(bool::from(tags_equal(&a, &a)));
        for i in 0..TAG_LEN {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!bool::from(tags_equal(&a, &b)));
            }
        }
    }
}
