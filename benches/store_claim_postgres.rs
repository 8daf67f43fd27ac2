//! Claim-batch latency of the PostgreSQL store at a small and a large backlog, side by side.
//!
//! ```sh
//! NOPOS_WEBHOOKS_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench --features postgres --bench store_claim_postgres
//! ```
//!
//! Each sample claims 100 due deliveries and records a `200` for each, then tops the backlog up
//! again (untimed) so that it stays the same size. Samples alternate between recording the
//! outcomes one transaction each (`record_attempt`) and as one batch (`record_attempts`, as the
//! dispatcher's recorder does). Delivered rows stay in the table: the large run also shows that finished history
//! does not slow claiming. Each backlog runs in a schema of its own, dropped afterwards. Without
//! the variable it prints a skip notice.

use std::time::{Duration as StdDuration, Instant};

use http::{HeaderMap, StatusCode};
use nopos_webhooks::store::postgres::PostgresStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{
    AttemptOutcome, Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter, EventId,
    EventType, Secret, SecretSet, SerializedEvent,
};
use sqlx::AssertSqlSafe;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const URL_VAR: &str = "NOPOS_WEBHOOKS_TEST_POSTGRES";
const ENDPOINTS: usize = 100;
const BATCH: usize = 100;
const WARMUP: usize = 5;
const SAMPLES: usize = 40;
const BACKLOGS: [usize; 2] = [1_000, 100_000];

struct Timings {
    backlog: usize,
    fill: StdDuration,
    claim: Vec<StdDuration>,
    claim_and_record: Vec<StdDuration>,
    claim_and_record_batch: Vec<StdDuration>,
}

fn main() {
    let Some(url) = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty()) else {
        eprintln!("skipping store_claim_postgres: set {URL_VAR} to a PostgreSQL URL to run it");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let results: Vec<Timings> = runtime.block_on(async {
        let mut results = Vec::new();
        for backlog in BACKLOGS {
            results.push(measure(&url, backlog).await);
        }
        results
    });

    println!();
    println!(
        "PostgreSQL store: claim {BATCH} + record {BATCH} outcomes, median (p90) of {SAMPLES} \
         samples (claims: all; recording: half each way)"
    );
    println!(
        "{:>9} | {:>20} | {:>30} | {:>30} | {:>10}",
        "backlog",
        "claim 100",
        "claim + record 100 one by one",
        "claim + record 100 as a batch",
        "fill"
    );
    for timing in &results {
        println!(
            "{:>9} | {:>20} | {:>30} | {:>30} | {:>10}",
            timing.backlog,
            summary(&timing.claim),
            summary(&timing.claim_and_record),
            summary(&timing.claim_and_record_batch),
            format!("{:.1?}", timing.fill),
        );
    }
}

async fn measure(url: &str, backlog: usize) -> Timings {
    let schema = format!(
        "nopos_bench_{}",
        hex::encode(nopos_webhooks::random::bytes::<6>())
    );
    let store = PostgresStore::connect_with_schema(url, &schema, StoreConfig::default())
        .await
        .expect("open the benchmark schema");
    let t0 = datetime!(2024-11-10 10:30 UTC);
    for _ in 0..ENDPOINTS {
        let endpoint = Endpoint::new(
            EndpointId::generate(t0),
            EndpointUrl::parse("https://hooks.example.com/nopos").unwrap(),
            EventFilter::parse(["*"]).unwrap(),
            SecretSet::new(Secret::generate()),
            t0,
        );
        store.create_endpoint(&endpoint).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..backlog / ENDPOINTS {
        store.emit(&event(t0), t0).await.unwrap();
    }
    let fill = started.elapsed();
    sqlx::query(AssertSqlSafe(format!("ANALYZE \"{schema}\".deliveries")))
        .execute(store.pool())
        .await
        .unwrap();

    let mut claim = Vec::new();
    let mut claim_and_record = Vec::new();
    let mut claim_and_record_batch = Vec::new();
    for sample in 0..WARMUP + SAMPLES {
        let now = t0 + Duration::seconds(i64::try_from(sample).unwrap() + 1);
        let started = Instant::now();
        let claims = store.claim(now, BATCH, Duration::minutes(5)).await.unwrap();
        let claimed = started.elapsed();
        assert_eq!(claims.len(), BATCH);
        let outcome = delivered(now);
        let one_by_one = sample % 2 == 0;
        if one_by_one {
            for claim in &claims {
                store.record_attempt(claim, &outcome, now).await.unwrap();
            }
        } else {
            let batch: Vec<_> = claims.iter().map(|claim| (claim, &outcome)).collect();
            let results = store.record_attempts(&batch, now).await.unwrap();
            assert!(results.iter().all(Result::is_ok));
        }
        let recorded = started.elapsed();
        if sample >= WARMUP {
            claim.push(claimed);
            if one_by_one {
                claim_and_record.push(recorded);
            } else {
                claim_and_record_batch.push(recorded);
            }
        }
        // Top the backlog up again: one event fans out to every endpoint.
        store.emit(&event(now), now).await.unwrap();
    }

    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    Timings {
        backlog,
        fill,
        claim,
        claim_and_record,
        claim_and_record_batch,
    }
}

fn event(now: OffsetDateTime) -> SerializedEvent {
    let data = Event::sample(&EventType::INVENTORY_UPDATED).unwrap();
    SerializedEvent::from_envelope(&Envelope::new(EventId::generate(now), now, data)).unwrap()
}

fn delivered(now: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome::from_parts(
        now,
        Duration::milliseconds(40),
        StatusCode::OK,
        &HeaderMap::new(),
        b"ok",
    )
}

fn summary(samples: &[StdDuration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index]
    };
    format!("{:.2?} ({:.2?})", at(0.5), at(0.9))
}
