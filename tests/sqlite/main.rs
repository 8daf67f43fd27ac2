//! The SQLite store: the conformance suite on a fresh database file per case, plus what only a
//! durable, SQL-backed store can show (outbox, reopen, batched fan-out, corrupt rows, several
//! stores on one file) and the SQLite deduplicator.
#![cfg(feature = "sqlite")]

#[path = "../conformance/mod.rs"]
mod conformance;

mod batch;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use conformance::{config, endpoint, event, status, t0};
use nopos_webhooks::store::codec::{endpoint_to_json, to_json, to_micros};
use nopos_webhooks::store::sqlite::{SqliteDeduplicator, SqliteStore};
use nopos_webhooks::store::{DeliveryQuery, Store, StoreError};
use nopos_webhooks::{
    DedupOutcome, Deduplicator, DeliveryStatus, EndpointHealth, EventId, EventType, SerializedEvent,
};
use sqlx::Row;
use time::Duration;

/// A fresh store in its own temporary directory; [`close`] removes the directory.
async fn open() -> Option<SqliteStore> {
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    Some(
        SqliteStore::open(dir.join("webhooks.db"), config())
            .await
            .expect("open store"),
    )
}

async fn close(store: SqliteStore) {
    let dir = store.path().parent().map(PathBuf::from);
    store.close().await;
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

conformance_suite!(open(), close);

async fn count(store: &SqliteStore, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn create_sales_table(store: &SqliteStore) {
    sqlx::query("CREATE TABLE sales (id TEXT PRIMARY KEY, amount TEXT NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn outbox_commits_the_sale_and_its_event_together() {
    let store = open().await.unwrap();
    create_sales_table(&store).await;
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);

    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO sales (id, amount) VALUES ('txn_1', '125.50')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let receipt = store.emit_in(&mut tx, &sale, now).await.unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(receipt.deliveries.len(), 1);
    // Emitting the same event again in the same transaction enqueues nothing.
    let again = store.emit_in(&mut tx, &sale, now).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.deliveries, receipt.deliveries);

    // Not committed yet: other connections see neither the event nor its delivery.
    assert!(matches!(
        store.get_event(sale.id()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_delivery(&receipt.deliveries[0]).await,
        Err(StoreError::NotFound { .. })
    ));

    tx.commit().await.unwrap();
    store.notify_work();
    assert_eq!(store.get_event(sale.id()).await.unwrap().event, sale);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM sales").await, 1);
    let claims = store.claim(now, 10, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].event, sale);
    close(store).await;
}

#[tokio::test]
async fn outbox_rollback_leaves_no_event() {
    let store = open().await.unwrap();
    create_sales_table(&store).await;
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);

    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO sales (id, amount) VALUES ('txn_2', '9.99')")
        .execute(&mut *tx)
        .await
        .unwrap();
    store.emit_in(&mut tx, &sale, now).await.unwrap();
    tx.rollback().await.unwrap();

    assert_eq!(count(&store, "SELECT COUNT(*) FROM sales").await, 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM nopos_events").await, 0);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM nopos_deliveries").await,
        0
    );
    assert!(
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    // The event was never stored, so emitting it later is not a duplicate.
    assert!(!store.emit(&sale, now).await.unwrap().duplicate);
    close(store).await;
}

#[tokio::test]
async fn a_failed_emit_in_leaves_the_callers_transaction_usable() {
    let store = open().await.unwrap();
    create_sales_table(&store).await;
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let unknown = SerializedEvent::new(
        EventId::generate(now),
        EventType::from_static("acme.unregistered"),
        bytes::Bytes::from_static(b"{}"),
    );
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);

    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO sales (id, amount) VALUES ('txn_3', '1.00')")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(matches!(
        store.emit_in(&mut tx, &unknown, now).await,
        Err(StoreError::UnknownEventType(_))
    ));

    // A failure after the event row was written (a corrupt endpoint) rolls back to the
    // savepoint: the event row goes, the sale stays.
    let record: String = sqlx::query("SELECT record FROM nopos_endpoints")
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    sqlx::query("UPDATE nopos_endpoints SET record = 'not json'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(matches!(
        store.emit_in(&mut tx, &sale, now).await,
        Err(StoreError::Corrupt { .. })
    ));
    sqlx::query("UPDATE nopos_endpoints SET record = ?")
        .bind(record)
        .execute(&mut *tx)
        .await
        .unwrap();
    let receipt = store.emit_in(&mut tx, &sale, now).await.unwrap();
    assert!(
        !receipt.duplicate,
        "the failed emit left its event row behind"
    );
    assert_eq!(receipt.deliveries.len(), 1);
    tx.commit().await.unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM sales").await, 1);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM nopos_events").await, 1);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM nopos_deliveries").await,
        1
    );
    close(store).await;
}

#[tokio::test]
async fn everything_survives_closing_and_reopening_the_file() {
    let store = open().await.unwrap();
    let path = store.path().to_path_buf();
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let id = store.emit(&sale, now).await.unwrap().deliveries[0].clone();
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    let recorded = store
        .record_attempt(&claim, &status(500, now), now)
        .await
        .unwrap();
    let health = store.endpoint_health(&ep.id).await.unwrap();
    store.close().await;

    let store = SqliteStore::open(&path, config()).await.unwrap();
    assert_eq!(store.list_endpoints().await.unwrap(), vec![ep.clone()]);
    assert_eq!(store.get_event(sale.id()).await.unwrap().event, sale);
    assert_eq!(store.get_delivery(&id).await.unwrap(), recorded.state);
    let log = store.attempts(&id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(500));
    assert_eq!(store.endpoint_health(&ep.id).await.unwrap(), health);
    assert!(store.endpoint_health(&ep.id).await.unwrap().is_failing());
    // The retry is still scheduled, and is claimed when due.
    let due = recorded.state.next_attempt_at.unwrap();
    assert_eq!(store.next_wakeup().await.unwrap(), Some(due));
    let claim = store
        .claim(due, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claim.attempt.attempt, 2);
    close(store).await;
}

#[tokio::test]
async fn a_dispatcher_that_dies_mid_attempt_loses_nothing() {
    let store = open().await.unwrap();
    let path = store.path().to_path_buf();
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let id = store
        .emit(&event(&EventType::PAYMENT_SUCCEEDED, now), now)
        .await
        .unwrap()
        .deliveries[0]
        .clone();
    let lease = Duration::seconds(30);
    let lost = store.claim(now, 10, lease).await.unwrap().remove(0);
    // The process dies with the attempt in flight: nothing is recorded or released.
    store.close().await;

    let store = SqliteStore::open(&path, config()).await.unwrap();
    assert_eq!(
        store.get_delivery(&id).await.unwrap().status,
        DeliveryStatus::InFlight
    );
    assert_eq!(store.next_wakeup().await.unwrap(), Some(now + lease));
    let after = now + lease + Duration::seconds(1);
    assert!(store.claim(after, 10, lease).await.unwrap().is_empty());
    let state = store.get_delivery(&id).await.unwrap();
    assert_eq!(state.status, DeliveryStatus::RetryScheduled);
    assert_eq!(store.attempts(&id).await.unwrap().len(), 1);
    assert!(matches!(
        store.record_attempt(&lost, &status(200, now), after).await,
        Err(StoreError::LeaseLost(_))
    ));
    let retry = store
        .claim(state.next_attempt_at.unwrap(), 10, lease)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(retry.attempt.attempt, 2);
    close(store).await;
}

#[tokio::test]
async fn fan_out_to_ten_thousand_endpoints_is_batched() {
    const ENDPOINTS: usize = 10_000;
    let store = open().await.unwrap();
    let now = t0();
    // Endpoints go in directly, in one transaction: this test is about `emit`.
    let mut tx = store.pool().begin().await.unwrap();
    for _ in 0..ENDPOINTS {
        let ep = endpoint(&["transaction.*"], now);
        sqlx::query(
            "INSERT INTO nopos_endpoints (id, created_at, record, health) VALUES (?, ?, ?, ?)",
        )
        .bind(ep.id.as_str().to_owned())
        .bind(to_micros(ep.created_at))
        .bind(endpoint_to_json(&ep).unwrap())
        .bind(to_json("health", &EndpointHealth::new()).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let started = Instant::now();
    let receipt = store.emit(&sale, now).await.unwrap();
    let took = started.elapsed();
    assert_eq!(receipt.deliveries.len(), ENDPOINTS);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM nopos_deliveries").await,
        i64::try_from(ENDPOINTS).unwrap()
    );
    let unique: HashSet<_> = receipt.deliveries.iter().collect();
    assert_eq!(unique.len(), ENDPOINTS);
    // One transaction of three multi-row inserts; 10,000 single-row round trips would take
    // several times as long in a debug build.
    eprintln!("fan-out to {ENDPOINTS} endpoints: {took:?}");
    assert!(
        took < std::time::Duration::from_secs(20),
        "emit took {took:?}"
    );
    let claims = store.claim(now, 250, Duration::minutes(1)).await.unwrap();
    assert_eq!(claims.len(), 250);
    close(store).await;
}

/// The query plan of `sql` (bound with two integers), as one line.
async fn plan(store: &SqliteStore, sql: &'static str) -> String {
    let rows = sqlx::query(sql)
        .bind(0_i64)
        .bind(100_i64)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let detail: Vec<String> = rows.iter().map(|row| row.get("detail")).collect();
    detail.join("; ")
}

#[tokio::test]
async fn claims_and_endpoint_changes_search_their_indexes() {
    let store = open().await.unwrap();
    // The same queries as the store's: each must search a (partial) index, never scan the table
    // or sort every due row, so they cost the same at any backlog.
    let due = plan(
        &store,
        "EXPLAIN QUERY PLAN SELECT d.state, d.lease_token, d.lease_until, v.type, v.body \
         FROM nopos_deliveries AS d LEFT JOIN nopos_events AS v ON v.id = d.event_id \
         WHERE d.due_at IS NOT NULL AND d.due_at <= ? ORDER BY d.due_at LIMIT ?",
    )
    .await;
    assert!(
        due.contains("SEARCH d USING INDEX nopos_deliveries_due"),
        "{due}"
    );
    assert!(due.contains("SEARCH v USING INDEX"), "{due}");
    assert!(!due.contains("TEMP B-TREE"), "{due}");
    // Batched writes and reads (multi-row `VALUES` lists) find each row by its key: one index
    // search per row, never a scan.
    for (sql, table) in [
        (
            "EXPLAIN QUERY PLAN UPDATE nopos_deliveries SET status = u.column2, \
             due_at = u.column3, lease_token = u.column4, lease_until = u.column5, \
             state = u.column6, finished = u.column7 \
             FROM (VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?)) AS u \
             WHERE nopos_deliveries.id = u.column1",
            "nopos_deliveries",
        ),
        (
            "EXPLAIN QUERY PLAN SELECT state, lease_token, lease_until FROM nopos_deliveries \
             WHERE id IN (VALUES (?), (?))",
            "nopos_deliveries",
        ),
        (
            "EXPLAIN QUERY PLAN UPDATE nopos_endpoints SET health = u.column2 \
             FROM (VALUES (?, ?), (?, ?)) AS u WHERE nopos_endpoints.id = u.column1",
            "nopos_endpoints",
        ),
    ] {
        let batched = plan(&store, sql).await;
        let key_search = format!("SEARCH {table} USING ");
        let key_index = format!("INDEX sqlite_autoindex_{table}_1 (id=?)");
        assert!(
            batched.contains(&key_search) && batched.contains(&key_index),
            "{batched}"
        );
        assert!(!batched.contains(&format!("SCAN {table}")), "{batched}");
    }
    let expired = plan(
        &store,
        "EXPLAIN QUERY PLAN SELECT state, lease_token, lease_until FROM nopos_deliveries \
         WHERE lease_until IS NOT NULL AND lease_until <= ? AND ? > 0 ORDER BY lease_until",
    )
    .await;
    assert!(
        expired.contains("USING INDEX nopos_deliveries_lease"),
        "{expired}"
    );
    let unfinished = plan(
        &store,
        "EXPLAIN QUERY PLAN SELECT state, lease_token, lease_until FROM nopos_deliveries \
         WHERE endpoint_id = ? AND ? > 0 AND finished = 0",
    )
    .await;
    assert!(
        unfinished.contains("USING INDEX nopos_deliveries_unfinished"),
        "{unfinished}"
    );
    close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_never_share_a_delivery() {
    let first = Arc::new(open().await.unwrap());
    // A second pool on the same file stands for a second dispatcher process.
    let second = Arc::new(SqliteStore::open(first.path(), config()).await.unwrap());
    let now = t0();
    first.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let mut expected = HashSet::new();
    for _ in 0..100 {
        let receipt = second
            .emit(&event(&EventType::INVENTORY_UPDATED, now), now)
            .await
            .unwrap();
        expected.extend(receipt.deliveries);
    }
    let claimers = [
        Arc::clone(&first),
        Arc::clone(&second),
        Arc::clone(&first),
        Arc::clone(&second),
    ];
    let seen = conformance::claim_concurrently(&claimers, now, 5).await;
    drop(claimers);
    assert_eq!(seen, expected);
    Arc::try_unwrap(second).unwrap().close().await;
    close(Arc::try_unwrap(first).unwrap()).await;
}

#[tokio::test]
async fn wait_for_work_wakes_on_emit_and_polls_for_other_processes() {
    let store = Arc::new(open().await.unwrap());
    let other = SqliteStore::open(store.path(), config()).await.unwrap();
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();

    // An emit in this process wakes a waiting dispatcher at once.
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let started = Instant::now();
            store.wait_for_work().await;
            started.elapsed()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    store
        .emit(&event(&EventType::PRODUCT_CREATED, now), now)
        .await
        .unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < std::time::Duration::from_millis(900), "{waited:?}");

    // Without notifications (another process emitting), a waiter still wakes at the next poll.
    store.wait_for_work().await; // takes any wake-up left over from the emit above
    other
        .emit(&event(&EventType::PRODUCT_CREATED, now), now)
        .await
        .unwrap();
    let started = Instant::now();
    store.wait_for_work().await;
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900)
            && waited < std::time::Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .unwrap()
            .len(),
        2
    );
    other.close().await;
    close(Arc::try_unwrap(store).unwrap()).await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let store = open().await.unwrap();
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    let sale = event(&EventType::TRANSACTION_COMPLETED, now);
    let id = store.emit(&sale, now).await.unwrap().deliveries[0].clone();
    let corrupt =
        |result: &Result<_, StoreError>| matches!(result, Err(StoreError::Corrupt { .. }));

    sqlx::query("UPDATE nopos_deliveries SET state = '{\"status\":\"launched\"}'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.get_delivery(&id).await.map(drop)));
    assert!(corrupt(
        &store.claim(now, 10, Duration::minutes(1)).await.map(drop)
    ));
    assert!(corrupt(
        &store
            .list_deliveries(&DeliveryQuery::default())
            .await
            .map(drop)
    ));
    // The failed claim changed nothing.
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM nopos_deliveries WHERE lease_token IS NULL"
        )
        .await,
        1
    );

    // A lease time outside the representable range.
    sqlx::query("UPDATE nopos_deliveries SET state = ?, lease_token = 'x', lease_until = ?")
        .bind(serde_json::to_string(&valid_state(&id, &sale, &ep)).unwrap())
        .bind(i64::MAX)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.get_delivery(&id).await.map(drop)));
    assert!(corrupt(
        &store.claim(now, 10, Duration::minutes(1)).await.map(drop)
    ));

    // An attempt record that does not decode.
    sqlx::query("UPDATE nopos_deliveries SET lease_token = NULL, lease_until = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO nopos_attempts (delivery_id, attempt, record) VALUES (?, 1, '{}')")
        .bind(id.as_str().to_owned())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.attempts(&id).await.map(drop)));

    sqlx::query("UPDATE nopos_endpoints SET record = 'not json'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.get_endpoint(&ep.id).await.map(drop)));
    assert!(corrupt(&store.list_endpoints().await.map(drop)));
    let next = event(&EventType::TRANSACTION_COMPLETED, now);
    assert!(corrupt(&store.emit(&next, now).await.map(drop)));
    // The failed emit wrote nothing, not even the event.
    assert!(matches!(
        store.get_event(next.id()).await,
        Err(StoreError::NotFound { .. })
    ));

    sqlx::query("UPDATE nopos_endpoints SET health = '[1, 2]'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.endpoint_health(&ep.id).await.map(drop)));

    sqlx::query("UPDATE nopos_events SET type = 'Not A Type!'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(corrupt(&store.get_event(sale.id()).await.map(drop)));

    close(store).await;
}

/// A valid delivery state, for repairing a row in the corrupt-data test.
fn valid_state(
    id: &nopos_webhooks::DeliveryId,
    sale: &SerializedEvent,
    ep: &nopos_webhooks::Endpoint,
) -> nopos_webhooks::DeliveryState {
    nopos_webhooks::DeliveryMachine::new(
        t0(),
        id.clone(),
        sale.id().clone(),
        ep.id.clone(),
        nopos_webhooks::RetrySchedule::default(),
    )
    .into_state()
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    let store = open().await.unwrap();
    let path = store.path().to_path_buf();
    sqlx::query(
        "INSERT INTO nopos_webhooks_migrations (version, description, success, checksum, \
         execution_time) VALUES (999, 'from the future', TRUE, X'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    assert!(matches!(
        SqliteStore::open(&path, config()).await,
        Err(StoreError::Backend(_))
    ));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn reopening_an_up_to_date_file_migrates_nothing() {
    let store = open().await.unwrap();
    let again = SqliteStore::open(store.path(), config()).await.unwrap();
    again.close().await;
    close(store).await;
}

mod dedup {
    use super::*;

    #[tokio::test]
    async fn new_duplicate_expired_and_forgotten() {
        let store = open().await.unwrap();
        let seen = SqliteDeduplicator::new(&store, Duration::minutes(10));
        let id: EventId = "evt_1234567890".parse().unwrap();
        let now = t0();
        let at = |secs| now + Duration::seconds(secs);
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
        // Exactly one TTL after the mark, the id is new again (and marked afresh).
        assert_eq!(
            seen.check_and_mark(&id, at(600)).await.unwrap(),
            DedupOutcome::New
        );
        assert_eq!(
            seen.check_and_mark(&id, at(1199)).await.unwrap(),
            DedupOutcome::Duplicate
        );
        // A `now` slightly behind the mark (another process's clock) is still a duplicate.
        assert_eq!(
            seen.check_and_mark(&id, at(590)).await.unwrap(),
            DedupOutcome::Duplicate
        );
        seen.forget(&id).await.unwrap();
        assert_eq!(
            seen.check_and_mark(&id, at(1199)).await.unwrap(),
            DedupOutcome::New
        );
        // Forgetting an id that was never seen is harmless.
        seen.forget(&"evt_0000000000".parse().unwrap())
            .await
            .unwrap();
        close(store).await;
    }

    #[tokio::test]
    async fn expired_ids_are_purged() {
        let store = open().await.unwrap();
        let seen = SqliteDeduplicator::new(&store, Duration::minutes(1));
        let now = t0();
        for n in 0..50 {
            let id = EventId::try_from(format!("evt_{n:010}")).unwrap();
            seen.check_and_mark(&id, now).await.unwrap();
        }
        assert_eq!(seen.purge_expired(now).await.unwrap(), 0);
        assert_eq!(
            seen.purge_expired(now + Duration::minutes(1))
                .await
                .unwrap(),
            50
        );
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM nopos_dedup_seen").await,
            0
        );
        close(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_marks_let_exactly_one_through() {
        let store = open().await.unwrap();
        let seen: Arc<dyn Deduplicator> =
            Arc::new(SqliteDeduplicator::new(&store, Duration::hours(1)));
        let now = t0();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let seen = Arc::clone(&seen);
            tasks.push(tokio::spawn(async move {
                let mut new = 0;
                for n in 0..50 {
                    let id = EventId::try_from(format!("evt_{n:010}")).unwrap();
                    if !seen.check_and_mark(&id, now).await.unwrap().is_duplicate() {
                        new += 1;
                    }
                }
                new
            }));
        }
        let mut new = 0;
        for task in tasks {
            new += task.await.unwrap();
        }
        assert_eq!(new, 50);
        close(store).await;
    }

    #[tokio::test]
    async fn seen_ids_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receiver.db");
        let id: EventId = "evt_1234567890".parse().unwrap();
        let seen = SqliteDeduplicator::open(&path, SqliteDeduplicator::DEFAULT_TTL)
            .await
            .unwrap();
        assert_eq!(
            seen.check_and_mark(&id, t0()).await.unwrap(),
            DedupOutcome::New
        );
        drop(seen);
        let seen = SqliteDeduplicator::open(&path, SqliteDeduplicator::DEFAULT_TTL)
            .await
            .unwrap();
        assert_eq!(
            seen.check_and_mark(&id, t0() + Duration::hours(1))
                .await
                .unwrap(),
            DedupOutcome::Duplicate
        );
    }
}

#[tokio::test]
async fn deliveries_of_paused_endpoints_keep_their_status_column_in_step() {
    // The indexed columns are derived from the state on every write: a paused delivery is not
    // due, and a resumed one is due again.
    let store = open().await.unwrap();
    let now = t0();
    let ep = endpoint(&["*"], now);
    store.create_endpoint(&ep).await.unwrap();
    store
        .emit(&event(&EventType::PRODUCT_UPDATED, now), now)
        .await
        .unwrap();
    store
        .set_endpoint_enabled(&ep.id, Some(nopos_webhooks::DisableReason::Manual), now)
        .await
        .unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM nopos_deliveries WHERE status = 'paused' AND due_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(store.next_wakeup().await.unwrap(), None);
    store.set_endpoint_enabled(&ep.id, None, now).await.unwrap();
    let listed = store
        .list_deliveries(&DeliveryQuery::default().status(DeliveryStatus::Pending))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(store.next_wakeup().await.unwrap(), Some(now));
    close(store).await;
}

#[tokio::test]
async fn the_finished_column_follows_the_state() {
    let store = open().await.unwrap();
    let now = t0();
    let ep = endpoint(&["*"], now)
        .with_retry_schedule(nopos_webhooks::RetrySchedule::new([Duration::ZERO]).unwrap());
    store.create_endpoint(&ep).await.unwrap();
    let id = store
        .emit(&event(&EventType::CUSTOMER_CREATED, now), now)
        .await
        .unwrap()
        .deliveries[0]
        .clone();
    let finished = || async {
        sqlx::query("SELECT finished FROM nopos_deliveries")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get::<i64, _>(0)
    };
    assert_eq!(finished().await, 0);
    let claim = store
        .claim(now, 1, Duration::minutes(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(finished().await, 0);
    store
        .record_attempt(&claim, &status(500, now), now)
        .await
        .unwrap();
    assert_eq!(
        store.get_delivery(&id).await.unwrap().status,
        DeliveryStatus::Failed
    );
    assert_eq!(finished().await, 1);
    store.replay(&id, now).await.unwrap();
    assert_eq!(finished().await, 0);
    store.delete_endpoint(&ep.id, now).await.unwrap();
    assert_eq!(
        store.get_delivery(&id).await.unwrap().status,
        DeliveryStatus::Cancelled
    );
    assert_eq!(finished().await, 1);
    close(store).await;
}

/// See `conformance::outcomes_apply_to_the_row_as_it_is_now`.
#[tokio::test]
async fn outcomes_apply_to_the_row_as_it_is_now() {
    let store = open().await.unwrap();
    conformance::outcomes_apply_to_the_row_as_it_is_now(&store, || async {
        sqlx::query("UPDATE nopos_deliveries SET state = json_set(state, '$.replays', 3)")
            .execute(store.pool())
            .await
            .unwrap();
    })
    .await;
    close(store).await;
}

/// Claims and outcome records never checkpoint inside their own commits (which hold the store's
/// write turn); background checkpoints keep the write-ahead log from growing with the work
/// instead. 1,200 deliveries claimed and recorded one at a time are 2,400 such commits of several
/// pages each: about 44 MB of log without the background checkpoints. With them the log stays
/// at a checkpoint interval's worth plus however far the writers got while a checkpoint ran:
/// about 5 MB on an idle machine, 15.5 MB seen on a loaded one, hence the bound's margin.
#[tokio::test]
async fn the_log_is_recycled_while_claims_and_records_run() {
    let store = open().await.unwrap();
    let now = t0();
    store.create_endpoint(&endpoint(&["*"], now)).await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    for _ in 0..1_200 {
        store
            .emit_in(&mut tx, &event(&EventType::PRODUCT_UPDATED, now), now)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // From an empty log.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    let wal = store.path().with_extension("db-wal");
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    let mut recorded = 0;
    loop {
        let claims = store.claim(now, 1, Duration::minutes(5)).await.unwrap();
        let Some(claim) = claims.first() else { break };
        let outcome = status(204, now);
        let results = store
            .record_attempts(&[(claim, &outcome)], now)
            .await
            .unwrap();
        assert!(results[0].is_ok());
        recorded += 1;
    }
    assert_eq!(recorded, 1_200);
    let size = std::fs::metadata(&wal).unwrap().len();
    eprintln!("write-ahead log after the run: {size} bytes");
    assert!(size < 30_000_000, "the log grew to {size} bytes");
    close(store).await;
}
