//! Delivery throughput against a loopback receiver: the dispatcher on each store, compared in the
//! same run with a bare reqwest loop posting the same pre-built requests (the HTTP floor).
//!
//! ```text
//! cargo bench --bench dispatch --all-features                 # throughput table
//! cargo bench --bench dispatch --all-features -- drain 100000 # backlog drain, peak RSS
//! ```
//!
//! The dispatcher's claims adapt up to its default largest claim; `NOPOS_BENCH_BATCH=64` (say)
//! caps them at that size instead, to measure what the claim size is worth. Each measurement
//! delivers 2,000 events; `NOPOS_BENCH_EVENTS=10000` (say) delivers that many instead, where
//! the dispatcher's start and its last outcomes weigh less.
//!
//! Every variant runs at the same concurrency against the same receiver; each is measured
//! `ROUNDS` times and the median is reported with its ratio to the floor's median. PostgreSQL runs
//! when `NOPOS_WEBHOOKS_TEST_POSTGRES` is set; `--all-features` includes `postgres-tls`, so give
//! a loopback server's URL `?sslmode=disable` (the `PostgresStore` docs say why).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use nopos_webhooks::dispatcher::{Dispatcher, DispatcherConfig};
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::store::memory::MemoryStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{
    AddressPolicy, AttemptToSend, DeliveryId, Endpoint, EndpointId, EndpointUrl, Envelope, Event,
    EventFilter, EventId, EventType, Secret, SecretSet, SerializedEvent, build_request,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

const CONCURRENCY: usize = 32;
/// Deliveries per measurement, unless `NOPOS_BENCH_EVENTS` says otherwise.
const EVENTS: usize = 2_000;
const ROUNDS: usize = 5;

/// A receiver that answers 204 and counts, waking the benchmark when the target count is reached.
struct Receiver {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    target: Arc<AtomicUsize>,
    reached: Arc<Notify>,
}

impl Receiver {
    async fn start() -> Receiver {
        let count = Arc::new(AtomicUsize::new(0));
        let target = Arc::new(AtomicUsize::new(usize::MAX));
        let reached = Arc::new(Notify::new());
        let (c, t, r) = (
            Arc::clone(&count),
            Arc::clone(&target),
            Arc::clone(&reached),
        );
        let app = Router::new().route(
            "/hook",
            post(move |_body: Bytes| {
                let (c, t, r) = (Arc::clone(&c), Arc::clone(&t), Arc::clone(&r));
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) + 1 >= t.load(Ordering::SeqCst) {
                        r.notify_one();
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            count,
            target,
            reached,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Arms the counter for `n` more requests.
    fn expect(&self, n: usize) {
        self.count.store(0, Ordering::SeqCst);
        self.target.store(n, Ordering::SeqCst);
    }

    async fn wait(&self) {
        while self.count.load(Ordering::SeqCst) < self.target.load(Ordering::SeqCst) {
            let notified = self.reached.notified();
            if self.count.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                break;
            }
            let _ = tokio::time::timeout(StdDuration::from_millis(50), notified).await;
        }
    }
}

fn endpoint(url: &str) -> Endpoint {
    let now = OffsetDateTime::now_utc();
    Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse(url).unwrap(),
        EventFilter::parse(["*"]).unwrap(),
        SecretSet::new(Secret::generate()),
        now,
    )
}

fn event() -> SerializedEvent {
    let now = OffsetDateTime::now_utc();
    let envelope = Envelope::new(
        EventId::generate(now),
        now,
        Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap(),
    );
    SerializedEvent::from_envelope(&envelope).unwrap()
}

fn store_config() -> StoreConfig {
    StoreConfig::default().address_policy(AddressPolicy::new().dangerous_allow_private_targets())
}

fn client() -> ReqwestClient {
    ReqwestClient::builder()
        .dangerous_allow_private_targets()
        .build()
        .unwrap()
}

/// Deliveries per measurement: [`EVENTS`] unless `NOPOS_BENCH_EVENTS` says otherwise.
fn events() -> usize {
    std::env::var("NOPOS_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(EVENTS)
}

/// The largest claim: the default unless `NOPOS_BENCH_BATCH` says otherwise.
fn batch_size() -> usize {
    std::env::var("NOPOS_BENCH_BATCH")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DispatcherConfig::default().batch_size)
}

fn dispatcher_config() -> DispatcherConfig {
    DispatcherConfig::default()
        .batch_size(batch_size())
        .max_in_flight(CONCURRENCY)
        .max_in_flight_per_endpoint(CONCURRENCY)
}

/// The floor: the same signed requests, pre-built, posted by a bare reqwest client at the same
/// concurrency.
async fn floor(receiver: &Receiver, n: usize) -> StdDuration {
    let endpoint = endpoint(&receiver.url());
    let requests: Vec<reqwest::Request> = (0..n)
        .map(|_| {
            let event = event();
            let now = OffsetDateTime::now_utc();
            let attempt = AttemptToSend::new(
                DeliveryId::generate(now),
                event.id().clone(),
                endpoint.id.clone(),
                1,
                now,
            );
            let request = build_request(&endpoint, &attempt, &event).unwrap();
            reqwest::Request::try_from(request).unwrap()
        })
        .collect();
    // Configured as `ReqwestClient` configures it where that saves work: no retries, so reqwest
    // does not copy each request's headers in case it retries.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .build()
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(requests));
    receiver.expect(n);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, queue) = (client.clone(), Arc::clone(&queue));
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some(request) = next else { break };
                let response = client.execute(request).await.unwrap();
                let _ = response.bytes().await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    receiver.wait().await;
    start.elapsed()
}

/// The dispatcher draining `n` pre-emitted deliveries from `store`, until all are recorded.
async fn dispatch<S: Store + 'static>(receiver: &Receiver, store: Arc<S>, n: usize) -> StdDuration {
    store
        .create_endpoint(&endpoint(&receiver.url()))
        .await
        .unwrap();
    for _ in 0..n {
        store
            .emit(&event(), OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    receiver.expect(n);
    let dispatcher = Dispatcher::with_config(Arc::clone(&store), client(), dispatcher_config());
    let cpu_before = REPORT_CPU.load(Ordering::Relaxed).then(|| {
        // A cue for a profiler started from the outside (`perf record -a`), after the emits.
        eprintln!("dispatching {n} deliveries");
        cpu_ticks()
    });
    let start = Instant::now();
    // The real loop, stopped once the receiver has everything; graceful shutdown then waits for
    // the last outcomes to be recorded, so the time covers the whole job.
    dispatcher.run(receiver.wait()).await.unwrap();
    let elapsed = start.elapsed();
    if let Some((process, server)) = cpu_before {
        let (process_after, server_after) = cpu_ticks();
        // Clock ticks are 10 ms on Linux: per delivery in microseconds.
        #[allow(clippy::cast_precision_loss, reason = "figures for display")]
        let per = |ticks: u64| ticks as f64 * 10_000.0 / n as f64;
        println!(
            "CPU per delivery: this process {:.1} µs, PostgreSQL server processes {:.1} µs",
            per(process_after - process),
            per(server_after - server)
        );
    }
    elapsed
}

/// Set in profiling mode: `dispatch` then prints the CPU time it took.
static REPORT_CPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// CPU clock ticks (user and system) so far of this process and of every process named
/// `postgres` (a local server's backends), from `/proc`; zeros where that cannot be read.
fn cpu_ticks() -> (u64, u64) {
    fn ticks(stat: &str) -> Option<(String, u64)> {
        // `pid (comm) state …`: the command ends at the last `)`; utime and stime are the 12th
        // and 13th fields after it.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let mut fields = rest.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some((comm, user + system))
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .map_or(0, |(_, t)| t);
    let mut server = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some((comm, t)) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| ticks(&s))
            && comm == "postgres"
        {
            server += t;
        }
    }
    (own, server)
}

fn median(mut samples: Vec<StdDuration>) -> StdDuration {
    samples.sort();
    samples[samples.len() / 2]
}

fn rate(n: usize, d: StdDuration) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n / d.as_secs_f64()
}

async fn throughput() {
    let events = events();
    let receiver = Receiver::start().await;
    // Warm up connections and the receiver.
    floor(&receiver, 200).await;

    // Rounds interleave the variants, so that load from elsewhere on a shared machine hits them
    // alike; medians per variant.
    let mut samples: Vec<(&'static str, Vec<StdDuration>)> = Vec::new();
    let mut push =
        |name: &'static str, d: StdDuration| match samples.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(d),
            None => samples.push((name, vec![d])),
        };
    for _ in 0..ROUNDS {
        push("bare reqwest loop (floor)", floor(&receiver, events).await);
        let store = Arc::new(MemoryStore::new(store_config()));
        push(
            "dispatcher + memory store",
            dispatch(&receiver, store, events).await,
        );
        for (name, d) in extra_stores(&receiver, events).await {
            push(name, d);
        }
    }
    let rows: Vec<(&str, StdDuration)> = samples.into_iter().map(|(n, v)| (n, median(v))).collect();
    let floor_median = rows[0].1;

    println!(
        "\n{events} deliveries, concurrency {CONCURRENCY}, claims of up to {}, median of \
         {ROUNDS} interleaved rounds",
        batch_size()
    );
    println!("| variant | median time | deliveries/s | % of floor |");
    println!("|---|---|---|---|");
    for (name, d) in rows {
        let pct = 100.0 * rate(events, d) / rate(events, floor_median);
        println!(
            "| {name} | {:.1} ms | {:.0} | {pct:.0} % |",
            d.as_secs_f64() * 1e3,
            rate(events, d)
        );
    }
}

/// The durable stores, when their features are enabled: SQLite always, PostgreSQL when
/// `NOPOS_WEBHOOKS_TEST_POSTGRES` is set.
async fn extra_stores(receiver: &Receiver, events: usize) -> Vec<(&'static str, StdDuration)> {
    let mut rows = Vec::new();
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let store = nopos_webhooks::store::sqlite::SqliteStore::open(
            dir.path().join("bench.db"),
            store_config(),
        )
        .await
        .unwrap();
        rows.push((
            "dispatcher + SQLite store",
            dispatch(receiver, Arc::new(store), events).await,
        ));
    }
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES") {
        rows.push((
            "dispatcher + PostgreSQL store",
            dispatch_postgres(receiver, &url, events).await,
        ));
    }
    let _ = receiver;
    rows
}

/// The dispatcher draining `n` deliveries from a PostgreSQL store in a schema of its own, which
/// is dropped afterwards.
#[cfg(feature = "postgres")]
async fn dispatch_postgres(receiver: &Receiver, url: &str, n: usize) -> StdDuration {
    use nopos_webhooks::store::postgres::PostgresStore;
    let schema = format!("bench_dispatch_{}", std::process::id());
    let store = Arc::new(
        PostgresStore::connect_with_schema(url, &schema, store_config())
            .await
            .unwrap(),
    );
    let elapsed = dispatch(receiver, Arc::clone(&store), n).await;
    let sql = format!("DROP SCHEMA \"{schema}\" CASCADE");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
    elapsed
}

/// Drains a backlog of `n` pending deliveries from a SQLite file and reports the process's peak
/// resident memory during the drain (the backlog is written first, then the peak is reset).
#[cfg(feature = "sqlite")]
async fn drain(n: usize) {
    use nopos_webhooks::store::sqlite::SqliteStore;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("drain.db"), store_config())
            .await
            .unwrap(),
    );
    store
        .create_endpoint(&endpoint(&receiver.url()))
        .await
        .unwrap();
    // The backlog goes in through the outbox, in one transaction: one flush, not `n`.
    let mut tx = store.pool().begin().await.unwrap();
    for _ in 0..n {
        store
            .emit_in(&mut tx, &event(), OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Writing 5 to clear_refs resets the peak-RSS counter (VmHWM), so only the drain counts.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    receiver.expect(n);
    let dispatcher = Dispatcher::with_config(Arc::clone(&store), client(), dispatcher_config());
    let start = Instant::now();
    dispatcher.run(receiver.wait()).await.unwrap();
    let elapsed = start.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: unknown");
    // The write-ahead log must not grow with the backlog: checkpoints keep recycling it.
    let wal = std::fs::metadata(dir.path().join("drain.db-wal")).map_or(0, |m| m.len());
    #[allow(clippy::cast_precision_loss, reason = "megabytes for display")]
    let wal_mb = wal as f64 / 1e6;
    println!(
        "drained {n} deliveries from SQLite in {:.1} s ({:.0}/s); peak RSS during the drain: {}; \
         WAL file afterwards: {:.1} MB",
        elapsed.as_secs_f64(),
        rate(n, elapsed),
        peak.trim_start_matches("VmHWM:").trim(),
        wal_mb
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("throughput: bench");
        return;
    }
    #[cfg(feature = "sqlite")]
    if let Some(at) = args.iter().position(|a| a == "drain") {
        let n = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        runtime.block_on(drain(n));
        return;
    }
    if let Ok(spec) = std::env::var("NOPOS_BENCH_PROFILE") {
        // Profiling aid: one variant alone, for `perf record` or `valgrind --tool=callgrind`:
        // `floor:20000`, `memory:20000`, `sqlite:20000` or `postgres:20000`.
        let (variant, n) = spec.split_once(':').unwrap_or((spec.as_str(), "20000"));
        let n = n.parse().unwrap_or(20_000);
        REPORT_CPU.store(true, Ordering::Relaxed);
        runtime.block_on(async {
            let receiver = Receiver::start().await;
            let d = match variant {
                #[cfg(feature = "sqlite")]
                "sqlite" => {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("profile.db");
                    let store =
                        nopos_webhooks::store::sqlite::SqliteStore::open(path, store_config())
                            .await
                            .unwrap();
                    dispatch(&receiver, Arc::new(store), n).await
                }
                #[cfg(feature = "postgres")]
                "postgres" => {
                    let url = std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES")
                        .expect("NOPOS_WEBHOOKS_TEST_POSTGRES for the postgres variant");
                    dispatch_postgres(&receiver, &url, n).await
                }
                "floor" => floor(&receiver, n).await,
                _ => dispatch(&receiver, Arc::new(MemoryStore::new(store_config())), n).await,
            };
            println!("{variant}: {n} in {d:?}");
        });
        return;
    }
    runtime.block_on(throughput());
}
