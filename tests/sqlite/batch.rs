//! `record_attempts` on SQLite writes a batch with a constant number of statements. Its results
//! must be those of recording the items one by one in batch order, so each case runs the batch on
//! a store and the one-by-one path on a copy of its file made just before (same rows, so the same
//! claims and leases apply), then compares every result and every row. One by one is itself a
//! batch of one, so the cases also check what the outcomes must have done (statuses, healths,
//! lost leases, the disabled endpoint).

use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{Claim, Recorded, Store, StoreError};
use nopos_webhooks::{AttemptOutcome, DeliveryStatus, DisableReason, EventType, TransportError};
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::conformance::{self, comparable, config, endpoint, event, t0};
use crate::{close, open};

/// A store on a consistent copy of `store`'s file.
async fn twin(store: &SqliteStore) -> SqliteStore {
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let path = dir.join("twin.db");
    sqlx::query("VACUUM INTO ?")
        .bind(path.to_string_lossy().into_owned())
        .execute(store.pool())
        .await
        .unwrap();
    SqliteStore::open(&path, config()).await.unwrap()
}

/// Every row of the store's tables, as text, in a fixed order.
async fn rows(store: &SqliteStore) -> Vec<String> {
    let mut all = Vec::new();
    for sql in [
        "SELECT 'endpoint ' || json_array(id, record, health) FROM nopos_endpoints ORDER BY id",
        "SELECT 'delivery ' || json_array(id, status, finished, due_at, lease_token, \
         lease_until, state) FROM nopos_deliveries ORDER BY id",
        "SELECT 'attempt ' || json_array(delivery_id, attempt, record) FROM nopos_attempts \
         ORDER BY delivery_id, attempt",
    ] {
        let found = sqlx::query(sql).fetch_all(store.pool()).await.unwrap();
        all.extend(found.iter().map(|row| row.get::<String, _>(0)));
    }
    all
}

/// Records `batch` with `record_attempts` on `store` and one by one on a twin; asserts the same
/// results and the same rows. Returns the batch's results.
async fn record_both_ways(
    store: &SqliteStore,
    batch: &[(&Claim, &AttemptOutcome)],
    now: OffsetDateTime,
) -> Vec<Result<Recorded, StoreError>> {
    let copy = twin(store).await;
    assert_eq!(rows(store).await, rows(&copy).await);
    let batched = store.record_attempts(batch, now).await.unwrap();
    let mut one_by_one = Vec::new();
    for (claim, outcome) in batch {
        one_by_one.push(copy.record_attempt(claim, outcome, now).await);
    }
    assert_eq!(comparable(&batched), comparable(&one_by_one));
    let (ours, theirs) = (rows(store).await, rows(&copy).await);
    assert_eq!(ours.len(), theirs.len());
    for (ours, theirs) in ours.iter().zip(&theirs) {
        assert_eq!(ours, theirs, "the batch and one-by-one rows differ");
    }
    close(copy).await;
    batched
}

fn timeout(now: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome::transport_failure(now, Duration::seconds(10), TransportError::Timeout)
}

/// Three endpoints interleaved, successes and failures mixed: each endpoint's health is carried
/// from item to item.
#[tokio::test]
async fn a_batch_mixing_endpoints_matches_one_by_one() {
    let store = open().await.unwrap();
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
    claims.sort_by(|a, b| a.attempt.event_id.cmp(&b.attempt.event_id).reverse());
    let outcomes: Vec<AttemptOutcome> = (0..claims.len())
        .map(|i| match i % 4 {
            0 => conformance::status(200, now),
            1 => conformance::status(500, now),
            2 => timeout(now),
            _ => conformance::status(204, now),
        })
        .collect();
    let batch: Vec<_> = claims.iter().zip(&outcomes).collect();
    let results = record_both_ways(&store, &batch, now).await;
    for (i, result) in results.iter().enumerate() {
        let expected = if matches!(i % 4, 0 | 3) {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::RetryScheduled
        };
        assert_eq!(result.as_ref().unwrap().state.status, expected);
    }
    // The one-by-one path is a batch of one, so the comparison alone cannot catch a health not
    // carried from item to item: check each endpoint's health against the outcomes, in order.
    for ep in &endpoints {
        let mut failures_since_success = 0;
        let mut succeeded = false;
        for ((claim, _), result) in batch.iter().zip(&results) {
            if claim.endpoint.id != ep.id {
                continue;
            }
            if result.as_ref().unwrap().state.status == DeliveryStatus::Delivered {
                (failures_since_success, succeeded) = (0, true);
            } else {
                failures_since_success += 1;
            }
        }
        let health = store.endpoint_health(&ep.id).await.unwrap();
        assert_eq!(health.consecutive_failures, failures_since_success);
        assert_eq!(health.last_success_at, succeeded.then_some(now));
    }
    close(store).await;
}

/// A lease lost in the middle fails that item only, and a claim given twice is refused the
/// second time.
#[tokio::test]
async fn a_lost_lease_in_the_middle_fails_only_its_item() {
    let store = open().await.unwrap();
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    for _ in 0..5 {
        store
            .emit(&event(&EventType::PAYMENT_SUCCEEDED, now), now)
            .await
            .unwrap();
    }
    let long = Duration::minutes(5);
    let mut claims = store.claim(now, 2, long).await.unwrap();
    claims.extend(store.claim(now, 1, Duration::seconds(1)).await.unwrap());
    claims.extend(store.claim(now, 2, long).await.unwrap());
    assert_eq!(claims.len(), 5);
    // The third lease runs out and a claim settles it as a lost attempt.
    let later = now + Duration::seconds(2);
    assert!(store.claim(later, 5, long).await.unwrap().is_empty());

    let (ok, failed) = (
        conformance::status(200, later),
        conformance::status(503, later),
    );
    let mut batch: Vec<_> = claims
        .iter()
        .zip([&ok, &failed, &ok, &ok, &failed])
        .collect();
    batch.push((&claims[0], &failed));
    let results = record_both_ways(&store, &batch, later).await;
    assert!(matches!(&results[2], Err(StoreError::LeaseLost(_))));
    assert!(matches!(&results[5], Err(StoreError::LeaseLost(_))));
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        4,
        "{results:?}"
    );
    close(store).await;
}

/// A 410 in the middle of an endpoint's items disables it: the items after it are read again
/// (paused), its deliveries outside the batch pause, the other endpoint is untouched.
#[tokio::test]
async fn a_gone_endpoint_in_a_batch_matches_one_by_one() {
    let store = open().await.unwrap();
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
    // Four of each endpoint's five deliveries are claimed; one of each stays pending.
    let claims = store.claim(now, 8, Duration::minutes(5)).await.unwrap();
    assert_eq!(claims.len(), 8);
    let outcomes: Vec<AttemptOutcome> = claims
        .iter()
        .enumerate()
        .map(|(i, claim)| {
            if claim.endpoint.id == gone.id && (2..5).contains(&i) {
                conformance::status(410, now)
            } else {
                conformance::status(500, now)
            }
        })
        .collect();
    let batch: Vec<_> = claims.iter().zip(&outcomes).collect();
    let results = record_both_ways(&store, &batch, now).await;
    let disabled: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok()?.endpoint_disabled)
        .collect();
    assert_eq!(disabled, [DisableReason::Gone], "{results:?}");
    assert!(!store.get_endpoint(&gone.id).await.unwrap().is_enabled());
    assert!(store.get_endpoint(&other.id).await.unwrap().is_enabled());
    close(store).await;
}
