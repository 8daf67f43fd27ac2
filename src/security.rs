//! # Security notes: why signing and verification work the way they do
//!
//! This module holds no code. It is the long-form reasoning behind [`crate::signature`] and
//! [`crate::Secret`], kept next to the code so it is versioned and its examples are tested.
//!
//! ## Verify the raw body, never re-serialized JSON
//!
//! A signature covers bytes, not meaning. `{"amount":125.50}` and `{"amount": 125.5}` are the same
//! JSON value and different bytes, so a receiver that parses the body and serializes it again
//! (what `express.json()`, Rails' params or an axum `Json` extractor effectively do) computes a
//! different HMAC and rejects every genuine delivery — or, worse, "fixes" it by turning
//! verification off. Verify first, over the exact bytes read from the socket, then parse those same
//! bytes:
//!
//! ```
//! use nopos_webhooks::{Envelope, Event, Secret, Verifier, signature};
//! use time::macros::datetime;
//!
//! let secret = Secret::new("your_webhook_secret")?;
//! let now = datetime!(2024-11-10 10:30 UTC);
//! let raw: &[u8] = br#"{"id":"evt_1","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"transaction_id":"txn_1","amount":125.50,"status":"completed"}}"#;
//! let mut headers = http::HeaderMap::new();
//! signature::sign([&secret], "evt_1", now, raw)?.insert_into(&mut headers);
//!
//! // Receiver: raw bytes in, verified typed event out.
//! let verifier = Verifier::new([secret]);
//! verifier.verify(&headers, raw, now)?;
//! let event = Envelope::<Event>::from_slice(raw)?;
//!
//! // Re-serializing changes the bytes (`125.50` becomes `125.5`), and the signature no longer fits.
//! let reserialized = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(raw)?)?;
//! assert!(verifier.verify(&headers, &reserialized, now).is_err());
//! # let _ = event;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The timestamp is signed, and the replay window is ±5 minutes
//!
//! Both NoPOS (`t=`) and Standard Webhooks (`webhook-timestamp`) sign the attempt's time together
//! with the body. Without it, anyone who once captured a delivery (a logging proxy, a leaked request
//! dump) could replay it forever and it would still verify. With it, a receiver refuses timestamps
//! more than [`DEFAULT_TOLERANCE`](crate::signature::DEFAULT_TOLERANCE) (300 s) away from its own
//! clock, in either direction: too old is a replay, too far ahead is a forged or badly skewed clock.
//! Five minutes absorbs ordinary clock skew and queueing; retries are re-signed with a fresh
//! timestamp, so a retry twelve hours later still verifies.
//!
//! The window bounds replays; it does not remove them. Inside it, the same delivery can arrive twice
//! (a retry after a lost `200`, or a replay), so receivers also deduplicate by event id, which
//! never changes between attempts.
//!
//! Turning the check off is possible and deliberately loud:
//! [`Verifier::dangerous_skip_timestamp_check`](crate::Verifier::dangerous_skip_timestamp_check),
//! for replaying stored deliveries in tests.
//!
//! ## Comparisons take constant time
//!
//! A byte-by-byte comparison that stops at the first difference tells an attacker, through response
//! times, how many leading bytes of a forged signature are right, and lets them find a valid one a
//! byte at a time. Expected and received tags are compared with `subtle`'s constant-time equality,
//! and every candidate entry is compared, not just until the first match. Header parsing works on
//! lengths and characters of the attacker's own input only, so its timing reveals nothing secret.
//!
//! ## Rotation without a gap
//!
//! An endpoint's [`SecretSet`](crate::SecretSet) signs every delivery with each active secret,
//! newest first (`t=…,v1=<new>,v1=<old>`). The receiver accepts any configured secret. To rotate:
//!
//! 1. rotate on the emitter (the old secret keeps signing for a grace period, 24 h by default);
//! 2. deploy the new secret to the receiver, next to the old one;
//! 3. remove the old one from the receiver before the grace period ends.
//!
//! At no point does a delivery carry only a signature the receiver cannot check.
//!
//! ## Limits before work
//!
//! The body size is checked against the verifier's limit (256 KiB by default, the emitter's
//! default maximum payload) before a single byte is hashed, and stale timestamps are refused before
//! any HMAC is computed, so an unauthenticated sender cannot make a receiver hash megabytes or burn
//! CPU with replays. Malformed or unknown-version signature entries are skipped rather than
//! failing the whole header, so a future `v2` entry next to `v1` keeps working.
//!
//! ## Secrets stay secret
//!
//! [`Secret`](crate::Secret) has a redacted `Debug`, no `Display` and no `Serialize`; reading it
//! back requires [`Secret::expose_secret`](crate::Secret::expose_secret), a name that stands out in
//! review. Errors never contain a secret or the signature that was expected (only the scheme and
//! what kind of check failed). The secret string, and the HMAC states derived from it, are zeroed
//! when dropped. Generated secrets are 24 bytes from the operating system's generator.
