//! `serve`: the management API and the dispatcher in one process, on one store.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use nopos_webhooks::dispatcher::{Dispatcher, DispatcherConfig};
use nopos_webhooks::reqwest::ReqwestClient;
use nopos_webhooks::server::{self, ApiKey, ServerState};
use nopos_webhooks::store::memory::MemoryStore;
use nopos_webhooks::store::postgres::PostgresStore;
use nopos_webhooks::store::sqlite::SqliteStore;
use nopos_webhooks::store::{Store, StoreConfig};
use nopos_webhooks::{AddressPolicy, RetrySchedule};
use time::Duration;
use tokio::sync::watch;

use crate::CliError;

const EXAMPLES: &str = "\
Examples:
  nopos-webhooks serve
  nopos-webhooks serve --listen 0.0.0.0:8080 --database sqlite:///var/lib/nopos/webhooks.db
  nopos-webhooks serve --database 'postgres://nopos@db.internal/webhooks?sslmode=verify-full'
  NOPOS_API_KEY=... nopos-webhooks serve --retry-schedule 0s,1m,10m
  nopos-webhooks serve --dangerous-allow-private-targets   # deliver to 127.0.0.1 (development)

API key: from --api-key or NOPOS_API_KEY; otherwise one is generated at the first start, printed
once, and its SHA-256 digest is kept in the key file (default: next to the SQLite file, as
<file>.api-key; for PostgreSQL ./nopos-webhooks.api-key) so the same key works after a restart.
Delete the key file to get a new key.";

// No `Debug`: the arguments hold the API key and possibly a database password.
#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ServeArgs {
    /// Address the management API listens on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(
        long,
        help = "Where endpoints, events and deliveries are kept: sqlite://FILE, postgres://… \
                or memory:// (nothing kept after exit). PostgreSQL uses TLS as the URL's \
                sslmode says (default prefer; verify-full across a network), except that a \
                server on this machine is reached without TLS unless sslmode or PGSSLMODE is set",
        value_name = "URL",
        env = "NOPOS_DATABASE_URL",
        default_value = "sqlite://nopos-webhooks.db",
        hide_env_values = true
    )]
    database: String,
    /// The API key clients send as `Authorization: Bearer <key>` (16–256 printable characters).
    #[arg(
        long,
        value_name = "KEY",
        env = "NOPOS_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Where the generated key's digest is kept (see below).
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<PathBuf>,
    /// Delays before each attempt, counted from the previous failure.
    #[arg(long, value_name = "DELAYS", default_value = "0s,5m,30m,2h,12h")]
    retry_schedule: String,
    /// Allow endpoints on loopback, private and other non-public addresses. For local
    /// development only: anyone who can register an endpoint could reach your internal network.
    #[arg(long)]
    dangerous_allow_private_targets: bool,
}

/// Where the store lives, parsed from `--database`. `Debug` and `Display` hide a PostgreSQL
/// password.
#[derive(Clone, PartialEq, Eq)]
enum Database {
    Memory,
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    fn parse(text: &str) -> Result<Database, CliError> {
        let text = text.trim();
        if text == "memory" || text.starts_with("memory:") {
            return Ok(Database::Memory);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Database::Postgres(text.to_owned()));
        }
        let path = if let Some(rest) = text.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = text.strip_prefix("sqlite:") {
            rest
        } else if text.contains("://") {
            return Err(CliError::usage(
                "--database: use sqlite://FILE, postgres://… or memory://",
            ));
        } else {
            text
        };
        // `sqlite://file.db?mode=rwc`: options are the store's business, not a file name.
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(CliError::usage(
                "--database: the SQLite URL has no file name",
            ));
        }
        Ok(Database::Sqlite(PathBuf::from(path)))
    }

    /// Where a generated API key's digest is kept when `--api-key-file` is not given.
    fn default_key_file(&self) -> Option<PathBuf> {
        match self {
            Database::Memory => None,
            Database::Sqlite(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".api-key");
                Some(PathBuf::from(name))
            }
            Database::Postgres(_) => Some(PathBuf::from("nopos-webhooks.api-key")),
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Memory => f.write_str("memory:// (nothing is kept after exit)"),
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // Never print credentials: keep the scheme and what follows the `@`.
            Database::Postgres(url) => match (url.split_once("://"), url.rsplit_once('@')) {
                (Some((scheme, _)), Some((_, host))) => write!(f, "{scheme}://***@{host}"),
                _ => f.write_str(url),
            },
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `0s,5m,30m,2h,12h`: whole numbers with a unit (`ms`, `s`, `m`, `h`, `d`).
fn parse_schedule(text: &str) -> Result<RetrySchedule, CliError> {
    let invalid = |detail: String| CliError::usage(format!("--retry-schedule: {detail}"));
    let mut delays = Vec::new();
    for part in text.split(',').map(str::trim) {
        let split = part
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| invalid(format!("`{part}` has no unit (ms, s, m, h or d)")))?;
        let (number, unit) = part.split_at(split);
        let number: i64 = number
            .parse()
            .map_err(|_| invalid(format!("`{part}` does not start with a whole number")))?;
        let delay = match unit {
            "ms" => Duration::milliseconds(number),
            "s" => Duration::seconds(number),
            "m" => Duration::minutes(number.min(i64::MAX / 60)),
            "h" => Duration::hours(number.min(i64::MAX / 3600)),
            "d" => Duration::days(number.min(i64::MAX / 86_400)),
            _ => return Err(invalid(format!("`{part}`: unknown unit `{unit}`"))),
        };
        delays.push(delay);
    }
    RetrySchedule::new(delays).map_err(|err| invalid(err.to_string()))
}

/// How the API key was obtained, for the start-up message.
enum KeySource {
    Given,
    Kept(PathBuf),
    Generated {
        text: zeroize::Zeroizing<String>,
        kept_in: Option<PathBuf>,
    },
}

const KEY_FILE_HEADER: &str = "# nopos-webhooks API key, as its SHA-256 digest (the key itself \
                               is not stored).\n# Delete this file and restart to generate a new \
                               key.\n";

fn read_key_file(path: &Path) -> Result<Option<ApiKey>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(CliError::failed(format!(
                "cannot read the API key file {}: {err}",
                path.display()
            )));
        }
    };
    let digest = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("sha256:"))
        .unwrap_or_default();
    ApiKey::from_digest_hex(digest).map(Some).map_err(|_| {
        CliError::failed(format!(
            "the API key file {} is damaged; delete it to generate a new key",
            path.display()
        ))
    })
}

fn write_key_file(path: &Path, key: &ApiKey) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = || -> std::io::Result<()> {
        let mut file = options.open(path)?;
        writeln!(file, "{KEY_FILE_HEADER}sha256:{}", key.to_digest_hex())?;
        file.sync_all()
    };
    write().map_err(|err| {
        CliError::failed(format!(
            "cannot write the API key file {}: {err}",
            path.display()
        ))
    })
}

fn resolve_api_key(args: &ServeArgs, database: &Database) -> Result<(ApiKey, KeySource), CliError> {
    if let Some(text) = &args.api_key {
        let key = ApiKey::new(text).map_err(|err| CliError::usage(format!("--api-key: {err}")))?;
        return Ok((key, KeySource::Given));
    }
    let file = args
        .api_key_file
        .clone()
        .or_else(|| database.default_key_file());
    if let Some(path) = &file
        && let Some(key) = read_key_file(path)?
    {
        return Ok((key, KeySource::Kept(path.clone())));
    }
    let (text, key) = ApiKey::generate();
    if let Some(path) = &file {
        write_key_file(path, &key)?;
    }
    Ok((
        key,
        KeySource::Generated {
            text,
            kept_in: file,
        },
    ))
}

fn init_logging() {
    let level = std::env::var("NOPOS_LOG")
        .ok()
        .and_then(|text| text.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .try_init();
}

/// Resolves on Ctrl-C (or SIGTERM on Unix).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let database = Database::parse(&args.database)?;
    let schedule = parse_schedule(&args.retry_schedule)?;
    let mut policy = AddressPolicy::default();
    let mut client = ReqwestClient::builder();
    if args.dangerous_allow_private_targets {
        policy = policy.dangerous_allow_private_targets();
        client = client.dangerous_allow_private_targets();
    }
    let client = client
        .build()
        .map_err(|err| CliError::failed(err.to_string()))?;
    let config = StoreConfig::default()
        .default_schedule(schedule)
        .address_policy(policy);
    init_logging();
    match &database {
        Database::Memory => {
            let store = Arc::new(MemoryStore::new(config));
            run_with(store, client, &args, &database).await
        }
        Database::Postgres(url) => {
            let url = connect_url(url, std::env::var_os("PGSSLMODE").is_some());
            let store = PostgresStore::connect(&url, config)
                .await
                .map_err(|err| CliError::failed(format!("{database}: {}", chain(&err))))?;
            run_with(Arc::new(store), client, &args, &database).await
        }
        Database::Sqlite(path) => {
            let store = SqliteStore::open(path, config)
                .await
                .map_err(|err| CliError::failed(format!("{database}: {}", chain(&err))))?;
            run_with(Arc::new(store), client, &args, &database).await
        }
    }
}

/// The URL the PostgreSQL store connects with: `url`, plus `sslmode=disable` when it names a
/// server on this machine over TCP and chooses no TLS mode (nor does `PGSSLMODE`, as
/// `mode_from_env` says).
///
/// Elsewhere the URL's mode applies; PostgreSQL's default, `prefer`, encrypts whenever the server
/// offers TLS. On loopback TLS protects nothing, and costs dearly: the driver sends without
/// `TCP_NODELAY`, so over TLS a message longer than one TLS record waits ~40 ms for a delayed ACK
/// (the `PostgresStore` docs have the figures).
fn connect_url(url: &str, mode_from_env: bool) -> Cow<'_, str> {
    let chooses_mode = url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            let key = pair.split_once('=').map_or(pair, |(key, _)| key);
            key == "sslmode" || key == "ssl-mode"
        })
    });
    if mode_from_env || chooses_mode {
        return Cow::Borrowed(url);
    }
    let Ok(options) = url.parse::<sqlx::postgres::PgConnectOptions>() else {
        // Connecting reports the error.
        return Cow::Borrowed(url);
    };
    let host = options
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Cow::Borrowed(url);
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Cow::Owned(format!("{url}{separator}sslmode=disable"))
}

/// An error and its sources on one line (the stores keep the driver's detail as the source).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn run_with<S: Store + 'static>(
    store: Arc<S>,
    client: ReqwestClient,
    args: &ServeArgs,
    database: &Database,
) -> Result<(), CliError> {
    // The key is resolved after the store opened, so a database that fails does not leave a
    // key file behind for a key nobody saw.
    let (api_key, source) = resolve_api_key(args, database)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| CliError::failed(format!("cannot listen on {}: {err}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|err| CliError::failed(format!("cannot read the listening address: {err}")))?;

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "nopos-webhooks {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "database: {database}");
    match &source {
        KeySource::Given => {
            let _ = writeln!(out, "API key: the one given with --api-key / NOPOS_API_KEY");
        }
        KeySource::Kept(path) => {
            let _ = writeln!(
                out,
                "API key: the one generated earlier (digest in {})",
                path.display()
            );
        }
        KeySource::Generated { text, kept_in } => {
            let kept = kept_in.as_ref().map_or_else(
                || "not kept: a new one is generated at every start".to_owned(),
                |path| format!("its digest is kept in {}", path.display()),
            );
            let _ = writeln!(
                out,
                "API key: {} (generated; shown only this once, {kept})",
                text.as_str()
            );
        }
    }
    if args.dangerous_allow_private_targets {
        let _ = writeln!(
            out,
            "warning: private targets allowed (--dangerous-allow-private-targets)"
        );
    }
    let _ = writeln!(out, "listening on http://{address}");
    let _ = out.flush();
    drop(out);

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let dispatcher = Dispatcher::with_config(
        Arc::clone(&store),
        client.clone(),
        DispatcherConfig::default(),
    );
    let app = server::router(ServerState::new(store, client, api_key));
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("shutting down: finishing deliveries in flight");
        let _ = stop_tx.send(true);
    });
    let serving = axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let (served, dispatched) =
        tokio::join!(async { serving.await }, dispatcher.run(stopped(stop_rx)));
    signal.abort();
    served.map_err(|err| CliError::failed(format!("the management API failed: {err}")))?;
    dispatched.map_err(|err| CliError::failed(format!("the dispatcher failed: {err}")))?;
    eprintln!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            Database::parse("sqlite://nopos-webhooks.db").unwrap(),
            Database::Sqlite("nopos-webhooks.db".into())
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/x.db?mode=rwc").unwrap(),
            Database::Sqlite("/var/lib/x.db".into())
        );
        assert_eq!(
            Database::parse("data/x.db").unwrap(),
            Database::Sqlite("data/x.db".into())
        );
        assert_eq!(Database::parse("memory://").unwrap(), Database::Memory);
        let pg = Database::parse("postgres://user:pw@db:5432/hooks").unwrap();
        assert_eq!(pg.to_string(), "postgres://***@db:5432/hooks");
        assert!(Database::parse("mysql://x").is_err());
        assert!(Database::parse("sqlite://").is_err());
        assert_eq!(
            Database::Sqlite("a/x.db".into()).default_key_file(),
            Some(PathBuf::from("a/x.db.api-key"))
        );
    }

    #[test]
    fn loopback_databases_skip_tls_unless_told_otherwise() {
        for (url, expected) in [
            (
                "postgres://nopos@127.0.0.1:5432/hooks",
                "postgres://nopos@127.0.0.1:5432/hooks?sslmode=disable",
            ),
            (
                "postgres://nopos@localhost/hooks?application_name=x",
                "postgres://nopos@localhost/hooks?application_name=x&sslmode=disable",
            ),
            (
                "postgresql://nopos@[::1]:5432/hooks",
                "postgresql://nopos@[::1]:5432/hooks?sslmode=disable",
            ),
            // Another machine: the URL's mode (or PostgreSQL's default, `prefer`).
            (
                "postgres://nopos@db.internal/hooks",
                "postgres://nopos@db.internal/hooks",
            ),
            (
                "postgres://nopos@10.0.0.5/hooks",
                "postgres://nopos@10.0.0.5/hooks",
            ),
            // A mode chosen in the URL stands, on loopback too.
            (
                "postgres://nopos@127.0.0.1/hooks?sslmode=require",
                "postgres://nopos@127.0.0.1/hooks?sslmode=require",
            ),
            (
                "postgres://nopos@localhost/hooks?x=1&ssl-mode=verify-full",
                "postgres://nopos@localhost/hooks?x=1&ssl-mode=verify-full",
            ),
            // Not a URL the driver takes: left for connecting to report.
            (
                "postgres://nopos@127.0.0.1:notaport/hooks",
                "postgres://nopos@127.0.0.1:notaport/hooks",
            ),
        ] {
            assert_eq!(connect_url(url, false), expected, "{url}");
        }
        // `PGSSLMODE` chooses for every URL without a mode.
        assert_eq!(
            connect_url("postgres://nopos@127.0.0.1/hooks", true),
            "postgres://nopos@127.0.0.1/hooks"
        );
    }

    #[test]
    fn schedules() {
        let schedule = parse_schedule("0s,5m,30m,2h,12h").unwrap();
        assert_eq!(schedule, RetrySchedule::default());
        let quick = parse_schedule("0ms, 1s, 1d").unwrap();
        assert_eq!(quick.max_attempts(), 3);
        for bad in ["", "5", "5x", "m", "-1s", "0s,,1s", "31d"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_files_keep_a_digest_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.api-key");
        assert!(read_key_file(&path).unwrap().is_none());
        let (text, key) = ApiKey::generate();
        write_key_file(&path, &key).unwrap();
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(text.as_str()));
        assert!(read_key_file(&path).unwrap().unwrap().matches(&text));
        assert!(write_key_file(&path, &key).is_err(), "never overwritten");
        std::fs::write(&path, "garbage").unwrap();
        assert!(read_key_file(&path).is_err());
    }
}
