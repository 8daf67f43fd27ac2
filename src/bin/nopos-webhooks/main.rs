//! `nopos-webhooks`: the announcement's webhook service on an embedded database, plus the
//! developer tools around it (`listen`, `trigger`, `sign`, `verify`, `events`).
//!
//! The binary is thin: argument parsing, terminal output and exit codes. Everything it does is a
//! library call — the management API is [`nopos_webhooks::server`], delivery is the
//! [`Dispatcher`](nopos_webhooks::dispatcher::Dispatcher), `listen` is the axum receiver
//! extractor, `sign`/`verify` are [`nopos_webhooks::signature`].
//!
//! Exit codes: `0` success, `1` failure (an invalid signature, a refused delivery, a server that
//! cannot start), `2` usage error (bad flags or values).

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Examples shown under the top-level `--help`.
const EXAMPLES: &str = "\
Examples:
  nopos-webhooks serve --dangerous-allow-private-targets
  nopos-webhooks listen --secret your_webhook_secret
  nopos-webhooks trigger --url http://127.0.0.1:3000/webhooks/nopos \\
      --secret your_webhook_secret --event transaction.completed
  echo -n '{\"id\":\"evt_1\"}' | nopos-webhooks sign --secret your_webhook_secret
  nopos-webhooks events --json";

/// NoPOS webhooks: run the webhook service, receive and send signed test deliveries, sign and
/// verify payloads.
#[derive(Parser)]
#[command(name = "nopos-webhooks", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the management API and the delivery dispatcher in one process.
    Serve(serve::ServeArgs),
    /// Receive deliveries locally: verify each, print it as one JSON line, answer 200.
    Listen(listen::ListenArgs),
    /// Send one signed delivery of a sample (or given) event straight to a URL.
    Trigger(trigger::TriggerArgs),
    /// Print the signature headers for a body (stdin by default).
    Sign(signing::SignArgs),
    /// Check a body's signature headers (NoPOS, Standard Webhooks, Stripe, GitHub, Shopify).
    Verify(signing::VerifyArgs),
    /// List the event catalogue with sample payloads.
    Events(events::EventsArgs),
}

/// Why a command did not succeed; printed as one line on stderr.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// Bad flags or values: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed: exit code 1.
    #[error("{0}")]
    Failed(String),
    /// Stdout was closed by its reader (`| head`): stop quietly, exit code 0.
    #[error("stdout closed")]
    StdoutClosed,
}

impl CliError {
    fn usage(message: impl Into<String>) -> CliError {
        CliError::Usage(message.into())
    }

    fn failed(message: impl Into<String>) -> CliError {
        CliError::Failed(message.into())
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
            CliError::StdoutClosed => ExitCode::SUCCESS,
        }
    }
}

/// Writes one line to stdout and flushes it.
fn write_stdout(line: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::failed(format!("cannot write to stdout: {err}")),
        })
}

/// `println!` that stops the command quietly when stdout is closed instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))?
    };
}

mod events;
mod listen;
mod raw;
mod serve;
mod signing;
mod trigger;

/// A tokio runtime for the commands that do IO.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::failed(format!("cannot start the async runtime: {err}")))
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve::run(args)),
        Command::Listen(args) => runtime()?.block_on(listen::run(args)),
        Command::Trigger(args) => runtime()?.block_on(trigger::run(args)),
        Command::Sign(args) => signing::sign(&args),
        Command::Verify(args) => signing::verify(&args),
        Command::Events(args) => events::run(&args),
    }
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace, whatever RUST_BACKTRACE says.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (please report it): {message}{location}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` exit 0, usage errors 2.
        Err(err) => err.exit(),
    };
    match run(cli) {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
