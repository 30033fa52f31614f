-- FTPS: a device that must use TLS (AUTH TLS before USER, PROT P for data).
ALTER TABLE devices ADD COLUMN tls_required BOOLEAN NOT NULL DEFAULT FALSE;
