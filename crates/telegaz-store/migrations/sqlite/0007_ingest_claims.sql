-- Ingest claims: a worker takes an upload from the queue by setting
-- `claimed_until` (one conditional UPDATE); others pass it over until then.
-- A worker that died holding it loses it when the time has passed, and the
-- upload is taken up again. NULL: nobody holds it.
ALTER TABLE ingest ADD COLUMN claimed_until TEXT;
