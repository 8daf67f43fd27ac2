//! Webhook signatures: signing deliveries and verifying them, for NoPOS, Standard Webhooks and the
//! providers a POS app also receives webhooks from.
//!
//! This module owns the signature constructions, their header formats and the verification rules
//! (DESIGN §3). It reads no clock (`now` is an argument), allocates nothing on the verify path, and
//! never puts a secret or an expected signature into an error. The reasoning behind each rule is in
//! [`crate::security`].

mod headers;
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

use crate::secret::HmacSha256;
use hmac::Mac;

/// Length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// HMAC over `parts` in order, from a pre-keyed state: no key schedule, no concatenated copy.
pub(crate) fn tag(key: &HmacSha256, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Formats a Unix timestamp in plain decimal into `buf`, returning the digits.
pub(crate) fn decimal(mut n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let negative = n < 0;
    let mut at = buf.len();
    loop {
        at -= 1;
        // `unsigned_abs` of the remainder keeps i64::MIN correct.
        buf[at] = b'0' + u8::try_from((n % 10).unsigned_abs()).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}
