//! [`ReceiveError`] as the extractor's rejection.

use ::axum::body::Body;
use ::axum::response::{IntoResponse, Response};

use crate::ReceiveError;

/// The JSON refusal of [`RejectReason::response`](crate::RejectReason::response): the status
/// code and `{"error":{"code":"…","message":"…"}}`, never a secret or an expected signature.
impl IntoResponse for ReceiveError {
    fn into_response(self) -> Response {
        self.response().map(Body::from)
    }
}
