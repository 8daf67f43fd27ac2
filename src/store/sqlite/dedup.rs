//! The receiver's [`Deduplicator`] on SQLite: seen event ids survive restarts and are shared by
//! every receiver process on the machine.
//!
//! This file owns the `nopos_dedup_seen` table's queries. The table itself is created by the
//! store's migrations.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::SqlitePool;
use time::{Duration, OffsetDateTime};

use super::{SqliteStore, schema};
use crate::EventId;
use crate::receiver::{DedupError, DedupFuture, DedupOutcome, Deduplicator};
use crate::store::StoreError;
use crate::store::codec::to_micros;

/// Expired ids are deleted on every this many marks (and by
/// [`SqliteDeduplicator::purge_expired`]), so the table stays the size of one TTL of traffic
/// without a background task.
const PURGE_EVERY: u64 = 1024;

/// A [`Deduplicator`] in a SQLite database file: one row per event id seen within the time to
/// live.
///
/// Unlike [`MemoryDeduplicator`](crate::MemoryDeduplicator) it remembers ids across restarts
/// and between processes sharing the file, and it is bounded by time only: the table holds the
/// ids of one TTL of traffic (expired rows are deleted as new ones arrive).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nopos_webhooks::store::sqlite::SqliteDeduplicator;
/// use nopos_webhooks::{DedupOutcome, Deduplicator, EventId};
/// use time::{Duration, macros::datetime};
///
/// # let dir = tempfile::tempdir()?;
/// let seen = SqliteDeduplicator::open(dir.path().join("receiver.db"), Duration::hours(24)).await?;
/// let id: EventId = "evt_1234567890".parse()?;
/// let now = datetime!(2024-11-10 10:30 UTC);
/// assert_eq!(seen.check_and_mark(&id, now).await?, DedupOutcome::New);
/// assert_eq!(seen.check_and_mark(&id, now).await?, DedupOutcome::Duplicate);
/// # Ok(()) }
/// ```
pub struct SqliteDeduplicator {
    pool: SqlitePool,
    ttl: Duration,
    marks: AtomicU64,
}

impl fmt::Debug for SqliteDeduplicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDeduplicator")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SqliteDeduplicator {
    /// The default time to live: 24 hours, longer than NoPOS's whole retry schedule.
    pub const DEFAULT_TTL: Duration = Duration::hours(24);

    /// A deduplicator in the store's database file, remembering ids for `ttl`.
    pub fn new(store: &SqliteStore, ttl: Duration) -> SqliteDeduplicator {
        SqliteDeduplicator {
            pool: store.pool().clone(),
            ttl,
            marks: AtomicU64::new(0),
        }
    }

    /// A deduplicator in its own database file (created if missing), for receivers that run no
    /// store.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or migrated.
    pub async fn open(
        path: impl AsRef<Path>,
        ttl: Duration,
    ) -> Result<SqliteDeduplicator, StoreError> {
        let pool = schema::open_pool(path.as_ref()).await?;
        Ok(SqliteDeduplicator {
            pool,
            ttl,
            marks: AtomicU64::new(0),
        })
    }

    /// How long an id is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Deletes the ids that expired at `now`; returns how many.
    ///
    /// # Errors
    /// [`DedupError::Unavailable`] when the database fails.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, DedupError> {
        let result = sqlx::query("DELETE FROM nopos_dedup_seen WHERE seen_at <= ?")
            .bind(to_micros(now.saturating_sub(self.ttl)))
            .execute(&self.pool)
            .await
            .map_err(DedupError::unavailable)?;
        Ok(result.rows_affected())
    }

    async fn mark(&self, id: &EventId, now: OffsetDateTime) -> Result<DedupOutcome, DedupError> {
        // One statement, so concurrent marks of one id are serialized by SQLite: exactly one
        // inserts (or revives an expired row) and sees a changed row.
        let changed = sqlx::query(
            "INSERT INTO nopos_dedup_seen (event_id, seen_at) VALUES (?, ?) \
             ON CONFLICT (event_id) DO UPDATE SET seen_at = excluded.seen_at \
             WHERE nopos_dedup_seen.seen_at <= ?",
        )
        .bind(id.as_str())
        .bind(to_micros(now))
        .bind(to_micros(now.saturating_sub(self.ttl)))
        .execute(&self.pool)
        .await
        .map_err(DedupError::unavailable)?
        .rows_affected();
        if self.marks.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            self.purge_expired(now).await?;
        }
        Ok(if changed == 0 {
            DedupOutcome::Duplicate
        } else {
            DedupOutcome::New
        })
    }
}

impl Deduplicator for SqliteDeduplicator {
    fn check_and_mark<'a>(
        &'a self,
        id: &'a EventId,
        now: OffsetDateTime,
    ) -> DedupFuture<'a, DedupOutcome> {
        Box::pin(self.mark(id, now))
    }

    fn forget<'a>(&'a self, id: &'a EventId) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM nopos_dedup_seen WHERE event_id = ?")
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(DedupError::unavailable)?;
            Ok(())
        })
    }
}
