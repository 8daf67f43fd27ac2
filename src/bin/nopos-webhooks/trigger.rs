//! `trigger`: one signed delivery straight to a URL, through the dispatcher's own signing path.

use clap::Args;
use nopos_webhooks::dispatcher::send_attempt;
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::{
    AttemptResult, AttemptToSend, DeliveryId, Endpoint, EndpointId, EndpointUrl, Envelope, Event,
    EventFilter, EventId, EventType, Secret, SecretSet, SerializedEvent,
};
use time::OffsetDateTime;

use crate::CliError;
use crate::raw::{RawEvent, json_object};

const EXAMPLES: &str = "\
Examples:
  nopos-webhooks trigger --url http://127.0.0.1:3000/webhooks/nopos \\
      --secret your_webhook_secret --event transaction.completed
  nopos-webhooks trigger --url https://your-app.com/webhooks/nopos --secret your_webhook_secret \\
      --event inventory.low_stock --data '{\"product_id\":\"prod_1\",\"quantity\":2,\"reorder_point\":5}'

Private targets (127.0.0.1, your LAN) are allowed: this is run against your own app.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct TriggerArgs {
    /// Where to send the delivery.
    #[arg(long)]
    url: String,
    /// The endpoint secret to sign with.
    #[arg(long, env = "NOPOS_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// The event type; its sample payload is sent unless --data is given.
    #[arg(long = "event", value_name = "TYPE")]
    event_type: String,
    /// The event's data, a JSON object (sent as given).
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
}

pub(crate) async fn run(args: TriggerArgs) -> Result<(), CliError> {
    let url =
        EndpointUrl::parse(&args.url).map_err(|err| CliError::usage(format!("--url: {err}")))?;
    let secret =
        Secret::new(&args.secret).map_err(|err| CliError::usage(format!("--secret: {err}")))?;
    let event_type = EventType::try_from(args.event_type.as_str())
        .map_err(|err| CliError::usage(format!("--event: {err}")))?;
    let now = OffsetDateTime::now_utc();
    let id = EventId::generate(now);
    let event = if let Some(text) = &args.data {
        let data = json_object("--data", text)?;
        SerializedEvent::from_envelope(&Envelope::new(
            id,
            now,
            RawEvent::new(event_type.clone(), data),
        ))
    } else {
        let sample = Event::sample(&event_type).ok_or_else(|| {
            CliError::usage(format!(
                "--event: `{event_type}` has no sample payload (see `nopos-webhooks events`); \
                 give its data with --data"
            ))
        })?;
        SerializedEvent::from_envelope(&Envelope::new(id, now, sample))
    }
    .map_err(|err| CliError::usage(format!("--data: {err}")))?;

    let endpoint = Endpoint::new(
        EndpointId::generate(now),
        url,
        EventFilter::all(),
        SecretSet::new(secret),
        now,
    );
    let attempt = AttemptToSend::new(
        DeliveryId::generate(now),
        event.id().clone(),
        endpoint.id.clone(),
        1,
        now,
    );
    let client = ReqwestClient::builder()
        .dangerous_allow_private_targets()
        .build()
        .map_err(|err| CliError::failed(err.to_string()))?;
    let outcome = send_attempt(&client, &endpoint, &attempt, &event).await;
    let record = outcome.record(1);
    let what = format!("{event_type} {}", event.id());
    match &outcome.result {
        AttemptResult::Response {
            status, excerpt, ..
        } => {
            out!(
                "{} {} in {} ms ({what})",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                record.latency_ms
            );
            if !excerpt.is_empty() {
                out!("{}", excerpt.trim_end());
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(CliError::failed(format!(
                    "the endpoint answered {}, not 2xx",
                    status.as_u16()
                )))
            }
        }
        AttemptResult::Transport(error) => Err(CliError::failed(format!(
            "no answer from {} after {} ms: {}",
            endpoint.url,
            record.latency_ms,
            describe(*error)
        ))),
        _ => Err(CliError::failed("unexpected outcome")),
    }
}

fn describe(error: nopos_webhooks::TransportError) -> &'static str {
    use nopos_webhooks::TransportError;
    match error {
        TransportError::Timeout => "timed out",
        TransportError::Connect => "connection failed (is the receiver running?)",
        TransportError::Dns => "the host name could not be resolved",
        TransportError::Tls => "the TLS handshake failed",
        TransportError::BlockedAddress => "the address is blocked",
        TransportError::BodyTooLarge => "the event is too large",
        _ => "the request failed",
    }
}
