//! Custom headers an endpoint adds to its deliveries, and the names it may not use.

use std::collections::BTreeMap;
use std::fmt;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most custom headers one endpoint may have.
pub const MAX_CUSTOM_HEADERS: usize = 32;
/// The longest custom header value, in bytes.
pub const MAX_CUSTOM_HEADER_VALUE_LEN: usize = 4096;

/// Names set by the delivery itself (DESIGN §3) or by the HTTP client's framing. A custom header
/// with one of these names would change what the signature covers or how the body is read.
const RESERVED_NAMES: &[&str] = &[
    "content-type",
    "user-agent",
    // Framing and hop-by-hop headers belong to the HTTP client.
    "host",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Every `x-nopos-*` and `webhook-*` (Standard Webhooks) name is reserved, present and future.
const RESERVED_PREFIXES: &[&str] = &["x-nopos-", "webhook-", "proxy-"];

/// Whether `name` (lowercase) is reserved for the delivery or the HTTP client.
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_NAMES.contains(&name) || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Why a custom header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CustomHeaderError {
    /// Not a valid HTTP header name.
    #[error("invalid header name")]
    InvalidName,
    /// The value has a control character or a non-ASCII byte, or is longer than
    /// [`MAX_CUSTOM_HEADER_VALUE_LEN`] bytes. (The value is not repeated here: it may be a
    /// credential.)
    #[error("invalid value for header {name}")]
    InvalidValue {
        /// The header's name.
        name: String,
    },
    /// The name is one the delivery sets itself (`content-type`, `user-agent`, `x-nopos-*`,
    /// `webhook-*`) or one that belongs to the HTTP client's framing (`host`, `content-length`,
    /// `transfer-encoding`, …).
    #[error("header {name} is reserved")]
    Reserved {
        /// The header's name, lowercase.
        name: String,
    },
    /// Already [`MAX_CUSTOM_HEADERS`] headers.
    #[error("more than {MAX_CUSTOM_HEADERS} custom headers")]
    TooMany,
}

/// Extra headers an endpoint sends with every delivery, such as an `authorization` the receiver
/// expects. One value per name; names are case-insensitive and stored lowercase.
///
/// Values are treated as credentials: `Debug` prints names only, and requests mark them
/// sensitive (so HTTP/2 never indexes them).
///
/// ```
/// use nopos_webhooks::{CustomHeaderError, CustomHeaders};
///
/// let mut headers = CustomHeaders::new();
/// headers.insert("Authorization", "Bearer s3cr3t")?;
/// assert!(!format!("{headers:?}").contains("s3cr3t"));
/// assert!(matches!(
///     headers.insert("X-NoPOS-Event-Id", "evt_forged"),
///     Err(CustomHeaderError::Reserved { .. })
/// ));
/// # Ok::<(), CustomHeaderError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(BTreeMap<String, (HeaderName, HeaderValue)>);

impl CustomHeaders {
    /// No custom headers.
    pub fn new() -> CustomHeaders {
        CustomHeaders::default()
    }

    /// Adds or replaces the header `name`.
    ///
    /// # Errors
    /// [`CustomHeaderError`] for an invalid or reserved name, an invalid value, or too many
    /// headers.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), CustomHeaderError> {
        let name = HeaderName::try_from(name).map_err(|_| CustomHeaderError::InvalidName)?;
        if is_reserved_header(name.as_str()) {
            return Err(CustomHeaderError::Reserved {
                name: name.as_str().to_owned(),
            });
        }
        let invalid = || CustomHeaderError::InvalidValue {
            name: name.as_str().to_owned(),
        };
        if value.len() > MAX_CUSTOM_HEADER_VALUE_LEN {
            return Err(invalid());
        }
        // `from_str` accepts visible ASCII, space and tab only, so `to_str` always works later.
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        let key = name.as_str().to_owned();
        if !self.0.contains_key(&key) && self.0.len() >= MAX_CUSTOM_HEADERS {
            return Err(CustomHeaderError::TooMany);
        }
        self.0.insert(key, (name, value));
        Ok(())
    }

    /// Removes the header `name`, if present.
    pub fn remove(&mut self, name: &str) {
        self.0.remove(&name.to_ascii_lowercase());
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.0
            .get(&name.to_ascii_lowercase())
            .map(|(_, value)| value)
    }

    /// Every header, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.values().map(|(name, value)| (name, value))
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Serialize for CustomHeaders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(name, (_, value))| (name, value.to_str().unwrap_or_default())),
        )
    }
}

impl<'de> Deserialize<'de> for CustomHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CustomHeaders, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut headers = CustomHeaders::new();
        for (name, value) in map {
            headers
                .insert(&name, &value)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_invalid() {
        let mut h = CustomHeaders::new();
        for name in [
            "Content-Type",
            "user-agent",
            "x-nopos-signature",
            "X-Nopos-Anything",
            "webhook-id",
            "Host",
            "content-length",
            "transfer-encoding",
            "proxy-authorization",
        ] {
            assert!(
                matches!(h.insert(name, "x"), Err(CustomHeaderError::Reserved { .. })),
                "{name}"
            );
        }
        assert_eq!(
            h.insert("bad name", "x"),
            Err(CustomHeaderError::InvalidName)
        );
        assert!(matches!(
            h.insert("x-a", "line\nbreak"),
            Err(CustomHeaderError::InvalidValue { .. })
        ));
        for i in 0..MAX_CUSTOM_HEADERS {
            h.insert(&format!("x-h{i}"), "v").unwrap();
        }
        assert_eq!(h.insert("x-one-more", "v"), Err(CustomHeaderError::TooMany));
        h.insert("x-h0", "replaced").unwrap();
        assert_eq!(h.get("X-H0").unwrap(), "replaced");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<CustomHeaders>(&json).unwrap(), h);
        assert!(serde_json::from_str::<CustomHeaders>(r#"{"host":"x"}"#).is_err());
    }
}
