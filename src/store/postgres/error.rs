//! Why opening a PostgreSQL store failed.
//!
//! Messages are fixed text: none repeats the connection URL, which may contain a password. The
//! driver's error is kept as the source for the operator's logs.

/// Why [`PostgresStore::connect`](super::PostgresStore::connect) or
/// [`PostgresStore::from_pool`](super::PostgresStore::from_pool) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The schema name is not 1–63 lowercase ASCII letters, digits and underscores starting
    /// with a letter or underscore.
    #[error("invalid schema name `{0}`: use 1-63 lowercase letters, digits and underscores")]
    InvalidSchema(String),
    /// The database could not be reached or refused the connection.
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    /// The embedded migrations could not be applied (or the schema was migrated by a newer
    /// version of this crate).
    #[error("could not migrate the nopos-webhooks tables")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}
