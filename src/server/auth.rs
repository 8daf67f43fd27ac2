//! The management API's bearer key: how it is held, generated, persisted and checked.
//!
//! The key itself is never kept: [`ApiKey`] holds its SHA-256 digest, compares a presented key by
//! hashing it and comparing the digests in constant time (so neither the key's bytes nor its
//! length leak through timing), and can be persisted as that digest
//! ([`ApiKey::to_digest_hex`]). A leaked digest file does not reveal the key.

use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::ServerState;
use super::error::ApiError;
use crate::store::Store;
use crate::transport::HttpClient;

/// The shortest API key accepted, in characters.
pub const MIN_API_KEY_LEN: usize = 16;
/// The longest API key accepted, in characters.
pub const MAX_API_KEY_LEN: usize = 256;
/// The prefix of generated API keys, so that secret scanners can recognize a leaked one.
pub const GENERATED_API_KEY_PREFIX: &str = "nopos_sk_";

/// Why a text is not a valid API key or key digest. Messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// Shorter than [`MIN_API_KEY_LEN`] characters.
    #[error("api key is too short: at least {MIN_API_KEY_LEN} characters required")]
    TooShort,
    /// Longer than [`MAX_API_KEY_LEN`] characters.
    #[error("api key is too long: at most {MAX_API_KEY_LEN} characters allowed")]
    TooLong,
    /// A character outside printable ASCII, or a space: it could not travel in an
    /// `Authorization` header unchanged.
    #[error("api key may only contain printable ASCII characters without spaces")]
    InvalidCharacter,
    /// A stored digest that is not 64 lowercase hex digits.
    #[error("api key digest is not 64 lowercase hex digits")]
    InvalidDigest,
}

/// The key that authorizes requests to the management API (`Authorization: Bearer <key>`).
///
/// Only the SHA-256 digest of the key is held. `Debug` prints nothing of it.
///
/// ```
/// use nopos_webhooks::server::ApiKey;
///
/// let key = ApiKey::new("a-long-enough-api-key")?;
/// assert!(key.matches("a-long-enough-api-key"));
/// assert!(!key.matches("a-long-enough-api-kez"));
///
/// // Persist the digest, never the key; it checks the same key after a restart.
/// let restored = ApiKey::from_digest_hex(&key.to_digest_hex())?;
/// assert!(restored.matches("a-long-enough-api-key"));
/// # Ok::<(), nopos_webhooks::server::ApiKeyError>(())
/// ```
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    /// A key from its text: 16–256 printable ASCII characters without spaces.
    ///
    /// # Errors
    /// [`ApiKeyError`] naming the rule the text breaks.
    pub fn new(key: &str) -> Result<ApiKey, ApiKeyError> {
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiKeyError::InvalidCharacter);
        }
        if key.len() < MIN_API_KEY_LEN {
            return Err(ApiKeyError::TooShort);
        }
        if key.len() > MAX_API_KEY_LEN {
            return Err(ApiKeyError::TooLong);
        }
        Ok(ApiKey {
            digest: digest(key),
        })
    }

    /// A new random key, [`GENERATED_API_KEY_PREFIX`] + 32 random bytes in URL-safe base64: the
    /// text (show it once to its owner, never log it) and the key that checks it.
    ///
    /// # Panics
    /// Only if the operating system's random generator is unavailable (see [`crate::random`]).
    pub fn generate() -> (Zeroizing<String>, ApiKey) {
        let random = Zeroizing::new(crate::random::bytes::<32>());
        let mut text = Zeroizing::new(String::with_capacity(GENERATED_API_KEY_PREFIX.len() + 43));
        text.push_str(GENERATED_API_KEY_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&random[..], &mut text);
        let key = ApiKey {
            digest: digest(&text),
        };
        (text, key)
    }

    /// A key from the digest [`to_digest_hex`](ApiKey::to_digest_hex) wrote.
    ///
    /// # Errors
    /// [`ApiKeyError::InvalidDigest`] for anything but 64 lowercase hex digits.
    pub fn from_digest_hex(hex_digest: &str) -> Result<ApiKey, ApiKeyError> {
        let hex_digest = hex_digest.trim();
        if hex_digest.len() != 64
            || !hex_digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ApiKeyError::InvalidDigest);
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| ApiKeyError::InvalidDigest)?;
        Ok(ApiKey { digest })
    }

    /// The SHA-256 digest of the key as 64 lowercase hex digits: what to persist so that the same
    /// key works after a restart, without storing the key.
    pub fn to_digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Whether `presented` is this key; constant time in the presented key's content and length.
    pub fn matches(&self, presented: &str) -> bool {
        digest(presented).ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Middleware: lets a request through only with the right bearer key; `401` otherwise.
pub(super) async fn require_api_key<S, C>(
    State(state): State<ServerState<S, C>>,
    request: Request,
    next: Next,
) -> Response
where
    S: Store + 'static,
    C: HttpClient,
{
    match bearer_token(&request) {
        Some(token) if state.api_key.matches(token) => next.run(request).await,
        Some(_) => ApiError::unauthorized("the API key is not valid").into_response(),
        None => ApiError::unauthorized("send the API key as `Authorization: Bearer <key>`")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert_eq!(ApiKey::new("short").unwrap_err(), ApiKeyError::TooShort);
        assert_eq!(
            ApiKey::new("has a space inside it").unwrap_err(),
            ApiKeyError::InvalidCharacter
        );
        assert_eq!(
            ApiKey::new(&"k".repeat(257)).unwrap_err(),
            ApiKeyError::TooLong
        );
        let (text, key) = ApiKey::generate();
        assert!(text.starts_with(GENERATED_API_KEY_PREFIX));
        assert_eq!(text.len(), GENERATED_API_KEY_PREFIX.len() + 43);
        assert!(key.matches(&text));
        assert!(!key.matches(""));
        assert!(!format!("{key:?}").contains(&key.to_digest_hex()));
        assert!(ApiKey::new(&text).is_ok());
        assert_eq!(
            ApiKey::from_digest_hex("ABCD").unwrap_err(),
            ApiKeyError::InvalidDigest
        );
        assert_eq!(
            ApiKey::from_digest_hex(&"A".repeat(64)).unwrap_err(),
            ApiKeyError::InvalidDigest
        );
    }

    #[test]
    fn bearer_parsing() {
        let with = |value: &str| {
            let request = Request::builder()
                .header(AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .unwrap();
            bearer_token(&request).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer   abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("Bearerabc"), None);
    }
}
