//! `events`: the catalogue of event types with the sample payloads the test tool sends.

use clap::Args;
use nopos_webhooks::{CATALOGUE, Event, WebhookEvent};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::CliError;

const EXAMPLES: &str = "\
Examples:
  nopos-webhooks events
  nopos-webhooks events --json | jq '.[] | select(.type == \"transaction.completed\") | .sample'";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct EventsArgs {
    /// Print a JSON array of {type, description, sample} instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    description: &'a str,
    sample: Box<RawValue>,
}

fn sample_data(event: &Event) -> Result<Box<RawValue>, CliError> {
    let mut out = Vec::new();
    event
        .serialize_data(&mut serde_json::Serializer::new(&mut out))
        .map_err(|err| CliError::failed(format!("cannot serialize a sample: {err}")))?;
    let text = String::from_utf8(out)
        .map_err(|err| CliError::failed(format!("cannot serialize a sample: {err}")))?;
    RawValue::from_string(text)
        .map_err(|err| CliError::failed(format!("cannot serialize a sample: {err}")))
}

pub(crate) fn run(args: &EventsArgs) -> Result<(), CliError> {
    let mut entries = Vec::with_capacity(CATALOGUE.len());
    for info in CATALOGUE {
        let sample = Event::sample(info.event_type)
            .ok_or_else(|| CliError::failed(format!("no sample for {}", info.event_type)))?;
        entries.push(Entry {
            event_type: info.event_type.as_str(),
            description: info.description,
            sample: sample_data(&sample)?,
        });
    }
    if args.json {
        let text = serde_json::to_string_pretty(&entries)
            .map_err(|err| CliError::failed(format!("cannot serialize the catalogue: {err}")))?;
        out!("{text}");
    } else {
        for entry in &entries {
            out!("{:<26} {}", entry.event_type, entry.description);
            out!("    {}", entry.sample.get());
        }
    }
    Ok(())
}
