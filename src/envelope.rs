//! The envelope: `{id, type, created_at, data}`, to bytes once and back.
//!
//! This module owns the wire shape of a delivery body (DESIGN §3). An emitter serializes an envelope
//! once with [`Envelope::to_bytes`] and sends those exact bytes to every endpoint on every attempt;
//! a receiver verifies the signature over the raw bytes first and only then calls
//! [`Envelope::from_slice`]. Nothing here re-serializes received JSON.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::event::{DataError, Event, WebhookEvent};
use crate::{EventId, EventType};

/// One event as sent on the wire.
///
/// ```
/// use nopos_webhooks::{Envelope, Event};
///
/// let body = br#"{"id":"evt_1234567890","type":"transaction.completed",
///   "created_at":"2024-11-10T10:30:00Z","data":{"transaction_id":"txn_9876543210",
///   "amount":125.50,"status":"completed","customer_id":"cust_123456"}}"#;
/// let envelope = Envelope::<Event>::from_slice(body)?;
/// match &envelope.data {
///     Event::TransactionCompleted(sale) => {
///         assert_eq!(sale.amount.to_string(), "125.50");
///         assert_eq!(sale.customer_id.as_deref(), Some("cust_123456"));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), nopos_webhooks::EnvelopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Envelope<E = Event> {
    /// The event id: the idempotency key, the same on every endpoint and every retry.
    pub id: EventId,
    /// When the event happened, in UTC.
    pub created_at: OffsetDateTime,
    /// The typed payload; its event type is the envelope's `type`.
    pub data: E,
}

/// Why bytes are not a valid envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The bytes are not a JSON object with valid `id`, `type` and `created_at` and an object `data`:
    /// invalid JSON or UTF-8, a missing or duplicated field, a field of the wrong type, an id without
    /// `evt_`, a type name outside the grammar, a timestamp that is not RFC 3339, or nesting deeper
    /// than serde_json's limit. The message names the field and position.
    #[error("malformed envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    /// `data` is present but is not a JSON object.
    #[error("malformed envelope: `data` is not a JSON object")]
    DataNotObject,
    /// The envelope is well formed but its `data` does not fit the payload type.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Why an envelope could not be serialized.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload's serializer failed, or `created_at` is outside years 0–9999.
    #[error("cannot serialize event: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The payload did not serialize to a JSON object (a custom payload that is a string, say).
    #[error("event data must serialize to a JSON object")]
    DataNotObject,
}

/// The first parsing stage: the fixed fields typed, `data` left as raw text for the payload type.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    id: EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(with = "crate::timestamp")]
    created_at: OffsetDateTime,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl<E: WebhookEvent> Envelope<E> {
    /// An envelope for `data` that happened at `created_at`.
    ///
    /// `created_at` is converted to UTC and truncated to whole microseconds, the precision that
    /// PostgreSQL and most receivers' databases keep, so the time survives a round trip anywhere.
    pub fn new(id: EventId, created_at: OffsetDateTime, data: E) -> Envelope<E> {
        let created_at = created_at.to_offset(UtcOffset::UTC);
        let micros = created_at.microsecond();
        let created_at = created_at.replace_microsecond(micros).unwrap_or(created_at);
        Envelope {
            id,
            created_at,
            data,
        }
    }

    /// The envelope's `type`: the payload's event type.
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// Serializes the envelope to the bytes every delivery of this event carries, with the fields
    /// in the order `id`, `type`, `created_at`, `data` and no whitespace.
    ///
    /// # Errors
    /// [`EncodeError`] when the payload cannot be serialized or is not a JSON object.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = Vec::with_capacity(256);
        let created_at = self
            .created_at
            .to_offset(UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|err| EncodeError::Serialize(serde::ser::Error::custom(err)))?;
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut out, self.id.as_str()).map_err(EncodeError::Serialize)?;
        out.extend_from_slice(b",\"type\":");
        serde_json::to_writer(&mut out, self.event_type().as_str())
            .map_err(EncodeError::Serialize)?;
        out.extend_from_slice(b",\"created_at\":");
        serde_json::to_writer(&mut out, &created_at).map_err(EncodeError::Serialize)?;
        out.extend_from_slice(b",\"data\":");
        let data_start = out.len();
        self.data
            .serialize_data(&mut serde_json::Serializer::new(&mut out))
            .map_err(EncodeError::Serialize)?;
        // A payload that is not an object would make an envelope every receiver rejects.
        if out.get(data_start) != Some(&b'{') {
            return Err(EncodeError::DataNotObject);
        }
        out.push(b'}');
        Ok(Bytes::from(out))
    }

    /// Parses an envelope from the raw body bytes.
    ///
    /// Call it after verifying the signature over these same bytes. Unknown fields are ignored;
    /// with `E = Event` an unknown `type` gives [`Event::Unknown`] instead of an error.
    ///
    /// # Errors
    /// [`EnvelopeError`]; bad input never panics.
    pub fn from_slice(bytes: &[u8]) -> Result<Envelope<E>, EnvelopeError> {
        let raw: RawEnvelope<'_> =
            serde_json::from_slice(bytes).map_err(EnvelopeError::Malformed)?;
        if !raw.data.get().starts_with('{') {
            return Err(EnvelopeError::DataNotObject);
        }
        let data = E::from_data(&raw.event_type, raw.data)?;
        Ok(Envelope {
            id: raw.id,
            created_at: raw.created_at.to_offset(UtcOffset::UTC),
            data,
        })
    }
}

impl fmt::Display for Envelope<Event> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.event_type(), self.id)
    }
}
