//! Endpoint routes: registration, changes, secret rotation, the test tool, deliveries, recovery
//! and analytics.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::body::{JsonBody, Patch, integer_param, query_params};
use super::error::ApiError;
use super::stats::{self, AttemptStats, DEFAULT_STATS_WINDOW_SECS, MAX_STATS_WINDOW_SECS};
use super::views::{DeliveryView, EndpointView, List};
use super::{ServerState, json_response};
use crate::dispatcher::send_attempt;
use crate::store::{DeliveryQuery, Store};
use crate::transport::HttpClient;
use crate::{
    AttemptToSend, CustomHeaders, DeliveryId, DeliveryStatus, DisableReason, Endpoint,
    EndpointHealth, EndpointId, EndpointUrl, Envelope, ErrorClass, Event, EventFilter, EventId,
    EventType, MAX_DESCRIPTION_LEN, Secret, SecretSet, SerializedEvent, UnknownEvent,
};

/// The longest grace period a rotation accepts: 30 days.
const MAX_GRACE_PERIOD_SECS: u64 = 30 * 24 * 60 * 60;
/// The most deliveries one list answer holds.
const MAX_DELIVERY_LIMIT: u64 = 1000;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An endpoint id from a path: one that cannot be valid cannot exist either.
fn endpoint_id(text: &str) -> Result<EndpointId, ApiError> {
    EndpointId::try_from(text).map_err(|_| ApiError::not_found("endpoint", text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateEndpoint {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

fn parse_url(text: &str) -> Result<EndpointUrl, ApiError> {
    EndpointUrl::parse(text).map_err(|err| ApiError::invalid("invalid_url", err.to_string()))
}

fn parse_events(patterns: &[String]) -> Result<EventFilter, ApiError> {
    EventFilter::parse(patterns)
        .map_err(|err| ApiError::invalid("invalid_events", format!("events: {err}")))
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(
            "invalid_description",
            format!("description is longer than {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(())
}

fn parse_headers(headers: &BTreeMap<String, String>) -> Result<CustomHeaders, ApiError> {
    let mut custom = CustomHeaders::new();
    for (name, value) in headers {
        custom
            .insert(name, value)
            .map_err(|err| ApiError::invalid("invalid_headers", err.to_string()))?;
    }
    Ok(custom)
}

/// `POST /v1/webhooks`: the announcement's registration call.
pub(super) async fn create<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    JsonBody(request): JsonBody<CreateEndpoint>,
) -> Result<Response, ApiError> {
    let now = now();
    let url = parse_url(&request.url)?;
    let filter = parse_events(&request.events)?;
    let secret = match &request.secret {
        Some(text) => {
            Secret::new(text).map_err(|err| ApiError::invalid("invalid_secret", err.to_string()))?
        }
        None => Secret::generate(),
    };
    let mut endpoint = Endpoint::new(
        EndpointId::generate(now),
        url,
        filter,
        SecretSet::new(secret),
        now,
    );
    if let Some(description) = request.description {
        check_description(&description)?;
        endpoint.description = Some(description);
    }
    if let Some(headers) = &request.headers {
        endpoint.headers = parse_headers(headers)?;
    }
    state.store.create_endpoint(&endpoint).await?;
    // The id only: a URL's query string may carry the receiver's token.
    tracing::info!(endpoint_id = %endpoint.id, "endpoint registered");
    let mut response = json_response(StatusCode::CREATED, &EndpointView::with_secret(&endpoint));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/webhooks/{}", endpoint.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /v1/webhooks`.
pub(super) async fn list<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
) -> Result<Response, ApiError> {
    let endpoints = state.store.list_endpoints().await?;
    let data = endpoints.iter().map(EndpointView::new).collect();
    Ok(json_response(StatusCode::OK, &List { data }))
}

/// `GET /v1/webhooks/{id}`.
pub(super) async fn get_one<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let endpoint = state.store.get_endpoint(&endpoint_id(&id)?).await?;
    Ok(json_response(StatusCode::OK, &EndpointView::new(&endpoint)))
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum StatusChange {
    Enabled,
    Disabled,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateEndpoint {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    headers: Patch<BTreeMap<String, String>>,
    #[serde(default)]
    status: Option<StatusChange>,
}

/// `PATCH /v1/webhooks/{id}`: every field is optional; `null` clears the description or headers.
pub(super) async fn update<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateEndpoint>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let now = now();
    // Validate everything before reading the endpoint, so that a refused request touches
    // nothing.
    let url = request.url.as_deref().map(parse_url).transpose()?;
    let filter = request.events.as_deref().map(parse_events).transpose()?;
    if let Patch::Set(description) = &request.description {
        check_description(description)?;
    }
    let headers = match &request.headers {
        Patch::Set(headers) => Some(parse_headers(headers)?),
        Patch::Clear => Some(CustomHeaders::new()),
        Patch::Keep => None,
    };
    let mut endpoint = state.store.get_endpoint(&id).await?;
    if let Some(url) = url {
        endpoint.url = url;
    }
    if let Some(filter) = filter {
        endpoint.filter = filter;
    }
    match request.description {
        Patch::Set(description) => endpoint.description = Some(description),
        Patch::Clear => endpoint.description = None,
        Patch::Keep => {}
    }
    if let Some(headers) = headers {
        endpoint.headers = headers;
    }
    match request.status {
        Some(StatusChange::Enabled) => endpoint.enable(),
        Some(StatusChange::Disabled) => endpoint.disable(now, DisableReason::Manual),
        None => {}
    }
    state.store.update_endpoint(&endpoint, now).await?;
    Ok(json_response(StatusCode::OK, &EndpointView::new(&endpoint)))
}

/// `DELETE /v1/webhooks/{id}`.
pub(super) async fn delete<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .store
        .delete_endpoint(&endpoint_id(&id)?, now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateSecret {
    #[serde(default)]
    grace_period_secs: Option<u64>,
}

#[derive(Serialize)]
struct Rotated<'a> {
    id: &'a EndpointId,
    secret: &'a str,
    #[serde(with = "crate::timestamp")]
    previous_secrets_expire_at: OffsetDateTime,
}

/// `POST /v1/webhooks/{id}/rotate-secret`: a new generated secret; the previous ones keep
/// signing for the grace period (default 24 hours).
pub(super) async fn rotate_secret<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RotateSecret>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let grace = match request.grace_period_secs {
        None => SecretSet::DEFAULT_GRACE_PERIOD,
        Some(secs) if secs <= MAX_GRACE_PERIOD_SECS => {
            Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_request",
                format!("grace_period_secs must be at most {MAX_GRACE_PERIOD_SECS} (30 days)"),
            ));
        }
    };
    let now = now();
    let endpoint = state
        .store
        .rotate_secret(&id, Secret::generate(), grace, now)
        .await?;
    tracing::info!(endpoint_id = %id, "endpoint secret rotated");
    Ok(json_response(
        StatusCode::OK,
        &Rotated {
            id: &endpoint.id,
            secret: endpoint.secrets.current().expose_secret(),
            previous_secrets_expire_at: now + grace,
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestRequest {
    webhook_id: String,
    event_type: String,
}

#[derive(Serialize)]
struct TestResult<'a> {
    webhook_id: &'a EndpointId,
    url: &'a str,
    event_type: &'a EventType,
    event_id: &'a EventId,
    delivery_id: &'a DeliveryId,
    delivered: bool,
    status_code: Option<u16>,
    latency_ms: u64,
    error: Option<ErrorClass>,
    response_excerpt: &'a str,
}

/// `POST /v1/webhooks/test`: the announcement's testing tool. Sends a sample event of the type
/// to the endpoint now, signed through the dispatcher's path, and answers with the attempt's
/// result. Nothing is stored: the test event has its own id and is not retried.
pub(super) async fn test<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    JsonBody(request): JsonBody<TestRequest>,
) -> Result<Response, ApiError> {
    let id = EndpointId::try_from(request.webhook_id.as_str())
        .map_err(|err| ApiError::invalid("invalid_id", format!("webhook_id: {err}")))?;
    let event_type = EventType::try_from(request.event_type.as_str())
        .map_err(|err| ApiError::invalid("unknown_event_type", format!("event_type: {err}")))?;
    if !state.store.config().event_types.contains(&event_type) {
        return Err(crate::store::StoreError::UnknownEventType(event_type.to_string()).into());
    }
    let endpoint = state.store.get_endpoint(&id).await?;
    let now = now();
    let data = Event::sample(&event_type).unwrap_or_else(|| {
        // A custom type has no sample: send it with empty data.
        let empty = serde_json::value::RawValue::from_string("{}".to_owned())
            .unwrap_or_else(|_| unreachable!("`{{}}` is valid JSON"));
        Event::Unknown(UnknownEvent::new(event_type.clone(), empty))
    });
    let envelope = Envelope::new(EventId::generate(now), now, data);
    let event = SerializedEvent::from_envelope(&envelope).map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("cannot build the sample event: {err}"),
        )
    })?;
    let attempt = AttemptToSend::new(
        DeliveryId::generate(now),
        event.id().clone(),
        endpoint.id.clone(),
        1,
        now,
    );
    let outcome = send_attempt(&*state.client, &endpoint, &attempt, &event).await;
    let record = outcome.record(1);
    tracing::info!(
        endpoint_id = %endpoint.id,
        delivered = record.error.is_none(),
        status = record.status.unwrap_or_default(),
        latency_ms = record.latency_ms,
        "test delivery sent"
    );
    Ok(json_response(
        StatusCode::OK,
        &TestResult {
            webhook_id: &endpoint.id,
            url: endpoint.url.as_str(),
            event_type: &event_type,
            event_id: event.id(),
            delivery_id: &attempt.delivery_id,
            delivered: record.error.is_none(),
            status_code: record.status,
            latency_ms: record.latency_ms,
            error: record.error,
            response_excerpt: &record.excerpt,
        },
    ))
}

fn parse_status(text: &str) -> Result<DeliveryStatus, ApiError> {
    const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Pending,
        DeliveryStatus::InFlight,
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::Paused,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];
    ALL.into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "invalid_request",
                format!("status must be one of {}", names.join(", ")),
            )
        })
}

/// `GET /v1/webhooks/{id}/deliveries?status=&limit=`: newest first, each with its attempts.
pub(super) async fn deliveries<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let params = query_params(query.as_deref(), &["status", "limit"])?;
    let limit = integer_param(&params, "limit", 100, 1, MAX_DELIVERY_LIMIT)?;
    let mut query =
        DeliveryQuery::endpoint(id.clone()).limit(usize::try_from(limit).unwrap_or(100));
    if let Some(status) = params.get("status") {
        query = query.status(parse_status(status)?);
    }
    // 404 for an unknown endpoint rather than an empty list.
    state.store.get_endpoint(&id).await?;
    let deliveries = state.store.list_deliveries(&query).await?;
    let mut logs = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        logs.push(state.store.attempts(&delivery.id).await?);
    }
    let data = deliveries
        .iter()
        .zip(&logs)
        .map(|(delivery, log)| DeliveryView::new(delivery, Some(log)))
        .collect();
    Ok(json_response(StatusCode::OK, &List { data }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecoverRequest {
    #[serde(with = "crate::timestamp")]
    since: OffsetDateTime,
}

#[derive(Serialize)]
struct RecoverResult<'a> {
    webhook_id: &'a EndpointId,
    #[serde(with = "crate::timestamp")]
    since: OffsetDateTime,
    recovered: usize,
}

/// `POST /v1/webhooks/{id}/recover`: replays the endpoint's failed deliveries created since then.
pub(super) async fn recover<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RecoverRequest>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let recovered = state.store.recover(&id, request.since, now()).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &RecoverResult {
            webhook_id: &id,
            since: request.since,
            recovered,
        },
    ))
}

#[derive(Serialize)]
struct StatsView<'a> {
    webhook_id: &'a EndpointId,
    window_secs: u64,
    #[serde(with = "crate::timestamp")]
    since: OffsetDateTime,
    #[serde(with = "crate::timestamp")]
    until: OffsetDateTime,
    #[serde(flatten)]
    stats: AttemptStats,
    health: EndpointHealth,
}

/// `GET /v1/webhooks/{id}/stats?window_secs=`: the delivery analytics of the last window
/// (default 24 hours, at most 30 days).
pub(super) async fn stats<S: Store + 'static, C: HttpClient>(
    State(state): State<ServerState<S, C>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let params = query_params(query.as_deref(), &["window_secs"])?;
    let window_secs = integer_param(
        &params,
        "window_secs",
        DEFAULT_STATS_WINDOW_SECS,
        1,
        MAX_STATS_WINDOW_SECS,
    )?;
    let until = now();
    let since = until - Duration::seconds(i64::try_from(window_secs).unwrap_or(i64::MAX));
    let health = state.store.endpoint_health(&id).await?;
    let records = state.store.endpoint_attempts(&id, since).await?;
    Ok(json_response(
        StatusCode::OK,
        &StatsView {
            webhook_id: &id,
            window_secs,
            since,
            until,
            stats: stats::compute(&records),
            health,
        },
    ))
}
