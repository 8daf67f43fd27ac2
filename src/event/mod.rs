//! The event catalogue: typed payloads, the [`Event`] enum over them, and custom events.
//!
//! This module owns what may stand in an envelope's `data`: the thirteen built-in NoPOS event types,
//! integrators' own types ([`EventPayload`]), and [`UnknownEvent`] for types this version does not
//! know. It never touches the envelope's other fields or the wire bytes; `envelope` does.

mod payloads;
mod samples;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

pub use payloads::{
    CustomerCreated, CustomerUpdated, InventoryLowStock, InventoryUpdated, LineItem,
    LoyaltyPointsEarned, LoyaltyRewardRedeemed, PaymentFailed, PaymentSucceeded, ProductCreated,
    ProductUpdated, TransactionCompleted, TransactionCreated, TransactionRefunded,
};

use crate::EventType;

/// A serde payload type bound to one event type name: every built-in payload, and your own.
///
/// Implementing it is how an integrator defines a custom event (the announcement's "custom event
/// definitions"). Such a type then works wherever a built-in one does: in an
/// [`Envelope`](crate::Envelope), when emitting, in subscriptions and when parsing.
///
/// ```
/// use nopos_webhooks::{Envelope, EventId, EventPayload, EventType};
/// use serde::{Deserialize, Serialize};
/// use time::macros::datetime;
///
/// #[derive(Serialize, Deserialize)]
/// struct GiftCardIssued {
///     card_id: String,
///     balance: nopos_webhooks::Money,
/// }
///
/// impl EventPayload for GiftCardIssued {
///     const EVENT_TYPE: EventType = EventType::from_static("acme.gift_card.issued");
/// }
///
/// let at = datetime!(2024-11-10 10:30 UTC);
/// let card = GiftCardIssued { card_id: "gc_1".into(), balance: "50.00".parse()? };
/// let bytes = Envelope::new(EventId::generate(at), at, card).to_bytes()?;
///
/// let parsed = Envelope::<GiftCardIssued>::from_slice(&bytes)?;
/// assert_eq!(parsed.data.balance.to_string(), "50.00");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait EventPayload: Serialize + DeserializeOwned {
    /// The event type name this payload is sent under.
    const EVENT_TYPE: EventType;
}

/// What can be the `data` of an [`Envelope`](crate::Envelope): a single [`EventPayload`] type, the
/// [`Event`] enum over the catalogue, or your own enum over several types.
pub trait WebhookEvent: Sized {
    /// The event type name of this value.
    fn event_type(&self) -> EventType;

    /// Serializes the `data` object.
    fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;

    /// Parses the `data` object of an envelope whose `type` is `event_type`.
    ///
    /// # Errors
    /// [`DataError::UnexpectedType`] when this type cannot represent `event_type`, and
    /// [`DataError::Invalid`] when the data does not match the payload's shape.
    fn from_data(event_type: &EventType, data: &RawValue) -> Result<Self, DataError>;
}

/// Why an envelope's `data` could not become the requested payload type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The envelope's `type` is not one the requested Rust type represents.
    #[error("event type `{found}` is not `{expected}`")]
    UnexpectedType {
        /// The type the Rust payload represents.
        expected: EventType,
        /// The type in the envelope.
        found: EventType,
    },
    /// The data of an unknown event type nests arrays and objects deeper than
    /// [`MAX_DATA_DEPTH`], the limit serde_json applies to known payloads.
    #[error("data for `{event_type}` nests deeper than {MAX_DATA_DEPTH} levels")]
    TooDeep {
        /// The event type being parsed.
        event_type: EventType,
    },
    /// The data does not match the payload's shape (missing field, wrong type, bad amount, …).
    #[error("invalid data for `{event_type}`: {source}")]
    Invalid {
        /// The event type being parsed.
        event_type: EventType,
        /// What serde found wrong; it names the field and position.
        #[source]
        source: serde_json::Error,
    },
}

/// How deep arrays and objects may nest inside kept raw data: serde_json's own recursion limit,
/// so that an unknown event is never accepted when the same data under a known type would fail.
pub const MAX_DATA_DEPTH: usize = 128;

/// The deepest nesting of arrays and objects in valid JSON text, with strings skipped.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn parse_payload<T: DeserializeOwned>(
    event_type: &EventType,
    data: &RawValue,
) -> Result<T, DataError> {
    serde_json::from_str(data.get()).map_err(|source| DataError::Invalid {
        event_type: event_type.clone(),
        source,
    })
}

impl<T: EventPayload> WebhookEvent for T {
    fn event_type(&self) -> EventType {
        T::EVENT_TYPE
    }

    fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }

    fn from_data(event_type: &EventType, data: &RawValue) -> Result<T, DataError> {
        if *event_type != T::EVENT_TYPE {
            return Err(DataError::UnexpectedType {
                expected: T::EVENT_TYPE,
                found: event_type.clone(),
            });
        }
        parse_payload(event_type, data)
    }
}

/// An event whose type this crate does not know: kept with its type name and raw `data`, so a
/// receiver built against this version keeps working when NoPOS (or an integrator) adds a type.
#[derive(Clone)]
pub struct UnknownEvent {
    event_type: EventType,
    data: Box<RawValue>,
}

impl UnknownEvent {
    /// An unknown event from its type and raw data (a JSON object).
    pub fn new(event_type: EventType, data: Box<RawValue>) -> UnknownEvent {
        UnknownEvent { event_type, data }
    }

    /// The type name as received.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// The `data` object exactly as received.
    pub fn data(&self) -> &RawValue {
        &self.data
    }

    /// Parses the data as a custom payload type, such as one of your own [`EventPayload`]s.
    ///
    /// # Errors
    /// As [`WebhookEvent::from_data`].
    pub fn parse<T: WebhookEvent>(&self) -> Result<T, DataError> {
        T::from_data(&self.event_type, &self.data)
    }
}

impl fmt::Debug for UnknownEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnknownEvent")
            .field("event_type", &self.event_type)
            .field("data", &self.data.get())
            .finish()
    }
}

impl PartialEq for UnknownEvent {
    fn eq(&self, other: &UnknownEvent) -> bool {
        self.event_type == other.event_type && self.data.get() == other.data.get()
    }
}

/// Describes one built-in event type.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EventTypeInfo {
    /// The type's name.
    pub event_type: &'static EventType,
    /// What it means, as the announcement words it.
    pub description: &'static str,
}

/// Defines [`Event`] and the catalogue from one list, so that the enum, the parser and the
/// catalogue cannot disagree.
macro_rules! catalogue {
    ($($variant:ident($payload:ident) = $const:ident: $description:literal;)*) => {
        /// Any built-in NoPOS event, or an [`UnknownEvent`].
        ///
        /// Match on it to handle the types you care about; the enum is `#[non_exhaustive]` because
        /// the catalogue grows, and types added later arrive as [`Event::Unknown`] until you upgrade.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $(
                #[doc = concat!($description, " ([`EventType::", stringify!($const), "`]).")]
                $variant($payload),
            )*
            /// A type this version of the crate does not know, with its raw data.
            Unknown(UnknownEvent),
        }

        $(
            impl From<$payload> for Event {
                fn from(payload: $payload) -> Event {
                    Event::$variant(payload)
                }
            }
        )*

        /// Every built-in event type with its description, in the announcement's order.
        pub const CATALOGUE: &[EventTypeInfo] = &[
            $(EventTypeInfo { event_type: &EventType::$const, description: $description },)*
        ];

        impl WebhookEvent for Event {
            fn event_type(&self) -> EventType {
                match self {
                    $(Event::$variant(_) => EventType::$const,)*
                    Event::Unknown(unknown) => unknown.event_type.clone(),
                }
            }

            fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Event::$variant(payload) => payload.serialize(serializer),)*
                    Event::Unknown(unknown) => unknown.data.serialize(serializer),
                }
            }

            fn from_data(event_type: &EventType, data: &RawValue) -> Result<Event, DataError> {
                $(
                    if *event_type == EventType::$const {
                        return parse_payload(event_type, data).map(Event::$variant);
                    }
                )*
                if nesting_depth(data.get()) > MAX_DATA_DEPTH {
                    return Err(DataError::TooDeep { event_type: event_type.clone() });
                }
                Ok(Event::Unknown(UnknownEvent {
                    event_type: event_type.clone(),
                    data: data.to_owned(),
                }))
            }
        }
    };
}

catalogue! {
    InventoryUpdated(InventoryUpdated) = INVENTORY_UPDATED: "Stock levels changed";
    InventoryLowStock(InventoryLowStock) = INVENTORY_LOW_STOCK: "Item below reorder point";
    ProductCreated(ProductCreated) = PRODUCT_CREATED: "New product added";
    ProductUpdated(ProductUpdated) = PRODUCT_UPDATED: "Product details changed";
    TransactionCreated(TransactionCreated) = TRANSACTION_CREATED: "New sale initiated";
    TransactionCompleted(TransactionCompleted) = TRANSACTION_COMPLETED: "Sale finalized";
    TransactionRefunded(TransactionRefunded) = TRANSACTION_REFUNDED: "Refund processed";
    PaymentSucceeded(PaymentSucceeded) = PAYMENT_SUCCEEDED: "Payment confirmed";
    PaymentFailed(PaymentFailed) = PAYMENT_FAILED: "Payment declined";
    CustomerCreated(CustomerCreated) = CUSTOMER_CREATED: "New customer registered";
    CustomerUpdated(CustomerUpdated) = CUSTOMER_UPDATED: "Customer profile changed";
    LoyaltyPointsEarned(LoyaltyPointsEarned) = LOYALTY_POINTS_EARNED: "Customer earned points";
    LoyaltyRewardRedeemed(LoyaltyRewardRedeemed) = LOYALTY_REWARD_REDEEMED: "Customer redeemed reward";
}

impl Event {
    /// Whether the type is one the catalogue knows (not [`Event::Unknown`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, Event::Unknown(_))
    }

    /// A realistic sample of a built-in event type, as the test tool sends it; `None` for a type
    /// outside the catalogue.
    pub fn sample(event_type: &EventType) -> Option<Event> {
        samples::sample(event_type)
    }
}
