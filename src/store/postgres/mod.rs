//! The PostgreSQL store: one queue shared by many dispatcher processes on many machines.
//!
//! This module owns the PostgreSQL schema (embedded, versioned migrations), the SQL that moves
//! the core's rows in and out, the claim protocol, work notifications and the transactional
//! outbox ([`PostgresStore::emit_in`]). It never decides anything itself: fan-out, due times,
//! retries, health and pausing come from the shared helpers in [`crate::store`].
//!
//! # How it shares the queue
//! - **Emitting** is three statements in a transaction (a savepoint in the caller's, for
//!   [`PostgresStore::emit_in`]): take the status lock (below) and insert the event; read the
//!   endpoints; insert every delivery and queue the work notification. An emit from a POS sale's
//!   request handler waits on each round trip, so none is spent on its own.
//! - **The queue** is a table of its own, `delivery_queue`: one row per delivery waiting for
//!   its next attempt, at its due time. `deliveries` itself is only ever rewritten in columns no
//!   index covers, so PostgreSQL rewrites its rows in place (HOT updates: no new index entries),
//!   and the table leaves room on each page for that (fillfactor 50).
//! - **Claiming** is one short transaction: the head of the queue is selected with
//!   `FOR UPDATE SKIP LOCKED` (the queue rows and their delivery rows); due deliveries are
//!   started ([`start_attempt`]) and written back with a fresh lease token, their queue rows are
//!   deleted, and one row in `claim_leases` lists them with the lease's expiry, all in batched
//!   statements. `SKIP LOCKED` means two claimers never wait for each other and never get the
//!   same delivery. HTTP happens after `claim` returns, outside any transaction.
//! - **Leases.** Each outcome recorded or claim released counts its claim off its lease row; the
//!   last one deletes it. A lease row still there when its lease runs out means a worker is
//!   gone: the next claim first settles that claim's deliveries still in flight as lost attempts
//!   ([`reclaim`]; their retries join the queue) and deletes the row. Claims look for such rows
//!   only when a lease the store has seen may have run out, or a second after they last looked
//!   (`LeaseWatch`): looking in every claim cost a round trip each. One row per claim instead
//!   of a queue row moved per delivery saves each delivery a row version and two index entries
//!   (schema version 5). In-flight deliveries queued at their lease's expiry by an older version
//!   are still settled from the queue.
//! - **Recording** an outcome locks the endpoint row, then the delivery row, checks the lease
//!   token and writes the delivery, the attempt log entry and the endpoint's health together
//!   ([`settle`]). An outcome that disables the endpoint pauses its other deliveries in the same
//!   transaction. A batch of outcomes ([`Store::record_attempts`]) locks all its endpoint rows,
//!   then all its delivery rows, in one statement, and writes all it decided in one more.
//! - **Lock order.** Every method that locks an endpoint row and delivery rows locks the endpoint
//!   first, so they cannot deadlock. Queue rows are written only under their delivery row's
//!   lock; a claim locks the queue row first, but skips what it cannot lock instead of waiting.
//!   A claim settling expired leases locks their lease rows (skipping those another claim
//!   holds), then waits for their delivery rows in id order, before it locks anything else;
//!   recorders hold delivery rows when they count off lease rows, so they skip a lease row
//!   another transaction holds rather than wait. A row left counted too high only lives until
//!   its expiry, when a claim finds none of its deliveries in flight and deletes it.
//!   `emit` holds a per-schema advisory lock in shared mode and endpoint status changes
//!   (disable, enable, delete) take it exclusively: an event is either fanned out before a status
//!   change (which then pauses, resumes or cancels its deliveries) or after it (and sees the new
//!   status), never half-way.
//! - **Wake-ups** use `LISTEN/NOTIFY` on one channel per database, with the schema as payload;
//!   the notification is sent inside the writing transaction, so it fires on commit. A polling
//!   backstop bounds the delay of a lost notification.
//!
//! # Encoding
//! Times are Unix microseconds and documents are JSON text ([`crate::store::codec`], shared with
//! the SQLite store; JSONB until schema version 2). Due times and lease expiries are rounded *up*
//! to the microsecond, so a claim never picks a delivery before it is due.
//! Ids use the `"C"` collation (byte order).
//!
//! Every table lives in the store's schema (`public` or the pool's `search_path` by default, or
//! one named with [`PostgresStore::connect_with_schema`]), and every statement names it, so the
//! store works on connections with any `search_path`, including the caller's own in
//! [`PostgresStore::emit_in`].

mod batch;
mod dedup;
mod error;
mod listen;
mod sql;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr};
use time::{Duration, OffsetDateTime};

pub use dedup::PostgresDeduplicator;
pub use error::ConnectError;

use self::listen::Wakeups;
use self::sql::{PgQuery, Statements, WORK_CHANNEL};
use super::codec::{
    backend, endpoint_from_json, endpoint_to_json, from_json, from_micros, to_json, to_micros,
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

/// How long [`Store::wait_for_work`] waits for a notification before returning anyway, by
/// default: one second.
pub const DEFAULT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The embedded migrations: version, description, SQL. Never edit a released one; add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "documents as text",
        include_str!("migrations/0002_documents_as_text.sql"),
    ),
    (
        3,
        "attempts without foreign key",
        include_str!("migrations/0003_attempts_without_foreign_key.sql"),
    ),
    (
        4,
        "delivery queue",
        include_str!("migrations/0004_delivery_queue.sql"),
    ),
    (
        5,
        "claim leases",
        include_str!("migrations/0005_claim_leases.sql"),
    ),
];

/// The table that records which migrations ran, in the store's schema. Not sqlx's default name,
/// so that an application's own sqlx migrations in the same schema never collide with ours.
const MIGRATIONS_TABLE: &str = "nopos_webhooks_migrations";

/// Every delivery status, for deriving the set of final ones.
const STATUSES: [DeliveryStatus; 7] = [
    DeliveryStatus::Pending,
    DeliveryStatus::InFlight,
    DeliveryStatus::RetryScheduled,
    DeliveryStatus::Paused,
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
    DeliveryStatus::Cancelled,
];

/// A [`Store`] in PostgreSQL.
///
/// Open one per process with [`connect`](PostgresStore::connect) (or
/// [`from_pool`](PostgresStore::from_pool) to share an application's pool); opening runs the
/// embedded migrations. Any number of processes may open the same database and schema: they
/// share one queue, and each delivery is claimed by one of them at a time.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use nopos_webhooks::store::{Store, StoreConfig, postgres::PostgresStore};
///
/// let store = PostgresStore::connect("postgres://app@db.internal/shop", StoreConfig::default()).await?;
/// let endpoints = store.list_endpoints().await?;
/// # let _ = endpoints; Ok(()) }
/// ```
///
/// Its `Debug` output shows the schema and configuration, never the connection options (they may
/// hold a password).
///
/// # TLS
/// With the `postgres-tls` feature, connections use TLS (rustls) as the URL's `sslmode` says,
/// with PostgreSQL's meanings: `disable`; `prefer`, the default, encrypts when the server offers
/// TLS but neither insists nor checks the certificate; `require` insists but does not check;
/// `verify-ca` checks the chain; `verify-full` checks the chain and that the certificate names
/// the host. Across a network use `verify-full`:
/// `postgres://app@db.internal/shop?sslmode=verify-full`. Certificates are checked against the
/// PEM file in `sslrootcert` (a private CA) or, without it, against the Mozilla root certificates
/// built in. A certificate that fails the check fails [`connect`] with
/// [`ConnectError::Connect`], whose source says why. Without the feature connections are plain
/// (`prefer` connects unencrypted) and a URL that requires TLS fails to connect.
///
/// For a server on the same machine, connect through its Unix socket or with `sslmode=disable`:
/// sqlx 0.9.0 leaves Nagle's algorithm on, so over TLS on loopback a message longer than one TLS
/// record (16 KiB, such as a claim of 64 deliveries) waits for the server's delayed ACK. Measured
/// here: a round trip binding 64 texts of 500 bytes took 42.8 ms over TLS and 0.39 ms without, and
/// the dispatch benchmark's PostgreSQL run took 2.1 s instead of 0.46 s. With the loopback MTU
/// set to 1,500 bytes, as on Ethernet, a record spans several full segments and the stall was
/// gone: that round trip took 0.86 ms over TLS (0.33 ms plain), the benchmark's run 0.71–0.80 s
/// (0.49–0.58 s plain).
///
/// [`connect`]: PostgresStore::connect
pub struct PostgresStore {
    pool: PgPool,
    config: StoreConfig,
    schema: String,
    statements: Arc<Statements>,
    status_lock: i64,
    wakeups: Wakeups,
    poll_interval: std::time::Duration,
    /// When claims look for expired leases (a round trip; see [`LeaseWatch`]).
    lease_watch: LeaseWatch,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("config", &self.config)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) with a
    /// pool of default size and opens the store in the connection's current schema (normally
    /// `public`), migrating it.
    ///
    /// # Errors
    /// [`ConnectError`]; its messages never include the URL.
    pub async fn connect(url: &str, config: StoreConfig) -> Result<PostgresStore, ConnectError> {
        PostgresStore::from_pool(pool_for(url).await?, config).await
    }

    /// As [`connect`](PostgresStore::connect), with the store's tables in `schema` (created if
    /// missing): several stores, or a store and an application, can share one database.
    ///
    /// # Errors
    /// [`ConnectError`]; [`ConnectError::InvalidSchema`] unless `schema` is 1–63 lowercase ASCII
    /// letters, digits and underscores, not starting with a digit.
    pub async fn connect_with_schema(
        url: &str,
        schema: &str,
        config: StoreConfig,
    ) -> Result<PostgresStore, ConnectError> {
        check_schema(schema)?;
        PostgresStore::from_pool_with_schema(pool_for(url).await?, schema, config).await
    }

    /// Opens the store on an existing pool, in the schema its connections create tables in
    /// (`current_schema()`, normally `public`), migrating it.
    ///
    /// # Errors
    /// [`ConnectError`]; [`ConnectError::InvalidSchema`] when the current schema's name is not a
    /// plain lowercase identifier (name one with
    /// [`from_pool_with_schema`](PostgresStore::from_pool_with_schema)).
    pub async fn from_pool(
        pool: PgPool,
        config: StoreConfig,
    ) -> Result<PostgresStore, ConnectError> {
        let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(ConnectError::Connect)?;
        let schema = current.unwrap_or_else(|| "public".to_owned());
        PostgresStore::from_pool_with_schema(pool, &schema, config).await
    }

    /// Opens the store on an existing pool with its tables in `schema` (created if missing),
    /// migrating it.
    ///
    /// # Errors
    /// As [`connect_with_schema`](PostgresStore::connect_with_schema).
    pub async fn from_pool_with_schema(
        pool: PgPool,
        schema: &str,
        config: StoreConfig,
    ) -> Result<PostgresStore, ConnectError> {
        check_schema(schema)?;
        let quoted = format!("\"{schema}\"");
        migrate(&pool, &quoted).await?;
        Ok(PostgresStore {
            pool,
            config,
            schema: schema.to_owned(),
            statements: Arc::new(Statements::new(&quoted)),
            status_lock: status_lock_key(schema),
            wakeups: Wakeups::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            lease_watch: LeaseWatch::default(),
        })
    }

    /// Sets how long [`Store::wait_for_work`] waits for a notification before returning anyway
    /// (the backstop for a lost notification).
    ///
    /// # Default
    /// [`DEFAULT_POLL_INTERVAL`], one second.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: std::time::Duration) -> PostgresStore {
        self.poll_interval = interval;
        self
    }

    /// The connection pool (for the application's own queries, and for
    /// [`emit_in`](PostgresStore::emit_in) transactions).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Subscribes to work notifications now, so that [`Store::wait_for_work`] sees every
    /// notification from here on. Optional: the first `wait_for_work` subscribes otherwise.
    /// The subscription holds one connection of its own (not one of the pool's) until the store
    /// is dropped.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the listener cannot connect; `wait_for_work` then polls.
    pub async fn listen(&self) -> Result<(), StoreError> {
        self.wakeups
            .start(&self.pool, &self.schema)
            .await
            .map_err(backend)
    }

    /// [`Store::emit`] inside the caller's transaction: the transactional outbox. Pass the
    /// transaction's connection (`&mut *tx`); the event and its deliveries commit or roll back
    /// with the caller's own writes (a sale and its `transaction.completed` event), and
    /// dispatchers are notified when it commits.
    ///
    /// It runs in a savepoint, so when it fails nothing it wrote remains and the caller's
    /// transaction can go on. On a connection outside a transaction it runs in its own. Until
    /// the caller commits, endpoint status changes (disable, enable, delete) wait for it, so keep
    /// the transaction short.
    ///
    /// ```no_run
    /// # async fn run(store: &nopos_webhooks::store::postgres::PostgresStore,
    /// #     event: &nopos_webhooks::SerializedEvent) -> Result<(), Box<dyn std::error::Error>> {
    /// let now = time::OffsetDateTime::now_utc();
    /// let mut tx = store.pool().begin().await?;
    /// sqlx::query("INSERT INTO sales (id, total) VALUES ($1, $2)")
    ///     .bind("txn_9876543210")
    ///     .bind("125.50")
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.emit_in(&mut tx, event, now).await?;
    /// tx.commit().await?; // both, or neither
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Store::emit`].
    pub async fn emit_in(
        &self,
        conn: &mut PgConnection,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        self.config.check_event(event)?;
        let mut tx = conn.begin().await.map_err(backend)?;
        match self.fan_out(&mut tx, event, now).await {
            Ok(receipt) => {
                tx.commit().await.map_err(backend)?;
                Ok(receipt)
            }
            Err(err) => {
                // Best effort: a failed rollback leaves the savepoint to the caller's rollback.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// Writes the event and its deliveries on `conn`, inside a transaction.
    async fn fan_out(
        &self,
        conn: &mut PgConnection,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        let st = &self.statements;
        let inserted = st
            .insert_event
            .query()
            .bind(event.id().as_str())
            .bind(event.event_type().as_str())
            .bind(&event.body()[..])
            .bind(to_micros(now))
            .bind(self.status_lock)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        if inserted.is_none() {
            let rows = st
                .event_deliveries
                .query()
                .bind(event.id().as_str())
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?;
            let deliveries = rows
                .iter()
                .map(|row| delivery_id(column(row, 0)?))
                .collect::<Result<_, _>>()?;
            return Ok(EmitReceipt {
                event_id: event.id().clone(),
                deliveries,
                duplicate: true,
            });
        }

        let endpoints = self.load_endpoints(&mut *conn).await?;
        let mut planned = plan_fan_out(&self.config, &endpoints, event, now);
        // The order a duplicate emit reads them back in.
        planned.sort_by(|a, b| a.id.cmp(&b.id));
        if !planned.is_empty() {
            let mut rows = NewDeliveries::default();
            for state in &planned {
                rows.push(state)?;
            }
            st.insert_deliveries
                .query()
                .bind(event.id().as_str())
                .bind(rows.ids)
                .bind(rows.endpoint_ids)
                .bind(rows.statuses)
                .bind(rows.due_ats)
                .bind(rows.created_ats)
                .bind(rows.states)
                .bind(WORK_CHANNEL)
                .bind(&self.schema)
                .bind(planned.iter().any(|state| due_key(state).is_some()))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        Ok(EmitReceipt {
            event_id: event.id().clone(),
            deliveries: planned.into_iter().map(|state| state.id).collect(),
            duplicate: false,
        })
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(backend)
    }

    /// A transaction whose commit returns before the server flushes its WAL
    /// (`synchronous_commit = off` for this transaction only).
    ///
    /// Only claims, outcome records and releases use it: if the database server itself crashes,
    /// the last such commits (at most about three times `wal_writer_delay`) can be lost, which
    /// means an attempt is made again — allowed by at-least-once delivery — while a flush per
    /// outcome would cap the dispatchers at a few hundred deliveries per second. `emit` and every
    /// endpoint change still wait for the flush.
    ///
    /// These transactions also plan each statement once per connection (`plan_cache_mode =
    /// force_generic_plan`). Left to choose, PostgreSQL planned the statements of claims and
    /// batch records again for their parameters on every execution, 0.3–0.5 ms each; they are
    /// written so that their generic plans are key and index lookups whatever the parameters
    /// (see `sql`).
    async fn begin_lazy(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        // One round trip for all three. Statements before a BEGIN in one simple query become part
        // of the transaction it opens (the protocol's "Multiple Statements in a Simple Query"),
        // and if a SET failed the BEGIN would not run: no transaction is left open either way.
        self.pool
            .begin_with(
                "SET LOCAL synchronous_commit = off; \
                 SET LOCAL plan_cache_mode = force_generic_plan; BEGIN",
            )
            .await
            .map_err(backend)
    }

    /// Queues a work notification; it is delivered when the transaction commits.
    async fn notify(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        self.statements
            .notify
            .query()
            .bind(WORK_CHANNEL)
            .bind(&self.schema)
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load_endpoints(&self, conn: &mut PgConnection) -> Result<Vec<Endpoint>, StoreError> {
        let rows = self
            .statements
            .list_endpoints
            .query()
            .fetch_all(conn)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| endpoint_from_json(&column::<String>(row, 0)?))
            .collect()
    }

    /// The endpoint and its health, or `None`, with its row locked as `lock` says.
    async fn endpoint_row(
        &self,
        conn: &mut PgConnection,
        id: &str,
        lock: RowLock,
    ) -> Result<Option<(Endpoint, EndpointHealth)>, StoreError> {
        let statement = match lock {
            RowLock::None => &self.statements.get_endpoint,
            RowLock::Share => &self.statements.share_endpoint,
            RowLock::Update => &self.statements.lock_endpoint,
        };
        let row = statement
            .query()
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(backend)?;
        row.map(|row| endpoint_and_health(&row)).transpose()
    }

    async fn locked_endpoint(
        &self,
        conn: &mut PgConnection,
        id: &EndpointId,
    ) -> Result<(Endpoint, EndpointHealth), StoreError> {
        self.endpoint_row(conn, id.as_str(), RowLock::Update)
            .await?
            .ok_or_else(|| not_found("endpoint", id))
    }

    /// Writes an endpoint whose row is locked, with what its status change implies: health
    /// afresh on enable, and its unfinished deliveries paused, resumed or (never here) cancelled.
    async fn write_endpoint(
        &self,
        conn: &mut PgConnection,
        endpoint: &Endpoint,
        mut health: EndpointHealth,
        change: Option<EndpointChange>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if change == Some(EndpointChange::Enabled) {
            health.reset();
        }
        if change.is_some() {
            self.lock_statuses(&mut *conn).await?;
        }
        self.statements
            .write_endpoint
            .query()
            .bind(endpoint.id.as_str())
            .bind(to_micros(endpoint.created_at))
            .bind(endpoint_to_json(endpoint)?)
            .bind(to_json("endpoint health", &health)?)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        if let Some(change) = change {
            self.change_deliveries(&mut *conn, endpoint, change, now)
                .await?;
        }
        if change == Some(EndpointChange::Enabled) {
            self.notify(conn).await?;
        }
        Ok(())
    }

    /// Excludes concurrent `emit`s until the transaction ends (see the module docs).
    async fn lock_statuses(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        self.statements
            .status_lock_exclusive
            .query()
            .bind(self.status_lock)
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Applies an endpoint change to each of its unfinished deliveries.
    async fn change_deliveries(
        &self,
        conn: &mut PgConnection,
        endpoint: &Endpoint,
        change: EndpointChange,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let finals: Vec<&str> = STATUSES
            .iter()
            .filter(|status| status.is_final())
            .map(|status| status.as_str())
            .collect();
        let rows = self
            .statements
            .lock_unfinished
            .query()
            .bind(endpoint.id.as_str())
            .bind(finals)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let mut writes = DeliveryWrites::default();
        for row in &rows {
            let state = delivery_state(&column::<String>(row, 1)?)?;
            if state.status.is_final() {
                continue;
            }
            let token: Option<String> = column(row, 2)?;
            let until: Option<i64> = column(row, 3)?;
            let state = apply_endpoint_change(&self.config, endpoint, state, change, now);
            let lease = token
                .zip(until)
                .filter(|_| state.status == DeliveryStatus::InFlight);
            writes.push(&state, lease)?;
        }
        writes.write(&self.statements, conn).await
    }

    /// The delivery row, locked: its endpoint id, state and lease token.
    async fn locked_delivery(
        &self,
        conn: &mut PgConnection,
        id: &DeliveryId,
    ) -> Result<(String, DeliveryState, Option<String>), StoreError> {
        let row = self
            .statements
            .lock_delivery
            .query()
            .bind(id.as_str())
            .fetch_optional(conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("delivery", id))?;
        Ok((
            column(&row, 0)?,
            delivery_state(&column::<String>(&row, 1)?)?,
            column(&row, 2)?,
        ))
    }

    /// The id of the endpoint a delivery goes to.
    async fn delivery_endpoint(
        &self,
        conn: &mut PgConnection,
        id: &DeliveryId,
    ) -> Result<String, StoreError> {
        let row = self
            .statements
            .delivery_endpoint
            .query()
            .bind(id.as_str())
            .fetch_optional(conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("delivery", id))?;
        column(&row, 0)
    }

    async fn claim_in(
        &self,
        conn: &mut PgConnection,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
        search_expired: bool,
    ) -> Result<(Vec<Claim>, Option<i64>), StoreError> {
        let mut writes = DeliveryWrites::default();
        let mut log = AttemptWrites::default();
        // First, so that the only rows this transaction holds while it waits for delivery rows
        // are lease rows, which no one else waits for (see the module docs).
        let next_expiry = if search_expired {
            self.settle_expired_leases(&mut *conn, now, &mut writes, &mut log)
                .await?
        } else {
            None
        };
        // Settled just now: not again below, should an older version have queued one too.
        let reclaimed: HashSet<String> = writes.ids.iter().cloned().collect();
        // At least one row, so that even a claim of none settles an expired lease queued by an
        // older version.
        let limit_rows = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = self
            .statements
            .claim_due
            .query()
            .bind(to_micros(now))
            .bind(limit_rows)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let lease_until = now.saturating_add(lease);
        let lease_group: Arc<str> = Arc::from(LeaseToken::generate().as_str());
        let mut claims = Vec::with_capacity(rows.len());
        // Claims of one endpoint share one decoded copy (its secrets' HMAC keys are derived once);
        // `claim_due` sends the record on the endpoint's first row only.
        let mut endpoints: HashMap<EndpointId, Option<Arc<Endpoint>>> = HashMap::new();
        for row in &rows {
            let state = delivery_state(&column::<String>(row, 1)?)?;
            let endpoint = if let Some(endpoint) = endpoints.get(&state.endpoint_id) {
                endpoint.clone()
            } else {
                let decoded = column::<Option<String>>(row, 2)?
                    .map(|record| endpoint_from_json(&record).map(Arc::new))
                    .transpose()?;
                endpoints.insert(state.endpoint_id.clone(), decoded.clone());
                decoded
            };
            if state.status == DeliveryStatus::InFlight {
                // Queued at its lease's expiry by a version before schema 5, and that has
                // passed: the worker holding it is gone. Settle the lost attempt; the retry is
                // claimed when it is due. (Deleting an endpoint cancels its deliveries, so a
                // missing one only skips hand-edited rows.)
                let Some(endpoint) = endpoint.filter(|_| !reclaimed.contains(state.id.as_str()))
                else {
                    continue;
                };
                let (state, lost) = reclaim(&self.config, &endpoint, state, now);
                if let Some(lost) = lost {
                    log.push(&state.id, &lost)?;
                }
                writes.push(&state, None)?;
                continue;
            }
            if claims.len() == limit {
                continue;
            }
            let Some(endpoint) = endpoint else {
                return Err(not_found("endpoint", &state.endpoint_id));
            };
            let Some((attempt, state)) = start_attempt(&self.config, &endpoint, state, now) else {
                // Queued but not due: a row out of step with its delivery (see
                // `sql::dequeue_deliveries!`). Writing the state back puts the queue right, so
                // the row does not come back in every claim.
                writes.push(&delivery_state(&column::<String>(row, 1)?)?, None)?;
                continue;
            };
            let (Some(kind), Some(body)) = (
                column::<Option<String>>(row, 3)?,
                column::<Option<Vec<u8>>>(row, 4)?,
            ) else {
                return Err(not_found("event", &state.event_id));
            };
            let event =
                SerializedEvent::new(state.event_id.clone(), event_type(kind)?, body.into());
            let token = LeaseToken::generate();
            let stored = writes.push(
                &state,
                Some((token.as_str().to_owned(), micros_ceil(lease_until))),
            )?;
            let stored_state = Some(Arc::from(stored));
            claims.push(Claim {
                attempt,
                state,
                endpoint,
                event,
                lease: token,
                lease_until,
                stored_state,
                lease_group: Some(Arc::clone(&lease_group)),
            });
        }
        if claims.is_empty() {
            writes.write(&self.statements, &mut *conn).await?;
        } else {
            let claimed: Vec<&str> = claims
                .iter()
                .map(|claim| claim.attempt.delivery_id.as_str())
                .collect();
            writes
                .bind(self.statements.claim_writes.query())
                .bind(&*lease_group)
                .bind(micros_ceil(lease_until))
                .bind(claimed)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        log.write(&self.statements, conn).await?;
        Ok((claims, next_expiry))
    }

    /// Settles the claims whose lease ran out: each of their deliveries still in flight is a
    /// lost attempt ([`reclaim`]), written with `writes` and `log`; their lease rows are deleted.
    /// Returns the earliest expiry among the lease rows there were (those settled here
    /// included), for [`LeaseWatch::searched`].
    async fn settle_expired_leases(
        &self,
        conn: &mut PgConnection,
        now: OffsetDateTime,
        writes: &mut DeliveryWrites,
        log: &mut AttemptWrites,
    ) -> Result<Option<i64>, StoreError> {
        let mut leases = self
            .statements
            .expired_leases
            .query()
            .bind(to_micros(now))
            .bind(EXPIRED_LEASES_PER_CLAIM)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        // The statement's last row carries the earliest expiry alone.
        let next_expiry = match leases.pop() {
            Some(row) => column::<Option<i64>>(&row, 2)?,
            None => None,
        };
        if leases.is_empty() {
            return Ok(next_expiry);
        }
        let mut lease_ids = Vec::with_capacity(leases.len());
        let mut delivery_ids = Vec::new();
        for row in &leases {
            lease_ids.push(column::<String>(row, 0)?);
            delivery_ids.extend(column::<Vec<String>>(row, 1)?);
        }
        let rows = self
            .statements
            .lock_expired
            .query()
            .bind(delivery_ids)
            .bind(to_micros(now))
            .bind(DeliveryStatus::InFlight.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let mut endpoints: HashMap<String, Option<Endpoint>> = HashMap::new();
        for row in &rows {
            let state = delivery_state(&column::<String>(row, 1)?)?;
            let endpoint_id: String = column(row, 2)?;
            if !endpoints.contains_key(&endpoint_id) {
                let endpoint = column::<Option<String>>(row, 3)?
                    .map(|record| endpoint_from_json(&record))
                    .transpose()?;
                endpoints.insert(endpoint_id.clone(), endpoint);
            }
            // Deleting an endpoint cancels its deliveries: a missing one only skips hand-edited
            // rows.
            let Some(Some(endpoint)) = endpoints.get(&endpoint_id) else {
                continue;
            };
            let (state, lost) = reclaim(&self.config, endpoint, state, now);
            if let Some(lost) = lost {
                log.push(&state.id, &lost)?;
            }
            writes.push(&state, None)?;
        }
        self.statements
            .delete_leases
            .query()
            .bind(lease_ids)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(next_expiry)
    }

    /// Counts `claim`, settled, off its lease row (see `sql::count_off_leases!`).
    async fn count_off_lease(
        &self,
        conn: &mut PgConnection,
        claim: &Claim,
    ) -> Result<(), StoreError> {
        let Some(group) = claim.lease_group.as_deref() else {
            return Ok(());
        };
        self.statements
            .count_off_leases
            .query()
            .bind([group])
            .bind([1_i32])
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn record_attempt_in(
        &self,
        conn: &mut PgConnection,
        claim: &Claim,
        outcome: &AttemptOutcome,
        now: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        let id = &claim.attempt.delivery_id;
        let lost = || StoreError::LeaseLost(id.to_string());
        // Endpoint first (health is updated under its lock), then the delivery.
        let endpoint_id = claim.state.endpoint_id.as_str();
        let endpoint = self
            .endpoint_row(&mut *conn, endpoint_id, RowLock::Update)
            .await?;
        let (row_endpoint, state, token) = self.locked_delivery(&mut *conn, id).await?;
        if token.as_deref() != Some(claim.lease.as_str()) {
            return Err(lost());
        }
        let Some((mut endpoint, health)) = endpoint.filter(|_| row_endpoint == endpoint_id) else {
            return Err(lost());
        };
        let settlement = settle(&self.config, &endpoint, claim, state, health, outcome, now)?;
        self.count_off_lease(&mut *conn, claim).await?;

        let mut writes = DeliveryWrites::default();
        writes.push(&settlement.state, None)?;
        writes.write(&self.statements, &mut *conn).await?;
        let mut log = AttemptWrites::default();
        log.push(id, &settlement.record)?;
        log.write(&self.statements, &mut *conn).await?;
        if let Some(reason) = settlement.disable {
            endpoint.disable(now, reason);
            self.write_endpoint(
                &mut *conn,
                &endpoint,
                settlement.health,
                Some(EndpointChange::Disabled),
                now,
            )
            .await?;
        } else {
            self.statements
                .write_health
                .query()
                .bind(endpoint_id)
                .bind(to_json("endpoint health", &settlement.health)?)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
        }
        Ok(Recorded {
            state: settlement.state,
            endpoint_disabled: settlement.disable,
        })
    }

    async fn release_in(
        &self,
        conn: &mut PgConnection,
        claim: &Claim,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = &claim.attempt.delivery_id;
        let (endpoint_id, state, token) = self.locked_delivery(&mut *conn, id).await?;
        if token.as_deref() != Some(claim.lease.as_str()) {
            return Err(StoreError::LeaseLost(id.to_string()));
        }
        // Not locked: the delivery row is, and endpoint rows are only ever locked before
        // delivery rows. Only the endpoint's schedule is read.
        let (endpoint, _) = self
            .endpoint_row(&mut *conn, &endpoint_id, RowLock::None)
            .await?
            .ok_or_else(|| not_found("endpoint", &endpoint_id))?;
        let state = release_state(&self.config, &endpoint, state, claim, now)
            .ok_or_else(|| StoreError::LeaseLost(id.to_string()))?;
        self.count_off_lease(&mut *conn, claim).await?;
        let mut writes = DeliveryWrites::default();
        writes.push(&state, None)?;
        writes.write(&self.statements, &mut *conn).await?;
        self.notify(&mut *conn).await?;
        Ok(())
    }

    async fn replay_in(
        &self,
        conn: &mut PgConnection,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> Result<DeliveryState, StoreError> {
        let endpoint_id = self.delivery_endpoint(&mut *conn, id).await?;
        // Endpoint before delivery; shared, so its status cannot change under the replay.
        let (endpoint, _) = self
            .endpoint_row(&mut *conn, &endpoint_id, RowLock::Share)
            .await?
            .ok_or_else(|| not_found("endpoint", &endpoint_id))?;
        let (_, state, _) = self.locked_delivery(&mut *conn, id).await?;
        let state = replay_state(&self.config, &endpoint, state, now)?;
        let mut writes = DeliveryWrites::default();
        writes.push(&state, None)?;
        writes.write(&self.statements, &mut *conn).await?;
        self.notify(&mut *conn).await?;
        Ok(state)
    }

    async fn recover_in(
        &self,
        conn: &mut PgConnection,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let (endpoint, _) = self
            .endpoint_row(&mut *conn, endpoint_id.as_str(), RowLock::Share)
            .await?
            .ok_or_else(|| not_found("endpoint", endpoint_id))?;
        let rows = self
            .statements
            .lock_failed_since
            .query()
            .bind(endpoint_id.as_str())
            .bind(to_micros(since))
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let mut writes = DeliveryWrites::default();
        let mut count = 0;
        for row in &rows {
            let state = delivery_state(&column::<String>(row, 1)?)?;
            // The column is rounded down to the microsecond; compare exactly here.
            if state.status != DeliveryStatus::Failed || state.created_at < since {
                continue;
            }
            let state = replay_state(&self.config, &endpoint, state, now)?;
            writes.push(&state, None)?;
            count += 1;
        }
        writes.write(&self.statements, &mut *conn).await?;
        if count > 0 {
            self.notify(&mut *conn).await?;
        }
        Ok(count)
    }
}

impl Store for PostgresStore {
    fn config(&self) -> &StoreConfig {
        &self.config
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        let done = self
            .statements
            .insert_endpoint
            .query()
            .bind(endpoint.id.as_str())
            .bind(to_micros(endpoint.created_at))
            .bind(endpoint_to_json(endpoint)?)
            .bind(to_json("endpoint health", &EndpointHealth::new())?)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                kind: "endpoint",
                id: endpoint.id.to_string(),
            });
        }
        Ok(())
    }

    async fn get_endpoint(&self, id: &EndpointId) -> Result<Endpoint, StoreError> {
        let row = self
            .statements
            .get_endpoint
            .query()
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("endpoint", id))?;
        endpoint_from_json(&column::<String>(&row, 0)?)
    }

    async fn list_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.load_endpoints(&mut conn).await
    }

    async fn update_endpoint(
        &self,
        endpoint: &Endpoint,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.config.check_endpoint(endpoint)?;
        let mut tx = self.begin().await?;
        let result = async {
            let (before, health) = self.locked_endpoint(&mut tx, &endpoint.id).await?;
            let change = EndpointChange::between(&before, endpoint);
            self.write_endpoint(&mut tx, endpoint, health, change, now)
                .await
        }
        .await;
        finish(tx, result).await
    }

    async fn delete_endpoint(
        &self,
        id: &EndpointId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let result = async {
            let (endpoint, _) = self.locked_endpoint(&mut tx, id).await?;
            self.lock_statuses(&mut tx).await?;
            self.change_deliveries(&mut tx, &endpoint, EndpointChange::Deleted, now)
                .await?;
            self.statements
                .delete_endpoint
                .query()
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    /// As the trait's default, but atomic: the endpoint row stays locked from read to write.
    async fn rotate_secret(
        &self,
        id: &EndpointId,
        new: Secret,
        grace: Duration,
        now: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        let mut tx = self.begin().await?;
        let result = async {
            let (mut endpoint, health) = self.locked_endpoint(&mut tx, id).await?;
            endpoint.secrets.rotate(new, now, grace);
            self.config.check_endpoint(&endpoint)?;
            self.write_endpoint(&mut tx, &endpoint, health, None, now)
                .await?;
            Ok(endpoint)
        }
        .await;
        finish(tx, result).await
    }

    /// As the trait's default, but atomic: an outcome recorded meanwhile (which may disable the
    /// endpoint) is not overwritten.
    async fn set_endpoint_enabled(
        &self,
        id: &EndpointId,
        disable: Option<DisableReason>,
        now: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        let mut tx = self.begin().await?;
        let result = async {
            let (before, health) = self.locked_endpoint(&mut tx, id).await?;
            let mut endpoint = before.clone();
            match disable {
                Some(reason) => endpoint.disable(now, reason),
                None => endpoint.enable(),
            }
            self.config.check_endpoint(&endpoint)?;
            let change = EndpointChange::between(&before, &endpoint);
            self.write_endpoint(&mut tx, &endpoint, health, change, now)
                .await?;
            Ok(endpoint)
        }
        .await;
        finish(tx, result).await
    }

    async fn endpoint_health(&self, id: &EndpointId) -> Result<EndpointHealth, StoreError> {
        let row = self
            .statements
            .get_endpoint
            .query()
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("endpoint", id))?;
        Ok(endpoint_and_health(&row)?.1)
    }

    async fn emit(
        &self,
        event: &SerializedEvent,
        now: OffsetDateTime,
    ) -> Result<EmitReceipt, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.emit_in(&mut conn, event, now).await
    }

    async fn get_event(&self, id: &EventId) -> Result<StoredEvent, StoreError> {
        let row = self
            .statements
            .get_event
            .query()
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("event", id))?;
        Ok(StoredEvent {
            event: SerializedEvent::new(
                id.clone(),
                event_type(column(&row, 0)?)?,
                column::<Vec<u8>>(&row, 1)?.into(),
            ),
            stored_at: from_micros(column(&row, 2)?)?,
        })
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let search = self.lease_watch.search_due(now);
        let mut tx = self.begin_lazy().await?;
        let result = self.claim_in(&mut tx, now, limit, lease, search).await;
        // Only once committed: a claim rolled back settled nothing.
        let (claims, next_expiry) = finish(tx, result).await?;
        if search {
            self.lease_watch.searched(now, next_expiry);
        }
        if let Some(claim) = claims.first() {
            self.lease_watch.leased(micros_ceil(claim.lease_until));
        }
        Ok(claims)
    }

    async fn record_attempt(
        &self,
        claim: &Claim,
        outcome: &AttemptOutcome,
        now: OffsetDateTime,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.begin_lazy().await?;
        let result = self.record_attempt_in(&mut tx, claim, outcome, now).await;
        finish(tx, result).await
    }

    async fn record_attempts(
        &self,
        batch: &[(&Claim, &AttemptOutcome)],
        now: OffsetDateTime,
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_lazy().await?;
        let result = self.record_batch_in(&mut tx, batch, now).await;
        finish(tx, result).await
    }

    async fn release(&self, claim: &Claim, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.begin_lazy().await?;
        let result = self.release_in(&mut tx, claim, now).await;
        finish(tx, result).await
    }

    async fn next_wakeup(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = self
            .statements
            .next_wakeup
            .query()
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let due = column::<Option<i64>>(&row, 0)?;
        let expiry = column::<Option<i64>>(&row, 1)?;
        if let Some(expiry) = expiry {
            self.lease_watch.leased(expiry);
        }
        due.into_iter()
            .chain(expiry)
            .min()
            .map(from_micros)
            .transpose()
    }

    async fn get_delivery(&self, id: &DeliveryId) -> Result<DeliveryState, StoreError> {
        let row = self
            .statements
            .get_delivery
            .query()
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| not_found("delivery", id))?;
        delivery_state(&column::<String>(&row, 0)?)
    }

    async fn list_deliveries(
        &self,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryState>, StoreError> {
        let text = sql::list_deliveries(
            &format!("\"{}\"", self.schema),
            query.endpoint_id.is_some(),
            query.event_id.is_some(),
            query.status.is_some(),
        );
        // Built from constant fragments and the validated schema name only.
        let mut statement = sqlx::query(AssertSqlSafe(text).into_sql_str());
        if let Some(id) = &query.endpoint_id {
            statement = statement.bind(id.as_str());
        }
        if let Some(id) = &query.event_id {
            statement = statement.bind(id.as_str());
        }
        if let Some(status) = query.status {
            statement = statement.bind(status.as_str());
        }
        let limit = i64::try_from(query.effective_limit()).unwrap_or(i64::MAX);
        let rows = statement
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| delivery_state(&column::<String>(row, 0)?))
            .collect()
    }

    async fn attempts(&self, id: &DeliveryId) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.delivery_endpoint(&mut conn, id).await?;
        let rows = self
            .statements
            .list_attempts
            .query()
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| from_json("attempt record", &column::<String>(row, 0)?))
            .collect()
    }

    async fn replay(
        &self,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> Result<DeliveryState, StoreError> {
        let mut tx = self.begin().await?;
        let result = self.replay_in(&mut tx, id, now).await;
        finish(tx, result).await
    }

    async fn recover(
        &self,
        endpoint_id: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let result = self.recover_in(&mut tx, endpoint_id, since, now).await;
        finish(tx, result).await
    }

    async fn wait_for_work(&self) {
        self.wakeups
            .wait(&self.pool, &self.schema, self.poll_interval)
            .await;
    }
}

/// How many expired lease rows one claim settles at most (each lists one claim's deliveries).
const EXPIRED_LEASES_PER_CLAIM: i64 = 16;

/// When a claim searches for expired leases.
///
/// A lease runs out only when its dispatcher died or hung, so searching in every claim cost a
/// round trip per claim nearly always for nothing. A search also reads the earliest expiry among
/// the lease rows, and the store notes the expiry of each claim it makes and the earliest one
/// [`Store::next_wakeup`] reads: until the earliest of these, no lease this store has seen can
/// run out. A lease another process writes after a search is not seen that way, so searches
/// are at most [`LeaseWatch::RECHECK`] apart while claims are made: such a lease is settled at
/// most that long after it runs out. (A dispatcher sleeping until its next wake-up reads every
/// lease's expiry through `next_wakeup` first.)
struct LeaseWatch {
    /// Unix microseconds from which claims search again.
    search_from: AtomicI64,
}

impl Default for LeaseWatch {
    fn default() -> LeaseWatch {
        // The first claim searches: the store has seen nothing yet.
        LeaseWatch {
            search_from: AtomicI64::new(i64::MIN),
        }
    }
}

impl LeaseWatch {
    /// The longest time between searches while claims are made.
    const RECHECK: Duration = Duration::SECOND;

    /// Whether a claim at `now` searches.
    fn search_due(&self, now: OffsetDateTime) -> bool {
        to_micros(now) >= self.search_from.load(Ordering::Relaxed)
    }

    /// A search at `now` committed, and the earliest expiry among the lease rows it saw was
    /// `next_expiry`. Rows it settled and rows another claim held count too: they have run out,
    /// so the next claim searches again.
    fn searched(&self, now: OffsetDateTime, next_expiry: Option<i64>) {
        let recheck = to_micros(now.saturating_add(LeaseWatch::RECHECK));
        let from = next_expiry.map_or(recheck, |expiry| expiry.min(recheck));
        self.search_from.store(from, Ordering::Relaxed);
    }

    /// A lease running out at `expiry` (Unix microseconds) exists.
    fn leased(&self, expiry: i64) {
        self.search_from.fetch_min(expiry, Ordering::Relaxed);
    }
}

/// How `PostgresStore::endpoint_row` locks the row it reads.
#[derive(Clone, Copy)]
enum RowLock {
    /// A plain read.
    None,
    /// `FOR SHARE`: its status cannot change until the transaction ends.
    Share,
    /// `FOR UPDATE`: this transaction will write it.
    Update,
}

/// Commits `tx` if `result` is a success, or rolls it back: explicitly, so that its row locks are
/// released before the method returns (a dropped transaction rolls back only when its connection
/// is next used, and meanwhile `SKIP LOCKED` claimers would pass over the rows it held).
async fn finish<T>(
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(backend)?;
            Ok(value)
        }
        Err(err) => {
            // A failed rollback means a broken connection, which the server rolls back itself.
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}

/// Delivery rows to rewrite, as the columns of one batched `UPDATE … FROM UNNEST(…)`.
#[derive(Default)]
struct DeliveryWrites {
    ids: Vec<String>,
    statuses: Vec<String>,
    due_ats: Vec<Option<i64>>,
    lease_tokens: Vec<Option<String>>,
    lease_untils: Vec<Option<i64>>,
    states: Vec<String>,
}

impl DeliveryWrites {
    /// Adds a delivery's new state, and returns its text as it will be written; `lease` (token,
    /// expiry column) is kept only while in flight.
    fn push(
        &mut self,
        state: &DeliveryState,
        lease: Option<(String, i64)>,
    ) -> Result<&str, StoreError> {
        let (token, until) = lease
            .filter(|_| state.status == DeliveryStatus::InFlight)
            .unzip();
        self.ids.push(state.id.to_string());
        self.statuses.push(state.status.as_str().to_owned());
        self.due_ats.push(due_key(state).map(micros_ceil));
        self.lease_tokens.push(token);
        self.lease_untils.push(until);
        self.states.push(to_json("delivery", state)?);
        Ok(self.states.last().map_or("", String::as_str))
    }

    /// Binds the columns as `$1`–`$6` of `query` (see `sql::write_deliveries!`).
    fn bind(self, query: PgQuery) -> PgQuery {
        query
            .bind(self.ids)
            .bind(self.statuses)
            .bind(self.due_ats)
            .bind(self.lease_tokens)
            .bind(self.lease_untils)
            .bind(self.states)
    }

    async fn write(self, st: &Statements, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        self.bind(st.update_deliveries.query())
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Settled claims per lease row, as the columns of `sql::count_off_leases!`.
#[derive(Default)]
struct LeaseCounts {
    ids: Vec<String>,
    counts: Vec<i32>,
}

impl LeaseCounts {
    /// Counts `claim` as settled. A batch's claims come from a few claims' worth at most, so a
    /// linear search finds the row.
    fn add(&mut self, claim: &Claim) {
        let Some(group) = claim.lease_group.as_deref() else {
            return;
        };
        if let Some(at) = self.ids.iter().position(|id| id == group) {
            self.counts[at] = self.counts[at].saturating_add(1);
        } else {
            self.ids.push(group.to_owned());
            self.counts.push(1);
        }
    }
}

/// New delivery rows, as the columns of the fan-out's one `INSERT … SELECT FROM UNNEST(…)`.
#[derive(Default)]
struct NewDeliveries {
    ids: Vec<String>,
    endpoint_ids: Vec<String>,
    statuses: Vec<String>,
    due_ats: Vec<Option<i64>>,
    created_ats: Vec<i64>,
    states: Vec<String>,
}

impl NewDeliveries {
    fn push(&mut self, state: &DeliveryState) -> Result<(), StoreError> {
        self.ids.push(state.id.to_string());
        self.endpoint_ids.push(state.endpoint_id.to_string());
        self.statuses.push(state.status.as_str().to_owned());
        self.due_ats.push(due_key(state).map(micros_ceil));
        self.created_ats.push(to_micros(state.created_at));
        self.states.push(to_json("delivery", state)?);
        Ok(())
    }
}

/// Attempt log entries to insert in one statement.
#[derive(Default)]
struct AttemptWrites {
    delivery_ids: Vec<String>,
    attempts: Vec<i64>,
    records: Vec<String>,
}

impl AttemptWrites {
    fn push(&mut self, delivery: &DeliveryId, record: &AttemptRecord) -> Result<(), StoreError> {
        self.delivery_ids.push(delivery.to_string());
        self.attempts.push(i64::from(record.attempt));
        self.records.push(to_json("attempt record", record)?);
        Ok(())
    }

    async fn write(self, st: &Statements, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.delivery_ids.is_empty() {
            return Ok(());
        }
        st.insert_attempts
            .query()
            .bind(self.delivery_ids)
            .bind(self.attempts)
            .bind(self.records)
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// When a waiting delivery is due: pending and retry-scheduled ones only (as the memory store's
/// due index).
fn due_key(state: &DeliveryState) -> Option<OffsetDateTime> {
    matches!(
        state.status,
        DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
    )
    .then(|| state.next_attempt_at.unwrap_or(state.created_at))
}

/// A time as Unix microseconds, rounded up: for due and expiry columns compared with `now`
/// rounded down, so that a row is never picked before its time.
fn micros_ceil(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    let micros = nanos.div_euclid(1_000) + i128::from(nanos.rem_euclid(1_000) != 0);
    i64::try_from(micros).unwrap_or(i64::MAX)
}

/// The advisory lock key that serializes endpoint status changes against `emit` in one schema.
fn status_lock_key(schema: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"nopos-webhooks/status-lock/v1\0")
        .chain_update(schema.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

fn check_schema(schema: &str) -> Result<(), ConnectError> {
    let mut chars = schema.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(ConnectError::InvalidSchema(
            schema.chars().take(80).collect(),
        ))
    }
}

async fn pool_for(url: &str) -> Result<PgPool, ConnectError> {
    let options: PgConnectOptions = url.parse().map_err(ConnectError::InvalidUrl)?;
    // One direct connection first, to fail at once with the server's own reason: a pool would
    // retry until its acquire timeout and then report only the timeout.
    let probe = PgConnection::connect_with(&options)
        .await
        .map_err(ConnectError::Connect)?;
    let _ = probe.close().await;
    Ok(PgPoolOptions::new()
        // Ping only a connection that sat idle: one that was just used is alive, and a ping per
        // transaction is a round trip per claim and per batch of outcomes. An idle one may have
        // been cut (a server restart, a proxy's timeout), and the ping then replaces it instead
        // of failing the caller's operation.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < IDLE_BEFORE_PING {
                    return Ok(true);
                }
                conn.ping().await.map(|()| true)
            })
        })
        .connect_lazy_with(options))
}

/// How long a pooled connection may sit idle before it is pinged when taken from the pool.
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the embedded migrations in `quoted_schema`, creating it if needed.
async fn migrate(pool: &PgPool, quoted_schema: &str) -> Result<(), ConnectError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                (*sql).into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(format!("{quoted_schema}.{MIGRATIONS_TABLE}"));
    migrator.create_schema(quoted_schema.to_owned());

    // The migrations name their tables unqualified; run them on a connection of their own whose
    // search_path is the schema, and close it afterwards rather than return it to the pool.
    let mut conn = pool
        .acquire()
        .await
        .map_err(ConnectError::Connect)?
        .detach();
    sqlx::query(AssertSqlSafe(format!("SET search_path TO {quoted_schema}")).into_sql_str())
        .execute(&mut conn)
        .await
        .map_err(ConnectError::Connect)?;
    migrator
        .run(&mut conn)
        .await
        .map_err(ConnectError::Migrate)?;
    // The migrations are applied; failing to say goodbye politely changes nothing.
    let _ = conn.close().await;
    Ok(())
}

/// Column `index` of `row`. A type mismatch means the schema is not ours: a backend error.
fn column<'r, T>(row: &'r PgRow, index: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(index).map_err(backend)
}

fn endpoint_and_health(row: &PgRow) -> Result<(Endpoint, EndpointHealth), StoreError> {
    Ok((
        endpoint_from_json(&column::<String>(row, 0)?)?,
        from_json("endpoint health", &column::<String>(row, 1)?)?,
    ))
}

fn delivery_state(json: &str) -> Result<DeliveryState, StoreError> {
    from_json("delivery", json)
}

fn delivery_id(id: String) -> Result<DeliveryId, StoreError> {
    DeliveryId::try_from(id).map_err(|err| StoreError::Corrupt {
        what: "delivery id",
        message: err.to_string(),
    })
}

fn event_type(name: String) -> Result<EventType, StoreError> {
    EventType::try_from(name).map_err(|err| StoreError::Corrupt {
        what: "event type",
        message: err.to_string(),
    })
}

fn not_found(kind: &'static str, id: &impl ToString) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn due_columns_round_up() {
        let at = datetime!(2024-11-10 10:30:00.000001 UTC);
        assert_eq!(micros_ceil(at), to_micros(at));
        let between = at + Duration::nanoseconds(1);
        assert_eq!(micros_ceil(between), to_micros(at) + 1);
        let before_epoch = datetime!(1969-12-31 23:59:59.9999995 UTC);
        assert_eq!(micros_ceil(before_epoch), 0);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["public", "nopos_webhooks", "_t1", &"a".repeat(63)] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Public",
            "a-b",
            "a\"b",
            "a.b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(check_schema(bad), Err(ConnectError::InvalidSchema(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_lock_keys_differ_by_schema() {
        assert_ne!(status_lock_key("a"), status_lock_key("b"));
        assert_eq!(status_lock_key("a"), status_lock_key("a"));
    }

    #[test]
    fn list_queries_number_their_parameters() {
        let sql = sql::list_deliveries("\"s\"", true, false, true);
        assert!(sql.contains("endpoint_id = $1 AND status = $2"), "{sql}");
        assert!(sql.ends_with("LIMIT $3"), "{sql}");
        let sql = sql::list_deliveries("\"s\"", false, false, false);
        assert!(!sql.contains("WHERE") && sql.ends_with("LIMIT $1"), "{sql}");
    }
}
