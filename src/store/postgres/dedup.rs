//! A [`Deduplicator`] in PostgreSQL: the receiver side's record of processed event ids, shared
//! by every receiver process and kept across restarts.
//!
//! This module owns the `dedup_seen` table's reads and writes. Like every deduplicator it reads
//! no clock: each call takes `now`. Database errors become [`DedupError::Unavailable`], whose
//! message never includes the driver's text (the adapters answer `503` so the sender retries).

use std::fmt;
use std::sync::Arc;

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::PostgresStore;
use super::sql::Statements;
use crate::receiver::DedupFuture;
use crate::store::codec::to_micros;
use crate::{DedupError, DedupOutcome, Deduplicator, EventId};

/// A [`Deduplicator`] on a [`PostgresStore`]'s database and schema (table `dedup_seen`).
///
/// Marking is one `INSERT … ON CONFLICT (event_id) DO UPDATE … WHERE seen_at <= now - ttl`: a
/// row comes back when the id is new or its mark had expired, none when it is a duplicate, so of
/// any number of concurrent calls with one id exactly one sees [`DedupOutcome::New`], across
/// processes. Expired rows stay until [`purge_expired`](PostgresDeduplicator::purge_expired)
/// deletes them (run it now and then, say hourly); they never make a new event look like a
/// duplicate.
///
/// Times are kept to the microsecond.
///
/// ```no_run
/// # async fn run(store: &nopos_webhooks::store::postgres::PostgresStore) {
/// use nopos_webhooks::{MemoryDeduplicator, WebhookReceiver, Verifier, Secret};
/// use nopos_webhooks::store::postgres::PostgresDeduplicator;
///
/// let seen = PostgresDeduplicator::new(store, MemoryDeduplicator::DEFAULT_TTL);
/// # let verifier = Verifier::new([Secret::new("your_webhook_secret").unwrap()]);
/// let receiver = WebhookReceiver::new(verifier).with_deduplicator(seen);
/// # let _ = receiver; }
/// ```
#[derive(Clone)]
pub struct PostgresDeduplicator {
    pool: PgPool,
    statements: Arc<Statements>,
    ttl: Duration,
}

impl PostgresDeduplicator {
    /// A deduplicator in `store`'s schema, remembering each id for `ttl` (cover the sender's
    /// whole retry schedule: NoPOS retries for about 14.6 hours).
    pub fn new(store: &PostgresStore, ttl: Duration) -> PostgresDeduplicator {
        PostgresDeduplicator {
            pool: store.pool.clone(),
            statements: Arc::clone(&store.statements),
            ttl,
        }
    }

    /// How long an id is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Marks made at or before this time have expired at `now`.
    fn expired_before(&self, now: OffsetDateTime) -> i64 {
        to_micros(now.saturating_sub(self.ttl))
    }

    /// Marks `id` as received at `now`; says whether it already was, within the time to live.
    ///
    /// # Errors
    /// [`DedupError::Unavailable`] when the database fails; nothing is marked.
    pub async fn check_and_mark(
        &self,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<DedupOutcome, DedupError> {
        let marked = self
            .statements
            .dedup_mark
            .query()
            .bind(id.as_str())
            .bind(to_micros(now))
            .bind(self.expired_before(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(DedupError::unavailable)?;
        Ok(if marked.is_some() {
            DedupOutcome::New
        } else {
            DedupOutcome::Duplicate
        })
    }

    /// Forgets `id`, so that its next delivery counts as new.
    ///
    /// # Errors
    /// [`DedupError::Unavailable`] when the database fails.
    pub async fn forget(&self, id: &EventId) -> Result<(), DedupError> {
        self.statements
            .dedup_forget
            .query()
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(DedupError::unavailable)?;
        Ok(())
    }

    /// Deletes the marks that have expired at `now`; returns how many.
    ///
    /// # Errors
    /// [`DedupError::Unavailable`] when the database fails.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, DedupError> {
        let done = self
            .statements
            .dedup_purge
            .query()
            .bind(self.expired_before(now))
            .execute(&self.pool)
            .await
            .map_err(DedupError::unavailable)?;
        Ok(done.rows_affected())
    }
}

impl fmt::Debug for PostgresDeduplicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool: its options hold the connection's password.
        f.debug_struct("PostgresDeduplicator")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Deduplicator for PostgresDeduplicator {
    fn check_and_mark<'a>(
        &'a self,
        id: &'a EventId,
        now: OffsetDateTime,
    ) -> DedupFuture<'a, DedupOutcome> {
        Box::pin(PostgresDeduplicator::check_and_mark(self, id, now))
    }

    fn forget<'a>(&'a self, id: &'a EventId) -> DedupFuture<'a, ()> {
        Box::pin(PostgresDeduplicator::forget(self, id))
    }
}
