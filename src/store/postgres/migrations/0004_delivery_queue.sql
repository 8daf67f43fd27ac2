-- nopos-webhooks PostgreSQL store, schema version 4: the queue in a table of its own.
--
-- Claims and outcomes rewrite every delivery row twice. With the queue's times in indexed columns
-- of `deliveries`, each rewrite was a new row version with a new entry in each of the table's
-- five indexes; inserting those entries was about two fifths of the server's CPU while a
-- dispatcher ran. Now `deliveries` is written only in columns no index covers, so PostgreSQL can
-- rewrite a row in place on its page (a HOT update, with no index entries), and the times move
-- to a narrow table that holds only the deliveries a dispatcher still has to act on.

CREATE TABLE delivery_queue (
    delivery_id  TEXT COLLATE "C" PRIMARY KEY,
    -- When a dispatcher next has to act on the delivery: its next attempt while it waits
    -- (pending or retry scheduled), its lease's expiry while it is in flight (rounded up).
    due_at       BIGINT NOT NULL
);

CREATE INDEX delivery_queue_by_due ON delivery_queue (due_at, delivery_id);

INSERT INTO delivery_queue (delivery_id, due_at)
    SELECT id, COALESCE(due_at, lease_until) FROM deliveries
    WHERE due_at IS NOT NULL OR lease_until IS NOT NULL;

DROP INDEX deliveries_due;
DROP INDEX deliveries_lease;
ALTER TABLE deliveries DROP COLUMN due_at;

-- A rewrite stays on its row's page only if the page has room for the new version next to the
-- old one until the old one is pruned; a claim rewrites all the rows of a page at once.
ALTER TABLE deliveries SET (fillfactor = 50);
