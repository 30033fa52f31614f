-- Web UI and REST API: users, browser sessions, API tokens; a free-text title
-- per device (site, address) for people, beside the name modems type.

ALTER TABLE devices ADD COLUMN title TEXT NOT NULL DEFAULT '';

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- The cookie value is never stored: only its SHA-256.
CREATE TABLE web_sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Uploads a person must look at, per device (the fleet overview counts them).
CREATE INDEX ingest_problems ON ingest (state) WHERE state IN ('quarantined', 'failed');
-- The newest login per device, without reading every connection ever made.
CREATE INDEX audit_by_kind_device ON audit (kind, device_id, at);
