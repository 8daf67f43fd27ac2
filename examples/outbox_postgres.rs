//! The transactional outbox on PostgreSQL: a sale and its `transaction.completed` webhook event
//! commit together, or not at all.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --example outbox_postgres --features postgres
//! ```
//!
//! It reads the URL from `NOPOS_WEBHOOKS_TEST_POSTGRES` or `DATABASE_URL`, works in a schema of
//! its own and drops that schema at the end.

use nopos_webhooks::store::postgres::PostgresStore;
use nopos_webhooks::store::{DeliveryQuery, Store, StoreConfig, StoreError};
use nopos_webhooks::{
    Endpoint, EndpointId, EndpointUrl, Envelope, Event, EventFilter, EventId, Money, Secret,
    SecretSet, SerializedEvent, TransactionCompleted,
};
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = ["NOPOS_WEBHOOKS_TEST_POSTGRES", "DATABASE_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
    else {
        eprintln!("set DATABASE_URL (or NOPOS_WEBHOOKS_TEST_POSTGRES) to a PostgreSQL URL");
        return Ok(());
    };
    let schema = format!(
        "nopos_outbox_example_{}",
        hex::encode(nopos_webhooks::random::bytes::<4>())
    );
    let store = PostgresStore::connect_with_schema(&url, &schema, StoreConfig::default()).await?;
    let result = run(&store).await;
    // The example cleans up after itself, whatever happened.
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(store.pool())
        .await?;
    result
}

async fn run(store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    let now = OffsetDateTime::now_utc();
    // The application's own table, next to the store's in the same database.
    let sales = format!("\"{}\".sales", store.schema());
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {sales} (id TEXT PRIMARY KEY, total TEXT NOT NULL)"
    )))
    .execute(store.pool())
    .await?;
    let insert_sale = format!("INSERT INTO {sales} (id, total) VALUES ($1, $2)");

    let endpoint = Endpoint::new(
        EndpointId::generate(now),
        EndpointUrl::parse("https://pos-app.example.com/webhooks/nopos")?,
        EventFilter::parse(["transaction.*"])?,
        SecretSet::new(Secret::generate()),
        now,
    );
    store.create_endpoint(&endpoint).await?;

    // A completed sale: the row and the event commit in one transaction.
    let completed = sale_event("txn_1001", "125.50", now)?;
    let mut tx = store.pool().begin().await?;
    sqlx::query(AssertSqlSafe(insert_sale.clone()))
        .bind("txn_1001")
        .bind("125.50")
        .execute(&mut *tx)
        .await?;
    let receipt = store.emit_in(&mut tx, &completed, now).await?;
    tx.commit().await?;
    println!(
        "sale txn_1001 committed with event {} and {} delivery(ies) queued",
        receipt.event_id,
        receipt.deliveries.len()
    );

    // A sale that fails after its event was emitted: rolling back removes both.
    let abandoned = sale_event("txn_1002", "9.99", now)?;
    let mut tx = store.pool().begin().await?;
    sqlx::query(AssertSqlSafe(insert_sale))
        .bind("txn_1002")
        .bind("9.99")
        .execute(&mut *tx)
        .await?;
    store.emit_in(&mut tx, &abandoned, now).await?;
    println!("sale txn_1002: card declined, rolling back");
    tx.rollback().await?;

    match store.get_event(abandoned.id()).await {
        Err(StoreError::NotFound { .. }) => println!("event {} was never sent", abandoned.id()),
        other => return Err(format!("expected no event, got {other:?}").into()),
    }
    let queued = store
        .list_deliveries(&DeliveryQuery::endpoint(endpoint.id.clone()))
        .await?;
    println!(
        "{} delivery(ies) queued for {}: a dispatcher claims and sends them",
        queued.len(),
        endpoint.url
    );
    Ok(())
}

fn sale_event(
    id: &str,
    amount: &str,
    now: OffsetDateTime,
) -> Result<SerializedEvent, Box<dyn std::error::Error>> {
    let sale = TransactionCompleted::new(id, amount.parse::<Money>()?, "completed");
    let envelope = Envelope::new(EventId::generate(now), now, Event::from(sale));
    Ok(SerializedEvent::from_envelope(&envelope)?)
}
