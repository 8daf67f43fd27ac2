-- nopos-webhooks PostgreSQL store, schema version 2: documents as text.
--
-- The store is the only writer of these columns and decodes them itself; nothing queries inside
-- them. As JSONB, PostgreSQL parsed every delivery state on each claim and each outcome and
-- printed it again on each read, which was a large share of its CPU per delivery. Text keeps the
-- store's own JSON byte for byte.

ALTER TABLE endpoints ALTER COLUMN record TYPE TEXT, ALTER COLUMN health TYPE TEXT;
ALTER TABLE deliveries ALTER COLUMN state TYPE TEXT;
ALTER TABLE attempts ALTER COLUMN record TYPE TEXT;
