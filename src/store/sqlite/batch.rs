//! Batched statements: the rows of a claim or of a batch of outcomes read or written with one
//! statement per table, as `IN` lists and multi-row `VALUES` lists of bound parameters.
//!
//! SQLite has no array parameters, and every statement is a round trip to the connection's
//! thread, so writing a batch row by row would cost a round trip per row. Passing the rows as
//! one JSON document to `json_each` would avoid that, but SQLite then parses the document again
//! for every column it extracts, which costs more than the round trips it saves. Lists are
//! padded to the next power of two with rows that match nothing (`NULL` ids), so a connection
//! prepares and caches a handful of statement shapes instead of one per batch size.
//!
//! The writes are `OR FAIL`: a statement that fails part-way keeps the rows it already wrote
//! instead of undoing itself. That spares SQLite its statement journal, a copy of every page
//! the statement touches (a batch touches hundreds of kilobytes, which spilled to a temporary
//! file and cost about 6 % of the time per delivery claimed and recorded). Nothing half-written
//! survives: every caller runs inside a transaction that an error rolls back whole.

use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Encode, SqlSafeStr, Type};
use time::OffsetDateTime;

use super::due_at;
use crate::store::codec::{backend, to_json, to_micros};
use crate::store::{Claim, LeaseToken, StoreError};
use crate::{AttemptRecord, DeliveryId, DeliveryState, DeliveryStatus, EndpointHealth, EndpointId};

/// Most rows in one statement: 512 rows of 7 columns stay far below SQLite's limit on bound
/// parameters (32,766).
const MAX_ROWS: usize = 512;

/// `rows` tuples of `columns` placeholders, padded (see the module docs): `(?, ?), (?, ?)`.
fn values_list(rows: usize, columns: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    vec![tuple; rows.next_power_of_two()].join(", ")
}

/// Statements sent to the connection's thread as one command, so that all of them cost one
/// round trip; built from constant text and placeholders only, values are always bound. The
/// write turn is held for every round trip of a write transaction, and while a dispatcher runs
/// that turn is busy almost all the time: writing a batch of outcomes' states, log entries and
/// healths together brought recording from six or seven round trips to four.
/// sqlx runs the statements of one text in order and binds the anonymous `?` parameters across
/// them in order; an error stops it at the failing statement (the caller's transaction then
/// rolls back).
#[derive(Default)]
pub(super) struct Script {
    sql: String,
    args: SqliteArguments,
    /// Rows the statements change when every row they name is as expected.
    rows: u64,
}

impl Script {
    /// Starts the next statement.
    fn statement(&mut self, sql: &str, rows: usize) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(sql);
        self.rows = self
            .rows
            .saturating_add(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    fn bind<'t, T: Encode<'t, Sqlite> + Type<Sqlite>>(
        &mut self,
        value: T,
    ) -> Result<(), StoreError> {
        self.args
            .add(value)
            .map_err(|err| backend(sqlx::Error::Encode(err)))
    }

    /// Binds `NULL`s for the padding rows of a list of `rows` rows of `columns` columns.
    fn pad(&mut self, rows: usize, columns: usize) -> Result<(), StoreError> {
        for _ in 0..(rows.next_power_of_two() - rows) * columns {
            self.bind(None::<String>)?;
        }
        Ok(())
    }

    /// How many rows the statements change when each row they name is found as expected (for
    /// the writes of [`DeliveryWrites::push_as_claimed`]: unchanged since its claim).
    pub(super) fn expected_rows(&self) -> u64 {
        self.rows
    }

    /// Runs the statements and returns how many rows they changed in all.
    pub(super) async fn run(self, conn: &mut SqliteConnection) -> Result<u64, StoreError> {
        if self.sql.is_empty() {
            return Ok(0);
        }
        let query = sqlx::query_with(AssertSqlSafe(self.sql).into_sql_str(), self.args);
        Ok(query.execute(conn).await.map_err(backend)?.rows_affected())
    }

    /// Runs the statements and returns the rows they read, in order.
    async fn fetch_all(self, conn: &mut SqliteConnection) -> Result<Vec<SqliteRow>, StoreError> {
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        let query = sqlx::query_with(AssertSqlSafe(self.sql).into_sql_str(), self.args);
        query.fetch_all(conn).await.map_err(backend)
    }
}

/// The rows whose `id` is one of `ids`: `SELECT {columns} FROM {table} WHERE id IN (…)`, in
/// statements of at most [`MAX_ROWS`] ids each, sent as one command.
pub(super) async fn rows_with_ids(
    conn: &mut SqliteConnection,
    columns: &str,
    table: &str,
    ids: &[&str],
) -> Result<Vec<SqliteRow>, StoreError> {
    let mut script = Script::default();
    for chunk in ids.chunks(MAX_ROWS) {
        let list = values_list(chunk.len(), 1);
        script.statement(
            &format!("SELECT {columns} FROM {table} WHERE id IN (VALUES {list})"),
            0,
        );
        for id in chunk {
            script.bind(id.to_string())?;
        }
        script.pad(chunk.len(), 1)?;
    }
    script.fetch_all(conn).await
}

/// Delivery rows to rewrite, in at most two statements per [`MAX_ROWS`].
#[derive(Default)]
pub(super) struct DeliveryWrites {
    /// Rows whose `finished` column keeps its value (claims, retries, pauses).
    unfinished: Vec<DeliveryColumns>,
    /// Rows that finish or come back (a replay): `finished` is written too.
    finishing: Vec<DeliveryColumns>,
}

/// One row's derived columns and state.
struct DeliveryColumns {
    id: String,
    status: &'static str,
    due_at: Option<i64>,
    lease_token: Option<String>,
    lease_until: Option<i64>,
    state: String,
    finished: bool,
    /// For a write that applies only to the row as a claim left it: that claim's lease token and
    /// state text (see [`DeliveryWrites::push_as_claimed`]).
    claimed: Option<(String, Arc<str>)>,
}

impl DeliveryWrites {
    /// A batch of one row.
    pub(super) fn one(
        before: DeliveryStatus,
        state: &DeliveryState,
        lease: Option<(&LeaseToken, OffsetDateTime)>,
    ) -> Result<DeliveryWrites, StoreError> {
        let mut writes = DeliveryWrites::default();
        writes.push(before, state, lease)?;
        Ok(writes)
    }

    /// Adds a delivery's new state and the columns derived from it, and returns the state's text
    /// as it will be written. `before` is its status as read: the `finished` column is written
    /// only when the delivery finishes or is replayed, because SQLite rewrites the entries of
    /// every index whose columns an `UPDATE` sets, and claims must not rewrite
    /// `nopos_deliveries_unfinished` (keyed by endpoint, so scattered: at a 100,000 backlog that
    /// is a hundred extra pages per claim).
    pub(super) fn push(
        &mut self,
        before: DeliveryStatus,
        state: &DeliveryState,
        lease: Option<(&LeaseToken, OffsetDateTime)>,
    ) -> Result<&str, StoreError> {
        self.push_row(before, state, lease, None)
    }

    /// Adds a claimed delivery's new state, to be written only where the row still holds exactly
    /// what the claim wrote: its lease token and `claimed_text`, the state text the claim wrote.
    /// [`DeliveryWrites::write`] counts the rows it wrote; a row changed since the claim is left
    /// alone and not counted.
    pub(super) fn push_as_claimed(
        &mut self,
        claim: &Claim,
        claimed_text: Arc<str>,
        state: &DeliveryState,
    ) -> Result<(), StoreError> {
        let claimed = (claim.lease.as_str().to_owned(), claimed_text);
        self.push_row(claim.state.status, state, None, Some(claimed))?;
        Ok(())
    }

    fn push_row(
        &mut self,
        before: DeliveryStatus,
        state: &DeliveryState,
        lease: Option<(&LeaseToken, OffsetDateTime)>,
        claimed: Option<(String, Arc<str>)>,
    ) -> Result<&str, StoreError> {
        // A lease only means something while the attempt is in flight.
        let lease = lease.filter(|_| state.status == DeliveryStatus::InFlight);
        let finished = state.status.is_final();
        let columns = DeliveryColumns {
            id: state.id.to_string(),
            status: state.status.as_str(),
            due_at: due_at(state).map(to_micros),
            lease_token: lease.map(|(token, _)| token.as_str().to_owned()),
            lease_until: lease.map(|(_, until)| to_micros(until)),
            state: to_json("delivery state", state)?,
            finished,
            claimed,
        };
        let rows = if before.is_final() == finished {
            &mut self.unfinished
        } else {
            &mut self.finishing
        };
        rows.push(columns);
        Ok(rows.last().map_or("", |row| row.state.as_str()))
    }

    /// Writes the rows added so far, empties the batch and returns how many rows it wrote.
    pub(super) async fn write(&mut self, conn: &mut SqliteConnection) -> Result<u64, StoreError> {
        let mut script = Script::default();
        self.append_to(&mut script)?;
        script.run(conn).await
    }

    /// Adds the statements that write the rows added so far to `script`, and empties the batch.
    pub(super) fn append_to(&mut self, script: &mut Script) -> Result<(), StoreError> {
        for (rows, with_finished) in [
            (std::mem::take(&mut self.unfinished), false),
            (std::mem::take(&mut self.finishing), true),
        ] {
            for chunk in owned_chunks(rows) {
                let as_claimed = chunk.iter().any(|row| row.claimed.is_some());
                let mut columns = 6;
                let mut sql = String::from(
                    "UPDATE OR FAIL nopos_deliveries SET status = u.column2, due_at = u.column3, \
                     lease_token = u.column4, lease_until = u.column5, state = u.column6",
                );
                if with_finished {
                    columns += 1;
                    sql.push_str(", finished = u.column7");
                }
                sql.push_str(" FROM (VALUES ");
                let list_at = sql.len();
                sql.push_str(") AS u WHERE nopos_deliveries.id = u.column1");
                if as_claimed {
                    // A row without a claim's text binds NULLs, which match no row.
                    let _ = write!(
                        sql,
                        " AND nopos_deliveries.lease_token = u.column{} \
                         AND nopos_deliveries.state = u.column{}",
                        columns + 1,
                        columns + 2
                    );
                    columns += 2;
                }
                sql.insert_str(list_at, &values_list(chunk.len(), columns));
                let rows = chunk.len();
                script.statement(&sql, rows);
                for row in chunk {
                    script.bind(row.id)?;
                    script.bind(row.status)?;
                    script.bind(row.due_at)?;
                    script.bind(row.lease_token)?;
                    script.bind(row.lease_until)?;
                    script.bind(row.state)?;
                    if with_finished {
                        script.bind(i64::from(row.finished))?;
                    }
                    if as_claimed {
                        let (token, state) = row.claimed.unzip();
                        script.bind(token)?;
                        script.bind(state)?;
                    }
                }
                script.pad(rows, columns)?;
            }
        }
        Ok(())
    }
}

/// Attempt log entries to insert: (delivery id, attempt, record) rows.
#[derive(Default)]
pub(super) struct AttemptWrites(Vec<(String, u32, String)>);

impl AttemptWrites {
    pub(super) fn push(
        &mut self,
        delivery: &DeliveryId,
        record: &AttemptRecord,
    ) -> Result<(), StoreError> {
        self.0.push((
            delivery.to_string(),
            record.attempt,
            to_json("attempt record", record)?,
        ));
        Ok(())
    }

    /// Adds the statements that insert the entries added so far to `script`, and empties the
    /// batch. An entry already in the log fails the statement, or with [`Conflict::Skip`] is
    /// left out (and so not counted).
    pub(super) fn append_to(
        &mut self,
        script: &mut Script,
        conflict: Conflict,
    ) -> Result<(), StoreError> {
        let verb = match conflict {
            Conflict::Fail => "INSERT OR FAIL",
            Conflict::Skip => "INSERT OR IGNORE",
        };
        for chunk in owned_chunks(std::mem::take(&mut self.0)) {
            let list = values_list(chunk.len(), 3);
            // The padding rows are filtered out, not inserted.
            let sql = format!(
                "{verb} INTO nopos_attempts (delivery_id, attempt, record) \
                 SELECT column1, column2, column3 FROM (VALUES {list}) WHERE column1 IS NOT NULL"
            );
            let rows = chunk.len();
            script.statement(&sql, rows);
            for (delivery, attempt, record) in chunk {
                script.bind(delivery)?;
                script.bind(i64::from(attempt))?;
                script.bind(record)?;
            }
            script.pad(rows, 3)?;
        }
        Ok(())
    }
}

/// What an insert does with a row whose key is already in its table.
#[derive(Clone, Copy)]
pub(super) enum Conflict {
    /// Fails the statement: the transaction is rolled back.
    Fail,
    /// Skips the row, which the statement's count of changed rows then leaves out.
    Skip,
}

/// Adds the statements that write endpoint healths to `script`.
pub(super) fn append_healths(
    script: &mut Script,
    healths: &[(&EndpointId, &EndpointHealth)],
) -> Result<(), StoreError> {
    for chunk in healths.chunks(MAX_ROWS) {
        let list = values_list(chunk.len(), 2);
        let sql = format!(
            "UPDATE OR FAIL nopos_endpoints SET health = u.column2 FROM (VALUES {list}) AS u \
             WHERE nopos_endpoints.id = u.column1"
        );
        script.statement(&sql, chunk.len());
        for (id, health) in chunk {
            script.bind(id.as_str().to_owned())?;
            script.bind(to_json("endpoint health", health)?)?;
        }
        script.pad(chunk.len(), 2)?;
    }
    Ok(())
}

/// Splits `rows` into owned chunks of at most [`MAX_ROWS`] (their values move into the binds).
fn owned_chunks<T>(rows: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        Some(rows.by_ref().take(MAX_ROWS).collect())
    })
}
