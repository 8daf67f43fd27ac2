//! Verifying a delivery's signature from its headers and raw body.

use std::fmt;

use http::{HeaderMap, HeaderName};
use time::{Duration, OffsetDateTime};

use super::headers::{
    BUFFERED_SIGNATURES, Candidates, GITHUB_SIGNATURE, HeaderLookup, HeaderValues, NOPOS_SIGNATURE,
    ReadHeader, SHOPIFY_HMAC_SHA256, STRIPE_SIGNATURE, TimestampedHeader, WEBHOOK_SIGNATURE,
    decode_base64_tag, decode_hex_tag, parse_unix_seconds, standard_v1_signatures, trim,
};
use super::{TAG_LEN, tag, tags_equal};
use crate::Secret;

/// The default replay window: a timestamp more than 300 seconds from `now`, either way, is refused.
pub const DEFAULT_TOLERANCE: Duration = Duration::seconds(300);
/// The default largest body verified: 256 KiB, the emitter's default maximum payload.
pub const DEFAULT_MAX_BODY_SIZE: usize = 256 * 1024;

/// A signature scheme a [`Verifier`] can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `x-nopos-signature: t=…,v1=…`, HMAC-SHA256 of `"<t>.<body>"` keyed with the secret string.
    NoPos,
    /// Standard Webhooks `webhook-id`/`webhook-timestamp`/`webhook-signature`, keyed with the
    /// base64-decoded `whsec_` secret.
    StandardWebhooks,
    /// Stripe's `Stripe-Signature`: the NoPOS construction under Stripe's header name.
    Stripe,
    /// GitHub's `X-Hub-Signature-256: sha256=<hex>` over the body; GitHub sends no timestamp.
    GitHub,
    /// Shopify's `X-Shopify-Hmac-Sha256: <base64>` over the body; Shopify sends no timestamp.
    Shopify,
}

impl Scheme {
    /// Every scheme, in the order a verifier tries them.
    pub const ALL: [Scheme; 5] = [
        Scheme::NoPos,
        Scheme::StandardWebhooks,
        Scheme::Stripe,
        Scheme::GitHub,
        Scheme::Shopify,
    ];

    /// The header whose presence selects this scheme.
    pub fn header(self) -> HeaderName {
        match self {
            Scheme::NoPos => NOPOS_SIGNATURE,
            Scheme::StandardWebhooks => WEBHOOK_SIGNATURE,
            Scheme::Stripe => STRIPE_SIGNATURE,
            Scheme::GitHub => GITHUB_SIGNATURE,
            Scheme::Shopify => SHOPIFY_HMAC_SHA256,
        }
    }

    /// A short lowercase name: `nopos`, `standard-webhooks`, `stripe`, `github`, `shopify`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::NoPos => "nopos",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Stripe => "stripe",
            Scheme::GitHub => "github",
            Scheme::Shopify => "shopify",
        }
    }

    /// The header whose presence selects this scheme, for [`HeaderLookup`].
    fn read_header(self) -> ReadHeader {
        match self {
            Scheme::NoPos => ReadHeader::NoPos,
            Scheme::StandardWebhooks => ReadHeader::StandardSignature,
            Scheme::Stripe => ReadHeader::Stripe,
            Scheme::GitHub => ReadHeader::GitHub,
            Scheme::Shopify => ReadHeader::Shopify,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scheme::NoPos => 1,
            Scheme::StandardWebhooks => 2,
            Scheme::Stripe => 4,
            Scheme::GitHub => 8,
            Scheme::Shopify => 16,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a delivery failed verification. No variant carries a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The body is larger than the verifier's limit; nothing was hashed.
    #[error("body of {size} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The body's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// None of the accepted schemes' signature headers is present.
    #[error("no signature header")]
    MissingSignature,
    /// A signature header is present but unusable: no valid timestamp, a missing companion
    /// header (`webhook-id`, `webhook-timestamp`), or not one well-formed signature entry.
    #[error("malformed {scheme} signature header")]
    MalformedHeader {
        /// The scheme whose header is malformed.
        scheme: Scheme,
    },
    /// The signed timestamp is further in the past than the tolerance: possibly a replay.
    #[error("{scheme} signature timestamp is too old")]
    TimestampTooOld {
        /// The scheme checked.
        scheme: Scheme,
    },
    /// The signed timestamp is further in the future than the tolerance.
    #[error("{scheme} signature timestamp is too far in the future")]
    TimestampTooNew {
        /// The scheme checked.
        scheme: Scheme,
    },
    /// Well-formed signatures are present, but none matches any configured secret: a wrong
    /// secret, or a body that changed (re-serialized JSON, a proxy that altered it).
    #[error("no {scheme} signature matches")]
    NoMatchingSignature {
        /// The scheme checked.
        scheme: Scheme,
    },
}

impl VerifyError {
    /// The scheme the error is about, when it is about one.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            VerifyError::MalformedHeader { scheme }
            | VerifyError::TimestampTooOld { scheme }
            | VerifyError::TimestampTooNew { scheme }
            | VerifyError::NoMatchingSignature { scheme } => Some(*scheme),
            VerifyError::BodyTooLarge { .. } | VerifyError::MissingSignature => None,
        }
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The scheme whose signature matched.
    pub scheme: Scheme,
    /// The signed timestamp (Unix seconds), for schemes that sign one.
    pub timestamp: Option<i64>,
    /// Which configured secret matched (its index in the verifier's list).
    pub secret_index: usize,
}

/// Checks signatures of incoming deliveries against one or more secrets.
///
/// # Default
/// Accepts [`Scheme::NoPos`] and [`Scheme::StandardWebhooks`], a ±[`DEFAULT_TOLERANCE`] replay
/// window, and bodies up to [`DEFAULT_MAX_BODY_SIZE`].
///
/// Give it every secret that is valid during a rotation (old and new); it tries each. Verify the
/// raw body bytes exactly as received, before parsing them.
///
/// ```
/// use nopos_webhooks::{Scheme, Secret, Verifier, signature};
/// use time::macros::datetime;
///
/// let secret = Secret::new("your_webhook_secret")?;
/// let now = datetime!(2024-11-10 10:30 UTC);
/// let body = br#"{"id":"evt_1","type":"ping","created_at":"2024-11-10T10:30:00Z","data":{}}"#;
///
/// let mut headers = http::HeaderMap::new();
/// signature::sign([&secret], "evt_1", now, body)?.insert_into(&mut headers);
///
/// let verifier = Verifier::new([secret]);
/// let verified = verifier.verify(&headers, body, now)?;
/// assert_eq!(verified.scheme, Scheme::NoPos);
///
/// // Ten minutes later the same delivery is a replay.
/// assert!(verifier.verify(&headers, body, now + time::Duration::minutes(10)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    schemes: u8,
    tolerance: Option<Duration>,
    max_body_size: usize,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let schemes: Vec<_> = Scheme::ALL
            .iter()
            .filter(|s| self.accepts(**s))
            .map(|s| s.name())
            .collect();
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets.len())
            .field("schemes", &schemes)
            .field("tolerance", &self.tolerance)
            .field("max_body_size", &self.max_body_size)
            .finish()
    }
}

impl Verifier {
    /// A verifier for NoPOS deliveries (NoPOS and Standard Webhooks headers) signed with any of
    /// `secrets`.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Verifier {
        Verifier {
            secrets: secrets.into_iter().collect(),
            schemes: Scheme::NoPos.bit() | Scheme::StandardWebhooks.bit(),
            tolerance: Some(DEFAULT_TOLERANCE),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
        }
    }

    /// A verifier for one provider's webhooks only, such as [`Scheme::GitHub`]; secrets from other
    /// providers are usually built with [`Secret::from_provider`].
    pub fn for_scheme(scheme: Scheme, secrets: impl IntoIterator<Item = Secret>) -> Verifier {
        Verifier {
            schemes: scheme.bit(),
            ..Verifier::new(secrets)
        }
    }

    /// Also accepts `scheme`.
    #[must_use]
    pub fn accept(mut self, scheme: Scheme) -> Verifier {
        self.schemes |= scheme.bit();
        self
    }

    /// Whether `scheme` is accepted.
    pub fn accepts(&self, scheme: Scheme) -> bool {
        self.schemes & scheme.bit() != 0
    }

    /// Sets the replay window: timestamps further than `tolerance` from `now`, in either
    /// direction, are refused. Negative values count as zero.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Verifier {
        self.tolerance = Some(tolerance.max(Duration::ZERO));
        self
    }

    /// Turns the timestamp check off, so that a captured delivery can be replayed forever.
    /// Only for replaying stored deliveries in tests or tooling.
    #[must_use]
    pub fn dangerous_skip_timestamp_check(mut self) -> Verifier {
        self.tolerance = None;
        self
    }

    /// Sets the largest body that is verified; larger bodies are refused before hashing.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Verifier {
        self.max_body_size = bytes;
        self
    }

    /// The configured body limit.
    pub fn body_limit(&self) -> usize {
        self.max_body_size
    }

    /// Verifies `body` against the signature headers in `headers` (names are case-insensitive).
    ///
    /// Each accepted scheme whose header is present is tried in [`Scheme::ALL`] order; the first
    /// that matches wins. Allocates nothing.
    ///
    /// # Errors
    /// [`VerifyError`]: the first failure among the schemes tried, or
    /// [`VerifyError::MissingSignature`] when none of their headers is present.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        if body.len() > self.max_body_size {
            return Err(VerifyError::BodyTooLarge {
                size: body.len(),
                limit: self.max_body_size,
            });
        }
        let mut first_error = None;
        let mut lookup = HeaderLookup::new(headers);
        for scheme in Scheme::ALL {
            if !self.accepts(scheme) {
                continue;
            }
            // One lookup per scheme: its values are read from here on.
            let values = lookup.values(scheme.read_header());
            if values.is_empty() {
                continue;
            }
            match self.verify_scheme(scheme, &values, &mut lookup, body, now) {
                Ok(verified) => return Ok(verified),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.unwrap_or(VerifyError::MissingSignature))
    }

    fn verify_scheme(
        &self,
        scheme: Scheme,
        values: &HeaderValues<'_>,
        lookup: &mut HeaderLookup<'_>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        let malformed = VerifyError::MalformedHeader { scheme };
        match scheme {
            Scheme::NoPos | Scheme::Stripe => {
                let mut result = Err(malformed);
                for value in values.iter() {
                    let attempt = self.verify_timestamped(scheme, value.as_bytes(), body, now);
                    if attempt.is_ok() {
                        return attempt;
                    }
                    result = keep_most_specific(result, attempt);
                }
                result
            }
            Scheme::StandardWebhooks => {
                let mut single = |header| {
                    lookup
                        .values(header)
                        .single()
                        .map(|value| trim(value.as_bytes()))
                        .ok_or(VerifyError::MalformedHeader { scheme })
                };
                let id = single(ReadHeader::WebhookId)?;
                let ts = single(ReadHeader::WebhookTimestamp)?;
                let timestamp =
                    parse_unix_seconds(ts).ok_or(VerifyError::MalformedHeader { scheme })?;
                if id.is_empty() {
                    return Err(malformed);
                }
                self.check_timestamp(scheme, timestamp, now)?;
                let mut digits = [0u8; 20];
                let ts = super::timestamp_digits(ts, timestamp, &mut digits);
                let signatures = || {
                    values
                        .iter()
                        .flat_map(|value| standard_v1_signatures(value.as_bytes()))
                };
                let candidates = Candidates::collect(signatures());
                self.match_any(scheme, Some(timestamp), &candidates, signatures, |secret| {
                    secret
                        .standard_key()
                        .map(|key| tag(key, &[id, b".", ts, b".", body]))
                })
            }
            Scheme::GitHub | Scheme::Shopify => {
                let signatures = || {
                    values.iter().filter_map(|value| {
                        let value = trim(value.as_bytes());
                        if scheme == Scheme::GitHub {
                            value.strip_prefix(b"sha256=").and_then(decode_hex_tag)
                        } else {
                            decode_base64_tag(value)
                        }
                    })
                };
                let candidates = Candidates::collect(signatures());
                self.match_any(scheme, None, &candidates, signatures, |secret| {
                    Some(tag(secret.string_key(), &[body]))
                })
            }
        }
    }

    /// `t=…,v1=…` (NoPOS, Stripe): timestamp first, so stale deliveries cost no hashing.
    fn verify_timestamped(
        &self,
        scheme: Scheme,
        value: &[u8],
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Verified, VerifyError> {
        let header = TimestampedHeader::parse(value);
        let timestamp = header
            .timestamp
            .ok_or(VerifyError::MalformedHeader { scheme })?;
        self.check_timestamp(scheme, timestamp, now)?;
        let mut digits = [0u8; 20];
        let ts = super::timestamp_digits(header.timestamp_digits, timestamp, &mut digits);
        self.match_any(
            scheme,
            Some(timestamp),
            &header.candidates,
            || header.v1_signatures(),
            |secret| Some(tag(secret.string_key(), &[ts, b".", body])),
        )
    }

    fn check_timestamp(
        &self,
        scheme: Scheme,
        timestamp: i64,
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let Some(tolerance) = self.tolerance else {
            return Ok(());
        };
        let tolerance = tolerance.whole_seconds();
        let now = now.unix_timestamp();
        if now.saturating_sub(timestamp) > tolerance {
            return Err(VerifyError::TimestampTooOld { scheme });
        }
        if timestamp.saturating_sub(now) > tolerance {
            return Err(VerifyError::TimestampTooNew { scheme });
        }
        Ok(())
    }

    /// Computes each secret's tag once and compares it, in constant time, with every candidate:
    /// the buffered ones, then (only when the header had more than the buffer holds) the rest,
    /// decoded again from `all_candidates`.
    fn match_any<I>(
        &self,
        scheme: Scheme,
        timestamp: Option<i64>,
        candidates: &Candidates,
        all_candidates: impl Fn() -> I,
        expected_for: impl Fn(&Secret) -> Option<[u8; TAG_LEN]>,
    ) -> Result<Verified, VerifyError>
    where
        I: Iterator<Item = [u8; TAG_LEN]>,
    {
        if candidates.is_empty() {
            return Err(VerifyError::MalformedHeader { scheme });
        }
        for (secret_index, secret) in self.secrets.iter().enumerate() {
            let Some(expected) = expected_for(secret) else {
                continue;
            };
            let mut matched = subtle::Choice::from(0);
            for candidate in candidates.buffered() {
                matched |= tags_equal(&expected, candidate);
            }
            if candidates.overflowed() {
                for candidate in all_candidates().skip(BUFFERED_SIGNATURES) {
                    matched |= tags_equal(&expected, &candidate);
                }
            }
            if bool::from(matched) {
                return Ok(Verified {
                    scheme,
                    timestamp,
                    secret_index,
                });
            }
        }
        Err(VerifyError::NoMatchingSignature { scheme })
    }
}

/// Between two failures of the same scheme, keeps the one that says more (a timestamp or
/// signature problem over a malformed header).
fn keep_most_specific(
    a: Result<Verified, VerifyError>,
    b: Result<Verified, VerifyError>,
) -> Result<Verified, VerifyError> {
    match (&a, &b) {
        (Err(VerifyError::MalformedHeader { .. }), Err(_)) => b,
        _ => a,
    }
}
