//! Why a delivery is refused, and what the sender is told.

use std::error::Error as StdError;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::dedup::DedupError;
use crate::{EnvelopeError, VerifyError};

/// Why a delivery was not received: the one error of every receiver entry point.
///
/// Signature failures and JSON failures are separate variants, so that a `401` (the sender is not
/// who it claims, or the delivery is a replay) is never confused with a `400` (a genuine sender sent
/// something this receiver cannot parse). [`ReceiveError::reason`] gives the HTTP-facing class:
/// status code, short error code and a fixed message that never carries a secret, an expected
/// signature or a byte of the body. The `Display` text is for the receiver's own logs.
///
/// [`verify_request`](super::verify_request) and [`verify_body`](super::verify_body) produce
/// [`BodyTooLarge`](ReceiveError::BodyTooLarge), [`Signature`](ReceiveError::Signature) and
/// [`Envelope`](ReceiveError::Envelope); [`WebhookReceiver::receive`](super::WebhookReceiver::receive)
/// adds [`Deduplication`](ReceiveError::Deduplication); the adapters that read bodies add
/// [`Body`](ReceiveError::Body).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The body is larger than the verifier's [`body_limit`](crate::Verifier::body_limit): it was
    /// neither hashed nor parsed, and the adapters stop reading it at the limit.
    #[error("request body exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The request body could not be read: the client went away, or the transfer encoding was
    /// broken. Only adapters that read bodies from the network produce it.
    #[error("cannot read the request body")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    /// The signature did not verify: missing, malformed, outside the replay window, or not
    /// matching any configured secret. The body was not parsed.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// The signature is valid but the body is not a valid envelope for the requested event type.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The delivery is genuine, but the deduplicator could not say whether it was seen before;
    /// answering `503` makes the sender retry later instead of the event being lost or doubled.
    #[error(transparent)]
    Deduplication(#[from] DedupError),
}

impl ReceiveError {
    /// The HTTP-facing class of this error.
    pub fn reason(&self) -> RejectReason {
        match self {
            ReceiveError::BodyTooLarge { .. } => RejectReason::PayloadTooLarge,
            ReceiveError::Body(_) => RejectReason::UnreadableBody,
            ReceiveError::Signature(err) => match err {
                VerifyError::BodyTooLarge { .. } => RejectReason::PayloadTooLarge,
                VerifyError::MissingSignature => RejectReason::MissingSignature,
                VerifyError::MalformedHeader { .. } => RejectReason::MalformedSignature,
                VerifyError::TimestampTooOld { .. } => RejectReason::TimestampTooOld,
                VerifyError::TimestampTooNew { .. } => RejectReason::TimestampTooNew,
                VerifyError::NoMatchingSignature { .. } => RejectReason::InvalidSignature,
            },
            ReceiveError::Envelope(_) => RejectReason::InvalidPayload,
            ReceiveError::Deduplication(_) => RejectReason::DeduplicationUnavailable,
        }
    }

    /// The status to answer with: `401` for signature problems, `400` for a body that is not a
    /// valid envelope, `413` for a body over the limit, `503` when duplicates cannot be checked.
    pub fn status(&self) -> StatusCode {
        self.reason().status()
    }

    /// The short error code for the response body, such as `invalid_signature`.
    pub fn code(&self) -> &'static str {
        self.reason().code()
    }

    /// The response to send: [`RejectReason::response`] for this error's class.
    pub fn response(&self) -> Response<Bytes> {
        self.reason().response()
    }
}

/// The class of a refused delivery as the sender sees it: a status code, a short stable error
/// code and a fixed message.
///
/// Nothing here depends on the secret, the expected signature or the body, so the response can
/// be sent to anyone. The finer detail (which scheme, which field) stays in [`ReceiveError`] for
/// the receiver's logs.
///
/// | reason | status | code |
/// |---|---|---|
/// | [`PayloadTooLarge`](RejectReason::PayloadTooLarge) | 413 | `payload_too_large` |
/// | [`UnreadableBody`](RejectReason::UnreadableBody) | 400 | `unreadable_body` |
/// | [`MissingSignature`](RejectReason::MissingSignature) | 401 | `missing_signature` |
/// | [`MalformedSignature`](RejectReason::MalformedSignature) | 401 | `malformed_signature` |
/// | [`InvalidSignature`](RejectReason::InvalidSignature) | 401 | `invalid_signature` |
/// | [`TimestampTooOld`](RejectReason::TimestampTooOld) | 401 | `timestamp_too_old` |
/// | [`TimestampTooNew`](RejectReason::TimestampTooNew) | 401 | `timestamp_too_new` |
/// | [`InvalidPayload`](RejectReason::InvalidPayload) | 400 | `invalid_payload` |
/// | [`DeduplicationUnavailable`](RejectReason::DeduplicationUnavailable) | 503 | `deduplication_unavailable` |
///
/// ```
/// use nopos_webhooks::RejectReason;
///
/// let reason = RejectReason::InvalidSignature;
/// assert_eq!(reason.status(), http::StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     reason.json_body(),
///     r#"{"error":{"code":"invalid_signature","message":"the signature does not match the body"}}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The body is over the size limit (`413`).
    PayloadTooLarge,
    /// The body could not be read (`400`).
    UnreadableBody,
    /// No signature header of an accepted scheme (`401`).
    MissingSignature,
    /// A signature header that cannot be used: no timestamp, no well-formed entry (`401`).
    MalformedSignature,
    /// Well-formed signatures, none of which matches (`401`).
    InvalidSignature,
    /// The signed timestamp is older than the replay window (`401`).
    TimestampTooOld,
    /// The signed timestamp is further ahead than the replay window (`401`).
    TimestampTooNew,
    /// Genuine, but not a valid envelope (`400`).
    InvalidPayload,
    /// Genuine, but duplicates cannot be checked right now (`503`); the sender retries later.
    DeduplicationUnavailable,
}

impl RejectReason {
    /// The HTTP status code.
    pub fn status(self) -> StatusCode {
        match self {
            RejectReason::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RejectReason::UnreadableBody | RejectReason::InvalidPayload => StatusCode::BAD_REQUEST,
            RejectReason::MissingSignature
            | RejectReason::MalformedSignature
            | RejectReason::InvalidSignature
            | RejectReason::TimestampTooOld
            | RejectReason::TimestampTooNew => StatusCode::UNAUTHORIZED,
            RejectReason::DeduplicationUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short, stable error code: lowercase ASCII and `_`.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::PayloadTooLarge => "payload_too_large",
            RejectReason::UnreadableBody => "unreadable_body",
            RejectReason::MissingSignature => "missing_signature",
            RejectReason::MalformedSignature => "malformed_signature",
            RejectReason::InvalidSignature => "invalid_signature",
            RejectReason::TimestampTooOld => "timestamp_too_old",
            RejectReason::TimestampTooNew => "timestamp_too_new",
            RejectReason::InvalidPayload => "invalid_payload",
            RejectReason::DeduplicationUnavailable => "deduplication_unavailable",
        }
    }

    /// A fixed, human-readable message: the same for every request of this class.
    pub fn message(self) -> &'static str {
        match self {
            RejectReason::PayloadTooLarge => {
                "the request body is larger than this endpoint accepts"
            }
            RejectReason::UnreadableBody => "the request body could not be read",
            RejectReason::MissingSignature => "the request carries no signature header",
            RejectReason::MalformedSignature => "the signature header is malformed",
            RejectReason::InvalidSignature => "the signature does not match the body",
            RejectReason::TimestampTooOld => "the signature timestamp is too old",
            RejectReason::TimestampTooNew => "the signature timestamp is too far in the future",
            RejectReason::InvalidPayload => "the body is not a valid webhook envelope",
            RejectReason::DeduplicationUnavailable => {
                "the delivery cannot be checked for duplicates now; retry later"
            }
        }
    }

    /// The response body: `{"error":{"code":"…","message":"…"}}`.
    pub fn json_body(self) -> String {
        // Codes and messages are fixed ASCII without quotes or backslashes, so no escaping is
        // needed (a unit test checks that every body parses).
        format!(
            r#"{{"error":{{"code":"{}","message":"{}"}}}}"#,
            self.code(),
            self.message()
        )
    }

    /// The whole response: [`status`](RejectReason::status), `content-type: application/json`
    /// and [`json_body`](RejectReason::json_body). `503` adds `retry-after: 60`.
    pub fn response(self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(self.json_body()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self == RejectReason::DeduplicationUnavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        response
    }

    /// Every reason, for exhaustive tests and documentation.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::PayloadTooLarge,
        RejectReason::UnreadableBody,
        RejectReason::MissingSignature,
        RejectReason::MalformedSignature,
        RejectReason::InvalidSignature,
        RejectReason::TimestampTooOld,
        RejectReason::TimestampTooNew,
        RejectReason::InvalidPayload,
        RejectReason::DeduplicationUnavailable,
    ];
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_is_the_documented_json() {
        for reason in RejectReason::ALL {
            let body: serde_json::Value = serde_json::from_str(&reason.json_body()).unwrap();
            assert_eq!(body["error"]["code"], reason.code());
            assert_eq!(body["error"]["message"], reason.message());
            assert!(
                reason
                    .code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            let response = reason.response();
            assert_eq!(response.status(), reason.status());
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
    }

    #[test]
    fn signature_failures_are_401_and_json_failures_400() {
        use crate::Scheme;
        let scheme = Scheme::NoPos;
        for (err, code) in [
            (VerifyError::MissingSignature, "missing_signature"),
            (
                VerifyError::MalformedHeader { scheme },
                "malformed_signature",
            ),
            (VerifyError::TimestampTooOld { scheme }, "timestamp_too_old"),
            (VerifyError::TimestampTooNew { scheme }, "timestamp_too_new"),
            (
                VerifyError::NoMatchingSignature { scheme },
                "invalid_signature",
            ),
        ] {
            let err = ReceiveError::from(err);
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(err.code(), code);
        }
        let too_large = ReceiveError::from(VerifyError::BodyTooLarge { size: 2, limit: 1 });
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            ReceiveError::BodyTooLarge { limit: 1 }.code(),
            "payload_too_large"
        );
        let json = ReceiveError::from(EnvelopeError::DataNotObject);
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json.code(), "invalid_payload");
        let dedup = ReceiveError::from(DedupError::unavailable("store down"));
        assert_eq!(dedup.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(dedup.response().headers()[header::RETRY_AFTER], "60");
    }
}
