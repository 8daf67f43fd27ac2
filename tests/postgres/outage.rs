//! The dispatcher through a database outage, made real on the test server: a trigger makes every
//! write to the attempt log fail until it is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use nopos_webhooks::dispatcher::{Dispatcher, DispatcherConfig};
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::store::Store;
use nopos_webhooks::store::postgres::PostgresStore;
use nopos_webhooks::{DeliveryId, DeliveryStatus, EndpointUrl, EventType};
use sqlx::Row;
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, oneshot};

use super::{close, endpoint, event, exec, open};

/// Fails every insert into the attempt log, counting the tries in a sequence: a rollback undoes
/// the insert but not `nextval`.
const OUTAGE: [&str; 3] = [
    "CREATE SEQUENCE {s}.outage_tries",
    "CREATE FUNCTION {s}.outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
        PERFORM nextval('{s}.outage_tries'); RAISE EXCEPTION 'simulated outage'; END $$",
    "CREATE TRIGGER outage BEFORE INSERT ON {s}.attempts FOR EACH ROW \
        EXECUTE FUNCTION {s}.outage()",
];

/// A receiver that answers 204 and reports each request.
async fn receiver() -> (String, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let _ = tx.send(());
            async { StatusCode::NO_CONTENT }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx)
}

/// A store in a fresh schema with one delivery, due now, to a receiver whose requests come out
/// of the returned channel, and every attempt-log insert failing ([`OUTAGE`]); `None` when the
/// PostgreSQL tests are skipped.
async fn store_in_an_outage()
-> Option<(Arc<PostgresStore>, DeliveryId, mpsc::UnboundedReceiver<()>)> {
    let store = open().await?;
    let (url, requests) = receiver().await;
    let now = OffsetDateTime::now_utc();
    let mut endpoint = endpoint(&["*"], now);
    endpoint.url = EndpointUrl::parse(&url).unwrap();
    store.create_endpoint(&endpoint).await.unwrap();
    let receipt = store
        .emit(&event(&EventType::TRANSACTION_COMPLETED, now), now)
        .await
        .unwrap();
    for sql in OUTAGE {
        exec(&store, sql).await;
    }
    Some((Arc::new(store), receipt.deliveries[0].clone(), requests))
}

/// Runs a dispatcher until the returned sender fires.
fn start(
    store: &Arc<PostgresStore>,
    config: DispatcherConfig,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let client = ReqwestClient::builder()
        .dangerous_allow_private_targets()
        .build()
        .unwrap();
    let dispatcher = Dispatcher::with_config(Arc::clone(store), client, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        dispatcher
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, running)
}

/// Waits until `check` holds, checking every 20 ms; fails the test after 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(StdDuration::from_secs(30), async {
        while !check().await {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

async fn failed_tries(store: &PostgresStore) -> i64 {
    let sql = format!(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM \"{}\".outage_tries",
        store.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn outcomes_are_recorded_once_the_database_is_back() {
    let Some((store, delivery, mut requests)) = store_in_an_outage().await else {
        return;
    };
    let (stop, running) = start(&store, DispatcherConfig::default());

    requests.recv().await.expect("the attempt is sent");
    // Six failed tries take about 1.5 s; the dispatcher used to give up after four.
    eventually("six failed tries to record", || async {
        failed_tries(&store).await >= 6
    })
    .await;
    exec(&store, "DROP TRIGGER outage ON {s}.attempts").await;
    eventually("the outcome to be recorded", || async {
        store.get_delivery(&delivery).await.unwrap().status == DeliveryStatus::Delivered
    })
    .await;

    let _ = stop.send(());
    running.await.unwrap();
    let log = store.attempts(&delivery).await.unwrap();
    let statuses: Vec<_> = log.iter().map(|record| record.status).collect();
    assert_eq!(statuses, vec![Some(204)], "the real outcome, once");
    assert!(requests.try_recv().is_err(), "sent once");
    close(Arc::try_unwrap(store).unwrap()).await;
}

#[tokio::test]
async fn shutdown_does_not_wait_out_an_outage() {
    let Some((store, delivery, mut requests)) = store_in_an_outage().await else {
        return;
    };
    let grace = Duration::milliseconds(300);
    let (stop, running) = start(&store, DispatcherConfig::default().shutdown_grace(grace));

    requests.recv().await.expect("the attempt is sent");
    eventually("a failed try to record", || async {
        failed_tries(&store).await >= 1
    })
    .await;
    let _ = stop.send(());
    // The outcome cannot be written, and the lease (5 minutes) is far off: shutdown ends after
    // its grace periods, not when the recorder would stop retrying.
    tokio::time::timeout(StdDuration::from_secs(10), running)
        .await
        .expect("the dispatcher stops within its grace periods")
        .unwrap();
    let state = store.get_delivery(&delivery).await.unwrap();
    assert_eq!(
        state.status,
        DeliveryStatus::InFlight,
        "left to its lease, settled as lost when it runs out"
    );
    close(Arc::try_unwrap(store).unwrap()).await;
}
