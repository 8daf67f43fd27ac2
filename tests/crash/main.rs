//! Dispatchers in child processes: killed with SIGKILL mid-flight and restarted (SQLite and
//! PostgreSQL), and four of them sharing one PostgreSQL queue.
//!
//! The children are this test binary run again with `NOPOS_CRASH_CHILD` set (see
//! [`child_process_entry_point`]); they deliver to a receiver on loopback in the parent, which
//! records every request it gets.
#![cfg(all(feature = "dispatcher", feature = "reqwest", feature = "sqlite"))]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use nopos_webhooks::dispatcher::{Dispatcher, DispatcherConfig};
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{DeliveryQuery, Store, StoreConfig};
use nopos_webhooks::{
    AddressPolicy, DeliveryStatus, Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter,
    EventId, EventType, RetrySchedule, Secret, SecretSet, SerializedEvent,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

const CHILD_ENV: &str = "NOPOS_CRASH_CHILD";

/// Every process opens its store with this: short retries so reclaimed deliveries go out again
/// within the test, and loopback allowed.
fn config() -> StoreConfig {
    let schedule = RetrySchedule::new(
        [Duration::ZERO]
            .into_iter()
            .chain([Duration::milliseconds(200); 9]),
    )
    .unwrap();
    StoreConfig::default()
        .default_schedule(schedule)
        .address_policy(AddressPolicy::new().dangerous_allow_private_targets())
}

/// Where a child's store is: `sqlite:<path>` or `postgres:<schema>`.
#[derive(Clone)]
enum Spec {
    Sqlite(String),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Spec {
    fn encode(&self) -> String {
        match self {
            Spec::Sqlite(path) => format!("sqlite:{path}"),
            #[cfg(feature = "postgres")]
            Spec::Postgres(schema) => format!("postgres:{schema}"),
        }
    }
}

/// The child process: a dispatcher on the store named by `NOPOS_CRASH_CHILD`, running until its
/// stdin closes. In an ordinary test run (without the variable) it returns at once.
#[test]
fn child_process_entry_point() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = ReqwestClient::builder()
            .timeout(StdDuration::from_secs(5))
            .dangerous_allow_private_targets()
            .build()
            .unwrap();
        let dispatcher_config = DispatcherConfig::default()
            .lease(Duration::seconds(5))
            .poll_interval(Duration::milliseconds(200))
            .shutdown_grace(Duration::seconds(20));
        // Shut down gracefully when the parent closes our stdin.
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        if let Some(path) = spec.strip_prefix("sqlite:") {
            let store = Arc::new(SqliteStore::open(path, config()).await.unwrap());
            let dispatcher = Dispatcher::with_config(store, client, dispatcher_config);
            dispatcher.run(stdin_closed).await.unwrap();
            return;
        }
        #[cfg(feature = "postgres")]
        if let Some(schema) = spec.strip_prefix("postgres:") {
            let url = std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES").unwrap();
            let store = nopos_webhooks::store::postgres::PostgresStore::connect_with_schema(
                &url,
                schema,
                config(),
            )
            .await
            .unwrap();
            let dispatcher = Dispatcher::with_config(Arc::new(store), client, dispatcher_config);
            dispatcher.run(stdin_closed).await.unwrap();
            return;
        }
        panic!("unknown child spec {spec}");
    });
}

fn spawn_child(spec: &Spec) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec.encode())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Closes the child's stdin (graceful shutdown) and waits for it to exit.
async fn stop_child(mut child: Child) {
    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "child exited with {status}");
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Every request: (delivery id, event id, body).
    requests: Vec<(String, String, Bytes)>,
    /// Delivery ids being processed right now.
    active: HashSet<String>,
    /// Requests that arrived while the same delivery was already being processed elsewhere.
    overlaps: usize,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Seen>>,
    total: watch::Sender<usize>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivery = header("x-nopos-delivery-id");
    let event = header("x-nopos-event-id");
    {
        let mut seen = receiver.seen.lock().unwrap();
        if !seen.active.insert(delivery.clone()) {
            seen.overlaps += 1;
        }
        seen.requests.push((delivery.clone(), event, body));
        receiver.total.send_replace(seen.requests.len());
    }
    // A little work, so that requests are in flight when a dispatcher is killed.
    tokio::time::sleep(StdDuration::from_millis(3)).await;
    receiver.seen.lock().unwrap().active.remove(&delivery);
    StatusCode::OK
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver {
        seen: Arc::new(Mutex::new(Seen::default())),
        total: watch::channel(0).0,
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, url)
}

async fn wait_for(counter: &watch::Sender<usize>, at_least: usize, within: StdDuration) {
    let mut rx = counter.subscribe();
    tokio::time::timeout(within, rx.wait_for(|n| *n >= at_least))
        .await
        .unwrap_or_else(|_| panic!("only {} of {at_least} within {within:?}", *counter.borrow()))
        .unwrap();
}

/// Waits until the store has `n` delivered deliveries. Outcomes are recorded by another process,
/// so there is nothing to await: the store is checked every 100 ms, up to `within`.
async fn wait_until_delivered<S: Store>(store: &S, n: usize, within: StdDuration) {
    let query = DeliveryQuery::default()
        .status(DeliveryStatus::Delivered)
        .limit(usize::MAX);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let delivered = store.list_deliveries(&query).await.unwrap().len();
        if delivered >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {delivered} of {n} delivered within {within:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

async fn prepare<S: Store>(store: &S, url: &str, events: usize) -> HashSet<String> {
    let now = OffsetDateTime::now_utc();
    let endpoint = Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse(url).unwrap(),
        EventFilter::parse(["*"]).unwrap(),
        SecretSet::new(Secret::generate()),
        now,
    );
    store.create_endpoint(&endpoint).await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..events {
        let envelope = Envelope::new(
            EventId::generate(now),
            now,
            Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap(),
        );
        let event = SerializedEvent::from_envelope(&envelope).unwrap();
        store.emit(&event, now).await.unwrap();
        ids.insert(event.id().to_string());
    }
    ids
}

/// Every event arrived, every duplicate carries its delivery's event id and bytes, and the
/// store has every delivery delivered and none leased.
async fn check_all_delivered<S: Store>(
    store: &S,
    receiver: &Receiver,
    events: &HashSet<String>,
) -> usize {
    let duplicates = {
        let seen = receiver.seen.lock().unwrap();
        let mut first: HashMap<&str, (&str, &Bytes)> = HashMap::new();
        let mut duplicates = 0;
        for (delivery, event, body) in &seen.requests {
            match first.get(delivery.as_str()) {
                Some((first_event, first_body)) => {
                    duplicates += 1;
                    assert_eq!(
                        first_event, event,
                        "a duplicate of {delivery} changed event id"
                    );
                    assert_eq!(*first_body, body, "a duplicate of {delivery} changed bytes");
                }
                None => {
                    first.insert(delivery, (event, body));
                }
            }
        }
        let arrived: HashSet<String> = seen.requests.iter().map(|(_, e, _)| e.clone()).collect();
        assert_eq!(&arrived, events, "every event arrives");
        duplicates
    };
    let all = DeliveryQuery::default().limit(usize::MAX);
    let states = store.list_deliveries(&all).await.unwrap();
    assert_eq!(states.len(), events.len());
    let leased = states
        .iter()
        .filter(|s| s.status == DeliveryStatus::InFlight)
        .count();
    assert_eq!(leased, 0, "no delivery is left leased");
    let mut by_status: HashMap<&str, usize> = HashMap::new();
    for state in &states {
        *by_status.entry(state.status.as_str()).or_default() += 1;
    }
    assert_eq!(
        by_status.get("delivered").copied().unwrap_or(0),
        events.len(),
        "statuses: {by_status:?}"
    );
    duplicates
}

async fn crash_and_restart<S: Store>(store: &S, spec: &Spec) {
    const EVENTS: usize = 2_000;
    let (receiver, url) = start_receiver().await;
    let events = prepare(store, &url, EVENTS).await;

    let mut first = spawn_child(spec);
    wait_for(&receiver.total, EVENTS / 4, StdDuration::from_secs(120)).await;
    first.kill().unwrap(); // SIGKILL: no shutdown, leases left behind.
    first.wait().unwrap();
    let at_kill = *receiver.total.borrow();
    assert!(
        at_kill < EVENTS,
        "the first dispatcher was killed mid-flight"
    );

    let second = spawn_child(spec);
    wait_until_delivered(store, EVENTS, StdDuration::from_secs(180)).await;
    stop_child(second).await;
    let duplicates = check_all_delivered(store, &receiver, &events).await;
    eprintln!("killed after {at_kill} requests; {duplicates} duplicates after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dispatcher_killed_mid_flight_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let store = SqliteStore::open(&path, config()).await.unwrap();
    crash_and_restart(&store, &Spec::Sqlite(path.to_string_lossy().into_owned())).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use nopos_webhooks::store::postgres::PostgresStore;

    async fn fresh(name: &str) -> Option<(PostgresStore, Spec)> {
        let Ok(url) = std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES") else {
            eprintln!("skipping {name}: NOPOS_WEBHOOKS_TEST_POSTGRES is not set");
            return None;
        };
        let schema = format!("crash_{}_{}", name, std::process::id());
        let store = PostgresStore::connect_with_schema(&url, &schema, config())
            .await
            .unwrap();
        Some((store, Spec::Postgres(schema)))
    }

    async fn drop_schema(store: &PostgresStore) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", store.schema());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(store.pool())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_dispatcher_killed_mid_flight_loses_nothing() {
        let Some((store, spec)) = fresh("kill").await else {
            return;
        };
        crash_and_restart(&store, &spec).await;
        drop_schema(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_workers_share_one_queue() {
        const EVENTS: usize = 5_000;
        let Some((store, spec)) = fresh("workers").await else {
            return;
        };
        let (receiver, url) = start_receiver().await;
        let events = prepare(&store, &url, EVENTS).await;
        let workers: Vec<Child> = (0..4).map(|_| spawn_child(&spec)).collect();
        wait_until_delivered(&store, EVENTS, StdDuration::from_secs(240)).await;
        for worker in workers {
            stop_child(worker).await;
        }
        let duplicates = check_all_delivered(&store, &receiver, &events).await;
        let overlaps = receiver.seen.lock().unwrap().overlaps;
        assert_eq!(overlaps, 0, "a delivery was sent by two workers at once");
        assert_eq!(duplicates, 0, "without crashes every delivery is sent once");
        drop_schema(&store).await;
    }
}
