//! The management API (feature `server`): the announcement's REST service as an axum [`Router`]
//! over any [`Store`], to mount in your own application or run with `nopos-webhooks serve`.
//!
//! This module owns the HTTP shape of the emitter: routes, request validation, status codes, the
//! error body, the bearer key, the test tool and delivery analytics. It decides nothing about
//! deliveries: endpoints are checked by the store's [`StoreConfig`](crate::store::StoreConfig)
//! (URL policy, event types, payload size), events are fanned out by [`Store::emit`], and the
//! test tool sends through [`send_attempt`](crate::dispatcher::send_attempt), the dispatcher's
//! own signing path. It runs no dispatcher: run a
//! [`Dispatcher`](crate::dispatcher::Dispatcher) on the same store next to it. It reads the
//! system clock; the core never does.
//!
//! # Routes
//! Everything but `GET /healthz` needs `Authorization: Bearer <api key>` ([`ApiKey`]).
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}` |
//! | `POST /v1/webhooks` `{url, events, secret?, description?, headers?}` | `201` the endpoint with its `id` (`wh_…`) and `secret` (generated when not given) |
//! | `GET /v1/webhooks` | `200 {"data":[endpoint…]}` |
//! | `GET /v1/webhooks/{id}` | `200` the endpoint (never its secret) |
//! | `PATCH /v1/webhooks/{id}` `{url?, events?, description?, headers?, status?}` | `200` the endpoint; `"status":"enabled"` re-enables a disabled one |
//! | `DELETE /v1/webhooks/{id}` | `204`; its unfinished deliveries are cancelled |
//! | `POST /v1/webhooks/{id}/rotate-secret` `{grace_period_secs?}` | `200 {id, secret, previous_secrets_expire_at}` |
//! | `POST /v1/webhooks/test` `{webhook_id, event_type}` | `200` the attempt: `delivered`, `status_code`, `latency_ms`, `error` |
//! | `POST /v1/events` `{type, data, id?, created_at?}` + optional `Idempotency-Key` | `202 {id, type, deliveries, duplicate}` once the event is durable |
//! | `GET /v1/events/{id}` | `200` the envelope with its deliveries |
//! | `GET /v1/webhooks/{id}/deliveries?status=&limit=` | `200 {"data":[delivery with its attempts…]}` |
//! | `POST /v1/deliveries/{id}/retry` | `202` the delivery, scheduled again |
//! | `POST /v1/webhooks/{id}/recover` `{since}` | `202 {recovered}`: failed deliveries since then are replayed |
//! | `GET /v1/webhooks/{id}/stats?window_secs=` | `200` attempts, success rate, latency p50/p95 |
//! | `GET /v1/event-types` | `200 {"data":[{type, description, sample}…]}` |
//!
//! # Errors
//! Every refusal is `{"error":{"code":"…","message":"…"}}` and changes nothing:
//! `400 malformed_json`; `401 unauthorized`; `404 not_found`; `409 conflict`, `invalid_state`
//! (retrying an unfinished delivery) or `idempotency_conflict` (an event id or key reused for a
//! different event); `413 payload_too_large` (request body over
//! [`ServerConfig::max_body_size`]) or `event_too_large` (event `data` over
//! [`ServerConfig::max_event_data_size`]); `422` with `invalid_request` (wrong JSON shape, bad
//! query parameter), `invalid_url`, `invalid_events`, `unknown_event_type`, `blocked_target`
//! (private address), `invalid_secret`, `invalid_description`, `invalid_headers`,
//! `invalid_event_data`, `invalid_id` or `invalid_idempotency_key`; `500 internal_error` when the
//! store fails (details go to the log, not the client).
//!
//! # Idempotent emits
//! An event is stored once per id: [`Store::emit`] ignores an id it already has, in the same
//! transaction that would have written it. `POST /v1/events` uses that for both forms of
//! idempotency. With `id`, the id is the key. With an `Idempotency-Key` header (1–255 printable
//! ASCII characters), the event id is derived from the key: `evt_` followed by the first 128 bits
//! of SHA-256(key) in hex. So a retried request finds its event even after a restart and even
//! when two copies race, with no separate key table; the price is that such ids are not
//! time-sortable. Giving both `id` and a key is refused (`422`), and a repeated id or key whose
//! `type` or `data` differ from the stored event's is `409 idempotency_conflict`. A repeat
//! answers `202` with the original event id and deliveries, `"duplicate": true` and an
//! `idempotent-replayed: true` header.
//!
//! ```
//! use std::sync::Arc;
//! use nopos_webhooks::reqwest::ReqwestClient;
//! use nopos_webhooks::server::{self, ApiKey, ServerState};
//! use nopos_webhooks::store::{StoreConfig, memory::MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new(StoreConfig::default()));
//! let state = ServerState::new(store, ReqwestClient::new()?, ApiKey::new("change-me-to-a-long-key")?);
//! // Mount it next to your own routes; run a `Dispatcher` on the same store to deliver.
//! let app: axum::Router = axum::Router::new().nest("/webhooks-admin", server::router(state));
//! # let _ = app;
//! # Ok(()) }
//! ```

mod auth;
mod body;
mod error;
mod events;
mod stats;
mod views;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};

pub use auth::{ApiKey, ApiKeyError, GENERATED_API_KEY_PREFIX, MAX_API_KEY_LEN, MIN_API_KEY_LEN};
pub use stats::{DEFAULT_STATS_WINDOW_SECS, MAX_STATS_WINDOW_SECS};

use crate::store::{DEFAULT_MAX_PAYLOAD_SIZE, Store};
use crate::transport::HttpClient;
use error::ApiError;

/// The default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

/// Limits of the management API.
///
/// # Default
/// Request bodies up to [`DEFAULT_MAX_BODY_SIZE`] (1 MiB); event `data` up to
/// [`DEFAULT_MAX_PAYLOAD_SIZE`] (256 KiB) once serialized. The store applies its own
/// [`max_payload_size`](crate::store::StoreConfig::max_payload_size) to the whole envelope too.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request body read, in bytes; larger ones are refused with `413`.
    pub max_body_size: usize,
    /// Largest event `data` accepted by `POST /v1/events`, in bytes, compact JSON.
    pub max_event_data_size: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_event_data_size: DEFAULT_MAX_PAYLOAD_SIZE,
        }
    }
}

impl ServerConfig {
    /// Sets the largest request body.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> ServerConfig {
        self.max_body_size = bytes;
        self
    }

    /// Sets the largest event `data`.
    #[must_use]
    pub fn max_event_data_size(mut self, bytes: usize) -> ServerConfig {
        self.max_event_data_size = bytes;
        self
    }
}

/// What the routes share: the store, the HTTP client of the test tool, the API key and the
/// limits. Cheap to clone.
pub struct ServerState<S, C> {
    store: Arc<S>,
    client: Arc<C>,
    api_key: Arc<ApiKey>,
    config: Arc<ServerConfig>,
}

impl<S, C> Clone for ServerState<S, C> {
    fn clone(&self) -> ServerState<S, C> {
        ServerState {
            store: Arc::clone(&self.store),
            client: Arc::clone(&self.client),
            api_key: Arc::clone(&self.api_key),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, C> std::fmt::Debug for ServerState<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("api_key", &self.api_key)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static, C: HttpClient> ServerState<S, C> {
    /// State with the default [`ServerConfig`]. `client` sends the test tool's deliveries: give it
    /// the same [`AddressPolicy`](crate::AddressPolicy) as the dispatcher's.
    pub fn new(store: Arc<S>, client: C, api_key: ApiKey) -> ServerState<S, C> {
        ServerState {
            store,
            client: Arc::new(client),
            api_key: Arc::new(api_key),
            config: Arc::new(ServerConfig::default()),
        }
    }

    /// Sets the limits.
    #[must_use]
    pub fn with_config(mut self, config: ServerConfig) -> ServerState<S, C> {
        self.config = Arc::new(config);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The limits.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}

/// The management API's routes (see the [module docs](self)), ready to serve or to
/// [`nest`](Router::nest) into a larger application.
pub fn router<S: Store + 'static, C: HttpClient>(state: ServerState<S, C>) -> Router {
    let api = Router::new()
        .route(
            "/v1/webhooks",
            get(webhooks::list::<S, C>).post(webhooks::create::<S, C>),
        )
        .route("/v1/webhooks/test", post(webhooks::test::<S, C>))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_one::<S, C>)
                .patch(webhooks::update::<S, C>)
                .delete(webhooks::delete::<S, C>),
        )
        .route(
            "/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret::<S, C>),
        )
        .route("/v1/webhooks/{id}/recover", post(webhooks::recover::<S, C>))
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries::<S, C>),
        )
        .route("/v1/webhooks/{id}/stats", get(webhooks::stats::<S, C>))
        .route("/v1/events", post(events::emit::<S, C>))
        .route("/v1/events/{id}", get(events::get_one::<S, C>))
        .route(
            "/v1/deliveries/{id}/retry",
            post(events::retry_delivery::<S, C>),
        )
        .route("/v1/event-types", get(events::event_types::<S, C>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key::<S, C>,
        ))
        .with_state(state);
    Router::new().route("/healthz", get(healthz)).merge(api)
}

async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A JSON answer with `status`.
fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize a management API answer");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the answer could not be serialized",
            )
            .into_response()
        }
    }
}
