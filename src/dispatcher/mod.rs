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
use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::{Duration, OffsetDateTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::store::{Claim, Store, StoreError};
use crate::transport::HttpClient;
use crate::{
    AttemptOutcome, AttemptToSend, Endpoint, EndpointId, SerializedEvent, TransportError,
    build_request,
};

/// How a [`Dispatcher`] runs.
///
/// # Default
/// Claims of up to 64 deliveries, 64 attempts in flight at once, 8 per endpoint, a 5-minute lease,
/// a 5-second polling backstop, 60 seconds at most waiting for an endpoint's slot, and 30 seconds
/// for in-flight attempts to finish at shutdown.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Most deliveries claimed at once.
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
    /// The longest a claimed delivery waits for its endpoint's slot before it is given back.
    pub max_endpoint_wait: Duration,
    /// How long in-flight attempts may take to finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            batch_size: 64,
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
    /// Sets the claim batch size (at least 1).
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
    global: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<EndpointId, Arc<Semaphore>>>,
}

/// What one loop iteration should do next.
enum Next {
    ClaimAgain,
    Sleep,
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
        Dispatcher {
            shared: Arc::new(Shared {
                store,
                client,
                global: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
                per_endpoint: Mutex::new(HashMap::new()),
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
    /// Store errors are logged and retried after a pause; the loop does not exit on them.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for unrecoverable errors.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), StoreError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            let next = match self.claim_and_spawn(&mut tasks, &stop_rx).await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(error = %err, "claiming deliveries failed; retrying");
                    Next::Sleep
                }
            };
            if matches!(next, Next::ClaimAgain) {
                continue;
            }
            let sleep_until = self.next_deadline().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = self.shared.store.wait_for_work() => {}
                () = tokio::time::sleep(sleep_until) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let grace = std_duration(self.shared.config.shutdown_grace);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            // Attempts still running past the grace period are abandoned; their leases expire
            // and the store settles them as lost attempts.
            tracing::warn!(remaining = tasks.len(), "shutdown grace period over");
            tasks.abort_all();
        }
        Ok(())
    }

    /// Claims and starts everything due now, once, and waits for those attempts to be recorded.
    /// Returns how many were attempted. For tests and for callers with their own loop.
    ///
    /// # Errors
    /// A store error from claiming.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut total = 0;
        loop {
            let before = tasks.len();
            let next = self.claim_and_spawn(&mut tasks, &stop_rx).await?;
            total += tasks.len() - before;
            while tasks.join_next().await.is_some() {}
            if matches!(next, Next::Sleep) {
                return Ok(total);
            }
        }
    }

    async fn next_deadline(&self) -> std::time::Duration {
        let backstop = self.shared.config.poll_interval;
        let wait = match self.shared.store.next_wakeup().await {
            Ok(Some(at)) => (at - now()).clamp(Duration::ZERO, backstop),
            Ok(None) | Err(_) => backstop,
        };
        std_duration(wait)
    }

    async fn claim_and_spawn(
        &self,
        tasks: &mut JoinSet<()>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Next, StoreError> {
        let available = self.shared.global.available_permits();
        if available == 0 {
            return Ok(Next::Sleep);
        }
        let want = available.min(self.shared.config.batch_size);
        let claims = self
            .shared
            .store
            .claim(now(), want, self.shared.config.lease)
            .await?;
        let full = claims.len() == want;
        for claim in claims {
            let Ok(permit) = Arc::clone(&self.shared.global).try_acquire_owned() else {
                // Cannot happen (the permits were counted above), but never drop a claim.
                let _ = self.shared.store.release(&claim, now()).await;
                continue;
            };
            let this = self.clone();
            let stop = stop.clone();
            let span = tracing::info_span!(
                "nopos_webhooks.attempt",
                delivery_id = %claim.attempt.delivery_id,
                event_id = %claim.attempt.event_id,
                endpoint_id = %claim.attempt.endpoint_id,
                attempt = claim.attempt.attempt,
            );
            tasks.spawn(this.attempt(claim, permit, stop).instrument(span));
        }
        Ok(if full { Next::ClaimAgain } else { Next::Sleep })
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
        Arc::clone(
            map.entry(id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit))),
        )
    }

    async fn attempt(
        self,
        claim: Claim,
        _global: OwnedSemaphorePermit,
        mut stop: watch::Receiver<bool>,
    ) {
        let slots = self.endpoint_slots(&claim.endpoint.id);
        let wait = std_duration(self.shared.config.max_endpoint_wait);
        let slot = tokio::select! {
            slot = slots.acquire_owned() => slot.ok(),
            () = tokio::time::sleep(wait) => None,
            _ = stop.wait_for(|stopping| *stopping) => None,
        };
        let Some(_slot) = slot else {
            // Not sent: give it back so it is claimed again (by us or another worker).
            if let Err(err) = self.shared.store.release(&claim, now()).await {
                tracing::warn!(error = %err, "releasing an unsent claim failed");
            }
            return;
        };
        let outcome = send_attempt(
            &self.shared.client,
            &claim.endpoint,
            &claim.attempt,
            &claim.event,
        )
        .await;
        self.record(&claim, &outcome).await;
    }

    async fn record(&self, claim: &Claim, outcome: &AttemptOutcome) {
        // A transient database error must not lose the outcome: retry a few times before leaving
        // it to the lease (the attempt is then settled as lost and retried).
        for pause_ms in [0, 100, 500, 2_000] {
            if pause_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            }
            match self
                .shared
                .store
                .record_attempt(claim, outcome, now())
                .await
            {
                Ok(recorded) => {
                    tracing::debug!(
                        status = recorded.state.status.as_str(),
                        class = ?outcome.class(),
                        "attempt recorded"
                    );
                    if let Some(reason) = recorded.endpoint_disabled {
                        tracing::warn!(endpoint_id = %claim.endpoint.id, ?reason, "endpoint disabled");
                    }
                    return;
                }
                Err(StoreError::LeaseLost(_)) => {
                    tracing::warn!("lease lost before the outcome was recorded");
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "recording the outcome failed"),
            }
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
