//! Event routes: emitting (idempotently), reading an event back, retrying a delivery, and the
//! event catalogue.

use axum::extract::{Path, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::body::{JsonBody, compact_json};
use super::error::ApiError;
use super::views::{DeliveryView, EventView, List};
use super::{ServerState, json_response};
use crate::store::{DeliveryQuery, Store, StoreError, StoredEvent};
use crate::transport::HttpClient;
use crate::{
    CATALOGUE, DeliveryId, Envelope, Event, EventId, EventType, SerializedEvent, UnknownEvent,
    WebhookEvent,
};

/// The longest `Idempotency-Key` accepted, in bytes.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmitRequest {
    #[serde(rename = "type")]
    event_type: String,
    data: Box<RawValue>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, with = "crate::timestamp::option")]
    created_at: Option<OffsetDateTime>,
}

#[derive(Serialize)]
struct Emitted<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: &'a EventType,
    deliveries: &'a [DeliveryId],
    duplicate: bool,
}

/// The event id an `Idempotency-Key` stands for: `evt_` + the first 128 bits of SHA-256(key), in
/// hex. Deterministic, so the store's once-per-id emit makes the key idempotent (see the module
/// docs of [`super`]).
fn id_for_key(key: &str) -> EventId {
    let digest = Sha256::digest(key.as_bytes());
    let id = format!("{}{}", EventId::PREFIX, hex::encode(&digest[..16]));
    EventId::try_from(id.as_str()).unwrap_or_else(|_| unreachable!("hex ids are valid"))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key must be one value of 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable \
                 ASCII characters"
            ),
        )
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(invalid());
    }
    Ok(Some(key))
}

/// `POST /v1/events`: stores the event and fans it out; answers `202` once it is durable.
pub(super) async fn emit<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<EmitRequest>,
) -> Result<Response, ApiError> {
    let now = OffsetDateTime::now_utc();
    let key = idempotency_key(&headers)?;
    let id = match (&request.id, key) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_request",
                "give either an `id` or an Idempotency-Key header, not both",
            ));
        }
        (Some(id), None) => EventId::try_from(id.as_str())
            .map_err(|err| ApiError::invalid("invalid_id", format!("id: {err}")))?,
        (None, Some(key)) => id_for_key(key),
        (None, None) => EventId::generate(now),
    };
    let event_type = EventType::try_from(request.event_type.as_str())
        .map_err(|err| ApiError::invalid("unknown_event_type", format!("type: {err}")))?;
    if !state.store.config().event_types.contains(&event_type) {
        return Err(StoreError::UnknownEventType(event_type.to_string()).into());
    }
    let data = compact_json(request.data.get());
    let limit = state.config.max_event_data_size;
    if data.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
            format!(
                "event data of {} bytes exceeds the {limit}-byte limit",
                data.len()
            ),
        ));
    }
    if !data.starts_with('{') {
        return Err(ApiError::invalid(
            "invalid_event_data",
            "data must be a JSON object",
        ));
    }
    let data = RawValue::from_string(data)
        .map_err(|err| ApiError::invalid("invalid_event_data", err.to_string()))?;
    // Known types must parse as their payload, so every receiver can read what is sent; the data
    // itself is sent as given (unknown fields and number spellings kept).
    Event::from_data(&event_type, &data)
        .map_err(|err| ApiError::invalid("invalid_event_data", err.to_string()))?;
    let payload = Event::Unknown(UnknownEvent::new(event_type.clone(), data));
    let envelope = Envelope::new(id, request.created_at.unwrap_or(now), payload);
    let event = SerializedEvent::from_envelope(&envelope)
        .map_err(|err| ApiError::invalid("invalid_event_data", err.to_string()))?;
    let receipt = state.store.emit(&event, now).await?;
    if receipt.duplicate {
        let stored = state.store.get_event(&receipt.event_id).await?;
        if !same_event(&stored, &event) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "event {} already exists with a different type or data",
                    receipt.event_id
                ),
            ));
        }
    } else {
        tracing::info!(
            event_id = %receipt.event_id,
            event_type = %event_type,
            deliveries = receipt.deliveries.len(),
            "event accepted"
        );
    }
    let mut response = json_response(
        StatusCode::ACCEPTED,
        &Emitted {
            id: &receipt.event_id,
            event_type: &event_type,
            deliveries: &receipt.deliveries,
            duplicate: receipt.duplicate,
        },
    );
    if receipt.duplicate {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The stored envelope's fixed fields, `data` as raw text.
#[derive(Deserialize)]
struct StoredEnvelope<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Whether a repeated emit is the same event: same type and byte-identical compact data.
fn same_event(stored: &StoredEvent, new: &SerializedEvent) -> bool {
    let parse = |body: &[u8]| {
        serde_json::from_slice::<StoredEnvelope<'_>>(body)
            .ok()
            .map(|envelope| {
                (
                    envelope.event_type.to_owned(),
                    compact_json(envelope.data.get()),
                )
            })
    };
    match (parse(stored.event.body()), parse(new.body())) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `GET /v1/events/{id}`: the envelope as delivered, with its deliveries.
pub(super) async fn get_one<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = EventId::try_from(id.as_str()).map_err(|_| ApiError::not_found("event", &id))?;
    let stored = state.store.get_event(&id).await?;
    let deliveries = state
        .store
        .list_deliveries(&DeliveryQuery::event(id.clone()).limit(usize::MAX))
        .await?;
    let envelope: StoredEnvelope<'_> =
        serde_json::from_slice(stored.event.body()).map_err(|err| {
            ApiError::from(StoreError::Corrupt {
                what: "event",
                message: err.to_string(),
            })
        })?;
    Ok(json_response(
        StatusCode::OK,
        &EventView {
            id: &id,
            event_type: envelope.event_type,
            created_at: envelope.created_at,
            data: envelope.data,
            stored_at: stored.stored_at,
            deliveries: deliveries
                .iter()
                .map(|delivery| DeliveryView::new(delivery, None))
                .collect(),
        },
    ))
}

/// `POST /v1/deliveries/{id}/retry`: sends a delivered or failed delivery again, with a fresh
/// schedule; `409` while it is still being attempted.
pub(super) async fn retry_delivery<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = DeliveryId::try_from(id.as_str()).map_err(|_| ApiError::not_found("delivery", &id))?;
    let delivery = state.store.replay(&id, OffsetDateTime::now_utc()).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &DeliveryView::new(&delivery, None),
    ))
}

#[derive(Serialize)]
struct EventTypeView<'a> {
    #[serde(rename = "type")]
    event_type: &'a EventType,
    description: Option<&'a str>,
    /// The `data` the test tool sends for this type.
    sample: Option<Box<RawValue>>,
}

/// `GET /v1/event-types`: the catalogue with sample payloads, then custom types.
pub(super) async fn event_types<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
) -> Response {
    let data: Vec<EventTypeView<'_>> = state
        .store
        .config()
        .event_types
        .iter()
        .map(|event_type| EventTypeView {
            event_type,
            description: CATALOGUE
                .iter()
                .find(|info| info.event_type == event_type)
                .map(|info| info.description),
            sample: Event::sample(event_type).and_then(|event| sample_data(&event)),
        })
        .collect();
    json_response(StatusCode::OK, &List { data })
}

fn sample_data(event: &Event) -> Option<Box<RawValue>> {
    let mut out = Vec::new();
    event
        .serialize_data(&mut serde_json::Serializer::new(&mut out))
        .ok()?;
    RawValue::from_string(String::from_utf8(out).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_deterministic_and_valid() {
        let a = id_for_key("order-1234");
        assert_eq!(a, id_for_key("order-1234"));
        assert_ne!(a, id_for_key("order-1235"));
        assert_eq!(a.as_str().len(), 4 + 32);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("abc"));
        assert_eq!(idempotency_key(&headers).unwrap(), Some("abc"));
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("def"));
        assert!(idempotency_key(&headers).is_err());
        let mut long = HeaderMap::new();
        long.insert(
            IDEMPOTENCY_KEY,
            HeaderValue::from_str(&"k".repeat(256)).unwrap(),
        );
        assert!(idempotency_key(&long).is_err());
    }
}
