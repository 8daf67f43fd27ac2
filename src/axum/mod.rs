//! An axum extractor for verified, parsed and deduplicated NoPOS deliveries (feature `axum`).
//!
//! This module owns the axum glue only: [`VerifiedEvent`](crate::VerifiedEvent) as an extractor
//! and [`ReceiveError`](crate::ReceiveError) as its rejection. The extractor takes the
//! [`WebhookReceiver`](crate::WebhookReceiver) from the application state (through
//! [`FromRef`](::axum::extract::FromRef), so it can be one field of a larger state), reads the raw
//! body up to the receiver's body limit, takes `now` from the system clock, and calls
//! [`WebhookReceiver::receive`](crate::WebhookReceiver::receive): signature first, over the exact
//! bytes, then the envelope, then the duplicate check.
//!
//! Failures answer with a short JSON body and the status of their
//! [`RejectReason`](crate::RejectReason): `401` for a missing, malformed, stale or non-matching
//! signature, `400` for a genuine body that is not a valid envelope, `413` for a body over the
//! limit, `503` when the deduplicator fails. To answer differently, extract
//! `Result<VerifiedEvent, ReceiveError>` and build your own response.
//!
//! A duplicate is extracted with [`duplicate`](crate::VerifiedEvent::duplicate) set: answer `200`
//! without processing it. When processing a new event fails, call
//! [`WebhookReceiver::forget`](crate::WebhookReceiver::forget) before answering with an error, so
//! that the retry is processed (the [tower layer](crate::tower) does this by itself; when it is
//! on the route, the extractor takes its result instead of verifying again).
//!
//! ```
//! use axum::{Router, extract::State, http::StatusCode, routing::post};
//! use nopos_webhooks::{Event, MemoryDeduplicator, Secret, Verifier, VerifiedEvent, WebhookReceiver};
//!
//! async fn webhook(
//!     State(receiver): State<WebhookReceiver>,
//!     event: VerifiedEvent,
//! ) -> StatusCode {
//!     if event.duplicate {
//!         return StatusCode::OK; // already processed: acknowledge only
//!     }
//!     match &event.envelope.data {
//!         Event::TransactionCompleted(sale) => println!("sale {}", sale.transaction_id),
//!         _ => {}
//!     }
//!     StatusCode::OK
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = WebhookReceiver::new(Verifier::new([Secret::new("your_webhook_secret")?]))
//!     .with_deduplicator(MemoryDeduplicator::default());
//! let app: Router = Router::new()
//!     .route("/webhooks/nopos", post(webhook))
//!     .with_state(receiver);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod extract;
mod rejection;
