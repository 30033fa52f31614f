-- Which receiver (`telegaz serve` process, by its receiver id) started a
-- transfer. Start-up reconciliation closes as partial only the transfers of
-- its own receiver (and those of no recorded receiver, from before this
-- column), never another live receiver's on a shared database. The index
-- serves that look-up (transfers in progress are few).
ALTER TABLE uploads ADD COLUMN receiver TEXT;
CREATE INDEX uploads_receiving_by_receiver ON uploads (receiver, id) WHERE status = 'receiving';
