//! The management API's one error shape: a status code and
//! `{"error":{"code":"…","message":"…"}}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::store::StoreError;

/// What refused requests are told in a `422` for a private target; names both ways to allow them.
pub(super) const PRIVATE_TARGET_HINT: &str = "private and other non-public targets are refused; \
     allow them for local development only (nopos-webhooks serve \
     --dangerous-allow-private-targets, or AddressPolicy::dangerous_allow_private_targets)";

/// A refused or failed API request. Messages describe the request, never a secret or the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// `422` with a code naming the field or rule.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} {id} not found"),
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            StoreError::InvalidState { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", err.to_string())
            }
            StoreError::LeaseLost(_) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the delivery changed meanwhile; try again",
            ),
            StoreError::UnknownEventType(ref name) => ApiError::invalid(
                "unknown_event_type",
                format!("unknown event type `{name}` (GET /v1/event-types lists them)"),
            ),
            StoreError::PayloadTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "event_too_large",
                err.to_string(),
            ),
            StoreError::BlockedTarget(ref blocked) => ApiError::invalid(
                "blocked_target",
                format!("{blocked}: {PRIVATE_TARGET_HINT}"),
            ),
            // Backend and corruption details are for the operator's log, not the client.
            _ => {
                tracing::error!(error = %err, "management API storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the request could not be completed because of a storage error",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_documented_statuses() {
        let cases = [
            (
                StoreError::NotFound {
                    kind: "endpoint",
                    id: "wh_1".into(),
                },
                404,
            ),
            (
                StoreError::Conflict {
                    kind: "endpoint",
                    id: "wh_1".into(),
                },
                409,
            ),
            (StoreError::UnknownEventType("x.y".into()), 422),
            (StoreError::PayloadTooLarge { size: 2, limit: 1 }, 413),
            (
                StoreError::InvalidState {
                    id: "dlv_1".into(),
                    action: "replayed",
                    status: "pending",
                },
                409,
            ),
            (StoreError::Backend("disk on fire".into()), 500),
        ];
        for (err, status) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status, "{api:?}");
            assert!(!api.message.contains("disk on fire"));
        }
    }
}
