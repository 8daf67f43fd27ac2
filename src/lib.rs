//! # nopos-webhooks
//!
//! NoPOS webhooks for both sides of the wire: typed commerce events in a fixed envelope, for the
//! POS backends that emit them and the apps that receive them.
//!
//! This crate's core is **sans-IO**: it opens no sockets, reads no clock and spawns no tasks. Every
//! function that needs the time takes it as an argument, and randomness either comes in as an
//! argument or from the operating system's generator ([`random`]). Adapters that do IO (HTTP
//! clients, servers, storage) are optional cargo features; with default features the crate is
//! types, parsing and checks only.
//!
//! ## What is here
//! - [`Event`]: the thirteen NoPOS event types with typed payloads, plus [`Event::Unknown`] for types
//!   added later; [`EventPayload`] to define your own event types.
//! - [`Envelope`]: `{id, type, created_at, data}`, serialized once to bytes and parsed back.
//! - [`Money`]: exact decimal amounts (`125.50` stays `125.50`; no `f64` anywhere).
//! - [`EventId`] and [`EventType`]: validated newtypes for the envelope's `id` and `type`.
//!
//! ```
//! use nopos_webhooks::{Envelope, Event, EventId, TransactionCompleted};
//! use time::macros::datetime;
//!
//! let at = datetime!(2024-11-10 10:30 UTC);
//! let mut sale = TransactionCompleted::new("txn_9876543210", "125.50".parse::<nopos_webhooks::Money>()?, "completed");
//! sale.customer_id = Some("cust_123456".into());
//!
//! let body = Envelope::new(EventId::generate(at), at, Event::from(sale)).to_bytes()?;
//! let parsed = Envelope::<Event>::from_slice(&body)?;
//! assert_eq!(parsed.event_type(), "transaction.completed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod envelope;
mod event;
mod event_type;
mod id;
mod money;
pub mod random;
mod secret;
pub mod signature;

pub use envelope::{EncodeError, Envelope, EnvelopeError};
pub use event::{
    CATALOGUE, CustomerCreated, CustomerUpdated, DataError, Event, EventPayload, EventTypeInfo,
    InventoryLowStock, InventoryUpdated, LineItem, LoyaltyPointsEarned, LoyaltyRewardRedeemed,
    MAX_DATA_DEPTH, PaymentFailed, PaymentSucceeded, ProductCreated, ProductUpdated,
    TransactionCompleted, TransactionCreated, TransactionRefunded, UnknownEvent, WebhookEvent,
};
pub use event_type::{EventType, EventTypeError, MAX_EVENT_TYPE_LEN};
pub use id::{EventId, ID_RANDOM_BYTES, IdError, MAX_ID_LEN};
pub use money::{MAX_MONEY_SCALE, Money, MoneyError};
pub use secret::{
    ActiveSecret, GENERATED_SECRET_BYTES, MAX_ACTIVE_SECRETS, MAX_PROVIDER_SECRET_LEN,
    MAX_SECRET_LEN, MIN_SECRET_LEN, STANDARD_SECRET_PREFIX, Secret, SecretError, SecretSet,
};
pub use signature::{Scheme, Verified, Verifier, VerifyError};

/// The README's code blocks, run as doc tests so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
