//! Durable storage: the [`Store`] trait every backend implements, and the shared planning code
//! that keeps backends from re-deciding anything.
//!
//! This module owns the storage contract (DESIGN §4–5): what `emit`, `claim` and `record_attempt`
//! promise, which errors they return, and the pure helpers ([`plan_fan_out`], [`reclaim`],
//! [`settle`]) that turn the sans-IO core's decisions into rows. Backends (memory, SQLite,
//! PostgreSQL) only move those rows in and out, atomically; they never decide which endpoint gets
//! an event, when a retry is due or when an endpoint is dead.

pub mod codec;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

use std::future::Future;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::delivery::SerializedEvent;
use crate::{
    AddressPolicy, AttemptOutcome, AttemptRecord, AttemptToSend, BlockedTarget, CATALOGUE,
    DeliveryEvent, DeliveryId, DeliveryMachine, DeliveryState, DeliveryStatus, DisableReason,
    Endpoint, EndpointHealth, EndpointId, EventFilter, EventId, EventType, HealthPolicy,
    RetrySchedule, Secret,
};

/// The default largest event body accepted by `emit`: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 256 * 1024;

/// The event types a store accepts: the built-in catalogue plus registered custom types.
///
/// # Default
/// The thirteen built-in NoPOS types and no custom ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTypes {
    custom: Vec<EventType>,
}

impl EventTypes {
    /// Also accepts `event_type` (a custom event definition).
    #[must_use]
    pub fn with(mut self, event_type: EventType) -> EventTypes {
        if !self.contains(&event_type) {
            self.custom.push(event_type);
        }
        self
    }

    /// Whether `event_type` is built in or registered.
    pub fn contains(&self, event_type: &EventType) -> bool {
        CATALOGUE.iter().any(|info| info.event_type == event_type)
            || self.custom.contains(event_type)
    }

    /// Every accepted type: the catalogue first, then custom types in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &EventType> {
        CATALOGUE
            .iter()
            .map(|info| info.event_type)
            .chain(self.custom.iter())
    }

    /// Checks that every pattern of `filter` can match an accepted type: exact names must be
    /// accepted types, `family.*` must prefix at least one, `*` always can.
    ///
    /// # Errors
    /// The first pattern that matches nothing, as [`StoreError::UnknownEventType`].
    pub fn check_filter(&self, filter: &EventFilter) -> Result<(), StoreError> {
        for pattern in filter.patterns() {
            let matches_some = self.iter().any(|t| pattern.matches(t));
            if !matches_some {
                return Err(StoreError::UnknownEventType(pattern.to_string()));
            }
        }
        Ok(())
    }
}

/// How a store applies the core's policies; fixed when the store is opened.
///
/// # Default
/// The announcement's retry schedule, endpoints disabled after 5 days of failures, 256 KiB maximum
/// payload, the built-in event types, and the safe address policy (private targets refused).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Schedule for endpoints without their own.
    pub default_schedule: RetrySchedule,
    /// When failing endpoints are disabled.
    pub health_policy: HealthPolicy,
    /// Largest event body `emit` accepts, in bytes.
    pub max_payload_size: usize,
    /// Event types `emit` and subscriptions accept.
    pub event_types: EventTypes,
    /// Which endpoint URLs are allowed at registration.
    pub address_policy: AddressPolicy,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            default_schedule: RetrySchedule::default(),
            health_policy: HealthPolicy::default(),
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
            event_types: EventTypes::default(),
            address_policy: AddressPolicy::default(),
        }
    }
}

impl StoreConfig {
    /// Sets the default retry schedule.
    #[must_use]
    pub fn default_schedule(mut self, schedule: RetrySchedule) -> StoreConfig {
        self.default_schedule = schedule;
        self
    }

    /// Sets the endpoint health policy.
    #[must_use]
    pub fn health_policy(mut self, policy: HealthPolicy) -> StoreConfig {
        self.health_policy = policy;
        self
    }

    /// Sets the largest accepted event body.
    #[must_use]
    pub fn max_payload_size(mut self, bytes: usize) -> StoreConfig {
        self.max_payload_size = bytes;
        self
    }

    /// Sets the accepted event types.
    #[must_use]
    pub fn event_types(mut self, types: EventTypes) -> StoreConfig {
        self.event_types = types;
        self
    }

    /// Sets the address policy for endpoint URLs.
    #[must_use]
    pub fn address_policy(mut self, policy: AddressPolicy) -> StoreConfig {
        self.address_policy = policy;
        self
    }

    /// Checks an endpoint before it is written: its URL's literal host and its subscriptions.
    ///
    /// # Errors
    /// [`StoreError::BlockedTarget`] or [`StoreError::UnknownEventType`].
    pub fn check_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.address_policy
            .check_url(&endpoint.url)
            .map_err(StoreError::BlockedTarget)?;
        self.event_types.check_filter(&endpoint.filter)
    }

    /// Checks an event before `emit` writes it.
    ///
    /// # Errors
    /// [`StoreError::PayloadTooLarge`] or [`StoreError::UnknownEventType`].
    pub fn check_event(&self, event: &SerializedEvent) -> Result<(), StoreError> {
        if event.body().len() > self.max_payload_size {
            return Err(StoreError::PayloadTooLarge {
                size: event.body().len(),
                limit: self.max_payload_size,
            });
        }
        if !self.event_types.contains(event.event_type()) {
            return Err(StoreError::UnknownEventType(
                event.event_type().as_str().to_owned(),
            ));
        }
        Ok(())
    }

    /// The schedule that applies to `endpoint`.
    pub fn schedule_for<'a>(&'a self, endpoint: &'a Endpoint) -> &'a RetrySchedule {
        endpoint.schedule_or(&self.default_schedule)
    }
}

/// Why a store operation failed. A failed operation changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No endpoint, event or delivery with that id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `endpoint`, `event` or `delivery`.
        kind: &'static str,
        /// The id looked up.
        id: String,
    },
    /// An endpoint with that id already exists.
    #[error("{kind} {id} already exists")]
    Conflict {
        /// `endpoint`.
        kind: &'static str,
        /// The conflicting id.
        id: String,
    },
    /// The event type, or a subscription pattern, names no accepted event type.
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    /// The event body is larger than the store's maximum payload size.
    #[error("event of {size} bytes exceeds the {limit}-byte payload limit")]
    PayloadTooLarge {
        /// The body's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The endpoint URL's host is not a public address.
    #[error(transparent)]
    BlockedTarget(BlockedTarget),
    /// The claim's lease expired, or another worker took the delivery over: the outcome was not
    /// recorded (the delivery will be attempted again; receivers deduplicate by event id).
    #[error("lease on delivery {0} was lost")]
    LeaseLost(String),
    /// The operation does not apply in the delivery's state (replaying one that is still pending).
    #[error("delivery {id} cannot be {action}: it is {status}")]
    InvalidState {
        /// The delivery.
        id: String,
        /// What was attempted: `replayed`.
        action: &'static str,
        /// Its status.
        status: &'static str,
    },
    /// Stored data could not be decoded (a row written by an incompatible version, or edited by
    /// hand).
    #[error("corrupt stored {what}: {message}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The database failed (connection lost, disk full, constraint violated, …).
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What `emit` did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitReceipt {
    /// The event.
    pub event_id: EventId,
    /// One delivery per subscribed endpoint (paused for disabled endpoints).
    pub deliveries: Vec<DeliveryId>,
    /// `true` when the event id was already stored: nothing new was enqueued, and `deliveries`
    /// are those of the first emit.
    pub duplicate: bool,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The serialized event, byte for byte as delivered.
    pub event: SerializedEvent,
    /// When `emit` stored it.
    pub stored_at: OffsetDateTime,
}

/// Proof that a worker holds a delivery: checked when the outcome is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A fresh token: unique per claim. Tokens tell claims apart, they are not credentials, so a
    /// per-process random prefix and a counter do (no system call per claim).
    pub fn generate() -> LeaseToken {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static PREFIX: OnceLock<String> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| hex::encode(crate::random::bytes::<12>()));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        LeaseToken(format!("{prefix}-{n:x}"))
    }

    /// A token read back from storage.
    pub fn from_stored(token: String) -> LeaseToken {
        LeaseToken(token)
    }

    /// The token as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A delivery claimed for one attempt: everything needed to send it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claim {
    /// The attempt to make (its number and signing time).
    pub attempt: AttemptToSend,
    /// The delivery's state with the attempt in flight.
    pub state: DeliveryState,
    /// The endpoint as it was when claimed (shared: claims of one endpoint do not copy it).
    pub endpoint: Arc<Endpoint>,
    /// The event body.
    pub event: SerializedEvent,
    /// Required to record the outcome.
    pub lease: LeaseToken,
    /// When the lease runs out; after it, another worker may reclaim the delivery.
    pub lease_until: OffsetDateTime,
    /// `state` as a SQL store wrote it when claiming. Recording the outcome usually finds the row
    /// still holding exactly this text, and then takes `state` as it is instead of decoding the
    /// text again (a JSON decode per delivery on the dispatcher's hottest path).
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "written and read by the SQL stores only")
    )]
    pub(crate) stored_state: Option<Arc<str>>,
    /// The PostgreSQL store's lease row listing this claim and the others taken with it: each
    /// settled claim counts down its row, and the last one deletes it.
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "written and read by the PostgreSQL store only")
    )]
    pub(crate) lease_group: Option<Arc<str>>,
}

/// What recording an outcome changed beyond the delivery itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// The delivery's state after the outcome.
    pub state: DeliveryState,
    /// Set when this outcome disabled the endpoint (410, or failing for the health period).
    pub endpoint_disabled: Option<DisableReason>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryQuery {
    /// Only this endpoint's.
    pub endpoint_id: Option<EndpointId>,
    /// Only this event's.
    pub event_id: Option<EventId>,
    /// Only deliveries in this status.
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

impl DeliveryQuery {
    /// Deliveries of one endpoint.
    pub fn endpoint(id: EndpointId) -> DeliveryQuery {
        DeliveryQuery {
            endpoint_id: Some(id),
            ..DeliveryQuery::default()
        }
    }

    /// Deliveries of one event.
    pub fn event(id: EventId) -> DeliveryQuery {
        DeliveryQuery {
            event_id: Some(id),
            ..DeliveryQuery::default()
        }
    }

    /// Restricts to one status.
    #[must_use]
    pub fn status(mut self, status: DeliveryStatus) -> DeliveryQuery {
        self.status = Some(status);
        self
    }

    /// Restricts the count.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> DeliveryQuery {
        self.limit = Some(limit);
        self
    }

    /// The effective limit: 100 by default.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }

    /// Whether `state` matches the filters (for stores that filter in memory).
    pub fn matches(&self, state: &DeliveryState) -> bool {
        self.endpoint_id
            .as_ref()
            .is_none_or(|id| *id == state.endpoint_id)
            && self
                .event_id
                .as_ref()
                .is_none_or(|id| *id == state.event_id)
            && self.status.is_none_or(|s| s == state.status)
    }
}

/// Durable storage for endpoints, events, deliveries and attempt logs.
///
/// Every method is atomic: it either does all it says or returns an error and changes nothing.
/// Times are always passed in (`now`); stores read no clock.
pub trait Store: Send + Sync {
    /// The policies this store applies.
    fn config(&self) -> &StoreConfig;

    /// Registers a new endpoint after checking it with [`StoreConfig::check_endpoint`].
    fn create_endpoint(
        &self,
        endpoint: &Endpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One endpoint.
    fn get_endpoint(
        &self,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Endpoint, StoreError>> + Send;

    /// Every endpoint, oldest first.
    fn list_endpoints(&self) -> impl Future<Output = Result<Vec<Endpoint>, StoreError>> + Send;

    /// Replaces an endpoint (URL, subscriptions, description, headers, schedule, status, secrets).
    /// A status change pauses or resumes its deliveries in the same transaction.
    fn update_endpoint(
        &self,
        endpoint: &Endpoint,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes an endpoint; its unfinished deliveries are cancelled (and kept, with its attempts).
    fn delete_endpoint(
        &self,
        id: &EndpointId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes `new` the endpoint's current secret; the previous ones keep signing until
    /// `now + grace` ([`SecretSet::rotate`](crate::SecretSet::rotate)). Returns the endpoint.
    fn rotate_secret(
        &self,
        id: &EndpointId,
        new: Secret,
        grace: Duration,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Endpoint, StoreError>> + Send {
        async move {
            let mut endpoint = self.get_endpoint(id).await?;
            endpoint.secrets.rotate(new, now, grace);
            self.update_endpoint(&endpoint, now).await?;
            Ok(endpoint)
        }
    }

    /// Disables an endpoint with `reason` (its deliveries pause) or, with `None`, enables it again
    /// (they resume and its health starts afresh). Returns the endpoint.
    fn set_endpoint_enabled(
        &self,
        id: &EndpointId,
        disable: Option<DisableReason>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Endpoint, StoreError>> + Send {
        async move {
            let mut endpoint = self.get_endpoint(id).await?;
            match disable {
                Some(reason) => endpoint.disable(now, reason),
                None => endpoint.enable(),
            }
            self.update_endpoint(&endpoint, now).await?;
            Ok(endpoint)
        }
    }

    /// The endpoint's health record (failures since, last success).
    fn endpoint_health(
        &self,
        id: &EndpointId,
    ) -> impl Future<Output = Result<EndpointHealth, StoreError>> + Send;

    /// Stores the event and one delivery per subscribed endpoint, atomically; durable when it
    /// returns. Emitting an id that is already stored enqueues nothing (idempotent).
    fn emit(
        &self,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<EmitReceipt, StoreError>> + Send;

    /// One stored event.
    fn get_event(
        &self,
        id: &EventId,
    ) -> impl Future<Output = Result<StoredEvent, StoreError>> + Send;

    /// Claims up to `limit` due deliveries for one attempt each, leased until `now + lease`.
    /// Deliveries whose lease expired are first settled as lost attempts ([`reclaim`]) and
    /// claimed again when due. Two concurrent claimers never get the same delivery.
    fn claim(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Claim>, StoreError>> + Send;

    /// Records an attempt's outcome: the attempt log entry, the delivery's next state and the
    /// endpoint's health, atomically ([`settle`] decides all three).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when the claim's lease is no longer held; nothing is written.
    fn record_attempt(
        &self,
        claim: &Claim,
        outcome: &AttemptOutcome,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Records several outcomes at once (group commit): the SQL stores write them in one
    /// transaction with one commit, so a dispatcher's throughput is not bounded by one disk flush
    /// per delivery. Each item gets its own result: a lost lease fails that item only. The whole
    /// call fails only when the backend does, and then nothing is written.
    ///
    /// The provided implementation records the items one by one.
    fn record_attempts(
        &self,
        batch: &[(&Claim, &AttemptOutcome)],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Result<Recorded, StoreError>>, StoreError>> + Send {
        async move {
            let mut results = Vec::with_capacity(batch.len());
            for (claim, outcome) in batch {
                results.push(self.record_attempt(claim, outcome, now).await);
            }
            Ok(results)
        }
    }

    /// Gives a claimed delivery back without an attempt (graceful shutdown before sending): it is
    /// due again at `now` and its attempt count is restored ([`release_state`]).
    fn release(
        &self,
        claim: &Claim,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The earliest time a delivery becomes due (or a lease expires), for sleeping until then.
    fn next_wakeup(
        &self,
    ) -> impl Future<Output = Result<Option<OffsetDateTime>, StoreError>> + Send;

    /// One delivery's state.
    fn get_delivery(
        &self,
        id: &DeliveryId,
    ) -> impl Future<Output = Result<DeliveryState, StoreError>> + Send;

    /// Deliveries matching `query`, newest first.
    fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> impl Future<Output = Result<Vec<DeliveryState>, StoreError>> + Send;

    /// A delivery's attempt log, oldest first.
    fn attempts(
        &self,
        id: &DeliveryId,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, StoreError>> + Send;

    /// Every attempt made to an endpoint that started at or after `since`, oldest first: the raw
    /// material of delivery analytics (success rate, latency percentiles).
    ///
    /// The provided implementation walks the endpoint's deliveries; SQL stores answer it with one
    /// query.
    fn endpoint_attempts(
        &self,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, StoreError>> + Send {
        async move {
            let query = DeliveryQuery::endpoint(endpoint_id.clone()).limit(usize::MAX);
            let mut records = Vec::new();
            for delivery in self.list_deliveries(&query).await? {
                for record in self.attempts(&delivery.id).await? {
                    if record.started_at >= since {
                        records.push(record);
                    }
                }
            }
            records.sort_by_key(|r| r.started_at);
            Ok(records)
        }
    }

    /// Sends a finished (delivered or failed) delivery again with a fresh schedule.
    fn replay(
        &self,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<DeliveryState, StoreError>> + Send;

    /// Replays every failed delivery of an endpoint created at or after `since`; returns how many.
    fn recover(
        &self,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Resolves when new work may be available (an emit, a replay, a re-enabled endpoint), or
    /// spuriously. Dispatchers also sleep until [`Store::next_wakeup`], so a store without
    /// notifications may resolve after a short polling interval.
    fn wait_for_work(&self) -> impl Future<Output = ()> + Send;
}

/// The deliveries `emit` creates: one per endpoint subscribed to the event's type, pending (or
/// paused when the endpoint is disabled), with fresh ids.
pub fn plan_fan_out<'a>(
    config: &StoreConfig,
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
    event: &SerializedEvent,
    now: OffsetDateTime,
) -> Vec<DeliveryState> {
    endpoints
        .into_iter()
        .filter(|endpoint| endpoint.subscribes_to(event.event_type()))
        .map(|endpoint| {
            let mut machine = DeliveryMachine::new(
                now,
                DeliveryId::generate(now),
                event.id().clone(),
                endpoint.id.clone(),
                config.schedule_for(endpoint).clone(),
            );
            if !endpoint.is_enabled() {
                machine.handle_endpoint_disabled(now);
            }
            machine.into_state()
        })
        .collect()
}

/// Starts an attempt on a due delivery for a claim, or `None` when it is not due.
pub fn start_attempt(
    config: &StoreConfig,
    endpoint: &Endpoint,
    state: DeliveryState,
    now: OffsetDateTime,
) -> Option<(AttemptToSend, DeliveryState)> {
    let mut machine = DeliveryMachine::from_state(state, config.schedule_for(endpoint).clone());
    let attempt = machine.poll_transmit(now)?;
    Some((attempt, machine.into_state()))
}

/// Settles an in-flight delivery whose lease expired (its worker died): the lost attempt is logged
/// and the delivery is scheduled again. Returns the new state and the log entry.
pub fn reclaim(
    config: &StoreConfig,
    endpoint: &Endpoint,
    state: DeliveryState,
    now: OffsetDateTime,
) -> (DeliveryState, Option<AttemptRecord>) {
    let mut machine = DeliveryMachine::from_state(state, config.schedule_for(endpoint).clone());
    machine.handle_lease_expired(now);
    if !endpoint.is_enabled() {
        machine.handle_endpoint_disabled(now);
    }
    let state = machine.into_state();
    let record = state.last_attempt.clone();
    (state, record)
}

/// Everything recording one outcome writes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settlement {
    /// The delivery's next state.
    pub state: DeliveryState,
    /// The attempt log entry.
    pub record: AttemptRecord,
    /// The endpoint's health after the outcome.
    pub health: EndpointHealth,
    /// Set when the endpoint must be disabled now (its other deliveries paused).
    pub disable: Option<DisableReason>,
}

/// Decides what recording `outcome` writes, from the delivery's claimed state, the endpoint as it
/// is now (it may have been disabled meanwhile) and its current health.
///
/// # Errors
/// [`StoreError::LeaseLost`] when the state is not the claimed attempt in flight.
pub fn settle(
    config: &StoreConfig,
    endpoint: &Endpoint,
    claimed: &Claim,
    current: DeliveryState,
    mut health: EndpointHealth,
    outcome: &AttemptOutcome,
    now: OffsetDateTime,
) -> Result<Settlement, StoreError> {
    let attempt = claimed.attempt.attempt;
    let mut machine = DeliveryMachine::from_state(current, config.schedule_for(endpoint).clone());
    machine
        .handle_outcome(now, attempt, outcome)
        .map_err(|_| StoreError::LeaseLost(claimed.attempt.delivery_id.to_string()))?;
    let mut disable = health.handle_outcome(now, outcome, &config.health_policy);
    while let Some(event) = machine.poll_event() {
        if let DeliveryEvent::DisableEndpoint { reason } = event {
            disable.get_or_insert(reason);
        }
    }
    if !endpoint.is_enabled() || disable.is_some() {
        machine.handle_endpoint_disabled(now);
    }
    let disable = disable.filter(|_| endpoint.is_enabled());
    let state = machine.into_state();
    let record = state
        .last_attempt
        .clone()
        .unwrap_or_else(|| outcome.record(attempt));
    Ok(Settlement {
        state,
        record,
        health,
        disable,
    })
}

/// Applies an endpoint status change to one of its deliveries (pause on disable, resume on
/// enable, cancel on delete).
pub fn apply_endpoint_change(
    config: &StoreConfig,
    endpoint: &Endpoint,
    state: DeliveryState,
    change: EndpointChange,
    now: OffsetDateTime,
) -> DeliveryState {
    let mut machine = DeliveryMachine::from_state(state, config.schedule_for(endpoint).clone());
    match change {
        EndpointChange::Disabled => machine.handle_endpoint_disabled(now),
        EndpointChange::Enabled => machine.handle_endpoint_enabled(now),
        EndpointChange::Deleted => machine.handle_endpoint_deleted(now),
    }
    machine.into_state()
}

/// A change to an endpoint that affects its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointChange {
    /// It was disabled: pause.
    Disabled,
    /// It was re-enabled: resume.
    Enabled,
    /// It was deleted: cancel.
    Deleted,
}

impl EndpointChange {
    /// The change from one status to another, if any.
    pub fn between(before: &Endpoint, after: &Endpoint) -> Option<EndpointChange> {
        match (before.is_enabled(), after.is_enabled()) {
            (true, false) => Some(EndpointChange::Disabled),
            (false, true) => Some(EndpointChange::Enabled),
            _ => None,
        }
    }
}

/// Replays a finished delivery through the core.
///
/// # Errors
/// [`StoreError::InvalidState`] when it is not delivered or failed.
pub fn replay_state(
    config: &StoreConfig,
    endpoint: &Endpoint,
    state: DeliveryState,
    now: OffsetDateTime,
) -> Result<DeliveryState, StoreError> {
    let status = state.status;
    let id = state.id.to_string();
    let mut machine = DeliveryMachine::from_state(state, config.schedule_for(endpoint).clone());
    machine
        .handle_replay(now)
        .map_err(|_| StoreError::InvalidState {
            id,
            action: "replayed",
            status: status.as_str(),
        })?;
    if !endpoint.is_enabled() {
        machine.handle_endpoint_disabled(now);
    }
    Ok(machine.into_state())
}

/// Gives a claimed delivery back unsent (graceful release): `None` when `current` is no longer
/// the claimed attempt.
pub fn release_state(
    config: &StoreConfig,
    endpoint: &Endpoint,
    current: DeliveryState,
    claimed: &Claim,
    now: OffsetDateTime,
) -> Option<DeliveryState> {
    if current.status != DeliveryStatus::InFlight || current.attempts != claimed.attempt.attempt {
        return None;
    }
    let mut machine = DeliveryMachine::from_state(current, config.schedule_for(endpoint).clone());
    machine.handle_released(now);
    Some(machine.into_state())
}
