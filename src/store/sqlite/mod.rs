//! The SQLite store: the embedded default, one database file, durable and shareable between
//! processes on one machine.
//!
//! This module owns the SQLite schema (embedded, versioned migrations), the mapping of the
//! storage contract onto SQL transactions, the transactional outbox ([`SqliteStore::emit_in`])
//! and the receiver's [`SqliteDeduplicator`]. It decides nothing about deliveries: fan-out,
//! due times, retries, health and pausing come from the shared helpers in [`crate::store`],
//! exactly as in the in-memory store. It never panics on stored data: a row it cannot decode is
//! a [`StoreError::Corrupt`].
//!
//! # Durability and concurrency
//! - The file runs in WAL mode with `synchronous = FULL`: when `emit` (or the transaction that
//!   ran [`SqliteStore::emit_in`]) returns, the event and its deliveries are on disk. Claims,
//!   outcome records and releases go through a second small pool with `synchronous = NORMAL`
//!   (no flush per commit): a power loss can undo the last few, which only means an attempt is
//!   made again, while a flush per outcome would cap delivery at a few hundred per second.
//! - Every method is one transaction; writes start with `BEGIN IMMEDIATE`, taking SQLite's single
//!   write lock up front, so two claimers (in one process or several on the same file) never
//!   get the same delivery, and a transaction never fails half-way for lack of the lock.
//! - Claiming reads the earliest due rows through a partial index, so a claim costs the same
//!   with a thousand or a hundred thousand deliveries waiting.
//! - Claims, records and releases never copy the write-ahead log into the database file inside
//!   their own commits: every few thousand pages of log they start a checkpoint in the
//!   background, which copies the log while they go on, then copies what they appended meanwhile
//!   with this process's writers held back for that short moment, so the log is recycled
//!   instead of growing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nopos_webhooks::store::{Store, StoreConfig, sqlite::SqliteStore};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("webhooks.db");
//! let store = SqliteStore::open(&path, StoreConfig::default()).await?;
//! assert!(store.list_endpoints().await?.is_empty());
//! store.close().await;
//! # Ok(()) }
//! ```

mod batch;
mod dedup;
mod schema;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Connection, QueryBuilder, Row};
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

pub use dedup::SqliteDeduplicator;

use batch::{AttemptWrites, Conflict, DeliveryWrites, Script};

use super::codec::{
    backend, claimed_state, endpoint_from_json, endpoint_to_json, event_created_at, from_json,
    from_micros, to_json, to_micros,
};
use super::{
    Claim, DeliveryQuery, EmitReceipt, EndpointChange, LeaseToken, Recorded, Store, StoreConfig,
    StoreError, StoredEvent, apply_endpoint_change, plan_fan_out, reclaim, release_state,
    replay_state, settle, start_attempt,
};
use crate::delivery::SerializedEvent;
use crate::{
    AttemptOutcome, AttemptRecord, DeliveryId, DeliveryState, DeliveryStatus, DisableReason,
    Endpoint, EndpointHealth, EndpointId, EventId, EventType, Secret,
};

/// How often [`Store::wait_for_work`] resolves without a notification, so that work emitted by
/// another process on the same file is picked up within about this long.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The most bound parameters SQLite accepts in one statement (`SQLITE_MAX_VARIABLE_NUMBER` of
/// the bundled library); fan-out inserts are chunked to stay under it.
const MAX_BINDS: usize = 32_766;

/// WAL pages written by claims, outcome records and releases between two background
/// checkpoints: as often as `schema::WAL_AUTOCHECKPOINT_PAGES` has the other connections
/// checkpoint. SQLite does not tell how many pages a commit wrote, so they are estimated: about
/// 16 per commit plus one per two rows (`strace` of a claim-and-record loop: 46 page writes per
/// claim and record of 16 deliveries, 90 of 64).
const LAZY_PAGES_PER_CHECKPOINT: u64 = 4_000;

/// Columns bound per delivery row in a fan-out insert.
const DELIVERY_INSERT_COLUMNS: usize = 8;

/// A [`Store`] in one SQLite database file.
///
/// Open it with [`SqliteStore::open`]; it is cheap to share behind an `Arc` between a dispatcher
/// and a management API. Several processes may open the same file (each claim takes the write
/// lock), but only on one machine: SQLite's locks do not work over network file systems. For
/// many dispatcher machines use the PostgreSQL store.
///
/// It needs a tokio runtime with the time driver enabled (for the polling fallback of
/// [`Store::wait_for_work`]).
pub struct SqliteStore {
    config: StoreConfig,
    pool: SqlitePool,
    /// Claims, records and releases: see `schema::open_lazy_pool`.
    lazy_pool: SqlitePool,
    path: PathBuf,
    notify: Notify,
    /// Held by each write transaction of this store for its whole length: this process's turn
    /// at SQLite's one write lock. Writers queue here, in order, instead of in SQLite: a
    /// `BEGIN IMMEDIATE` that finds the lock taken waits in SQLite's busy handler, which sleeps
    /// 1, 2, 5, 10 … ms between tries, so a claim colliding with an outcome record would stall
    /// the dispatcher for milliseconds although the lock is free again within microseconds.
    /// Writers in other processes on the same file still meet the busy handler.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    /// WAL pages written on `lazy_pool` (estimated) since the last background checkpoint.
    lazy_pages: AtomicU64,
    /// Set while a background checkpoint runs, so that they never pile up.
    checkpointing: Arc<AtomicBool>,
}

/// A turn at the write lock (see `SqliteStore::write_turn`).
type WriteTurn<'a> = tokio::sync::MutexGuard<'a, ()>;

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it if missing, and brings its schema up to
    /// date with the migrations embedded in the crate.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or created, or its schema was
    /// written by a newer, incompatible version of this crate.
    pub async fn open(
        path: impl AsRef<Path>,
        config: StoreConfig,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let pool = schema::open_pool(&path).await?;
        let lazy_pool = schema::open_lazy_pool(&path).await?;
        Ok(SqliteStore {
            config,
            pool,
            lazy_pool,
            path,
            notify: Notify::new(),
            write_turn: Arc::new(tokio::sync::Mutex::new(())),
            lazy_pages: AtomicU64::new(0),
            checkpointing: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The connection pool, for the application's own queries on the same file: begin the
    /// transaction that [`emit_in`](SqliteStore::emit_in) joins from it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection, waiting for running queries; the store answers
    /// [`StoreError::Backend`] afterwards.
    pub async fn close(self) {
        self.lazy_pool.close().await;
        self.pool.close().await;
    }

    /// Tells this process's dispatchers that new work may be due: call it after committing a
    /// transaction in which [`emit_in`](SqliteStore::emit_in) enqueued deliveries. (Without it
    /// they find the work at their next poll, within [`POLL_INTERVAL`].)
    pub fn notify_work(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// The transactional outbox: runs [`Store::emit`] inside the caller's own transaction, so
    /// that a sale and its webhook event commit, or roll back, together.
    ///
    /// `conn` is any connection to this store's database file, usually `&mut *tx` for a
    /// transaction begun on [`pool`](SqliteStore::pool). The event and its deliveries become
    /// visible, durable and deliverable when the caller commits; a rollback leaves no trace of
    /// them. The emit runs in a savepoint, so when it fails (an unknown event type, say) nothing
    /// of it is written and the caller's transaction can still commit or roll back as it
    /// chooses. Begin the transaction with `BEGIN IMMEDIATE`
    /// (`pool.begin_with("BEGIN IMMEDIATE")`) so it takes the write lock up front instead of
    /// failing with "database is locked" when it first writes after reading.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use nopos_webhooks::store::{StoreConfig, sqlite::SqliteStore};
    /// use nopos_webhooks::{Envelope, Event, EventId, EventType, SerializedEvent};
    /// use time::OffsetDateTime;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let store = SqliteStore::open(dir.path().join("pos.db"), StoreConfig::default()).await?;
    /// sqlx::query("CREATE TABLE sales (id TEXT PRIMARY KEY, amount TEXT)")
    ///     .execute(store.pool())
    ///     .await?;
    ///
    /// let now = OffsetDateTime::now_utc();
    /// let sale = Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap();
    /// let event = SerializedEvent::from_envelope(&Envelope::new(EventId::generate(now), now, sale))?;
    ///
    /// let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    /// sqlx::query("INSERT INTO sales (id, amount) VALUES ('txn_9876543210', '125.50')")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.emit_in(&mut tx, &event, now).await?;
    /// tx.commit().await?; // the sale and its webhook, together
    /// store.notify_work();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Store::emit`]. The caller's transaction is untouched by a failed emit.
    pub async fn emit_in(
        &self,
        conn: &mut SqliteConnection,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        self.config.check_event(event)?;
        // A savepoint inside the caller's transaction (or a transaction of its own when the
        // connection has none), so a failure part-way leaves nothing behind.
        let mut tx = conn.begin().await.map_err(backend)?;
        let receipt = emit_rows(&self.config, &mut tx, event, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(receipt)
    }

    /// Commits a transaction of the lazily synced pool that wrote `rows` delivery rows, and
    /// starts a checkpoint in the background every [`LAZY_PAGES_PER_CHECKPOINT`] pages or so (see
    /// `schema::open_lazy_pool`).
    async fn commit_lazy(
        &self,
        tx: sqlx::Transaction<'static, Sqlite>,
        rows: usize,
    ) -> Result<(), StoreError> {
        tx.commit().await.map_err(backend)?;
        let pages = u64::try_from(rows / 2).map_or(u64::MAX, |rows| rows.saturating_add(16));
        let written = self
            .lazy_pages
            .fetch_add(pages, Ordering::Relaxed)
            .saturating_add(pages);
        if written >= LAZY_PAGES_PER_CHECKPOINT && !self.checkpointing.swap(true, Ordering::AcqRel)
        {
            self.lazy_pages.store(0, Ordering::Relaxed);
            let pool = self.pool.clone();
            let write_turn = Arc::clone(&self.write_turn);
            let checkpointing = Arc::clone(&self.checkpointing);
            tokio::spawn(async move {
                let checkpoint = || sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool);
                // PASSIVE copies what it can without waiting for readers or writers, so claims
                // and records go on meanwhile. A failure (the store closing, say) leaves the log
                // to the next checkpoint.
                let _ = checkpoint().await;
                // The log starts over only once every frame in it is copied, and writers
                // appended frames meanwhile; copying those few with this process's writers held
                // back lets the next transaction restart the log instead of growing it.
                let turn = write_turn.lock().await;
                let _ = checkpoint().await;
                drop(turn);
                checkpointing.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    /// Begins a write transaction holding SQLite's write lock from the start, after this
    /// process's other writers. Keep the turn until the transaction ends.
    async fn write(
        &self,
    ) -> Result<(WriteTurn<'_>, sqlx::Transaction<'static, Sqlite>), StoreError> {
        self.begin_write(&self.pool).await
    }

    /// A write transaction on the lazily synced pool (see `schema::open_lazy_pool`): claims,
    /// outcome records and releases only.
    async fn write_lazy(
        &self,
    ) -> Result<(WriteTurn<'_>, sqlx::Transaction<'static, Sqlite>), StoreError> {
        self.begin_write(&self.lazy_pool).await
    }

    async fn begin_write(
        &self,
        pool: &SqlitePool,
    ) -> Result<(WriteTurn<'_>, sqlx::Transaction<'static, Sqlite>), StoreError> {
        let turn = self.write_turn.lock().await;
        Ok((turn, begin_immediate(pool).await?))
    }

    /// Replaces an endpoint by `edit(current)` in one transaction, pausing, resuming or keeping
    /// its deliveries as its status changes. Returns the endpoint as written.
    async fn modify_endpoint(
        &self,
        id: &EndpointId,
        now: OffsetDateTime,
        edit: impl FnOnce(Endpoint) -> Endpoint + Send,
    ) -> Result<Endpoint, StoreError> {
        let (_turn, mut tx) = self.write().await?;
        let (before, health) = load_endpoint(&mut tx, id)
            .await?
            .ok_or_else(|| not_found("endpoint", id))?;
        let after = edit(before.clone());
        self.config.check_endpoint(&after)?;
        let change = EndpointChange::between(&before, &after);
        let mut health = health;
        if change == Some(EndpointChange::Enabled) {
            health.reset();
        }
        write_endpoint(&mut tx, &after, &health).await?;
        if let Some(change) = change {
            change_deliveries(&self.config, &mut tx, &after, change, now).await?;
        }
        tx.commit().await.map_err(backend)?;
        if change == Some(EndpointChange::Enabled) {
            self.notify_work();
        }
        Ok(after)
    }
}

impl Store for SqliteStore {
    fn config(&self) -> &StoreConfig {
        &self.config
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        let record = endpoint_to_json(endpoint)?;
        let health = to_json("endpoint health", &EndpointHealth::new())?;
        let inserted = sqlx::query(
            "INSERT INTO nopos_endpoints (id, created_at, record, health) VALUES (?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(endpoint.id.as_str())
        .bind(to_micros(endpoint.created_at))
        .bind(record)
        .bind(health)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Conflict {
                kind: "endpoint",
                id: endpoint.id.to_string(),
            });
        }
        Ok(())
    }

    async fn get_endpoint(&self, id: &EndpointId) -> Result<Endpoint, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let (endpoint, _) = load_endpoint(&mut conn, id)
            .await?
            .ok_or_else(|| not_found("endpoint", id))?;
        Ok(endpoint)
    }

    async fn list_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows = sqlx::query("SELECT record FROM nopos_endpoints ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut endpoints = rows
            .iter()
            .map(|row| endpoint_from_json(&column::<String>(row, "record")?))
            .collect::<Result<Vec<_>, _>>()?;
        // The column keeps microseconds; the record keeps the exact time.
        endpoints.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(endpoints)
    }

    async fn update_endpoint(
        &self,
        endpoint: &Endpoint,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        self.modify_endpoint(&endpoint.id, now, |_| endpoint.clone())
            .await
            .map(drop)
    }

    async fn delete_endpoint(
        &self,
        id: &EndpointId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.write().await?;
        let (endpoint, _) = load_endpoint(&mut tx, id)
            .await?
            .ok_or_else(|| not_found("endpoint", id))?;
        change_deliveries(
            &self.config,
            &mut tx,
            &endpoint,
            EndpointChange::Deleted,
            now,
        )
        .await?;
        sqlx::query("DELETE FROM nopos_endpoints WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    /// As the trait's default, but reading and writing the endpoint in one transaction, so a
    /// concurrent update is never lost.
    async fn rotate_secret(
        &self,
        id: &EndpointId,
        new: Secret,
        grace: Duration,
        now: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        self.modify_endpoint(id, now, |mut endpoint| {
            endpoint.secrets.rotate(new, now, grace);
            endpoint
        })
        .await
    }

    /// As the trait's default, in one transaction.
    async fn set_endpoint_enabled(
        &self,
        id: &EndpointId,
        disable: Option<DisableReason>,
        now: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        self.modify_endpoint(id, now, |mut endpoint| {
            match disable {
                Some(reason) => endpoint.disable(now, reason),
                None => endpoint.enable(),
            }
            endpoint
        })
        .await
    }

    async fn endpoint_health(&self, id: &EndpointId) -> Result<EndpointHealth, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let (_, health) = load_endpoint(&mut conn, id)
            .await?
            .ok_or_else(|| not_found("endpoint", id))?;
        Ok(health)
    }

    async fn emit(
        &self,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        self.config.check_event(event)?;
        let (_turn, mut tx) = self.write().await?;
        let receipt = self.emit_in(&mut tx, event, now).await?;
        tx.commit().await.map_err(backend)?;
        if !receipt.duplicate {
            self.notify_work();
        }
        Ok(receipt)
    }

    async fn get_event(&self, id: &EventId) -> Result<StoredEvent, StoreError> {
        let row = sqlx::query("SELECT type, body, stored_at FROM nopos_events WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("event", id))?;
        decode_event(id.clone(), &row)
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let (_turn, mut tx) = self.write_lazy().await?;
        let mut endpoints = EndpointCache::default();

        // Settle lost attempts first, so that they count and are claimed again when due.
        let expired = sqlx::query(
            "SELECT state, lease_token, lease_until FROM nopos_deliveries \
             WHERE lease_until IS NOT NULL AND lease_until <= ? ORDER BY lease_until",
        )
        .bind(to_micros(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut writes = DeliveryWrites::default();
        let mut log = AttemptWrites::default();
        let expired = expired
            .iter()
            .map(DeliveryRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        endpoints
            .load(&mut tx, expired.iter().map(|row| &row.state.endpoint_id))
            .await?;
        for row in expired {
            // Deleting an endpoint cancels its deliveries, so this only skips hand-edited rows.
            let Some(endpoint) = endpoints.get(&row.state.endpoint_id) else {
                continue;
            };
            let before = row.state.status;
            let (state, record) = reclaim(&self.config, &endpoint, row.state, now);
            if let Some(record) = &record {
                log.push(&state.id, record)?;
            }
            writes.push(before, &state, None)?;
        }
        // Written before the due rows are read: a reclaimed delivery may be due again now.
        write_settled(&mut tx, &mut log, &mut writes, &[]).await?;

        // `ORDER BY due_at` alone (no tie-breaker) lets SQLite walk the partial index and stop
        // after `limit` rows instead of sorting every due row. The event comes in the same
        // statement: a claim is a constant number of statements, whatever its size.
        let due = sqlx::query(
            "SELECT d.state, d.lease_token, d.lease_until, v.type, v.body \
             FROM nopos_deliveries AS d LEFT JOIN nopos_events AS v ON v.id = d.event_id \
             WHERE d.due_at IS NOT NULL AND d.due_at <= ? ORDER BY d.due_at LIMIT ?",
        )
        .bind(to_micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        // Deliveries of one event to several endpoints share its body.
        let mut events: HashMap<EventId, SerializedEvent> = HashMap::new();
        let mut claims = Vec::with_capacity(due.len());
        let lease_until = now.saturating_add(lease);
        let deliveries = due
            .iter()
            .map(DeliveryRow::decode)
            .collect::<Result<Vec<_>, _>>()?;
        endpoints
            .load(&mut tx, deliveries.iter().map(|row| &row.state.endpoint_id))
            .await?;
        for (row, delivery) in due.iter().zip(deliveries) {
            let endpoint = endpoints
                .get(&delivery.state.endpoint_id)
                .ok_or_else(|| not_found("endpoint", &delivery.state.endpoint_id))?;
            let before = delivery.state.status;
            let Some((attempt, state)) =
                start_attempt(&self.config, &endpoint, delivery.state, now)
            else {
                continue;
            };
            let event = if let Some(event) = events.get(&state.event_id) {
                event.clone()
            } else {
                let event = decode_joined_event(&state.event_id, row)?;
                events.insert(state.event_id.clone(), event.clone());
                event
            };
            let token = LeaseToken::generate();
            let stored = writes.push(before, &state, Some((&token, lease_until)))?;
            let stored_state = Some(Arc::from(stored));
            claims.push(Claim {
                attempt,
                state,
                endpoint,
                event,
                lease: token,
                lease_until,
                stored_state,
                lease_group: None,
            });
        }
        writes.write(&mut tx).await?;
        self.commit_lazy(tx, claims.len()).await?;
        Ok(claims)
    }

    async fn record_attempt(
        &self,
        claim: &Claim,
        outcome: &AttemptOutcome,
        now: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        let mut results = self.record_attempts(&[(claim, outcome)], now).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(StoreError::LeaseLost(claim.attempt.delivery_id.to_string())))
    }

    async fn record_attempts(
        &self,
        batch: &[(&Claim, &AttemptOutcome)],
        now: OffsetDateTime,
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let (_turn, mut tx) = self.write_lazy().await?;
        // An error drops the transaction, which rolls every item back.
        if let Some(results) = record_as_claimed(&self.config, &mut tx, batch, now).await? {
            self.commit_lazy(tx, batch.len()).await?;
            return Ok(results);
        }
        // Some row changed since its claim: undo what the shortcut wrote, and read every row.
        tx.rollback().await.map_err(backend)?;
        let mut tx = begin_immediate(&self.lazy_pool).await?;
        let results = record_batch(&self.config, &mut tx, batch, now).await?;
        self.commit_lazy(tx, batch.len()).await?;
        Ok(results)
    }

    async fn release(&self, claim: &Claim, now: OffsetDateTime) -> Result<(), StoreError> {
        let id = &claim.attempt.delivery_id;
        let (_turn, mut tx) = self.write_lazy().await?;
        let row = load_delivery(&mut tx, id).await?;
        if row.lease.as_ref().map(|(token, _)| token) != Some(&claim.lease) {
            return Err(StoreError::LeaseLost(id.to_string()));
        }
        let (endpoint, _) = load_endpoint(&mut tx, &row.state.endpoint_id)
            .await?
            .ok_or_else(|| not_found("endpoint", &row.state.endpoint_id))?;
        let before = row.state.status;
        let state = release_state(&self.config, &endpoint, row.state, claim, now)
            .ok_or_else(|| StoreError::LeaseLost(id.to_string()))?;
        DeliveryWrites::one(before, &state, None)?
            .write(&mut tx)
            .await?;
        self.commit_lazy(tx, 1).await?;
        self.notify_work();
        Ok(())
    }

    async fn next_wakeup(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        // Two MIN()s over the partial indexes: each is one index seek.
        let row = sqlx::query(
            "SELECT (SELECT MIN(due_at) FROM nopos_deliveries WHERE due_at IS NOT NULL) AS due, \
                    (SELECT MIN(lease_until) FROM nopos_deliveries WHERE lease_until IS NOT NULL) \
                    AS lease",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let due = column::<Option<i64>>(&row, "due")?;
        let lease = column::<Option<i64>>(&row, "lease")?;
        let earliest = match (due, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        earliest.map(from_micros).transpose()
    }

    async fn get_delivery(&self, id: &DeliveryId) -> Result<DeliveryState, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        Ok(load_delivery(&mut conn, id).await?.state)
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryState>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT state FROM nopos_deliveries WHERE 1 = 1");
        if let Some(id) = &query.endpoint_id {
            sql.push(" AND endpoint_id = ")
                .push_bind(id.as_str().to_owned());
        }
        if let Some(id) = &query.event_id {
            sql.push(" AND event_id = ")
                .push_bind(id.as_str().to_owned());
        }
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::try_from(query.effective_limit()).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter()
            .map(|row| from_json("delivery state", &column::<String>(row, "state")?))
            .collect()
    }

    async fn attempts(&self, id: &DeliveryId) -> Result<Vec<AttemptRecord>, StoreError> {
        // One read transaction: the delivery and its log from the same snapshot.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        load_delivery(&mut tx, id).await?;
        let rows =
            sqlx::query("SELECT record FROM nopos_attempts WHERE delivery_id = ? ORDER BY attempt")
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        rows.iter()
            .map(|row| from_json("attempt record", &column::<String>(row, "record")?))
            .collect()
    }

    async fn replay(
        &self,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> Result<DeliveryState, StoreError> {
        let (_turn, mut tx) = self.write().await?;
        let row = load_delivery(&mut tx, id).await?;
        let (endpoint, _) = load_endpoint(&mut tx, &row.state.endpoint_id)
            .await?
            .ok_or_else(|| not_found("endpoint", &row.state.endpoint_id))?;
        let before = row.state.status;
        let state = replay_state(&self.config, &endpoint, row.state, now)?;
        DeliveryWrites::one(before, &state, None)?
            .write(&mut tx)
            .await?;
        tx.commit().await.map_err(backend)?;
        self.notify_work();
        Ok(state)
    }

    async fn recover(
        &self,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let (_turn, mut tx) = self.write().await?;
        let (endpoint, _) = load_endpoint(&mut tx, endpoint_id)
            .await?
            .ok_or_else(|| not_found("endpoint", endpoint_id))?;
        let rows = sqlx::query(
            "SELECT state, lease_token, lease_until FROM nopos_deliveries \
             WHERE endpoint_id = ? AND created_at >= ? AND status = ?",
        )
        .bind(endpoint_id.as_str())
        // Microseconds truncate: re-check the exact time on the decoded state below.
        .bind(to_micros(since).saturating_sub(1))
        .bind(DeliveryStatus::Failed.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut writes = DeliveryWrites::default();
        let mut count = 0;
        for row in &rows {
            let row = DeliveryRow::decode(row)?;
            if row.state.created_at < since {
                continue;
            }
            let before = row.state.status;
            let state = replay_state(&self.config, &endpoint, row.state, now)?;
            writes.push(before, &state, None)?;
            count += 1;
        }
        writes.write(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        if count > 0 {
            self.notify_work();
        }
        Ok(count)
    }

    async fn wait_for_work(&self) {
        // Notifications cover this process; the timeout covers other processes on the file.
        let _ = tokio::time::timeout(POLL_INTERVAL, self.notify.notified()).await;
    }
}

/// Writes the event and its fan-out. Runs inside a transaction or savepoint of the caller's.
async fn emit_rows(
    config: &StoreConfig,
    conn: &mut SqliteConnection,
    event: &SerializedEvent,
    now: OffsetDateTime,
) -> Result<EmitReceipt, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO nopos_events (id, type, created_at, body, stored_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id().as_str())
    .bind(event.event_type().as_str())
    .bind(event_created_at(event.body()).map(to_micros))
    .bind(event.body().as_ref())
    .bind(to_micros(now))
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected();
    if inserted == 0 {
        // Idempotent emit: the deliveries of the first emit, in the order it made them.
        let rows = sqlx::query("SELECT id FROM nopos_deliveries WHERE event_id = ? ORDER BY rowid")
            .bind(event.id().as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let deliveries = rows
            .iter()
            .map(|row| parse_id::<DeliveryId>("delivery id", column::<String>(row, "id")?))
            .collect::<Result<_, _>>()?;
        return Ok(EmitReceipt {
            event_id: event.id().clone(),
            deliveries,
            duplicate: true,
        });
    }

    let rows = sqlx::query("SELECT record FROM nopos_endpoints ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    let endpoints = rows
        .iter()
        .map(|row| endpoint_from_json(&column::<String>(row, "record")?))
        .collect::<Result<Vec<_>, _>>()?;
    let planned = plan_fan_out(config, &endpoints, event, now);

    // Multi-row inserts, as large as SQLite's parameter limit allows: a fan-out to 10,000
    // endpoints is three statements, not 10,000 round trips.
    for chunk in planned.chunks(MAX_BINDS / DELIVERY_INSERT_COLUMNS) {
        let mut rows = Vec::with_capacity(chunk.len());
        for state in chunk {
            rows.push((state, to_json("delivery state", state)?));
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO nopos_deliveries \
             (id, event_id, endpoint_id, status, finished, due_at, created_at, state) ",
        );
        insert.push_values(rows, |mut values, (state, json)| {
            values
                .push_bind(state.id.as_str().to_owned())
                .push_bind(state.event_id.as_str().to_owned())
                .push_bind(state.endpoint_id.as_str().to_owned())
                .push_bind(state.status.as_str())
                .push_bind(i64::from(state.status.is_final()))
                .push_bind(due_at(state).map(to_micros))
                .push_bind(to_micros(state.created_at))
                .push_bind(json);
        });
        insert.build().execute(&mut *conn).await.map_err(backend)?;
    }
    Ok(EmitReceipt {
        event_id: event.id().clone(),
        deliveries: planned.into_iter().map(|state| state.id).collect(),
        duplicate: false,
    })
}

/// A delivery row: the core's state and, while in flight, the lease.
struct DeliveryRow {
    state: DeliveryState,
    lease: Option<(LeaseToken, OffsetDateTime)>,
}

impl DeliveryRow {
    /// Decodes the `state, lease_token, lease_until` columns.
    fn decode(row: &SqliteRow) -> Result<DeliveryRow, StoreError> {
        DeliveryRow::decode_with(row, |text| from_json("delivery state", text))
    }

    /// As [`DeliveryRow::decode`], with the state's text read by `state`.
    fn decode_with(
        row: &SqliteRow,
        state: impl FnOnce(&str) -> Result<DeliveryState, StoreError>,
    ) -> Result<DeliveryRow, StoreError> {
        let state = state(column::<&str>(row, "state")?)?;
        let token = column::<Option<String>>(row, "lease_token")?;
        let until = column::<Option<i64>>(row, "lease_until")?;
        let lease = match (token, until) {
            (Some(token), Some(until)) => {
                Some((LeaseToken::from_stored(token), from_micros(until)?))
            }
            _ => None,
        };
        Ok(DeliveryRow { state, lease })
    }
}

/// When a delivery is due for claiming: pending and retry-scheduled deliveries only (paused
/// ones keep their time in the state but are not claimable).
fn due_at(state: &DeliveryState) -> Option<OffsetDateTime> {
    matches!(
        state.status,
        DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
    )
    .then(|| state.next_attempt_at.unwrap_or(state.created_at))
}

async fn load_delivery(
    conn: &mut SqliteConnection,
    id: &DeliveryId,
) -> Result<DeliveryRow, StoreError> {
    let row =
        sqlx::query("SELECT state, lease_token, lease_until FROM nopos_deliveries WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("delivery", id))?;
    DeliveryRow::decode(&row)
}

async fn load_endpoint(
    conn: &mut SqliteConnection,
    id: &EndpointId,
) -> Result<Option<(Endpoint, EndpointHealth)>, StoreError> {
    let Some(row) = sqlx::query("SELECT record, health FROM nopos_endpoints WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
    else {
        return Ok(None);
    };
    decode_endpoint(&row).map(Some)
}

/// Decodes the `record, health` columns of an endpoint row.
fn decode_endpoint(row: &SqliteRow) -> Result<(Endpoint, EndpointHealth), StoreError> {
    let endpoint = endpoint_from_json(&column::<String>(row, "record")?)?;
    let health = from_json("endpoint health", &column::<String>(row, "health")?)?;
    Ok((endpoint, health))
}

async fn write_endpoint(
    conn: &mut SqliteConnection,
    endpoint: &Endpoint,
    health: &EndpointHealth,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE nopos_endpoints SET created_at = ?, record = ?, health = ? WHERE id = ?")
        .bind(to_micros(endpoint.created_at))
        .bind(endpoint_to_json(endpoint)?)
        .bind(to_json("endpoint health", health)?)
        .bind(endpoint.id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Applies an endpoint change to each of its unfinished deliveries.
async fn change_deliveries(
    config: &StoreConfig,
    conn: &mut SqliteConnection,
    endpoint: &Endpoint,
    change: EndpointChange,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    // `finished = 0` literally, as in the partial index `nopos_deliveries_unfinished`, so that
    // SQLite uses it: the cost is the endpoint's unfinished deliveries, not its history.
    let rows = sqlx::query(
        "SELECT state, lease_token, lease_until FROM nopos_deliveries \
         WHERE endpoint_id = ? AND finished = 0",
    )
    .bind(endpoint.id.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut writes = DeliveryWrites::default();
    for row in &rows {
        let row = DeliveryRow::decode(row)?;
        let before = row.state.status;
        let state = apply_endpoint_change(config, endpoint, row.state, change, now);
        let lease = row.lease.as_ref().map(|(token, until)| (token, *until));
        writes.push(before, &state, lease)?;
    }
    writes.write(conn).await?;
    Ok(())
}

/// Decodes the `type, body, stored_at` columns of an event row.
fn decode_event(id: EventId, row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let stored_at = from_micros(column::<i64>(row, "stored_at")?)?;
    Ok(StoredEvent {
        event: decode_event_body(id, row)?,
        stored_at,
    })
}

/// Decodes the `type, body` columns of an event row.
fn decode_event_body(id: EventId, row: &SqliteRow) -> Result<SerializedEvent, StoreError> {
    let event_type = parse_id::<EventType>("event type", column::<String>(row, "type")?)?;
    let body = column::<Vec<u8>>(row, "body")?;
    Ok(SerializedEvent::new(id, event_type, body.into()))
}

/// Decodes the event columns of a claim's row: `NULL` when its event row is missing.
fn decode_joined_event(id: &EventId, row: &SqliteRow) -> Result<SerializedEvent, StoreError> {
    if column::<Option<String>>(row, "type")?.is_none() {
        return Err(not_found("event", id));
    }
    decode_event_body(id.clone(), row)
}

/// A write transaction that holds SQLite's write lock from its start (callers hold the
/// store's write turn).
async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)
}

/// Records `batch` without reading its delivery rows, on the assumption that each row is as its
/// claim left it — the usual case: nothing touches a delivery while its attempt is on the wire.
/// The rows' update checks that assumption itself (lease token and state text, see
/// [`DeliveryWrites::push_as_claimed`]), so the results are those of [`record_batch`], which
/// would have found each row's state to be its claim's.
///
/// `None` when the assumption does not hold for some row, or when the shortcut does not apply (a
/// claim twice in the batch, a claim without its stored text, an outcome that fails or disables
/// its endpoint): the caller must then roll back whatever this wrote and use [`record_batch`].
async fn record_as_claimed(
    config: &StoreConfig,
    conn: &mut SqliteConnection,
    batch: &[(&Claim, &AttemptOutcome)],
    now: OffsetDateTime,
) -> Result<Option<Vec<Result<Recorded, StoreError>>>, StoreError> {
    let mut ids = HashSet::with_capacity(batch.len());
    if !batch
        .iter()
        .all(|(claim, _)| ids.insert(claim.attempt.delivery_id.as_str()))
    {
        return Ok(None);
    }
    let mut endpoints = load_endpoints(
        &mut *conn,
        batch.iter().map(|(claim, _)| &claim.state.endpoint_id),
    )
    .await?;
    let mut changed_health: Vec<EndpointId> = Vec::new();
    let mut writes = DeliveryWrites::default();
    let mut log = AttemptWrites::default();
    let mut results = Vec::with_capacity(batch.len());
    for (claim, outcome) in batch {
        let (Some(stored), Some((endpoint, health))) = (
            &claim.stored_state,
            endpoints.get_mut(&claim.state.endpoint_id),
        ) else {
            return Ok(None);
        };
        let state = claim.state.clone();
        let Ok(settlement) = settle(config, endpoint, claim, state, health.clone(), outcome, now)
        else {
            return Ok(None);
        };
        if settlement.disable.is_some() {
            return Ok(None);
        }
        log.push(&claim.attempt.delivery_id, &settlement.record)?;
        writes.push_as_claimed(claim, Arc::clone(stored), &settlement.state)?;
        *health = settlement.health;
        if !changed_health.contains(&endpoint.id) {
            changed_health.push(endpoint.id.clone());
        }
        results.push(Ok(Recorded {
            state: settlement.state,
            endpoint_disabled: None,
        }));
    }
    // One round trip for every write. A row changed since its claim is not rewritten, and its
    // log entry, which would then already be there (the reclaim of an expired lease logs the
    // attempt), is skipped: either way fewer rows change than expected.
    let mut script = Script::default();
    writes.append_to(&mut script)?;
    log.append_to(&mut script, Conflict::Skip)?;
    batch::append_healths(&mut script, &changed_healths(&endpoints, &changed_health))?;
    let expected = script.expected_rows();
    if script.run(&mut *conn).await? != expected {
        return Ok(None);
    }
    Ok(Some(results))
}

/// Records a batch of outcomes inside `conn`'s transaction, in batch order, each exactly as if
/// it were recorded alone ([`settle`] decides what is written), in a constant number of
/// statements: the batch's delivery rows and endpoints are read with one statement each, and the
/// new states, log entries and healths written with one or two each. An outcome that disables
/// its endpoint pauses the endpoint's other deliveries right away; the items after it are then
/// read again, so they see the pause.
async fn record_batch(
    config: &StoreConfig,
    conn: &mut SqliteConnection,
    batch: &[(&Claim, &AttemptOutcome)],
    now: OffsetDateTime,
) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
    let mut results = Vec::with_capacity(batch.len());
    'rounds: while results.len() < batch.len() {
        let rest = &batch[results.len()..];
        let mut deliveries = load_deliveries(&mut *conn, rest).await?;
        // A delivery's endpoint never changes, so the claims name the rows' endpoints.
        let mut endpoints = load_endpoints(
            &mut *conn,
            rest.iter().map(|(claim, _)| &claim.state.endpoint_id),
        )
        .await?;
        let mut changed_health: Vec<EndpointId> = Vec::new();
        let mut writes = DeliveryWrites::default();
        let mut log = AttemptWrites::default();
        for (claim, outcome) in rest {
            let id = &claim.attempt.delivery_id;
            let lost = || StoreError::LeaseLost(id.to_string());
            // Taken out once used: the same claim twice in a batch has lost its lease the
            // second time, as it would have recorded alone.
            let row = match deliveries.remove(id.as_str()) {
                Some(row) => Some(DeliveryRow::decode_with(&row, |text| {
                    claimed_state(text, claim)
                })?),
                None => None,
            };
            let row =
                row.filter(|row| row.lease.as_ref().map(|(token, _)| token) == Some(&claim.lease));
            let Some(row) = row else {
                results.push(Err(lost()));
                continue;
            };
            let Some((endpoint, health)) = endpoints.get_mut(&row.state.endpoint_id) else {
                results.push(Err(lost()));
                continue;
            };
            let before = row.state.status;
            let settlement = match settle(
                config,
                endpoint,
                claim,
                row.state,
                health.clone(),
                outcome,
                now,
            ) {
                Ok(settlement) => settlement,
                // A stale claim: this item only, before anything of it is written.
                Err(err) => {
                    results.push(Err(err));
                    continue;
                }
            };
            log.push(id, &settlement.record)?;
            writes.push(before, &settlement.state, None)?;
            *health = settlement.health;
            if !changed_health.contains(&endpoint.id) {
                changed_health.push(endpoint.id.clone());
            }
            results.push(Ok(Recorded {
                state: settlement.state,
                endpoint_disabled: settlement.disable,
            }));
            if let Some(reason) = settlement.disable {
                endpoint.disable(now, reason);
                let (disabled, health) = (endpoint.clone(), health.clone());
                let healths = changed_healths(&endpoints, &changed_health);
                write_settled(&mut *conn, &mut log, &mut writes, &healths).await?;
                write_endpoint(&mut *conn, &disabled, &health).await?;
                change_deliveries(config, &mut *conn, &disabled, EndpointChange::Disabled, now)
                    .await?;
                continue 'rounds;
            }
        }
        let healths = changed_healths(&endpoints, &changed_health);
        write_settled(&mut *conn, &mut log, &mut writes, &healths).await?;
    }
    Ok(results)
}

/// Writes settled outcomes or reclaims in one round trip: log entries, delivery states and
/// endpoint healths. Empties `log` and `writes`.
async fn write_settled(
    conn: &mut SqliteConnection,
    log: &mut AttemptWrites,
    writes: &mut DeliveryWrites,
    healths: &[(&EndpointId, &EndpointHealth)],
) -> Result<(), StoreError> {
    let mut script = Script::default();
    log.append_to(&mut script, Conflict::Fail)?;
    writes.append_to(&mut script)?;
    batch::append_healths(&mut script, healths)?;
    script.run(conn).await?;
    Ok(())
}

/// The delivery rows of a batch's claims, by id, not decoded yet: each is decoded against its
/// claim (see [`claimed_state`]).
async fn load_deliveries(
    conn: &mut SqliteConnection,
    batch: &[(&Claim, &AttemptOutcome)],
) -> Result<HashMap<String, SqliteRow>, StoreError> {
    let ids: Vec<&str> = batch
        .iter()
        .map(|(claim, _)| claim.attempt.delivery_id.as_str())
        .collect();
    let rows = batch::rows_with_ids(
        conn,
        "id, state, lease_token, lease_until",
        "nopos_deliveries",
        &ids,
    )
    .await?;
    rows.into_iter()
        .map(|row| Ok((column::<String>(&row, "id")?, row)))
        .collect()
}

/// The endpoints with these ids that exist, with their health.
async fn load_endpoints<'a>(
    conn: &mut SqliteConnection,
    ids: impl Iterator<Item = &'a EndpointId>,
) -> Result<HashMap<EndpointId, (Endpoint, EndpointHealth)>, StoreError> {
    let mut ids: Vec<&str> = ids.map(EndpointId::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = batch::rows_with_ids(conn, "record, health", "nopos_endpoints", &ids).await?;
    rows.iter()
        .map(|row| {
            let (endpoint, health) = decode_endpoint(row)?;
            Ok((endpoint.id.clone(), (endpoint, health)))
        })
        .collect()
}

/// The healths of the endpoints in `changed`, to write.
fn changed_healths<'a>(
    endpoints: &'a HashMap<EndpointId, (Endpoint, EndpointHealth)>,
    changed: &'a [EndpointId],
) -> Vec<(&'a EndpointId, &'a EndpointHealth)> {
    changed
        .iter()
        .filter_map(|id| endpoints.get(id).map(|(_, health)| (id, health)))
        .collect()
}

/// Endpoints read during one claim, each read once and shared by its claims.
#[derive(Default)]
struct EndpointCache(HashMap<EndpointId, Arc<Endpoint>>);

impl EndpointCache {
    /// Reads those of `ids` not read yet, in one statement.
    async fn load<'a>(
        &mut self,
        conn: &mut SqliteConnection,
        ids: impl Iterator<Item = &'a EndpointId>,
    ) -> Result<(), StoreError> {
        let missing: Vec<&EndpointId> = ids.filter(|id| !self.0.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (id, (endpoint, _)) in load_endpoints(conn, missing.into_iter()).await? {
            self.0.insert(id, Arc::new(endpoint));
        }
        Ok(())
    }

    /// A loaded endpoint; `None` when it does not exist.
    fn get(&self, id: &EndpointId) -> Option<Arc<Endpoint>> {
        self.0.get(id).cloned()
    }
}

/// Reads a column, treating a value of the wrong type as corrupt data.
fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(|err| StoreError::Corrupt {
        what: "column",
        message: err.to_string(),
    })
}

/// Parses a stored id or name, treating an invalid one as corrupt data.
fn parse_id<T>(what: &'static str, value: String) -> Result<T, StoreError>
where
    T: TryFrom<String>,
    T::Error: fmt::Display,
{
    T::try_from(value).map_err(|err| StoreError::Corrupt {
        what,
        message: err.to_string(),
    })
}

fn not_found(kind: &'static str, id: &impl ToString) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}
