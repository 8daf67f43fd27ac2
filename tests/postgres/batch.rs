//! `record_attempts` on PostgreSQL writes a batch with a fixed number of statements. Its results
//! must be those of recording the items one by one in (endpoint id, delivery id) order, so each
//! case here runs the batch on a store and the one-by-one path on a copy of it (another schema
//! holding the same rows, so the same claims and leases apply), then compares every result and
//! every row.

use nopos_webhooks::store::postgres::PostgresStore;
use nopos_webhooks::store::{Claim, Recorded, Store, StoreError};
use nopos_webhooks::{
    AttemptOutcome, DeliveryStatus, DisableReason, Endpoint, EventType, TransportError,
};
use sqlx::AssertSqlSafe;
use time::{Duration, OffsetDateTime};

use crate::conformance::{self, comparable, config, endpoint, event, t0};
use crate::{close, fresh_schema, open, url};

/// A store on a fresh schema holding a copy of every row of `store`'s.
async fn twin(store: &PostgresStore) -> PostgresStore {
    let copy = PostgresStore::connect_with_schema(&url().unwrap(), &fresh_schema(), config())
        .await
        .unwrap();
    // In foreign-key order.
    for table in ["endpoints", "events", "deliveries", "attempts"] {
        let sql = format!(
            "INSERT INTO \"{}\".{table} SELECT * FROM \"{}\".{table}",
            copy.schema(),
            store.schema()
        );
        sqlx::query(AssertSqlSafe(sql))
            .execute(store.pool())
            .await
            .unwrap();
    }
    copy
}

/// Every row of the store's tables, as text, in a fixed order.
async fn rows(store: &PostgresStore) -> Vec<String> {
    let mut all = Vec::new();
    for (table, order) in [
        ("endpoints", "id"),
        ("deliveries", "id"),
        ("attempts", "delivery_id, attempt"),
    ] {
        let sql = format!(
            "SELECT '{table} ' || row_to_json(t)::text \
             FROM (SELECT * FROM \"{}\".{table} ORDER BY {order}) AS t",
            store.schema()
        );
        let found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_all(store.pool())
            .await
            .unwrap();
        all.extend(found);
    }
    all
}

/// The indices of `batch` in the order the store records it: by endpoint, then delivery (a
/// stable sort, as the store's).
fn recording_order(batch: &[(&Claim, &AttemptOutcome)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            (
                &batch[i].0.state.endpoint_id,
                &batch[i].0.attempt.delivery_id,
            )
        };
        key(a).cmp(&key(b))
    });
    order
}

/// Records `batch` with `record_attempts` on `store`, and one by one on a copy of it made just
/// before; asserts that both give the same results and leave the same rows. Returns the batch's
/// results.
async fn record_both_ways(
    store: &PostgresStore,
    batch: &[(&Claim, &AttemptOutcome)],
    now: OffsetDateTime,
) -> Vec<Result<Recorded, StoreError>> {
    let copy = twin(store).await;
    assert_eq!(rows(store).await.len(), rows(&copy).await.len());

    let batched = store.record_attempts(batch, now).await.unwrap();
    let mut one_by_one: Vec<_> = (0..batch.len()).map(|_| None).collect();
    for i in recording_order(batch) {
        let (claim, outcome) = batch[i];
        one_by_one[i] = Some(copy.record_attempt(claim, outcome, now).await);
    }
    let one_by_one: Vec<_> = one_by_one.into_iter().map(Option::unwrap).collect();

    assert_eq!(comparable(&batched), comparable(&one_by_one));
    let (ours, theirs) = (rows(store).await, rows(&copy).await);
    assert_eq!(ours.len(), theirs.len());
    for (ours, theirs) in ours.iter().zip(&theirs) {
        assert_eq!(ours, theirs, "the batch and one-by-one rows differ");
    }
    close(copy).await;
    batched
}

fn code(code: u16, now: OffsetDateTime) -> AttemptOutcome {
    conformance::status(code, now)
}

fn unreachable(now: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome::transport_failure(now, Duration::seconds(10), TransportError::Timeout)
}

/// Claims of three endpoints, given to the store in an order that is neither theirs nor by
/// endpoint, with successes and failures mixed.
#[tokio::test]
async fn a_batch_mixing_endpoints_matches_one_by_one() {
    let Some(store) = open().await else { return };
    let now = t0();
    let endpoints = [
        endpoint(&["*"], now),
        endpoint(&["*"], now),
        endpoint(&["*"], now),
    ];
    for ep in &endpoints {
        store.create_endpoint(ep).await.unwrap();
    }
    for _ in 0..4 {
        store
            .emit(&event(&EventType::TRANSACTION_COMPLETED, now), now)
            .await
            .unwrap();
    }
    let mut claims = store.claim(now, 100, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 12);
    // Interleave the endpoints: the store must regroup them.
    claims.sort_by(|a, b| a.attempt.event_id.cmp(&b.attempt.event_id).reverse());
    let outcomes: Vec<AttemptOutcome> = (0..claims.len())
        .map(|i| match i % 4 {
            0 => code(200, now),
            1 => code(500, now),
            2 => unreachable(now),
            _ => code(204, now),
        })
        .collect();
    let batch: Vec<_> = claims.iter().zip(&outcomes).collect();
    let results = record_both_ways(&store, &batch, now).await;

    for (i, ((claim, _), result)) in batch.iter().zip(&results).enumerate() {
        let recorded = result.as_ref().unwrap();
        assert_eq!(recorded.state.id, claim.attempt.delivery_id);
        let expected = if matches!(i % 4, 0 | 3) {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::RetryScheduled
        };
        assert_eq!(recorded.state.status, expected);
        assert_eq!(recorded.endpoint_disabled, None);
        let log = store.attempts(&claim.attempt.delivery_id).await.unwrap();
        assert_eq!(log.len(), 1);
    }
    for ep in &endpoints {
        assert!(store.get_endpoint(&ep.id).await.unwrap().is_enabled());
    }
    close(store).await;
}

/// A lease lost in the middle of the batch fails that item only; the items on both sides of it
/// are recorded, and the lost one's row is left to its new owner.
#[tokio::test]
async fn a_lost_lease_in_the_middle_fails_only_its_item() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    for _ in 0..5 {
        store
            .emit(&event(&EventType::PAYMENT_SUCCEEDED, now), now)
            .await
            .unwrap();
    }
    // Due at the same time, so claimed in id order: the third has a short lease.
    let long = Duration::minutes(5);
    let mut claims = store.claim(now, 2, long).await.unwrap();
    claims.extend(store.claim(now, 1, Duration::seconds(1)).await.unwrap());
    claims.extend(store.claim(now, 2, long).await.unwrap());
    assert_eq!(claims.len(), 5);
    assert!(claims.is_sorted_by(|a, b| a.attempt.delivery_id < b.attempt.delivery_id));
    let lost = &claims[2];

    // Its lease runs out and another claimer takes it over (settling the lost attempt and
    // claiming it again, with a new lease).
    let later = now + Duration::seconds(2);
    let taken = store.claim(later, 5, long).await.unwrap();
    assert!(taken.is_empty(), "the lost attempt is retried later");
    let after_reclaim = store.get_delivery(&lost.attempt.delivery_id).await.unwrap();
    assert_eq!(after_reclaim.status, DeliveryStatus::RetryScheduled);

    let ok = code(200, later);
    let failed = code(503, later);
    let outcomes = [&ok, &failed, &ok, &ok, &failed];
    let mut batch: Vec<_> = claims.iter().zip(outcomes).collect();
    // The same claim twice: its first outcome ends the lease, so the second is refused.
    batch.push((&claims[0], &failed));
    let results = record_both_ways(&store, &batch, later).await;

    assert!(
        matches!(&results[2], Err(StoreError::LeaseLost(id)) if *id == lost.attempt.delivery_id.to_string())
    );
    let statuses: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().ok().map(|r| r.state.status))
        .collect();
    assert_eq!(
        statuses,
        [
            Some(DeliveryStatus::Delivered),
            Some(DeliveryStatus::RetryScheduled),
            None,
            Some(DeliveryStatus::Delivered),
            Some(DeliveryStatus::RetryScheduled),
            None,
        ]
    );
    assert!(matches!(&results[5], Err(StoreError::LeaseLost(_))));
    assert_eq!(
        store.get_delivery(&lost.attempt.delivery_id).await.unwrap(),
        after_reclaim,
        "the lost item's row is untouched"
    );
    let health = store.endpoint_health(&lost.endpoint.id).await.unwrap();
    assert_eq!(
        health.consecutive_failures, 1,
        "the last outcome is a failure"
    );
    assert_eq!(health.last_success_at, Some(later));
    close(store).await;
}

/// A 410 in the middle of an endpoint's items disables it: its items after the 410, its
/// deliveries not in the batch and the other endpoint's items all end as one by one.
#[tokio::test]
async fn a_gone_endpoint_in_a_batch_matches_one_by_one() {
    let Some(store) = open().await else { return };
    let now = t0();
    let gone = endpoint(&["*"], now);
    let other = endpoint(&["*"], now);
    store.create_endpoint(&gone).await.unwrap();
    store.create_endpoint(&other).await.unwrap();
    for _ in 0..5 {
        store
            .emit(&event(&EventType::PRODUCT_CREATED, now), now)
            .await
            .unwrap();
    }
    let claims = store.claim(now, 8, Duration::minutes(1)).await.unwrap();
    // Of the 10 deliveries, 2 are left waiting (and are paused if theirs is disabled).
    assert_eq!(claims.len(), 8);
    let mut ordered: Vec<&Claim> = claims.iter().collect();
    ordered.sort_by(|a, b| {
        (&a.state.endpoint_id, &a.attempt.delivery_id)
            .cmp(&(&b.state.endpoint_id, &b.attempt.delivery_id))
    });
    let gone_items = ordered
        .iter()
        .filter(|c| c.state.endpoint_id == gone.id)
        .count();
    assert!(gone_items >= 3, "the 410 has items on both sides");

    // The gone endpoint: a failure, the 410, then successes and failures after it.
    let gone_codes = [500, 410, 200, 502, 200];
    let other_codes = [200, 500, 503, 200, 500];
    let (mut gone_seen, mut other_seen) = (0, 0);
    let mut outcomes = Vec::new();
    for claim in &ordered {
        let status = if claim.state.endpoint_id == gone.id {
            gone_seen += 1;
            gone_codes[gone_seen - 1]
        } else {
            other_seen += 1;
            other_codes[other_seen - 1]
        };
        outcomes.push(code(status, now));
    }
    // Given to the store in reverse.
    let batch: Vec<_> = ordered.iter().copied().zip(&outcomes).rev().collect();
    let results = record_both_ways(&store, &batch, now).await;

    let disabled: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().unwrap().endpoint_disabled)
        .collect();
    assert_eq!(disabled, [DisableReason::Gone], "disabled once");
    assert!(!store.get_endpoint(&gone.id).await.unwrap().is_enabled());
    assert!(store.get_endpoint(&other.id).await.unwrap().is_enabled());
    // As recorded: the failure before the 410 was still to be retried (it is paused now), the
    // 410 failed its delivery, and outcomes after it find the endpoint disabled.
    let status_of = |claim: &Claim| {
        let at = batch
            .iter()
            .position(|(c, _)| std::ptr::eq(*c, claim))
            .unwrap();
        results[at].as_ref().unwrap().state.status
    };
    let gone_statuses: Vec<_> = ordered
        .iter()
        .filter(|c| c.state.endpoint_id == gone.id)
        .map(|c| status_of(c))
        .collect();
    let expected = [
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::Failed,
        DeliveryStatus::Delivered,
        DeliveryStatus::Paused,
        DeliveryStatus::Delivered,
    ];
    assert_eq!(gone_statuses, expected[..gone_items]);
    let other_statuses: Vec<_> = ordered
        .iter()
        .filter(|c| c.state.endpoint_id == other.id)
        .map(|c| status_of(c))
        .collect();
    let expected = [
        DeliveryStatus::Delivered,
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::RetryScheduled,
        DeliveryStatus::Delivered,
        DeliveryStatus::RetryScheduled,
    ];
    assert_eq!(other_statuses, expected[..claims.len() - gone_items]);
    // The gone endpoint's deliveries that were not in the batch are paused.
    let waiting = store
        .list_deliveries(&nopos_webhooks::store::DeliveryQuery::endpoint(
            gone.id.clone(),
        ))
        .await
        .unwrap();
    assert!(
        waiting.iter().all(|s| !matches!(
            s.status,
            DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
        )),
        "{waiting:?}"
    );
    close(store).await;
}

/// An endpoint whose one delivery failed at `now` (failing since then), and a time `later` past
/// the health period, when one more failure alone would disable it: `(endpoint, now, later)`.
async fn failing_past_the_health_period(
    store: &PostgresStore,
) -> (Endpoint, OffsetDateTime, OffsetDateTime) {
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    store
        .emit(&event(&EventType::PAYMENT_FAILED, now), now)
        .await
        .unwrap();
    let first = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    store
        .record_attempt(&first, &code(500, now), now)
        .await
        .unwrap();
    assert_eq!(
        store.endpoint_health(&ep.id).await.unwrap().failing_since,
        Some(now)
    );
    (ep, now, now + Duration::days(5) + Duration::hours(1))
}

/// Each outcome sees the health the previous ones of its endpoint left: a success early in the
/// batch ends a failing streak, so failures after it do not disable an endpoint that had been
/// failing for longer than the health period before the batch.
#[tokio::test]
async fn health_is_carried_from_item_to_item() {
    let Some(store) = open().await else { return };
    let (ep, _, later) = failing_past_the_health_period(&store).await;
    for _ in 0..5 {
        store
            .emit(&event(&EventType::PAYMENT_FAILED, later), later)
            .await
            .unwrap();
    }
    let claims = store.claim(later, 10, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 6);
    let mut ordered: Vec<&Claim> = claims.iter().collect();
    ordered.sort_by(|a, b| a.attempt.delivery_id.cmp(&b.attempt.delivery_id));
    let codes = [200, 500, 503, 200, 500, 500];
    let outcomes: Vec<_> = codes.iter().map(|&c| code(c, later)).collect();
    let batch: Vec<_> = ordered.iter().copied().zip(&outcomes).collect();
    let results = record_both_ways(&store, &batch, later).await;

    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().endpoint_disabled.is_none())
    );
    assert!(store.get_endpoint(&ep.id).await.unwrap().is_enabled());
    let health = store.endpoint_health(&ep.id).await.unwrap();
    assert_eq!(health.consecutive_failures, 2);
    assert_eq!(health.failing_since, Some(later));
    assert_eq!(health.last_success_at, Some(later));
    close(store).await;
}

/// The reverse: failures only, past the health period. The batch's first failure disables the
/// endpoint; its later items are recorded after the disable, as one by one.
#[tokio::test]
async fn failing_past_the_health_period_in_a_batch_matches_one_by_one() {
    let Some(store) = open().await else { return };
    let (ep, now, later) = failing_past_the_health_period(&store).await;
    for _ in 0..3 {
        store
            .emit(&event(&EventType::PAYMENT_FAILED, later), later)
            .await
            .unwrap();
    }
    let claims = store.claim(later, 10, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 4);
    let outcomes: Vec<_> = (0..claims.len()).map(|_| code(503, later)).collect();
    let batch: Vec<_> = claims.iter().zip(&outcomes).collect();
    let results = record_both_ways(&store, &batch, later).await;

    let disabled: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().unwrap().endpoint_disabled)
        .collect();
    assert_eq!(disabled, [DisableReason::Failing { since: now }]);
    assert!(!store.get_endpoint(&ep.id).await.unwrap().is_enabled());
    let health = store.endpoint_health(&ep.id).await.unwrap();
    assert_eq!(health.consecutive_failures, 5, "every failure counts");
    close(store).await;
}
