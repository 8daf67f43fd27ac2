//! Endpoint URLs: the validated address a delivery is sent to with `POST`.

use std::fmt;

use http::Uri;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::net::{Host, HostError};

/// The longest endpoint URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Why a text is not a valid [`EndpointUrl`]. Each rule has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`] bytes.
    #[error("url is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// Not a URI at all: a character that cannot appear in one, or a broken structure.
    #[error("url is malformed")]
    Malformed,
    /// No scheme: a relative reference such as `/hooks` or `example.com/hooks`.
    #[error("url has no scheme")]
    MissingScheme,
    /// A scheme other than `http` or `https`.
    #[error("url scheme must be http or https")]
    UnsupportedScheme,
    /// No host, or an empty one (`http://:80/`).
    #[error("url has no host")]
    MissingHost,
    /// Credentials before the host (`https://user:pass@host/`): they would be sent in clear to
    /// every proxy log; use a custom `authorization` header instead.
    #[error("url must not contain userinfo")]
    UserInfo,
    /// A `#fragment`: it is never sent to the server, so it can only be a mistake.
    #[error("url must not contain a fragment")]
    Fragment,
    /// A port that is 0 (nothing listens there) or above 65535.
    #[error("url port must be between 1 and 65535")]
    InvalidPort,
    /// The host is not a valid domain name or IP literal.
    #[error("url host is invalid: {0}")]
    InvalidHost(#[from] HostError),
}

/// A validated endpoint URL: `http` or `https`, with a host, without userinfo or fragment.
///
/// The text is kept as given (scheme and host case aside, which are normalized to lowercase), and
/// [`EndpointUrl::host`] is the host as an HTTP client will read it — numeric forms such as
/// `0x7f.1` included (see [`crate::net`]). Validation says nothing about whether the address is
/// allowed; that is the [`crate::AddressPolicy`]'s decision.
///
/// ```
/// use nopos_webhooks::{EndpointUrl, UrlError};
///
/// let url = EndpointUrl::parse("https://your-app.com/webhooks/nopos")?;
/// assert_eq!(url.as_str(), "https://your-app.com/webhooks/nopos");
/// assert!(url.is_https());
/// assert_eq!(EndpointUrl::parse("ftp://x.com/"), Err(UrlError::UnsupportedScheme));
/// assert_eq!(EndpointUrl::parse("https://u:p@x.com/"), Err(UrlError::UserInfo));
/// # Ok::<(), UrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl {
    text: String,
    uri: Uri,
    host: Host,
}

impl EndpointUrl {
    /// Parses and validates `text`.
    ///
    /// # Errors
    /// [`UrlError`] naming the first rule `text` breaks.
    pub fn parse(text: &str) -> Result<EndpointUrl, UrlError> {
        if text.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        // `http::Uri` silently drops a fragment, so look for it in the raw text first.
        if text.contains('#') {
            return Err(UrlError::Fragment);
        }
        let uri: Uri = text.parse().map_err(|_| {
            if text.contains("://") {
                UrlError::Malformed
            } else {
                UrlError::MissingScheme
            }
        })?;
        let scheme = match uri.scheme_str() {
            None => return Err(UrlError::MissingScheme),
            Some(s) if s.eq_ignore_ascii_case("http") => "http",
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            Some(_) => return Err(UrlError::UnsupportedScheme),
        };
        let authority = uri.authority().ok_or(UrlError::MissingHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::UserInfo);
        }
        if authority.host().is_empty() {
            return Err(UrlError::MissingHost);
        }
        // `http::Uri` accepts any digits as a port (`:99999` just has no `port_u16`), so read
        // the text after the host: nothing, an empty port (the default), or 1–65535.
        let port = authority
            .as_str()
            .get(authority.host().len()..)
            .and_then(|rest| rest.strip_prefix(':'));
        if let Some(port) = port.filter(|p| !p.is_empty())
            && (!port.bytes().all(|b| b.is_ascii_digit())
                || !matches!(port.parse::<u16>(), Ok(1..)))
        {
            return Err(UrlError::InvalidPort);
        }
        let host = Host::parse(authority.host())?;
        // `path()` is `/` when the path is empty, even before a query.
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let authority_text = authority.as_str().to_ascii_lowercase();
        let text = format!("{scheme}://{authority_text}{}{query}", uri.path());
        let uri = text.parse().map_err(|_| UrlError::Malformed)?;
        Ok(EndpointUrl { text, uri, host })
    }

    /// The URL as text, with scheme and host in lowercase and at least a `/` path.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL as an [`http::Uri`], ready for a request.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host as an HTTP client reads it.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.text.starts_with("https:")
    }

    /// The port: the explicit one, or 443 for `https` and 80 for `http`.
    pub fn port(&self) -> u16 {
        self.uri
            .port_u16()
            .unwrap_or(if self.is_https() { 443 } else { 80 })
    }
}

impl TryFrom<&str> for EndpointUrl {
    type Error = UrlError;

    fn try_from(text: &str) -> Result<EndpointUrl, UrlError> {
        EndpointUrl::parse(text)
    }
}

impl std::str::FromStr for EndpointUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<EndpointUrl, UrlError> {
        EndpointUrl::parse(text)
    }
}

impl AsRef<str> for EndpointUrl {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl Serialize for EndpointUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for EndpointUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EndpointUrl, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        EndpointUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_scheme_host_and_path() {
        let url = EndpointUrl::parse("HTTPS://Your-App.COM:8443?x=1").unwrap();
        assert_eq!(url.as_str(), "https://your-app.com:8443/?x=1");
        assert_eq!(url.port(), 8443);
        assert_eq!(url.uri().to_string(), "https://your-app.com:8443/?x=1");
        assert_eq!(EndpointUrl::parse("http://h/").unwrap().port(), 80);
    }
}
