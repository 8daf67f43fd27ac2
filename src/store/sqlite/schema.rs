//! Opening a database file: connection settings and the embedded, versioned migrations.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::store::StoreError;
use crate::store::codec::backend;

/// How long a statement waits for another connection's write lock before failing with "database
/// is locked". Claims and records are short transactions, so waiting beats failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// WAL pages after which a commit checkpoints the log into the database file.
const WAL_AUTOCHECKPOINT_PAGES: &str = "4000";

/// Connections in the pool. SQLite has one writer at a time; the rest serve reads (listing,
/// logs) concurrently under WAL.
const MAX_CONNECTIONS: u32 = 8;

/// The table that records applied migrations. Not sqlx's default `_sqlx_migrations`: the outbox
/// shares the application's database file, whose own migrations may already use that name.
const MIGRATIONS_TABLE: &str = "nopos_webhooks_migrations";

/// The schema, one migration per version, embedded in the crate. Never edit an applied
/// migration (its checksum is verified on open): add the next version instead.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "schema", include_str!("migrations/0001_schema.sql"))];

/// The connection settings every store connection uses.
pub(super) fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL: readers never block the writer and the writer never blocks readers, so listing
        // deliveries does not stall claims.
        .journal_mode(SqliteJournalMode::Wal)
        // FULL, not WAL's usual NORMAL: NORMAL syncs the log only at checkpoints, so a power cut
        // can lose transactions that had already committed. `emit` promises the event is durable
        // when it returns (DESIGN §4), so every commit is synced before it returns.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // Checkpoint every 4,000 WAL pages (16 MB) instead of SQLite's 1,000: claims and outcome
        // records rewrite the same pages over and over, and a later checkpoint copies each of
        // them into the database once instead of several times (measured: about 12 % less time
        // per delivery claimed and recorded). Crash recovery replays at most that much log.
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
}

/// A second, small pool on the same file whose commits are synced to the WAL only at checkpoints
/// (`synchronous = NORMAL`): safe against a process crash, and after a power loss the last few of
/// its commits can be missing. Only claims, outcome records and releases use it — losing one of
/// those means an attempt is made again, which at-least-once delivery allows, while a disk flush
/// per outcome would cap a dispatcher at a few hundred deliveries per second. A commit on the main
/// pool (`emit` above all) also makes every earlier lazy commit durable.
///
/// It never checkpoints by itself (`wal_autocheckpoint = 0`): a checkpoint runs inside the commit
/// that passes the threshold, copying megabytes and syncing the file, and on this pool that
/// commit holds the store's write turn, so every claim and record waited behind it (20–90 ms
/// seen in a loop of claims and records). The store starts a checkpoint on the main pool in the
/// background instead, about every `LAZY_PAGES_PER_CHECKPOINT` pages of log (see
/// `SqliteStore::commit_lazy`).
pub(super) async fn open_lazy_pool(path: &Path) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(
            connect_options(path)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", "0"),
        )
        .await
        .map_err(backend)
}

/// Opens (creating if missing) the database file and brings its schema up to date.
pub(super) async fn open_pool(path: &Path) -> Result<SqlitePool, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        // A connection to a local file does not go stale the way a network one does; the ping
        // would be one more round trip to the connection's thread per transaction.
        .test_before_acquire(false)
        .connect_with(connect_options(path))
        .await
        .map_err(backend)?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the embedded migrations that the database does not have yet. A database written by a
/// newer version of the crate (with migrations this one does not know) is refused.
pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await.map_err(backend)
}
