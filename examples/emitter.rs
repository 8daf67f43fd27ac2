//! A POS backend that emits webhooks: SQLite store, one endpoint, a sale, the dispatcher.
//!
//! ```text
//! cargo run --example receiver_axum --features axum      # terminal 1: a receiver on :3000
//! cargo run --example emitter --features sqlite,dispatcher,reqwest
//! ```

use std::sync::Arc;

use nopos_webhooks::dispatcher::Dispatcher;
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{
    AddressPolicy, Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter, EventId,
    Secret, SecretSet, SerializedEvent, TransactionCompleted,
};
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or("http://127.0.0.1:3000/webhooks/nopos".into());
    // Local development: the receiver is on loopback, which production refuses by default.
    let config = StoreConfig::default()
        .address_policy(AddressPolicy::new().dangerous_allow_private_targets());
    let store = Arc::new(SqliteStore::open("emitter-example.db", config).await?);

    let now = OffsetDateTime::now_utc();
    let secret = Secret::new(
        &std::env::var("NOPOS_WEBHOOK_SECRET").unwrap_or("your_webhook_secret".into()),
    )?;
    let events = EventFilter::parse([
        "transaction.completed",
        "inventory.low_stock",
        "payment.succeeded",
    ])?;
    let endpoint = Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse(&url)?,
        events,
        SecretSet::new(secret),
        now,
    );
    store.create_endpoint(&endpoint).await?;

    // A sale completes: the event is durable when `emit` returns.
    let mut sale = TransactionCompleted::new(
        "txn_9876543210",
        "125.50".parse::<nopos_webhooks::Money>()?,
        "completed",
    );
    sale.customer_id = Some("cust_123456".into());
    let envelope = Envelope::new(EventId::generate(now), now, Event::from(sale));
    let receipt = store
        .emit(&SerializedEvent::from_envelope(&envelope)?, now)
        .await?;
    println!(
        "emitted {} to {} endpoint(s); delivering until Ctrl-C",
        receipt.event_id,
        receipt.deliveries.len()
    );

    let client = ReqwestClient::builder()
        .dangerous_allow_private_targets()
        .build()?;
    Dispatcher::new(store, client)
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
