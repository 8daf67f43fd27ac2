//! The management API on a real loopback server over the memory store (feature `server`): every
//! route, every documented error with a request that triggers it, idempotency, rotation, the
//! test tool against a real receiver, and the analytics.
#![cfg(feature = "server")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use nopos_webhooks::dispatcher::{Dispatcher, DispatcherConfig};
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::server::{self, ApiKey, ServerConfig, ServerState};
use nopos_webhooks::store::memory::MemoryStore;
#[cfg(feature = "postgres")]
use nopos_webhooks::store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{AddressPolicy, RetrySchedule, Scheme, Secret, Verifier};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const KEY: &str = "test-api-key-0123456789";

/// The announcement's registration body, verbatim but for the URL.
fn announcement_body(url: &str) -> String {
    json!({
        "url": url,
        "events": ["transaction.completed", "inventory.low_stock", "payment.succeeded"],
        "secret": "your_webhook_secret"
    })
    .to_string()
}

/// The announcement's payload for `transaction.completed`.
const SALE: &str = r#"{"transaction_id":"txn_9876543210","amount":125.50,"status":"completed","customer_id":"cust_123456"}"#;

/// The store under the API.
#[derive(Debug, Clone)]
enum Backend {
    Memory,
    /// A database file in a temporary directory.
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// A fresh schema in the database at this URL, dropped when the test finishes.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `NOPOS_WEBHOOKS_TEST_POSTGRES` names a database, else `None` after a
    /// notice.
    #[cfg(feature = "postgres")]
    fn postgres() -> Option<Backend> {
        match std::env::var("NOPOS_WEBHOOKS_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                eprintln!(
                    "skipping the API over PostgreSQL: NOPOS_WEBHOOKS_TEST_POSTGRES is not set"
                );
                None
            }
        }
    }
}

/// The API tests that depend on the store, run on every store.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Memory).await;
                }
            )*
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    the_announcement_registration_and_endpoint_management,
    every_refusal_has_its_code_and_changes_nothing,
    idempotency_by_id_and_by_key,
    events_are_delivered_signed_and_rotation_keeps_the_old_secret_valid,
    deliveries_retry_recover_and_stats,
);

struct Setup {
    backend: Backend,
    allow_private: bool,
    schedule: RetrySchedule,
    config: ServerConfig,
    dispatch: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            backend: Backend::Memory,
            allow_private: true,
            schedule: RetrySchedule::default(),
            config: ServerConfig::default(),
            dispatch: true,
        }
    }
}

/// A management API (and a dispatcher) on loopback; aborted when dropped.
struct Api {
    base: String,
    http: reqwest::Client,
    tasks: Vec<JoinHandle<()>>,
    /// The dispatcher's task, and what stops it gracefully.
    dispatcher: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    /// The PostgreSQL test schema to drop at the end.
    #[cfg(feature = "postgres")]
    schema: Option<(sqlx::PgPool, String)>,
    /// The SQLite database's directory, removed when the test ends.
    dir: Option<tempfile::TempDir>,
}

impl Drop for Api {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some((_, dispatcher)) = &self.dispatcher {
            dispatcher.abort();
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.error_code(), code, "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

impl Api {
    async fn start(setup: Setup) -> Api {
        let mut policy = AddressPolicy::default();
        if setup.allow_private {
            policy = policy.dangerous_allow_private_targets();
        }
        let config = StoreConfig::default()
            .address_policy(policy)
            .default_schedule(setup.schedule.clone());
        match setup.backend.clone() {
            Backend::Memory => Api::serve(Arc::new(MemoryStore::new(config)), setup).await,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(dir.path().join("webhooks.db"), config)
                    .await
                    .expect("a fresh database file");
                let mut api = Api::serve(Arc::new(store), setup).await;
                api.dir = Some(dir);
                api
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                let schema = format!(
                    "nopos_test_{}",
                    hex::encode(nopos_webhooks::random::bytes::<8>())
                );
                let store = PostgresStore::connect_with_schema(&url, &schema, config)
                    .await
                    .expect("a fresh schema");
                let pool = store.pool().clone();
                let mut api = Api::serve(Arc::new(store), setup).await;
                api.schema = Some((pool, schema));
                api
            }
        }
    }

    /// Stops the server and drops what the store left (a PostgreSQL test schema).
    #[cfg_attr(
        not(feature = "postgres"),
        allow(
            unused_mut,
            clippy::unused_async,
            reason = "only a schema needs cleaning up"
        )
    )]
    async fn finish(mut self) {
        // The dispatcher first, and to its end: aborted in the middle of a claim, its transaction
        // could still hold row locks when `DROP SCHEMA` came, and the two deadlocked.
        if let Some((stop, dispatcher)) = self.dispatcher.take() {
            let _ = stop.send(());
            tokio::time::timeout(Duration::from_secs(30), dispatcher)
                .await
                .expect("the dispatcher stops")
                .expect("the dispatcher's task");
        }
        for task in &self.tasks {
            task.abort();
        }
        #[cfg(feature = "postgres")]
        if let Some((pool, schema)) = self.schema.take() {
            let sql = format!("DROP SCHEMA \"{schema}\" CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("drop the test schema");
            pool.close().await;
        }
    }

    /// Serves the API (and a dispatcher) over `store`.
    async fn serve<S: Store + 'static>(store: Arc<S>, setup: Setup) -> Api {
        let mut client = ReqwestClient::builder().timeout(Duration::from_secs(5));
        if setup.allow_private {
            client = client.dangerous_allow_private_targets();
        }
        let client = client.build().unwrap();
        let state = ServerState::new(
            Arc::clone(&store),
            client.clone(),
            ApiKey::new(KEY).unwrap(),
        )
        .with_config(setup.config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let tasks = vec![tokio::spawn(async move {
            axum::serve(listener, server::router(state)).await.unwrap();
        })];
        let mut running = None;
        if setup.dispatch {
            // A short grace: a test may end with an attempt hanging on a receiver that never
            // answers.
            let config = DispatcherConfig::default()
                .poll_interval(time::Duration::milliseconds(50))
                .shutdown_grace(time::Duration::seconds(2));
            let dispatcher = Dispatcher::with_config(store, client, config);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                dispatcher
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
            running = Some((stop, task));
        }
        Api {
            base,
            http: reqwest::Client::new(),
            tasks,
            dispatcher: running,
            #[cfg(feature = "postgres")]
            schema: None,
            dir: None,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(KEY), &[], body.map(|b| b.to_string()))
            .await
    }

    async fn register(&self, url: &str) -> Value {
        let answer = self
            .send(
                "POST",
                "/v1/webhooks",
                Some(KEY),
                &[],
                Some(announcement_body(url)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }

    async fn emit_sale(&self) -> Answer {
        self.send(
            "POST",
            "/v1/events",
            Some(KEY),
            &[],
            Some(format!(
                r#"{{"type":"transaction.completed","data":{SALE}}}"#
            )),
        )
        .await
    }

    /// The endpoint's deliveries.
    async fn deliveries(&self, id: &str) -> Vec<Value> {
        let answer = self
            .call("GET", &format!("/v1/webhooks/{id}/deliveries"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["data"].as_array().unwrap().clone()
    }

    /// Polls (bounded: five seconds) until the delivery has `status`.
    async fn wait_for_delivery(&self, endpoint: &str, delivery: &str, status: &str) -> Value {
        for _ in 0..500 {
            if let Some(found) = self
                .deliveries(endpoint)
                .await
                .into_iter()
                .find(|d| d["id"] == delivery && d["status"] == status)
            {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("delivery {delivery} never became {status}");
    }
}

/// A loopback receiver answering with a settable status and reporting every request.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    requests: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ReceiverState {
    status: Arc<AtomicU16>,
    seen: mpsc::UnboundedSender<(HeaderMap, Bytes)>,
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = state.seen.send((headers, body));
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
}

impl Receiver {
    async fn start() -> Receiver {
        let status = Arc::new(AtomicU16::new(200));
        let (seen, requests) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/webhooks/nopos", post(receive))
            .with_state(ReceiverState {
                status: Arc::clone(&status),
                seen,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/nopos", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            status,
            requests,
            task,
        }
    }

    async fn next(&mut self) -> (HeaderMap, Bytes) {
        tokio::time::timeout(Duration::from_secs(5), self.requests.recv())
            .await
            .expect("no delivery within 5 s")
            .unwrap()
    }
}

fn verifies(secret: &str, headers: &HeaderMap, body: &[u8]) -> Option<Scheme> {
    Verifier::new([Secret::new(secret).unwrap()])
        .verify(headers, body, OffsetDateTime::now_utc())
        .ok()
        .map(|v| v.scheme)
}

#[tokio::test]
async fn healthz_is_open_and_everything_else_needs_the_key() {
    let api = Api::start(Setup::default()).await;
    let health = api.send("GET", "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    for (method, path) in [
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("POST", "/v1/webhooks/test"),
        ("GET", "/v1/webhooks/wh_1"),
        ("PATCH", "/v1/webhooks/wh_1"),
        ("DELETE", "/v1/webhooks/wh_1"),
        ("POST", "/v1/webhooks/wh_1/rotate-secret"),
        ("POST", "/v1/webhooks/wh_1/recover"),
        ("GET", "/v1/webhooks/wh_1/deliveries"),
        ("GET", "/v1/webhooks/wh_1/stats"),
        ("POST", "/v1/events"),
        ("GET", "/v1/events/evt_1"),
        ("POST", "/v1/deliveries/dlv_1/retry"),
        ("GET", "/v1/event-types"),
        ("GET", "/nowhere"),
    ] {
        let missing = api.send(method, path, None, &[], None).await;
        missing.assert_error(401, "unauthorized");
        assert_eq!(missing.headers["www-authenticate"], "Bearer");
        let wrong = api
            .send(method, path, Some("test-api-key-0123456780"), &[], None)
            .await;
        wrong.assert_error(401, "unauthorized");
        let basic = api
            .send(
                method,
                path,
                None,
                &[("authorization", &format!("Basic {KEY}"))],
                None,
            )
            .await;
        basic.assert_error(401, "unauthorized");
    }
    api.call("GET", "/nowhere", None)
        .await
        .assert_error(404, "not_found");
    api.call("PUT", "/v1/webhooks", None)
        .await
        .assert_error(405, "method_not_allowed");
}

async fn the_announcement_registration_and_endpoint_management(backend: Backend) {
    let api = Api::start(Setup {
        backend,
        ..Setup::default()
    })
    .await;
    let receiver = Receiver::start().await;

    let created = api
        .send(
            "POST",
            "/v1/webhooks",
            Some(KEY),
            &[],
            Some(announcement_body(&receiver.url)),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{id}");
    assert_eq!(created.body["secret"], "your_webhook_secret");
    assert_eq!(created.body["url"], receiver.url);
    assert_eq!(created.body["status"], "enabled");
    assert_eq!(created.headers["location"], format!("/v1/webhooks/{id}"));
    assert_eq!(
        created.body["events"],
        json!([
            "inventory.low_stock",
            "payment.succeeded",
            "transaction.completed"
        ])
    );

    // The secret is shown once: never in reads.
    let read = api.call("GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body.get("secret").is_none());
    assert!(!read.body.to_string().contains("your_webhook_secret"));
    let listed = api.call("GET", "/v1/webhooks", None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains("your_webhook_secret"));

    // Without a secret one is generated; headers and description are kept, header values hidden.
    let generated = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({
                "url": receiver.url,
                "events": ["*"],
                "description": "till 1",
                "headers": {"Authorization": "Bearer receiver-token"}
            })),
        )
        .await;
    assert_eq!(generated.status, StatusCode::CREATED, "{}", generated.body);
    assert!(
        generated.body["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(generated.body["description"], "till 1");
    assert_eq!(generated.body["headers"], json!(["authorization"]));
    assert!(!generated.body.to_string().contains("receiver-token"));
    let other = generated.body["id"].as_str().unwrap().to_owned();

    // PATCH: description cleared with null, events changed, disabled and enabled again.
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{other}"),
            Some(json!({"description": null, "events": ["payment.*"], "status": "disabled"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["description"], Value::Null);
    assert_eq!(patched.body["events"], json!(["payment.*"]));
    assert_eq!(patched.body["status"], "disabled");
    assert_eq!(patched.body["disabled"]["reason"]["kind"], "manual");
    assert_eq!(patched.body["headers"], json!(["authorization"]));
    let enabled = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{other}"),
            Some(json!({"status": "enabled", "headers": null})),
        )
        .await;
    assert_eq!(enabled.body["status"], "enabled");
    assert_eq!(enabled.body["headers"], json!([]));

    // DELETE, then it is gone.
    let deleted = api
        .call("DELETE", &format!("/v1/webhooks/{other}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    api.call("GET", &format!("/v1/webhooks/{other}"), None)
        .await
        .assert_error(404, "not_found");
    api.call("DELETE", &format!("/v1/webhooks/{other}"), None)
        .await
        .assert_error(404, "not_found");
    api.finish().await;
}

async fn every_refusal_has_its_code_and_changes_nothing(backend: Backend) {
    let api = Api::start(Setup {
        backend,
        config: ServerConfig::default(),
        ..Setup::default()
    })
    .await;
    let receiver = Receiver::start().await;
    // An endpoint subscribed to everything: any event written by mistake would show up as one
    // of its deliveries.
    let all = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": receiver.url, "events": ["*"]})),
        )
        .await;
    let all_id = all.body["id"].as_str().unwrap().to_owned();
    let before = api.call("GET", "/v1/webhooks", None).await.body;

    let post = |path: &'static str, body: String| {
        let api = &api;
        async move { api.send("POST", path, Some(KEY), &[], Some(body)).await }
    };

    // 400: malformed JSON.
    post("/v1/webhooks", r#"{"url": "#.into())
        .await
        .assert_error(400, "malformed_json");
    post("/v1/events", "not json".into())
        .await
        .assert_error(400, "malformed_json");
    post("/v1/webhooks/test", "{".into())
        .await
        .assert_error(400, "malformed_json");

    // 422: wrong shape, bad URL, unknown event type, short secret, bad data.
    post("/v1/webhooks", r#"{"events":["*"]}"#.into())
        .await
        .assert_error(422, "invalid_request");
    post(
        "/v1/webhooks",
        r#"{"url":"https://x.example/","events":["*"],"secert":"typo_in_the_name"}"#.into(),
    )
    .await
    .assert_error(422, "invalid_request");
    post(
        "/v1/webhooks",
        r#"{"url":"not a url","events":["*"]}"#.into(),
    )
    .await
    .assert_error(422, "invalid_url");
    post(
        "/v1/webhooks",
        r#"{"url":"ftp://x.example/","events":["*"]}"#.into(),
    )
    .await
    .assert_error(422, "invalid_url");
    post(
        "/v1/webhooks",
        r#"{"url":"https://x.example/","events":["transaction.exploded"]}"#.into(),
    )
    .await
    .assert_error(422, "unknown_event_type");
    post(
        "/v1/webhooks",
        r#"{"url":"https://x.example/","events":[]}"#.into(),
    )
    .await
    .assert_error(422, "invalid_events");
    let short = post(
        "/v1/webhooks",
        r#"{"url":"https://x.example/","events":["*"],"secret":"short"}"#.into(),
    )
    .await;
    short.assert_error(422, "invalid_secret");
    assert!(!short.body.to_string().contains("\"short\""));
    post(
        "/v1/webhooks",
        r#"{"url":"https://x.example/","events":["*"],"headers":{"x-nopos-signature":"forged"}}"#
            .into(),
    )
    .await
    .assert_error(422, "invalid_headers");
    post(
        "/v1/events",
        r#"{"type":"transaction.exploded","data":{}}"#.into(),
    )
    .await
    .assert_error(422, "unknown_event_type");
    post(
        "/v1/events",
        r#"{"type":"transaction.completed","data":{"amount":"lots"}}"#.into(),
    )
    .await
    .assert_error(422, "invalid_event_data");
    post(
        "/v1/events",
        r#"{"type":"payment.failed","data":[1,2]}"#.into(),
    )
    .await
    .assert_error(422, "invalid_event_data");
    post(
        "/v1/events",
        format!(r#"{{"type":"transaction.completed","data":{SALE},"id":"not-an-id"}}"#),
    )
    .await
    .assert_error(422, "invalid_id");
    api.send(
        "POST",
        "/v1/events",
        Some(KEY),
        &[("idempotency-key", "k")],
        Some(format!(
            r#"{{"type":"transaction.completed","data":{SALE},"id":"evt_both"}}"#
        )),
    )
    .await
    .assert_error(422, "invalid_request");
    post(
        "/v1/webhooks/test",
        r#"{"webhook_id":"nope","event_type":"transaction.completed"}"#.into(),
    )
    .await
    .assert_error(422, "invalid_id");
    post(
        "/v1/webhooks/test",
        format!(r#"{{"webhook_id":"{all_id}","event_type":"transaction.exploded"}}"#),
    )
    .await
    .assert_error(422, "unknown_event_type");
    api.call(
        "PATCH",
        &format!("/v1/webhooks/{all_id}"),
        Some(json!({"url": "mailto:x@example.com"})),
    )
    .await
    .assert_error(422, "invalid_url");
    api.call(
        "PATCH",
        &format!("/v1/webhooks/{all_id}"),
        Some(json!({"status": "paused"})),
    )
    .await
    .assert_error(422, "invalid_request");
    api.call(
        "POST",
        &format!("/v1/webhooks/{all_id}/rotate-secret"),
        Some(json!({"grace_period_secs": 99_999_999})),
    )
    .await
    .assert_error(422, "invalid_request");
    api.call(
        "GET",
        &format!("/v1/webhooks/{all_id}/deliveries?status=lost"),
        None,
    )
    .await
    .assert_error(422, "invalid_request");
    api.call(
        "GET",
        &format!("/v1/webhooks/{all_id}/deliveries?limit=0"),
        None,
    )
    .await
    .assert_error(422, "invalid_request");
    api.call(
        "GET",
        &format!("/v1/webhooks/{all_id}/stats?window_secs=x"),
        None,
    )
    .await
    .assert_error(422, "invalid_request");
    api.call(
        "POST",
        &format!("/v1/webhooks/{all_id}/recover"),
        Some(json!({"since": "yesterday"})),
    )
    .await
    .assert_error(422, "invalid_request");

    // 404: unknown or impossible ids, everywhere.
    for (method, path) in [
        ("GET", "/v1/webhooks/wh_unknown"),
        ("GET", "/v1/webhooks/not-an-id"),
        ("PATCH", "/v1/webhooks/wh_unknown"),
        ("DELETE", "/v1/webhooks/wh_unknown"),
        ("POST", "/v1/webhooks/wh_unknown/rotate-secret"),
        ("GET", "/v1/webhooks/wh_unknown/deliveries"),
        ("GET", "/v1/webhooks/wh_unknown/stats"),
        ("GET", "/v1/events/evt_unknown"),
        ("POST", "/v1/deliveries/dlv_unknown/retry"),
    ] {
        api.call(method, path, Some(json!({})))
            .await
            .assert_error(404, "not_found");
    }
    api.call(
        "POST",
        "/v1/webhooks/wh_unknown/recover",
        Some(json!({"since": "2024-11-10T10:30:00Z"})),
    )
    .await
    .assert_error(404, "not_found");
    post(
        "/v1/webhooks/test",
        r#"{"webhook_id":"wh_unknown","event_type":"transaction.completed"}"#.into(),
    )
    .await
    .assert_error(404, "not_found");

    // 413: a request body over 1 MiB, and event data over 256 KiB.
    let huge = format!(
        r#"{{"url":"https://x.example/","events":["*"],"description":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    post("/v1/webhooks", huge)
        .await
        .assert_error(413, "payload_too_large");
    let big_data = format!(
        r#"{{"type":"transaction.completed","data":{{"transaction_id":"t","amount":1,"status":"s","note":"{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    post("/v1/events", big_data)
        .await
        .assert_error(413, "event_too_large");

    // Nothing changed: the same endpoints, and no event reached the catch-all endpoint.
    assert_eq!(api.call("GET", "/v1/webhooks", None).await.body, before);
    assert!(api.deliveries(&all_id).await.is_empty());
    assert!(receiver.requests.is_empty());
    api.finish().await;
}

#[tokio::test]
async fn private_targets_are_refused_and_the_message_says_how_to_allow_them() {
    let api = Api::start(Setup {
        allow_private: false,
        dispatch: false,
        ..Setup::default()
    })
    .await;
    for url in [
        "http://127.0.0.1:3000/webhooks/nopos",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hooks",
    ] {
        let refused = api
            .send(
                "POST",
                "/v1/webhooks",
                Some(KEY),
                &[],
                Some(announcement_body(url)),
            )
            .await;
        refused.assert_error(422, "blocked_target");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("--dangerous-allow-private-targets"),
            "{message}"
        );
    }
    // The announcement's own URL is public and accepted.
    api.register("https://your-app.com/webhooks/nopos").await;
    assert_eq!(
        api.call("GET", "/v1/webhooks", None).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn configurable_limits() {
    let api = Api::start(Setup {
        config: ServerConfig::default()
            .max_body_size(512)
            .max_event_data_size(64),
        dispatch: false,
        ..Setup::default()
    })
    .await;
    let body = format!(
        r#"{{"url":"https://x.example/","events":["*"],"description":"{}"}}"#,
        "x".repeat(600)
    );
    api.send("POST", "/v1/webhooks", Some(KEY), &[], Some(body))
        .await
        .assert_error(413, "payload_too_large");
    api.emit_sale().await.assert_error(413, "event_too_large");
    let small = api
        .call(
            "POST",
            "/v1/events",
            Some(json!({"type": "customer.created", "data": {"customer_id": "c_1"}})),
        )
        .await;
    assert_eq!(small.status, StatusCode::ACCEPTED, "{}", small.body);
}

async fn idempotency_by_id_and_by_key(backend: Backend) {
    let api = Api::start(Setup {
        backend,
        dispatch: false,
        ..Setup::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let endpoint = api.register(&receiver.url).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();

    // By id.
    let body = format!(r#"{{"id":"evt_1234567890","type":"transaction.completed","data":{SALE}}}"#);
    let first = api
        .send("POST", "/v1/events", Some(KEY), &[], Some(body.clone()))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["id"], "evt_1234567890");
    assert_eq!(first.body["duplicate"], false);
    assert_eq!(first.body["deliveries"].as_array().unwrap().len(), 1);
    let again = api
        .send("POST", "/v1/events", Some(KEY), &[], Some(body))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["deliveries"], first.body["deliveries"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    // The same id for a different event is a conflict, and changes nothing.
    let changed = SALE.replace("125.50", "99.00");
    api.send(
        "POST",
        "/v1/events",
        Some(KEY),
        &[],
        Some(format!(
            r#"{{"id":"evt_1234567890","type":"transaction.completed","data":{changed}}}"#
        )),
    )
    .await
    .assert_error(409, "idempotency_conflict");

    // By key: the id is derived from the key, so a retry finds the first event.
    let keyed = |key: &'static str, data: &str| {
        let api = &api;
        let body = format!(r#"{{"type":"transaction.completed","data":{data}}}"#);
        async move {
            api.send(
                "POST",
                "/v1/events",
                Some(KEY),
                &[("Idempotency-Key", key)],
                Some(body),
            )
            .await
        }
    };
    let k1 = keyed("order-42", SALE).await;
    assert_eq!(k1.status, StatusCode::ACCEPTED, "{}", k1.body);
    assert_eq!(k1.body["duplicate"], false);
    // Whitespace differences are not a different event.
    let k1_again = keyed("order-42", &SALE.replace(',', ", ")).await;
    assert_eq!(k1_again.body["duplicate"], true);
    assert_eq!(k1_again.body["id"], k1.body["id"]);
    assert_eq!(k1_again.body["deliveries"], k1.body["deliveries"]);
    keyed("order-42", &changed)
        .await
        .assert_error(409, "idempotency_conflict");
    let k2 = keyed("order-43", SALE).await;
    assert_eq!(k2.body["duplicate"], false);
    assert_ne!(k2.body["id"], k1.body["id"]);
    let bad_key = "x".repeat(300);
    api.send(
        "POST",
        "/v1/events",
        Some(KEY),
        &[("Idempotency-Key", bad_key.as_str())],
        Some(format!(
            r#"{{"type":"transaction.completed","data":{SALE}}}"#
        )),
    )
    .await
    .assert_error(422, "invalid_idempotency_key");

    // Three events, three deliveries: no duplicates were enqueued.
    assert_eq!(api.deliveries(endpoint_id).await.len(), 3);

    // The stored event reads back byte for byte, with its delivery.
    let event = api.call("GET", "/v1/events/evt_1234567890", None).await;
    assert_eq!(event.status, StatusCode::OK);
    assert_eq!(event.body["type"], "transaction.completed");
    assert_eq!(event.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(event.body["deliveries"][0]["webhook_id"], endpoint_id);
    let raw = api
        .http
        .get(format!("{}/v1/events/evt_1234567890", api.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains(&format!(r#""data":{SALE}"#)), "{raw}");
    api.finish().await;
}

async fn events_are_delivered_signed_and_rotation_keeps_the_old_secret_valid(backend: Backend) {
    let api = Api::start(Setup {
        backend,
        ..Setup::default()
    })
    .await;
    let mut receiver = Receiver::start().await;
    let endpoint = api.register(&receiver.url).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();

    let emitted = api.emit_sale().await;
    assert_eq!(emitted.status, StatusCode::ACCEPTED);
    let (headers, body) = receiver.next().await;
    assert_eq!(
        verifies("your_webhook_secret", &headers, &body),
        Some(Scheme::NoPos)
    );
    assert_eq!(headers["x-nopos-event-type"], "transaction.completed");
    assert_eq!(
        headers["x-nopos-event-id"],
        emitted.body["id"].as_str().unwrap()
    );
    assert!(body.ends_with(format!(r#""data":{SALE}}}"#).as_bytes()));
    let delivery = emitted.body["deliveries"][0].as_str().unwrap();
    api.wait_for_delivery(&id, delivery, "delivered").await;

    // Rotate: the new secret is a generated whsec_ one; both sign during the grace period.
    let rotated = api
        .call("POST", &format!("/v1/webhooks/{id}/rotate-secret"), None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_"));
    let expires = OffsetDateTime::parse(
        rotated.body["previous_secrets_expire_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let grace = expires - OffsetDateTime::now_utc();
    assert!(grace > time::Duration::hours(23) && grace <= time::Duration::hours(24));
    assert!(
        !api.call("GET", &format!("/v1/webhooks/{id}"), None)
            .await
            .body
            .to_string()
            .contains(&new_secret)
    );

    api.emit_sale().await;
    let (headers, body) = receiver.next().await;
    assert_eq!(
        verifies("your_webhook_secret", &headers, &body),
        Some(Scheme::NoPos)
    );
    assert!(verifies(&new_secret, &headers, &body).is_some());
    assert!(
        Verifier::for_scheme(
            Scheme::StandardWebhooks,
            [Secret::new(&new_secret).unwrap()]
        )
        .verify(&headers, &body, OffsetDateTime::now_utc())
        .is_ok(),
        "the whsec_ secret also signs the Standard Webhooks headers"
    );

    // Rotating with no grace period retires the old secrets at once.
    let again = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/rotate-secret"),
            Some(json!({"grace_period_secs": 0})),
        )
        .await;
    let newest = again.body["secret"].as_str().unwrap().to_owned();
    api.emit_sale().await;
    let (headers, body) = receiver.next().await;
    assert!(verifies(&newest, &headers, &body).is_some());
    assert_eq!(verifies(&new_secret, &headers, &body), None);
    assert_eq!(verifies("your_webhook_secret", &headers, &body), None);
    api.finish().await;
}

#[tokio::test]
async fn the_test_tool_reports_status_latency_and_error_class() {
    let api = Api::start(Setup {
        dispatch: false,
        ..Setup::default()
    })
    .await;
    let mut receiver = Receiver::start().await;
    let endpoint = api.register(&receiver.url).await;
    let id = endpoint["id"].as_str().unwrap();
    let test = |event_type: &'static str| {
        let api = &api;
        let body = json!({"webhook_id": id, "event_type": event_type});
        async move { api.call("POST", "/v1/webhooks/test", Some(body)).await }
    };

    // The announcement's call, against a receiver that answers 200.
    let ok = test("transaction.completed").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["delivered"], true);
    assert_eq!(ok.body["status_code"], 200);
    assert!(ok.body["latency_ms"].is_u64());
    assert_eq!(ok.body["error"], Value::Null);
    let (headers, body) = receiver.next().await;
    assert_eq!(
        verifies("your_webhook_secret", &headers, &body),
        Some(Scheme::NoPos)
    );
    assert_eq!(headers["x-nopos-event-type"], "transaction.completed");
    assert_eq!(headers["x-nopos-delivery-attempt"], "1");
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["id"], ok.body["event_id"]);
    assert_eq!(sent["data"]["transaction_id"], "txn_9876543210");

    // Any catalogue type works, subscribed or not; a failing receiver is reported.
    receiver.status.store(503, Ordering::SeqCst);
    let failed = test("customer.created").await;
    assert_eq!(failed.body["delivered"], false);
    assert_eq!(failed.body["status_code"], 503);
    assert_eq!(failed.body["error"], "unavailable");
    receiver.next().await;
    receiver.status.store(500, Ordering::SeqCst);
    assert_eq!(test("payment.failed").await.body["error"], "server_error");
    receiver.next().await;

    // Nobody listening: a connection error, no status.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/webhooks/nopos")
    };
    let gone = api.register(&closed).await;
    let unreachable = api
        .call(
            "POST",
            "/v1/webhooks/test",
            Some(json!({"webhook_id": gone["id"], "event_type": "inventory.low_stock"})),
        )
        .await;
    assert_eq!(unreachable.body["delivered"], false);
    assert_eq!(unreachable.body["status_code"], Value::Null);
    assert_eq!(unreachable.body["error"], "connect");

    // The test tool stores nothing.
    assert!(api.deliveries(id).await.is_empty());
}

async fn deliveries_retry_recover_and_stats(backend: Backend) {
    let api = Api::start(Setup {
        backend,
        // One attempt, so a failure is final at once.
        schedule: RetrySchedule::new([time::Duration::ZERO]).unwrap(),
        ..Setup::default()
    })
    .await;
    let mut receiver = Receiver::start().await;
    let endpoint = api.register(&receiver.url).await;
    let id = endpoint["id"].as_str().unwrap().to_owned();

    receiver.status.store(500, Ordering::SeqCst);
    let first = api.emit_sale().await;
    let first_delivery = first.body["deliveries"][0].as_str().unwrap().to_owned();
    receiver.next().await;
    let failed = api.wait_for_delivery(&id, &first_delivery, "failed").await;
    assert_eq!(failed["attempt_count"], 1);
    assert_eq!(failed["attempts"][0]["status"], 500);
    assert_eq!(failed["attempts"][0]["error"], "server_error");

    // Filters.
    let only_failed = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?status=failed&limit=5"),
            None,
        )
        .await;
    assert_eq!(only_failed.body["data"].as_array().unwrap().len(), 1);
    let none_delivered = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries?status=delivered"),
            None,
        )
        .await;
    assert!(none_delivered.body["data"].as_array().unwrap().is_empty());

    // Retry: the receiver is fixed; the same delivery id arrives as attempt 2.
    receiver.status.store(200, Ordering::SeqCst);
    let retried = api
        .call(
            "POST",
            &format!("/v1/deliveries/{first_delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    let (headers, _) = receiver.next().await;
    assert_eq!(headers["x-nopos-delivery-id"], first_delivery.as_str());
    assert_eq!(headers["x-nopos-delivery-attempt"], "2");
    let delivered = api
        .wait_for_delivery(&id, &first_delivery, "delivered")
        .await;
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 2);

    // Recover: two more failures, then both are replayed at once.
    receiver.status.store(500, Ordering::SeqCst);
    let since = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut failing = Vec::new();
    for _ in 0..2 {
        let emitted = api.emit_sale().await;
        failing.push(emitted.body["deliveries"][0].as_str().unwrap().to_owned());
        receiver.next().await;
    }
    for delivery in &failing {
        api.wait_for_delivery(&id, delivery, "failed").await;
    }
    // A delivery that is not finished cannot be retried: 409.
    api.call(
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    let paused = api.emit_sale().await;
    let paused_delivery = paused.body["deliveries"][0].as_str().unwrap();
    api.wait_for_delivery(&id, paused_delivery, "paused").await;
    api.call(
        "POST",
        &format!("/v1/deliveries/{paused_delivery}/retry"),
        None,
    )
    .await
    .assert_error(409, "invalid_state");
    receiver.status.store(200, Ordering::SeqCst);
    api.call(
        "PATCH",
        &format!("/v1/webhooks/{id}"),
        Some(json!({"status": "enabled"})),
    )
    .await;
    receiver.next().await;
    api.wait_for_delivery(&id, paused_delivery, "delivered")
        .await;

    let recovered = api
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(recovered.status, StatusCode::ACCEPTED, "{}", recovered.body);
    assert_eq!(recovered.body["recovered"], 2);
    receiver.next().await;
    receiver.next().await;
    for delivery in &failing {
        api.wait_for_delivery(&id, delivery, "delivered").await;
    }

    // Stats: 1 + 1 (retry) + 2 + 1 (paused, then delivered) + 2 (recovered) = 7 attempts,
    // 4 delivered, 3 failed with 500.
    let stats = api
        .call("GET", &format!("/v1/webhooks/{id}/stats"), None)
        .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["window_secs"], 86_400);
    assert_eq!(stats.body["attempts"], 7, "{}", stats.body);
    assert_eq!(stats.body["delivered"], 4);
    assert_eq!(stats.body["failed"], 3);
    assert_eq!(stats.body["success_rate"], 0.5714);
    assert_eq!(stats.body["errors"]["server_error"], 3);
    assert_eq!(stats.body["status_codes"]["500"], 3);
    assert_eq!(stats.body["status_codes"]["200"], 4);
    let p50 = stats.body["latency_ms"]["p50"].as_u64().unwrap();
    let p95 = stats.body["latency_ms"]["p95"].as_u64().unwrap();
    assert!(p50 <= p95);
    assert_eq!(stats.body["health"]["consecutive_failures"], 0);
    let narrow = api
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/stats?window_secs=1"),
            None,
        )
        .await;
    assert_eq!(narrow.body["window_secs"], 1);
    api.finish().await;
}

#[tokio::test]
async fn the_event_catalogue_with_samples() {
    let api = Api::start(Setup {
        dispatch: false,
        ..Setup::default()
    })
    .await;
    let answer = api.call("GET", "/v1/event-types", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let types = answer.body["data"].as_array().unwrap();
    assert_eq!(types.len(), 13);
    for entry in types {
        assert!(entry["description"].is_string(), "{entry}");
        assert!(entry["sample"].is_object(), "{entry}");
    }
    let completed = types
        .iter()
        .find(|t| t["type"] == "transaction.completed")
        .unwrap();
    assert_eq!(completed["sample"]["transaction_id"], "txn_9876543210");
    // Every sample is accepted back as event data.
    for entry in types {
        let emitted = api
            .call(
                "POST",
                "/v1/events",
                Some(json!({"type": entry["type"], "data": entry["sample"]})),
            )
            .await;
        assert_eq!(emitted.status, StatusCode::ACCEPTED, "{}", emitted.body);
    }
}
