-- Alerts and the notifications about them (an outbox: one row per
-- notification and notifier, so that a restart re-sends nothing already sent
-- and retries what was not).

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL,
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    device_id       INTEGER REFERENCES devices(id),
    title           TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at       TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT
);

-- At most one alert per condition that is not over.
CREATE UNIQUE INDEX alerts_unresolved_key ON alerts (key) WHERE state <> 'resolved';
CREATE INDEX alerts_by_device ON alerts (device_id, id);
CREATE INDEX alerts_by_key ON alerts (key, resolved_at);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event      TEXT NOT NULL CHECK (event IN ('opened', 'resolved', 'digest')),
    alert_id   INTEGER REFERENCES alerts(id),
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    device     TEXT,
    title      TEXT NOT NULL,
    text       TEXT NOT NULL,
    at         TEXT NOT NULL,
    devices    TEXT NOT NULL DEFAULT '[]',   -- JSON array of device names (digests)
    created_at TEXT NOT NULL
);

CREATE TABLE notification_sends (
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    notifier        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    sent_at         TEXT,
    PRIMARY KEY (notification_id, notifier)
) WITHOUT ROWID;

CREATE INDEX notification_sends_due ON notification_sends (notifier, state, next_attempt_at);
