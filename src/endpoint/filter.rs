//! Subscriptions: which event types an endpoint receives.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{EventType, EventTypeError};

/// The most patterns one [`EventFilter`] holds.
pub const MAX_FILTER_PATTERNS: usize = 256;

/// One subscription pattern: an exact type, a family wildcard, or everything.
///
/// - `transaction.completed` matches that type only;
/// - `inventory.*` matches every type whose name starts with `inventory.` (`inventory.updated`,
///   `inventory.low_stock`, and custom ones such as `inventory.audit.closed`); longer prefixes
///   such as `acme.gift_card.*` work the same way;
/// - `*` matches every type, custom ones included.
///
/// The part before `.*` follows the [`EventType`] grammar; `*` may appear nowhere else.
///
/// ```
/// use nopos_webhooks::{EventPattern, EventType};
///
/// let inventory: EventPattern = "inventory.*".parse()?;
/// assert!(inventory.matches(&EventType::INVENTORY_LOW_STOCK));
/// assert!(!inventory.matches(&EventType::PRODUCT_UPDATED));
/// assert!("*.updated".parse::<EventPattern>().is_err());
/// # Ok::<(), nopos_webhooks::PatternError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventPattern {
    /// `*`: every event type.
    All,
    /// `<prefix>.*`: every type whose name starts with the prefix and a dot.
    Prefix(EventType),
    /// One exact type.
    Exact(EventType),
}

/// Why a text is not a valid [`EventPattern`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// `*` somewhere other than alone or as the whole last segment (`*.updated`, `inv*`).
    #[error("'*' may only be the whole pattern or its whole last segment")]
    MisplacedWildcard,
    /// The event type (or the prefix before `.*`) breaks the event type grammar.
    #[error("invalid event type in pattern: {0}")]
    InvalidType(#[from] EventTypeError),
}

impl EventPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// [`PatternError`] for a misplaced `*` or an invalid type name.
    pub fn parse(text: &str) -> Result<EventPattern, PatternError> {
        if text == "*" {
            return Ok(EventPattern::All);
        }
        if let Some(prefix) = text.strip_suffix(".*") {
            if prefix.contains('*') {
                return Err(PatternError::MisplacedWildcard);
            }
            return Ok(EventPattern::Prefix(EventType::try_from(prefix)?));
        }
        if text.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        Ok(EventPattern::Exact(EventType::try_from(text)?))
    }

    /// Whether `event_type` is subscribed by this pattern.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            EventPattern::All => true,
            EventPattern::Exact(exact) => exact == event_type,
            EventPattern::Prefix(prefix) => event_type
                .as_str()
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }
}

impl std::str::FromStr for EventPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<EventPattern, PatternError> {
        EventPattern::parse(text)
    }
}

impl TryFrom<&str> for EventPattern {
    type Error = PatternError;

    fn try_from(text: &str) -> Result<EventPattern, PatternError> {
        EventPattern::parse(text)
    }
}

impl From<EventType> for EventPattern {
    fn from(event_type: EventType) -> EventPattern {
        EventPattern::Exact(event_type)
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPattern::All => f.write_str("*"),
            EventPattern::Prefix(prefix) => write!(f, "{prefix}.*"),
            EventPattern::Exact(exact) => write!(f, "{exact}"),
        }
    }
}

impl fmt::Debug for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl Serialize for EventPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventPattern, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        EventPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The event types an endpoint subscribes to: one or more [`EventPattern`]s, any of which may
/// match. Serialized as a list of pattern strings, the announcement's `events` field.
///
/// ```
/// use nopos_webhooks::{EventFilter, EventType};
///
/// let filter = EventFilter::parse(["transaction.completed", "inventory.*"])?;
/// assert!(filter.matches(&EventType::TRANSACTION_COMPLETED));
/// assert!(filter.matches(&EventType::INVENTORY_LOW_STOCK));
/// assert!(!filter.matches(&EventType::PAYMENT_FAILED));
/// assert!(EventFilter::all().matches(&EventType::from_static("acme.gift_card.issued")));
/// # Ok::<(), nopos_webhooks::FilterError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventFilter(Vec<EventPattern>);

/// Why a list of patterns is not a valid [`EventFilter`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// No pattern: an endpoint that subscribes to nothing is a mistake; use `*` for everything.
    #[error("subscription has no event types")]
    Empty,
    /// More than [`MAX_FILTER_PATTERNS`] patterns.
    #[error("subscription has more than {MAX_FILTER_PATTERNS} patterns")]
    TooMany,
    /// One pattern is invalid.
    #[error("pattern {index} is invalid: {source}")]
    InvalidPattern {
        /// Its position in the list, from 0.
        index: usize,
        /// What is wrong with it.
        source: PatternError,
    },
}

impl EventFilter {
    /// A filter from patterns; duplicates are dropped and the order is normalized.
    ///
    /// # Errors
    /// [`FilterError::Empty`] or [`FilterError::TooMany`].
    pub fn new(
        patterns: impl IntoIterator<Item = EventPattern>,
    ) -> Result<EventFilter, FilterError> {
        let mut patterns: Vec<EventPattern> = patterns.into_iter().collect();
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Err(FilterError::Empty);
        }
        if patterns.len() > MAX_FILTER_PATTERNS {
            return Err(FilterError::TooMany);
        }
        Ok(EventFilter(patterns))
    }

    /// A filter from pattern strings.
    ///
    /// # Errors
    /// [`FilterError`] for an empty or too long list or an invalid pattern.
    pub fn parse<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<EventFilter, FilterError> {
        let parsed = patterns
            .into_iter()
            .enumerate()
            .map(|(index, text)| {
                EventPattern::parse(text.as_ref())
                    .map_err(|source| FilterError::InvalidPattern { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        EventFilter::new(parsed)
    }

    /// `*`: every event type.
    pub fn all() -> EventFilter {
        EventFilter(vec![EventPattern::All])
    }

    /// Whether any pattern matches `event_type`.
    pub fn matches(&self, event_type: &EventType) -> bool {
        self.0.iter().any(|pattern| pattern.matches(event_type))
    }

    /// The patterns, sorted and without duplicates.
    pub fn patterns(&self) -> &[EventPattern] {
        &self.0
    }
}

impl fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<'de> Deserialize<'de> for EventFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventFilter, D::Error> {
        let patterns = Vec::<EventPattern>::deserialize(deserializer)?;
        EventFilter::new(patterns).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let t = |s: &'static str| EventType::from_static(s);
        let family = EventPattern::parse("inventory.*").unwrap();
        assert!(family.matches(&t("inventory.updated")));
        assert!(family.matches(&t("inventory.audit.closed")));
        assert!(!family.matches(&t("inventory")));
        assert!(!family.matches(&t("inventoryx.updated")));
        let deep = EventPattern::parse("acme.gift_card.*").unwrap();
        assert!(deep.matches(&t("acme.gift_card.issued")));
        assert!(!deep.matches(&t("acme.gift_cards.issued")));
        for bad in ["*.updated", "inv*", "inventory.**", "a.*.b", "**"] {
            assert_eq!(
                EventPattern::parse(bad),
                Err(PatternError::MisplacedWildcard),
                "{bad}"
            );
        }
        assert!(matches!(
            EventPattern::parse("Inventory.*"),
            Err(PatternError::InvalidType(_))
        ));
        assert!(matches!(
            EventPattern::parse(".*"),
            Err(PatternError::InvalidType(_))
        ));
    }

    #[test]
    fn filters() {
        assert_eq!(EventFilter::parse::<&str>([]), Err(FilterError::Empty));
        assert!(matches!(
            EventFilter::parse(["a", "B"]),
            Err(FilterError::InvalidPattern { index: 1, .. })
        ));
        let filter = EventFilter::parse(["b", "a", "b", "x.*"]).unwrap();
        assert_eq!(
            serde_json::to_string(&filter).unwrap(),
            r#"["x.*","a","b"]"#
        );
        let back: EventFilter = serde_json::from_str(r#"["x.*","a","b"]"#).unwrap();
        assert_eq!(back, filter);
        assert!(serde_json::from_str::<EventFilter>("[]").is_err());
    }
}
