//! `sign` and `verify`: the library's signature code on the command line.

use std::path::PathBuf;

use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue};
use nopos_webhooks::signature::sign as sign_body;
use nopos_webhooks::{Envelope, EventId, Scheme, Secret, Verifier};
use time::OffsetDateTime;

use crate::CliError;
use crate::raw::{RawEvent, endpoint_secrets, read_body};

const SIGN_EXAMPLES: &str = "\
Examples:
  nopos-webhooks sign --secret your_webhook_secret --body-file event.json
  echo -n '{\"id\":\"evt_1\"}' | nopos-webhooks sign --secret whsec_... --timestamp 1731234600

Prints x-nopos-signature, plus webhook-id, webhook-timestamp and webhook-signature (Standard
Webhooks) when a secret is a whsec_ secret. webhook-id is --id, else the body's \"id\" field.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  nopos-webhooks verify --secret your_webhook_secret --body-file event.json \\
      --header 'x-nopos-signature: t=1731234600,v1=5f0c...' --now 1731234600
  nopos-webhooks verify --secret \"$STRIPE_WEBHOOK_SECRET\" \\
      --header \"stripe-signature: $SIG\" < body.json

Exit codes: 0 valid, 1 invalid (the reason on stderr), 2 usage error.";

#[derive(Args)]
#[command(after_help = SIGN_EXAMPLES)]
pub(crate) struct SignArgs {
    /// An endpoint secret; repeat it to sign with several (newest first), as during a rotation.
    #[arg(
        long = "secret",
        value_name = "SECRET",
        env = "NOPOS_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true
    )]
    secrets: Vec<String>,
    /// The signed time, in Unix seconds (default: now).
    #[arg(long, value_name = "UNIX")]
    timestamp: Option<i64>,
    /// The message id for webhook-id (default: the body's "id", else a new event id).
    #[arg(long)]
    id: Option<String>,
    /// Read the body from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
}

#[derive(Args)]
#[command(after_help = VERIFY_EXAMPLES)]
pub(crate) struct VerifyArgs {
    /// A secret to try (NoPOS, Standard Webhooks, Stripe, GitHub or Shopify); repeatable.
    #[arg(
        long = "secret",
        value_name = "SECRET",
        env = "NOPOS_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true
    )]
    secrets: Vec<String>,
    /// A received header as 'name: value'; repeatable.
    #[arg(long = "header", value_name = "'NAME: VALUE'", required = true)]
    headers: Vec<String>,
    /// How far the signed timestamp may be from now, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    tolerance: u32,
    /// Verify as if it were this time, in Unix seconds (default: now).
    #[arg(long, value_name = "UNIX")]
    now: Option<i64>,
    /// Read the body from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
}

fn unix_time(flag: &str, seconds: Option<i64>) -> Result<OffsetDateTime, CliError> {
    match seconds {
        None => Ok(OffsetDateTime::now_utc()),
        Some(seconds) => OffsetDateTime::from_unix_timestamp(seconds)
            .map_err(|_| CliError::usage(format!("{flag}: {seconds} is out of range"))),
    }
}

/// The envelope's `id` field, when the body is an envelope (or any object with a string id).
fn body_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithId {
        id: String,
    }
    serde_json::from_slice::<WithId>(body).ok().map(|b| b.id)
}

pub(crate) fn sign(args: &SignArgs) -> Result<(), CliError> {
    let secrets = endpoint_secrets(&args.secrets)?;
    let at = unix_time("--timestamp", args.timestamp)?;
    let body = read_body(args.body_file.as_deref())?;
    let id = args
        .id
        .clone()
        .or_else(|| body_id(&body))
        .unwrap_or_else(|| EventId::generate(at).to_string());
    let headers = sign_body(&secrets, &id, at, &body).map_err(|err| {
        let flag = if args.id.is_some() {
            "--id"
        } else {
            "the body's id"
        };
        CliError::usage(format!("{flag}: {err}"))
    })?;
    for (name, value) in headers.iter() {
        // Signature values are ASCII by construction.
        out!("{name}: {}", value.to_str().unwrap_or_default());
    }
    Ok(())
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), CliError> {
    let invalid = |detail: &str| CliError::usage(format!("--header `{text}`: {detail}"));
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| invalid("expected 'name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| invalid("not a valid header name"))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| invalid("not a valid header value"))?;
    Ok((name, value))
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<(), CliError> {
    let secrets = args
        .secrets
        .iter()
        .map(|text| {
            Secret::from_provider(text).map_err(|err| CliError::usage(format!("--secret: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut headers = HeaderMap::new();
    for text in &args.headers {
        let (name, value) = parse_header(text)?;
        headers.append(name, value);
    }
    let now = unix_time("--now", args.now)?;
    let body = read_body(args.body_file.as_deref())?;
    let verifier = Scheme::ALL
        .into_iter()
        .fold(Verifier::new(secrets), Verifier::accept)
        .tolerance(time::Duration::seconds(i64::from(args.tolerance)))
        .max_body_size(usize::MAX);
    let verified = verifier
        .verify(&headers, &body, now)
        .map_err(|err| CliError::failed(format!("invalid signature: {err}")))?;
    out!("valid: {}", verified.scheme);
    out!("secret: {}", verified.secret_index + 1);
    if let Some(timestamp) = verified.timestamp {
        out!("timestamp: {timestamp}");
    }
    if let Ok(envelope) = Envelope::<RawEvent>::from_slice(&body) {
        out!("type: {}", envelope.event_type());
        out!("id: {}", envelope.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_like_curl() {
        let (name, value) = parse_header("X-Nopos-Signature:  t=1,v1=ab ").unwrap();
        assert_eq!(name, "x-nopos-signature");
        assert_eq!(value, "t=1,v1=ab");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn body_ids() {
        assert_eq!(
            body_id(br#"{"id":"evt_1","x":1}"#).as_deref(),
            Some("evt_1")
        );
        assert_eq!(body_id(b"not json"), None);
    }
}
