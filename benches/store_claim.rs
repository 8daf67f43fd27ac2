//! Claim-batch latency as the backlog grows: claim 100 due deliveries, then record their
//! outcomes in one batch (as the dispatcher does), with 1,000 and with 100,000 pending deliveries
//! waiting. The indexes should make both rows of the table about the same.
//!
//! ```text
//! cargo bench --bench store_claim --features sqlite
//! ```
//!
//! A plain harness (no criterion): each case runs a fixed number of iterations and prints the
//! median and the 90th percentile; the two backlogs' batches alternate so that load from other
//! processes falls on both alike. After every iteration the 100 delivered rows are replaced by
//! 100 new pending ones (untimed), so the backlog stays at its size throughout.

use std::time::{Duration as StdDuration, Instant};

use http::{HeaderMap, StatusCode};
use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{
    AddressPolicy, AttemptOutcome, Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter,
    EventId, EventType, Secret, SecretSet, SerializedEvent,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Deliveries claimed per batch.
const BATCH: usize = 100;
/// Timed iterations per case.
const ITERATIONS: usize = 60;
/// Endpoints every event fans out to: the backlog is built 100 deliveries per emit.
const ENDPOINTS: usize = 100;
/// The backlog sizes compared side by side.
const BACKLOGS: [usize; 2] = [1_000, 100_000];

const NOW: OffsetDateTime = datetime!(2024-11-10 10:30 UTC);

/// One case's timings.
struct Timings {
    store: &'static str,
    backlog: usize,
    setup: StdDuration,
    claim: Vec<StdDuration>,
    record: Vec<StdDuration>,
    total: Vec<StdDuration>,
}

fn config() -> StoreConfig {
    // Endpoint URLs are never contacted; loopback keeps them obviously local.
    StoreConfig::default().address_policy(AddressPolicy::new().dangerous_allow_private_targets())
}

fn event(at: OffsetDateTime) -> SerializedEvent {
    let data = Event::sample(&EventType::TRANSACTION_COMPLETED).expect("sample");
    SerializedEvent::from_envelope(&Envelope::new(EventId::generate(at), at, data))
        .expect("serialize")
}

fn delivered(at: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome::from_parts(
        at,
        Duration::milliseconds(20),
        StatusCode::OK,
        &HeaderMap::new(),
        b"ok",
    )
}

/// Fills `store` with `backlog` pending deliveries.
async fn fill<S: Store>(store: &S, name: &'static str, backlog: usize) -> Timings {
    let started = Instant::now();
    for _ in 0..ENDPOINTS {
        let endpoint = Endpoint::new(
            EndpointId::generate(NOW),
            EndpointUrl::parse("http://127.0.0.1:9/webhooks/nopos").expect("url"),
            EventFilter::parse(["*"]).expect("filter"),
            SecretSet::new(Secret::generate()),
            NOW,
        );
        store.create_endpoint(&endpoint).await.expect("endpoint");
    }
    // Events a second apart, the oldest first, so due times differ as in a real backlog.
    let emits = backlog / ENDPOINTS;
    for i in 0..emits {
        let secs = i64::try_from(emits - i).expect("small");
        let at = NOW - Duration::seconds(secs);
        store.emit(&event(at), at).await.expect("emit");
    }
    Timings {
        store: name,
        backlog,
        setup: started.elapsed(),
        claim: Vec::new(),
        record: Vec::new(),
        total: Vec::new(),
    }
}

/// One timed batch: claim 100, record a `200` for each. Then (untimed) one more event tops the
/// backlog up by the 100 deliveries just finished.
async fn batch<S: Store>(store: &S, timings: &mut Timings) {
    let start = Instant::now();
    let claims = store
        .claim(NOW, BATCH, Duration::minutes(1))
        .await
        .expect("claim");
    let claimed = start.elapsed();
    assert_eq!(claims.len(), BATCH, "the backlog ran dry");
    // Recorded as the dispatcher records them: the whole batch in one call.
    let outcome = delivered(NOW);
    let outcomes: Vec<_> = claims.iter().map(|claim| (claim, &outcome)).collect();
    for result in store.record_attempts(&outcomes, NOW).await.expect("record") {
        result.expect("record");
    }
    let total = start.elapsed();
    timings.claim.push(claimed);
    timings.record.push(total.saturating_sub(claimed));
    timings.total.push(total);
    store.emit(&event(NOW), NOW).await.expect("emit");
}

/// Runs the batches of every case in turn (1k, 100k, 1k, …), so that load from other processes
/// on a shared machine falls on both backlogs alike.
async fn interleave<S: Store>(cases: &mut [(S, Timings)]) {
    for _ in 0..ITERATIONS {
        for (store, timings) in cases.iter_mut() {
            batch(store, timings).await;
        }
    }
}

fn percentile(samples: &[StdDuration], percent: usize) -> StdDuration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = (sorted.len().saturating_sub(1) * percent) / 100;
    sorted.get(index).copied().unwrap_or_default()
}

fn millis(d: StdDuration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

fn print(rows: &[Timings]) {
    println!(
        "{:<8} {:>9} {:>16} {:>16} {:>18} {:>18} {:>11}",
        "store",
        "backlog",
        "claim 100 med",
        "claim 100 p90",
        "record 100 med",
        "claim+record med",
        "setup"
    );
    for row in rows {
        println!(
            "{:<8} {:>9} {:>16} {:>16} {:>18} {:>18} {:>9.1} s",
            row.store,
            row.backlog,
            millis(percentile(&row.claim, 50)),
            millis(percentile(&row.claim, 90)),
            millis(percentile(&row.record, 50)),
            millis(percentile(&row.total, 50)),
            row.setup.as_secs_f64(),
        );
    }
}

async fn sqlite(rows: &mut Vec<Timings>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cases = Vec::new();
    for backlog in BACKLOGS {
        let path = dir.path().join(format!("bench-{backlog}.db"));
        let store = SqliteStore::open(path, config()).await.expect("open");
        let timings = fill(&store, "sqlite", backlog).await;
        cases.push((store, timings));
    }
    interleave(&mut cases).await;
    for (store, timings) in cases {
        store.close().await;
        rows.push(timings);
    }
}

/// PostgreSQL goes here: when `NOPOS_WEBHOOKS_TEST_POSTGRES` is set, open the PostgreSQL store
/// (in a fresh schema) for each backlog, `fill` it, `interleave` the cases and push their
/// timings, exactly as [`sqlite`] does. Until the store exists it prints why it is skipped.
#[allow(clippy::unused_async)] // the PostgreSQL variant awaits
async fn postgres(_rows: &mut Vec<Timings>) {
    if std::env::var_os("NOPOS_WEBHOOKS_TEST_POSTGRES").is_some() {
        println!("postgres: not benchmarked yet (the PostgreSQL store is not in this build)");
    }
}

fn main() {
    // `cargo test --benches` runs this binary with `--bench` absent: keep that quick.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("store_claim: run with `cargo bench --bench store_claim --features sqlite`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        sqlite(&mut rows).await;
        postgres(&mut rows).await;
        print(&rows);
    });
}
