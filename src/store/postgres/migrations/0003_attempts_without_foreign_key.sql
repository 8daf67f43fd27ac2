-- nopos-webhooks PostgreSQL store, schema version 3: no foreign key from the attempt log.
--
-- Every outcome inserts one attempt row, and the key's check ran a query per row that locked the
-- delivery row once more (`FOR KEY SHARE`) and wrote that lock to the WAL: about a third of the
-- time of the statement that records a batch of outcomes. The store inserts an attempt only for
-- a delivery row it holds locked in the same transaction, and never deletes deliveries, so the
-- check could never fail.

ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_delivery_id_fkey;
