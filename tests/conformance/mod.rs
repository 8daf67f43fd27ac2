//! The store conformance suite: the same test code run against every `Store` implementation.
//!
//! A store's test crate includes this module and calls `conformance_suite!` with an expression
//! that opens a fresh, empty store as `Option<S>` (`None` skips, e.g. without PostgreSQL) and
//! a cleanup function.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use nopos_webhooks::store::{DeliveryQuery, Recorded, Store, StoreConfig, StoreError};
use nopos_webhooks::{
    AddressPolicy, AttemptOutcome, DeliveryId, DeliveryStatus, DisableReason, Endpoint, EndpointId,
    EndpointStatus, EndpointUrl, Envelope, Event, EventFilter, EventId, EventType, RetrySchedule,
    Secret, SecretSet, SerializedEvent, TransportError,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The configuration every conformance store is opened with: default schedule and policies, but
/// loopback endpoints allowed (receivers in tests live on 127.0.0.1).
pub fn config() -> StoreConfig {
    StoreConfig::default().address_policy(AddressPolicy::new().dangerous_allow_private_targets())
}

pub fn t0() -> OffsetDateTime {
    datetime!(2024-11-10 10:30 UTC)
}

pub fn endpoint(patterns: &[&str], now: OffsetDateTime) -> Endpoint {
    Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse("http://127.0.0.1:9/webhooks/nopos").unwrap(),
        EventFilter::parse(patterns).unwrap(),
        SecretSet::new(Secret::generate()),
        now,
    )
}

pub fn event(event_type: &EventType, now: OffsetDateTime) -> SerializedEvent {
    let envelope = Envelope::new(
        EventId::generate(now),
        now,
        Event::sample(event_type).unwrap(),
    );
    SerializedEvent::from_envelope(&envelope).unwrap()
}

pub fn status(code: u16, started_at: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome::from_parts(
        started_at,
        Duration::milliseconds(12),
        StatusCode::from_u16(code).unwrap(),
        &HeaderMap::new(),
        b"response body",
    )
}

async fn statuses<S: Store>(store: &S, ids: &[DeliveryId]) -> Vec<DeliveryStatus> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.get_delivery(id).await.unwrap().status);
    }
    out
}

async fn endpoint_of<S: Store>(store: &S, delivery: &DeliveryId) -> EndpointId {
    store.get_delivery(delivery).await.unwrap().endpoint_id
}

pub async fn fan_out_with_wildcards<S: Store>(store: &S) {
    let now = t0();
    let exact = endpoint(&["transaction.completed"], now);
    let family = endpoint(&["inventory.*"], now);
    let all = endpoint(&["*"], now);
    let other = endpoint(&["payment.succeeded"], now);
    let mut disabled = endpoint(&["*"], now);
    disabled.disable(now, DisableReason::Manual);
    for e in [&exact, &family, &all, &other, &disabled] {
        store.create_endpoint(e).await.unwrap();
    }

    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let receipt = store.emit(&sale, now).await.unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(receipt.event_id, *sale.id());
    let mut targets = HashSet::new();
    for id in &receipt.deliveries {
        let state = store.get_delivery(id).await.unwrap();
        let expected = if state.endpoint_id == disabled.id {
            DeliveryStatus::Paused
        } else {
            DeliveryStatus::Pending
        };
        assert_eq!(state.status, expected);
        assert_eq!(state.event_id, *sale.id());
        targets.insert(state.endpoint_id);
    }
    let expected: HashSet<_> = [&exact.id, &all.id, &disabled.id]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(targets, expected);

    let low = event(&EventType::INVENTORY_LOW_STOCK, now);
    let receipt = store.emit(&low, now).await.unwrap();
    let mut targets = HashSet::new();
    for id in &receipt.deliveries {
        targets.insert(endpoint_of(store, id).await);
    }
    let expected: HashSet<_> = [&family.id, &all.id, &disabled.id]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(targets, expected);

    // The stored event is byte for byte what was emitted.
    let stored = store.get_event(sale.id()).await.unwrap();
    assert_eq!(stored.event, sale);
}

pub async fn idempotent_emit<S: Store>(store: &S) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let first = store.emit(&sale, now).await.unwrap();
    assert_eq!(first.deliveries.len(), 1);
    let again = store.emit(&sale, now + Duration::seconds(5)).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.deliveries, first.deliveries);
    let all = store
        .list_deliveries(&DeliveryQuery::event(sale.id().clone()))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

pub async fn claim_lease_expiry_and_reclaim<S: Store>(store: &S) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let receipt = store.emit(&sale, now).await.unwrap();
    let id = receipt.deliveries[0].clone();
    assert_eq!(store.next_wakeup().await.unwrap(), Some(now));

    let lease = Duration::seconds(30);
    let claims = store.claim(now, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.attempt.attempt, 1);
    assert_eq!(claim.attempt.delivery_id, id);
    assert_eq!(claim.event, sale);
    assert_eq!(claim.endpoint.id, ep.id);
    assert_eq!(claim.lease_until, now + lease);
    assert_eq!(
        store.get_delivery(&id).await.unwrap().status,
        DeliveryStatus::InFlight
    );
    // Leased: nobody else gets it, and the store wakes up when the lease runs out.
    assert!(store.claim(now, 10, lease).await.unwrap().is_empty());
    assert_eq!(store.next_wakeup().await.unwrap(), Some(now + lease));

    // The worker dies. After the lease, the lost attempt is logged and retried per schedule.
    let after = now + lease + Duration::seconds(1);
    assert!(store.claim(after, 10, lease).await.unwrap().is_empty());
    let state = store.get_delivery(&id).await.unwrap();
    assert_eq!(state.status, DeliveryStatus::RetryScheduled);
    assert_eq!(state.attempts, 1);
    let log = store.attempts(&id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].attempt, 1);
    assert!(log[0].error.is_some());

    // The dead worker's late outcome is refused and changes nothing.
    let late = store.record_attempt(claim, &status(200, now), after).await;
    assert!(matches!(late, Err(StoreError::LeaseLost(_))), "{late:?}");
    assert_eq!(store.attempts(&id).await.unwrap().len(), 1);

    let due = state.next_attempt_at.unwrap();
    assert_eq!(due, after + Duration::minutes(5));
    let claims = store.claim(due, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].attempt.attempt, 2);
}

pub async fn concurrent_claimers_never_share<S: Store + 'static>(store: Arc<S>) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let mut expected = HashSet::new();
    for _ in 0..200 {
        let receipt = store
            .emit(&event(&EventType::INVENTORY_UPDATED, now), now)
            .await
            .unwrap();
        expected.extend(receipt.deliveries);
    }
    let claimers = vec![store; 8];
    assert_eq!(claim_concurrently(&claimers, now, 7).await, expected);
}

/// Claims from every store in `claimers` at once (each in its own task, `batch` at a time) until
/// nothing is due, asserting that no delivery is claimed twice; returns every claimed id.
pub async fn claim_concurrently<S: Store + 'static>(
    claimers: &[Arc<S>],
    now: OffsetDateTime,
    batch: usize,
) -> HashSet<DeliveryId> {
    let tasks: Vec<_> = claimers
        .iter()
        .map(|store| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claims = store.claim(now, batch, Duration::minutes(5)).await.unwrap();
                    if claims.is_empty() {
                        break;
                    }
                    mine.extend(claims.into_iter().map(|c| c.attempt.delivery_id));
                }
                mine
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    seen
}

pub async fn attempts_are_recorded_with_the_next_state<S: Store>(store: &S) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let id = store
        .emit(&event(&EventType::PAYMENT_SUCCEEDED, now), now)
        .await
        .unwrap()
        .deliveries[0]
        .clone();
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    let recorded = store
        .record_attempt(&claim, &status(500, now), now + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(recorded.state.status, DeliveryStatus::RetryScheduled);
    assert_eq!(recorded.endpoint_disabled, None);
    let state = store.get_delivery(&id).await.unwrap();
    assert_eq!(state, recorded.state);
    let retry_at = state.next_attempt_at.unwrap();
    assert_eq!(retry_at, now + Duration::seconds(1) + Duration::minutes(5));
    // A second outcome for the same claim is refused.
    assert!(matches!(
        store.record_attempt(&claim, &status(200, now), now).await,
        Err(StoreError::LeaseLost(_))
    ));

    let claim = store
        .claim(retry_at, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claim.attempt.attempt, 2);
    let recorded = store
        .record_attempt(&claim, &status(204, retry_at), retry_at)
        .await
        .unwrap();
    assert_eq!(recorded.state.status, DeliveryStatus::Delivered);

    let log = store.attempts(&id).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].attempt, log[0].status), (1, Some(500)));
    assert_eq!((log[1].attempt, log[1].status), (2, Some(204)));
    assert_eq!(log[0].excerpt, "response body");
    assert_eq!(log[0].latency_ms, 12);
    let health = store.endpoint_health(&claim.endpoint.id).await.unwrap();
    assert!(!health.is_failing());
    assert_eq!(store.next_wakeup().await.unwrap(), None);
}

pub async fn replay_and_recover<S: Store>(store: &S) {
    let now = t0();
    let mut ep = endpoint(&["*"], now);
    ep = ep.with_retry_schedule(RetrySchedule::new([Duration::ZERO]).unwrap());
    store.create_endpoint(&ep).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let receipt = store
            .emit(&event(&EventType::CUSTOMER_CREATED, now), now)
            .await
            .unwrap();
        ids.extend(receipt.deliveries);
    }
    for claim in store.claim(now, 10, Duration::minutes(1)).await.unwrap() {
        let outcome =
            AttemptOutcome::transport_failure(now, Duration::ZERO, TransportError::Connect);
        let recorded = store.record_attempt(&claim, &outcome, now).await.unwrap();
        assert_eq!(recorded.state.status, DeliveryStatus::Failed);
    }
    assert_eq!(statuses(store, &ids).await, vec![DeliveryStatus::Failed; 3]);

    // A pending delivery cannot be replayed; a failed one can.
    let later = now + Duration::hours(1);
    let replayed = store.replay(&ids[0], later).await.unwrap();
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    assert!(matches!(
        store.replay(&ids[0], later).await,
        Err(StoreError::InvalidState { .. })
    ));
    let claim = store
        .claim(later, 10, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claim.attempt.delivery_id, ids[0]);
    assert_eq!(claim.attempt.attempt, 2);
    store
        .record_attempt(&claim, &status(200, later), later)
        .await
        .unwrap();

    // Recover the remaining failed ones created since `now`.
    assert_eq!(
        store
            .recover(&ep.id, now + Duration::days(1), later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.recover(&ep.id, now, later).await.unwrap(), 2);
    assert_eq!(
        statuses(store, &ids).await,
        vec![
            DeliveryStatus::Delivered,
            DeliveryStatus::Pending,
            DeliveryStatus::Pending
        ]
    );
    assert_eq!(
        store
            .claim(later, 10, Duration::minutes(1))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        store.replay(&DeliveryId::generate(now), now).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn disabled_endpoints_pause_and_resume<S: Store>(store: &S) {
    let now = t0();
    let mut ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let first = store
        .emit(&event(&EventType::PRODUCT_CREATED, now), now)
        .await
        .unwrap()
        .deliveries;

    ep.disable(now, DisableReason::Manual);
    store.update_endpoint(&ep, now).await.unwrap();
    let second = store
        .emit(&event(&EventType::PRODUCT_UPDATED, now), now)
        .await
        .unwrap()
        .deliveries;
    let ids = [first, second].concat();
    assert_eq!(statuses(store, &ids).await, vec![DeliveryStatus::Paused; 2]);
    assert!(
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.get_endpoint(&ep.id).await.unwrap().status,
        EndpointStatus::Disabled {
            reason: DisableReason::Manual,
            ..
        }
    ));

    let later = now + Duration::hours(3);
    let enabled = store
        .set_endpoint_enabled(&ep.id, None, later)
        .await
        .unwrap();
    assert!(enabled.is_enabled());
    assert_eq!(
        statuses(store, &ids).await,
        vec![DeliveryStatus::Pending; 2]
    );
    let claims = store.claim(later, 10, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 2);
}

pub async fn gone_disables_the_endpoint_and_pauses_the_rest<S: Store>(store: &S) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let a = store
        .emit(&event(&EventType::PAYMENT_FAILED, now), now)
        .await
        .unwrap()
        .deliveries;
    let b = store
        .emit(&event(&EventType::PAYMENT_FAILED, now), now)
        .await
        .unwrap()
        .deliveries;
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    let recorded = store
        .record_attempt(&claim, &status(410, now), now)
        .await
        .unwrap();
    assert_eq!(recorded.endpoint_disabled, Some(DisableReason::Gone));
    assert_eq!(recorded.state.status, DeliveryStatus::Failed);
    let endpoint = store.get_endpoint(&ep.id).await.unwrap();
    assert!(!endpoint.is_enabled());
    let other = if claim.attempt.delivery_id == a[0] {
        &b[0]
    } else {
        &a[0]
    };
    assert_eq!(
        store.get_delivery(other).await.unwrap().status,
        DeliveryStatus::Paused
    );
}

pub async fn failing_endpoints_are_disabled_after_the_health_period<S: Store>(store: &S) {
    let now = t0();
    // Ten attempts a day apart: the endpoint fails for more than five days.
    let schedule =
        RetrySchedule::new([Duration::ZERO].into_iter().chain([Duration::days(1); 9])).unwrap();
    let ep = endpoint(&["*"], now).with_retry_schedule(schedule);
    store.create_endpoint(&ep).await.unwrap();
    store
        .emit(&event(&EventType::LOYALTY_POINTS_EARNED, now), now)
        .await
        .unwrap();
    let mut at = now;
    let mut disabled = None;
    for _ in 0..10 {
        let Some(claim) = store
            .claim(at, 1, Duration::minutes(1))
            .await
            .unwrap()
            .pop()
        else {
            break;
        };
        let recorded = store
            .record_attempt(&claim, &status(503, at), at)
            .await
            .unwrap();
        if let Some(reason) = recorded.endpoint_disabled {
            disabled = Some((reason, at));
            break;
        }
        at = recorded.state.next_attempt_at.unwrap();
    }
    let (reason, when) = disabled.expect("endpoint disabled");
    assert_eq!(reason, DisableReason::Failing { since: now });
    assert_eq!(when, now + Duration::days(5));
    assert!(store.endpoint_health(&ep.id).await.unwrap().is_failing());
}

pub async fn secret_rotation_is_stored<S: Store>(store: &S) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    let old = ep.secrets.current().clone();
    store.create_endpoint(&ep).await.unwrap();
    let new = Secret::new("brand_new_secret_value").unwrap();
    let rotated = store
        .rotate_secret(&ep.id, new.clone(), Duration::hours(24), now)
        .await
        .unwrap();
    let stored = store.get_endpoint(&ep.id).await.unwrap();
    assert_eq!(stored, rotated);
    assert_eq!(stored.secrets.current(), &new);
    let active: Vec<_> = stored
        .secrets
        .active(now + Duration::hours(1))
        .cloned()
        .collect();
    assert_eq!(active, vec![new.clone(), old]);
    let active: Vec<_> = stored
        .secrets
        .active(now + Duration::hours(25))
        .cloned()
        .collect();
    assert_eq!(active, vec![new]);
}

pub async fn delete_cancels_but_keeps_deliveries<S: Store>(store: &S) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let ids = store
        .emit(&event(&EventType::CUSTOMER_UPDATED, now), now)
        .await
        .unwrap()
        .deliveries;
    store.delete_endpoint(&ep.id, now).await.unwrap();
    assert!(matches!(
        store.get_endpoint(&ep.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(statuses(store, &ids).await, vec![DeliveryStatus::Cancelled]);
    assert!(
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.delete_endpoint(&ep.id, now).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn bad_input_is_refused_and_changes_nothing<S: Store>(store: &S) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    // Same id again.
    assert!(matches!(
        store.create_endpoint(&ep).await,
        Err(StoreError::Conflict { .. })
    ));
    // A subscription to a type nobody emits.
    let unknown = endpoint(&["giftcard.*"], now);
    assert!(matches!(
        store.create_endpoint(&unknown).await,
        Err(StoreError::UnknownEventType(_))
    ));
    // An event type outside the catalogue.
    let custom = SerializedEvent::new(
        EventId::generate(now),
        EventType::from_static("acme.unregistered"),
        bytes::Bytes::from_static(b"{}"),
    );
    assert!(matches!(
        store.emit(&custom, now).await,
        Err(StoreError::UnknownEventType(_))
    ));
    // An oversized payload.
    let big = SerializedEvent::new(
        EventId::generate(now),
        EventType::PAYMENT_SUCCEEDED,
        bytes::Bytes::from(vec![b' '; store.config().max_payload_size + 1]),
    );
    assert!(matches!(
        store.emit(&big, now).await,
        Err(StoreError::PayloadTooLarge { .. })
    ));
    // Updating a missing endpoint.
    assert!(matches!(
        store.update_endpoint(&endpoint(&["*"], now), now).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_endpoints().await.unwrap(), vec![ep.clone()]);
    assert!(
        store
            .list_deliveries(&DeliveryQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.get_event(custom.id()).await,
        Err(StoreError::NotFound { .. })
    ));

    // A private target is refused by a store with the default (safe) policy.
    let strict = StoreConfig::default();
    assert!(matches!(
        strict.check_endpoint(&ep),
        Err(StoreError::BlockedTarget(_))
    ));
}

pub async fn listing_filters_and_orders<S: Store>(store: &S) {
    let now = t0();
    let a = endpoint(&["*"], now);
    let b = endpoint(&["*"], now + Duration::seconds(1));
    store.create_endpoint(&a).await.unwrap();
    store.create_endpoint(&b).await.unwrap();
    assert_eq!(
        store.list_endpoints().await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    for i in 0..5 {
        let at = now + Duration::seconds(i);
        store
            .emit(&event(&EventType::TRANSACTION_CREATED, at), at)
            .await
            .unwrap();
    }
    let of_a = store
        .list_deliveries(&DeliveryQuery::endpoint(a.id.clone()))
        .await
        .unwrap();
    assert_eq!(of_a.len(), 5);
    assert!(
        of_a.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    let limited = store
        .list_deliveries(&DeliveryQuery::endpoint(a.id.clone()).limit(2))
        .await
        .unwrap();
    assert_eq!(limited, of_a[..2].to_vec());
    let pending = store
        .list_deliveries(&DeliveryQuery::default().status(DeliveryStatus::Delivered))
        .await
        .unwrap();
    assert!(pending.is_empty());
}

pub async fn release_gives_the_attempt_back<S: Store>(store: &S) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let id = store
        .emit(&event(&EventType::TRANSACTION_REFUNDED, now), now)
        .await
        .unwrap()
        .deliveries[0]
        .clone();
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    store.release(&claim, now).await.unwrap();
    let state = store.get_delivery(&id).await.unwrap();
    assert_eq!((state.status, state.attempts), (DeliveryStatus::Pending, 0));
    let again = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt.attempt, 1);
    assert!(matches!(
        store.release(&claim, now).await,
        Err(StoreError::LeaseLost(_))
    ));
}

/// Recording applies the outcome to the delivery row as it is now, not as the claim left it: after
/// `edit` (the backend's SQL, setting every delivery row's state's `replays` to 3 by hand), the
/// edited row is decoded again, not replaced by the claim's copy of the state. The batch also
/// holds a delivery claimed after the edit, which nothing changed: both are recorded once, each
/// from its own row (a store that writes the untouched row first and then finds the edited one
/// must undo that write before it reads both again).
pub async fn outcomes_apply_to_the_row_as_it_is_now<S: Store, F: Future<Output = ()>>(
    store: &S,
    edit: impl FnOnce() -> F,
) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let claim_one = |event_type: EventType| async move {
        store.emit(&event(&event_type, now), now).await.unwrap();
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .unwrap()
            .remove(0)
    };
    let edited = &claim_one(EventType::CUSTOMER_CREATED).await;
    edit().await;
    let untouched = &claim_one(EventType::CUSTOMER_UPDATED).await;
    // The untouched delivery first, so that a batch written in its order meets it first.
    let delivered = status(204, now);
    let results = store
        .record_attempts(&[(untouched, &delivered), (edited, &delivered)], now)
        .await
        .unwrap();
    let states: Vec<(DeliveryStatus, u32)> = results
        .into_iter()
        .map(|result| {
            let state = result.unwrap().state;
            (state.status, state.replays)
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (DeliveryStatus::Delivered, 0),
            (DeliveryStatus::Delivered, 3)
        ]
    );
    for claim in [edited, untouched] {
        let id = &claim.attempt.delivery_id;
        assert_eq!(store.attempts(id).await.unwrap().len(), 1);
        let stored = store.get_delivery(id).await.unwrap();
        assert_eq!(stored.status, DeliveryStatus::Delivered);
    }
}

/// An endpoint disabled while its attempts are in flight: each outcome is recorded against the
/// delivery as it is now (pause requested), not as it was claimed. A failed attempt then pauses;
/// a delivered one stays delivered.
pub async fn outcomes_see_changes_made_during_the_attempt<S: Store>(store: &S) {
    let now = t0();
    let mut ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    for event_type in [&EventType::PRODUCT_CREATED, &EventType::PRODUCT_UPDATED] {
        store.emit(&event(event_type, now), now).await.unwrap();
    }
    let claims = store.claim(now, 10, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 2);

    ep.disable(now, DisableReason::Manual);
    store.update_endpoint(&ep, now).await.unwrap();
    let failed = status(500, now);
    let delivered = status(204, now);
    let results = store
        .record_attempts(&[(&claims[0], &failed), (&claims[1], &delivered)], now)
        .await
        .unwrap();
    let statuses: Vec<DeliveryStatus> = results
        .into_iter()
        .map(|result| result.unwrap().state.status)
        .collect();
    assert_eq!(
        statuses,
        vec![DeliveryStatus::Paused, DeliveryStatus::Delivered]
    );
    let stored = store
        .get_delivery(&claims[0].attempt.delivery_id)
        .await
        .unwrap();
    assert_eq!(stored.status, DeliveryStatus::Paused);
    assert!(!stored.pause_requested);
}

pub async fn batched_recording_fails_only_the_lost_items<S: Store>(store: &S) {
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    for _ in 0..3 {
        store
            .emit(&event(&EventType::TRANSACTION_COMPLETED, now), now)
            .await
            .unwrap();
    }
    let claims = store.claim(now, 10, Duration::seconds(30)).await.unwrap();
    assert_eq!(claims.len(), 3);
    // The first claim's outcome is recorded alone; recording it again in the batch is refused.
    store
        .record_attempt(&claims[0], &status(200, now), now)
        .await
        .unwrap();
    let ok = status(200, now);
    let failed = status(500, now);
    let batch = [(&claims[0], &ok), (&claims[1], &ok), (&claims[2], &failed)];
    let results = store.record_attempts(&batch, now).await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(matches!(results[0], Err(StoreError::LeaseLost(_))));
    assert_eq!(
        results[1].as_ref().unwrap().state.status,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        results[2].as_ref().unwrap().state.status,
        DeliveryStatus::RetryScheduled
    );
    for (claim, expected) in claims.iter().zip([1, 1, 1]) {
        let log = store.attempts(&claim.attempt.delivery_id).await.unwrap();
        assert_eq!(log.len(), expected);
    }
    let health = store.endpoint_health(&claims[0].endpoint.id).await.unwrap();
    assert_eq!(
        health.consecutive_failures, 1,
        "the batch's outcomes all reach the health record"
    );
}

/// Expands to one `#[tokio::test]` per conformance case. `$open` is an async expression giving
/// `Option<S>` (None skips the case); `$close` is an async fn taking the store afterwards.
#[macro_export]
macro_rules! conformance_suite {
    ($open:expr, $close:path) => {
        $crate::conformance_suite!(@cases $open, $close;
            fan_out_with_wildcards,
            idempotent_emit,
            claim_lease_expiry_and_reclaim,
            attempts_are_recorded_with_the_next_state,
            replay_and_recover,
            disabled_endpoints_pause_and_resume,
            gone_disables_the_endpoint_and_pauses_the_rest,
            failing_endpoints_are_disabled_after_the_health_period,
            secret_rotation_is_stored,
            delete_cancels_but_keeps_deliveries,
            bad_input_is_refused_and_changes_nothing,
            listing_filters_and_orders,
            release_gives_the_attempt_back,
            batched_recording_fails_only_the_lost_items,
            outcomes_see_changes_made_during_the_attempt,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_claimers_never_share() {
            let Some(store) = $open.await else { return };
            let store = std::sync::Arc::new(store);
            conformance::concurrent_claimers_never_share(std::sync::Arc::clone(&store)).await;
            if let Ok(store) = std::sync::Arc::try_unwrap(store) {
                $close(store).await;
            }
        }
    };
    (@cases $open:expr, $close:path; $($case:ident,)*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(store) = $open.await else { return };
                conformance::$case(&store).await;
                $close(store).await;
            }
        )*
    };
}

/// Per-item results in a form two stores' results can be compared in (errors by their message).
pub fn comparable(results: &[Result<Recorded, StoreError>]) -> Vec<Result<Recorded, String>> {
    results
        .iter()
        .map(|result| match result {
            Ok(recorded) => Ok(recorded.clone()),
            Err(err) => Err(err.to_string()),
        })
        .collect()
}
