//! The seam between the sans-IO core and an HTTP stack: [`HttpClient`].
//!
//! This module owns the shape of "send this request, tell me what came back". It does no IO
//! itself: the `reqwest` feature implements it, and an integrator can plug in any other client.
//! Implementations must not follow redirects, must bound the response body they read, and must
//! apply the [`AddressPolicy`](crate::AddressPolicy) at connect time.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use crate::TransportError;

/// What an [`HttpClient`] got back: the status, headers and at most the first
/// [`MAX_EXCERPT_BYTES`](crate::MAX_EXCERPT_BYTES) of the body (the rest is not read).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The response status.
    pub status: StatusCode,
    /// The response headers (`Retry-After` is read from here).
    pub headers: HeaderMap,
    /// The start of the body, for the attempt log.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response from its parts.
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> HttpResponse {
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// Sends one delivery request.
///
/// The dispatcher builds the exact request with [`build_request`](crate::build_request) and hands
/// it over; the client's only job is to move bytes. Requirements for an implementation:
/// - never follow redirects (a `3xx` is a failed attempt, per DESIGN §4);
/// - use no proxy the environment did not explicitly configure for it;
/// - time out the whole exchange, including reading the body;
/// - read at most [`MAX_EXCERPT_BYTES`](crate::MAX_EXCERPT_BYTES) of the body;
/// - refuse to connect to an address the [`AddressPolicy`](crate::AddressPolicy) blocks, checking
///   every resolved address (DNS rebinding) and literal IP hosts, and report it as
///   [`TransportError::BlockedAddress`].
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `request` and returns the response, or why there is none.
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> impl Future<Output = Result<HttpResponse, TransportError>> + Send;
}
