//! The reqwest adapter: an [`HttpClient`] that is safe to point at URLs strangers registered.
//!
//! This module owns the outbound HTTP policy of the built-in dispatcher: no redirects, no proxies
//! from the environment, connect and total timeouts (the total includes reading the body), bounded
//! body reads, and an SSRF guard at connect time — a DNS resolver that refuses a name when *any* of
//! its addresses is non-public, plus the same check on literal IP hosts, so DNS rebinding cannot
//! reach `127.0.0.1` or `169.254.169.254`. The decisions come from the core's
//! [`AddressPolicy`]; this module only applies them.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Uri};

use crate::transport::{HttpClient, HttpResponse};
use crate::{AddressPolicy, BlockedTarget, Host, HostCheck, MAX_EXCERPT_BYTES, TransportError};

/// The default time allowed to establish a connection (TCP and TLS): 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time allowed for a whole attempt, reading the body included: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a [`ReqwestClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// reqwest refused the configuration (for example, no TLS backend could be initialized).
    #[error("cannot build the HTTP client: {0}")]
    Reqwest(#[source] reqwest::Error),
}

/// An [`HttpClient`] on reqwest with rustls.
///
/// # Default
/// Connect timeout [`DEFAULT_CONNECT_TIMEOUT`], total timeout [`DEFAULT_TIMEOUT`], the safe
/// [`AddressPolicy`] (private and other non-public targets refused), keep-alive connection pooling,
/// HTTP/1.1, and no retries of its own: every attempt is one request, and the dispatcher's
/// schedule alone decides when to try again.
///
/// Request extensions are not passed on to reqwest: it reads none that a caller can set.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nopos_webhooks::reqwest::ReqwestClient;
///
/// let client = ReqwestClient::builder()
///     .timeout(std::time::Duration::from_secs(15))
///     .build()?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
    policy: AddressPolicy,
    /// Target URLs already parsed, by request URI (see [`ReqwestClient::target_url`]).
    urls: Arc<Mutex<HashMap<Uri, reqwest::Url>>>,
}

/// Most parsed URLs a [`ReqwestClient`] keeps; past this the cache starts over.
const MAX_CACHED_URLS: usize = 1024;

impl fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cached URLs are left out: an endpoint's URL may carry a token in its query.
        f.debug_struct("ReqwestClient")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Configures a [`ReqwestClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ReqwestClientBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    policy: AddressPolicy,
}

impl Default for ReqwestClientBuilder {
    fn default() -> ReqwestClientBuilder {
        ReqwestClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            policy: AddressPolicy::default(),
        }
    }
}

impl ReqwestClientBuilder {
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> ReqwestClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the total timeout of an attempt, reading the body included.
    pub fn timeout(mut self, timeout: Duration) -> ReqwestClientBuilder {
        self.timeout = timeout;
        self
    }

    /// Sets the address policy applied at connect time.
    pub fn address_policy(mut self, policy: AddressPolicy) -> ReqwestClientBuilder {
        self.policy = policy;
        self
    }

    /// Allows loopback, private and other non-public targets. For local development and tests
    /// only: in production it lets anyone who can register an endpoint reach your internal
    /// network and cloud metadata service.
    pub fn dangerous_allow_private_targets(mut self) -> ReqwestClientBuilder {
        self.policy = self.policy.dangerous_allow_private_targets();
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ClientBuildError`] when reqwest cannot initialize (no usable TLS configuration).
    pub fn build(self) -> Result<ReqwestClient, ClientBuildError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // reqwest's default retries protocol-level refusals (HTTP/2 only) and, to be able to,
            // copies every request's headers before sending it; a zero limit skips the copy.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .dns_resolver(Arc::new(PolicyResolver {
                policy: self.policy.clone(),
            }))
            .build()
            .map_err(ClientBuildError::Reqwest)?;
        Ok(ReqwestClient {
            client,
            policy: self.policy,
            urls: Arc::default(),
        })
    }
}

impl ReqwestClient {
    /// A client with the defaults.
    ///
    /// # Errors
    /// As [`ReqwestClientBuilder::build`].
    pub fn new() -> Result<ReqwestClient, ClientBuildError> {
        ReqwestClient::builder().build()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder::default()
    }

    /// Checks a literal IP host before connecting: reqwest connects to literal addresses without
    /// asking the resolver, so the resolver's check alone would miss them.
    fn check_literal_host(&self, uri: &Uri) -> Result<(), TransportError> {
        let host = uri.host().ok_or(TransportError::Other)?;
        let host = Host::parse(host).map_err(|_| TransportError::BlockedAddress)?;
        match self.policy.check_host(&host) {
            Ok(HostCheck::Allowed(_) | HostCheck::ResolveThenCheck) => Ok(()),
            Err(_) => Err(TransportError::BlockedAddress),
        }
    }

    /// The request's target as reqwest's `Url`, once its host passed
    /// [`check_literal_host`](ReqwestClient::check_literal_host). Converting an `http::Request`
    /// makes reqwest print the URI and parse the text again (a full WHATWG parse, IDNA included)
    /// on every request, while a dispatcher sends to the same few endpoints over and over: parsed
    /// URLs are kept, by URI, up to [`MAX_CACHED_URLS`]. Only URIs that passed the check are
    /// kept, and the client's address policy never changes, so a cached URI skips the check.
    fn target_url(&self, uri: &Uri) -> Result<reqwest::Url, TransportError> {
        let cached = self
            .urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .cloned();
        if let Some(url) = cached {
            return Ok(url);
        }
        self.check_literal_host(uri)?;
        let url = reqwest::Url::parse(&uri.to_string()).map_err(|_| TransportError::Other)?;
        let mut urls = self.urls.lock().unwrap_or_else(PoisonError::into_inner);
        if urls.len() >= MAX_CACHED_URLS {
            urls.clear();
        }
        urls.insert(uri.clone(), url.clone());
        Ok(url)
    }

    async fn read_bounded(mut response: reqwest::Response) -> Result<Bytes, reqwest::Error> {
        let mut body = BytesMut::new();
        while body.len() < MAX_EXCERPT_BYTES {
            match response.chunk().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        // The rest is never read: the connection is dropped rather than drained.
        body.truncate(MAX_EXCERPT_BYTES);
        Ok(body.freeze())
    }
}

impl HttpClient for ReqwestClient {
    async fn send(&self, request: Request<Bytes>) -> Result<HttpResponse, TransportError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = reqwest::Request::new(parts.method, self.target_url(&parts.uri)?);
        *outgoing.headers_mut() = parts.headers;
        *outgoing.version_mut() = parts.version;
        *outgoing.body_mut() = Some(body.into());
        let mut response = self
            .client
            .execute(outgoing)
            .await
            .map_err(|err| classify(&err))?;
        let status = response.status();
        // Moved out rather than copied: reading the body does not look at them.
        let headers = std::mem::take(response.headers_mut());
        let body = ReqwestClient::read_bounded(response)
            .await
            .map_err(|err| classify(&err))?;
        Ok(HttpResponse::new(status, headers, body))
    }
}

/// Refuses names with any non-public address; its error marks the failure as blocked.
struct PolicyResolver {
    policy: AddressPolicy,
}

/// The resolver's refusal, recognized again in [`classify`].
#[derive(Debug)]
struct Blocked(BlockedTarget);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target address refused: {}", self.0)
    }
}

impl StdError for Blocked {}

/// A failed lookup, recognized again in [`classify`].
#[derive(Debug)]
struct LookupFailed(std::io::Error);

impl fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dns lookup failed: {}", self.0)
    }
}

impl StdError for LookupFailed {}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|err| Box::new(LookupFailed(err)) as Box<dyn StdError + Send + Sync>)?
                .collect();
            if addresses.is_empty() {
                let err = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
                return Err(Box::new(LookupFailed(err)) as Box<dyn StdError + Send + Sync>);
            }
            // Any non-public address refuses the whole name: an attacker's DNS can answer with
            // one public and one private address and let the connector pick.
            for address in &addresses {
                policy
                    .check_ip(address.ip())
                    .map_err(|err| Box::new(Blocked(err)) as Box<dyn StdError + Send + Sync>)?;
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Maps a reqwest error to the core's transport error classes by walking its source chain.
fn classify(err: &reqwest::Error) -> TransportError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let mut text = String::new();
    while let Some(current) = source {
        if current.is::<Blocked>() {
            return TransportError::BlockedAddress;
        }
        if current.is::<LookupFailed>() {
            return TransportError::Dns;
        }
        text.push_str(&current.to_string().to_ascii_lowercase());
        text.push(' ');
        source = current.source();
    }
    if err.is_timeout() {
        return TransportError::Timeout;
    }
    if ["certificate", "tls", "handshake"]
        .iter()
        .any(|needle| text.contains(needle))
    {
        return TransportError::Tls;
    }
    if err.is_connect() {
        return TransportError::Connect;
    }
    TransportError::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_urls_are_what_reqwest_would_parse() {
        // Private targets allowed, for the loopback literals below.
        let client = ReqwestClient::builder()
            .dangerous_allow_private_targets()
            .build()
            .expect("client builds");
        let uris = [
            "https://hooks.example.com/nopos",
            "https://HOOKS.Example.com/nopos",
            "https://hooks.example.com/NoPOS?token=abc&x=%20y",
            "https://hooks.example.com:8443/",
            "http://127.0.0.1:8080/a/b/../c",
            "https://[::1]:9000/hook",
            "https://xn--bcher-kva.example/hook",
        ];
        // Twice over: the second round is served from the cache.
        for _ in 0..2 {
            for text in uris {
                let uri: Uri = text.parse().expect("valid uri");
                let expected = reqwest::Url::parse(&uri.to_string()).expect("valid url");
                assert_eq!(client.target_url(&uri).expect("parses"), expected, "{text}");
            }
        }
        let cached = client.urls.lock().expect("not poisoned").len();
        // The two spellings of one host are one key.
        assert_eq!(cached, uris.len() - 1);
    }

    #[test]
    fn a_refused_literal_host_is_refused_every_time_and_never_cached() {
        let client = ReqwestClient::new().expect("client builds");
        for text in [
            "http://127.0.0.1:8080/hook",
            "https://[::1]/hook",
            "http://169.254.169.254/",
        ] {
            let uri: Uri = text.parse().expect("valid uri");
            for _ in 0..2 {
                assert!(
                    matches!(client.target_url(&uri), Err(TransportError::BlockedAddress)),
                    "{text}"
                );
            }
        }
        assert!(client.urls.lock().expect("not poisoned").is_empty());
    }

    #[test]
    fn the_url_cache_stays_bounded() {
        let client = ReqwestClient::new().expect("client builds");
        for i in 0..=MAX_CACHED_URLS {
            let uri: Uri = format!("https://hooks.example.com/{i}")
                .parse()
                .expect("valid uri");
            let url = client.target_url(&uri).expect("parses");
            assert_eq!(url.path(), format!("/{i}"));
        }
        let cached = client.urls.lock().expect("not poisoned").len();
        assert!((1..=MAX_CACHED_URLS).contains(&cached), "{cached} cached");
    }
}
