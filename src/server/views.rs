//! The JSON shapes the management API answers with.
//!
//! Secrets appear in exactly two answers: creating an endpoint and rotating its secret. Custom
//! header values are treated like secrets: write-only, listed by name.

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::{
    AttemptRecord, DeliveryId, DeliveryState, DeliveryStatus, DisableReason, Endpoint, EndpointId,
    EndpointStatus, EventFilter, EventId,
};

/// An endpoint, without its secrets.
#[derive(Serialize)]
pub(super) struct EndpointView<'a> {
    id: &'a EndpointId,
    url: &'a str,
    events: &'a EventFilter,
    description: Option<&'a str>,
    /// Names only: values may be credentials.
    headers: Vec<&'a str>,
    status: &'static str,
    disabled: Option<Disabled>,
    #[serde(with = "crate::timestamp")]
    created_at: OffsetDateTime,
    /// Only when the endpoint is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

#[derive(Serialize)]
struct Disabled {
    reason: DisableReason,
    #[serde(with = "crate::timestamp")]
    at: OffsetDateTime,
}

impl<'a> EndpointView<'a> {
    pub(super) fn new(endpoint: &'a Endpoint) -> EndpointView<'a> {
        let (status, disabled) = match endpoint.status {
            EndpointStatus::Disabled { reason, at } => ("disabled", Some(Disabled { reason, at })),
            EndpointStatus::Enabled => ("enabled", None),
        };
        EndpointView {
            id: &endpoint.id,
            url: endpoint.url.as_str(),
            events: &endpoint.filter,
            description: endpoint.description.as_deref(),
            headers: endpoint
                .headers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect(),
            status,
            disabled,
            created_at: endpoint.created_at,
            secret: None,
        }
    }

    /// The view with the endpoint's current secret: for the answer to its creation only.
    pub(super) fn with_secret(endpoint: &'a Endpoint) -> EndpointView<'a> {
        EndpointView {
            secret: Some(endpoint.secrets.current().expose_secret()),
            ..EndpointView::new(endpoint)
        }
    }
}

/// A delivery, with its attempt log when asked for.
#[derive(Serialize)]
pub(super) struct DeliveryView<'a> {
    id: &'a DeliveryId,
    event_id: &'a EventId,
    webhook_id: &'a EndpointId,
    status: DeliveryStatus,
    attempt_count: u32,
    #[serde(with = "crate::timestamp::option")]
    next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "crate::timestamp")]
    created_at: OffsetDateTime,
    #[serde(with = "crate::timestamp::option")]
    finished_at: Option<OffsetDateTime>,
    last_attempt: Option<&'a AttemptRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<&'a [AttemptRecord]>,
}

impl<'a> DeliveryView<'a> {
    pub(super) fn new(
        state: &'a DeliveryState,
        attempts: Option<&'a [AttemptRecord]>,
    ) -> DeliveryView<'a> {
        DeliveryView {
            id: &state.id,
            event_id: &state.event_id,
            webhook_id: &state.endpoint_id,
            status: state.status,
            attempt_count: state.attempts,
            next_attempt_at: state.next_attempt_at,
            created_at: state.created_at,
            finished_at: state.finished_at,
            last_attempt: state.last_attempt.as_ref(),
            attempts,
        }
    }
}

/// A list answer: `{"data": [...]}`.
#[derive(Serialize)]
pub(super) struct List<T> {
    pub(super) data: Vec<T>,
}

/// A stored event as its envelope, `data` byte for byte as delivered.
#[derive(Serialize)]
pub(super) struct EventView<'a> {
    pub(super) id: &'a EventId,
    #[serde(rename = "type")]
    pub(super) event_type: &'a str,
    pub(super) created_at: &'a str,
    pub(super) data: &'a RawValue,
    #[serde(with = "crate::timestamp")]
    pub(super) stored_at: OffsetDateTime,
    pub(super) deliveries: Vec<DeliveryView<'a>>,
}
