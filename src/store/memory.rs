//! The in-memory store: for tests, examples and ephemeral emitters.
//!
//! This module owns an in-process implementation of [`Store`]. Everything is lost when the process
//! exits; use the SQLite or PostgreSQL store for anything that must survive a restart. Decisions
//! come from the shared helpers in [`crate::store`], so it behaves exactly like the durable stores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use super::{
    Claim, DeliveryQuery, EmitReceipt, EndpointChange, LeaseToken, Recorded, Store, StoreConfig,
    StoreError, StoredEvent, apply_endpoint_change, plan_fan_out, reclaim, release_state,
    replay_state, settle, start_attempt,
};
use crate::delivery::SerializedEvent;
use crate::{
    AttemptOutcome, AttemptRecord, DeliveryId, DeliveryState, DeliveryStatus, Endpoint,
    EndpointHealth, EndpointId, EventId,
};

/// An in-memory [`Store`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nopos_webhooks::store::{Store, StoreConfig, memory::MemoryStore};
///
/// let store = MemoryStore::new(StoreConfig::default());
/// assert!(store.list_endpoints().await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Shared so that claims carry the endpoint without copying it (secrets, headers, URL).
    endpoints: BTreeMap<EndpointId, (Arc<Endpoint>, EndpointHealth)>,
    events: HashMap<EventId, (StoredEvent, Vec<DeliveryId>)>,
    deliveries: HashMap<DeliveryId, Row>,
    /// Pending and retry-scheduled deliveries by due time: claiming is O(log n).
    due: BTreeSet<(OffsetDateTime, DeliveryId)>,
    /// In-flight deliveries by lease expiry.
    leased: BTreeSet<(OffsetDateTime, DeliveryId)>,
    attempts: HashMap<DeliveryId, Vec<AttemptRecord>>,
}

#[derive(Debug, Clone)]
struct Row {
    state: DeliveryState,
    lease: Option<(LeaseToken, OffsetDateTime)>,
}

impl Inner {
    /// Writes a delivery row and keeps the due and lease indexes in step with it.
    fn put(&mut self, row: Row) {
        if let Some(old) = self.deliveries.get(&row.state.id) {
            if let Some(at) = due_key(&old.state) {
                self.due.remove(&(at, old.state.id.clone()));
            }
            if let Some((_, until)) = &old.lease {
                self.leased.remove(&(*until, old.state.id.clone()));
            }
        }
        if let Some(at) = due_key(&row.state) {
            self.due.insert((at, row.state.id.clone()));
        }
        if let Some((_, until)) = &row.lease {
            self.leased.insert((*until, row.state.id.clone()));
        }
        self.deliveries.insert(row.state.id.clone(), row);
    }

    fn endpoint(&self, id: &EndpointId) -> Result<&(Arc<Endpoint>, EndpointHealth), StoreError> {
        self.endpoints
            .get(id)
            .ok_or_else(|| not_found("endpoint", &id))
    }

    fn row(&self, id: &DeliveryId) -> Result<&Row, StoreError> {
        self.deliveries
            .get(id)
            .ok_or_else(|| not_found("delivery", &id))
    }

    /// Applies an endpoint change to each of its unfinished deliveries.
    fn change_deliveries(
        &mut self,
        config: &StoreConfig,
        endpoint: &Endpoint,
        change: EndpointChange,
        now: OffsetDateTime,
    ) {
        let rows: Vec<Row> = self
            .deliveries
            .values()
            .filter(|row| row.state.endpoint_id == endpoint.id && !row.state.status.is_final())
            .cloned()
            .collect();
        for row in rows {
            let state = apply_endpoint_change(config, endpoint, row.state, change, now);
            let lease = row
                .lease
                .filter(|_| state.status == DeliveryStatus::InFlight);
            self.put(Row { state, lease });
        }
    }
}

fn due_key(state: &DeliveryState) -> Option<OffsetDateTime> {
    matches!(
        state.status,
        DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
    )
    .then(|| state.next_attempt_at.unwrap_or(state.created_at))
}

fn not_found(kind: &'static str, id: &impl ToString) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl MemoryStore {
    /// An empty store applying `config`.
    pub fn new(config: StoreConfig) -> MemoryStore {
        MemoryStore {
            config,
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written row (every method builds its
        // rows before writing them), so a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wake(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

impl Store for MemoryStore {
    fn config(&self) -> &StoreConfig {
        &self.config
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        let mut inner = self.lock();
        if inner.endpoints.contains_key(&endpoint.id) {
            return Err(StoreError::Conflict {
                kind: "endpoint",
                id: endpoint.id.to_string(),
            });
        }
        inner.endpoints.insert(
            endpoint.id.clone(),
            (Arc::new(endpoint.clone()), EndpointHealth::new()),
        );
        Ok(())
    }

    async fn get_endpoint(&self, id: &EndpointId) -> Result<Endpoint, StoreError> {
        Ok(Endpoint::clone(&self.lock().endpoint(id)?.0))
    }

    async fn list_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let mut endpoints: Vec<Endpoint> = self
            .lock()
            .endpoints
            .values()
            .map(|(e, _)| Endpoint::clone(e))
            .collect();
        endpoints.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(endpoints)
    }

    async fn update_endpoint(
        &self,
        endpoint: &Endpoint,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        let mut inner = self.lock();
        let (before, health) = inner.endpoint(&endpoint.id)?.clone();
        let change = EndpointChange::between(&before, endpoint);
        let health = if change == Some(EndpointChange::Enabled) {
            let mut health = health;
            health.reset();
            health
        } else {
            health
        };
        inner
            .endpoints
            .insert(endpoint.id.clone(), (Arc::new(endpoint.clone()), health));
        if let Some(change) = change {
            inner.change_deliveries(&self.config, endpoint, change, now);
        }
        drop(inner);
        if change == Some(EndpointChange::Enabled) {
            self.wake();
        }
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        id: &EndpointId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let (endpoint, _) = inner.endpoint(id)?.clone();
        inner.change_deliveries(&self.config, &endpoint, EndpointChange::Deleted, now);
        inner.endpoints.remove(id);
        Ok(())
    }

    async fn endpoint_health(&self, id: &EndpointId) -> Result<EndpointHealth, StoreError> {
        Ok(self.lock().endpoint(id)?.1.clone())
    }

    async fn emit(
        &self,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        self.config.check_event(event)?;
        let mut inner = self.lock();
        if let Some((_, deliveries)) = inner.events.get(event.id()) {
            return Ok(EmitReceipt {
                event_id: event.id().clone(),
                deliveries: deliveries.clone(),
                duplicate: true,
            });
        }
        let planned = plan_fan_out(
            &self.config,
            inner.endpoints.values().map(|(e, _)| &**e),
            event,
            now,
        );
        let ids: Vec<DeliveryId> = planned.iter().map(|s| s.id.clone()).collect();
        inner.events.insert(
            event.id().clone(),
            (
                StoredEvent {
                    event: event.clone(),
                    stored_at: now,
                },
                ids.clone(),
            ),
        );
        for state in planned {
            inner.put(Row { state, lease: None });
        }
        drop(inner);
        self.wake();
        Ok(EmitReceipt {
            event_id: event.id().clone(),
            deliveries: ids,
            duplicate: false,
        })
    }

    async fn get_event(&self, id: &EventId) -> Result<StoredEvent, StoreError> {
        self.lock()
            .events
            .get(id)
            .map(|(event, _)| event.clone())
            .ok_or_else(|| not_found("event", &id))
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut inner = self.lock();
        // Settle lost attempts first, so that they count and are claimed again when due.
        let expired: Vec<DeliveryId> = inner
            .leased
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in expired {
            let row = inner.row(&id)?.clone();
            let Ok((endpoint, _)) = inner.endpoint(&row.state.endpoint_id).cloned() else {
                continue;
            };
            let (state, record) = reclaim(&self.config, &endpoint, row.state, now);
            if let Some(record) = record {
                inner.attempts.entry(id.clone()).or_default().push(record);
            }
            inner.put(Row { state, lease: None });
        }

        // Sized up front: collecting from `take_while` would grow the vector step by step.
        let mut due: Vec<DeliveryId> = Vec::with_capacity(limit.min(inner.due.len()));
        due.extend(
            inner
                .due
                .iter()
                .take_while(|(at, _)| *at <= now)
                .take(limit)
                .map(|(_, id)| id.clone()),
        );
        let mut claims = Vec::with_capacity(due.len());
        for id in due {
            let row = inner.row(&id)?.clone();
            let (endpoint, _) = inner.endpoint(&row.state.endpoint_id)?.clone();
            let Some((attempt, state)) = start_attempt(&self.config, &endpoint, row.state, now)
            else {
                continue;
            };
            let (event, _) = inner
                .events
                .get(&state.event_id)
                .ok_or_else(|| not_found("event", &state.event_id))?
                .clone();
            let token = LeaseToken::generate();
            let lease_until = now + lease;
            inner.put(Row {
                state: state.clone(),
                lease: Some((token.clone(), lease_until)),
            });
            claims.push(Claim {
                attempt,
                state,
                endpoint,
                event: event.event,
                lease: token,
                lease_until,
                stored_state: None,
                lease_group: None,
            });
        }
        Ok(claims)
    }

    async fn record_attempt(
        &self,
        claim: &Claim,
        outcome: &AttemptOutcome,
        now: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        let mut inner = self.lock();
        let id = &claim.attempt.delivery_id;
        let row = inner.row(id)?.clone();
        let lost = || StoreError::LeaseLost(id.to_string());
        if row.lease.as_ref().map(|(token, _)| token) != Some(&claim.lease) {
            return Err(lost());
        }
        let (endpoint, health) = match inner.endpoint(&row.state.endpoint_id) {
            Ok(found) => found.clone(),
            Err(_) => return Err(lost()),
        };
        let settlement = settle(
            &self.config,
            &endpoint,
            claim,
            row.state,
            health,
            outcome,
            now,
        )?;
        inner
            .attempts
            .entry(id.clone())
            .or_default()
            .push(settlement.record);
        inner.put(Row {
            state: settlement.state.clone(),
            lease: None,
        });
        let endpoint = match settlement.disable {
            Some(reason) => {
                let mut disabled = Endpoint::clone(&endpoint);
                disabled.disable(now, reason);
                inner.change_deliveries(&self.config, &disabled, EndpointChange::Disabled, now);
                Arc::new(disabled)
            }
            None => endpoint,
        };
        inner
            .endpoints
            .insert(endpoint.id.clone(), (endpoint, settlement.health));
        Ok(Recorded {
            state: settlement.state,
            endpoint_disabled: settlement.disable,
        })
    }

    async fn release(&self, claim: &Claim, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = &claim.attempt.delivery_id;
        let row = inner.row(id)?.clone();
        if row.lease.as_ref().map(|(token, _)| token) != Some(&claim.lease) {
            return Err(StoreError::LeaseLost(id.to_string()));
        }
        let (endpoint, _) = inner.endpoint(&row.state.endpoint_id)?.clone();
        let state = release_state(&self.config, &endpoint, row.state, claim, now)
            .ok_or_else(|| StoreError::LeaseLost(id.to_string()))?;
        inner.put(Row { state, lease: None });
        drop(inner);
        self.wake();
        Ok(())
    }

    async fn next_wakeup(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let inner = self.lock();
        let due = inner.due.first().map(|(at, _)| *at);
        let lease = inner.leased.first().map(|(at, _)| *at);
        Ok(match (due, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn get_delivery(&self, id: &DeliveryId) -> Result<DeliveryState, StoreError> {
        Ok(self.lock().row(id)?.state.clone())
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryState>, StoreError> {
        let inner = self.lock();
        let mut found: Vec<DeliveryState> = inner
            .deliveries
            .values()
            .filter(|row| query.matches(&row.state))
            .map(|row| row.state.clone())
            .collect();
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(query.effective_limit());
        Ok(found)
    }

    async fn attempts(&self, id: &DeliveryId) -> Result<Vec<AttemptRecord>, StoreError> {
        let inner = self.lock();
        inner.row(id)?;
        Ok(inner.attempts.get(id).cloned().unwrap_or_default())
    }

    async fn replay(
        &self,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> Result<DeliveryState, StoreError> {
        let mut inner = self.lock();
        let row = inner.row(id)?.clone();
        let (endpoint, _) = inner.endpoint(&row.state.endpoint_id)?.clone();
        let state = replay_state(&self.config, &endpoint, row.state, now)?;
        inner.put(Row {
            state: state.clone(),
            lease: None,
        });
        drop(inner);
        self.wake();
        Ok(state)
    }

    async fn recover(
        &self,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let (endpoint, _) = inner.endpoint(endpoint_id)?.clone();
        let failed: Vec<Row> = inner
            .deliveries
            .values()
            .filter(|row| {
                row.state.endpoint_id == *endpoint_id
                    && row.state.status == DeliveryStatus::Failed
                    && row.state.created_at >= since
            })
            .cloned()
            .collect();
        let count = failed.len();
        for row in failed {
            let state = replay_state(&self.config, &endpoint, row.state, now)?;
            inner.put(Row { state, lease: None });
        }
        drop(inner);
        if count > 0 {
            self.wake();
        }
        Ok(count)
    }

    async fn wait_for_work(&self) {
        self.notify.notified().await;
    }
}
