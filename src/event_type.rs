//! Event type names.
//!
//! This module owns [`EventType`], the validated name in an envelope's `type` field, for the
//! built-in catalogue and for integrators' own events alike.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest event type name accepted, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// A validated event type name such as `transaction.completed`.
///
/// # Grammar
/// One or more segments of `[a-z0-9_]` separated by single dots, at most
/// [`MAX_EVENT_TYPE_LEN`] bytes: `inventory.low_stock`, `acme.gift_card.issued`. No uppercase, no
/// leading, trailing or doubled dot, no `*` (wildcards belong to subscriptions, not to events).
///
/// Built-in names are associated constants ([`EventType::TRANSACTION_COMPLETED`], …); define your own
/// with [`EventType::from_static`], which checks the name at compile time when used in a `const`:
///
/// ```
/// use nopos_webhooks::EventType;
///
/// const GIFT_CARD_ISSUED: EventType = EventType::from_static("acme.gift_card.issued");
/// assert_eq!(GIFT_CARD_ISSUED.as_str(), "acme.gift_card.issued");
/// assert!(EventType::try_from("Acme.GiftCard").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventType(Cow<'static, str>);

/// Why a text is not a valid [`EventType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventTypeError {
    /// The name is empty.
    #[error("event type is empty")]
    Empty,
    /// The name is longer than [`MAX_EVENT_TYPE_LEN`] bytes.
    #[error("event type is longer than {MAX_EVENT_TYPE_LEN} bytes")]
    TooLong,
    /// The name starts or ends with a dot, or has two dots in a row.
    #[error("event type has an empty segment (leading, trailing or doubled dot)")]
    EmptySegment,
    /// The name has a character outside `[a-z0-9_.]`.
    #[error("event type may only contain lowercase letters, digits, '_' and '.'")]
    InvalidCharacter,
}

/// The grammar check, usable in `const` context so that `from_static` fails at compile time.
const fn check(name: &str) -> Result<(), EventTypeError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(EventTypeError::Empty);
    }
    if bytes.len() > MAX_EVENT_TYPE_LEN {
        return Err(EventTypeError::TooLong);
    }
    let mut i = 0;
    let mut segment_len = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                if segment_len == 0 {
                    return Err(EventTypeError::EmptySegment);
                }
                segment_len = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'_' => segment_len += 1,
            _ => return Err(EventTypeError::InvalidCharacter),
        }
        i += 1;
    }
    if segment_len == 0 {
        return Err(EventTypeError::EmptySegment);
    }
    Ok(())
}

impl EventType {
    /// `inventory.updated`: stock levels changed.
    pub const INVENTORY_UPDATED: EventType = EventType::from_static("inventory.updated");
    /// `inventory.low_stock`: an item fell below its reorder point.
    pub const INVENTORY_LOW_STOCK: EventType = EventType::from_static("inventory.low_stock");
    /// `product.created`: a new product was added.
    pub const PRODUCT_CREATED: EventType = EventType::from_static("product.created");
    /// `product.updated`: product details changed.
    pub const PRODUCT_UPDATED: EventType = EventType::from_static("product.updated");
    /// `transaction.created`: a new sale was initiated.
    pub const TRANSACTION_CREATED: EventType = EventType::from_static("transaction.created");
    /// `transaction.completed`: a sale was finalized.
    pub const TRANSACTION_COMPLETED: EventType = EventType::from_static("transaction.completed");
    /// `transaction.refunded`: a refund was processed.
    pub const TRANSACTION_REFUNDED: EventType = EventType::from_static("transaction.refunded");
    /// `payment.succeeded`: a payment was confirmed.
    pub const PAYMENT_SUCCEEDED: EventType = EventType::from_static("payment.succeeded");
    /// `payment.failed`: a payment was declined.
    pub const PAYMENT_FAILED: EventType = EventType::from_static("payment.failed");
    /// `customer.created`: a new customer registered.
    pub const CUSTOMER_CREATED: EventType = EventType::from_static("customer.created");
    /// `customer.updated`: a customer profile changed.
    pub const CUSTOMER_UPDATED: EventType = EventType::from_static("customer.updated");
    /// `loyalty.points_earned`: a customer earned points.
    pub const LOYALTY_POINTS_EARNED: EventType = EventType::from_static("loyalty.points_earned");
    /// `loyalty.reward_redeemed`: a customer redeemed a reward.
    pub const LOYALTY_REWARD_REDEEMED: EventType =
        EventType::from_static("loyalty.reward_redeemed");

    /// An event type from a string literal.
    ///
    /// # Panics
    /// When `name` breaks the grammar. In a `const` item that panic is a compile error, which is
    /// the intended use; use [`EventType::try_from`] for names that arrive at run time.
    pub const fn from_static(name: &'static str) -> EventType {
        match check(name) {
            Ok(()) => EventType(Cow::Borrowed(name)),
            Err(_) => panic!("invalid event type name"),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment, which names the family that `family.*` subscriptions match:
    /// `inventory` for `inventory.low_stock`.
    pub fn family(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }
}

impl TryFrom<&str> for EventType {
    type Error = EventTypeError;

    fn try_from(name: &str) -> Result<EventType, EventTypeError> {
        check(name)?;
        Ok(EventType(Cow::Owned(name.to_owned())))
    }
}

impl TryFrom<String> for EventType {
    type Error = EventTypeError;

    fn try_from(name: String) -> Result<EventType, EventTypeError> {
        check(&name)?;
        Ok(EventType(Cow::Owned(name)))
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    fn from_str(name: &str) -> Result<EventType, EventTypeError> {
        EventType::try_from(name)
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for EventType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventType, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        EventType::try_from(name.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["a", "transaction.completed", "acme.gift_card.v2", "x9.y_z"] {
            assert!(EventType::try_from(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", EventTypeError::Empty),
            (".a", EventTypeError::EmptySegment),
            ("a.", EventTypeError::EmptySegment),
            ("a..b", EventTypeError::EmptySegment),
            ("A.b", EventTypeError::InvalidCharacter),
            ("a.*", EventTypeError::InvalidCharacter),
            ("a-b", EventTypeError::InvalidCharacter),
            ("a b", EventTypeError::InvalidCharacter),
            ("é", EventTypeError::InvalidCharacter),
        ];
        for (name, err) in cases {
            assert_eq!(EventType::try_from(name), Err(err), "{name:?}");
        }
        let long = "a".repeat(MAX_EVENT_TYPE_LEN + 1);
        assert_eq!(EventType::try_from(long), Err(EventTypeError::TooLong));
    }

    #[test]
    fn family_is_first_segment() {
        assert_eq!(EventType::INVENTORY_LOW_STOCK.family(), "inventory");
        assert_eq!(EventType::from_static("ping").family(), "ping");
    }
}
