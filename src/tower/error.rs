//! Reading a request body under the limit, and turning receive failures into responses.

use bytes::Bytes;
use http::Response;
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};

use crate::ReceiveError;

/// The boxed error type that body errors are converted into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Buffers `body`, refusing it as soon as it is known to exceed `limit` bytes: from its size hint
/// (a declared `content-length`) before reading anything, or while reading, without buffering more
/// than the limit.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, ReceiveError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let declared = body.size_hint().lower();
    if !usize::try_from(declared).is_ok_and(|declared| declared <= limit) {
        return Err(ReceiveError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(ReceiveError::BodyTooLarge { limit }),
        Err(err) => Err(ReceiveError::Body(err)),
    }
}

/// The JSON refusal for `err`, as a response with a [`Full`] body.
pub(crate) fn rejection(err: &ReceiveError) -> Response<Full<Bytes>> {
    err.response().map(Full::new)
}
