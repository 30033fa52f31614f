-- Receiver core: devices, uploads, the per-device virtual namespace, audit trail.
-- Timestamps are UTC text, fixed width: 2026-11-25T10:00:00.000000Z (sortable).

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    login            TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    allowed_networks TEXT NOT NULL DEFAULT '',   -- CIDRs separated by ','
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE uploads (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id         INTEGER REFERENCES devices(id),
    original_name     TEXT NOT NULL,
    original_name_raw BLOB,                      -- exact bytes, when not UTF-8
    path              TEXT NOT NULL,
    final_path        TEXT NOT NULL,
    mode              TEXT NOT NULL CHECK (mode IN ('store', 'store_unique', 'append', 'resume')),
    size              INTEGER NOT NULL DEFAULT 0,
    sha256            TEXT,
    status            TEXT NOT NULL CHECK (status IN ('receiving', 'complete', 'partial', 'recovered')),
    reason            TEXT,
    duplicate_of      INTEGER REFERENCES uploads(id),
    resumed_from      INTEGER REFERENCES uploads(id),
    resume_offset     INTEGER NOT NULL DEFAULT 0,
    peer              TEXT,
    session           TEXT,
    started_at        TEXT NOT NULL,
    received_at       TEXT,
    deleted_by_device INTEGER NOT NULL DEFAULT 0 CHECK (deleted_by_device IN (0, 1))
);

CREATE INDEX uploads_by_device ON uploads (device_id, id);
CREATE INDEX uploads_by_sha256 ON uploads (sha256);
CREATE INDEX uploads_by_status ON uploads (status, id);

-- What each device sees over FTP. Entries point at uploads; removing or renaming
-- an entry never touches the upload or its bytes.
CREATE TABLE device_dirs (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    parent     TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (device_id, parent, name)
) WITHOUT ROWID;

CREATE TABLE device_files (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    parent     TEXT NOT NULL,
    name       TEXT NOT NULL,
    upload_id  INTEGER NOT NULL REFERENCES uploads(id),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (device_id, parent, name)
) WITHOUT ROWID;

CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    session   TEXT,
    peer      TEXT,
    device_id INTEGER,
    login     TEXT,
    upload_id INTEGER,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);

CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_device ON audit (device_id, at);
