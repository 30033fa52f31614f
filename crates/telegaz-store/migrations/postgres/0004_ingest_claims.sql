-- Ingest claims: a worker (one of several receivers sharing this database)
-- takes an upload from the queue by setting `claimed_until` in one
-- conditional UPDATE; the others pass it over until then. A worker that died
-- holding it loses it when the time has passed (the database server's clock),
-- and another takes the upload up again. NULL: nobody holds it.
ALTER TABLE ingest ADD COLUMN claimed_until TIMESTAMPTZ;
