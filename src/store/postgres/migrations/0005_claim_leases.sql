-- nopos-webhooks PostgreSQL store, schema version 5: in-flight deliveries listed per claim.
--
-- Up to version 4 a claim moved each delivery's queue row to its lease's expiry: a new row
-- version with two new index entries per delivery, the largest single cost of a claim. Now a
-- claim deletes the queue rows and lists its deliveries in one row here, which expires with the
-- lease. Each outcome recorded counts its claim off the row, and the last deletes it; a row that
-- expires is settled by the next claim: its deliveries still in flight are lost attempts.

CREATE TABLE claim_leases (
    id            TEXT COLLATE "C" PRIMARY KEY,
    -- The claim's lease expiry, Unix microseconds rounded up.
    lease_until   BIGINT NOT NULL,
    -- The deliveries the claim took.
    delivery_ids  TEXT[] NOT NULL,
    -- How many of them are not yet recorded or released.
    remaining     INTEGER NOT NULL
);

CREATE INDEX claim_leases_by_expiry ON claim_leases (lease_until, id);

-- Deliveries in flight now, queued at their lease's expiry, get a lease row each.
INSERT INTO claim_leases (id, lease_until, delivery_ids, remaining)
    SELECT 'v5-' || q.delivery_id, q.due_at, ARRAY[q.delivery_id], 1
    FROM delivery_queue AS q JOIN deliveries AS d ON d.id = q.delivery_id
    WHERE d.status = 'in_flight';

DELETE FROM delivery_queue AS q USING deliveries AS d
    WHERE d.id = q.delivery_id AND d.status = 'in_flight';
