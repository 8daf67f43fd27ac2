-- nopos-webhooks PostgreSQL store, schema version 1.
--
-- Runs with `search_path` set to the store's schema, so every name below lands there. Times are
-- Unix microseconds (BIGINT); documents are the shared SQL encoding of `store::codec`. Ids use
-- the "C" collation so that ORDER BY id is byte order, as in the other stores.

CREATE TABLE endpoints (
    id          TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL,
    -- The endpoint's `EndpointRecord`, secrets included.
    record      JSONB NOT NULL,
    -- Its `EndpointHealth`.
    health      JSONB NOT NULL
);

CREATE INDEX endpoints_by_age ON endpoints (created_at, id);

CREATE TABLE events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    type        TEXT NOT NULL,
    -- The envelope, byte for byte as every endpoint receives it.
    body        BYTEA NOT NULL,
    stored_at   BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id           TEXT COLLATE "C" PRIMARY KEY,
    event_id     TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    -- No foreign key: a deleted endpoint's deliveries are kept, cancelled.
    endpoint_id  TEXT COLLATE "C" NOT NULL,
    status       TEXT NOT NULL,
    -- Set while pending or retry_scheduled: when the next attempt is due (rounded up).
    due_at       BIGINT,
    -- Set while in_flight: the claim's lease, and when it runs out (rounded up).
    lease_token  TEXT,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    -- The `DeliveryState`: the source of truth; the columns above are derived from it.
    state        JSONB NOT NULL
);

-- Claiming reads the head of these two; the partial indexes hold only the rows a claim can take,
-- so a claim costs O(log n) however many finished deliveries pile up.
CREATE INDEX deliveries_due ON deliveries (due_at, id) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_lease ON deliveries (lease_until, id) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, created_at);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_age ON deliveries (created_at, id);

CREATE TABLE attempts (
    delivery_id  TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id),
    attempt      BIGINT NOT NULL,
    -- The `AttemptRecord`.
    record       JSONB NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- The receiver side: event ids already processed (`PostgresDeduplicator`).
CREATE TABLE dedup_seen (
    event_id  TEXT COLLATE "C" PRIMARY KEY,
    seen_at   BIGINT NOT NULL
);

CREATE INDEX dedup_seen_by_age ON dedup_seen (seen_at);
