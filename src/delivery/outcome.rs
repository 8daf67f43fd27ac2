//! Attempt outcomes: what an HTTP response or a transport failure means for a delivery, and the
//! record of each attempt that the attempt log keeps.

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// The most response-body bytes an [`AttemptRecord`] keeps: 4 KiB, enough for an error message
/// or a stack trace's head, small enough to log every attempt. Adapters need not read more.
pub const MAX_EXCERPT_BYTES: usize = 4 * 1024;

/// The furthest a `Retry-After` can push the next attempt: 12 hours after the response, the
/// longest wait of the default schedule. A receiver asking for more gets its attempt then; one
/// asking for less never gets an attempt earlier than the schedule's.
pub const MAX_RETRY_AFTER: Duration = Duration::hours(12);

/// A failure before a usable HTTP response arrived. Adapters map their client's errors to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransportError {
    /// The whole request, body included, took longer than the configured timeout.
    Timeout,
    /// The TCP connection could not be established (refused, reset, unreachable).
    Connect,
    /// The host name could not be resolved.
    Dns,
    /// The TLS handshake failed (bad certificate, protocol mismatch).
    Tls,
    /// Every address the host resolved to was refused by the [`crate::AddressPolicy`].
    BlockedAddress,
    /// The event body is larger than the configured maximum payload, so it was not sent.
    BodyTooLarge,
    /// Anything else (a malformed response, an I/O error mid-response).
    Other,
}

/// The failure class an [`AttemptRecord`] stores, for logs, metrics and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// A 3xx: redirects are never followed, so the event did not arrive.
    Redirect,
    /// 410 Gone: the receiver says the endpoint no longer exists.
    Gone,
    /// 429 Too Many Requests.
    TooManyRequests,
    /// 503 Service Unavailable.
    Unavailable,
    /// Any other 4xx.
    ClientError,
    /// Any other 5xx.
    ServerError,
    /// A status outside 200–599 (a 1xx as a final response, or 6xx and above).
    UnexpectedStatus,
    /// [`TransportError::Timeout`].
    Timeout,
    /// [`TransportError::Connect`].
    Connect,
    /// [`TransportError::Dns`].
    Dns,
    /// [`TransportError::Tls`].
    Tls,
    /// [`TransportError::BlockedAddress`].
    BlockedAddress,
    /// [`TransportError::BodyTooLarge`].
    BodyTooLarge,
    /// [`TransportError::Other`].
    Other,
    /// The worker that made the attempt lost its lease (it died or stalled); the outcome is
    /// unknown.
    LeaseExpired,
}

impl From<TransportError> for ErrorClass {
    fn from(error: TransportError) -> ErrorClass {
        match error {
            TransportError::Timeout => ErrorClass::Timeout,
            TransportError::Connect => ErrorClass::Connect,
            TransportError::Dns => ErrorClass::Dns,
            TransportError::Tls => ErrorClass::Tls,
            TransportError::BlockedAddress => ErrorClass::BlockedAddress,
            TransportError::BodyTooLarge => ErrorClass::BodyTooLarge,
            TransportError::Other => ErrorClass::Other,
        }
    }
}

/// What an outcome means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutcomeClass {
    /// 2xx: the event arrived.
    Delivered,
    /// 410 Gone: stop this delivery and disable the endpoint.
    Gone,
    /// Anything else: retry per schedule (no earlier than a 429/503 `Retry-After`).
    Failed,
}

/// A `Retry-After` value: seconds to wait, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Delay(Duration),
    /// `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate).
    At(OffsetDateTime),
}

impl RetryAfter {
    /// Parses a `Retry-After` value: delta-seconds, or an IMF-fixdate HTTP date. Anything else
    /// (including the obsolete RFC 850 and asctime date forms, and a date whose weekday does not
    /// match) gives `None`, and the schedule alone decides.
    ///
    /// ```
    /// use nopos_webhooks::RetryAfter;
    /// use time::{Duration, macros::datetime};
    ///
    /// assert_eq!(RetryAfter::parse(b"120"), Some(RetryAfter::Delay(Duration::seconds(120))));
    /// assert_eq!(
    ///     RetryAfter::parse(b"Sun, 10 Nov 2024 10:35:00 GMT"),
    ///     Some(RetryAfter::At(datetime!(2024-11-10 10:35 UTC))),
    /// );
    /// assert_eq!(RetryAfter::parse(b"soon"), None);
    /// ```
    pub fn parse(value: &[u8]) -> Option<RetryAfter> {
        let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // Saturate absurd values; the cap applies later anyway.
            let seconds = text.parse::<i64>().unwrap_or(i64::MAX);
            return Some(RetryAfter::Delay(Duration::seconds(seconds)));
        }
        parse_imf_fixdate(text).map(RetryAfter::At)
    }

    /// The earliest time the next attempt may start, for a response received at `now`, before
    /// the [`MAX_RETRY_AFTER`] cap.
    pub fn not_before(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            RetryAfter::Delay(delay) => now.saturating_add(delay),
            RetryAfter::At(at) => at,
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7.
fn parse_imf_fixdate(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year repr:full] [hour]:[minute]:[second] GMT"
    );
    let at = PrimitiveDateTime::parse(text, &format).ok()?.assume_utc();
    // `time` parses the weekday but does not check it against the date.
    let weekday = text.get(..3)?;
    (at.weekday().to_string().get(..3)? == weekday).then_some(at)
}

/// What happened to one attempt, as the adapter observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptOutcome {
    /// When the attempt started (the time signed into it).
    pub started_at: OffsetDateTime,
    /// How long it took until the response head arrived or the transport failed.
    pub latency: Duration,
    /// The response or the failure.
    pub result: AttemptResult,
}

/// The response or the transport failure of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// An HTTP response arrived.
    Response {
        /// Its status.
        status: StatusCode,
        /// Its `Retry-After`, parsed, for 429 and 503 responses only (other statuses' values
        /// are ignored, as DESIGN §4 says).
        retry_after: Option<RetryAfter>,
        /// At most [`MAX_EXCERPT_BYTES`] of its body, as text.
        excerpt: String,
    },
    /// No usable response.
    Transport(TransportError),
}

impl AttemptOutcome {
    /// The outcome of a response. The body may be the first bytes only; at most
    /// [`MAX_EXCERPT_BYTES`] of it are kept.
    pub fn from_response<B: AsRef<[u8]>>(
        started_at: OffsetDateTime,
        latency: Duration,
        response: &http::Response<B>,
    ) -> AttemptOutcome {
        AttemptOutcome::from_parts(
            started_at,
            latency,
            response.status(),
            response.headers(),
            response.body().as_ref(),
        )
    }

    /// The outcome of a response given as status, headers and (the start of) the body.
    pub fn from_parts(
        started_at: OffsetDateTime,
        latency: Duration,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> AttemptOutcome {
        let honours_retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let retry_after = honours_retry_after
            .then(|| headers.get(RETRY_AFTER))
            .flatten()
            .and_then(|value| RetryAfter::parse(value.as_bytes()));
        AttemptOutcome {
            started_at,
            latency,
            result: AttemptResult::Response {
                status,
                retry_after,
                excerpt: body_excerpt(body),
            },
        }
    }

    /// The outcome of an attempt that got no usable response.
    pub fn transport_failure(
        started_at: OffsetDateTime,
        latency: Duration,
        error: TransportError,
    ) -> AttemptOutcome {
        AttemptOutcome {
            started_at,
            latency,
            result: AttemptResult::Transport(error),
        }
    }

    /// What the outcome means for the delivery.
    pub fn class(&self) -> OutcomeClass {
        match &self.result {
            AttemptResult::Response { status, .. } if status.is_success() => {
                OutcomeClass::Delivered
            }
            AttemptResult::Response { status, .. } if *status == StatusCode::GONE => {
                OutcomeClass::Gone
            }
            AttemptResult::Response { .. } | AttemptResult::Transport(_) => OutcomeClass::Failed,
        }
    }

    /// The failure class, `None` for a delivered attempt.
    pub fn error_class(&self) -> Option<ErrorClass> {
        match &self.result {
            AttemptResult::Transport(error) => Some((*error).into()),
            AttemptResult::Response { status, .. } => match status.as_u16() {
                200..=299 => None,
                300..=399 => Some(ErrorClass::Redirect),
                410 => Some(ErrorClass::Gone),
                429 => Some(ErrorClass::TooManyRequests),
                503 => Some(ErrorClass::Unavailable),
                400..=499 => Some(ErrorClass::ClientError),
                500..=599 => Some(ErrorClass::ServerError),
                _ => Some(ErrorClass::UnexpectedStatus),
            },
        }
    }

    /// The parsed `Retry-After` of a 429 or 503 response.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match &self.result {
            AttemptResult::Response { retry_after, .. } => *retry_after,
            AttemptResult::Transport(_) => None,
        }
    }

    /// The record of this outcome as attempt number `attempt`.
    pub fn record(&self, attempt: u32) -> AttemptRecord {
        let (status, excerpt) = match &self.result {
            AttemptResult::Response {
                status, excerpt, ..
            } => (Some(status.as_u16()), excerpt.clone()),
            AttemptResult::Transport(_) => (None, String::new()),
        };
        AttemptRecord {
            attempt,
            started_at: self.started_at,
            status,
            latency_ms: u64::try_from(self.latency.whole_milliseconds()).unwrap_or(0),
            error: self.error_class(),
            excerpt,
        }
    }
}

/// One attempt in a delivery's log; a plain serde struct for the stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The attempt number, 1-based, counted over the delivery's whole life (replays included);
    /// the value that was sent as `x-nopos-delivery-attempt`.
    pub attempt: u32,
    /// When it started.
    #[serde(with = "crate::timestamp")]
    pub started_at: OffsetDateTime,
    /// The response status, when a response arrived.
    pub status: Option<u16>,
    /// Milliseconds until the response head or the failure.
    pub latency_ms: u64,
    /// Why it failed; `None` when it delivered.
    pub error: Option<ErrorClass>,
    /// At most [`MAX_EXCERPT_BYTES`] of the response body as UTF-8 (invalid bytes replaced).
    #[serde(default)]
    pub excerpt: String,
}

impl AttemptRecord {
    /// The record of an attempt whose worker lost its lease.
    pub fn lease_expired(
        attempt: u32,
        started_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> AttemptRecord {
        AttemptRecord {
            attempt,
            started_at,
            status: None,
            latency_ms: u64::try_from((now - started_at).whole_milliseconds()).unwrap_or(0),
            error: Some(ErrorClass::LeaseExpired),
            excerpt: String::new(),
        }
    }
}

/// At most [`MAX_EXCERPT_BYTES`] of `body` as text. A character cut by the limit is dropped
/// rather than turned into a replacement character, invalid UTF-8 is replaced, and the result
/// never exceeds the limit in bytes.
pub fn body_excerpt(body: &[u8]) -> String {
    let mut cut = &body[..body.len().min(MAX_EXCERPT_BYTES)];
    if cut.len() < body.len() {
        // The start of the last (possibly partial) character, at most 3 bytes back.
        let tail = cut.len().saturating_sub(4);
        if let Some(lead) = (tail..cut.len()).rev().find(|&i| cut[i] & 0xc0 != 0x80) {
            let needed = match cut[lead] {
                0xf0..=0xff => 4,
                0xe0..=0xef => 3,
                0xc0..=0xdf => 2,
                _ => 1,
            };
            if cut.len() - lead < needed {
                cut = &cut[..lead];
            }
        }
    }
    let mut text = String::from_utf8_lossy(cut).into_owned();
    // Each invalid byte became a 3-byte U+FFFD; bring the text back under the limit.
    if text.len() > MAX_EXCERPT_BYTES {
        let mut end = MAX_EXCERPT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn excerpts_are_bounded_and_never_split_characters() {
        assert_eq!(body_excerpt(b"ok"), "ok");
        let euro = "€".repeat(2000); // 6000 bytes, 3 per char; 4096 is mid-character
        let e = body_excerpt(euro.as_bytes());
        assert_eq!(e.len(), 4095);
        assert!(e.chars().all(|c| c == '€'));
        let invalid = vec![0xff; 10_000];
        let e = body_excerpt(&invalid);
        assert!(e.len() <= MAX_EXCERPT_BYTES);
        assert!(e.chars().all(|c| c == '\u{fffd}'));
        let mut mixed = vec![b'a'; MAX_EXCERPT_BYTES - 1];
        mixed.extend_from_slice("é".as_bytes());
        assert_eq!(body_excerpt(&mixed).len(), MAX_EXCERPT_BYTES - 1);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            RetryAfter::parse(b" 0 "),
            Some(RetryAfter::Delay(Duration::ZERO))
        );
        assert_eq!(
            RetryAfter::parse(b"99999999999999999999999"),
            Some(RetryAfter::Delay(Duration::seconds(i64::MAX)))
        );
        assert_eq!(
            RetryAfter::parse(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RetryAfter::At(datetime!(1994-11-06 08:49:37 UTC)))
        );
        for bad in [
            &b"Mon, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"-5",
            b"1.5",
            b"",
            b"\xff",
        ] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn classes() {
        let at = datetime!(2024-11-10 10:30 UTC);
        let status = |code: u16| {
            AttemptOutcome::from_parts(
                at,
                Duration::ZERO,
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
                b"",
            )
        };
        assert_eq!(status(204).class(), OutcomeClass::Delivered);
        assert_eq!(status(204).error_class(), None);
        assert_eq!(status(301).class(), OutcomeClass::Failed);
        assert_eq!(status(301).error_class(), Some(ErrorClass::Redirect));
        assert_eq!(status(410).class(), OutcomeClass::Gone);
        assert_eq!(status(400).error_class(), Some(ErrorClass::ClientError));
        assert_eq!(status(500).error_class(), Some(ErrorClass::ServerError));
        assert_eq!(
            status(101).error_class(),
            Some(ErrorClass::UnexpectedStatus)
        );
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, http::HeaderValue::from_static("30"));
        let ignored =
            AttemptOutcome::from_parts(at, Duration::ZERO, StatusCode::BAD_GATEWAY, &headers, b"");
        assert_eq!(ignored.retry_after(), None);
        let honoured = AttemptOutcome::from_parts(
            at,
            Duration::ZERO,
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            b"",
        );
        assert_eq!(
            honoured.retry_after(),
            Some(RetryAfter::Delay(Duration::seconds(30)))
        );
    }
}
