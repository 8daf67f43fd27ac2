//! A tower layer that verifies NoPOS deliveries in front of any tower or hyper service
//! (feature `tower`).
//!
//! This module owns the tower glue only: reading the body under the limit, reading the system
//! clock, and turning failures into responses. Verification, parsing and deduplication are the
//! core's [`WebhookReceiver`](crate::WebhookReceiver); nothing here re-implements them.
//!
//! [`VerifyLayer`] wraps a service that takes `http::Request<Full<Bytes>>`. For each request it:
//!
//! 1. refuses a body whose declared size is over the limit, then buffers the body, stopping at the
//!    limit (`413`);
//! 2. verifies the signature over the buffered bytes (`401`), parses the envelope (`400`), and
//!    checks for a duplicate (`503` if the deduplicator fails);
//! 3. calls the inner service with the same bytes as a [`Full`] body and the
//!    [`VerifiedEvent`](crate::VerifiedEvent) in the request's extensions;
//! 4. if the inner service fails or answers with a non-2xx status for a new (not duplicate)
//!    event, forgets the event id in the deduplicator, so the sender's retry is processed.
//!
//! Refusals are JSON (`{"error":{"code":"…","message":"…"}}`, see
//! [`RejectReason`](crate::RejectReason)) and never contain a secret or an expected signature.
//! Duplicates are passed on with `duplicate: true` for the inner service to acknowledge.
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use nopos_webhooks::tower::VerifyLayer;
//! use nopos_webhooks::{MemoryDeduplicator, Secret, Verifier, VerifiedEvent, WebhookReceiver};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let receiver = WebhookReceiver::new(Verifier::new([Secret::new("your_webhook_secret")?]))
//!     .with_deduplicator(MemoryDeduplicator::default());
//! let service = ServiceBuilder::new()
//!     .layer(VerifyLayer::new(receiver))
//!     .service(service_fn(|request: http::Request<Full<Bytes>>| async move {
//!         let event = request.extensions().get::<VerifiedEvent>().expect("set by the layer");
//!         if !event.duplicate {
//!             println!("processing {}", event.envelope);
//!         }
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("OK"))))
//!     }));
//!
//! // An unsigned request never reaches the inner service.
//! let response = service.oneshot(http::Request::new(Full::new(Bytes::from("{}")))).await?;
//! assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With axum, put the layer on the webhook route (`Router::route_layer`) and extract
//! [`VerifiedEvent`](crate::VerifiedEvent) in the handler; the extractor takes the layer's result
//! instead of verifying again.

mod error;
mod future;
mod layer;

pub use error::BoxError;
#[cfg(feature = "axum")]
pub(crate) use error::read_body;
pub use future::{ResponseBody, ResponseFuture};
pub use layer::{VerifyLayer, VerifyService};

#[doc(no_inline)]
pub use http_body_util::Full;
