//! Prefixed, time-sortable ids for the emitter's records: endpoints (`wh_…`) here, deliveries
//! (`dlv_…`) through the same macro.
//!
//! The token format and its checks belong to [`crate::id`]; this file only stamps out newtypes
//! around them so that every id kind parses, prints and serializes the same way.

/// Defines a prefixed id newtype with the same API as [`crate::EventId`].
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
    /// An endpoint id: `wh_` followed by a token, such as `wh_01jcg7w1a0q4x8r2m5n6p7s9tv`.
    ///
    /// Generated ids are 26 characters of lowercase Crockford base32 that sort by creation time;
    /// ids parsed back may be any `wh_` + `[A-Za-z0-9_-]` up to [`crate::MAX_ID_LEN`] bytes, such
    /// as the announcement's `wh_123456`.
    ///
    /// ```
    /// use nopos_webhooks::EndpointId;
    /// use time::macros::datetime;
    ///
    /// let id = EndpointId::from_parts(datetime!(2024-11-10 10:30 UTC), [7; 10]);
    /// assert!(id.as_str().starts_with("wh_"));
    /// assert_eq!(id.as_str().len(), 3 + 26);
    /// assert!("wh_123456".parse::<EndpointId>().is_ok());
    /// assert!("evt_123456".parse::<EndpointId>().is_err());
    /// ```
    EndpointId,
    "wh_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdError;
    use time::macros::datetime;

    #[test]
    fn endpoint_ids_sort_and_round_trip() {
        let a = EndpointId::from_parts(datetime!(2024-11-10 10:30 UTC), [0xff; 10]);
        let b = EndpointId::from_parts(datetime!(2024-11-10 10:31 UTC), [0; 10]);
        assert!(a < b);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<EndpointId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<EndpointId>("\"wh_a.b\"").is_err());
        assert_eq!(EndpointId::try_from("wh_"), Err(IdError::Empty));
        assert_ne!(
            EndpointId::generate(datetime!(2024-11-10 10:30 UTC)),
            EndpointId::generate(datetime!(2024-11-10 10:30 UTC))
        );
    }
}
