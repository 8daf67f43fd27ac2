//! The store's SQL statements, qualified with its schema.
//!
//! Every table name is written `{s}.table` and qualified with the store's (validated, quoted)
//! schema when the store is opened, so the statements work on any connection whatever its
//! `search_path` — which is what lets [`PostgresStore::emit_in`](super::PostgresStore::emit_in)
//! run on the caller's own connection. Values are always bound parameters; the schema name is the
//! only text spliced in, and [`super::Schema`] admits only `[a-z_][a-z0-9_]*`.

use std::sync::Arc;

use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// The channel work notifications are sent on; the payload is the schema name.
pub(super) const WORK_CHANNEL: &str = "nopos_webhooks_work";

/// A query of one of the store's statements, to bind parameters to.
pub(super) type PgQuery = Query<'static, Postgres, PgArguments>;

/// A prepared statement's text: cheap to clone into a query (sqlx caches the prepared statement
/// per connection by this text).
#[derive(Clone)]
pub(super) struct Statement(Arc<str>);

impl Statement {
    fn new(template: &str, schema: &str) -> Statement {
        Statement(template.replace("{s}", schema).into())
    }

    /// A query of this statement, to bind parameters to.
    pub(super) fn query(&self) -> PgQuery {
        // The text comes from the constant templates below and a validated identifier.
        sqlx::query(AssertSqlSafe(Arc::clone(&self.0)).into_sql_str())
    }
}

/// The common table expressions that rewrite delivery rows and queue the waiting ones, from
/// `UNNEST` of `$1`–`$6`: id, status, due time, lease token, lease expiry, state.
///
/// Only columns no index covers are rewritten in `deliveries`, so PostgreSQL can rewrite a row in
/// place on its page (schema version 4). A delivery stays in `delivery_queue` while it waits, at
/// its due time, and leaves it otherwise ([`dequeue_deliveries!`]): one in flight is found again
/// through its claim's row in `claim_leases` (schema version 5). The `= ANY` on the keys makes
/// each part a key lookup in every plan: joined with `UNNEST` alone, PostgreSQL read the whole
/// table (a hash join on a sequential scan) whenever its row estimate was off.
macro_rules! write_deliveries {
    () => {
        "written AS ( \
            UPDATE {s}.deliveries AS d SET status = u.status, lease_token = u.lease_token, \
                lease_until = u.lease_until, state = u.state \
            FROM UNNEST($1::text[], $2::text[], $4::text[], $5::int8[], $6::text[]) \
                AS u(id, status, lease_token, lease_until, state) \
            WHERE d.id = u.id AND d.id = ANY($1::text[])), \
        queued AS ( \
            INSERT INTO {s}.delivery_queue (delivery_id, due_at) \
            SELECT q.id, q.due_at FROM UNNEST($1::text[], $3::int8[]) AS q(id, due_at) \
            WHERE q.due_at IS NOT NULL \
            ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at)"
    };
}

/// The common table expression that takes the deliveries of [`write_deliveries!`] that do not
/// wait out of the queue. Recording outcomes leaves it out: a delivery in flight on a lease is not
/// in the queue (its claim took it out). Should another writer have queued one all the same
/// (a dispatcher older than schema version 5 changing an endpoint), the first claim to find the
/// row takes it out.
macro_rules! dequeue_deliveries {
    () => {
        "dequeued AS ( \
            DELETE FROM {s}.delivery_queue WHERE delivery_id = ANY(ARRAY( \
                SELECT g.id FROM UNNEST($1::text[], $3::int8[]) AS g(id, due_at) \
                WHERE g.due_at IS NULL)))"
    };
}

/// The common table expressions that count settled claims off their lease rows, from `UNNEST`
/// of the lease row ids and counts given: a row whose count runs out is deleted. A row another
/// transaction holds (a claimer settling its expired lease) is skipped, not waited for: a
/// recorder holds delivery rows, which that claimer may be waiting for. A row left uncounted
/// only lives until its lease expires, when a claim finds nothing left to settle and deletes it.
macro_rules! count_off_leases {
    ($ids:literal, $counts:literal) => {
        concat!(
            "held AS ( \
                SELECT l.id, l.remaining, c.settled FROM {s}.claim_leases AS l \
                JOIN UNNEST(",
            $ids,
            "::text[], ",
            $counts,
            "::int4[]) AS c(id, settled) ON l.id = c.id \
                WHERE l.id = ANY(",
            $ids,
            "::text[]) FOR UPDATE OF l SKIP LOCKED), \
            finished AS ( \
                DELETE FROM {s}.claim_leases WHERE id = ANY(ARRAY( \
                    SELECT id FROM held WHERE remaining <= settled))), \
            counted AS ( \
                UPDATE {s}.claim_leases AS l SET remaining = h.remaining - h.settled \
                FROM held AS h WHERE l.id = h.id AND h.remaining > h.settled)"
        )
    };
}

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        /// Every statement the store runs, for one schema.
        pub(super) struct Statements {
            $($(#[$doc])* pub(super) $name: Statement,)*
        }

        impl Statements {
            /// The statements for `quoted_schema` (a double-quoted identifier).
            pub(super) fn new(quoted_schema: &str) -> Statements {
                Statements {
                    $($name: Statement::new($sql, quoted_schema),)*
                }
            }
        }
    };
}

statements! {
    insert_endpoint = "INSERT INTO {s}.endpoints (id, created_at, record, health) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
    get_endpoint = "SELECT record, health FROM {s}.endpoints WHERE id = $1";
    /// Endpoint rows are locked before delivery rows, by every method that locks both.
    lock_endpoint = "SELECT record, health FROM {s}.endpoints WHERE id = $1 \
        FOR UPDATE";
    share_endpoint = "SELECT record, health FROM {s}.endpoints WHERE id = $1 \
        FOR SHARE";
    list_endpoints = "SELECT record FROM {s}.endpoints ORDER BY created_at, id";
    write_endpoint = "UPDATE {s}.endpoints SET created_at = $2, record = $3, \
        health = $4 WHERE id = $1";
    write_health = "UPDATE {s}.endpoints SET health = $2 WHERE id = $1";
    delete_endpoint = "DELETE FROM {s}.endpoints WHERE id = $1";

    /// Taken exclusive by endpoint status changes, shared by `emit` (in `insert_event`; see the
    /// module docs).
    status_lock_exclusive = "SELECT pg_advisory_xact_lock($1)";
    notify = "SELECT pg_notify($1, $2)";

    /// Takes the status lock shared (`$5`), then inserts the event: the row to insert comes from
    /// the lock's row, so the lock is held first, and an emit costs one round trip less.
    insert_event = "WITH status AS (SELECT pg_advisory_xact_lock_shared($5)) \
        INSERT INTO {s}.events (id, type, body, stored_at) SELECT $1, $2, $3, $4 FROM status \
        ON CONFLICT (id) DO NOTHING RETURNING id";
    get_event = "SELECT type, body, stored_at FROM {s}.events WHERE id = $1";
    event_deliveries = "SELECT id FROM {s}.deliveries WHERE event_id = $1 ORDER BY id";
    /// The whole fan-out of one event in one statement, with the work notification (channel
    /// `$8`, payload `$9`) when `$10` says a delivery is due. Deliveries with a due time (`$5`)
    /// join the queue. A data-modifying `WITH` runs to completion whether or not the query reads
    /// it.
    insert_deliveries = "WITH inserted AS ( \
            INSERT INTO {s}.deliveries (id, event_id, endpoint_id, status, created_at, state) \
            SELECT u.id, $1, u.endpoint_id, u.status, u.created_at, u.state \
            FROM UNNEST($2::text[], $3::text[], $4::text[], $6::int8[], $7::text[]) \
                AS u(id, endpoint_id, status, created_at, state)), \
        queued AS ( \
            INSERT INTO {s}.delivery_queue (delivery_id, due_at) \
            SELECT q.id, q.due_at FROM UNNEST($2::text[], $5::int8[]) AS q(id, due_at) \
            WHERE q.due_at IS NOT NULL) \
        SELECT pg_notify($8, $9) WHERE $10";

    get_delivery = "SELECT state FROM {s}.deliveries WHERE id = $1";
    delivery_endpoint = "SELECT endpoint_id FROM {s}.deliveries WHERE id = $1";
    lock_delivery = "SELECT endpoint_id, state, lease_token FROM {s}.deliveries \
        WHERE id = $1 FOR UPDATE";
    /// A batch's rows, locked: its endpoints (`$1`) in id order, then its deliveries (`$2`) in id
    /// order, the lock order of every method. The deliveries' scan waits on a count of the
    /// locked endpoints, so no delivery row is locked before every endpoint row is. Endpoint rows
    /// come first (`kind` true: id, record, health), then delivery rows (`kind` false: id,
    /// endpoint id, state, lease token).
    lock_batch = "WITH e AS ( \
            SELECT id, record, health FROM {s}.endpoints \
            WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE), \
        d AS ( \
            SELECT id, endpoint_id, state, lease_token FROM {s}.deliveries \
            WHERE id = ANY($2::text[]) AND (SELECT count(*) FROM e) >= 0 \
            ORDER BY id FOR UPDATE) \
        SELECT true AS kind, id, record, health, NULL::text FROM e \
        UNION ALL \
        SELECT false, id, endpoint_id, state, lease_token FROM d";
    /// Deliveries of an endpoint that are not final (`$2`: the final statuses).
    lock_unfinished = "SELECT id, state, lease_token, lease_until FROM {s}.deliveries \
        WHERE endpoint_id = $1 AND status <> ALL($2::text[]) ORDER BY id FOR UPDATE";
    lock_failed_since = "SELECT id, state FROM {s}.deliveries \
        WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2 ORDER BY id \
        FOR UPDATE";
    /// Rewrites delivery rows from their new states, with their places in the queue, in one
    /// statement (see [`write_deliveries!`]).
    update_deliveries = concat!(
        "WITH ",
        write_deliveries!(),
        ", ",
        dequeue_deliveries!(),
        " SELECT 1"
    );
    /// A claim's writes: delivery rows as `update_deliveries` (`$1`–`$6`), and the lease row
    /// listing the claimed deliveries (`$9`), with its id (`$7`) and expiry (`$8`).
    claim_writes = concat!("WITH ", write_deliveries!(), ", ", dequeue_deliveries!(), ", \
        leased AS ( \
            INSERT INTO {s}.claim_leases (id, lease_until, delivery_ids, remaining) \
            VALUES ($7, $8, $9::text[], cardinality($9::text[]))) \
        SELECT 1");
    /// Counts settled claims off their lease rows (see [`count_off_leases!`]): ids `$1`,
    /// counts `$2`.
    count_off_leases = concat!("WITH ", count_off_leases!("$1", "$2"), " SELECT 1");
    /// Lease rows that ran out (`$1`: now; at most `$2`), each with the deliveries it listed,
    /// then a last row with only the earliest expiry of all lease rows (these included). One
    /// another claimer holds is skipped.
    expired_leases = "WITH expired AS ( \
            SELECT id, delivery_ids FROM {s}.claim_leases WHERE lease_until <= $1 \
            ORDER BY lease_until, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
        SELECT id, delivery_ids, NULL::int8 FROM expired \
        UNION ALL SELECT NULL, NULL, (SELECT min(lease_until) FROM {s}.claim_leases)";
    /// Of the deliveries `$1`, those still in flight (`$3`) on a lease that ran out (`$2`: now),
    /// locked in id order (waiting for a recorder that holds one: it may settle it), each with
    /// its endpoint's id and record.
    lock_expired = "SELECT d.id, d.state, d.endpoint_id, \
            (SELECT e.record FROM {s}.endpoints AS e WHERE e.id = d.endpoint_id) \
        FROM {s}.deliveries AS d \
        WHERE d.id = ANY($1::text[]) AND d.status = $3 AND d.lease_until <= $2 \
        ORDER BY d.id FOR UPDATE OF d";
    /// Deletes the lease rows `$1` (settled after they ran out).
    delete_leases = "DELETE FROM {s}.claim_leases WHERE id = ANY($1::text[])";
    insert_attempts = "INSERT INTO {s}.attempts (delivery_id, attempt, record) \
        SELECT u.delivery_id, u.attempt, u.record \
        FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(delivery_id, attempt, record) \
        ON CONFLICT (delivery_id, attempt) DO NOTHING";
    /// A batch of outcomes' writes in one statement: delivery states (`$1`–`$6`, as
    /// `update_deliveries` but without taking them out of the queue, which they are not in),
    /// attempt log entries (`$7`–`$9`, as `insert_attempts`), endpoint healths (`$10`–`$11`) and
    /// the claims settled per lease row (`$12`–`$13`, as `count_off_leases`). Each part writes
    /// its own rows, so none needs to see another's writes. (The attempts' delivery rows are the
    /// batch's, locked by `lock_batch`: the log has no foreign key to check per row since schema
    /// version 3.)
    record_writes = concat!("WITH ", write_deliveries!(), ", \
        logged AS ( \
            INSERT INTO {s}.attempts (delivery_id, attempt, record) \
            SELECT l.delivery_id, l.attempt, l.record \
            FROM UNNEST($7::text[], $8::int8[], $9::text[]) AS l(delivery_id, attempt, record) \
            ON CONFLICT (delivery_id, attempt) DO NOTHING), \
        ", count_off_leases!("$12", "$13"), " \
        UPDATE {s}.endpoints AS e SET health = h.health \
        FROM UNNEST($10::text[], $11::text[]) AS h(id, health) \
        WHERE e.id = h.id AND e.id = ANY($10::text[])");
    list_attempts = "SELECT record FROM {s}.attempts WHERE delivery_id = $1 \
        ORDER BY attempt";

    /// The head of the queue, earliest first, skipping rows another transaction holds: due
    /// deliveries (and in-flight ones whose lease ran out, queued at its expiry by a dispatcher
    /// older than schema version 5; the caller tells them apart by their state). Each comes with
    /// its event and, on the first row of each endpoint only, its record (the rows that follow
    /// share it: no need to send the same document once per delivery). The delivery, its endpoint
    /// and its event are per-row key lookups in every plan: subqueries, the lateral ones kept by
    /// their `LIMIT` from being flattened into joins, which a generic plan (see `begin_lazy`) made
    /// hash joins over whole tables. A queue row whose delivery row another transaction holds is
    /// skipped, not waited for.
    claim_due = "WITH due AS ( \
            SELECT delivery_id, due_at FROM {s}.delivery_queue \
            WHERE due_at <= $1 ORDER BY due_at, delivery_id LIMIT $2 \
            FOR UPDATE SKIP LOCKED), \
        d AS ( \
            SELECT x.id, x.event_id, x.endpoint_id, x.state, due.due_at FROM due \
            JOIN LATERAL (SELECT id, event_id, endpoint_id, state FROM {s}.deliveries \
                WHERE id = due.delivery_id LIMIT 1 FOR UPDATE SKIP LOCKED) AS x ON true) \
        SELECT d.id, d.state, \
            CASE WHEN row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.due_at, d.id) = 1 \
                THEN (SELECT e.record FROM {s}.endpoints AS e WHERE e.id = d.endpoint_id) END, \
            v.type, v.body FROM d \
        LEFT JOIN LATERAL (SELECT type, body FROM {s}.events WHERE id = d.event_id LIMIT 1) AS v \
            ON true \
        ORDER BY d.due_at, d.id";
    /// The earliest due delivery, and the earliest lease expiry.
    next_wakeup = "SELECT (SELECT min(due_at) FROM {s}.delivery_queue), \
        (SELECT min(lease_until) FROM {s}.claim_leases)";

    dedup_mark = "INSERT INTO {s}.dedup_seen AS seen (event_id, seen_at) VALUES ($1, $2) \
        ON CONFLICT (event_id) DO UPDATE SET seen_at = EXCLUDED.seen_at \
        WHERE seen.seen_at <= $3 RETURNING seen.event_id";
    dedup_forget = "DELETE FROM {s}.dedup_seen WHERE event_id = $1";
    dedup_purge = "DELETE FROM {s}.dedup_seen WHERE seen_at <= $1";
}

/// `list_deliveries` with the filters that are set (`$1`, `$2`, … in this order: endpoint,
/// event, status; then the limit), so each shape gets a plan that uses its index.
pub(super) fn list_deliveries(
    quoted_schema: &str,
    endpoint: bool,
    event: bool,
    status: bool,
) -> String {
    let mut sql = format!("SELECT state FROM {quoted_schema}.deliveries");
    let mut param = 0;
    let mut conditions = Vec::new();
    for (set, column) in [
        (endpoint, "endpoint_id"),
        (event, "event_id"),
        (status, "status"),
    ] {
        if set {
            param += 1;
            conditions.push(format!("{column} = ${param}"));
        }
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    param += 1;
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $");
    sql.push_str(&param.to_string());
    sql
}
