//! Receiving deliveries: verify the raw body, parse it into a typed event, process each event once.
//!
//! This module owns the receiver's pipeline — size limit, signature, envelope, duplicate check, in
//! that order — and the HTTP-facing classes of its failures ([`RejectReason`]). It is
//! framework-neutral and sans-IO: it takes headers, the raw body bytes and `now`, and never reads
//! a socket or a clock. The `axum` and `tower` features read the body and the system clock and
//! call in here; any other framework can do the same with [`verify_request`].
//!
//! # The order matters
//! 1. **Size** before anything: a body over the verifier's limit is refused (`413`) unhashed.
//! 2. **Signature** over the exact bytes received, never over re-serialized JSON
//!    ([why](crate::security)); a failure is `401`, and the body is never parsed.
//! 3. **Envelope**: only a genuine body is parsed; a failure is `400` (the sender is genuine but
//!    sent something this receiver cannot read).
//! 4. **Duplicates** by event id, which is inside the signed body and never changes between
//!    attempts; a duplicate is acknowledged with `200` and not processed again.
//!
//! ```
//! use nopos_webhooks::{Event, Secret, Verifier, receiver, signature};
//! use time::macros::datetime;
//!
//! let secret = Secret::new("your_webhook_secret")?;
//! let now = datetime!(2024-11-10 10:30 UTC);
//! let body = br#"{"id":"evt_1234567890","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"transaction_id":"txn_9876543210","amount":125.50,"status":"completed","customer_id":"cust_123456"}}"#;
//! let mut request = http::Request::post("/webhooks/nopos").body(&body[..])?;
//! signature::sign([&secret], "evt_1234567890", now, body)?.insert_into(request.headers_mut());
//!
//! let verifier = Verifier::new([secret]);
//! let envelope = receiver::verify_request::<Event, _>(&verifier, &request, now)?;
//! assert!(matches!(envelope.data, Event::TransactionCompleted(_)));
//!
//! // A tampered body fails the signature check (401) and is never parsed.
//! let tampered = http::Request::post("/").body(&b"{}"[..])?;
//! let err = receiver::verify_request::<Event, _>(&verifier, &tampered, now).unwrap_err();
//! assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
//! assert_eq!(err.code(), "missing_signature");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Return 200 quickly, process asynchronously
//! NoPOS waits a bounded time for the answer and counts a slow one as a failure, then retries —
//! so a receiver that does its work (emails, purchase orders, inventory sync) before answering
//! gets duplicates and, under load, a growing backlog of retries. The pattern:
//!
//! 1. verify, parse and deduplicate in the request (microseconds);
//! 2. hand the event to a **bounded** queue (for example a `tokio::sync::mpsc::channel` with a
//!    capacity) that background workers drain, and answer `200` at once;
//! 3. when the queue is full, [`forget`](WebhookReceiver::forget) the id and answer `503`: NoPOS
//!    retries later (honouring `Retry-After`), so nothing is dropped and memory stays bounded;
//! 4. a worker that fails to process an event forgets its id, so a later delivery is processed.
//!
//! An in-memory queue loses what it holds if the process dies after answering `200`. When that
//! matters, write the event to durable storage (your own database) before answering, and
//! process it from there.
//!
//! `examples/receiver_axum.rs` implements this with the axum extractor.

mod dedup;
mod error;

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Request};
use time::OffsetDateTime;

pub use dedup::{DedupError, DedupFuture, DedupOutcome, Deduplicator, MemoryDeduplicator};
pub use error::{ReceiveError, RejectReason};

use crate::event::WebhookEvent;
use crate::{Envelope, Event, EventId, Verified, Verifier};

/// Verifies a request's signature over its raw body, then parses the body into a typed envelope.
///
/// The body type is anything that is bytes in memory (`Bytes`, `Vec<u8>`, `&[u8]`, `String`);
/// read it from the network under [`Verifier::body_limit`] first. No duplicate check: see
/// [`WebhookReceiver`] for that.
///
/// # Errors
/// [`ReceiveError::BodyTooLarge`], [`ReceiveError::Signature`] (nothing parsed) or
/// [`ReceiveError::Envelope`] (genuine but not a valid envelope for `E`).
pub fn verify_request<E: WebhookEvent, B: AsRef<[u8]>>(
    verifier: &Verifier,
    request: &Request<B>,
    now: OffsetDateTime,
) -> Result<Envelope<E>, ReceiveError> {
    verify_body(verifier, request.headers(), request.body().as_ref(), now)
}

/// [`verify_request`] for frameworks that hand over headers and body separately.
///
/// # Errors
/// As [`verify_request`].
pub fn verify_body<E: WebhookEvent>(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Envelope<E>, ReceiveError> {
    verify_and_parse(verifier, headers, body, now).map(|(envelope, _)| envelope)
}

fn verify_and_parse<E: WebhookEvent>(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(Envelope<E>, Verified), ReceiveError> {
    let limit = verifier.body_limit();
    if body.len() > limit {
        return Err(ReceiveError::BodyTooLarge { limit });
    }
    let verified = verifier.verify(headers, body, now)?;
    let envelope = Envelope::from_slice(body)?;
    Ok((envelope, verified))
}

/// A delivery that passed verification and parsing, with the duplicate check's answer.
///
/// It is what [`WebhookReceiver::receive`] returns, what the axum extractor extracts and what the
/// tower layer puts into the request's extensions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedEvent<E = Event> {
    /// The parsed envelope; `envelope.id` is the idempotency key.
    pub envelope: Envelope<E>,
    /// Which scheme and secret verified it, and the signed timestamp.
    pub verified: Verified,
    /// Whether this event id was already received within the deduplicator's time to live.
    /// Acknowledge a duplicate with `200` and do not process it again. Always `false` without a
    /// deduplicator.
    pub duplicate: bool,
}

impl<E> VerifiedEvent<E> {
    /// The event id, the idempotency key.
    pub fn id(&self) -> &EventId {
        &self.envelope.id
    }
}

/// Everything a receiver endpoint needs: the verifier and, optionally, a deduplicator. Cheap to
/// clone (both are shared), so it can live in an application's state.
///
/// ```
/// use nopos_webhooks::{Event, MemoryDeduplicator, Secret, Verifier, WebhookReceiver, signature};
/// use time::macros::datetime;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let secret = Secret::new("your_webhook_secret")?;
/// let receiver = WebhookReceiver::new(Verifier::new([secret.clone()]))
///     .with_deduplicator(MemoryDeduplicator::default());
///
/// let now = datetime!(2024-11-10 10:30 UTC);
/// let body = br#"{"id":"evt_1","type":"payment.succeeded","created_at":"2024-11-10T10:30:00Z","data":{"payment_id":"pay_1","transaction_id":"txn_1","amount":125.50,"method":"card"}}"#;
/// let mut headers = http::HeaderMap::new();
/// signature::sign([&secret], "evt_1", now, body)?.insert_into(&mut headers);
///
/// let first = receiver.receive::<Event>(&headers, body, now).await?;
/// assert!(!first.duplicate);
/// let again = receiver.receive::<Event>(&headers, body, now).await?;
/// assert!(again.duplicate);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct WebhookReceiver {
    verifier: Arc<Verifier>,
    deduplicator: Option<Arc<dyn Deduplicator>>,
}

impl WebhookReceiver {
    /// A receiver that verifies with `verifier` and does not deduplicate.
    pub fn new(verifier: Verifier) -> WebhookReceiver {
        WebhookReceiver {
            verifier: Arc::new(verifier),
            deduplicator: None,
        }
    }

    /// Also checks every genuine delivery against `deduplicator`. Pass an `Arc` to keep a
    /// handle on it (an `Arc<D>` is a deduplicator too).
    #[must_use]
    pub fn with_deduplicator(
        mut self,
        deduplicator: impl Deduplicator + 'static,
    ) -> WebhookReceiver {
        self.deduplicator = Some(Arc::new(deduplicator));
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The deduplicator, when one is configured.
    pub fn deduplicator(&self) -> Option<&dyn Deduplicator> {
        self.deduplicator.as_deref()
    }

    /// The largest body accepted, in bytes: the verifier's [`body_limit`](Verifier::body_limit).
    /// Read no more than this from the network.
    pub fn body_limit(&self) -> usize {
        self.verifier.body_limit()
    }

    /// Verifies, parses and deduplicates one delivery from its headers and raw body.
    ///
    /// The duplicate check runs only for genuine, parsable deliveries, so forged requests cannot
    /// fill the deduplicator.
    ///
    /// # Errors
    /// As [`verify_request`], plus [`ReceiveError::Deduplication`] when the deduplicator fails.
    pub async fn receive<E: WebhookEvent>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<VerifiedEvent<E>, ReceiveError> {
        let (envelope, verified) = verify_and_parse::<E>(&self.verifier, headers, body, now)?;
        let duplicate = match &self.deduplicator {
            Some(deduplicator) => deduplicator
                .check_and_mark(&envelope.id, now)
                .await?
                .is_duplicate(),
            None => false,
        };
        Ok(VerifiedEvent {
            envelope,
            verified,
            duplicate,
        })
    }

    /// Forgets event `id` in the deduplicator (if any), so that its next delivery is processed:
    /// call it when processing a new event failed or could not be queued.
    ///
    /// # Errors
    /// [`DedupError`] when the deduplicator fails.
    pub async fn forget(&self, id: &EventId) -> Result<(), DedupError> {
        match &self.deduplicator {
            Some(deduplicator) => deduplicator.forget(id).await,
            None => Ok(()),
        }
    }
}

impl From<Verifier> for WebhookReceiver {
    fn from(verifier: Verifier) -> WebhookReceiver {
        WebhookReceiver::new(verifier)
    }
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("verifier", &self.verifier)
            .field("deduplicates", &self.deduplicator.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Secret, signature};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-11-10 10:30 UTC);

    fn signed(body: &[u8], secret: &Secret) -> HeaderMap {
        let mut headers = HeaderMap::new();
        signature::sign([secret], "evt_1", NOW, body)
            .unwrap()
            .insert_into(&mut headers);
        headers
    }

    #[test]
    fn verifies_before_parsing() {
        let secret = Secret::new("your_webhook_secret").unwrap();
        let verifier = Verifier::new([secret.clone()]);
        // Invalid JSON with a bad signature is a signature error, not a JSON error.
        let err =
            verify_body::<Event>(&verifier, &signed(b"{}", &secret), b"not json", NOW).unwrap_err();
        assert!(matches!(err, ReceiveError::Signature(_)), "{err:?}");
        // Invalid JSON with a good signature is a JSON error.
        let err = verify_body::<Event>(&verifier, &signed(b"not json", &secret), b"not json", NOW)
            .unwrap_err();
        assert!(matches!(err, ReceiveError::Envelope(_)), "{err:?}");
        assert_eq!(err.code(), "invalid_payload");
    }

    #[test]
    fn body_over_the_limit_is_refused_first() {
        let secret = Secret::new("your_webhook_secret").unwrap();
        let verifier = Verifier::new([secret.clone()]).max_body_size(4);
        let err = verify_body::<Event>(&verifier, &HeaderMap::new(), b"12345", NOW).unwrap_err();
        assert!(matches!(err, ReceiveError::BodyTooLarge { limit: 4 }));
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn errors_and_debug_do_not_show_secrets() {
        let secret = Secret::new("your_webhook_secret").unwrap();
        let other = Secret::new("another_secret_value").unwrap();
        let body = br#"{"id":"evt_1","type":"x.y","created_at":"2024-11-10T10:30:00Z","data":{}}"#;
        let headers = signed(body, &other);
        let expected = headers[signature::NOPOS_SIGNATURE]
            .to_str()
            .unwrap()
            .to_owned();
        let receiver = WebhookReceiver::new(Verifier::new([secret]));
        let err = verify_body::<Event>(receiver.verifier(), &headers, body, NOW).unwrap_err();
        for text in [
            err.to_string(),
            format!("{err:?}"),
            String::from_utf8(err.response().into_body().to_vec()).unwrap(),
            format!("{receiver:?}"),
        ] {
            assert!(!text.contains("your_webhook_secret"), "{text}");
            assert!(!text.contains("another_secret_value"), "{text}");
            assert!(!text.contains(&expected[20..]), "{text}");
        }
    }
}
