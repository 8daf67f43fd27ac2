//! Reading requests: JSON bodies under the size limit, query strings, ids in paths.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use http::StatusCode;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::error::Category;

use super::ServerState;
use super::error::ApiError;
use crate::ReceiveError;
use crate::store::Store;
use crate::transport::HttpClient;

/// A JSON request body, read under [`ServerConfig::max_body_size`](super::ServerConfig) and
/// parsed into `T`. An empty body reads as `{}`.
///
/// Refusals: `413 payload_too_large` over the limit (nothing more is read), `400 malformed_json`
/// for text that is not JSON, `422 invalid_request` for JSON of the wrong shape (a missing or
/// unknown field, a wrong type).
pub(super) struct JsonBody<T>(pub(super) T);

impl<T, S, C> FromRequest<ServerState<S, C>> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Store + 'static,
    C: HttpClient,
{
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &ServerState<S, C>,
    ) -> Result<Self, Self::Rejection> {
        let limit = state.config.max_body_size;
        let bytes = crate::tower::read_body(request.into_body(), limit)
            .await
            .map_err(|err| match err {
                ReceiveError::BodyTooLarge { limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the request body exceeds the {limit}-byte limit"),
                ),
                _ => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "the request body could not be read",
                ),
            })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(JsonBody)
            .map_err(|err| json_error(&err))
    }
}

/// `400` for text that is not JSON, `422` for JSON of the wrong shape.
pub(super) fn json_error(err: &serde_json::Error) -> ApiError {
    match err.classify() {
        Category::Data => ApiError::invalid("invalid_request", format!("invalid request: {err}")),
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {err}"),
        ),
    }
}

/// A field of a partial update: absent (keep the value), `null` (clear it) or a new value.
#[derive(Default)]
pub(super) enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Patch<T>, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Patch::Set(value),
            None => Patch::Clear,
        })
    }
}

/// The parameters of a query string; an unknown or repeated name is refused with `422`.
pub(super) fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut params = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::invalid(
                "invalid_request",
                format!(
                    "unknown query parameter `{name}` (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        }
        if params
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(ApiError::invalid(
                "invalid_request",
                format!("query parameter `{name}` is given twice"),
            ));
        }
    }
    Ok(params)
}

/// An integer query parameter within `min..=max`, or `default` when absent.
pub(super) fn integer_param(
    params: &BTreeMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    text.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_request",
                format!("query parameter `{name}` must be an integer from {min} to {max}"),
            )
        })
}

/// `json` (valid JSON text) without insignificant whitespace. Numbers and strings are kept byte
/// for byte, so amounts such as `125.50` are not rewritten (a round trip through
/// `serde_json::Value` would make them `125.5`).
pub(super) fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in json.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
            continue;
        }
        match ch {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                in_string = true;
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacting_keeps_strings_and_numbers() {
        let json = "{ \"a\" : 125.50 ,\n \"b\": \"x  \\\" y\\\\\", \"c\": [ 1, {\"d\" :null} ] }";
        assert_eq!(
            compact_json(json),
            r#"{"a":125.50,"b":"x  \" y\\","c":[1,{"d":null}]}"#
        );
        let value: serde_json::Value = serde_json::from_str(&compact_json(json)).unwrap();
        assert_eq!(
            value,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }

    #[test]
    fn query_parameters_are_checked() {
        let params = query_params(Some("status=failed&limit=10"), &["status", "limit"]).unwrap();
        assert_eq!(params["status"], "failed");
        assert_eq!(integer_param(&params, "limit", 100, 1, 1000).unwrap(), 10);
        assert_eq!(integer_param(&params, "other", 100, 1, 1000).unwrap(), 100);
        assert!(query_params(Some("bogus=1"), &["status"]).is_err());
        assert!(query_params(Some("limit=1&limit=2"), &["limit"]).is_err());
        let zero = query_params(Some("limit=0"), &["limit"]).unwrap();
        assert!(integer_param(&zero, "limit", 100, 1, 1000).is_err());
        assert!(query_params(None, &[]).unwrap().is_empty());
    }
}
