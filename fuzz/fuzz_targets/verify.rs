//! Header parsing and verification: arbitrary values for all seven signature headers, an arbitrary
//! body and `now`, optionally on top of genuine signature headers so that the matching paths run
//! too. Verification must never panic, must refuse oversized bodies and absent headers with their
//! own errors, must accept a genuine delivery it is not confused about, and its errors must never
//! show a secret.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use nopos_webhooks::signature::{
    self, GITHUB_SIGNATURE, NOPOS_SIGNATURE, SHOPIFY_HMAC_SHA256, STRIPE_SIGNATURE, WEBHOOK_ID,
    WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use nopos_webhooks::{Scheme, Secret, Verifier, VerifyError};
use time::{Duration, OffsetDateTime};

const NAMES: [http::HeaderName; 7] = [
    NOPOS_SIGNATURE,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
    STRIPE_SIGNATURE,
    GITHUB_SIGNATURE,
    SHOPIFY_HMAC_SHA256,
];

const USER_SECRET: &str = "your_webhook_secret";

/// A `whsec_` secret and a user-chosen one, built once.
static SECRETS: LazyLock<[Secret; 2]> = LazyLock::new(|| {
    [
        Secret::from_random_bytes(&zeroize::Zeroizing::new([7; 24])),
        Secret::new(USER_SECRET).expect("valid secret"),
    ]
});

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// `(header index, value)`: appended to the map in order, so names can repeat.
    headers: Vec<(u8, &'a [u8])>,
    body: &'a [u8],
    now: i64,
    /// Sign the body genuinely at `now + signed_offset` first, with the secret chosen here.
    genuine: Option<(bool, i16)>,
    /// The replay window in seconds; `None` skips the check (the dangerous way).
    tolerance: Option<u16>,
    max_body_size: u16,
    /// Which schemes the verifier accepts, one bit per scheme in `Scheme::ALL` order.
    schemes: u8,
    message_id: &'a str,
}

fn time_at(unix: i64) -> OffsetDateTime {
    // Every instant the `time` crate can represent; out-of-range inputs are clamped.
    let min = OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp();
    let max = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX).unix_timestamp();
    OffsetDateTime::from_unix_timestamp(unix.clamp(min, max)).expect("clamped into range")
}

fuzz_target!(|input: Input<'_>| {
    let now = time_at(input.now);
    let mut headers = HeaderMap::new();
    let mut signed_at = None;
    let mut genuine_whsec = false;
    if let Some((whsec, offset)) = input.genuine {
        let secret = &SECRETS[usize::from(!whsec)];
        let at = time_at(input.now.saturating_add(i64::from(offset)));
        // Most arbitrary ids are not valid `webhook-id`s; sign with a fixed one instead.
        let signed = signature::sign([secret], input.message_id, at, input.body)
            .or_else(|_| signature::sign([secret], "evt_fuzz", at, input.body));
        if let Ok(signed) = signed {
            signed.insert_into(&mut headers);
            signed_at = Some(at);
            genuine_whsec = whsec;
        }
    }
    let fuzzed_headers = !input.headers.is_empty();
    for (index, value) in &input.headers {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(NAMES[usize::from(*index) % NAMES.len()].clone(), value);
        }
    }

    let mut verifier = Verifier::for_scheme(Scheme::NoPos, SECRETS.iter().cloned())
        .max_body_size(usize::from(input.max_body_size));
    let mut accepted = Vec::new();
    for (bit, scheme) in Scheme::ALL.into_iter().enumerate() {
        if input.schemes & (1 << bit) != 0 || bit == 0 {
            verifier = verifier.accept(scheme);
            accepted.push(scheme);
        }
    }
    verifier = match input.tolerance {
        Some(seconds) => verifier.tolerance(Duration::seconds(i64::from(seconds))),
        None => verifier.dangerous_skip_timestamp_check(),
    };

    let result = verifier.verify(&headers, input.body, now);

    if let Err(err) = &result {
        let message = err.to_string();
        assert!(!message.contains(USER_SECRET), "{message}");
        assert!(!message.contains(SECRETS[0].expose_secret()), "{message}");
    }
    if input.body.len() > verifier.body_limit() {
        assert!(
            matches!(result, Err(VerifyError::BodyTooLarge { .. })),
            "{result:?}"
        );
        return;
    }
    if !accepted
        .iter()
        .any(|scheme| headers.contains_key(scheme.header()))
    {
        assert_eq!(result, Err(VerifyError::MissingSignature));
        return;
    }
    if let Ok(verified) = result {
        assert!(accepted.contains(&verified.scheme));
        assert!(verified.secret_index < SECRETS.len());
    }
    // A genuine delivery, untouched and inside the window, verifies with the NoPOS header (tried
    // first); a `whsec_` secret would also have matched the Standard Webhooks headers.
    if let (Some(at), false) = (signed_at, fuzzed_headers) {
        let within = input.tolerance.is_none_or(|seconds| {
            (now.unix_timestamp() - at.unix_timestamp()).abs() <= i64::from(seconds)
        });
        if within {
            let verified = result.expect("a genuine delivery verifies");
            assert_eq!(verified.scheme, Scheme::NoPos);
            assert_eq!(verified.secret_index, usize::from(!genuine_whsec));
        }
    }
});
