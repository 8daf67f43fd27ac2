//! `listen`: a local receiver for development, like `stripe listen`.
//!
//! It is the library's axum receiver: the [`VerifiedEvent`] extractor with a
//! [`MemoryDeduplicator`]. Each verified event is printed as one JSON line on stdout (the
//! envelope, `data` byte for byte as received) and acknowledged `200`; a rejected delivery gets
//! the extractor's `401`/`400`/`413` and a one-line reason on stderr; a duplicate event id is
//! acknowledged and not printed again.

use std::io::Write as _;
use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Args;
use nopos_webhooks::{MemoryDeduplicator, ReceiveError, VerifiedEvent, Verifier, WebhookReceiver};

use crate::CliError;
use crate::raw::{RawEvent, endpoint_secrets};

const EXAMPLES: &str = "\
Examples:
  nopos-webhooks listen --secret your_webhook_secret
  nopos-webhooks listen --secret whsec_NEW... --secret whsec_OLD...   # during a rotation
  NOPOS_WEBHOOK_SECRET=your_webhook_secret nopos-webhooks listen --listen 127.0.0.1:4000 | jq .data";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ListenArgs {
    /// An endpoint secret; repeat it to accept several during a rotation.
    #[arg(
        long = "secret",
        value_name = "SECRET",
        env = "NOPOS_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true
    )]
    secrets: Vec<String>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The path deliveries are posted to.
    #[arg(long, default_value = "/webhooks/nopos")]
    path: String,
    /// How far a signature's timestamp may be from now, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    tolerance: u32,
}

async fn receive(result: Result<VerifiedEvent<RawEvent>, ReceiveError>) -> Response {
    match result {
        Ok(event) => {
            let envelope = &event.envelope;
            let kind = envelope.event_type();
            if event.duplicate {
                eprintln!(
                    "duplicate {kind} {} acknowledged, not printed again",
                    envelope.id
                );
                return (StatusCode::OK, "OK").into_response();
            }
            match envelope.to_bytes() {
                Ok(line) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&line);
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                }
                Err(err) => eprintln!("cannot print {}: {err}", envelope.id),
            }
            eprintln!(
                "verified {kind} {} ({} signature)",
                envelope.id, event.verified.scheme
            );
            (StatusCode::OK, "OK").into_response()
        }
        Err(err) => {
            eprintln!("rejected delivery ({}): {err}", err.status().as_u16());
            err.into_response()
        }
    }
}

pub(crate) async fn run(args: ListenArgs) -> Result<(), CliError> {
    if !args.path.starts_with('/') {
        return Err(CliError::usage("--path must start with `/`"));
    }
    let secrets = endpoint_secrets(&args.secrets)?;
    let verifier =
        Verifier::new(secrets).tolerance(time::Duration::seconds(i64::from(args.tolerance)));
    let receiver = WebhookReceiver::new(verifier).with_deduplicator(MemoryDeduplicator::default());
    let app = Router::new()
        .route(&args.path, post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| CliError::failed(format!("cannot listen on {}: {err}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|err| CliError::failed(format!("cannot read the listening address: {err}")))?;
    eprintln!(
        "listening on http://{address}{} ({} secret(s), tolerance {} s); Ctrl-C to stop",
        args.path,
        args.secrets.len(),
        args.tolerance
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|err| CliError::failed(format!("the receiver failed: {err}")))
}
