-- Ingest: gas-day settings per device, the ingest queue, readings and events.

ALTER TABLE devices ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'Europe/Moscow';
ALTER TABLE devices ADD COLUMN contract_hour INTEGER NOT NULL DEFAULT 10
    CHECK (contract_hour BETWEEN 0 AND 23);

-- One row per upload to ingest. A row is `pending` until a worker has stored
-- its outcome; a crash leaves it pending, so it is redone after restart.
CREATE TABLE ingest (
    upload_id           INTEGER PRIMARY KEY REFERENCES uploads(id),
    state               TEXT NOT NULL CHECK (state IN ('pending', 'parsed', 'quarantined', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    format              TEXT,
    reason              TEXT,
    truncated           INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    records_total       INTEGER NOT NULL DEFAULT 0,
    records_new         INTEGER NOT NULL DEFAULT 0,
    records_duplicate   INTEGER NOT NULL DEFAULT 0,
    records_conflicting INTEGER NOT NULL DEFAULT 0,
    events_total        INTEGER NOT NULL DEFAULT 0,
    model               TEXT,
    serial              TEXT,
    queued_at           TEXT NOT NULL,
    finished_at         TEXT
);

CREATE INDEX ingest_by_state ON ingest (state, upload_id);

-- Archive rows, one per natural key. record_no is -1 when the format has none.
-- Quantities are exact decimal strings (JSON object), as the device printed them.
CREATE TABLE readings (
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    kind        TEXT NOT NULL CHECK (kind IN ('interval', 'daily', 'monthly')),
    local_time  TEXT NOT NULL,      -- 2026-01-14T11:00:00, local time of the device
    record_no   INTEGER NOT NULL,
    utc_offset  INTEGER,
    quantities  TEXT NOT NULL,
    status      TEXT NOT NULL,      -- status words, JSON array
    event_code  INTEGER,
    checked     TEXT NOT NULL,      -- JSON of the row's check
    upload_id   INTEGER NOT NULL REFERENCES uploads(id),
    line        INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind, local_time, record_no)
) WITHOUT ROWID;

-- The same key arriving with different values: kept, never overwriting.
CREATE TABLE reading_conflicts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    local_time  TEXT NOT NULL,
    record_no   INTEGER NOT NULL,
    utc_offset  INTEGER,
    quantities  TEXT NOT NULL,
    status      TEXT NOT NULL,
    event_code  INTEGER,
    checked     TEXT NOT NULL,
    upload_id   INTEGER NOT NULL REFERENCES uploads(id),
    line        INTEGER NOT NULL,
    recorded_at TEXT NOT NULL
);

CREATE INDEX reading_conflicts_by_key ON reading_conflicts (device_id, kind, local_time);

CREATE TABLE events (
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    local_time TEXT NOT NULL,
    record_no  INTEGER NOT NULL,
    code       INTEGER NOT NULL,
    utc_offset INTEGER,
    checked    TEXT NOT NULL,
    upload_id  INTEGER NOT NULL REFERENCES uploads(id),
    line       INTEGER NOT NULL,
    PRIMARY KEY (device_id, local_time, record_no, code)
) WITHOUT ROWID;

-- Uploads that existed before this migration are queued too.
INSERT INTO ingest (upload_id, state, queued_at)
SELECT id, 'pending', COALESCE(received_at, started_at) FROM uploads
WHERE status = 'complete' AND device_id IS NOT NULL;
