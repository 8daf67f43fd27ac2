//! Identifiers: event ids (`evt_…`) and the prefixed, time-sortable token behind them.
//!
//! This module owns the id format. It reads no clock: the time comes in as an argument, and the
//! randomness either as an argument or from the operating system's generator ([`crate::random`]).

use time::OffsetDateTime;

/// The longest id accepted, prefix included, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Crockford's base32 alphabet in lowercase: no `i`, `l`, `o` or `u`, and ASCII order equals
/// numeric order, so tokens sort by time as plain strings.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Number of random bytes in a generated token.
pub const ID_RANDOM_BYTES: usize = 10;

/// The 26-character token: 48 bits of Unix milliseconds, then 80 random bits, in base32.
pub(crate) fn sortable_token(at: OffsetDateTime, random: [u8; ID_RANDOM_BYTES]) -> String {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    // 48 bits of milliseconds last until the year 10889; times before 1970 clamp to zero.
    let millis = u128::try_from(millis).unwrap_or(0) & ((1 << 48) - 1);
    let mut value = millis << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (ID_RANDOM_BYTES - 1 - i));
    }
    // 128 bits in 26 five-bit digits (130 bits: the top two are zero).
    (0..26)
        .rev()
        .map(|digit| char::from(ALPHABET[((value >> (5 * digit)) & 0x1f) as usize]))
        .collect()
}

/// Checks `prefix` followed by 1 or more of `[A-Za-z0-9_-]`, at most [`MAX_ID_LEN`] bytes in all.
pub(crate) fn check_prefixed(id: &str, prefix: &str) -> Result<(), IdError> {
    let token = id.strip_prefix(prefix).ok_or(IdError::MissingPrefix)?;
    if token.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

/// Why a text is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id does not start with its kind's prefix (`evt_` for events).
    #[error("id does not start with the expected prefix")]
    MissingPrefix,
    /// Nothing follows the prefix.
    #[error("id has nothing after its prefix")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("id is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The id has a character outside `[A-Za-z0-9_-]` (a `.` in particular is refused, because it
    /// separates the parts of a signed payload).
    #[error("id may only contain ASCII letters, digits, '_' and '-'")]
    InvalidCharacter,
}

/// Defines a prefixed id newtype: [`EventId`] here, and the emitter's endpoint and delivery ids.
macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(::std::sync::Arc<str>);

        impl $name {
            #[doc = concat!("The prefix every id of this kind starts with: `", $prefix, "`.")]
            pub const PREFIX: &'static str = $prefix;

            /// A new id created at `at`, with randomness from the operating system.
            ///
            /// # Panics
            /// Only if the operating system's random generator is unavailable (see
            /// [`crate::random`]).
            pub fn generate(at: ::time::OffsetDateTime) -> $name {
                $name::from_parts(at, crate::random::bytes())
            }

            /// A new id from a time and caller-supplied randomness; deterministic, for tests and
            /// for systems with their own random source.
            pub fn from_parts(
                at: ::time::OffsetDateTime,
                random: [u8; crate::id::ID_RANDOM_BYTES],
            ) -> $name {
                $name(format!("{}{}", Self::PREFIX, crate::id::sortable_token(at, random)).into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = crate::IdError;

            fn try_from(id: &str) -> Result<$name, crate::IdError> {
                crate::id::check_prefixed(id, Self::PREFIX)?;
                Ok($name(id.into()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::IdError;

            fn try_from(id: String) -> Result<$name, crate::IdError> {
                crate::id::check_prefixed(&id, Self::PREFIX)?;
                Ok($name(id.into()))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = crate::IdError;

            fn from_str(id: &str) -> Result<$name, crate::IdError> {
                $name::try_from(id)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let id = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                $name::try_from(id.as_ref()).map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use prefixed_id;

prefixed_id!(
    /// An event id: `evt_` followed by a token, such as `evt_01jcg7w1a0q4x8r2m5n6p7s9tv`.
    ///
    /// The id is the event's idempotency key: it never changes across endpoints and retries,
    /// and receivers deduplicate by it. Ids this crate generates are 26 characters of lowercase
    /// Crockford base32 that sort by creation time (millisecond precision) and carry 80 random
    /// bits. Ids parsed from the wire may be any `evt_` + `[A-Za-z0-9_-]` up to [`MAX_ID_LEN`]
    /// bytes, such as the announcement's `evt_1234567890`.
    ///
    /// ```
    /// use nopos_webhooks::EventId;
    /// use time::macros::datetime;
    ///
    /// let earlier = EventId::from_parts(datetime!(2024-11-10 10:30 UTC), [7; 10]);
    /// let later = EventId::from_parts(datetime!(2024-11-10 10:31 UTC), [0; 10]);
    /// assert!(earlier < later);
    /// assert!(earlier.as_str().starts_with("evt_"));
    /// ```
    EventId,
    "evt_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn generated_ids_sort_by_time_and_have_no_dot() {
        let mut previous = EventId::from_parts(datetime!(1970-01-01 0:00 UTC), [0xff; 10]);
        for minutes in [1, 2, 60, 60 * 24 * 365 * 50] {
            let at = datetime!(1970-01-01 0:00 UTC) + time::Duration::minutes(minutes);
            let id = EventId::from_parts(at, [0; 10]);
            assert!(id > previous, "{id} should sort after {previous}");
            assert_eq!(id.as_str().len(), 4 + 26);
            assert!(!id.as_str().contains('.'));
            assert_eq!(EventId::try_from(id.as_str()), Ok(id.clone()));
            previous = id;
        }
    }

    #[test]
    fn generated_ids_differ() {
        let at = datetime!(2024-11-10 10:30 UTC);
        assert_ne!(EventId::generate(at), EventId::generate(at));
    }

    #[test]
    fn parse_rules() {
        assert!(EventId::try_from("evt_1234567890").is_ok());
        assert_eq!(EventId::try_from("txn_1"), Err(IdError::MissingPrefix));
        assert_eq!(EventId::try_from("evt_"), Err(IdError::Empty));
        assert_eq!(EventId::try_from("evt_a.b"), Err(IdError::InvalidCharacter));
        assert_eq!(
            EventId::try_from(format!("evt_{}", "a".repeat(MAX_ID_LEN))),
            Err(IdError::TooLong)
        );
    }
}
