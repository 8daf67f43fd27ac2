//! Event data kept as received, and the helpers that read secrets, bodies and JSON from the
//! command line.

use std::io::Read as _;
use std::path::Path;

use nopos_webhooks::{DataError, EventType, Secret, WebhookEvent};
use serde_json::value::RawValue;

use crate::CliError;

/// An envelope's `data`, byte for byte: what `listen` prints and `trigger --data` sends. (The
/// typed [`nopos_webhooks::Event`] would drop fields this version does not know.)
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    event_type: EventType,
    data: Box<RawValue>,
}

impl RawEvent {
    pub(crate) fn new(event_type: EventType, data: Box<RawValue>) -> RawEvent {
        RawEvent { event_type, data }
    }
}

impl WebhookEvent for RawEvent {
    fn event_type(&self) -> EventType {
        self.event_type.clone()
    }

    fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.data, serializer)
    }

    fn from_data(event_type: &EventType, data: &RawValue) -> Result<RawEvent, DataError> {
        Ok(RawEvent {
            event_type: event_type.clone(),
            data: data.to_owned(),
        })
    }
}

/// NoPOS endpoint secrets (`whsec_…` or 16–256 printable ASCII characters).
pub(crate) fn endpoint_secrets(texts: &[String]) -> Result<Vec<Secret>, CliError> {
    texts
        .iter()
        .map(|text| Secret::new(text).map_err(|err| CliError::usage(format!("--secret: {err}"))))
        .collect()
}

/// The body from `--body-file`, or all of stdin.
pub(crate) fn read_body(file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    if let Some(path) = file {
        return std::fs::read(path).map_err(|err| {
            CliError::usage(format!(
                "--body-file: cannot read {}: {err}",
                path.display()
            ))
        });
    }
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|err| CliError::failed(format!("cannot read stdin: {err}")))?;
    Ok(body)
}

/// A JSON object given on the command line, as compact raw JSON.
pub(crate) fn json_object(flag: &str, text: &str) -> Result<Box<RawValue>, CliError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| CliError::usage(format!("{flag}: not valid JSON: {err}")))?;
    if !value.is_object() {
        return Err(CliError::usage(format!("{flag}: must be a JSON object")));
    }
    // Parse again as raw text so that numbers keep their spelling (`125.50`).
    let raw: Box<RawValue> = serde_json::from_str(text)
        .map_err(|err| CliError::usage(format!("{flag}: not valid JSON: {err}")))?;
    RawValue::from_string(compact(raw.get()))
        .map_err(|err| CliError::usage(format!("{flag}: not valid JSON: {err}")))
}

/// Valid JSON text without insignificant whitespace; strings and numbers untouched.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in json.chars() {
        if in_string {
            out.push(ch);
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            in_string = ch == '"';
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_keep_number_spelling() {
        let raw = json_object("--data", "{ \"amount\": 125.50, \"s\": \"a b\" }").unwrap();
        assert_eq!(raw.get(), r#"{"amount":125.50,"s":"a b"}"#);
        assert!(json_object("--data", "[1]").is_err());
        assert!(json_object("--data", "{").is_err());
    }
}
