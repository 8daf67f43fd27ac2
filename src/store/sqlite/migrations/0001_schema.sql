-- nopos-webhooks SQLite schema, version 1.
--
-- Tables are prefixed `nopos_` because the transactional outbox puts them in the application's
-- own database file, next to its sales and customers. Times are Unix microseconds; endpoints,
-- delivery states, attempt records and health are JSON documents (src/store/codec.rs).
-- STRICT tables refuse values of the wrong type, so a hand-edited row fails loudly.

CREATE TABLE nopos_endpoints (
    id         TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    -- The endpoint record, secrets included.
    record     TEXT NOT NULL,
    health     TEXT NOT NULL
) STRICT;

CREATE INDEX nopos_endpoints_created ON nopos_endpoints (created_at, id);

CREATE TABLE nopos_events (
    id         TEXT PRIMARY KEY NOT NULL,
    type       TEXT NOT NULL,
    -- The envelope's `created_at`, when the body is an envelope.
    created_at INTEGER,
    -- The exact bytes delivered to every endpoint.
    body       BLOB NOT NULL,
    stored_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE nopos_deliveries (
    id          TEXT PRIMARY KEY NOT NULL,
    event_id    TEXT NOT NULL REFERENCES nopos_events (id),
    -- No foreign key: deliveries (cancelled) and their attempts outlive a deleted endpoint.
    endpoint_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    -- 1 once the status is final (delivered, failed, cancelled). Written only when that changes
    -- (finishing, or a replay), never by a claim: see the unfinished index below.
    finished    INTEGER NOT NULL DEFAULT 0,
    -- Set while pending or retry-scheduled: when the next attempt is due.
    due_at      INTEGER,
    -- Set while in flight: who holds the delivery, and until when.
    lease_token TEXT,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL,
    -- The sans-IO core's DeliveryState; the columns above are derived from it for indexing.
    state       TEXT NOT NULL
) STRICT;

-- Claiming reads the earliest due rows and the expired leases: partial indexes keep both
-- O(log n) however many finished deliveries accumulate.
CREATE INDEX nopos_deliveries_due ON nopos_deliveries (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX nopos_deliveries_lease ON nopos_deliveries (lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX nopos_deliveries_endpoint ON nopos_deliveries (endpoint_id, created_at, id);
-- Disabling, enabling or deleting an endpoint reads only its unfinished deliveries, however
-- many finished ones it has. Keyed on `finished`, not `status`: SQLite rewrites a partial
-- index's entry whenever an UPDATE sets a column of its WHERE, and `status` changes on every
-- claim. (Queries must repeat the WHERE literally to use the index.)
CREATE INDEX nopos_deliveries_unfinished ON nopos_deliveries (endpoint_id) WHERE finished = 0;
CREATE INDEX nopos_deliveries_event ON nopos_deliveries (event_id);
CREATE INDEX nopos_deliveries_created ON nopos_deliveries (created_at, id);

-- A lost (lease-expired) attempt and the next one never share a number: the next attempt is
-- numbered after the lost one, and a late outcome for the lost one is refused.
CREATE TABLE nopos_attempts (
    delivery_id TEXT NOT NULL REFERENCES nopos_deliveries (id),
    attempt     INTEGER NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

-- The receiver side's deduplicator (SqliteDeduplicator).
CREATE TABLE nopos_dedup_seen (
    event_id TEXT PRIMARY KEY NOT NULL,
    seen_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX nopos_dedup_seen_at ON nopos_dedup_seen (seen_at);
