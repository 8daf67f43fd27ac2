//! The exact HTTP request of one attempt (DESIGN §3), and the NoPOS delivery header names.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};

use super::machine::AttemptToSend;
use crate::signature::{self, SignError};
use crate::{EncodeError, Endpoint, Envelope, EventId, EventType, WebhookEvent};

/// `x-nopos-event-id`: the envelope's `id`, the receiver's idempotency key.
pub const NOPOS_EVENT_ID: HeaderName = HeaderName::from_static("x-nopos-event-id");
/// `x-nopos-event-type`: the envelope's `type`, for routing without parsing the body.
pub const NOPOS_EVENT_TYPE: HeaderName = HeaderName::from_static("x-nopos-event-type");
/// `x-nopos-delivery-id`: this delivery (one event to one endpoint).
pub const NOPOS_DELIVERY_ID: HeaderName = HeaderName::from_static("x-nopos-delivery-id");
/// `x-nopos-delivery-attempt`: the attempt number, 1-based.
pub const NOPOS_DELIVERY_ATTEMPT: HeaderName = HeaderName::from_static("x-nopos-delivery-attempt");
/// The `user-agent` of every delivery: `nopos-webhooks/<crate version>`.
pub const NOPOS_USER_AGENT: &str = concat!("nopos-webhooks/", env!("CARGO_PKG_VERSION"));

/// An event serialized once, shared by every endpoint and every attempt: the body is a
/// reference-counted [`Bytes`], so building a request never copies it.
///
/// ```
/// use nopos_webhooks::{Envelope, Event, EventId, SerializedEvent};
/// use time::macros::datetime;
///
/// let at = datetime!(2024-11-10 10:30 UTC);
/// let envelope = Envelope::new(EventId::from_parts(at, [1; 10]), at, Event::sample(&"payment.succeeded".parse()?).unwrap());
/// let event = SerializedEvent::from_envelope(&envelope)?;
/// assert_eq!(event.event_type(), "payment.succeeded");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedEvent {
    id: EventId,
    event_type: EventType,
    body: Bytes,
}

impl SerializedEvent {
    /// An event from its id, type and envelope bytes (as stored by an emitter).
    pub fn new(id: EventId, event_type: EventType, body: Bytes) -> SerializedEvent {
        SerializedEvent {
            id,
            event_type,
            body,
        }
    }

    /// Serializes `envelope` once.
    ///
    /// # Errors
    /// [`EncodeError`] when the payload cannot be serialized.
    pub fn from_envelope<E: WebhookEvent>(
        envelope: &Envelope<E>,
    ) -> Result<SerializedEvent, EncodeError> {
        Ok(SerializedEvent {
            id: envelope.id.clone(),
            event_type: envelope.event_type(),
            body: envelope.to_bytes()?,
        })
    }

    /// The event id.
    pub fn id(&self) -> &EventId {
        &self.id
    }

    /// The event type.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// The envelope bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// Why [`build_request`] could not build a request. Each is a caller's mistake: input from the
/// network cannot cause one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The attempt is for another endpoint than the one given.
    #[error("attempt is for endpoint {attempt}, not {endpoint}")]
    EndpointMismatch {
        /// The attempt's endpoint.
        attempt: String,
        /// The endpoint given.
        endpoint: String,
    },
    /// The attempt is for another event than the one given.
    #[error("attempt is for event {attempt}, not {event}")]
    EventMismatch {
        /// The attempt's event.
        attempt: String,
        /// The event given.
        event: String,
    },
    /// The signature headers could not be produced.
    #[error("cannot sign the delivery: {0}")]
    Sign(#[from] SignError),
}

/// The request of `attempt`: `POST` to the endpoint's URL with exactly the DESIGN §3 headers
/// (`content-type`, `user-agent`, `x-nopos-event-id`, `x-nopos-event-type`,
/// `x-nopos-delivery-id`, `x-nopos-delivery-attempt`, `x-nopos-signature` and, for `whsec_`
/// secrets, `webhook-id`/`webhook-timestamp`/`webhook-signature`) plus the endpoint's custom
/// headers, which can never replace those. The body is `event`'s shared bytes, not a copy.
///
/// It is signed at `attempt.started_at` with every secret active then, newest first; the
/// Standard Webhooks `webhook-id` is the event id, so receivers deduplicate retries with it too.
///
/// ```
/// use nopos_webhooks::*;
/// use time::macros::datetime;
///
/// let now = datetime!(2024-11-10 10:30 UTC);
/// let endpoint = Endpoint::new(
///     EndpointId::from_parts(now, [1; 10]),
///     EndpointUrl::parse("https://your-app.com/webhooks/nopos")?,
///     EventFilter::all(),
///     SecretSet::new(Secret::new("your_webhook_secret")?),
///     now,
/// );
/// let envelope = Envelope::new(
///     EventId::from_parts(now, [2; 10]),
///     now,
///     Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap(),
/// );
/// let event = SerializedEvent::from_envelope(&envelope)?;
/// let mut delivery = DeliveryMachine::new(
///     now,
///     DeliveryId::from_parts(now, [3; 10]),
///     event.id().clone(),
///     endpoint.id.clone(),
///     RetrySchedule::default(),
/// );
/// let attempt = delivery.poll_transmit(now).unwrap();
/// let request = build_request(&endpoint, &attempt, &event)?;
/// assert_eq!(request.headers()["x-nopos-delivery-attempt"], "1");
///
/// let verifier = Verifier::new([Secret::new("your_webhook_secret")?]);
/// assert!(verifier.verify(request.headers(), request.body(), now).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`RequestError`] when the attempt does not belong to `endpoint` and `event`.
pub fn build_request(
    endpoint: &Endpoint,
    attempt: &AttemptToSend,
    event: &SerializedEvent,
) -> Result<Request<Bytes>, RequestError> {
    if attempt.endpoint_id != endpoint.id {
        return Err(RequestError::EndpointMismatch {
            attempt: attempt.endpoint_id.to_string(),
            endpoint: endpoint.id.to_string(),
        });
    }
    if attempt.event_id != event.id {
        return Err(RequestError::EventMismatch {
            attempt: attempt.event_id.to_string(),
            event: event.id.to_string(),
        });
    }
    let now = attempt.started_at;
    // `sign` walks the secrets twice (NoPOS, then Standard Webhooks), so it needs a cloneable
    // iterator; there are at most a handful.
    let secrets: Vec<_> = endpoint.secrets.active(now).collect();
    let signatures = signature::sign(secrets.iter().copied(), event.id.as_str(), now, &event.body)?;

    let mut request = Request::new(event.body.clone());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = endpoint.url.uri().clone();
    // Sized for every header below (and two an HTTP client may add), so that the map is
    // allocated once instead of growing and rehashing halfway through.
    let signature_headers = 1 + signatures.standard().map_or(0, |values| values.len());
    let headers = request.headers_mut();
    *headers =
        HeaderMap::with_capacity(endpoint.headers.len() + FIXED_HEADERS + signature_headers + 2);
    // Custom headers first, so that even a reserved name that slipped past validation would be
    // overwritten by the delivery's own value below.
    for (name, value) in endpoint.headers.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(NOPOS_USER_AGENT),
    );
    // Ids and event types are checked `[A-Za-z0-9_.-]`, always valid header values.
    headers.insert(NOPOS_EVENT_ID, header_value(event.id.as_str()));
    headers.insert(NOPOS_EVENT_TYPE, header_value(event.event_type.as_str()));
    headers.insert(
        NOPOS_DELIVERY_ID,
        header_value(attempt.delivery_id.as_str()),
    );
    headers.insert(NOPOS_DELIVERY_ATTEMPT, HeaderValue::from(attempt.attempt));
    signatures.move_into(headers);
    Ok(request)
}

/// Headers `build_request` sets on every delivery besides the signatures: content type, user
/// agent, event id and type, delivery id and attempt.
const FIXED_HEADERS: usize = 6;

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}
