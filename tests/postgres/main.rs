//! The store conformance suite and the PostgreSQL-specific tests, against the database named by
//! `NOPOS_WEBHOOKS_TEST_POSTGRES` (a connection URL). Every test runs in a schema of its own,
//! dropped afterwards. Without the variable each test prints a skip notice and passes.
#![cfg(feature = "postgres")]

#[path = "../conformance/mod.rs"]
mod conformance;

mod batch;
#[cfg(all(feature = "dispatcher", feature = "reqwest"))]
mod outage;
#[cfg(feature = "postgres-tls")]
mod tls;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use nopos_webhooks::store::postgres::{ConnectError, PostgresDeduplicator, PostgresStore};
use nopos_webhooks::store::{DeliveryQuery, Store, StoreConfig, StoreError, codec};
use nopos_webhooks::{
    DedupOutcome, Deduplicator, DeliveryStatus, EndpointHealth, EventId, EventType, SerializedEvent,
};
use sqlx::{AssertSqlSafe, Row};
use time::Duration;

use conformance::{config, endpoint, event, t0};

const URL_VAR: &str = "NOPOS_WEBHOOKS_TEST_POSTGRES";

/// The test database's URL, or `None` (after saying so) when the tests are to be skipped.
fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping PostgreSQL store test: set {URL_VAR} to a PostgreSQL URL to run it"
            );
            None
        }
    }
}

fn fresh_schema() -> String {
    format!(
        "nopos_test_{}",
        hex::encode(nopos_webhooks::random::bytes::<8>())
    )
}

async fn open() -> Option<PostgresStore> {
    let url = url()?;
    Some(
        PostgresStore::connect_with_schema(&url, &fresh_schema(), config())
            .await
            .expect("open a store in a fresh schema"),
    )
}

/// Another store (its own pool) on `store`'s schema: another dispatcher process.
async fn open_same_schema(store: &PostgresStore) -> PostgresStore {
    PostgresStore::connect_with_schema(&url().unwrap(), store.schema(), config())
        .await
        .expect("open a second store on the schema")
}

/// Emits `n` events one second apart from `now` to the store's endpoints; their deliveries, in
/// emit order.
async fn emit_a_second_apart(
    store: &PostgresStore,
    n: i64,
    now: time::OffsetDateTime,
) -> Vec<nopos_webhooks::DeliveryId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let at = now + Duration::seconds(i);
        ids.extend(
            store
                .emit(&event(&EventType::PRODUCT_CREATED, at), at)
                .await
                .unwrap()
                .deliveries,
        );
    }
    ids
}

/// Drops the store's schema and closes its pool.
async fn close(store: PostgresStore) {
    let sql = format!("DROP SCHEMA \"{}\" CASCADE", store.schema());
    sqlx::query(AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .expect("drop the test schema");
    store.pool().close().await;
}

/// Runs `sql` (with `{s}` standing for the quoted schema) on the store's pool.
async fn exec(store: &PostgresStore, sql: &str) -> u64 {
    let sql = sql.replace("{s}", &format!("\"{}\"", store.schema()));
    sqlx::query(AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap()
        .rows_affected()
}

conformance_suite!(open(), close);

#[tokio::test]
async fn outbox_commits_and_rolls_back_with_the_sale() {
    let Some(store) = open().await else { return };
    let now = t0();
    exec(
        &store,
        "CREATE TABLE {s}.sales (id TEXT PRIMARY KEY, total TEXT NOT NULL)",
    )
    .await;
    let insert_sale = format!(
        "INSERT INTO \"{}\".sales (id, total) VALUES ($1, $2)",
        store.schema()
    );
    let ep = endpoint(&["transaction.*"], now);
    store.create_endpoint(&ep).await.unwrap();

    // Commit: the sale and its event become visible together.
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(AssertSqlSafe(insert_sale.clone()))
        .bind("txn_1")
        .bind("125.50")
        .execute(&mut *tx)
        .await
        .unwrap();
    let receipt = store.emit_in(&mut tx, &sale, now).await.unwrap();
    assert_eq!(receipt.deliveries.len(), 1);
    assert!(matches!(
        store.get_event(sale.id()).await,
        Err(StoreError::NotFound { .. })
    ));
    tx.commit().await.unwrap();
    assert_eq!(store.get_event(sale.id()).await.unwrap().event, sale);
    let state = store.get_delivery(&receipt.deliveries[0]).await.unwrap();
    assert_eq!(state.status, DeliveryStatus::Pending);
    assert_eq!(
        exec(&store, "SELECT 1 FROM {s}.sales WHERE id = 'txn_1'").await,
        1
    );

    // Rollback: neither the sale nor the event nor a delivery remains.
    let refund = event(&EventType::TRANSACTION_REFUNDED, now);
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(AssertSqlSafe(insert_sale.clone()))
        .bind("txn_2")
        .bind("9.99")
        .execute(&mut *tx)
        .await
        .unwrap();
    store.emit_in(&mut tx, &refund, now).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(matches!(
        store.get_event(refund.id()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store
            .list_deliveries(&DeliveryQuery::event(refund.id().clone()))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        exec(&store, "SELECT 1 FROM {s}.sales WHERE id = 'txn_2'").await,
        0
    );

    // A failed emit_in undoes its own writes (a savepoint) and leaves the caller's transaction
    // usable: here the event row was written before a corrupt endpoint row stopped the fan-out.
    exec(
        &store,
        "INSERT INTO {s}.endpoints (id, created_at, record, health) \
         VALUES ('wh_corrupt', 0, '{\"not\": \"an endpoint\"}', '{}')",
    )
    .await;
    let created = event(&EventType::TRANSACTION_CREATED, now);
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query(AssertSqlSafe(insert_sale))
        .bind("txn_3")
        .bind("1.00")
        .execute(&mut *tx)
        .await
        .unwrap();
    let failed = store.emit_in(&mut tx, &created, now).await;
    assert!(
        matches!(failed, Err(StoreError::Corrupt { .. })),
        "{failed:?}"
    );
    let again = store.emit_in(&mut tx, &sale, now).await.unwrap();
    assert!(again.duplicate);
    tx.commit().await.unwrap();
    assert_eq!(
        exec(&store, "SELECT 1 FROM {s}.sales WHERE id = 'txn_3'").await,
        1
    );
    assert!(matches!(
        store.get_event(created.id()).await,
        Err(StoreError::NotFound { .. })
    ));
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claimers_on_separate_pools_never_share_a_delivery() {
    let Some(first) = open().await else { return };
    let now = t0();
    first.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    first
        .create_endpoint(&endpoint(&["inventory.*"], now))
        .await
        .unwrap();
    let mut expected = HashSet::new();
    for _ in 0..150 {
        let receipt = first
            .emit(&event(&EventType::INVENTORY_UPDATED, now), now)
            .await
            .unwrap();
        expected.extend(receipt.deliveries);
    }
    assert_eq!(expected.len(), 300);

    let mut stores = vec![Arc::new(first)];
    for _ in 0..3 {
        stores.push(Arc::new(open_same_schema(&stores[0]).await));
    }
    let seen = conformance::claim_concurrently(&stores, now, 5).await;
    assert_eq!(seen, expected);

    let mut stores = stores.into_iter();
    let first = Arc::try_unwrap(stores.next().unwrap()).unwrap();
    for other in stores {
        other.pool().close().await;
    }
    close(first).await;
}

/// An emit still open in the caller's transaction holds endpoint status changes back: the
/// disable then sees (and pauses) the delivery that emit created, instead of missing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_waits_for_an_open_emit() {
    let Some(store) = open().await else { return };
    let store = Arc::new(store);
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();

    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let mut tx = store.pool().begin().await.unwrap();
    let id = store.emit_in(&mut tx, &sale, now).await.unwrap().deliveries[0].clone();
    let mut disable = {
        let store = Arc::clone(&store);
        let id = ep.id.clone();
        tokio::spawn(async move {
            let reason = Some(nopos_webhooks::DisableReason::Manual);
            store.set_endpoint_enabled(&id, reason, now).await.unwrap();
        })
    };
    let held = std::time::Duration::from_millis(300);
    assert!(
        tokio::time::timeout(held, &mut disable).await.is_err(),
        "the status change did not wait for the open emit"
    );
    tx.commit().await.unwrap();
    disable.await.unwrap();
    assert_eq!(
        store.get_delivery(&id).await.unwrap().status,
        DeliveryStatus::Paused
    );
    close(Arc::try_unwrap(store).unwrap()).await;
}

/// Emits, claims with outcomes and endpoint status changes racing on two pools: no deadlock or
/// other error, and no delivery left waiting for a disabled endpoint (or paused for an enabled
/// one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_changes_racing_emits_and_outcomes_stay_consistent() {
    let Some(first) = open().await else { return };
    let second = Arc::new(open_same_schema(&first).await);
    let first = Arc::new(first);
    let now = t0();
    let ep = endpoint(&["*"], now);
    first.create_endpoint(&ep).await.unwrap();

    let emitter = {
        let store = Arc::clone(&first);
        tokio::spawn(async move {
            for _ in 0..60 {
                let sale = event(&EventType::TRANSACTION_COMPLETED, now);
                store.emit(&sale, now).await.unwrap();
            }
        })
    };
    let dispatcher = {
        let store = Arc::clone(&second);
        tokio::spawn(async move {
            for round in 0..40 {
                for claim in store.claim(now, 5, Duration::minutes(5)).await.unwrap() {
                    let code = if round % 2 == 0 { 500 } else { 200 };
                    store
                        .record_attempt(&claim, &conformance::status(code, now), now)
                        .await
                        .unwrap();
                }
            }
        })
    };
    let operator = {
        let store = Arc::clone(&second);
        let id = ep.id.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let reason = Some(nopos_webhooks::DisableReason::Manual);
                store.set_endpoint_enabled(&id, reason, now).await.unwrap();
                store.set_endpoint_enabled(&id, None, now).await.unwrap();
            }
            store
                .set_endpoint_enabled(&id, Some(nopos_webhooks::DisableReason::Manual), now)
                .await
                .unwrap();
        })
    };
    for task in [emitter, dispatcher, operator] {
        task.await.unwrap();
    }

    let states = first
        .list_deliveries(&DeliveryQuery::endpoint(ep.id.clone()).limit(10_000))
        .await
        .unwrap();
    assert_eq!(states.len(), 60);
    let waiting = |states: &[nopos_webhooks::DeliveryState]| {
        states
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
                )
            })
            .count()
    };
    assert_eq!(
        waiting(&states),
        0,
        "due deliveries for a disabled endpoint"
    );
    first.set_endpoint_enabled(&ep.id, None, now).await.unwrap();
    let states = first
        .list_deliveries(&DeliveryQuery::endpoint(ep.id.clone()).limit(10_000))
        .await
        .unwrap();
    assert!(
        states.iter().all(|s| s.status != DeliveryStatus::Paused),
        "paused deliveries for an enabled endpoint"
    );
    drop(second);
    close(Arc::try_unwrap(first).unwrap()).await;
}

#[tokio::test]
async fn an_emit_from_another_process_wakes_a_waiting_dispatcher() {
    let Some(waiting) = open().await else { return };
    // A long backstop: only the notification can wake it within the test's bound.
    let waiting = waiting.with_poll_interval(std::time::Duration::from_secs(60));
    let emitting = open_same_schema(&waiting).await;
    let now = t0();
    emitting
        .create_endpoint(&endpoint(&["*"], now))
        .await
        .unwrap();
    waiting.listen().await.unwrap();

    let bound = std::time::Duration::from_secs(5);
    let payment = event(&EventType::PAYMENT_SUCCEEDED, now);
    let started = Instant::now();
    let (woke, receipt) = tokio::join!(
        tokio::time::timeout(bound, waiting.wait_for_work()),
        emitting.emit(&payment, now),
    );
    receipt.unwrap();
    assert!(woke.is_ok(), "no wake-up within {bound:?}");
    eprintln!("woken {:?} after the emit started", started.elapsed());

    // The notification also left a wake-up for the next wait (so that work arriving between two
    // waits is never missed): take it.
    assert!(
        tokio::time::timeout(bound, waiting.wait_for_work())
            .await
            .is_ok()
    );

    // Work in another schema of the same database does not wake it.
    let Some(elsewhere) = open().await else {
        return;
    };
    elsewhere
        .create_endpoint(&endpoint(&["*"], now))
        .await
        .unwrap();
    let payment = event(&EventType::PAYMENT_SUCCEEDED, now);
    let (woke, receipt) = tokio::join!(
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            waiting.wait_for_work()
        ),
        elsewhere.emit(&payment, now),
    );
    receipt.unwrap();
    assert!(woke.is_err(), "woken by another schema's work");
    close(elsewhere).await;

    // Without any notification, the backstop ends the wait.
    let polling = emitting.with_poll_interval(std::time::Duration::from_millis(50));
    assert!(
        tokio::time::timeout(bound, polling.wait_for_work())
            .await
            .is_ok()
    );
    polling.pool().close().await;
    close(waiting).await;
}

#[tokio::test]
async fn the_listener_reconnects_after_losing_its_connection() {
    let Some(url) = url() else { return };
    // Tag this store's connections, to find its listener among other tests' ones.
    let schema = fresh_schema();
    let separator = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{separator}application_name={schema}");
    let waiting = PostgresStore::connect_with_schema(&tagged, &schema, config())
        .await
        .unwrap()
        .with_poll_interval(std::time::Duration::from_secs(60));
    let emitting = open_same_schema(&waiting).await;
    let now = t0();
    emitting
        .create_endpoint(&endpoint(&["*"], now))
        .await
        .unwrap();
    waiting.listen().await.unwrap();

    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(&schema)
    .fetch_one(emitting.pool())
    .await
    .unwrap();
    assert_eq!(killed, 1);

    // Losing the connection wakes waiters (work may have been missed meanwhile) …
    let bound = std::time::Duration::from_secs(5);
    assert!(
        tokio::time::timeout(bound, waiting.wait_for_work())
            .await
            .is_ok()
    );
    // … (take the wake-ups of the reconnection) …
    for _ in 0..10 {
        let quiet = std::time::Duration::from_millis(300);
        if tokio::time::timeout(quiet, waiting.wait_for_work())
            .await
            .is_err()
        {
            break;
        }
    }
    // … and the listener, connected and subscribed again, still hears new work.
    let payment = event(&EventType::PAYMENT_SUCCEEDED, now);
    let (woke, receipt) = tokio::join!(
        tokio::time::timeout(bound, waiting.wait_for_work()),
        emitting.emit(&payment, now),
    );
    receipt.unwrap();
    assert!(woke.is_ok(), "no wake-up after reconnecting");
    emitting.pool().close().await;
    close(waiting).await;
}

#[tokio::test]
async fn fan_out_to_ten_thousand_endpoints_is_one_statement() {
    let Some(store) = open().await else { return };
    let now = t0();
    // Register the endpoints in bulk (10,000 create_endpoint calls would only test patience).
    let mut ids = Vec::new();
    let mut created = Vec::new();
    let mut records = Vec::new();
    for _ in 0..10_000 {
        let ep = endpoint(&["*"], now);
        ids.push(ep.id.to_string());
        created.push(codec::to_micros(ep.created_at));
        records.push(codec::endpoint_to_json(&ep).unwrap());
    }
    let health = codec::to_json("health", &EndpointHealth::new()).unwrap();
    let sql = format!(
        "INSERT INTO \"{}\".endpoints (id, created_at, record, health) \
         SELECT u.id, u.created_at, u.record, $4 \
         FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, created_at, record)",
        store.schema()
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&created)
        .bind(&records)
        .bind(&health)
        .execute(store.pool())
        .await
        .unwrap();

    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let started = Instant::now();
    let receipt = store.emit(&sale, now).await.unwrap();
    eprintln!("fan-out to 10,000 endpoints took {:?}", started.elapsed());
    assert_eq!(receipt.deliveries.len(), 10_000);

    // Rows inserted by one statement share its transaction id (xmin) and command id (cmin).
    let sql = format!(
        "SELECT count(*), count(DISTINCT xmin::text), count(DISTINCT cmin::text), \
         count(DISTINCT endpoint_id) FROM \"{}\".deliveries WHERE event_id = $1",
        store.schema()
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(sale.id().as_str())
        .fetch_one(store.pool())
        .await
        .unwrap();
    let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(counts, (10_000, 1, 1, 10_000));

    let again = store.emit(&sale, now).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.deliveries, receipt.deliveries);
    let claims = store.claim(now, 500, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 500);
    close(store).await;
}

#[tokio::test]
async fn deduplicator_marks_expires_and_forgets() {
    let Some(store) = open().await else { return };
    let ttl = Duration::minutes(10);
    let seen = PostgresDeduplicator::new(&store, ttl);
    assert_eq!(seen.ttl(), ttl);
    let id: EventId = "evt_dedup_1".parse().unwrap();
    let now = t0();
    let at = move |secs| now + Duration::seconds(secs);

    assert_eq!(
        seen.check_and_mark(&id, now).await.unwrap(),
        DedupOutcome::New
    );
    assert_eq!(
        seen.check_and_mark(&id, at(1)).await.unwrap(),
        DedupOutcome::Duplicate
    );
    assert_eq!(
        seen.check_and_mark(&id, at(599)).await.unwrap(),
        DedupOutcome::Duplicate
    );
    // Exactly one TTL after the mark it is new again, and marked afresh.
    assert_eq!(
        seen.check_and_mark(&id, at(600)).await.unwrap(),
        DedupOutcome::New
    );
    assert_eq!(
        seen.check_and_mark(&id, at(1199)).await.unwrap(),
        DedupOutcome::Duplicate
    );

    // Forgetting makes the next delivery new (a failed processing is retried).
    seen.forget(&id).await.unwrap();
    assert_eq!(
        seen.check_and_mark(&id, at(1200)).await.unwrap(),
        DedupOutcome::New
    );
    seen.forget(&"evt_never_seen".parse().unwrap())
        .await
        .unwrap();

    // Through the trait object the adapters hold, concurrently: exactly one caller sees New.
    let shared: Arc<dyn Deduplicator> = Arc::new(seen.clone());
    let contested: EventId = "evt_contested".parse().unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let shared = Arc::clone(&shared);
            let contested = contested.clone();
            tokio::spawn(async move { shared.check_and_mark(&contested, at(1200)).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        if task.await.unwrap() == DedupOutcome::New {
            new += 1;
        }
    }
    assert_eq!(new, 1);

    // Purging removes only expired marks.
    assert_eq!(seen.purge_expired(at(1200)).await.unwrap(), 0);
    assert_eq!(seen.purge_expired(at(1799)).await.unwrap(), 0);
    assert_eq!(seen.purge_expired(at(1800)).await.unwrap(), 2);
    assert_eq!(
        seen.check_and_mark(&contested, at(1800)).await.unwrap(),
        DedupOutcome::New
    );
    assert!(!format!("{seen:?}").contains("postgres://"));
    close(store).await;
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    let Some(store) = open().await else { return };
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let id = store.emit(&sale, now).await.unwrap().deliveries.remove(0);

    // A delivery state that does not decode: reads and claims report it and change nothing.
    exec(&store, "UPDATE {s}.deliveries SET state = '{\"id\": 5}'").await;
    assert!(matches!(
        store.get_delivery(&id).await,
        Err(StoreError::Corrupt {
            what: "delivery",
            ..
        })
    ));
    assert!(matches!(
        store.list_deliveries(&DeliveryQuery::default()).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.claim(now, 10, Duration::minutes(1)).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        exec(
            &store,
            "SELECT 1 FROM {s}.deliveries WHERE lease_token IS NULL"
        )
        .await,
        1
    );

    // An event type that is not a valid name.
    exec(&store, "UPDATE {s}.events SET type = 'Not A Type!'").await;
    assert!(matches!(
        store.get_event(sale.id()).await,
        Err(StoreError::Corrupt { .. })
    ));

    // An endpoint document of the wrong shape: reads fail, and so does emit, storing nothing.
    exec(&store, "UPDATE {s}.endpoints SET record = '[1, 2, 3]'").await;
    assert!(matches!(
        store.get_endpoint(&ep.id).await,
        Err(StoreError::Corrupt {
            what: "endpoint",
            ..
        })
    ));
    assert!(matches!(
        store.list_endpoints().await,
        Err(StoreError::Corrupt { .. })
    ));
    let next = event(&EventType::PAYMENT_SUCCEEDED, now);
    assert!(matches!(
        store.emit(&next, now).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.get_event(next.id()).await,
        Err(StoreError::NotFound { .. })
    ));

    // Health that does not decode.
    exec(&store, "UPDATE {s}.endpoints SET health = '\"sick\"'").await;
    assert!(matches!(
        store.endpoint_health(&ep.id).await,
        Err(StoreError::Corrupt { .. })
    ));
    close(store).await;
}

/// A database written by version 1 of the schema (documents as JSONB) opens under version 2
/// (documents as text) with every endpoint, delivery and attempt record readable. Version 1 is
/// recreated by undoing migration 2 on a fresh schema: its columns back to JSONB (PostgreSQL
/// re-prints the documents in its own spacing and key order) and its migration row removed.
#[tokio::test]
async fn documents_written_by_version_1_survive_the_upgrades() {
    let Some(store) = open().await else { return };
    let now = t0();
    let hook = endpoint(&["*"], now);
    store.create_endpoint(&hook).await.unwrap();
    let receipt = store
        .emit(&event(&EventType::TRANSACTION_COMPLETED, now), now)
        .await
        .unwrap();
    let claims = store.claim(now, 10, Duration::minutes(5)).await.unwrap();
    let outcome = conformance::status(503, now);
    store
        .record_attempt(&claims[0], &outcome, now)
        .await
        .unwrap();
    let delivery = receipt.deliveries[0].clone();
    let state = store.get_delivery(&delivery).await.unwrap();
    let attempts = store.attempts(&delivery).await.unwrap();
    let health = store.endpoint_health(&hook.id).await.unwrap();

    for sql in [
        "ALTER TABLE {s}.endpoints ALTER COLUMN record TYPE JSONB USING record::jsonb, \
         ALTER COLUMN health TYPE JSONB USING health::jsonb",
        "ALTER TABLE {s}.deliveries ALTER COLUMN state TYPE JSONB USING state::jsonb",
        "ALTER TABLE {s}.attempts ALTER COLUMN record TYPE JSONB USING record::jsonb",
        "DELETE FROM {s}.nopos_webhooks_migrations WHERE version = 2",
        // Version 1's foreign key from the attempt log, which version 3 drops.
        "ALTER TABLE {s}.attempts ADD CONSTRAINT attempts_delivery_id_fkey \
         FOREIGN KEY (delivery_id) REFERENCES {s}.deliveries (id)",
        "DELETE FROM {s}.nopos_webhooks_migrations WHERE version = 3",
    ] {
        exec(&store, sql).await;
    }
    let upgraded = open_same_schema(&store).await;
    assert_eq!(upgraded.get_endpoint(&hook.id).await.unwrap(), hook);
    assert_eq!(upgraded.get_delivery(&delivery).await.unwrap(), state);
    assert_eq!(upgraded.attempts(&delivery).await.unwrap(), attempts);
    assert_eq!(upgraded.endpoint_health(&hook.id).await.unwrap(), health);
    let kind = sqlx::query(AssertSqlSafe(format!(
        "SELECT data_type FROM information_schema.columns \
         WHERE table_schema = '{}' AND table_name = 'deliveries' AND column_name = 'state'",
        store.schema()
    )))
    .fetch_one(upgraded.pool())
    .await
    .unwrap();
    assert_eq!(kind.get::<String, _>(0), "text");
    assert_eq!(
        exec(
            &upgraded,
            "SELECT 1 FROM pg_constraint WHERE conname = 'attempts_delivery_id_fkey' \
             AND connamespace = '{s}'::regnamespace"
        )
        .await,
        0,
        "version 3 drops the attempt log's foreign key"
    );
    upgraded.pool().close().await;
    close(store).await;
}

/// The queue holds exactly the deliveries a dispatcher still has to act on while they wait; a
/// claim takes its deliveries out and lists them in one lease row, which each outcome counts
/// down: the last one recorded deletes it, and a retry goes back in the queue at its due time.
#[tokio::test]
async fn the_queue_holds_what_is_left_to_do() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    for _ in 0..3 {
        store
            .emit(&event(&EventType::PRODUCT_CREATED, now), now)
            .await
            .unwrap();
    }
    let queued =
        async |store: &PostgresStore| exec(store, "SELECT due_at FROM {s}.delivery_queue").await;
    let remaining = async |store: &PostgresStore| {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT remaining FROM \"{}\".claim_leases",
            store.schema()
        )))
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i32, _>(0))
        .collect::<Vec<_>>()
    };
    assert_eq!(queued(&store).await, 3);
    let lease = Duration::days(1);
    let claims = store.claim(now, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 3);
    assert_eq!(queued(&store).await, 0, "in flight: out of the queue");
    assert_eq!(remaining(&store).await, [3], "one lease row for the claim");
    assert_eq!(store.next_wakeup().await.unwrap(), Some(now + lease));

    let delivered = conformance::status(204, now);
    let failed = conformance::status(503, now);
    let results = store
        .record_attempts(&[(&claims[0], &delivered), (&claims[1], &failed)], now)
        .await
        .unwrap();
    let retry = results[1].as_ref().unwrap().state.next_attempt_at.unwrap();
    assert!(
        retry < now + lease,
        "the retry is due before the lease runs out"
    );
    assert_eq!(queued(&store).await, 1, "the retry is back in the queue");
    assert_eq!(remaining(&store).await, [1]);
    assert_eq!(store.next_wakeup().await.unwrap(), Some(retry));
    store.release(&claims[2], now).await.unwrap();
    assert_eq!(
        remaining(&store).await,
        Vec::<i32>::new(),
        "the last claim released deletes the row"
    );
    assert_eq!(queued(&store).await, 2);
    close(store).await;
}

/// A queue written by version 3 of the schema (due times and lease expiries in columns of
/// `deliveries`) opens under version 5 with every waiting delivery in the queue at the same time,
/// the in-flight one in a lease row at its lease's expiry, and no finished one. Version 3 is
/// recreated by undoing migrations 5 and 4 on a fresh schema.
#[tokio::test]
async fn queue_written_by_version_3_survives_the_upgrade() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let ids = emit_a_second_apart(&store, 3, now).await;
    // The first is delivered, the second in flight, the third waits.
    let lease = Duration::minutes(5);
    let done = store.claim(now, 1, lease).await.unwrap();
    store
        .record_attempt(&done[0], &conformance::status(204, now), now)
        .await
        .unwrap();
    let later = now + Duration::seconds(1);
    let leased = store.claim(later, 1, lease).await.unwrap();
    assert_eq!(leased[0].attempt.delivery_id, ids[1]);

    for sql in [
        "DROP TABLE {s}.claim_leases",
        "DELETE FROM {s}.nopos_webhooks_migrations WHERE version = 5",
        "ALTER TABLE {s}.deliveries ADD COLUMN due_at BIGINT",
        "UPDATE {s}.deliveries AS d SET due_at = q.due_at FROM {s}.delivery_queue AS q \
         WHERE q.delivery_id = d.id AND d.lease_until IS NULL",
        "CREATE INDEX deliveries_due ON {s}.deliveries (due_at, id) WHERE due_at IS NOT NULL",
        "CREATE INDEX deliveries_lease ON {s}.deliveries (lease_until, id) \
         WHERE lease_until IS NOT NULL",
        "ALTER TABLE {s}.deliveries RESET (fillfactor)",
        "DROP TABLE {s}.delivery_queue",
        "DELETE FROM {s}.nopos_webhooks_migrations WHERE version = 4",
    ] {
        exec(&store, sql).await;
    }
    let upgraded = open_same_schema(&store).await;
    assert_eq!(
        exec(&upgraded, "SELECT 1 FROM {s}.delivery_queue").await,
        1,
        "the waiting delivery"
    );
    assert_eq!(
        exec(
            &upgraded,
            &format!(
                "SELECT 1 FROM {{s}}.claim_leases WHERE delivery_ids = ARRAY['{}']",
                ids[1]
            )
        )
        .await,
        1,
        "the in-flight delivery"
    );
    // The waiting one is due when it was; the in-flight one comes back when its lease runs out.
    assert_eq!(
        upgraded.next_wakeup().await.unwrap(),
        Some(now + Duration::seconds(2))
    );
    let third = upgraded
        .claim(now + Duration::seconds(2), 10, lease)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempt.delivery_id, ids[2]);
    assert_eq!(
        upgraded.next_wakeup().await.unwrap(),
        Some(later + lease),
        "the in-flight delivery's lease"
    );
    let expired = later + lease;
    assert!(upgraded.claim(expired, 10, lease).await.unwrap().is_empty());
    let lost = upgraded.get_delivery(&ids[1]).await.unwrap();
    assert_eq!(lost.status, DeliveryStatus::RetryScheduled);
    assert_eq!(upgraded.attempts(&ids[1]).await.unwrap().len(), 1);
    upgraded.pool().close().await;
    close(store).await;
}

/// A dispatcher older than schema version 5, still running beside newer ones while they are
/// rolled out, queues its in-flight deliveries at their lease's expiry instead of in a lease
/// row; a newer claim settles such a delivery when its lease has run out, once.
#[tokio::test]
async fn an_older_dispatchers_lease_in_the_queue_is_settled() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let ids = emit_a_second_apart(&store, 1, now).await;
    let lease = Duration::minutes(5);
    let claims = store.claim(now, 1, lease).await.unwrap();
    assert_eq!(claims.len(), 1);
    // What an older version writes for its claim: the delivery queued at its lease's expiry.
    let queue_at_lease_expiry = async || {
        exec(
            &store,
            &format!(
                "INSERT INTO {{s}}.delivery_queue (delivery_id, due_at) \
                 SELECT id, lease_until FROM {{s}}.deliveries WHERE id = '{}'",
                ids[0]
            ),
        )
        .await
    };
    // What the older version wrote for the same claim. The lease row stays too, as if a claim
    // of this version had listed the delivery before: settled once all the same.
    queue_at_lease_expiry().await;
    assert!(
        store.claim(now, 1, lease).await.unwrap().is_empty(),
        "not yet"
    );
    let expired = now + lease;
    assert!(store.claim(expired, 1, lease).await.unwrap().is_empty());
    let lost = store.get_delivery(&ids[0]).await.unwrap();
    assert_eq!(lost.status, DeliveryStatus::RetryScheduled);
    assert_eq!(store.attempts(&ids[0]).await.unwrap().len(), 1);
    assert_eq!(exec(&store, "SELECT 1 FROM {s}.claim_leases").await, 0);
    // Without the lease row, the queue row alone brings it back.
    let retry = lost.next_attempt_at.unwrap();
    let again = store.claim(retry, 1, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    exec(&store, "DELETE FROM {s}.claim_leases").await;
    queue_at_lease_expiry().await;
    assert!(
        store
            .claim(retry + lease, 1, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.attempts(&ids[0]).await.unwrap().len(), 2);
    assert_eq!(
        store.get_delivery(&ids[0]).await.unwrap().status,
        DeliveryStatus::RetryScheduled
    );
    close(store).await;
}

#[tokio::test]
async fn opening_errors_never_show_the_password() {
    let Some(url) = url() else { return };
    let err = PostgresStore::connect("postgres://user:hunter2@[bad", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl(_)), "{err:?}");
    let err = PostgresStore::connect(
        "postgres://user:hunter2@127.0.0.1:1/nowhere?connect_timeout=2",
        StoreConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let err = PostgresStore::connect_with_schema(&url, "Robert'); DROP", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidSchema(_)), "{err:?}");

    // A store's Debug output has no connection options (trust auth ignores the password here).
    let with_password = url.replacen("://postgres@", "://postgres:hunter2@", 1);
    let schema = fresh_schema();
    let store = PostgresStore::connect_with_schema(&with_password, &schema, config())
        .await
        .unwrap();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains(&schema),
        "{shown}"
    );

    // Opening the same schema again finds it migrated; the migrations are recorded in our own
    // table, out of the way of an application's sqlx migrations.
    let again = open_same_schema(&store).await;
    assert_eq!(
        exec(&again, "SELECT version FROM {s}.nopos_webhooks_migrations").await,
        5,
        "each of the five migrations applied once"
    );
    again.pool().close().await;
    close(store).await;
}

/// A queue row whose delivery is not waiting (left by a writer out of step: a dispatcher older
/// than schema version 5, or a hand edit) is taken out by the first claim that finds it, instead
/// of coming back, due, in every claim.
#[tokio::test]
async fn a_queue_row_out_of_step_is_put_right() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let ids = emit_a_second_apart(&store, 1, now).await;
    let claims = store.claim(now, 1, Duration::minutes(5)).await.unwrap();
    store
        .record_attempt(&claims[0], &conformance::status(204, now), now)
        .await
        .unwrap();
    exec(
        &store,
        &format!(
            "INSERT INTO {{s}}.delivery_queue (delivery_id, due_at) VALUES ('{}', 0)",
            ids[0]
        ),
    )
    .await;
    assert!(store.next_wakeup().await.unwrap().is_some());
    assert!(
        store
            .claim(now, 10, Duration::minutes(5))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(exec(&store, "SELECT 1 FROM {s}.delivery_queue").await, 0);
    assert_eq!(store.next_wakeup().await.unwrap(), None);
    assert_eq!(
        store.get_delivery(&ids[0]).await.unwrap().status,
        DeliveryStatus::Delivered
    );
    close(store).await;
}

/// Claims take what is due, earliest first; a claim first settles the claims whose lease ran
/// out, all of each one's deliveries at once, as lost attempts.
#[tokio::test]
async fn claims_follow_due_order_and_expired_leases_are_settled_first() {
    let Some(store) = open().await else { return };
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let ids = emit_a_second_apart(&store, 6, now).await;
    // Only what is due, earliest first.
    let later = now + Duration::seconds(3);
    let lease = Duration::seconds(30);
    let claims = store.claim(later, 10, lease).await.unwrap();
    let claimed: Vec<_> = claims
        .iter()
        .map(|c| c.attempt.delivery_id.clone())
        .collect();
    assert_eq!(claimed, ids[..4].to_vec());
    assert_eq!(
        store.next_wakeup().await.unwrap(),
        Some(now + Duration::seconds(4))
    );
    let retrying = async |store: &PostgresStore| {
        store
            .list_deliveries(&DeliveryQuery::default().status(DeliveryStatus::RetryScheduled))
            .await
            .unwrap()
            .len()
    };

    // After the lease runs out, a claim of 1 settles the whole expired claim, then takes the
    // earliest due delivery.
    let expired = later + lease;
    let taken = store.claim(expired, 1, lease).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempt.delivery_id, ids[4]);
    assert_eq!(retrying(&store).await, 4);
    for claim in &claims {
        let attempts = store.attempts(&claim.attempt.delivery_id).await.unwrap();
        assert_eq!(attempts.len(), 1, "the lost attempt is logged");
    }
    // Even a claim of none settles an expired lease.
    let expired_again = expired + lease;
    assert!(
        store
            .claim(expired_again, 0, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(retrying(&store).await, 5);
    assert_eq!(exec(&store, "SELECT 1 FROM {s}.claim_leases").await, 0);
    close(store).await;
}

/// A claim searches for expired leases only when one it knows of may have run out, or a second
/// after its last search: a lease another process writes is seen by the search a second later
/// at most, or at once through `next_wakeup`, where a sleeping dispatcher looks first.
#[tokio::test]
async fn a_lease_written_elsewhere_is_settled_once_seen() {
    let Some(store) = open().await else { return };
    let other = open_same_schema(&store).await;
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let ids = emit_a_second_apart(&store, 2, now).await;
    let later = now + Duration::seconds(1);
    let lease = Duration::milliseconds(200);
    let lost_attempts = async |id| store.attempts(id).await.unwrap().len();

    // This store searches (there is nothing yet), then the other claims with a short lease.
    assert!(store.claim(later, 0, lease).await.unwrap().is_empty());
    let theirs = other.claim(later, 1, lease).await.unwrap();
    assert_eq!(theirs[0].attempt.delivery_id, ids[0]);
    // Their lease has run out, but this store searched less than a second ago and has not seen
    // it: the claim takes the next due delivery only.
    let expired = later + Duration::milliseconds(500);
    let ours = store.claim(expired, 1, Duration::minutes(5)).await.unwrap();
    assert_eq!(ours[0].attempt.delivery_id, ids[1]);
    assert_eq!(lost_attempts(&ids[0]).await, 0);
    // Looking for the next wake-up reads the lease's expiry: the next claim settles it.
    assert_eq!(
        store.next_wakeup().await.unwrap(),
        Some(later + lease),
        "their lease's expiry"
    );
    assert!(store.claim(expired, 0, lease).await.unwrap().is_empty());
    assert_eq!(lost_attempts(&ids[0]).await, 1);
    assert_eq!(
        store.get_delivery(&ids[0]).await.unwrap().status,
        DeliveryStatus::RetryScheduled
    );

    // Without a wake-up, a lease written elsewhere is found by the search a second after the
    // last one. This store records its attempt and searches when the retry is due, then the
    // other store claims the retry with a short lease again.
    store
        .record_attempt(&ours[0], &conformance::status(204, expired), expired)
        .await
        .unwrap();
    let retry_at = store
        .get_delivery(&ids[0])
        .await
        .unwrap()
        .next_attempt_at
        .unwrap();
    assert!(store.claim(retry_at, 0, lease).await.unwrap().is_empty());
    let theirs = other.claim(retry_at, 1, lease).await.unwrap();
    assert_eq!(theirs[0].attempt.delivery_id, ids[0]);
    let expired = retry_at + Duration::milliseconds(500);
    assert!(store.claim(expired, 0, lease).await.unwrap().is_empty());
    assert_eq!(lost_attempts(&ids[0]).await, 1);
    let a_second_on = retry_at + Duration::seconds(1);
    assert!(store.claim(a_second_on, 0, lease).await.unwrap().is_empty());
    assert_eq!(lost_attempts(&ids[0]).await, 2);
    assert_eq!(exec(&store, "SELECT 1 FROM {s}.claim_leases").await, 0);
    other.pool().close().await;
    close(store).await;
}

#[tokio::test]
async fn custom_event_types_and_byte_exact_bodies_round_trip() {
    let Some(url) = url() else { return };
    let custom = EventType::from_static("acme.gift_card_issued");
    let config =
        config().event_types(nopos_webhooks::store::EventTypes::default().with(custom.clone()));
    let store = PostgresStore::connect_with_schema(&url, &fresh_schema(), config)
        .await
        .unwrap();
    let now = t0();
    store
        .create_endpoint(&endpoint(&["acme.*"], now))
        .await
        .unwrap();
    let body =
        bytes::Bytes::from_static(b"{ \"id\" : \"evt_x\",\n \"odd\": \"\\u00e9 \xc3\xa9\" }");
    let issued = SerializedEvent::new(EventId::generate(now), custom, body);
    store.emit(&issued, now).await.unwrap();
    assert_eq!(store.get_event(issued.id()).await.unwrap().event, issued);
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claim.event, issued);
    close(store).await;
}

/// See `conformance::outcomes_apply_to_the_row_as_it_is_now`.
#[tokio::test]
async fn outcomes_apply_to_the_row_as_it_is_now() {
    let Some(store) = open().await else { return };
    conformance::outcomes_apply_to_the_row_as_it_is_now(&store, || async {
        exec(
            &store,
            "UPDATE {s}.deliveries SET state = jsonb_set(state::jsonb, '{replays}', '3')::text",
        )
        .await;
    })
    .await;
    close(store).await;
}
