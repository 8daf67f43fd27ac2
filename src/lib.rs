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
//! - [`Endpoint`]: where events go ([`EndpointUrl`]), which ones ([`EventFilter`]), signed with
//!   what ([`SecretSet`]), with which extra headers ([`CustomHeaders`]).
//! - [`AddressPolicy`] ([`net`]): the SSRF guard that refuses private and other non-public
//!   targets, at registration and at connect time.
//! - [`DeliveryMachine`]: the sans-IO state machine of one delivery, with its [`RetrySchedule`],
//!   [`AttemptOutcome`] classification, [`EndpointHealth`] and [`build_request`] for the exact
//!   HTTP request of each attempt.
//! - [`signature`]: signing deliveries and verifying them ([`Verifier`]).
//! - [`receiver`]: the receiver's pipeline — verify the raw body, parse it, skip duplicates —
//!   with [`WebhookReceiver`], [`Deduplicator`] and [`MemoryDeduplicator`], and HTTP status codes
//!   for every failure ([`RejectReason`]).
//!
//! ## Features
//! Default features are empty. `tower` adds `tower::VerifyLayer` for any tower or hyper
//! service; `axum` adds an extractor for [`VerifiedEvent`] (and includes `tower`); `memory` and
//! `sqlite` add [`store`] backends, the SQLite one with a transactional outbox and a
//! deduplicator. Adapters read the system clock and the network or disk; the core never does.
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

mod delivery;
mod endpoint;
mod envelope;
mod event;
mod event_type;
mod id;
mod money;
pub mod net;
pub mod random;
pub mod receiver;
mod secret;
pub mod security;
pub mod signature;
pub mod store;
mod timestamp;
pub mod transport;

pub use delivery::{
    AttemptOutcome, AttemptRecord, AttemptResult, AttemptToSend, DeliveryEvent, DeliveryId,
    DeliveryMachine, DeliveryState, DeliveryStatus, EndpointHealth, ErrorClass, HealthPolicy,
    Jitter, MAX_EXCERPT_BYTES, MAX_RETRY_AFTER, MAX_SCHEDULE_ATTEMPTS, MAX_SCHEDULE_DELAY,
    NOPOS_DELIVERY_ATTEMPT, NOPOS_DELIVERY_ID, NOPOS_EVENT_ID, NOPOS_EVENT_TYPE, NOPOS_USER_AGENT,
    OutcomeClass, OutcomeError, ReplayError, RequestError, RetryAfter, RetrySchedule,
    ScheduleError, SerializedEvent, TransportError, body_excerpt, build_request,
};
pub use endpoint::{
    CustomHeaderError, CustomHeaders, DisableReason, Endpoint, EndpointId, EndpointRecord,
    EndpointStatus, EndpointUrl, EventFilter, EventPattern, FilterError,
    MAX_CUSTOM_HEADER_VALUE_LEN, MAX_CUSTOM_HEADERS, MAX_DESCRIPTION_LEN, MAX_FILTER_PATTERNS,
    MAX_URL_LEN, PatternError, RecordError, StoredSecret, UrlError, is_reserved_header,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "dispatcher")]
#[cfg_attr(docsrs, doc(cfg(feature = "dispatcher")))]
pub mod dispatcher;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

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
pub use net::{AddressPolicy, BlockedTarget, Host, HostCheck, HostError, NonPublicReason};
pub use receiver::{
    DedupError, DedupOutcome, Deduplicator, MemoryDeduplicator, ReceiveError, RejectReason,
    VerifiedEvent, WebhookReceiver,
};
pub use secret::{
    ActiveSecret, GENERATED_SECRET_BYTES, MAX_ACTIVE_SECRETS, MAX_PROVIDER_SECRET_LEN,
    MAX_SECRET_LEN, MIN_SECRET_LEN, STANDARD_SECRET_PREFIX, Secret, SecretError, SecretSet,
};
pub use signature::{Scheme, Verified, Verifier, VerifyError};

/// The README's code blocks, run as doc tests so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
