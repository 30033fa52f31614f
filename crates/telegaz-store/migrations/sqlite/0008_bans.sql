-- Bans: FTP logins refused without a password check. Made by the
-- failed-login throttle (address, or login from an address; the block
-- grows with each repeat) or by an operator (`telegaz ban add`, web, API).
-- `address` NULL: every address; `login` NULL: every login from the address.
-- `expires_at` NULL: until lifted. Rows are kept after they end (history,
-- and the throttle counts repeats from them).
CREATE TABLE bans (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    address    TEXT,
    login      TEXT,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    repeat     INTEGER NOT NULL DEFAULT 0,
    lifted_at  TEXT,
    lifted_by  TEXT,
    CHECK (address IS NOT NULL OR login IS NOT NULL)
);

-- The login path asks for the bans of one address or one login that are
-- not lifted: partial indexes keep that one lookup cheap however long the
-- history grows.
CREATE INDEX bans_live_by_address ON bans (address) WHERE lifted_at IS NULL;
CREATE INDEX bans_live_by_login ON bans (login) WHERE lifted_at IS NULL;
CREATE INDEX bans_by_address_time ON bans (address, created_at);
