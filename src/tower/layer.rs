//! [`VerifyLayer`] and the [`VerifyService`] it wraps services in.

use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Either, Full};
use time::OffsetDateTime;
use tower_layer::Layer;
use tower_service::Service;

use super::error::{BoxError, read_body, rejection};
use super::future::{ResponseBody, ResponseFuture};
use crate::event::WebhookEvent;
use crate::{Event, WebhookReceiver};

/// Verifies deliveries before they reach the wrapped service; see [the module](super).
///
/// `E` is the event type the body is parsed into: [`Event`] by default, or your own
/// [`WebhookEvent`] with [`VerifyLayer::event_type`].
pub struct VerifyLayer<E = Event> {
    receiver: WebhookReceiver,
    event: PhantomData<fn() -> E>,
}

impl VerifyLayer<Event> {
    /// A layer that verifies with `receiver` (its verifier, body limit and deduplicator) and
    /// parses bodies into [`Event`].
    pub fn new(receiver: impl Into<WebhookReceiver>) -> VerifyLayer<Event> {
        VerifyLayer {
            receiver: receiver.into(),
            event: PhantomData,
        }
    }
}

impl<E> VerifyLayer<E> {
    /// Parses bodies into `T` instead.
    #[must_use]
    pub fn event_type<T: WebhookEvent>(self) -> VerifyLayer<T> {
        VerifyLayer {
            receiver: self.receiver,
            event: PhantomData,
        }
    }

    /// The receiver the layer verifies with.
    pub fn receiver(&self) -> &WebhookReceiver {
        &self.receiver
    }
}

impl<E> Clone for VerifyLayer<E> {
    fn clone(&self) -> Self {
        VerifyLayer {
            receiver: self.receiver.clone(),
            event: PhantomData,
        }
    }
}

impl<E> fmt::Debug for VerifyLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, E> Layer<S> for VerifyLayer<E> {
    type Service = VerifyService<S, E>;

    fn layer(&self, inner: S) -> VerifyService<S, E> {
        VerifyService {
            inner,
            receiver: self.receiver.clone(),
            event: PhantomData,
        }
    }
}

/// A service that verifies deliveries and passes genuine ones on to `S`; made by [`VerifyLayer`].
pub struct VerifyService<S, E = Event> {
    inner: S,
    receiver: WebhookReceiver,
    event: PhantomData<fn() -> E>,
}

impl<S, E> VerifyService<S, E> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, E> Clone for VerifyService<S, E> {
    fn clone(&self) -> Self {
        VerifyService {
            inner: self.inner.clone(),
            receiver: self.receiver.clone(),
            event: PhantomData,
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for VerifyService<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyService")
            .field("inner", &self.inner)
            .field("receiver", &self.receiver)
            .finish()
    }
}

impl<S, E, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyService<S, E>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    E: WebhookEvent + Clone + Send + Sync + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was driven to readiness goes into the future; a fresh clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let receiver = self.receiver.clone();
        ResponseFuture::new(async move {
            let (mut parts, body) = request.into_parts();
            let received = async {
                let bytes = read_body(body, receiver.body_limit()).await?;
                let now = OffsetDateTime::now_utc();
                let event = receiver.receive::<E>(&parts.headers, &bytes, now).await?;
                Ok((bytes, event))
            };
            let (bytes, event) = match received.await {
                Ok(received) => received,
                Err(err) => return Ok(rejection(&err).map(Either::Right)),
            };
            let id = (!event.duplicate).then(|| event.envelope.id.clone());
            parts.extensions.insert(event);
            let result = inner
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await;
            let processed = result
                .as_ref()
                .is_ok_and(|response| response.status().is_success());
            if let (Some(id), false) = (id, processed) {
                // The event was not processed: let the sender's retry through. If forgetting
                // fails too, the retry is acknowledged as a duplicate; nothing better can be done
                // here, and the inner service's answer is what the sender must see.
                let _ = receiver.forget(&id).await;
            }
            result.map(|response| response.map(Either::Left))
        })
    }
}
