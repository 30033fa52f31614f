-- FTPS: a device that must use TLS (AUTH TLS before USER, PROT P for data).
ALTER TABLE devices ADD COLUMN tls_required INTEGER NOT NULL DEFAULT 0 CHECK (tls_required IN (0, 1));
