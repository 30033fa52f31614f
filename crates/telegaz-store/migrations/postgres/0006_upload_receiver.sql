-- Which receiver (`telegaz serve` process, by its receiver id) started a
-- transfer. Several receivers share this database: start-up reconciliation
-- closes as partial only the transfers of its own receiver (and those of no
-- recorded receiver, from before this column), never another live
-- receiver's. The index serves that look-up (transfers in progress are few).
ALTER TABLE uploads ADD COLUMN receiver TEXT;
CREATE INDEX uploads_receiving_by_receiver ON uploads (receiver, id) WHERE status = 'receiving';
