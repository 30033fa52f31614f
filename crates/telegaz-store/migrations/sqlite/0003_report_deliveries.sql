-- Scheduled report deliveries: one row per (delivery name, gas day).
-- `pending` waits for `next_attempt_at`; `sending` is an attempt in progress
-- whose lease ends at `next_attempt_at` (an attempt cut by a crash is taken up
-- again after it); `sent` and `failed` are final.
CREATE TABLE report_deliveries (
    name            TEXT NOT NULL,
    gas_day         TEXT NOT NULL,      -- 2026-01-14, the date the gas day starts
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          TEXT NOT NULL,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    sent_at         TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (name, gas_day)
) WITHOUT ROWID;

CREATE INDEX report_deliveries_due ON report_deliveries (state, next_attempt_at);
