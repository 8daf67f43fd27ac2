//! The dispatcher: claims due deliveries, sends them, records what happened, and sleeps exactly
//! until the next one is due.
//!
//! This module owns the running loop of an emitter (DESIGN §5): batch claims, a global and a
//! per-endpoint concurrency limit, wake-ups on new work and at the next due time, and graceful
//! shutdown. It decides nothing about deliveries itself: the request comes from
//! [`build_request`], the outcome's meaning and the next attempt from the core via the store's
//! [`Store::record_attempt`], and the address policy is the HTTP client's. It reads the system
//! clock; the core never does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::{Duration, OffsetDateTime};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::store::{Claim, Recorded, Store, StoreError};
use crate::transport::HttpClient;
use crate::{
    AttemptOutcome, AttemptToSend, Endpoint, EndpointId, SerializedEvent, TransportError,
    build_request,
};

/// How a [`Dispatcher`] runs.
///
/// # Default
/// Claims of 64 to 256 deliveries (see [`batch_size`](DispatcherConfig::batch_size)), 64 attempts
/// in flight at once, 8 per endpoint, a 5-minute lease,
/// a 5-second polling backstop, 60 seconds at most from a claim to its send, and 30 seconds
/// for in-flight attempts to finish at shutdown.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Most deliveries claimed at once. Claims start at `max_in_flight` (or this, if smaller)
    /// and grow up to it while the attempts drain the dispatcher's queue faster than claims
    /// refill it; they shrink again when claims wait in the queue.
    pub batch_size: usize,
    /// Most attempts in flight at once, across all endpoints.
    pub max_in_flight: usize,
    /// Most attempts in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// How long a claim is leased. Must exceed the HTTP client's total timeout plus
    /// `max_endpoint_wait`, or slow attempts are reclaimed and sent twice.
    pub lease: Duration,
    /// The longest the dispatcher sleeps without checking the store, in case a notification was
    /// missed (another process emitted on a store without notifications).
    pub poll_interval: Duration,
    /// The longest a claimed delivery waits to be sent, counted from its claim (queued behind
    /// other attempts, then for its endpoint's slot), before it is given back unsent to be
    /// claimed again; at least a second.
    pub max_endpoint_wait: Duration,
    /// How long in-flight attempts may take to finish after shutdown is requested; their outcomes
    /// then get as long again to be recorded (longer only if the store is failing).
    pub shutdown_grace: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            batch_size: 256,
            max_in_flight: 64,
            max_in_flight_per_endpoint: 8,
            lease: Duration::minutes(5),
            poll_interval: Duration::seconds(5),
            max_endpoint_wait: Duration::seconds(60),
            shutdown_grace: Duration::seconds(30),
        }
    }
}

impl DispatcherConfig {
    /// Sets the largest claim (at least 1; above 2²⁰, 2²⁰).
    ///
    /// A SQL store's cost per delivery falls steeply with the size of its claims and batches of
    /// outcomes, so when the store is what limits throughput (the endpoints answer faster than
    /// claims come back), the dispatcher doubles its claim after each full claim that follows
    /// another and finds its queue empty and workers waiting for work, up to this size. When the
    /// endpoints are what limits it (a claim comes back to find a claim's worth still queued, or
    /// a claim had to be given back unsent), it halves the claim again, down to `max_in_flight`.
    /// Claims queued or in flight stay within `max_in_flight` plus twice the current claim size,
    /// so claims a dispatcher has leased but cannot send soon are not kept from other
    /// dispatchers: with slow endpoints, no more than fixed claims of `max_in_flight` would.
    /// Each change of size is logged at `debug` level (`claim size changed`).
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> DispatcherConfig {
        self.batch_size = n.max(1);
        self
    }

    /// Sets the global concurrency limit (at least 1).
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> DispatcherConfig {
        self.max_in_flight = n.max(1);
        self
    }

    /// Sets the per-endpoint concurrency limit (at least 1).
    #[must_use]
    pub fn max_in_flight_per_endpoint(mut self, n: usize) -> DispatcherConfig {
        self.max_in_flight_per_endpoint = n.max(1);
        self
    }

    /// Sets the lease duration.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> DispatcherConfig {
        self.lease = lease;
        self
    }

    /// Sets the polling backstop.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> DispatcherConfig {
        self.poll_interval = interval;
        self
    }

    /// Sets the shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> DispatcherConfig {
        self.shutdown_grace = grace;
        self
    }
}

/// Delivers what a [`Store`] holds through an [`HttpClient`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use nopos_webhooks::dispatcher::Dispatcher;
/// use nopos_webhooks::reqwest::ReqwestClient;
/// use nopos_webhooks::store::{StoreConfig, memory::MemoryStore};
///
/// let store = Arc::new(MemoryStore::new(StoreConfig::default()));
/// let dispatcher = Dispatcher::new(store, ReqwestClient::new()?);
/// dispatcher.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Dispatcher<S, C> {
    shared: Arc<Shared<S, C>>,
}

impl<S, C> Clone for Dispatcher<S, C> {
    fn clone(&self) -> Dispatcher<S, C> {
        Dispatcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared<S, C> {
    store: Arc<S>,
    client: C,
    config: DispatcherConfig,
    /// Claims queued or in flight: `max_in_flight` plus two of the largest claims, so that one
    /// full claim can be made while the previous one still feeds the workers. Claims smaller
    /// than the largest use part of it (see `claim_into`).
    held: Arc<Semaphore>,
    held_total: usize,
    /// Outcomes waiting to be recorded, as many as `held`. They have a count of their own: in
    /// `held`, a batch being recorded kept the next claim waiting, and the store sat idle between
    /// recording a batch and claiming the next. When the store cannot record (an outage), this
    /// fills up, the workers stop taking claims, and so the claimer stops too.
    unrecorded: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<EndpointId, Arc<Semaphore>>>,
    /// Signalled after each recorded outcome: a retry may now be due sooner than the claimer's
    /// sleep, which was computed while the attempt was still in flight.
    recorded: Notify,
    /// Set when a claim is given back for waiting too long to be sent: the claims are too large
    /// for the endpoints' pace.
    gave_back: AtomicBool,
    /// Workers waiting for a claim: sends are outpacing claims.
    idle_workers: AtomicUsize,
}

/// The size of the next claim, between `max_in_flight` (or `batch_size`, if smaller) and
/// `batch_size` (see [`DispatcherConfig::batch_size`] for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClaimSize {
    current: usize,
    least: usize,
    most: usize,
    /// The last claim was full: the dispatcher is working through a backlog.
    backlog: bool,
}

impl ClaimSize {
    /// The largest claim whatever the setting: a million deliveries is far past any use, and
    /// the counts derived from the size stay well within what a semaphore holds.
    const MOST: usize = 1 << 20;

    fn new(config: &DispatcherConfig) -> ClaimSize {
        let most = config.batch_size.clamp(1, ClaimSize::MOST);
        let least = config.max_in_flight.clamp(1, most);
        ClaimSize {
            current: least,
            least,
            most,
            backlog: false,
        }
    }

    /// Whether a claim of the current size fits in the held count, with `free` of `held_total`
    /// places free: the claim's size, or how many places must be free before it fits. The
    /// held count has room for `max_in_flight` plus two of the largest claims; a smaller
    /// current size leaves the difference unused, so that fewer claims wait in the queue.
    fn fits(&self, held_total: usize, free: usize, max_in_flight: usize) -> Result<usize, usize> {
        let unused =
            held_total.saturating_sub(max_in_flight.saturating_add(self.current.saturating_mul(2)));
        if free.saturating_sub(unused) >= self.current {
            Ok(self.current)
        } else {
            Err(unused + self.current)
        }
    }

    /// Adapts to what a claim found when it came back: whether it was `full`, `queued` claims
    /// still waiting for a worker, `idle_workers` waiting for a claim, and whether a claim was
    /// given back unsent since the last full claim. Only full claims change the size.
    fn adapt(&mut self, full: bool, queued: usize, idle_workers: usize, gave_back: bool) {
        let backlog = std::mem::replace(&mut self.backlog, full);
        if !full {
            return;
        }
        if gave_back || queued >= self.current {
            // The endpoints are the bottleneck: larger claims would only wait longer.
            self.current = (self.current / 2).max(self.least);
        } else if backlog && queued == 0 && idle_workers > 0 {
            // The workers ran out of claims while this one was made: the store is the
            // bottleneck, and its cost per delivery falls with the claim's size. An empty queue
            // alone says nothing (every worker may be busy with a slow endpoint), and neither
            // does the first full claim after a quiet spell, which idle workers always await.
            self.current = self.current.saturating_mul(2).min(self.most);
        }
    }
}

/// A claim waiting for a worker, with its place in the held count.
type Queued = (Claim, OwnedSemaphorePermit);
/// A sent attempt waiting to be recorded, with its place in the unrecorded count.
type Sent = (Claim, AttemptOutcome, OwnedSemaphorePermit);

/// Most outcomes written in one `record_attempts` call.
const MAX_RECORD_BATCH: usize = 256;
/// The pause after a failed claim or `record_attempts` call, doubled after each further failure
/// in a row up to [`RETRY_MAX_PAUSE`].
const RETRY_FIRST_PAUSE: Duration = Duration::milliseconds(50);
/// The longest pause between tries to claim, or to record a batch of outcomes.
const RETRY_MAX_PAUSE: Duration = Duration::seconds(5);

/// The pause after `pause` when the next try fails too.
fn longer_pause(pause: Duration) -> Duration {
    pause.saturating_mul(2).min(RETRY_MAX_PAUSE)
}

/// What the claiming loop should do next.
enum Next {
    /// The claim was full: more may be due right now.
    ClaimAgain,
    /// Everything due is claimed: sleep until the next due time or new work.
    Sleep,
    /// The claim failed: pause before the next.
    Retry,
    /// Too few claims may be held to be worth claiming: wait until this many are free (sleeping
    /// on the due time here would spin, since the backlog is already due).
    WaitForSlot(u32),
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn std_duration(d: Duration) -> std::time::Duration {
    d.try_into().unwrap_or_default()
}

impl<S: Store + 'static, C: HttpClient> Dispatcher<S, C> {
    /// A dispatcher with the default configuration.
    pub fn new(store: Arc<S>, client: C) -> Dispatcher<S, C> {
        Dispatcher::with_config(store, client, DispatcherConfig::default())
    }

    /// A dispatcher with `config`.
    pub fn with_config(store: Arc<S>, client: C, config: DispatcherConfig) -> Dispatcher<S, C> {
        // Saturating, and within what a semaphore counts: a huge setting must not panic.
        let held_total = config
            .max_in_flight
            .saturating_add(ClaimSize::new(&config).most * 2)
            .min(Semaphore::MAX_PERMITS);
        Dispatcher {
            shared: Arc::new(Shared {
                store,
                client,
                held: Arc::new(Semaphore::new(held_total)),
                held_total,
                unrecorded: Arc::new(Semaphore::new(held_total)),
                config,
                per_endpoint: Mutex::new(HashMap::new()),
                recorded: Notify::new(),
                gave_back: AtomicBool::new(false),
                idle_workers: AtomicUsize::new(0),
            }),
        }
    }

    /// The store it delivers from.
    pub fn store(&self) -> &Arc<S> {
        &self.shared.store
    }

    /// Runs until `shutdown` resolves, then lets in-flight attempts finish (up to the grace
    /// period; claims not yet sent are given back) and returns.
    ///
    /// One task claims in batches and keeps a short queue of claims ready; `max_in_flight` worker
    /// tasks take claims from it and send them; one more records their outcomes in batches.
    /// Store errors are logged and retried after a pause; the loop does not exit on them. A
    /// failed claim is tried again after a pause that grows from 50 ms to 5 s while claims keep
    /// failing. A batch of outcomes the database fails to take ([`StoreError::Backend`]) is tried
    /// again, with pauses growing the same way, for as long as its claims' leases last, so a
    /// database failover costs neither the outcomes nor second sends; after any other error, each
    /// outcome of the batch is tried alone, so that one bad row does not cost the others. At
    /// shutdown, the outcomes of the last attempts get the grace period again to be recorded; any
    /// still unrecorded are left to their leases.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for unrecoverable errors.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (queue_tx, queue_rx) = mpsc::channel(self.shared.held.available_permits().max(1));
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        // Outcomes go to one recorder, which writes whatever has accumulated in one call (group
        // commit): the SQL stores then flush once per batch instead of once per delivery.
        let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().recorder(outcome_rx));
        let mut workers = JoinSet::new();
        for _ in 0..self.shared.config.max_in_flight {
            let worker =
                self.clone()
                    .worker(Arc::clone(&queue_rx), outcome_tx.clone(), stop_rx.clone());
            workers.spawn(worker);
        }
        drop(outcome_tx);
        tokio::pin!(shutdown);
        let mut size = ClaimSize::new(&self.shared.config);
        let mut retry_pause = RETRY_FIRST_PAUSE;
        'claiming: loop {
            let next = match self.claim_into(&queue_tx, &mut size).await {
                Ok(next) => {
                    retry_pause = RETRY_FIRST_PAUSE;
                    next
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?retry_pause, "claiming deliveries failed");
                    Next::Retry
                }
            };
            match next {
                Next::ClaimAgain => {}
                // Sleeping until the next due time would not do: with deliveries due, a claim
                // that fails every time (a row that no longer decodes, say) was retried at once,
                // in a loop.
                Next::Retry => {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(std_duration(retry_pause)) => {}
                    }
                    retry_pause = longer_pause(retry_pause);
                }
                Next::WaitForSlot(n) => {
                    tokio::select! {
                        () = &mut shutdown => break,
                        permits = self.shared.held.acquire_many(n) => drop(permits),
                    }
                }
                Next::Sleep => loop {
                    let sleep_for = self.next_deadline().await;
                    // Shutdown first: with something due that the claims do not take (rows
                    // another dispatcher holds, say), the sleep is zero every time round.
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break 'claiming,
                        () = tokio::time::sleep(sleep_for) => break,
                        () = self.shared.store.wait_for_work() => break,
                        // A recorded outcome may have scheduled a retry sooner than the sleep:
                        // look again, with a read. Claiming instead took a write (SQLite's one
                        // write lock) per batch of outcomes, nearly always for nothing.
                        () = self.shared.recorded.notified() => {}
                    }
                },
            }
        }
        // Workers give back queued claims instead of sending them, then stop when the queue is
        // empty; attempts already on the wire finish.
        let _ = stop_tx.send(true);
        drop(queue_tx);
        let grace = std_duration(self.shared.config.shutdown_grace);
        let drained = tokio::time::timeout(grace, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Attempts still running past the grace period are abandoned; their leases expire
            // and the store settles them as lost attempts.
            tracing::warn!(remaining = workers.len(), "shutdown grace period over");
            workers.abort_all();
        }
        // With every worker gone, the recorder writes what is left and stops. It keeps retrying
        // through a store outage (see `record`), which must not hold up shutdown past the grace.
        let abort = recorder.abort_handle();
        if tokio::time::timeout(grace, recorder).await.is_err() {
            tracing::warn!(
                "shutdown grace period over with outcomes unrecorded; their leases will expire"
            );
            abort.abort();
        }
        Ok(())
    }

    async fn next_deadline(&self) -> std::time::Duration {
        let backstop = self.shared.config.poll_interval;
        let wait = match self.shared.store.next_wakeup().await {
            Ok(Some(at)) => (at - now()).clamp(Duration::ZERO, backstop),
            Ok(None) | Err(_) => backstop,
        };
        std_duration(wait)
    }

    /// Claims up to `size` deliveries, if there is room for them, and queues them for the
    /// workers.
    async fn claim_into(
        &self,
        queue: &mpsc::Sender<Queued>,
        size: &mut ClaimSize,
    ) -> Result<Next, StoreError> {
        let config = &self.shared.config;
        let free = self.shared.held.available_permits();
        // Claim whole batches when busy: waiting for a batch's worth of room costs nothing (the
        // queued batch still feeds the workers), and a SQL store's cost per delivery falls
        // steeply with the batch (rows that share pages and index pages are written once per
        // commit): SQLite claimed and recorded 32 at a time at about 80 µs per delivery, 128 at
        // a time at about 50 µs.
        let want = match size.fits(self.shared.held_total, free, config.max_in_flight) {
            Ok(want) => want,
            Err(wait_for) => {
                return Ok(Next::WaitForSlot(
                    u32::try_from(wait_for).unwrap_or(u32::MAX),
                ));
            }
        };
        let claims = self.shared.store.claim(now(), want, config.lease).await?;
        let full = claims.len() == want;
        // The give-back signal waits for a full claim: only those change the size.
        let gave_back = full && self.shared.gave_back.swap(false, Ordering::Relaxed);
        let before = size.current;
        size.adapt(
            full,
            queue.max_capacity() - queue.capacity(),
            self.shared.idle_workers.load(Ordering::Relaxed),
            gave_back,
        );
        if size.current != before {
            tracing::debug!(
                from = before,
                to = size.current,
                gave_back,
                "claim size changed"
            );
        }
        for claim in claims {
            let Ok(permit) = Arc::clone(&self.shared.held).try_acquire_owned() else {
                // Cannot happen (the permits were counted above), but never drop a claim.
                self.release(&claim).await;
                continue;
            };
            if let Err(mpsc::error::SendError((claim, _))) = queue.send((claim, permit)).await {
                self.release(&claim).await;
            }
        }
        Ok(if full { Next::ClaimAgain } else { Next::Sleep })
    }

    async fn worker(
        self,
        queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>,
        outcomes: mpsc::UnboundedSender<Sent>,
        stop: watch::Receiver<bool>,
    ) {
        loop {
            self.shared.idle_workers.fetch_add(1, Ordering::Relaxed);
            let next = queue.lock().await.recv().await;
            self.shared.idle_workers.fetch_sub(1, Ordering::Relaxed);
            let Some((claim, permit)) = next else {
                return;
            };
            if *stop.borrow() {
                self.release(&claim).await;
                continue;
            }
            let span = tracing::info_span!(
                "nopos_webhooks.attempt",
                delivery_id = %claim.attempt.delivery_id,
                event_id = %claim.attempt.event_id,
                endpoint_id = %claim.attempt.endpoint_id,
                attempt = claim.attempt.attempt,
            );
            if let Some(outcome) = self.attempt(&claim, stop.clone()).instrument(span).await {
                // The claim's place in the held count is given up only once the outcome has one
                // among those waiting to be recorded: while the store cannot record, the workers
                // wait here instead of taking more claims.
                if let Ok(recording) = Arc::clone(&self.shared.unrecorded).acquire_owned().await {
                    let _ = outcomes.send((claim, outcome, recording));
                } else {
                    // Never closed; were it, the lease's expiry would settle the attempt.
                    tracing::error!("outcome not recorded: the dispatcher is shutting down");
                }
            }
            drop(permit);
        }
    }

    /// Records outcomes in batches of whatever arrived while the previous batch was written.
    async fn recorder(self, mut outcomes: mpsc::UnboundedReceiver<Sent>) {
        // One buffer for every batch: a sent attempt is a few hundred bytes, so a fresh vector
        // grown per batch meant a chain of large reallocations each time.
        let mut batch = Vec::new();
        while let Some(first) = outcomes.recv().await {
            batch.push(first);
            while batch.len() < MAX_RECORD_BATCH {
                match outcomes.try_recv() {
                    Ok(sent) => batch.push(sent),
                    Err(_) => break,
                }
            }
            self.record(&batch).await;
            // Releases the batch's places in the unrecorded count.
            batch.clear();
            self.shared.recorded.notify_one();
        }
    }

    async fn release(&self, claim: &Claim) {
        if let Err(err) = self.shared.store.release(claim, now()).await {
            tracing::warn!(error = %err, "giving back an unsent claim failed; its lease will expire");
        }
    }

    fn endpoint_slots(&self, id: &EndpointId) -> Arc<Semaphore> {
        let mut map = self
            .shared
            .per_endpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = self.shared.config.max_in_flight_per_endpoint;
        // Forget idle endpoints so the map does not grow with every endpoint ever seen.
        if map.len() > 1024 {
            map.retain(|_, slots| {
                Arc::strong_count(slots) > 1 || slots.available_permits() < limit
            });
        }
        // Looked up before `entry`, which would copy the id on every attempt.
        if let Some(slots) = map.get(id) {
            return Arc::clone(slots);
        }
        Arc::clone(
            map.entry(id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit))),
        )
    }

    /// Sends one claimed attempt once its endpoint has a free slot; `None` when it was given back
    /// unsent instead (not sent within `max_endpoint_wait` of its claim, or shutting down).
    async fn attempt(
        &self,
        claim: &Claim,
        mut stop: watch::Receiver<bool>,
    ) -> Option<AttemptOutcome> {
        let slots = self.endpoint_slots(&claim.endpoint.id);
        let wait = send_wait_left(&self.shared.config, claim, now());
        let slot = if wait.is_zero() {
            None
        } else {
            tokio::select! {
                slot = slots.acquire_owned() => slot.ok(),
                () = tokio::time::sleep(wait) => None,
                _ = stop.wait_for(|stopping| *stopping) => None,
            }
        };
        let Some(_slot) = slot else {
            // Not sent: give it back so it is claimed again (by us or another worker).
            if !*stop.borrow() {
                self.shared.gave_back.store(true, Ordering::Relaxed);
            }
            self.release(claim).await;
            return None;
        };
        Some(
            send_attempt(
                &self.shared.client,
                &claim.endpoint,
                &claim.attempt,
                &claim.event,
            )
            .await,
        )
    }

    async fn record(&self, batch: &[Sent]) {
        let items: Vec<(&Claim, &AttemptOutcome)> = batch
            .iter()
            .map(|(claim, outcome, _)| (claim, outcome))
            .collect();
        // A store outage (a database failover takes seconds to minutes) must not cost the
        // outcomes: given up, each attempt would be settled as lost when its lease ran out, and
        // sent again. So a database error is retried while every claim in the batch is still
        // leased; meanwhile the outcomes waiting to be recorded fill their count and stop the
        // workers, and then the claimer, so nothing new goes out. Past a lease, another
        // dispatcher may take the delivery over, and the store would refuse the outcome anyway.
        let lease_ends = batch.iter().map(|(claim, _, _)| claim.lease_until).min();
        let mut pause = RETRY_FIRST_PAUSE;
        loop {
            let err = match self.shared.store.record_attempts(&items, now()).await {
                Ok(results) => {
                    log_recorded(&items, results);
                    return;
                }
                Err(err) => err,
            };
            if matches!(err, StoreError::Backend(_)) {
                if lease_ends.is_some_and(|end| now() + pause < end) {
                    tracing::warn!(
                        error = %err,
                        outcomes = items.len(),
                        retry_in = ?pause,
                        "recording outcomes failed"
                    );
                    tokio::time::sleep(std_duration(pause)).await;
                    pause = longer_pause(pause);
                    continue;
                }
                tracing::error!(
                    error = %err,
                    outcomes = items.len(),
                    "recording outcomes failed until their leases ran out; the attempts will be \
                     settled as lost and made again"
                );
                return;
            }
            // Anything else is about the data (a row that no longer decodes, a delivery gone):
            // one outcome must not take the rest of its batch with it, so each is tried alone.
            tracing::error!(
                error = %err,
                outcomes = items.len(),
                "recording a batch of outcomes failed; recording them one by one"
            );
            for &item in &items {
                match self.shared.store.record_attempts(&[item], now()).await {
                    Ok(results) => log_recorded(&[item], results),
                    Err(err) => tracing::error!(
                        delivery_id = %item.0.attempt.delivery_id,
                        error = %err,
                        "outcome not recorded; the attempt will be settled as lost when its \
                         lease runs out, and made again"
                    ),
                }
            }
            return;
        }
    }
}

/// How much longer a claim may wait before it is sent, at `now`: `max_endpoint_wait` (at least
/// a second) counted from the claim, not from when a worker took it off the queue. The lease is
/// sized for that wait plus the request (`DispatcherConfig::lease`), so time spent queued behind
/// slow attempts runs it down too; a claim sent later could outlive its lease and be sent twice.
/// The floor keeps a zero setting from giving back every claim it makes.
fn send_wait_left(
    config: &DispatcherConfig,
    claim: &Claim,
    now: OffsetDateTime,
) -> std::time::Duration {
    let claimed_at = claim.lease_until - config.lease;
    let allowed = config.max_endpoint_wait.max(Duration::SECOND);
    std_duration(claimed_at + allowed - now)
}

/// Logs what the store made of each outcome.
fn log_recorded(items: &[(&Claim, &AttemptOutcome)], results: Vec<Result<Recorded, StoreError>>) {
    for ((claim, outcome), result) in items.iter().zip(results) {
        match result {
            Ok(recorded) => {
                tracing::debug!(
                    delivery_id = %claim.attempt.delivery_id,
                    status = recorded.state.status.as_str(),
                    class = ?outcome.class(),
                    "attempt recorded"
                );
                if let Some(reason) = recorded.endpoint_disabled {
                    tracing::warn!(endpoint_id = %claim.endpoint.id, ?reason, "endpoint disabled");
                }
            }
            Err(err) => tracing::warn!(
                delivery_id = %claim.attempt.delivery_id,
                error = %err,
                "outcome not recorded"
            ),
        }
    }
}

/// Sends one attempt and classifies what happened, without touching a store (the dispatcher's
/// attempts, and one-off test deliveries). Signing and the request's shape come from
/// [`build_request`]; the result's meaning from [`AttemptOutcome`].
pub async fn send_attempt<C: HttpClient>(
    client: &C,
    endpoint: &Endpoint,
    attempt: &AttemptToSend,
    event: &SerializedEvent,
) -> AttemptOutcome {
    let started_at = attempt.started_at;
    let request = match build_request(endpoint, attempt, event) {
        Ok(request) => request,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the request");
            return AttemptOutcome::transport_failure(
                started_at,
                Duration::ZERO,
                TransportError::Other,
            );
        }
    };
    let clock = Instant::now();
    let result = client.send(request).await;
    let latency = Duration::try_from(clock.elapsed()).unwrap_or(Duration::MAX);
    match result {
        Ok(response) => AttemptOutcome::from_parts(
            started_at,
            latency,
            response.status,
            &response.headers,
            &response.body,
        ),
        Err(error) => AttemptOutcome::transport_failure(started_at, latency, error),
    }
}

#[cfg(test)]
mod claim_size_tests {
    use super::{ClaimSize, DispatcherConfig};

    #[test]
    fn claims_grow_while_the_queue_runs_dry_and_shrink_when_it_backs_up() {
        let config = DispatcherConfig::default()
            .max_in_flight(32)
            .batch_size(256);
        let mut size = ClaimSize::new(&config);
        assert_eq!(size.current, 32);
        // The first full claim after a quiet spell finds idle workers whatever the endpoints'
        // pace: keep the size.
        size.adapt(true, 0, 32, false);
        assert_eq!(size.current, 32);
        // An empty queue with every worker busy (slow endpoints): keep the size.
        size.adapt(true, 0, 0, false);
        assert_eq!(size.current, 32);
        // The workers emptied the queue and waited during each claim: double, up to the largest.
        for expected in [64, 128, 256, 256] {
            size.adapt(true, 0, 3, false);
            assert_eq!(size.current, expected);
        }
        // Some claims left, fewer than a claim's worth: keep the size.
        size.adapt(true, 100, 0, false);
        assert_eq!(size.current, 256);
        // A claim's worth still queued: halve.
        size.adapt(true, 256, 0, false);
        assert_eq!(size.current, 128);
        // A claim given back unsent halves it even when workers wait on an empty queue now.
        size.adapt(true, 0, 32, true);
        assert_eq!(size.current, 64);
        // Never below `max_in_flight`.
        for _ in 0..3 {
            size.adapt(true, 1_000, 0, true);
        }
        assert_eq!(size.current, 32);
        // A claim that is not full changes nothing but ends the backlog: the next full claim
        // keeps the size, the one after grows it.
        size.adapt(false, 0, 32, false);
        assert_eq!(size.current, 32);
        size.adapt(true, 0, 32, false);
        assert_eq!(size.current, 32);
        size.adapt(true, 0, 32, false);
        assert_eq!(size.current, 64);
    }

    #[test]
    fn the_held_count_follows_the_current_size() {
        let config = DispatcherConfig::default()
            .max_in_flight(32)
            .batch_size(256);
        let mut size = ClaimSize::new(&config);
        // 32 in flight plus two claims of 256 at most.
        let total = 32 + 2 * 256;
        // At 32, only 32 + 2 * 32 = 96 may be held: 448 places stay unused.
        assert_eq!(size.fits(total, total, 32), Ok(32));
        assert_eq!(size.fits(total, total - 64, 32), Ok(32));
        assert_eq!(size.fits(total, total - 65, 32), Err(448 + 32));
        for _ in 0..4 {
            size.adapt(true, 0, 1, false);
        }
        assert_eq!(size.current, 256);
        assert_eq!(size.fits(total, 256, 32), Ok(256));
        assert_eq!(size.fits(total, 255, 32), Err(256));
    }

    #[test]
    fn a_huge_largest_claim_is_capped() {
        let config = DispatcherConfig::default().batch_size(usize::MAX);
        let size = ClaimSize::new(&config);
        assert_eq!((size.least, size.most), (64, 1 << 20));
        // The held count it implies fits a semaphore, with room to spare.
        let total = config.max_in_flight + 2 * size.most;
        assert_eq!(size.fits(total, total, config.max_in_flight), Ok(64));
    }

    #[test]
    fn a_largest_claim_below_max_in_flight_is_the_only_size() {
        let config = DispatcherConfig::default().max_in_flight(64).batch_size(16);
        let mut size = ClaimSize::new(&config);
        assert_eq!(size.current, 16);
        size.adapt(true, 0, 64, false);
        size.adapt(true, 0, 64, false);
        assert_eq!(size.current, 16);
        size.adapt(true, 100, 0, true);
        assert_eq!(size.current, 16);
    }
}

#[cfg(all(test, feature = "sqlite", feature = "reqwest"))]
mod tests {
    use std::fmt;

    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::reqwest::ReqwestClient;
    use crate::store::StoreConfig;
    use crate::store::sqlite::SqliteStore;
    use crate::{
        DeliveryStatus, Envelope, Event, EventFilter, EventId, EventType, Secret, SecretSet,
    };

    /// An endpoint for every event, and `count` sales emitted at `now`.
    async fn emit_sales(store: &impl Store, now: OffsetDateTime, count: usize) {
        let endpoint = Endpoint::new(
            EndpointId::generate(now),
            crate::EndpointUrl::parse("https://hooks.example.com/nopos").unwrap(),
            EventFilter::parse(["*"]).unwrap(),
            SecretSet::new(Secret::generate()),
            now,
        );
        store.create_endpoint(&endpoint).await.unwrap();
        for _ in 0..count {
            let envelope = Envelope::new(
                EventId::generate(now),
                now,
                Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap(),
            );
            let event = SerializedEvent::from_envelope(&envelope).unwrap();
            store.emit(&event, now).await.unwrap();
        }
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn the_wait_before_sending_counts_from_the_claim() {
        let store = crate::store::memory::MemoryStore::new(StoreConfig::default());
        let now = now();
        emit_sales(&store, now, 1).await;
        let mut config = DispatcherConfig::default();
        let claim = store
            .claim(now, 1, config.lease)
            .await
            .unwrap()
            .pop()
            .unwrap();
        let secs = std::time::Duration::from_secs;
        // The default minute, run down by time spent in the dispatcher's queue.
        assert_eq!(send_wait_left(&config, &claim, now), secs(60));
        assert_eq!(
            send_wait_left(&config, &claim, now + Duration::seconds(45)),
            secs(15)
        );
        assert_eq!(
            send_wait_left(&config, &claim, now + Duration::seconds(60)),
            secs(0)
        );
        assert_eq!(
            send_wait_left(&config, &claim, now + Duration::minutes(4)),
            secs(0)
        );
        // A zero setting still lets a fresh claim through.
        config.max_endpoint_wait = Duration::ZERO;
        assert_eq!(send_wait_left(&config, &claim, now), secs(1));
    }

    /// Counts the warnings that a claim failed.
    struct ClaimFailures {
        count: AtomicUsize,
        reached: Notify,
    }

    impl tracing::Subscriber for ClaimFailures {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            if message.0 == "claiming deliveries failed" {
                self.count.fetch_add(1, Ordering::SeqCst);
                self.reached.notify_one();
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn a_claim_that_keeps_failing_is_retried_after_growing_pauses() {
        let failures = Arc::new(ClaimFailures {
            count: AtomicUsize::new(0),
            reached: Notify::new(),
        });
        let _log = tracing::subscriber::set_default(Arc::clone(&failures));
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path().join("claim.db"), StoreConfig::default())
                .await
                .unwrap(),
        );
        let now = now();
        emit_sales(&*store, now, 1).await;
        // A due row that no longer decodes: every claim fails, and the delivery stays due.
        sqlx::query("UPDATE nopos_deliveries SET state = '{\"status\":\"launched\"}'")
            .execute(store.pool())
            .await
            .unwrap();

        let dispatcher = Dispatcher::new(Arc::clone(&store), ReqwestClient::new().unwrap());
        let started = Instant::now();
        let third_failure = async {
            while failures.count.load(Ordering::SeqCst) < 3 {
                failures.reached.notified().await;
            }
        };
        // The claimer used to retry at once, in a loop that also kept it from seeing shutdown.
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            dispatcher.run(third_failure),
        )
        .await
        .expect("the dispatcher stops")
        .unwrap();
        // Pauses of 50 and 100 ms came between the three failures.
        assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    }

    #[tokio::test]
    async fn shutdown_is_seen_while_a_due_row_cannot_be_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path().join("due.db"), StoreConfig::default())
                .await
                .unwrap(),
        );
        emit_sales(&*store, now(), 1).await;
        // Due by the store's queue column, but not by its state: claims pass it over, and the
        // next due time stays "now", so the claimer never sleeps.
        let state: String = sqlx::query_scalar("SELECT state FROM nopos_deliveries")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
        state["next_attempt_at"] = "2999-01-01T00:00:00Z".into();
        sqlx::query("UPDATE nopos_deliveries SET state = ?")
            .bind(state.to_string())
            .execute(store.pool())
            .await
            .unwrap();

        let dispatcher = Dispatcher::new(Arc::clone(&store), ReqwestClient::new().unwrap());
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            dispatcher.run(std::future::ready(())),
        )
        .await
        .expect("the dispatcher stops")
        .unwrap();
    }

    #[tokio::test]
    async fn one_bad_row_does_not_cost_the_rest_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open(dir.path().join("record.db"), StoreConfig::default())
                .await
                .unwrap(),
        );
        let now = now();
        emit_sales(&*store, now, 2).await;
        let claims = store.claim(now, 10, Duration::minutes(5)).await.unwrap();
        assert_eq!(claims.len(), 2);
        // One row stops decoding while its attempt is on the wire.
        let (bad, good) = (
            claims[0].attempt.delivery_id.clone(),
            claims[1].attempt.delivery_id.clone(),
        );
        sqlx::query("UPDATE nopos_deliveries SET state = '{\"status\":\"launched\"}' WHERE id = ?")
            .bind(bad.as_str())
            .execute(store.pool())
            .await
            .unwrap();

        let dispatcher = Dispatcher::new(Arc::clone(&store), ReqwestClient::new().unwrap());
        let held = Arc::new(Semaphore::new(claims.len()));
        let batch: Vec<Sent> = claims
            .into_iter()
            .map(|claim| {
                let outcome = AttemptOutcome::from_parts(
                    now,
                    Duration::milliseconds(5),
                    StatusCode::OK,
                    &HeaderMap::new(),
                    b"",
                );
                (
                    claim,
                    outcome,
                    Arc::clone(&held).try_acquire_owned().unwrap(),
                )
            })
            .collect();
        dispatcher.record(&batch).await;

        let good = store.get_delivery(&good).await.unwrap();
        assert_eq!(good.status, DeliveryStatus::Delivered);
        assert!(matches!(
            store.get_delivery(&bad).await,
            Err(StoreError::Corrupt { .. })
        ));
    }
}
