//! Endpoint secrets and the set of them that is active during a rotation.
//!
//! This module owns secret validation and the keyed HMAC state derived from each secret. A secret
//! must never reach `Debug` output, `Display`, serialization, logs or errors: [`Secret`] implements
//! none of those except a redacted `Debug`, and the only way to read it back is the explicitly named
//! [`Secret::expose_secret`] (for the store that persists it).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::signature::mac::KeyedMac;

/// The prefix of generated secrets and of Standard Webhooks secrets.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 24;
/// Shortest user-chosen secret accepted, in characters.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted, in characters.
pub const MAX_SECRET_LEN: usize = 256;
/// Longest secret accepted from another provider ([`Secret::from_provider`]), in bytes.
pub const MAX_PROVIDER_SECRET_LEN: usize = 1024;
/// Most secrets a [`SecretSet`] holds at once; each adds one signature per delivery.
pub const MAX_ACTIVE_SECRETS: usize = 8;

/// Why a text is not a valid secret. Messages describe the problem, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`] characters.
    #[error("secret is too short: {len} characters, at least {MIN_SECRET_LEN} required")]
    TooShort {
        /// The length given.
        len: usize,
    },
    /// Longer than [`MAX_SECRET_LEN`] characters ([`MAX_PROVIDER_SECRET_LEN`] bytes for provider
    /// secrets).
    #[error("secret is too long: {len} characters, at most {max} allowed")]
    TooLong {
        /// The length given.
        len: usize,
        /// The limit that applies.
        max: usize,
    },
    /// Contains a character outside printable ASCII (`!` to `~`; no spaces or control characters).
    #[error("secret may only contain printable ASCII characters without spaces")]
    InvalidCharacter,
    /// A provider secret that is empty.
    #[error("secret is empty")]
    Empty,
}

/// One endpoint secret, with its HMAC keys prepared once.
///
/// Two kinds are accepted (DESIGN §3):
/// - **generated** / Standard Webhooks secrets: `whsec_` + standard base64 of random bytes
///   ([`Secret::generate`] makes 24 bytes, 32 characters after the prefix). These sign both the
///   `x-nopos-signature` header and the Standard Webhooks `webhook-*` headers.
/// - **user-chosen** secrets: 16–256 printable ASCII characters, such as the announcement's
///   `your_webhook_secret`. These sign the `x-nopos-signature` header only.
///
/// The NoPOS (and Stripe) construction keys HMAC-SHA256 with the secret string's bytes exactly as
/// registered, prefix included; Standard Webhooks keys it with the base64-decoded bytes after
/// `whsec_`.
///
/// `Debug` prints the kind only. Memory holding the secret and its derived HMAC states is zeroed
/// on drop.
///
/// ```
/// use nopos_webhooks::Secret;
///
/// let generated = Secret::generate();
/// assert!(generated.is_standard_webhooks());
/// assert_eq!(generated.expose_secret().len(), 6 + 32);
/// assert!(!format!("{generated:?}").contains(generated.expose_secret()));
///
/// let chosen = Secret::new("your_webhook_secret")?;
/// assert!(!chosen.is_standard_webhooks());
/// assert!(Secret::new("short").is_err());
/// # Ok::<(), nopos_webhooks::SecretError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    text: Zeroizing<String>,
    /// Keyed with the secret string's bytes: `x-nopos-signature`, Stripe, GitHub, Shopify.
    string_key: KeyedMac,
    /// Keyed with the decoded bytes after `whsec_`: Standard Webhooks; `None` when the secret is
    /// not a valid `whsec_` secret.
    standard_key: Option<KeyedMac>,
}

impl Secret {
    /// A new random `whsec_` secret (24 bytes from the operating system's generator).
    ///
    /// # Panics
    /// Only if the operating system's random generator is unavailable (see [`crate::random`]).
    pub fn generate() -> Secret {
        Secret::from_random_bytes(&Zeroizing::new(crate::random::bytes()))
    }

    /// A `whsec_` secret from caller-supplied random bytes (deterministic tests, own RNG).
    pub fn from_random_bytes(bytes: &Zeroizing<[u8; GENERATED_SECRET_BYTES]>) -> Secret {
        let mut text = Zeroizing::new(String::with_capacity(6 + 32));
        text.push_str(STANDARD_SECRET_PREFIX);
        STANDARD_NO_PAD.encode_string(&bytes[..], &mut text);
        Secret::from_checked(text)
    }

    /// A registered secret: a `whsec_` secret or a user-chosen one of 16–256 printable ASCII
    /// characters without spaces.
    ///
    /// # Errors
    /// [`SecretError`] saying which rule the text breaks.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        let len = text.chars().count();
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecretError::InvalidCharacter);
        }
        if len < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len });
        }
        if len > MAX_SECRET_LEN {
            return Err(SecretError::TooLong {
                len,
                max: MAX_SECRET_LEN,
            });
        }
        Ok(Secret::from_checked(Zeroizing::new(text.to_owned())))
    }

    /// A secret issued by another provider (Stripe, GitHub, Shopify, a Standard Webhooks sender),
    /// taken as given: any non-empty text up to [`MAX_PROVIDER_SECRET_LEN`] bytes. Use it to
    /// verify their webhooks; NoPOS endpoints use [`Secret::new`].
    ///
    /// # Errors
    /// [`SecretError::Empty`] or [`SecretError::TooLong`].
    pub fn from_provider(text: &str) -> Result<Secret, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if text.len() > MAX_PROVIDER_SECRET_LEN {
            return Err(SecretError::TooLong {
                len: text.len(),
                max: MAX_PROVIDER_SECRET_LEN,
            });
        }
        Ok(Secret::from_checked(Zeroizing::new(text.to_owned())))
    }

    fn from_checked(text: Zeroizing<String>) -> Secret {
        let string_key = KeyedMac::new(text.as_bytes());
        let standard_key = text
            .strip_prefix(STANDARD_SECRET_PREFIX)
            .and_then(decode_standard_key)
            .map(|key| KeyedMac::new(&key));
        Secret {
            text,
            string_key,
            standard_key,
        }
    }

    /// Whether this is a `whsec_` secret that also signs and verifies Standard Webhooks headers.
    pub fn is_standard_webhooks(&self) -> bool {
        self.standard_key.is_some()
    }

    /// The secret text as registered. Named so that every place that reads it stands out in
    /// review: persisting it, showing it once to its owner. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// HMAC state keyed with the secret string (NoPOS, Stripe, GitHub, Shopify).
    pub(crate) fn string_key(&self) -> &KeyedMac {
        &self.string_key
    }

    /// HMAC state keyed with the Standard Webhooks key, when this is a `whsec_` secret.
    pub(crate) fn standard_key(&self) -> Option<&KeyedMac> {
        self.standard_key.as_ref()
    }
}

/// The Standard Webhooks key: base64 (padded or not) of at least one byte.
fn decode_standard_key(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let decoded = if encoded.ends_with('=') {
        STANDARD.decode(encoded)
    } else {
        STANDARD_NO_PAD.decode(encoded)
    };
    decoded
        .ok()
        .filter(|key| !key.is_empty())
        .map(Zeroizing::new)
}

impl PartialEq for Secret {
    /// Constant-time comparison of the secret texts.
    fn eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_standard_webhooks() {
            "whsec"
        } else {
            "custom"
        };
        write!(f, "Secret({kind}, redacted)")
    }
}

impl TryFrom<&str> for Secret {
    type Error = SecretError;

    fn try_from(text: &str) -> Result<Secret, SecretError> {
        Secret::new(text)
    }
}

/// One secret in a [`SecretSet`], with the time it stops being valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveSecret {
    /// The secret.
    pub secret: Secret,
    /// When it stops signing and verifying; `None` for the current secret.
    pub expires_at: Option<OffsetDateTime>,
}

/// The secrets of one endpoint that are valid now: the current one first, then previous ones
/// until their grace period ends.
///
/// Deliveries are signed with every active secret, newest first, and receivers accept any of
/// them, so a secret can be rotated without a moment in which deliveries fail.
///
/// ```
/// use nopos_webhooks::{Secret, SecretSet};
/// use time::{Duration, macros::datetime};
///
/// let now = datetime!(2024-11-10 10:30 UTC);
/// let mut secrets = SecretSet::new(Secret::new("your_webhook_secret")?);
/// secrets.rotate(Secret::generate(), now, Duration::hours(24));
/// assert_eq!(secrets.active(now).count(), 2);
/// assert_eq!(secrets.active(now + Duration::hours(25)).count(), 1);
/// # Ok::<(), nopos_webhooks::SecretError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSet {
    /// Newest first; `entries[0]` never expires.
    entries: Vec<ActiveSecret>,
}

impl SecretSet {
    /// The default grace period in which a rotated-out secret stays valid: 24 hours.
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::hours(24);

    /// A set with one current secret.
    pub fn new(current: Secret) -> SecretSet {
        SecretSet {
            entries: vec![ActiveSecret {
                secret: current,
                expires_at: None,
            }],
        }
    }

    /// Rebuilds a set from stored entries, newest first, dropping those expired at `now`.
    /// Returns `None` when no entry is current (an empty list).
    pub fn from_entries(
        entries: impl IntoIterator<Item = ActiveSecret>,
        now: OffsetDateTime,
    ) -> Option<SecretSet> {
        let mut entries: Vec<ActiveSecret> = entries.into_iter().collect();
        let first = entries.first_mut()?;
        first.expires_at = None;
        let mut set = SecretSet { entries };
        set.prune(now);
        set.entries.truncate(MAX_ACTIVE_SECRETS);
        Some(set)
    }

    /// Makes `new` the current secret; the previous ones stay valid until `now + grace` (or their
    /// own earlier expiry). Expired entries are dropped, and at most [`MAX_ACTIVE_SECRETS`] are
    /// kept (the oldest go first).
    pub fn rotate(&mut self, new: Secret, now: OffsetDateTime, grace: Duration) {
        let until = now + grace;
        for entry in &mut self.entries {
            entry.expires_at = Some(entry.expires_at.map_or(until, |at| at.min(until)));
        }
        self.entries.insert(
            0,
            ActiveSecret {
                secret: new,
                expires_at: None,
            },
        );
        self.prune(now);
        self.entries.truncate(MAX_ACTIVE_SECRETS);
    }

    /// Drops the entries that have expired at `now`.
    pub fn prune(&mut self, now: OffsetDateTime) {
        self.entries
            .retain(|entry| entry.expires_at.is_none_or(|at| at > now));
    }

    /// The current secret (the one a rotation made last).
    pub fn current(&self) -> &Secret {
        &self.entries[0].secret
    }

    /// The secrets valid at `now`, newest first.
    pub fn active(&self, now: OffsetDateTime) -> impl Iterator<Item = &Secret> + Clone {
        self.entries
            .iter()
            .filter(move |entry| entry.expires_at.is_none_or(|at| at > now))
            .map(|entry| &entry.secret)
    }

    /// Every entry with its expiry, newest first, for storage.
    pub fn entries(&self) -> &[ActiveSecret] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn generated_secrets_have_the_documented_shape() {
        let secret = Secret::from_random_bytes(&Zeroizing::new([7; GENERATED_SECRET_BYTES]));
        assert_eq!(
            secret.expose_secret(),
            "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH"
        );
        assert!(secret.is_standard_webhooks());
        assert_ne!(Secret::generate(), Secret::generate());
    }

    #[test]
    fn user_chosen_secret_rules() {
        assert!(Secret::new("your_webhook_secret").is_ok());
        assert_eq!(
            Secret::new("too_short").unwrap_err(),
            SecretError::TooShort { len: 9 }
        );
        assert_eq!(
            Secret::new(&"a".repeat(257)).unwrap_err(),
            SecretError::TooLong { len: 257, max: 256 }
        );
        for bad in [
            "with a space inside",
            "tab\tinside_secret_",
            "ünïcödé_secret_here",
        ] {
            assert_eq!(
                Secret::new(bad).unwrap_err(),
                SecretError::InvalidCharacter,
                "{bad}"
            );
        }
        // `whsec_` text that is not base64 is still a fine user-chosen secret.
        let stripe_like = Secret::new("whsec_test_secret").unwrap();
        assert!(!stripe_like.is_standard_webhooks());
    }

    #[test]
    fn errors_and_debug_never_show_the_secret() {
        let secret = Secret::new("super_secret_value_1234").unwrap();
        assert!(!format!("{secret:?}").contains("super_secret"));
        let err = Secret::new("secret value!").unwrap_err();
        assert!(!err.to_string().contains("secret value"));
        let set = SecretSet::new(secret);
        assert!(!format!("{set:?}").contains("super_secret"));
    }

    #[test]
    fn rotation_keeps_previous_secrets_for_the_grace_period() {
        let now = datetime!(2024-11-10 10:30 UTC);
        let first = Secret::new("first_secret_value").unwrap();
        let second = Secret::new("second_secret_value").unwrap();
        let third = Secret::new("third_secret_value_").unwrap();
        let mut set = SecretSet::new(first.clone());
        set.rotate(second.clone(), now, Duration::hours(24));
        set.rotate(third.clone(), now + Duration::hours(1), Duration::hours(48));
        let at = |h| now + Duration::hours(h);
        let active = |t| set.active(t).cloned().collect::<Vec<_>>();
        assert_eq!(
            active(at(2)),
            vec![third.clone(), second.clone(), first.clone()]
        );
        // The first secret keeps its original, earlier expiry.
        assert_eq!(active(at(30)), vec![third.clone(), second.clone()]);
        assert_eq!(active(at(50)), vec![third.clone()]);
        assert_eq!(set.current(), &third);
        for _ in 0..20 {
            set.rotate(Secret::generate(), now, Duration::hours(1));
        }
        assert_eq!(set.entries().len(), MAX_ACTIVE_SECRETS);
    }
}
