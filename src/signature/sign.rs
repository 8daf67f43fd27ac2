//! Producing signature headers for one delivery body.

use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

use super::headers::{
    BASE64_TAG_LEN, NOPOS_SIGNATURE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
    encode_base64_tag, encode_hex_tag,
};
use super::{TAG_LEN, decimal, tag};
use crate::Secret;

/// Why signature headers could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No secret was given: an endpoint always has at least its current secret.
    #[error("no secret to sign with")]
    NoSecrets,
    /// The message id is empty, contains a `.` (it separates the signed parts) or a character
    /// that cannot go in a header.
    #[error("message id must be non-empty visible ASCII without '.'")]
    InvalidMessageId,
}

/// The signature headers of one delivery attempt.
///
/// ```
/// use nopos_webhooks::{Secret, signature};
/// use time::macros::datetime;
///
/// let secret = Secret::new("your_webhook_secret")?;
/// let body = br#"{"id":"evt_1"}"#;
/// let headers = signature::sign([&secret], "evt_1", datetime!(2024-11-10 10:30 UTC), body)?;
/// let value = headers.nopos().to_str()?;
/// assert!(value.starts_with("t=1731234600,v1="));
/// // A user-chosen secret cannot sign Standard Webhooks headers.
/// assert!(headers.standard().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    nopos: HeaderValue,
    standard: Option<[HeaderValue; 3]>,
}

impl SignatureHeaders {
    /// The `x-nopos-signature` value.
    pub fn nopos(&self) -> &HeaderValue {
        &self.nopos
    }

    /// The `webhook-id`, `webhook-timestamp` and `webhook-signature` values, when at least one
    /// active secret is a `whsec_` secret.
    pub fn standard(&self) -> Option<&[HeaderValue; 3]> {
        self.standard.as_ref()
    }

    /// Every header as a name and value, NoPOS first.
    pub fn iter(&self) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
        let standard = self.standard.iter().flat_map(|[id, ts, sig]| {
            [
                (WEBHOOK_ID, id),
                (WEBHOOK_TIMESTAMP, ts),
                (WEBHOOK_SIGNATURE, sig),
            ]
        });
        std::iter::once((NOPOS_SIGNATURE, &self.nopos)).chain(standard)
    }

    /// Inserts every header into `headers`, replacing values already there.
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.iter() {
            headers.insert(name, value.clone());
        }
    }

    /// Moves every header into `headers`, replacing values already there (no copies).
    pub fn move_into(self, headers: &mut HeaderMap) {
        headers.insert(NOPOS_SIGNATURE, self.nopos);
        if let Some([id, timestamp, signature]) = self.standard {
            headers.insert(WEBHOOK_ID, id);
            headers.insert(WEBHOOK_TIMESTAMP, timestamp);
            headers.insert(WEBHOOK_SIGNATURE, signature);
        }
    }
}

/// Signs `body` with every secret in `secrets` (newest first, as [`crate::SecretSet::active`]
/// yields them): the `x-nopos-signature` header, plus the Standard Webhooks headers when any of
/// them is a `whsec_` secret. `message_id` becomes `webhook-id`; NoPOS uses the event id, which is
/// the same on every attempt, and `now` becomes the signed timestamp.
///
/// # Errors
/// [`SignError::NoSecrets`] for an empty list, [`SignError::InvalidMessageId`] for an id that cannot
/// be a `webhook-id`.
pub fn sign<'a>(
    secrets: impl IntoIterator<Item = &'a Secret> + Clone,
    message_id: &str,
    now: OffsetDateTime,
    body: &[u8],
) -> Result<SignatureHeaders, SignError> {
    let nopos = sign_nopos(secrets.clone(), now, body)?;
    let standard = match sign_standard(secrets, message_id, now, body) {
        Ok(headers) => Some(headers),
        Err(SignError::NoSecrets) => None,
        Err(err) => return Err(err),
    };
    Ok(SignatureHeaders { nopos, standard })
}

/// The `x-nopos-signature` value alone: `t=<unix seconds>,v1=<hex>` per secret, newest first.
///
/// # Errors
/// [`SignError::NoSecrets`] for an empty list.
pub fn sign_nopos<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    now: OffsetDateTime,
    body: &[u8],
) -> Result<HeaderValue, SignError> {
    let secrets = secrets.into_iter();
    let mut digits = [0u8; 20];
    let timestamp = decimal(now.unix_timestamp(), &mut digits);
    // Sized for every secret up front: the one allocation then becomes the header's buffer as is.
    let entry_len = b",v1=".len() + 2 * TAG_LEN;
    let mut value =
        Vec::with_capacity(2 + timestamp.len() + entry_len * secrets.size_hint().0.max(1));
    value.extend_from_slice(b"t=");
    value.extend_from_slice(timestamp);
    for secret in secrets {
        let mac = tag(secret.string_key(), &[timestamp, b".", body]);
        value.extend_from_slice(b",v1=");
        // Written in place: encoding into a stack buffer and copying it in was measured slower.
        let start = value.len();
        value.resize(start + 2 * TAG_LEN, 0);
        if let Ok(out) = <&mut [u8; 2 * TAG_LEN]>::try_from(&mut value[start..]) {
            encode_hex_tag(&mac, out);
        }
    }
    if value.len() == 2 + timestamp.len() {
        return Err(SignError::NoSecrets);
    }
    // `try_from` takes the buffer as is; `from_maybe_shared(Bytes::from(..))` was measured slower.
    HeaderValue::try_from(value).map_err(|_| SignError::InvalidMessageId)
}

/// The Standard Webhooks `webhook-id`, `webhook-timestamp` and `webhook-signature` values, signed
/// with each `whsec_` secret in `secrets` (others are skipped).
///
/// # Errors
/// [`SignError::NoSecrets`] when none of `secrets` is a `whsec_` secret,
/// [`SignError::InvalidMessageId`] for an id that cannot be a `webhook-id`.
pub fn sign_standard<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    message_id: &str,
    now: OffsetDateTime,
    body: &[u8],
) -> Result<[HeaderValue; 3], SignError> {
    // Checked without an early exit, which lets the loop run over several bytes at a time.
    let invalid_bytes = message_id.bytes().fold(0u8, |invalid, b| {
        invalid | u8::from(!b.is_ascii_graphic() || b == b'.')
    });
    if message_id.is_empty() || invalid_bytes != 0 {
        return Err(SignError::InvalidMessageId);
    }
    let mut keys = secrets.into_iter().filter_map(Secret::standard_key);
    let first = keys.next().ok_or(SignError::NoSecrets)?;
    let mut digits = [0u8; 20];
    let timestamp = decimal(now.unix_timestamp(), &mut digits);
    let signed = |key| tag(key, &[message_id.as_bytes(), b".", timestamp, b".", body]);
    let first_tag = signed(first);
    // Three values of their own rather than slices of one shared buffer: slicing a `Bytes` makes it
    // reference-counted, which costs a second allocation and an atomic operation per slice and per
    // drop; a small allocation each was measured cheaper. The id and timestamp do not depend on the
    // tag, so the CPU can build them while the last hash blocks are still in flight (building them
    // before hashing, or the signature's buffer, was measured slower).
    let id = header_value(message_id.as_bytes())?;
    let timestamp = header_value(timestamp)?;
    // Exactly sized for one secret, the usual case; a rotation grows it once. The base64 is
    // written in place: encoding into a stack buffer and copying it in was measured slower (the
    // copy reads the buffer with wide loads right after narrow stores).
    let mut signature = Vec::with_capacity(b"v1,".len() + BASE64_TAG_LEN);
    let append = |signature: &mut Vec<u8>, tag: &[u8; TAG_LEN]| {
        let start = signature.len();
        signature.resize(start + BASE64_TAG_LEN, 0);
        if let Ok(out) = <&mut [u8; BASE64_TAG_LEN]>::try_from(&mut signature[start..]) {
            encode_base64_tag(tag, out);
        }
    };
    signature.extend_from_slice(b"v1,");
    append(&mut signature, &first_tag);
    for key in keys {
        signature.extend_from_slice(b" v1,");
        append(&mut signature, &signed(key));
    }
    let signature = HeaderValue::try_from(signature).map_err(|_| SignError::InvalidMessageId)?;
    Ok([id, timestamp, signature])
}

/// Builds a header value from bytes this module produced (digits, hex, base64, checked ids).
///
/// Copies into a new buffer of its own: a few bytes, and measured cheaper than handing over a
/// `Bytes` through `HeaderValue::from_maybe_shared`.
fn header_value(bytes: &[u8]) -> Result<HeaderValue, SignError> {
    HeaderValue::from_bytes(bytes).map_err(|_| SignError::InvalidMessageId)
}
