//! How the SQL stores encode the core's values in columns: times as Unix microseconds, endpoints,
//! delivery states, attempt records and health as JSON documents.
//!
//! One encoding for every SQL backend, so a row means the same thing in SQLite and PostgreSQL.

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::StoreError;
use crate::{Endpoint, EndpointRecord};

/// A time as Unix microseconds (the precision both SQLite integers and PostgreSQL keep).
pub fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// A time from Unix microseconds.
///
/// # Errors
/// [`StoreError::Corrupt`] for a value outside the representable range.
pub fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|err| {
        StoreError::Corrupt {
            what: "timestamp",
            message: err.to_string(),
        }
    })
}

/// A value as a JSON document.
///
/// # Errors
/// [`StoreError::Corrupt`] if serialization fails (it does not for the core's types).
pub fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt { what, message };
    // Sized for a delivery state (about 500 bytes), the document written most: `to_string`
    // starts at 128 bytes and reallocates twice on the way.
    let mut json = Vec::with_capacity(TYPICAL_DOCUMENT_LEN);
    serde_json::to_writer(&mut json, value).map_err(|err| corrupt(err.to_string()))?;
    String::from_utf8(json).map_err(|err| corrupt(err.to_string()))
}

/// The buffer [`to_json`] starts with.
const TYPICAL_DOCUMENT_LEN: usize = 640;

/// A value from a JSON document.
///
/// # Errors
/// [`StoreError::Corrupt`] when the document does not decode.
pub fn from_json<T: DeserializeOwned>(what: &'static str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|err| StoreError::Corrupt {
        what,
        message: err.to_string(),
    })
}

/// A claimed delivery's state read back from its JSON `text`: the claim's own state when `text`
/// is exactly what the store wrote when claiming (nothing changed the row since), decoded
/// otherwise.
///
/// # Errors
/// As [`from_json`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn claimed_state(
    text: &str,
    claim: &super::Claim,
) -> Result<crate::DeliveryState, StoreError> {
    match &claim.stored_state {
        Some(stored) if **stored == *text => Ok(claim.state.clone()),
        _ => from_json("delivery state", text),
    }
}

/// An endpoint as a JSON document (its [`EndpointRecord`], secrets included).
///
/// # Errors
/// As [`to_json`].
pub fn endpoint_to_json(endpoint: &Endpoint) -> Result<String, StoreError> {
    to_json("endpoint", &endpoint.to_record())
}

/// An endpoint from its JSON document. Expired secrets are kept (signing filters them by time),
/// so decoding needs no clock.
///
/// # Errors
/// [`StoreError::Corrupt`] when the document or a secret in it is invalid.
pub fn endpoint_from_json(json: &str) -> Result<Endpoint, StoreError> {
    // serde_json's messages quote the offending value, which here may be a secret: say only
    // what kind of error it was and where.
    let record: EndpointRecord = serde_json::from_str(json).map_err(|err| StoreError::Corrupt {
        what: "endpoint",
        message: format!(
            "invalid endpoint document ({:?} error at line {} column {})",
            err.classify(),
            err.line(),
            err.column()
        ),
    })?;
    record
        .into_endpoint(OffsetDateTime::UNIX_EPOCH)
        .map_err(|err| StoreError::Corrupt {
            what: "endpoint",
            message: err.to_string(),
        })
}

/// The envelope's `created_at` read from an event body, or `None` when the body is not an
/// envelope with a valid time (custom bodies are stored all the same).
pub fn event_created_at(body: &[u8]) -> Option<OffsetDateTime> {
    #[derive(serde::Deserialize)]
    struct CreatedAt {
        #[serde(with = "crate::timestamp")]
        created_at: OffsetDateTime,
    }
    serde_json::from_slice::<CreatedAt>(body)
        .ok()
        .map(|found| found.created_at)
}

/// Wraps a database driver's error.
pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_round_trip() {
        let at = datetime!(2024-11-10 10:30:00.123456 UTC);
        assert_eq!(from_micros(to_micros(at)).unwrap(), at);
        assert!(from_micros(i64::MAX).is_err());
    }

    #[test]
    fn endpoint_errors_never_quote_the_document() {
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let json = format!(r#"{{"id":"wh_1","secrets":"{secret}"}}"#);
        let Err(err) = endpoint_from_json(&json) else {
            panic!("decoded a broken endpoint");
        };
        let message = err.to_string();
        assert!(!message.contains("C2FVsBQIhrsc"), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn created_at_is_read_from_envelopes_only() {
        let body = br#"{"id":"evt_1","type":"x.y","created_at":"2024-11-10T10:30:00Z","data":{}}"#;
        assert_eq!(
            event_created_at(body),
            Some(datetime!(2024-11-10 10:30:00 UTC))
        );
        assert_eq!(event_created_at(b"{}"), None);
        assert_eq!(event_created_at(b"not json"), None);
    }
}
