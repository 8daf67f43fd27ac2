//! Prefixed, time-sortable ids for the emitter's records: endpoints (`wh_…`) here, deliveries
//! (`dlv_…`) through the same macro.
//!
//! The token format, its checks and the newtype macro belong to [`crate::id`], so that every id
//! kind parses, prints and serializes the same way as [`crate::EventId`].

use crate::id::prefixed_id;

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
