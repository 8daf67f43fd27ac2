//! Remembering which event ids were received, so each event is processed once.
//!
//! This module owns the [`Deduplicator`] contract and the bounded in-memory implementation. Like
//! the rest of the core it reads no clock: every call takes `now`.

use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::EventId;

/// The future a [`Deduplicator`] returns: boxed, so the trait stays dyn-compatible and one
/// `Arc<dyn Deduplicator>` can sit in an application's state.
pub type DedupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DedupError>> + Send + 'a>>;

/// Whether an event id was new or already received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(
    clippy::exhaustive_enums,
    reason = "seen or not: there is no third answer"
)]
pub enum DedupOutcome {
    /// First time within the time to live: process the event.
    New,
    /// Already received within the time to live: acknowledge with `200` and do not process it
    /// again.
    Duplicate,
}

impl DedupOutcome {
    /// Whether the event was already received.
    pub fn is_duplicate(self) -> bool {
        self == DedupOutcome::Duplicate
    }
}

/// Why a deduplicator could not answer.
///
/// The message never includes the source error's text; the source is kept for the operator's
/// logs, so implementations must not put credentials (a connection string with a password, say)
/// into it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DedupError {
    /// The store that remembers ids failed or could not be reached.
    #[error("deduplication store unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
}

impl DedupError {
    /// A [`DedupError::Unavailable`] from the store's own error.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> DedupError {
        DedupError::Unavailable(source.into())
    }
}

/// Remembers the ids of received events for a time to live, so that a delivery received again
/// (a retry after a lost `200`, a manual replay) is acknowledged without being processed twice.
///
/// Event ids never change between attempts and are covered by the signature (they are in the
/// body), so they are the idempotency key. The time to live should cover the sender's whole
/// retry schedule: NoPOS retries for about 14.6 hours, hence the 24-hour
/// [`MemoryDeduplicator::DEFAULT_TTL`].
///
/// # Contract
/// - [`check_and_mark`](Deduplicator::check_and_mark) is atomic: of any number of concurrent
///   calls with one id, exactly one gets [`DedupOutcome::New`].
/// - Call [`forget`](Deduplicator::forget) when processing a new event failed, so that the
///   sender's retry is processed instead of being acknowledged as a duplicate. (The
///   tower layer of the `tower` feature does this itself when the inner service fails.)
/// - Time comes in as `now`; implementations read no clock, so tests can jump through a TTL.
///
/// # Why the methods return boxed futures
/// The in-memory implementation answers at once, but implementations on a database do IO, so
/// the methods are asynchronous. The futures are boxed to keep the trait dyn-compatible: the
/// adapters hold an `Arc<dyn Deduplicator>` from the application's state, without a type
/// parameter. One small allocation per delivery is nothing next to an HTTP request. Code that
/// wants a synchronous answer calls [`MemoryDeduplicator::check_and_mark`] directly.
///
/// # Implementing it on a store
/// A store-backed implementation (`store::sqlite::SqliteDeduplicator` with the `sqlite`
/// feature; PostgreSQL planned) keeps a table of
/// `(event_id primary key, seen_at)`: `check_and_mark` is one
/// `INSERT … ON CONFLICT (event_id) DO UPDATE SET seen_at = now WHERE seen_at <= now - ttl`
/// whose affected-row count says new or duplicate, `forget` is a `DELETE`, and expired rows are
/// purged in the background. Its errors become [`DedupError::Unavailable`], which the adapters
/// answer with `503` so the sender retries.
pub trait Deduplicator: Send + Sync {
    /// Records that event `id` was received at `now`, and says whether it had already been
    /// received within the time to live.
    fn check_and_mark<'a>(
        &'a self,
        id: &'a EventId,
        now: OffsetDateTime,
    ) -> DedupFuture<'a, DedupOutcome>;

    /// Forgets `id`, so that its next delivery counts as new.
    fn forget<'a>(&'a self, id: &'a EventId) -> DedupFuture<'a, ()>;
}

/// A [`Deduplicator`] in process memory, bounded by a capacity and a time to live.
///
/// It remembers at most `capacity` ids; when full, the oldest is forgotten first. An id is
/// remembered for `ttl` after it was marked, then counts as new again. Memory therefore never
/// grows past the capacity (roughly 200 bytes per id), whatever the traffic. Safe to share
/// between threads and tasks (a `Mutex` around the table; every operation is short and does no
/// IO).
///
/// What it remembers is lost when the process stops, and each process has its own: for several
/// receiver processes behind a load balancer, or to survive restarts, use a store-backed
/// deduplicator.
///
/// # Default
/// [`DEFAULT_CAPACITY`](MemoryDeduplicator::DEFAULT_CAPACITY) (100 000) ids for
/// [`DEFAULT_TTL`](MemoryDeduplicator::DEFAULT_TTL) (24 hours).
///
/// ```
/// use nopos_webhooks::{DedupOutcome, EventId, MemoryDeduplicator};
/// use time::{Duration, macros::datetime};
///
/// let seen = MemoryDeduplicator::new(1000, Duration::hours(24));
/// let id: EventId = "evt_1234567890".parse()?;
/// let now = datetime!(2024-11-10 10:30 UTC);
///
/// assert_eq!(seen.check_and_mark(&id, now), DedupOutcome::New);
/// assert_eq!(seen.check_and_mark(&id, now + Duration::hours(12)), DedupOutcome::Duplicate);
/// assert_eq!(seen.check_and_mark(&id, now + Duration::hours(25)), DedupOutcome::New);
/// # Ok::<(), nopos_webhooks::IdError>(())
/// ```
pub struct MemoryDeduplicator {
    capacity: usize,
    ttl: Duration,
    table: Mutex<Table>,
}

/// The remembered ids, with their marking order for eviction.
#[derive(Default)]
struct Table {
    /// Each remembered id with the mark that is current for it.
    marks: HashMap<EventId, Mark>,
    /// Marks in the order they were made, oldest first. An entry whose generation no longer
    /// matches `marks` is stale (the id was forgotten or marked again) and is skipped; stale
    /// entries count towards the capacity, so this never holds more than `capacity` entries.
    order: VecDeque<(EventId, Mark)>,
    next_generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    at: OffsetDateTime,
    generation: u64,
}

impl Table {
    fn is_current(&self, id: &EventId, mark: Mark) -> bool {
        self.marks.get(id) == Some(&mark)
    }

    /// Drops the oldest entries while they are stale, expired at `now`, or over `capacity`.
    fn evict(&mut self, now: OffsetDateTime, ttl: Duration, capacity: usize) {
        while let Some((id, mark)) = self.order.front() {
            let current = self.is_current(id, *mark);
            let expired = now - mark.at >= ttl;
            if current && !expired && self.order.len() <= capacity {
                break;
            }
            if current {
                self.marks.remove(id);
            }
            self.order.pop_front();
        }
    }
}

impl MemoryDeduplicator {
    /// The default number of ids remembered.
    pub const DEFAULT_CAPACITY: usize = 100_000;
    /// The default time to live: 24 hours, longer than NoPOS's whole retry schedule.
    pub const DEFAULT_TTL: Duration = Duration::hours(24);

    /// A deduplicator remembering at most `capacity` ids (at least one) for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> MemoryDeduplicator {
        MemoryDeduplicator {
            capacity: capacity.max(1),
            ttl,
            table: Mutex::new(Table::default()),
        }
    }

    /// The most ids remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an id is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Ids remembered now, including expired ones not yet evicted (eviction happens on
    /// [`check_and_mark`](MemoryDeduplicator::check_and_mark)).
    pub fn len(&self) -> usize {
        self.lock().marks.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous form of [`Deduplicator::check_and_mark`]: records `id` at `now` and says
    /// whether it was already remembered and unexpired.
    ///
    /// A mark made at a later `now` than this one (clocks differ between threads by a little)
    /// counts as unexpired.
    pub fn check_and_mark(&self, id: &EventId, now: OffsetDateTime) -> DedupOutcome {
        let mut table = self.lock();
        table.evict(now, self.ttl, self.capacity);
        if let Some(mark) = table.marks.get(id)
            && now - mark.at < self.ttl
        {
            return DedupOutcome::Duplicate;
        }
        let mark = Mark {
            at: now,
            generation: table.next_generation,
        };
        table.next_generation = table.next_generation.wrapping_add(1);
        table.marks.insert(id.clone(), mark);
        table.order.push_back((id.clone(), mark));
        // `now` may be earlier than the oldest mark, so eviction by capacity is checked again.
        table.evict(now, self.ttl, self.capacity);
        DedupOutcome::New
    }

    /// The synchronous form of [`Deduplicator::forget`].
    pub fn forget(&self, id: &EventId) {
        // Its entry in the order queue becomes stale and is dropped when it reaches the front.
        self.lock().marks.remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // No operation can leave the table inconsistent half-way, so a panic elsewhere while the
        // lock was held does not make it unusable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryDeduplicator {
    fn default() -> MemoryDeduplicator {
        MemoryDeduplicator::new(
            MemoryDeduplicator::DEFAULT_CAPACITY,
            MemoryDeduplicator::DEFAULT_TTL,
        )
    }
}

impl fmt::Debug for MemoryDeduplicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDeduplicator")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Deduplicator for MemoryDeduplicator {
    fn check_and_mark<'a>(
        &'a self,
        id: &'a EventId,
        now: OffsetDateTime,
    ) -> DedupFuture<'a, DedupOutcome> {
        Box::pin(ready(Ok(MemoryDeduplicator::check_and_mark(self, id, now))))
    }

    fn forget<'a>(&'a self, id: &'a EventId) -> DedupFuture<'a, ()> {
        MemoryDeduplicator::forget(self, id);
        Box::pin(ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-11-10 10:30 UTC);

    fn id(n: usize) -> EventId {
        EventId::try_from(format!("evt_{n}")).unwrap()
    }

    #[test]
    fn ttl_expiry_with_a_fake_clock() {
        let seen = MemoryDeduplicator::new(10, Duration::minutes(10));
        assert_eq!(seen.check_and_mark(&id(1), NOW), DedupOutcome::New);
        let at = |secs| NOW + Duration::seconds(secs);
        assert_eq!(seen.check_and_mark(&id(1), at(1)), DedupOutcome::Duplicate);
        assert_eq!(
            seen.check_and_mark(&id(1), at(599)),
            DedupOutcome::Duplicate
        );
        // Exactly one TTL after the mark, the id is new again (and marked afresh).
        assert_eq!(seen.check_and_mark(&id(1), at(600)), DedupOutcome::New);
        assert_eq!(
            seen.check_and_mark(&id(1), at(1199)),
            DedupOutcome::Duplicate
        );
        // A `now` slightly behind the mark (another thread's clock) is still a duplicate.
        assert_eq!(
            seen.check_and_mark(&id(1), at(590)),
            DedupOutcome::Duplicate
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn expired_ids_are_evicted_not_kept() {
        let seen = MemoryDeduplicator::new(100, Duration::minutes(1));
        for n in 0..50 {
            seen.check_and_mark(&id(n), NOW);
        }
        assert_eq!(seen.len(), 50);
        seen.check_and_mark(&id(1000), NOW + Duration::minutes(2));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn capacity_bounds_memory_and_evicts_the_oldest() {
        let seen = MemoryDeduplicator::new(3, Duration::hours(1));
        for n in 0..3 {
            assert_eq!(seen.check_and_mark(&id(n), NOW), DedupOutcome::New);
        }
        assert_eq!(seen.check_and_mark(&id(3), NOW), DedupOutcome::New);
        assert_eq!(seen.len(), 3);
        // id 0 was the oldest and is forgotten; 1, 2, 3 are remembered.
        assert_eq!(seen.check_and_mark(&id(2), NOW), DedupOutcome::Duplicate);
        assert_eq!(seen.check_and_mark(&id(3), NOW), DedupOutcome::Duplicate);
        assert_eq!(seen.check_and_mark(&id(0), NOW), DedupOutcome::New);
        assert_eq!(seen.check_and_mark(&id(2), NOW), DedupOutcome::Duplicate);
        // A flood of new ids never grows the table or its queue past the capacity.
        for n in 100..10_000 {
            seen.check_and_mark(&id(n), NOW);
            let table = seen.lock();
            assert!(table.order.len() <= 3 && table.marks.len() <= 3);
        }
    }

    #[test]
    fn forget_makes_the_next_delivery_new() {
        let seen = MemoryDeduplicator::new(2, Duration::hours(1));
        assert_eq!(seen.check_and_mark(&id(1), NOW), DedupOutcome::New);
        seen.forget(&id(1));
        assert!(seen.is_empty());
        assert_eq!(seen.check_and_mark(&id(1), NOW), DedupOutcome::New);
        assert_eq!(seen.check_and_mark(&id(1), NOW), DedupOutcome::Duplicate);
        // Repeated forget/mark cycles leave stale queue entries that still respect the bound.
        for _ in 0..100 {
            seen.forget(&id(1));
            seen.check_and_mark(&id(1), NOW);
            seen.check_and_mark(&id(2), NOW);
            assert!(seen.lock().order.len() <= 2);
        }
        assert_eq!(seen.check_and_mark(&id(1), NOW), DedupOutcome::Duplicate);
        // Forgetting an id that was never seen is harmless.
        seen.forget(&id(99));
    }

    #[test]
    fn concurrent_marks_let_exactly_one_through() {
        let seen = Arc::new(MemoryDeduplicator::new(1000, Duration::hours(1)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    (0..200)
                        .filter(|n| !seen.check_and_mark(&id(*n), NOW).is_duplicate())
                        .count()
                })
            })
            .collect();
        let new: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(new, 200);
    }

    #[test]
    fn trait_object_answers_like_the_inherent_methods() {
        let memory = Arc::new(MemoryDeduplicator::default());
        let dedup: Arc<dyn Deduplicator> = memory.clone();
        let poll = |fut: DedupFuture<'_, DedupOutcome>| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut fut = fut;
            match fut.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => result.unwrap(),
                std::task::Poll::Pending => panic!("memory deduplicator never waits"),
            }
        };
        assert_eq!(poll(dedup.check_and_mark(&id(1), NOW)), DedupOutcome::New);
        assert_eq!(
            poll(dedup.check_and_mark(&id(1), NOW)),
            DedupOutcome::Duplicate
        );
        assert_eq!(memory.len(), 1);
        assert!(format!("{memory:?}").contains("len: 1"));
    }
}
