//! The announcement's `/webhooks/nopos` endpoint in Rust: verify the signature over the raw body,
//! skip duplicates, acknowledge with `200` at once, and process `transaction.completed`,
//! `inventory.low_stock` and `payment.succeeded` in the background.
//!
//! ```text
//! cargo run --example receiver_axum --features axum                  # 127.0.0.1:3000
//! cargo run --example receiver_axum --features axum -- 0.0.0.0:8080  # or NOPOS_RECEIVER_ADDR
//! ```
//!
//! The secret is `NOPOS_WEBHOOK_SECRET` (default: the announcement's `your_webhook_secret`);
//! during a rotation put the previous one in `NOPOS_WEBHOOK_PREVIOUS_SECRET`. At start the example
//! prints a `curl` command with a freshly signed sample delivery (valid for five minutes): run it
//! twice to see the second one acknowledged as a duplicate.
//!
//! **Fast acknowledgement.** The handler only verifies, deduplicates and queues; a worker task does
//! the slow work. The queue is bounded: when it is full the handler forgets the event id and
//! answers `503` with `Retry-After`, so NoPOS retries later instead of the event being dropped or
//! memory growing without bound.

use std::error::Error;
use std::fmt::Write as _;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use nopos_webhooks::{
    Envelope, Event, EventId, EventType, InventoryLowStock, MemoryDeduplicator, PaymentSucceeded,
    Secret, TransactionCompleted, VerifiedEvent, Verifier, WebhookReceiver, signature,
};
use time::OffsetDateTime;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Events accepted but not yet processed; beyond this the endpoint answers `503`.
const QUEUE_CAPACITY: usize = 1024;

type BoxError = Box<dyn Error + Send + Sync>;

/// The application state; the extractor finds the receiver in it through `FromRef`.
#[derive(Clone)]
struct AppState {
    receiver: WebhookReceiver,
    queue: mpsc::Sender<Envelope<Event>>,
}

impl FromRef<AppState> for WebhookReceiver {
    fn from_ref(state: &AppState) -> WebhookReceiver {
        state.receiver.clone()
    }
}

/// `POST /webhooks/nopos`. Reaching the body means the signature is valid and the JSON parsed;
/// otherwise the extractor has already answered `401`, `400` or `413`.
async fn nopos_webhook(State(state): State<AppState>, event: VerifiedEvent) -> Response {
    if event.duplicate {
        // Already accepted once (a retry after a lost 200): acknowledge, do not process again.
        return (StatusCode::OK, "OK (duplicate)").into_response();
    }
    let id = event.envelope.id.clone();
    match state.queue.try_send(event.envelope) {
        Ok(()) => (StatusCode::OK, "OK").into_response(),
        Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
            // Not queued: forget the id so that NoPOS's retry is processed, and ask for it later.
            if let Err(err) = state.receiver.forget(&id).await {
                eprintln!("cannot forget {id}: {err}");
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "30")],
                "busy, retry later",
            )
                .into_response()
        }
    }
}

/// Drains the queue: the `switch (event.type)` of the announcement.
async fn worker(mut queue: mpsc::Receiver<Envelope<Event>>, receiver: WebhookReceiver) {
    while let Some(envelope) = queue.recv().await {
        let result = match &envelope.data {
            Event::TransactionCompleted(sale) => handle_transaction_complete(sale).await,
            Event::InventoryLowStock(stock) => handle_low_stock(stock).await,
            Event::PaymentSucceeded(payment) => handle_payment_success(payment).await,
            _ => {
                println!("{}: not subscribed, ignored", envelope.event_type());
                Ok(())
            }
        };
        if let Err(err) = result {
            eprintln!("processing {} failed: {err}", envelope.id);
            // The sender already has its 200; forgetting lets a replay of this event through.
            let _ = receiver.forget(&envelope.id).await;
        }
    }
}

// The announcement's use cases. Real handlers send email and create purchase orders; these print.
#[allow(clippy::unused_async, reason = "stands in for real IO")]
async fn handle_transaction_complete(sale: &TransactionCompleted) -> Result<(), BoxError> {
    let to = sale.customer_email.as_deref().unwrap_or("(no email)");
    println!(
        "order confirmation to {to}: sale {} for {}",
        sale.transaction_id, sale.amount
    );
    Ok(())
}

#[allow(clippy::unused_async, reason = "stands in for real IO")]
async fn handle_low_stock(stock: &InventoryLowStock) -> Result<(), BoxError> {
    if stock.quantity <= stock.reorder_point {
        let quantity = stock.reorder_quantity.unwrap_or(stock.reorder_point * 2);
        let supplier = stock.supplier_id.as_deref().unwrap_or("(default supplier)");
        println!(
            "purchase order: {quantity} x {} from {supplier}",
            stock.product_id
        );
    }
    Ok(())
}

#[allow(clippy::unused_async, reason = "stands in for real IO")]
async fn handle_payment_success(payment: &PaymentSucceeded) -> Result<(), BoxError> {
    println!(
        "payment {} of {} for sale {}",
        payment.payment_id, payment.amount, payment.transaction_id
    );
    Ok(())
}

/// A `curl` command that sends a freshly signed sample delivery to `addr`.
fn sample_curl(addr: &str, secret: &Secret) -> Result<String, BoxError> {
    let now = OffsetDateTime::now_utc();
    let event = Event::sample(&EventType::TRANSACTION_COMPLETED).ok_or("no sample")?;
    let envelope = Envelope::new(EventId::generate(now), now, event);
    let body = envelope.to_bytes()?;
    let mut command =
        format!("curl -i http://{addr}/webhooks/nopos -H 'content-type: application/json'");
    for (name, value) in signature::sign([secret], envelope.id.as_str(), now, &body)?.iter() {
        write!(command, " -H '{name}: {}'", value.to_str()?)?;
    }
    let body = std::str::from_utf8(&body)?.replace('\'', r"'\''");
    write!(command, " --data-binary '{body}'")?;
    Ok(command)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("NOPOS_RECEIVER_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let current = Secret::new(
        &std::env::var("NOPOS_WEBHOOK_SECRET").unwrap_or_else(|_| "your_webhook_secret".into()),
    )?;
    let mut secrets = vec![current.clone()];
    if let Ok(previous) = std::env::var("NOPOS_WEBHOOK_PREVIOUS_SECRET") {
        secrets.push(Secret::new(&previous)?);
    }

    let receiver = WebhookReceiver::new(Verifier::new(secrets))
        .with_deduplicator(MemoryDeduplicator::default());
    let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
    let worker = tokio::spawn(worker(jobs, receiver.clone()));

    let app = Router::new()
        .route("/webhooks/nopos", post(nopos_webhook))
        .with_state(AppState { receiver, queue });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!(
        "listening on http://{local}/webhooks/nopos; try:\n\n{}\n",
        sample_curl(&local.to_string(), &current)?
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // The server (and with it every queue sender) is gone: the worker finishes what is queued.
    worker.await?;
    Ok(())
}
