//! The transactional outbox: a sale and its `transaction.completed` webhook are written in one
//! SQLite transaction, so they commit together; a sale that is rolled back leaves no webhook.
//!
//! ```text
//! cargo run --example outbox --features sqlite              # in a temporary file
//! cargo run --example outbox --features sqlite -- pos.db    # in pos.db (kept)
//! ```

use std::error::Error;
use std::path::PathBuf;

use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{EmitReceipt, Store, StoreConfig};
use nopos_webhooks::{
    Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter, EventId, Money, Secret,
    SecretSet, SerializedEvent, TransactionCompleted,
};
use sqlx::Row;
use time::{Duration, OffsetDateTime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let temporary = tempfile::tempdir()?;
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| temporary.path().join("pos.db"), PathBuf::from);
    let store = SqliteStore::open(&path, StoreConfig::default()).await?;
    println!("database: {}", path.display());

    // The POS backend's own table lives in the same file as the webhook tables.
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS sales (id TEXT PRIMARY KEY, amount TEXT NOT NULL, \
         status TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await?;

    let now = OffsetDateTime::now_utc();
    let endpoint = Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse("https://pos-app.example.com/webhooks/nopos")?,
        EventFilter::parse(["transaction.completed"])?,
        SecretSet::new(Secret::new("your_webhook_secret")?),
        now,
    );
    store.create_endpoint(&endpoint).await?;

    // A sale that completes: the row and the webhook commit together.
    let sale_id = format!("txn_{}", now.unix_timestamp());
    let receipt = complete_sale(&store, &sale_id, "125.50", now, Outcome::Commit).await?;
    println!(
        "committed sale {sale_id}: event {} with {} delivery",
        receipt.event_id,
        receipt.deliveries.len()
    );

    // A sale whose payment step fails after the event was emitted: rolling back the
    // transaction takes the webhook with it, so no app hears of a sale that never happened.
    let failed_id = format!("{sale_id}_declined");
    let receipt = complete_sale(&store, &failed_id, "19.99", now, Outcome::RollBack).await?;
    println!("rolled back sale {failed_id}: event {}", receipt.event_id);
    let rolled_back = store.get_event(&receipt.event_id).await;
    println!(
        "  its event after the rollback: {}",
        rolled_back.map_or_else(|err| err.to_string(), |_| "stored (unexpected)".into())
    );

    let sales = sqlx::query("SELECT COUNT(*) FROM sales")
        .fetch_one(store.pool())
        .await?
        .get::<i64, _>(0);
    println!("sales in the table: {sales}");

    // What a dispatcher does next: claim the due deliveries (one, for the committed sale).
    for claim in store.claim(now, 10, Duration::seconds(30)).await? {
        println!(
            "due: delivery {} of {} to {}, attempt {}",
            claim.attempt.delivery_id,
            claim.event.event_type(),
            claim.endpoint.url,
            claim.attempt.attempt
        );
    }
    store.close().await;
    Ok(())
}

/// What happens to the sale's transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Commit,
    RollBack,
}

/// Records a completed sale and emits its webhook in one transaction.
async fn complete_sale(
    store: &SqliteStore,
    id: &str,
    amount: &str,
    now: OffsetDateTime,
    outcome: Outcome,
) -> Result<EmitReceipt, Box<dyn Error>> {
    // `BEGIN IMMEDIATE` takes the write lock at once, so the transaction never fails half-way
    // because another writer got there first.
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("INSERT INTO sales (id, amount, status) VALUES (?, ?, 'completed')")
        .bind(id)
        .bind(amount)
        .execute(&mut *tx)
        .await?;

    let sale = TransactionCompleted::new(id, amount.parse::<Money>()?, "completed");
    let envelope = Envelope::new(EventId::generate(now), now, Event::from(sale));
    let event = SerializedEvent::from_envelope(&envelope)?;
    let receipt = store.emit_in(&mut tx, &event, now).await?;

    match outcome {
        Outcome::Commit => {
            tx.commit().await?;
            // Wake this process's dispatcher now rather than at its next poll.
            store.notify_work();
        }
        Outcome::RollBack => tx.rollback().await?,
    }
    Ok(receipt)
}
