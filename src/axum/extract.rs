//! [`VerifiedEvent`] as an axum extractor.

use ::axum::extract::{FromRef, FromRequest, Request};
use time::OffsetDateTime;

use crate::event::WebhookEvent;
use crate::{ReceiveError, VerifiedEvent, WebhookReceiver};

/// Reads the raw body under the receiver's limit, verifies, parses and deduplicates it; or takes
/// the result of a [`VerifyLayer`](crate::tower::VerifyLayer) already on the route.
impl<S, E> FromRequest<S> for VerifiedEvent<E>
where
    S: Send + Sync,
    WebhookReceiver: FromRef<S>,
    E: WebhookEvent + Clone + Send + Sync + 'static,
{
    type Rejection = ReceiveError;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(event) = request.extensions_mut().remove::<VerifiedEvent<E>>() {
            return Ok(event);
        }
        let receiver = WebhookReceiver::from_ref(state);
        let (parts, body) = request.into_parts();
        let bytes = crate::tower::read_body(body, receiver.body_limit()).await?;
        receiver
            .receive(&parts.headers, &bytes, OffsetDateTime::now_utc())
            .await
    }
}
